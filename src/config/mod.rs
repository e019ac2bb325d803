//! Configuration as users write it (TOML), validated once at the edge.
//!
//! Every struct here rejects unknown keys, so a typo stops startup with a message naming the key
//! instead of silently running with a default. Runtime code receives these values only after
//! [`AgentConfig::load`] / [`TransferConfig::load`] validated them. Every key is documented in
//! `docs/config.md`.

mod agent;
pub mod alert;
mod console;
pub mod credentials;
pub mod es_access;
pub mod etcd_access;
pub mod index_name;
pub mod influx;
pub mod kafka_security;
mod listen_tls;
pub mod multiline;
pub mod parse;
pub mod retention;
pub mod secret;
mod transfer;

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Deserialize;

use crate::backoff::BackoffPolicy;

pub use agent::{
    validate_collect_entry, AgentConfig, CollectEntry, EtcdConfig, HostMetricsConfig,
    StartPosition, ETCD_RECONNECT, KAFKA_RESEND,
};
pub use alert::AlertConfig;
pub use console::{
    ConsoleConfig, ConsoleEsConfig, ConsoleKafkaConfig, ConsoleUser, EsSearch, Role,
};
pub use listen_tls::ListenTls;
pub use transfer::{
    BatchConfig, ElasticsearchConfig, EsIndices, TransferConfig, TransferKafkaConfig, ES_RETRY,
    PROTECTED_KAFKA_OPTIONS,
};

/// Upper bound of `max_line_bytes` and `read_chunk_bytes`: 16 MiB, well below the largest chunk
/// a WAL record may hold ([`crate::agent::chunk::MAX_CHUNK_DATA_BYTES`]).
pub const MAX_READ_BYTES: usize = 16 * 1024 * 1024;

/// Whether `name` is a valid Kafka topic name (1 to 249 of `[a-zA-Z0-9._-]`).
pub(crate) fn is_topic_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 249
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
}

/// A configuration that cannot be used; the message names the file and the problem.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {error}")]
    Read {
        /// The file.
        path: String,
        /// Why (in the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The TOML is malformed, has an unknown key, lacks a required key or a value has the wrong type.
    #[error("invalid config file {path}: {message}")]
    Parse {
        /// The file.
        path: String,
        /// The parser's message (with line and column).
        message: String,
    },
    /// The values parse but do not make sense together.
    #[error("invalid config file {path}: {message}")]
    Invalid {
        /// The file.
        path: String,
        /// What is wrong, naming the key.
        message: String,
    },
}

/// Reads and parses a TOML file into `T`, naming the file in any error.
pub(crate) fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|error| ConfigError::Read {
        path: path.display().to_string(),
        error,
    })?;
    toml::from_str(&text).map_err(|error| ConfigError::Parse {
        path: path.display().to_string(),
        message: error.to_string(),
    })
}

/// The Kafka producer side, shared by everything that writes to Kafka.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaProducerConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// Compression codec for produced batches (`none`, `gzip`, `snappy`, `lz4`, `zstd`).
    #[serde(default = "default_compression")]
    pub compression: String,
    /// Most lines carried by one Kafka record. A record holds one JSON object per line of one
    /// file, newline-separated (NDJSON), and is closed at this many lines or at
    /// [`crate::record::RECORD_TARGET_BYTES`], whichever comes first. `1` gives one line per record, for
    /// consumers other than the transfer that expect a single JSON object per record.
    #[serde(default = "default_max_lines_per_record")]
    pub max_lines_per_record: usize,
    /// Source bytes of chunks sent and not yet acknowledged, at most (one chunk always goes).
    /// librdkafka holds a copy of every unacknowledged record (~2.7× the source as JSON), so
    /// this bounds the producer's memory; 1 MiB keeps a broker with a round trip of a few
    /// milliseconds busy. Raise it for a distant broker: the agent ships at most about this
    /// much per round trip.
    #[serde(default = "default_max_inflight_bytes")]
    pub max_inflight_bytes: usize,
    /// How long records may wait on Kafka (in flight, or pending in the WAL) with neither an
    /// acknowledgement nor an error before the agent calls it a stall: `/health` turns 503
    /// naming Kafka and what waits, a warning says so, and the producer is recreated and the
    /// WAL resent from its oldest unacknowledged record (ids keep that exactly once), again
    /// with backoff while it lasts. 0 turns the watch off.
    #[serde(default = "default_stall_timeout_ms")]
    pub stall_timeout_ms: Millis,
    /// Extra librdkafka properties, passed through verbatim. The durability settings
    /// (`enable.idempotence`, `acks`, `message.timeout.ms`) cannot be overridden here, nor
    /// TLS and SASL settings ([`kafka_security::refused_option`]).
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `[kafka.tls]`: TLS to the brokers.
    #[serde(default)]
    pub tls: Option<kafka_security::KafkaTls>,
    /// `[kafka.sasl]`: SASL authentication.
    #[serde(default)]
    pub sasl: Option<kafka_security::KafkaSasl>,
}

/// A duration written in milliseconds in a config file (the `*_ms` keys), converted to a
/// [`Duration`] once, when the file is read.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize)]
#[serde(from = "u64")]
pub struct Millis(Duration);

impl From<u64> for Millis {
    fn from(ms: u64) -> Millis {
        Millis(Duration::from_millis(ms))
    }
}

impl Millis {
    /// `ms` milliseconds.
    pub const fn new(ms: u64) -> Millis {
        Millis(Duration::from_millis(ms))
    }

    /// The duration.
    pub const fn get(self) -> Duration {
        self.0
    }

    /// Whether it is zero.
    pub const fn is_zero(self) -> bool {
        self.0.is_zero()
    }
}

/// How long to wait between attempts of something that is retried until it succeeds (a
/// `[retry]` table): exponential backoff with jitter ([`crate::backoff`]). Retries never end
/// and never skip a record; only the delay is bounded. A bound left out takes the default of
/// the place the table configures.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetryConfig {
    /// Delay before the first retry; doubled after each failed attempt.
    #[serde(default)]
    pub initial_backoff_ms: Option<Millis>,
    /// Upper bound of the delay.
    #[serde(default)]
    pub max_backoff_ms: Option<Millis>,
}

impl RetryConfig {
    /// The policy, with `defaults` for what the table leaves out.
    pub fn policy(&self, defaults: BackoffPolicy) -> BackoffPolicy {
        BackoffPolicy::new(
            self.initial_backoff_ms
                .map_or(defaults.initial, Millis::get),
            self.max_backoff_ms.map_or(defaults.max, Millis::get),
        )
    }

    /// Checks the bounds (with `defaults` applied); the error names the keys under `table`.
    pub fn check(&self, table: &str, defaults: BackoffPolicy) -> Result<(), String> {
        let policy = self.policy(defaults);
        if policy.initial.is_zero() {
            return Err(format!("{table}.initial_backoff_ms must be at least 1"));
        }
        if policy.max < policy.initial {
            return Err(format!(
                "{table}.max_backoff_ms must not be below {table}.initial_backoff_ms"
            ));
        }
        Ok(())
    }
}

/// Default `health_grace_ms`: 30 s.
fn default_health_grace_ms() -> Millis {
    Millis::new(30_000)
}

/// Default `kafka.max_inflight_bytes`: 1 MiB.
fn default_max_inflight_bytes() -> usize {
    1024 * 1024
}

/// Default `kafka.stall_timeout_ms` of both roles: 60 s.
pub(crate) fn default_stall_timeout_ms() -> Millis {
    Millis::new(60_000)
}

/// Default `kafka.max_lines_per_record`.
fn default_max_lines_per_record() -> usize {
    1000
}

fn default_compression() -> String {
    "lz4".to_string()
}
