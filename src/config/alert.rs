//! The alert evaluator's configuration (`logship alert --config alert.toml`, docs/alerts.md).
//! The rules themselves live in etcd (`{prefix}/alerts/rules/{name}`); this file says where
//! the servers are and where notifications go.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::credentials::{Refuse, TableKeys};
use super::es_access::{EsAccess, EsConnection};
use super::etcd_access::EtcdTable;
use super::influx::InfluxTable;
use super::{load_toml, ConfigError};

/// The receiver name of Prometheus Alertmanager in a rule's `receivers`.
pub const ALERTMANAGER: &str = "alertmanager";

/// `alert.toml`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The console's address, for the links in notifications.
    #[serde(default = "default_console_url")]
    pub console_url: String,
    /// Serve `/metrics` and `/health` here.
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// `/health` answers 503 once a condition (a notification undelivered, no evaluator
    /// leading, evaluation failing) lasts this long.
    #[serde(default = "super::default_health_grace_ms")]
    pub health_grace_ms: super::Millis,
    /// Where the rules, the agents' registry and the evaluator's state are.
    pub etcd: EtcdTable,
    /// Where the lines are counted.
    pub elasticsearch: AlertEsConfig,
    /// Whose committed offsets say what is indexed.
    pub kafka: AlertKafkaConfig,
    /// Host metrics (only for `metrics` rules).
    #[serde(default)]
    pub influxdb: Option<InfluxTable>,
    /// Prometheus Alertmanager (the receiver `alertmanager`).
    #[serde(default)]
    pub alertmanager: Option<AlertmanagerTable>,
    /// Plain webhooks, each a receiver by its name.
    #[serde(default)]
    pub webhook: Vec<WebhookTable>,
}

/// `[elasticsearch]`: the connection keys of every role, and the indices rules count in.
#[derive(Debug, Clone, Deserialize)]
pub struct AlertEsConfig {
    #[serde(flatten)]
    _refuse: Refuse<AlertEsConfig>,
    /// URL(s), credentials, TLS.
    #[serde(flatten)]
    pub connection: EsConnection,
    /// The indices a rule without `index` counts in: the transfer's data indices, as the
    /// console searches them (default: every index not hidden, dead letters left out).
    #[serde(default = "default_index_pattern")]
    pub index_pattern: String,
}

impl TableKeys for AlertEsConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = EsConnection::keys();
        keys.push("index_pattern");
        keys
    }
}

/// `[kafka]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertKafkaConfig {
    /// Bootstrap brokers.
    pub brokers: String,
    /// The transfer's consumer group.
    #[serde(default = "default_transfer_group")]
    pub transfer_group: String,
    /// The transfer's topics: waited for even before the group has committed on them (a topic
    /// not named here counts once the group has committed on it).
    #[serde(default)]
    pub topics: Vec<String>,
    /// TLS towards the brokers.
    #[serde(default)]
    pub tls: Option<super::kafka_security::KafkaTls>,
    /// SASL.
    #[serde(default)]
    pub sasl: Option<super::kafka_security::KafkaSasl>,
}

/// `[alertmanager]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertmanagerTable {
    /// Its base URL (`http://127.0.0.1:9093`); alerts go to `{url}/api/v2/alerts`.
    pub url: String,
}

/// `[[webhook]]`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookTable {
    /// The receiver's name in rules.
    pub name: String,
    /// Where the POSTs go.
    pub url: String,
    /// A bearer token, read from this file at every send (so a rotated token is used at once).
    #[serde(default)]
    pub token_file: Option<PathBuf>,
}

/// How long an evaluator's etcd and Elasticsearch requests may take.
pub const REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

fn default_console_url() -> String {
    "http://127.0.0.1:9700".into()
}
fn default_index_pattern() -> String {
    "*,-.*,-logship-dlq*".into()
}
fn default_transfer_group() -> String {
    "logship-transfer".into()
}

impl AlertConfig {
    /// Reads and checks `path`.
    pub fn load(path: &Path) -> Result<AlertConfig, ConfigError> {
        let config: AlertConfig = load_toml(path)?;
        config.check(&path.display().to_string())?;
        Ok(config)
    }

    /// The Elasticsearch connection.
    pub fn es_access(&self) -> Result<EsAccess, String> {
        self.elasticsearch.connection.access(REQUEST_TIMEOUT)
    }

    /// Every receiver name a rule may use.
    pub fn receivers(&self) -> Vec<String> {
        let mut names: Vec<String> = self.webhook.iter().map(|w| w.name.clone()).collect();
        if self.alertmanager.is_some() {
            names.push(ALERTMANAGER.to_string());
        }
        names
    }

    fn check(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: file.to_string(),
            message,
        };
        self.etcd.connection.access().map_err(invalid)?;
        self.es_access().map_err(invalid)?;
        if self.kafka.brokers.trim().is_empty() || self.kafka.transfer_group.trim().is_empty() {
            return Err(invalid(
                "kafka.brokers and kafka.transfer_group must not be empty".into(),
            ));
        }
        super::kafka_security::check(self.kafka.tls.as_ref(), self.kafka.sasl.as_ref())
            .map_err(invalid)?;
        let http = |what: &str, url: &str| {
            if url.starts_with("http://") || url.starts_with("https://") {
                Ok(())
            } else {
                Err(invalid(format!(
                    "{what} {url:?} must be an http:// or https:// URL"
                )))
            }
        };
        http("console_url", &self.console_url)?;
        if let Some(am) = &self.alertmanager {
            http("alertmanager.url", &am.url)?;
        }
        let mut names = std::collections::BTreeSet::new();
        for hook in &self.webhook {
            let name_ok = !hook.name.is_empty()
                && hook
                    .name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
            if !name_ok {
                return Err(invalid(format!(
                    "webhook {:?}: a receiver name is letters, digits, '.', '_' and '-'",
                    hook.name
                )));
            }
            if hook.name == ALERTMANAGER {
                return Err(invalid(format!(
                    "webhook {ALERTMANAGER:?}: the name is the Alertmanager receiver's"
                )));
            }
            if !names.insert(hook.name.clone()) {
                return Err(invalid(format!("webhook {:?} is named twice", hook.name)));
            }
            http(&format!("webhook {:?} url", hook.name), &hook.url)?;
        }
        if self.alertmanager.is_none() && self.webhook.is_empty() {
            return Err(invalid(
                "no receiver: add [alertmanager] or a [[webhook]]".into(),
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<AlertConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("alert.toml");
        std::fs::write(&path, text).unwrap();
        AlertConfig::load(&path)
    }

    const BASE: &str = "[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"/logship\"\n\
        [elasticsearch]\nurl = \"http://127.0.0.1:9200\"\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n";

    #[test]
    fn the_documented_names_load_and_receivers_are_checked() {
        let config = load(&format!(
            "console_url = \"http://c:9700\"\nmetrics_addr = \"127.0.0.1:9750\"\n{BASE}\
             [alertmanager]\nurl = \"http://127.0.0.1:9193\"\n\
             [[webhook]]\nname = \"ops\"\nurl = \"https://hooks.example/logship\"\ntoken_file = \"/t\"\n"
        ))
        .unwrap();
        assert_eq!(config.kafka.transfer_group, "logship-transfer");
        assert_eq!(
            config.receivers(),
            vec!["ops".to_string(), "alertmanager".into()]
        );
        let none = load(BASE).unwrap_err().to_string();
        assert!(none.contains("no receiver"), "{none}");
        let twice = load(&format!(
            "{BASE}[[webhook]]\nname = \"a\"\nurl = \"http://x\"\n[[webhook]]\nname = \"a\"\nurl = \"http://y\"\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(twice.contains("named twice"), "{twice}");
        let unknown = load(&format!(
            "{BASE}[alertmanager]\nurl = \"http://a\"\nurls = 1\n"
        ))
        .unwrap_err()
        .to_string();
        assert!(unknown.contains("urls"), "{unknown}");
    }
}
