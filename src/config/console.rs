//! The console's configuration (`logship console --config console.toml`).

use std::net::SocketAddr;
use std::path::Path;

use serde::Deserialize;

use super::etcd_access::EtcdTable;
use super::influx::InfluxTable;
use super::ListenTls;

use super::credentials::{Refuse, TableKeys};
use super::es_access::{EsAccess, EsConnection};
use super::{load_toml, ConfigError};

/// The whole console configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleConfig {
    /// Where the console listens (default `127.0.0.1:9700`: loopback; listen wider only with
    /// `[[users]]`, and `[tls]` off loopback).
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Serve HTTPS with this certificate and key (re-read on SIGHUP).
    #[serde(default)]
    pub tls: Option<ListenTls>,
    /// Who may sign in. With none, the console is open to whoever reaches `listen`, with the
    /// editor's rights (the loopback default).
    #[serde(default)]
    pub users: Vec<ConsoleUser>,
    /// The cluster to search.
    pub elasticsearch: ConsoleEsConfig,
    /// Where the agents' collect entries are, for editing them from the console (optional).
    #[serde(default)]
    pub etcd: Option<EtcdTable>,
    /// Where the host metrics are, for the charts of `/hosts` (optional).
    #[serde(default)]
    pub influxdb: Option<InfluxTable>,
    /// The Kafka cluster and the transfer's group, for the lag on `/pipeline` (optional; the
    /// console only reads the group's offsets, it never joins it).
    #[serde(default)]
    pub kafka: Option<ConsoleKafkaConfig>,
}

/// The console's `[kafka]` table.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleKafkaConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// The transfer's consumer group (its `kafka.group`): whose committed offsets are compared
    /// with the topics' end offsets.
    pub transfer_group: String,
    /// `[kafka.tls]`: TLS to the brokers, as for the agent.
    #[serde(default)]
    pub tls: Option<super::kafka_security::KafkaTls>,
    /// `[kafka.sasl]`: SASL authentication, as for the agent.
    #[serde(default)]
    pub sasl: Option<super::kafka_security::KafkaSasl>,
}

/// One `[[users]]` entry.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleUser {
    /// The name typed at sign-in.
    pub name: String,
    /// An argon2 hash in PHC form (`$argon2id$v=19$...`), as `logship console hash-password`
    /// prints it. The password itself is never stored.
    pub password_hash: String,
    /// What the user may do.
    pub role: Role,
}

impl std::fmt::Debug for ConsoleUser {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleUser")
            .field("name", &self.name)
            .field("password_hash", &"<hidden>")
            .field("role", &self.role)
            .finish()
    }
}

/// A console user's rights.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Search, context, live tail, fleet pages.
    Viewer,
    /// A viewer who also edits the hosts' collect entries and the shared saved searches.
    Editor,
}

/// The console's `[elasticsearch]` table: the connection (the transfer's keys) and what is
/// searched.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct ConsoleEsConfig {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<ConsoleEsConfig>,
    /// `url`, the CA and the credentials, as for the transfer; `request_timeout_ms` defaults
    /// to 30 s here.
    #[serde(flatten)]
    pub connection: EsConnection,
    /// What is searched.
    #[serde(flatten)]
    pub search: EsSearch,
}

/// The console's own key of `[elasticsearch]`: what is searched.
#[derive(Debug, Clone, Deserialize)]
pub struct EsSearch {
    /// The indices searched: a pattern or a comma-separated list (`web_log-*,app-*`). The
    /// dead-letter index is searched only if named here.
    pub index_pattern: String,
}

impl TableKeys for ConsoleEsConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = EsConnection::keys();
        keys.push("index_pattern");
        keys
    }
}

/// The console's timeout of one Elasticsearch request when `request_timeout_ms` is absent.
pub const ES_REQUEST_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(30);

impl ConsoleEsConfig {
    /// The URL, CA and credentials, checked together (see [`EsAccess::new`]).
    pub fn access(&self) -> Result<EsAccess, String> {
        self.connection.access(ES_REQUEST_TIMEOUT)
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9700))
}

impl ConsoleConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<ConsoleConfig, ConfigError> {
        let config: ConsoleConfig = load_toml(path)?;
        config.check_values(&path.display().to_string())?;
        Ok(config)
    }

    fn check_values(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: file.to_string(),
            message,
        };
        let es = &self.elasticsearch;
        let patterns: Vec<&str> = es.search.index_pattern.split(',').map(str::trim).collect();
        if patterns.iter().any(|p| p.is_empty()) {
            return Err(invalid(
                "elasticsearch.index_pattern must name at least one index or pattern, with no empty item"
                    .into(),
            ));
        }
        if let Some(bad) = patterns
            .iter()
            .find(|p| p.contains(['/', '\\', ' ', '"', '?', '#', '<', '>', '|']))
        {
            return Err(invalid(format!(
                "elasticsearch.index_pattern item {bad:?} is not an index name or pattern"
            )));
        }
        es.access().map_err(invalid)?;
        let mut names = std::collections::HashSet::new();
        for user in &self.users {
            if user.name.trim().is_empty() || user.name.chars().any(char::is_control) {
                return Err(invalid(format!(
                    "users: name {:?} must be non-empty and printable",
                    user.name
                )));
            }
            if !names.insert(user.name.as_str()) {
                return Err(invalid(format!("users: {:?} is listed twice", user.name)));
            }
            match argon2::PasswordHash::new(&user.password_hash) {
                Ok(hash) if hash.algorithm.as_str().starts_with("argon2") => {}
                _ => {
                    return Err(invalid(format!(
                        "users: the password_hash of {:?} is not an argon2 hash in PHC form \
                         (make one with `logship console hash-password`)",
                        user.name
                    )))
                }
            }
        }
        if let Some(influx) = &self.influxdb {
            influx.access().map_err(invalid)?;
        }
        if let Some(kafka) = &self.kafka {
            if kafka.brokers.trim().is_empty() || kafka.transfer_group.trim().is_empty() {
                return Err(invalid(
                    "kafka.brokers and kafka.transfer_group must not be empty".into(),
                ));
            }
            super::kafka_security::check(kafka.tls.as_ref(), kafka.sasl.as_ref())
                .map_err(invalid)?;
        }
        if let Some(etcd) = &self.etcd {
            etcd.connection.access().map_err(invalid)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(text: &str) -> Result<ConsoleConfig, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("console.toml");
        std::fs::write(&path, text).unwrap();
        ConsoleConfig::load(&path)
    }

    #[test]
    fn defaults_and_required_keys() {
        let config = load(
            "[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\nindex_pattern = \"web_log-*\"\n",
        )
        .unwrap();
        assert_eq!(config.listen, default_listen());
        assert_eq!(config.elasticsearch.search.index_pattern, "web_log-*");
        let missing = load("[elasticsearch]\nurl = \"http://127.0.0.1:9200\"\n").unwrap_err();
        assert!(missing.to_string().contains("index_pattern"), "{missing}");
    }

    #[test]
    fn fleet_sources_are_optional_and_checked() {
        let es = "[elasticsearch]\nurl = \"http://e:9200\"\nindex_pattern = \"x\"\n";
        let config = load(&format!(
            "{es}[influxdb]\nurl = \"http://i:8086\"\ndatabase = \"telegraf\"\n\
             [kafka]\nbrokers = \"k:9092\"\ntransfer_group = \"logship-transfer\"\n"
        ))
        .unwrap();
        assert_eq!(
            config.influxdb.unwrap().connection.database.as_deref(),
            Some("telegraf")
        );
        assert_eq!(config.kafka.unwrap().transfer_group, "logship-transfer");
        let refused = |extra: &str| load(&format!("{es}{extra}")).unwrap_err().to_string();
        assert!(refused("[influxdb]\nurl = \"i\"\ndatabase = \"d\"\n").contains("http://"));
        assert!(refused("[kafka]\nbrokers = \"\"\ntransfer_group = \"g\"\n")
            .contains("must not be empty"));
        assert!(refused("[kafka]\nbrokers = \"k\"\n").contains("transfer_group"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        crate::config::credentials::assert_keys_taken::<ConsoleEsConfig, ConsoleEsConfig>(
            "url = \"http://h:9200\"\nindex_pattern = \"a\"\n",
        );
        let unknown = load(
            "lisen = \"127.0.0.1:1\"\n[elasticsearch]\nurl = \"http://h:9200\"\nindex_pattern = \"a\"\n",
        )
        .unwrap_err();
        assert!(unknown.to_string().contains("lisen"), "{unknown}");
        for (text, key) in [
            (
                "url = \"h:9200\"\nindex_pattern = \"a\"",
                "elasticsearch.url",
            ),
            (
                "url = \"http://h:9200\"\nindex_pattern = \"a,,b\"",
                "index_pattern",
            ),
            (
                "url = \"http://h:9200\"\nindex_pattern = \"a b\"",
                "index_pattern",
            ),
            (
                "url = \"http://h:9200\"\nindex_pattern = \"a\"\nusername = \"u\"",
                "username",
            ),
        ] {
            let error = load(&format!("[elasticsearch]\n{text}\n")).unwrap_err();
            assert!(error.to_string().contains(key), "{key}: {error}");
        }
    }

    const ES: &str = "[elasticsearch]\nurl = \"http://h:9200\"\nindex_pattern = \"a\"\n";

    #[test]
    fn users_need_argon2_hashes_unique_names_and_a_known_role() {
        let hash = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$9sTbSlTio3Biev89thdrlKKiCaYsjjYVJxGAL3swxpQ";
        let good = load(&format!(
            "[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"editor\"\n\
             [[users]]\nname = \"bob\"\npassword_hash = \"{hash}\"\nrole = \"viewer\"\n{ES}"
        ))
        .unwrap();
        assert_eq!(good.users[0].role, Role::Editor);
        assert_eq!(good.users[1].role, Role::Viewer);
        assert!(
            !format!("{good:?}").contains("argon2id"),
            "Debug hides hashes"
        );
        for (users, expect) in [
            (
                "[[users]]\nname = \"ann\"\npassword_hash = \"secret\"\nrole = \"editor\"\n",
                "hash-password",
            ),
            (
                &*format!(
                    "[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"admin\"\n"
                ),
                "admin",
            ),
            (
                &*format!(
                    "[[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"viewer\"\n\
                     [[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"editor\"\n"
                ),
                "twice",
            ),
        ] {
            let error = load(&format!("{users}{ES}")).unwrap_err();
            assert!(error.to_string().contains(expect), "{expect}: {error}");
        }
    }

    #[test]
    fn etcd_and_tls_tables() {
        let config = load(&format!(
            "[tls]\ncert_file = \"/c.pem\"\nkey_file = \"/k.pem\"\n{ES}\
             [etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n"
        ))
        .unwrap();
        assert_eq!(config.etcd.unwrap().connection.prefix, "/logship");
        assert_eq!(
            config.tls.unwrap().key_file,
            std::path::PathBuf::from("/k.pem")
        );
        let error = load(&format!(
            "{ES}[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"x/\"\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("etcd.prefix"), "{error}");
    }
}
