//! `[influxdb]`: where host metrics are written (the transfer) and read (the console).
//!
//! The keys users write are checked here once and turned into an [`InfluxAccess`], the one
//! value the InfluxDB client is built from. The password is never part of the configuration
//! text: it is read from `password_file` (or `$LOGSHIP_INFLUXDB_PASSWORD`) when the client is
//! built, so a rotated file is picked up at the next reload.

use std::path::PathBuf;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::{ClientCertificates, Inline, Refuse, TableKeys, TlsFiles, UserSecret};
use super::retention::Retention;
use super::secret::SecretSource;
use super::Millis;

/// The retention policy `influxdb.retention` manages when `retention_policy` names none.
pub const DEFAULT_RETENTION_POLICY: &str = "logship";

/// The environment variable read for the password when no `password_file` is given.
pub const PASSWORD_ENV: &str = "LOGSHIP_INFLUXDB_PASSWORD";

/// The connection keys of an `[influxdb]` table, the same for the transfer and the console.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct InfluxConnection {
    /// Base URL of InfluxDB 1.x (`http://127.0.0.1:8086`, or `https://…`).
    pub url: String,
    /// The database points are written to (and read from).
    pub database: String,
    /// The retention policy written to and read from (absent: the database's default one,
    /// or `logship` when the transfer's `retention` is set).
    #[serde(default)]
    pub retention_policy: Option<String>,
    /// `ca_file`: PEM of the CA(s) that sign InfluxDB's certificate (`https://` only).
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// `username` with `password_file` (or `$LOGSHIP_INFLUXDB_PASSWORD`); absent: no
    /// authentication.
    #[serde(flatten)]
    pub user: UserSecret,
}

impl InfluxConnection {
    /// The keys, as written.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = vec!["url", "database", "retention_policy"];
        keys.extend(TlsFiles::CA_ONLY);
        keys.extend(UserSecret::KEYS);
        keys
    }

    /// The checked access (see [`InfluxAccess::new`]).
    pub fn access(&self, timeout: Duration) -> Result<InfluxAccess, String> {
        InfluxAccess::new(self, timeout)
    }
}

/// The transfer's `[influxdb]` table.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct InfluxDbConfig {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<InfluxDbConfig>,
    /// URL, database and credentials (the console's keys).
    #[serde(flatten)]
    pub connection: InfluxConnection,
    /// How long points are kept: with `create_database`, the retention policy named by
    /// `retention_policy` (`logship` when unnamed) is created or altered to this duration and
    /// written to. The database's default policy is never altered. Absent: no policy is
    /// managed.
    #[serde(default)]
    pub retention: Option<Retention>,
    /// Kafka topic receiving the points InfluxDB refuses as malformed (4xx), one per record.
    #[serde(default = "default_dlq_topic")]
    pub dlq_topic: String,
    /// Timeout of one HTTP request (a request that times out is retried).
    #[serde(default = "default_request_timeout_ms")]
    pub request_timeout_ms: Millis,
    /// Whether to `CREATE DATABASE` at start (idempotent; needs admin rights when
    /// authentication is on, so set `false` when the database is made by someone else).
    #[serde(default = "default_true")]
    pub create_database: bool,
}

impl TableKeys for InfluxDbConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = InfluxConnection::keys();
        keys.extend([
            "retention",
            "dlq_topic",
            "request_timeout_ms",
            "create_database",
        ]);
        keys
    }
}

/// The console's `[influxdb]` table: the connection and nothing else.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct InfluxTable {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<InfluxTable>,
    /// URL, database and credentials.
    #[serde(flatten)]
    pub connection: InfluxConnection,
}

impl TableKeys for InfluxTable {
    fn keys() -> Vec<&'static str> {
        InfluxConnection::keys()
    }
}

impl InfluxTable {
    /// The checked access, with the console's 30 s request timeout.
    pub fn access(&self) -> Result<InfluxAccess, String> {
        self.connection.access(Duration::from_secs(30))
    }
}

fn default_dlq_topic() -> String {
    "logship_metrics_dlq".to_string()
}
fn default_request_timeout_ms() -> Millis {
    Millis::new(30_000)
}
fn default_true() -> bool {
    true
}

/// Everything an InfluxDB client needs, checked.
#[derive(Debug, Clone)]
pub struct InfluxAccess {
    /// Base URL without a trailing `/`.
    pub url: String,
    /// Database.
    pub database: String,
    /// Retention policy (`None`: the database's default).
    pub retention_policy: Option<String>,
    /// User name and where its password comes from.
    pub credentials: Option<(String, SecretSource)>,
    /// CA file for `https://`.
    pub ca_file: Option<PathBuf>,
    /// Timeout of one request.
    pub timeout: Duration,
}

impl InfluxAccess {
    /// Checks the keys together: the URL's scheme, a database name, a user with a password
    /// source (and no password without a user), a CA file only with `https://`.
    pub fn new(keys: &InfluxConnection, timeout: Duration) -> Result<InfluxAccess, String> {
        let url = keys.url.trim_end_matches('/');
        if !(url.starts_with("http://") || url.starts_with("https://")) {
            return Err(format!(
                "influxdb.url {url:?} must start with http:// or https://"
            ));
        }
        reqwest::Url::parse(url).map_err(|e| format!("influxdb.url {url:?}: {e}"))?;
        if keys.database.trim().is_empty() {
            return Err("influxdb.database must not be empty".into());
        }
        keys.tls.check("influxdb", ClientCertificates::Refused)?;
        let ca_file = keys.tls.ca_file.as_deref();
        match (ca_file.is_some(), url.starts_with("https://")) {
            (true, false) => {
                return Err("influxdb.ca_file is only used with an https:// url".into())
            }
            (false, true) => {
                return Err(
                    "influxdb.url is https://: influxdb.ca_file must name the CA that signs \
                     InfluxDB's certificate"
                        .into(),
                )
            }
            _ => {}
        }
        let credentials = keys.user.user("influxdb", PASSWORD_ENV, Inline::Refused)?;
        if keys
            .retention_policy
            .as_ref()
            .is_some_and(|policy| policy.trim().is_empty())
        {
            return Err("influxdb.retention_policy must not be empty when given".into());
        }
        if timeout < Duration::from_millis(100) {
            return Err("influxdb.request_timeout_ms must be at least 100".into());
        }
        Ok(InfluxAccess {
            url: url.to_string(),
            database: keys.database.clone(),
            retention_policy: keys.retention_policy.clone(),
            credentials,
            ca_file: ca_file.map(PathBuf::from),
            timeout,
        })
    }

    /// The files read when the client is built (watched for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        let mut files: Vec<PathBuf> = self.ca_file.iter().cloned().collect();
        if let Some((_, source)) = &self.credentials {
            files.extend(source.file().map(PathBuf::from));
        }
        files
    }
}

impl InfluxDbConfig {
    /// The checked access (see [`InfluxAccess::new`]) with the retention policy.
    pub fn access(&self) -> Result<InfluxAccess, String> {
        let mut access = self.connection.access(self.request_timeout_ms.get())?;
        if self.retention.is_some() && access.retention_policy.is_none() {
            access.retention_policy = Some(DEFAULT_RETENTION_POLICY.to_string());
        }
        Ok(access)
    }

    /// Checks every key (the access, and a valid Kafka topic name for `dlq_topic`; the
    /// transfer also refuses a `dlq_topic` it consumes, which would feed refusals back in).
    pub fn check(&self) -> Result<(), String> {
        self.access()?;
        if self.retention.is_some() && !self.create_database {
            return Err(
                "influxdb.retention is applied with create_database = true; without it, set \
                 the retention policy's duration yourself and name it in retention_policy"
                    .into(),
            );
        }
        if !super::is_topic_name(&self.dlq_topic) {
            return Err(format!(
                "influxdb.dlq_topic {:?} is not a valid Kafka topic name",
                self.dlq_topic
            ));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(extra: &str) -> Result<InfluxDbConfig, String> {
        let text = format!("url = \"http://127.0.0.1:8086\"\ndatabase = \"m\"\n{extra}");
        let config: InfluxDbConfig = toml::from_str(&text).map_err(|e| e.to_string())?;
        config.check().map(|()| config)
    }

    #[test]
    fn defaults_and_refusals_are_named() {
        let good = config("").unwrap();
        assert_eq!(good.dlq_topic, "logship_metrics_dlq");
        assert!(good.create_database);
        assert_eq!(good.access().unwrap().url, "http://127.0.0.1:8086");
        let refused = |extra: &str| config(extra).unwrap_err();
        assert!(refused("username = \"u\"").contains("password_file"));
        assert!(refused("password_file = \"/p\"").contains("needs influxdb.username"));
        assert!(refused("ca_file = \"/ca\"").contains("https://"));
        let https = "url = \"https://i:8086\"\ndatabase = \"m\"\n";
        let no_ca: InfluxDbConfig = toml::from_str(https).unwrap();
        assert!(no_ca.check().unwrap_err().contains("ca_file must name"));
        assert!(refused("dlq_topic = \"a b\"").contains("topic name"));
        assert!(refused("retention_policy = \" \"").contains("retention_policy"));
        assert!(refused("retention = \"30d\"\ncreate_database = false").contains("create_database"));
        assert!(refused("retention = \"5\"").contains("forever"));
        let kept = config("retention = \"30d\"").unwrap();
        assert_eq!(
            kept.access().unwrap().retention_policy.as_deref(),
            Some(DEFAULT_RETENTION_POLICY)
        );
        let named = config("retention = \"30d\"\nretention_policy = \"month\"").unwrap();
        assert_eq!(
            named.access().unwrap().retention_policy.as_deref(),
            Some("month")
        );
        assert!(refused("bogus = 1").contains("unknown field"));
        crate::config::credentials::assert_keys_taken::<InfluxDbConfig, InfluxDbConfig>(
            "url = \"http://127.0.0.1:8086\"\ndatabase = \"m\"\n",
        );
        let auth = config("username = \"u\"\npassword_file = \"/run/p\"").unwrap();
        assert_eq!(
            auth.access().unwrap().files(),
            vec![PathBuf::from("/run/p")]
        );
    }
}
