//! The console's configuration (`logship console --config console.toml`).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::etcd_access::EtcdAccess;
use super::ListenTls;

use super::es_access::{EsAccess, EsAccessKeys};
use super::{load_toml, ConfigError, Millis};

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
    pub etcd: Option<ConsoleEtcdConfig>,
    /// Where the host metrics are, for the charts of `/hosts` (optional).
    #[serde(default)]
    pub influxdb: Option<ConsoleInfluxConfig>,
    /// The Kafka cluster and the transfer's group, for the lag on `/pipeline` (optional; the
    /// console only reads the group's offsets, it never joins it).
    #[serde(default)]
    pub kafka: Option<ConsoleKafkaConfig>,
}

/// The console's `[influxdb]` table: where the transfer writes host metrics.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleInfluxConfig {
    /// Base URL of InfluxDB 1.x.
    pub url: String,
    /// The database the transfer writes (`influxdb.database` of the transfer).
    pub database: String,
    /// User (with `password_file` or `$LOGSHIP_INFLUXDB_PASSWORD`).
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the password (read at start and on reload).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// PEM of the CA that signs InfluxDB's certificate (required with `https://`).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
}

impl ConsoleInfluxConfig {
    /// The checked access (see [`super::influx::InfluxAccess::new`]).
    pub fn access(&self) -> Result<super::influx::InfluxAccess, String> {
        super::influx::InfluxAccess::new(
            &self.url,
            &self.database,
            self.username.as_deref(),
            self.password_file.as_deref(),
            self.ca_file.as_deref(),
            std::time::Duration::from_secs(30),
        )
    }
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
    /// A viewer who also edits the hosts' collect entries.
    Editor,
}

/// The console's `[etcd]` table: the agents' keys (`endpoints`, `prefix`, TLS and user), for
/// reading and writing collect entries.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleEtcdConfig {
    /// etcd endpoints (`http://host:2379` or `https://`).
    pub endpoints: Vec<String>,
    /// Key prefix, the agents' `etcd.prefix`.
    #[serde(default = "default_etcd_prefix")]
    pub prefix: String,
    /// PEM of the CA that signs the etcd servers' certificates.
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM of a client certificate (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM of its key.
    #[serde(default)]
    pub key_file: Option<PathBuf>,
    /// etcd user; its password from `password_file` or `$LOGSHIP_ETCD_PASSWORD`.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the etcd user's password (read at every connection).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

fn default_etcd_prefix() -> String {
    "/logship".to_string()
}

impl ConsoleEtcdConfig {
    /// Endpoints and credentials, checked together.
    pub fn access(&self) -> Result<EtcdAccess, String> {
        EtcdAccess::new(
            self.endpoints.clone(),
            self.ca_file.as_deref(),
            self.cert_file.as_deref(),
            self.key_file.as_deref(),
            self.username.as_deref(),
            self.password_file.as_deref(),
        )
        .map_err(|e| format!("[etcd]: {e}"))
    }
}

/// The console's `[elasticsearch]` table.
#[derive(Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConsoleEsConfig {
    /// Base URL, `http://host:port` or `https://host:port`.
    pub url: String,
    /// The indices searched: a pattern or a comma-separated list (`web_log-*,app-*`). The
    /// dead-letter index is searched only if named here.
    pub index_pattern: String,
    /// Basic-auth user name (with `password`), as for the transfer.
    #[serde(default)]
    pub username: Option<String>,
    /// Basic-auth password written inline (deprecated: use `password_file` or
    /// `$LOGSHIP_ES_PASSWORD`).
    #[serde(default)]
    pub password: Option<String>,
    /// File holding the basic-auth password (read at start and on SIGHUP).
    #[serde(default)]
    pub password_file: Option<std::path::PathBuf>,
    /// File holding an API key (`encoded` form or `id:api_key`; read at start and on SIGHUP).
    #[serde(default)]
    pub api_key_file: Option<std::path::PathBuf>,
    /// PEM file of the CA(s) that sign the cluster's certificate (`https://` only).
    #[serde(default)]
    pub ca_file: Option<std::path::PathBuf>,
    /// SHA-256 fingerprint of the CA certificate to trust among those the cluster presents
    /// (instead of `ca_file`; `AB:CD:…` or plain hex).
    #[serde(default)]
    pub ca_fingerprint: Option<String>,
    /// Timeout of one request to Elasticsearch.
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: Millis,
}

impl ConsoleEsConfig {
    /// The URL, CA and credentials, checked together (see [`EsAccess::new`]).
    pub fn access(&self) -> Result<EsAccess, String> {
        EsAccess::new(EsAccessKeys {
            url: &self.url,
            username: self.username.as_deref(),
            password: self.password.as_deref(),
            password_file: self.password_file.as_deref(),
            api_key_file: self.api_key_file.as_deref(),
            ca_file: self.ca_file.as_deref(),
            ca_fingerprint: self.ca_fingerprint.as_deref(),
            request_timeout: self.request_timeout_ms.get(),
        })
    }
}

impl std::fmt::Debug for ConsoleEsConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ConsoleEsConfig")
            .field("url", &self.url)
            .field("index_pattern", &self.index_pattern)
            .field("username", &self.username)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .field("password_file", &self.password_file)
            .field("api_key_file", &self.api_key_file)
            .field("ca_file", &self.ca_file)
            .field("ca_fingerprint", &self.ca_fingerprint)
            .field("request_timeout_ms", &self.request_timeout_ms)
            .finish()
    }
}

fn default_listen() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 9700))
}

fn default_request_timeout_ms() -> Millis {
    Millis::new(30_000)
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
        if !(es.url.starts_with("http://") || es.url.starts_with("https://")) {
            return Err(invalid(format!(
                "elasticsearch.url {:?} must start with http:// or https://",
                es.url
            )));
        }
        let patterns: Vec<&str> = es.index_pattern.split(',').map(str::trim).collect();
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
            etcd.access().map_err(invalid)?;
            super::etcd_access::check_endpoints_and_prefix(&etcd.endpoints, &etcd.prefix)
                .map_err(invalid)?;
        }
        if es.request_timeout_ms.is_zero() {
            return Err(invalid(
                "elasticsearch.request_timeout_ms must be at least 1".into(),
            ));
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
        assert_eq!(config.elasticsearch.index_pattern, "web_log-*");
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
        assert_eq!(config.influxdb.unwrap().database, "telegraf");
        assert_eq!(config.kafka.unwrap().transfer_group, "logship-transfer");
        let refused = |extra: &str| load(&format!("{es}{extra}")).unwrap_err().to_string();
        assert!(refused("[influxdb]\nurl = \"i\"\ndatabase = \"d\"\n").contains("http://"));
        assert!(refused("[kafka]\nbrokers = \"\"\ntransfer_group = \"g\"\n")
            .contains("must not be empty"));
        assert!(refused("[kafka]\nbrokers = \"k\"\n").contains("transfer_group"));
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
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
        assert_eq!(config.etcd.unwrap().prefix, "/logship");
        assert_eq!(config.tls.unwrap().key_file, PathBuf::from("/k.pem"));
        let error = load(&format!(
            "{ES}[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\nprefix = \"x/\"\n"
        ))
        .unwrap_err();
        assert!(error.to_string().contains("etcd.prefix"), "{error}");
    }
}
