//! The agent's configuration file (`logship agent --config agent.toml`).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::credentials::{Refuse, TableKeys};
use super::etcd_access::EtcdConnection;
use super::multiline::Multiline;
use super::{
    is_topic_name, load_toml, ConfigError, KafkaProducerConfig, Millis, RetryConfig, MAX_READ_BYTES,
};
use crate::backoff::BackoffPolicy;

/// Where to start in a file seen for the first time (no checkpoint).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum StartPosition {
    /// From its first byte (the default: nothing written before the agent started is missed).
    #[default]
    Beginning,
    /// From its current end. Applies only to files found in the agent's first scan after start;
    /// files that appear later (for example after a rotation) are always read from the beginning,
    /// or their first lines would be lost.
    End,
}

/// One group of files to collect, and the topic their lines go to.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct CollectEntry {
    /// Absolute glob of the files (`/var/log/nginx/*.log`); matches are re-evaluated while running.
    pub path: String,
    /// Kafka topic for these lines.
    pub topic: String,
    /// Globs of paths to leave out even when `path` matches them (`/var/log/nginx/*.gz`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exclude: Vec<String>,
    /// Overrides the top-level `start_position` for this entry.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start_position: Option<StartPosition>,
    /// Joins consecutive lines into one event (a stack trace): see [`Multiline`].
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub multiline: Option<Multiline>,
    /// Static fields put on every record of these files (`{ service = "checkout" }`), top-level
    /// document fields downstream. They cannot name a field logship sets.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fields: BTreeMap<String, String>,
}

/// The whole agent configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AgentConfig {
    /// Host name put on every line and into every id; default: the machine's hostname.
    #[serde(default)]
    pub host: Option<String>,
    /// Directory of the agent's sled database (checkpoints + WAL). Created if missing.
    pub data_dir: PathBuf,
    /// Where to start in files seen for the first time.
    #[serde(default)]
    pub start_position: StartPosition,
    /// Lines longer than this are shipped in pieces of this size, each flagged `split`.
    #[serde(default = "default_max_line_bytes")]
    pub max_line_bytes: usize,
    /// Largest read from one file into one WAL record.
    #[serde(default = "default_read_chunk_bytes")]
    pub read_chunk_bytes: usize,
    /// When the WAL holds this many bytes not yet acknowledged by Kafka, reading pauses.
    #[serde(default = "default_wal_max_bytes")]
    pub wal_max_bytes: u64,
    /// Reading pauses while the filesystem holding `data_dir` has less than this free (0: never);
    /// the WAL keeps draining to Kafka meanwhile and reading resumes when space returns.
    #[serde(default = "default_min_free_bytes")]
    pub min_free_bytes: u64,
    /// How often the globs are re-evaluated (inotify events only hint in between).
    #[serde(default = "default_rescan_interval_ms")]
    pub rescan_interval_ms: Millis,
    /// How long a file that was renamed away or deleted is still followed after its last growth.
    #[serde(default = "default_rotate_wait_ms")]
    pub rotate_wait_ms: Millis,
    /// A followed file read to its end and unchanged this long is closed (its checkpoint kept)
    /// and reopened when it changes, so that idle files do not hold descriptors.
    #[serde(default = "default_close_idle_ms")]
    pub close_idle_ms: Millis,
    /// On SIGTERM, how long to wait for Kafka to acknowledge what is in flight.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: Millis,
    /// Kafka producer settings.
    pub kafka: KafkaProducerConfig,
    /// The files to collect.
    #[serde(default)]
    pub collect: Vec<CollectEntry>,
    /// Central configuration: more collect entries from etcd (absent: none).
    #[serde(default)]
    pub etcd: Option<EtcdConfig>,
    /// Address of the HTTP endpoint serving `/metrics`, `/health` and `/status` (absent: none;
    /// `--metrics-addr` overrides).
    #[serde(default)]
    pub metrics_addr: Option<SocketAddr>,
    /// Serve the endpoint over HTTPS with this certificate and key (re-read on reload).
    #[serde(default)]
    pub metrics_tls: Option<super::ListenTls>,
    /// `/health` answers 503 once a condition (Kafka unreachable, WAL full) lasts this long.
    #[serde(default = "super::default_health_grace_ms")]
    pub health_grace_ms: Millis,
    /// While catching up on the backlog found at start, progress is logged this often.
    #[serde(default = "default_progress_interval_ms")]
    pub progress_interval_ms: Millis,
    /// How a chunk Kafka did not accept is resent (default [`KAFKA_RESEND`]); it stays in the
    /// WAL meanwhile.
    #[serde(default)]
    pub retry: RetryConfig,
    /// `[host_metrics]`: sample this host's CPU, memory, disks and network into Kafka (absent:
    /// off).
    #[serde(default)]
    pub host_metrics: Option<HostMetricsConfig>,
}

/// `[host_metrics]` of the agent (docs/config.md).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HostMetricsConfig {
    /// How often to sample.
    #[serde(default = "default_host_metrics_interval_ms")]
    pub interval_ms: Millis,
    /// The Kafka topic the samples go to.
    #[serde(default = "default_host_metrics_topic")]
    pub topic: String,
}

fn default_host_metrics_interval_ms() -> Millis {
    Millis::new(10_000)
}

fn default_host_metrics_topic() -> String {
    "logship_metrics".to_string()
}

/// Resends of chunks Kafka did not accept, when `[retry]` does not say otherwise: 500 ms,
/// doubling, up to 30 s.
pub const KAFKA_RESEND: BackoffPolicy =
    BackoffPolicy::new(Duration::from_millis(500), Duration::from_secs(30));

/// Reconnections of the etcd watcher and registry, when `[etcd.retry]` does not say otherwise:
/// 200 ms, doubling, up to 5 s (jittered, so that a fleet of agents does not reconnect in
/// lockstep after an etcd restart).
pub const ETCD_RECONNECT: BackoffPolicy =
    BackoffPolicy::new(Duration::from_millis(200), Duration::from_secs(5));

/// Where the agent reads its central collect entries (`[etcd]`).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct EtcdConfig {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<EtcdConfig>,
    /// Endpoints, key prefix and credentials (the console's `[etcd]` keys).
    #[serde(flatten)]
    pub connection: EtcdConnection,
    /// Absolute directories: entries from etcd whose glob does not lie under one of them are
    /// refused (a central store must not make the agent read arbitrary files).
    #[serde(default = "default_allowed_paths")]
    pub allowed_paths: Vec<String>,
    /// How the watcher and the registry reconnect while etcd is away (default
    /// [`ETCD_RECONNECT`]).
    #[serde(default)]
    pub retry: RetryConfig,
}

impl TableKeys for EtcdConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = EtcdConnection::keys();
        keys.extend(["allowed_paths", "retry"]);
        keys
    }
}

fn default_allowed_paths() -> Vec<String> {
    vec!["/var/log".to_string()]
}

impl EtcdConfig {
    /// Endpoints and credentials, checked together.
    pub fn access(&self) -> Result<super::etcd_access::EtcdAccess, String> {
        self.connection.access()
    }

    /// Checks the values; the error names the key.
    pub fn check(&self) -> Result<(), String> {
        self.access()?;
        self.retry.check("etcd.retry", ETCD_RECONNECT)?;
        if self.allowed_paths.is_empty() {
            return Err("etcd.allowed_paths must not be empty".into());
        }
        for root in &self.allowed_paths {
            if !root.starts_with('/') || root.contains(['*', '?', '[', '{']) || root.contains("..")
            {
                return Err(format!(
                    "etcd.allowed_paths entry {root:?} must be an absolute directory without glob characters or '..'"
                ));
            }
        }
        Ok(())
    }
}

fn default_progress_interval_ms() -> Millis {
    Millis::new(10_000)
}
fn default_max_line_bytes() -> usize {
    1024 * 1024
}
fn default_read_chunk_bytes() -> usize {
    256 * 1024
}
fn default_wal_max_bytes() -> u64 {
    8 * 1024 * 1024
}
fn default_min_free_bytes() -> u64 {
    16 * 1024 * 1024
}
fn default_rescan_interval_ms() -> Millis {
    Millis::new(1000)
}
fn default_rotate_wait_ms() -> Millis {
    Millis::new(5000)
}
fn default_close_idle_ms() -> Millis {
    Millis::new(300_000)
}
fn default_shutdown_timeout_ms() -> Millis {
    Millis::new(10_000)
}

impl AgentConfig {
    /// Reads, parses and validates `path`. The data directory is created if missing and must be
    /// writable.
    pub fn load(path: &Path) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = load_toml(path)?;
        config.validate(path)?;
        Ok(config)
    }

    /// Parses and validates TOML text (the data directory is not touched).
    pub fn from_toml(text: &str) -> Result<AgentConfig, ConfigError> {
        let config: AgentConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: "<inline>".into(),
            message: error.to_string(),
        })?;
        config.check_values("<inline>")?;
        Ok(config)
    }

    /// The host name to use: the configured one, else the machine's.
    pub fn host_name(&self) -> String {
        match &self.host {
            Some(host) => host.clone(),
            None => gethostname::gethostname().to_string_lossy().into_owned(),
        }
    }

    fn validate(&self, path: &Path) -> Result<(), ConfigError> {
        let file = path.display().to_string();
        self.check_values(&file)?;
        std::fs::create_dir_all(&self.data_dir).map_err(|error| ConfigError::Invalid {
            path: file.clone(),
            message: format!(
                "data_dir {} cannot be created: {error}",
                self.data_dir.display()
            ),
        })?;
        let probe = self.data_dir.join(".logship-write-probe");
        std::fs::write(&probe, b"probe")
            .and_then(|()| std::fs::remove_file(&probe))
            .map_err(|error| ConfigError::Invalid {
                path: file,
                message: format!(
                    "data_dir {} is not writable: {error}",
                    self.data_dir.display()
                ),
            })
    }

    fn check_values(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: file.to_string(),
            message,
        };
        if let Some(host) = &self.host {
            if host.trim().is_empty() {
                return Err(invalid("host must not be empty".into()));
            }
        }
        crate::config::kafka_security::check(self.kafka.tls.as_ref(), self.kafka.sasl.as_ref())
            .map_err(invalid)?;
        if let Some(refusal) = self
            .kafka
            .options
            .keys()
            .find_map(|key| crate::config::kafka_security::refused_option(key))
        {
            return Err(invalid(refusal));
        }
        if self.kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers must not be empty".into()));
        }
        if self.kafka.max_inflight_bytes == 0 {
            return Err(invalid(
                "kafka.max_inflight_bytes must be at least 1".into(),
            ));
        }
        if self.kafka.max_lines_per_record == 0 {
            return Err(invalid(
                "kafka.max_lines_per_record must be at least 1".into(),
            ));
        }
        if self.max_line_bytes < 16 {
            return Err(invalid("max_line_bytes must be at least 16".into()));
        }
        // A WAL chunk holds at most one read window, which grows to `max_line_bytes` + 1 for a
        // long line; chunks claiming more than MAX_CHUNK_DATA_BYTES are refused as damaged.
        if self.max_line_bytes > MAX_READ_BYTES || self.read_chunk_bytes > MAX_READ_BYTES {
            return Err(invalid(format!(
                "max_line_bytes and read_chunk_bytes must be at most {MAX_READ_BYTES}"
            )));
        }
        if self.progress_interval_ms.is_zero() {
            return Err(invalid("progress_interval_ms must be above 0".into()));
        }
        if let Some(metrics) = &self.host_metrics {
            if metrics.interval_ms.get() < Duration::from_millis(100) {
                return Err(invalid(
                    "host_metrics.interval_ms must be at least 100".into(),
                ));
            }
            if !is_topic_name(&metrics.topic) {
                return Err(invalid(format!(
                    "host_metrics.topic {:?} is not a valid Kafka topic name",
                    metrics.topic
                )));
            }
        }
        if self.read_chunk_bytes < 4096 {
            return Err(invalid("read_chunk_bytes must be at least 4096".into()));
        }
        for (index, entry) in self.collect.iter().enumerate() {
            validate_collect_entry(entry)
                .map_err(|message| invalid(format!("collect[{index}]: {message}")))?;
        }
        if let Some(etcd) = &self.etcd {
            etcd.check().map_err(invalid)?;
        }
        self.retry.check("retry", KAFKA_RESEND).map_err(invalid)?;
        Ok(())
    }
}

/// Checks one collect entry; the error says what is wrong with it.
pub fn validate_collect_entry(entry: &CollectEntry) -> Result<(), String> {
    if !entry.path.starts_with('/') {
        return Err(format!("path {:?} must be absolute", entry.path));
    }
    glob::Pattern::new(&entry.path)
        .map_err(|e| format!("path {:?} is not a glob: {e}", entry.path))?;
    for exclude in &entry.exclude {
        glob::Pattern::new(exclude)
            .map_err(|e| format!("exclude {exclude:?} is not a glob: {e}"))?;
    }
    if let Some(multiline) = &entry.multiline {
        multiline.check()?;
    }
    for name in entry.fields.keys() {
        if name.trim().is_empty()
            || crate::record::field::ALL.contains(&name.as_str())
            || name == "topic"
        {
            return Err(format!(
                "fields: {name:?} is empty or a field logship sets itself ({}, topic)",
                crate::record::field::ALL.join(", ")
            ));
        }
    }
    if entry.topic.trim().is_empty() {
        return Err(format!("topic for {:?} must not be empty", entry.path));
    }
    if !is_topic_name(&entry.topic) {
        return Err(format!(
            "topic {:?} is not a valid Kafka topic name",
            entry.topic
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn static_fields_cannot_name_a_field_logship_sets() {
        let with = |fields: &str| {
            AgentConfig::from_toml(&format!("{GOOD}fields = {fields}\n")).map_err(|e| e.to_string())
        };
        assert!(with(r#"{ service = "checkout", env = "prod" }"#).is_ok());
        for taken in ["id", "message", "@timestamp", "lines", "topic", ""] {
            let error = with(&format!("{{ \"{taken}\" = \"x\" }}")).unwrap_err();
            assert!(error.contains("fields"), "{taken}: {error}");
        }
    }

    const GOOD: &str = r#"
        host = "web-01"
        data_dir = "/tmp/x"
        [kafka]
        brokers = "127.0.0.1:9092"
        [[collect]]
        path = "/var/log/nginx/*.log"
        topic = "web_log"
    "#;

    #[test]
    fn contract_example_parses_with_defaults() {
        let config = AgentConfig::from_toml(GOOD).unwrap();
        assert_eq!(config.host_name(), "web-01");
        assert_eq!(config.collect.len(), 1);
        assert_eq!(config.collect[0].topic, "web_log");
        assert_eq!(config.start_position, StartPosition::Beginning);
        assert_eq!(config.max_line_bytes, 1024 * 1024);
    }

    #[test]
    fn sizes_out_of_bounds_are_rejected_by_name() {
        for (find, replace, name) in [
            (
                "data_dir",
                "max_line_bytes = 16777217\ndata_dir",
                "max_line_bytes",
            ),
            (
                "data_dir",
                "read_chunk_bytes = 16777217\ndata_dir",
                "read_chunk_bytes",
            ),
            (
                "[kafka]",
                "[kafka]\nmax_lines_per_record = 0",
                "max_lines_per_record",
            ),
            (
                "[kafka]",
                "[kafka]\nmax_inflight_bytes = 0",
                "max_inflight_bytes",
            ),
        ] {
            let text = GOOD.replacen(find, replace, 1);
            let error = AgentConfig::from_toml(&text).unwrap_err().to_string();
            assert!(error.contains(name), "{error}");
        }
        let text = GOOD.replacen("data_dir", "max_line_bytes = 16777216\ndata_dir", 1);
        assert!(AgentConfig::from_toml(&text).is_ok());
    }

    #[test]
    fn unknown_key_is_rejected_by_name() {
        let text = GOOD.replace("host = \"web-01\"", "hots = \"web-01\"");
        let error = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(error.contains("hots"), "{error}");
    }

    #[test]
    fn missing_topic_is_rejected_by_name() {
        let text = GOOD.replace("topic = \"web_log\"", "");
        let error = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(error.contains("topic"), "{error}");
    }

    #[test]
    fn relative_path_and_bad_topic_are_rejected() {
        let text = GOOD.replace("/var/log/nginx/*.log", "logs/*.log");
        let error = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(
            error.contains("collect[0]") && error.contains("absolute"),
            "{error}"
        );
        let text = GOOD.replace("web_log", "web log!");
        let error = AgentConfig::from_toml(&text).unwrap_err().to_string();
        assert!(error.contains("not a valid Kafka topic"), "{error}");
    }

    #[test]
    fn etcd_table_defaults_and_validation() {
        crate::config::credentials::assert_keys_taken::<EtcdConfig, EtcdConfig>(
            "endpoints = [\"http://e\"]\n",
        );
        let text = format!("{GOOD}\n[etcd]\nendpoints = [\"http://127.0.0.1:2379\"]\n");
        let config = AgentConfig::from_toml(&text).unwrap();
        let etcd = config.etcd.unwrap();
        assert_eq!(etcd.connection.prefix, "/logship");
        assert_eq!(etcd.allowed_paths, vec!["/var/log".to_string()]);
        assert!(AgentConfig::from_toml(GOOD).unwrap().etcd.is_none());
        let bad = format!("{text}allowed_paths = [\"var/log\"]\n");
        let error = AgentConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(error.contains("etcd.allowed_paths"), "{error}");
        let bad = text.replace("endpoints = [\"http://127.0.0.1:2379\"]", "endpoints = []");
        let error = AgentConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(error.contains("etcd.endpoints"), "{error}");
        let bad = format!("{text}prefx = \"/x\"\n");
        let error = AgentConfig::from_toml(&bad).unwrap_err().to_string();
        assert!(error.contains("prefx"), "{error}");
    }

    #[test]
    fn unwritable_data_dir_is_rejected() {
        let dir = tempfile::tempdir().unwrap();
        let blocker = dir.path().join("file");
        std::fs::write(&blocker, b"x").unwrap();
        let config_path = dir.path().join("agent.toml");
        let text = GOOD.replace("/tmp/x", &blocker.join("sub").display().to_string());
        std::fs::write(&config_path, text).unwrap();
        let error = AgentConfig::load(&config_path).unwrap_err().to_string();
        assert!(error.contains("data_dir"), "{error}");
    }
}
