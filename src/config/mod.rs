//! Configuration as users write it (TOML), validated once at the edge.
//!
//! Every struct here rejects unknown keys, so a typo stops startup with a message naming the key
//! instead of silently running with a default. Runtime code receives these values only after
//! [`AgentConfig::load`] / [`TransferConfig::load`] validated them. Every key is documented in
//! `docs/config.md`.

mod agent;
mod console;
pub mod index_name;
mod transfer;

use std::collections::BTreeMap;
use std::path::Path;

use serde::de::DeserializeOwned;
use serde::Deserialize;

pub use agent::{validate_collect_entry, AgentConfig, CollectEntry, EtcdConfig, StartPosition};
pub use console::{ConsoleConfig, ConsoleEsConfig};
pub use transfer::{
    BatchConfig, ElasticsearchConfig, RetryConfig, TransferConfig, TransferKafkaConfig,
    PROTECTED_KAFKA_OPTIONS,
};

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
    /// Extra librdkafka properties, passed through verbatim. The durability settings
    /// (`enable.idempotence`, `acks`, `message.timeout.ms`) cannot be overridden here.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
}

/// Default `health_grace_ms`: 30 s.
fn default_health_grace_ms() -> u64 {
    30_000
}

/// Default `kafka.max_inflight_bytes`: 1 MiB.
fn default_max_inflight_bytes() -> usize {
    1024 * 1024
}

/// Default `kafka.max_lines_per_record`.
fn default_max_lines_per_record() -> usize {
    1000
}

fn default_compression() -> String {
    "lz4".to_string()
}
