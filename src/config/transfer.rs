//! The transfer's configuration file (`logship transfer --config transfer.toml`).
//! (Placeholder: filled in by the transfer work.)

use std::path::Path;

use serde::Deserialize;

use super::{load_toml, ConfigError};

/// Kafka consumer side of the transfer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferKafkaConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// Consumer group id.
    pub group: String,
    /// Topics to consume.
    pub topics: Vec<String>,
}

/// Elasticsearch side of the transfer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ElasticsearchConfig {
    /// Base URL.
    pub url: String,
    /// Index name template.
    pub index: String,
}

/// The whole transfer configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Kafka consumer settings.
    pub kafka: TransferKafkaConfig,
    /// Elasticsearch settings.
    pub elasticsearch: ElasticsearchConfig,
}

impl TransferConfig {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<TransferConfig, ConfigError> {
        load_toml(path)
    }
}
