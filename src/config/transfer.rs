//! The transfer's configuration file (`logship transfer --config transfer.toml`).
//!
//! What users write is checked here once: unknown keys are rejected by name, the index name
//! template is parsed and rendered for every configured topic, and the librdkafka options that
//! the commit rule depends on cannot be overridden. Every key is documented in
//! `docs/config.md` (section "Transfer").

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde::Deserialize;

use super::credentials::{Refuse, TableKeys};
use super::es_access::{EsAccess, EsConnection};
use super::{is_topic_name, load_toml, ConfigError, Millis, RetryConfig};
use crate::backoff::BackoffPolicy;
use crate::config::index_name::IndexNameTemplate;
use crate::config::parse::ParseConfig;
use crate::config::retention::Retention;

/// librdkafka properties the transfer sets itself; `kafka.options` may not override them,
/// because the commit rule (commit only what Elasticsearch acknowledged) depends on them.
pub const PROTECTED_KAFKA_OPTIONS: &[&str] = &[
    "bootstrap.servers",
    "metadata.broker.list",
    "group.id",
    "group.instance.id",
    "enable.auto.commit",
    "enable.auto.offset.store",
    "enable.partition.eof",
];

/// Kafka consumer side of the transfer.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferKafkaConfig {
    /// Comma-separated `host:port` bootstrap brokers.
    pub brokers: String,
    /// Consumer group id. Transfers with the same group share the partitions.
    pub group: String,
    /// Static group membership (`group.instance.id`): the name this transfer is a member of
    /// the group under, so that when it restarts (after a crash, an upgrade) it takes its
    /// partitions back at once instead of after the session timeout. Absent: derived from
    /// the host and the config file's path when loaded
    /// (`logship-transfer-{host}-{8 hex digits}`); `""`: dynamic membership. Two running
    /// transfers must never share one: the older is fenced.
    #[serde(default)]
    pub group_instance_id: Option<String>,
    /// Topics to consume (plain names; each must render to a valid index name).
    pub topics: Vec<String>,
    /// How often offsets that Elasticsearch acknowledged are committed (they are also committed
    /// on every partition revocation and at shutdown).
    #[serde(default = "default_commit_interval_ms")]
    pub commit_interval_ms: Millis,
    /// How long the consumer may be without a group coordinator, without an assignment, with
    /// a commit unanswered, or without fetching while its partitions have records it has not
    /// read (and nothing holds it back), before the transfer calls it a stall: `/health` turns
    /// 503 with the reason, a warning says so, and the consumer is recreated and rejoins
    /// (committing only what is indexed, as always), again with backoff while it lasts. 0 turns
    /// the watch off.
    #[serde(default = "super::default_stall_timeout_ms")]
    pub stall_timeout_ms: Millis,
    /// Extra librdkafka consumer properties, passed through verbatim (for example
    /// `session.timeout.ms`, `auto.offset.reset`, security settings). The keys in
    /// [`PROTECTED_KAFKA_OPTIONS`] are rejected.
    #[serde(default)]
    pub options: BTreeMap<String, String>,
    /// `[kafka.tls]`: TLS to the brokers.
    #[serde(default)]
    pub tls: Option<crate::config::kafka_security::KafkaTls>,
    /// `[kafka.sasl]`: SASL authentication.
    #[serde(default)]
    pub sasl: Option<crate::config::kafka_security::KafkaSasl>,
}

/// Elasticsearch side of the transfer: the connection (shared with the console) and where
/// the documents go. Its `Debug` form hides an inline password.
#[derive(Debug, Clone, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct ElasticsearchConfig {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<ElasticsearchConfig>,
    /// `url`, the CA and the credentials (docs/security.md); `request_timeout_ms` defaults to
    /// 60 s here (a request that times out is retried).
    #[serde(flatten)]
    pub connection: EsConnection,
    /// Where the documents go: `index`, `dlq_index`, and the templates.
    #[serde(flatten)]
    pub indices: EsIndices,
}

/// The transfer's own keys of `[elasticsearch]`: where the documents go.
#[derive(Debug, Clone, Deserialize)]
pub struct EsIndices {
    /// Index name template: `{topic}` and the strftime parts `%Y %m %d %H` (`%%` for a `%`),
    /// the time taken from each record's own `@timestamp` in UTC.
    pub index: String,
    /// Index that receives records Elasticsearch rejected for good (mapping or parse errors).
    /// May carry `%Y %m %d %H` (no `{topic}`), rendered from the Kafka timestamp of the
    /// record dead-lettered, so that `dlq_retention` can delete old dead letters.
    #[serde(default = "default_dlq_index")]
    pub dlq_index: String,
    /// How long a data index is kept after the period its name dates ends (`"30d"`, `"12h"`,
    /// `"forever"`). Absent: 30 days, or forever with `manage_templates = false` (whoever
    /// manages the templates manages the lifecycle, unless this is set).
    #[serde(default)]
    pub retention: Option<Retention>,
    /// How often expired indices are looked for (also once at start).
    #[serde(default = "default_retention_check_ms")]
    pub retention_check_ms: Millis,
    /// How long a dead-letter index whose name carries a date is kept (absent: 90 days, or
    /// forever with `manage_templates = false`). An undated `dlq_index` is never deleted.
    #[serde(default)]
    pub dlq_retention: Option<Retention>,
    /// Whether to put the index templates (data index and dead-letter index) at startup.
    #[serde(default = "default_true")]
    pub manage_templates: bool,
    /// Priority of the index templates the transfer puts.
    #[serde(default = "default_template_priority")]
    pub template_priority: u32,
    /// Primary shards of each data index the template shapes (absent: Elasticsearch's default,
    /// 1). On a cluster, about one per data node spreads the indexing.
    #[serde(default)]
    pub shards: Option<u32>,
    /// Replicas of each shard of the data indices (absent: Elasticsearch's default, 1). With 0
    /// a node lost takes its shards' documents with it until it is back.
    #[serde(default)]
    pub replicas: Option<u32>,
}

/// `elasticsearch.retention` when absent and the transfer manages the templates.
pub const DEFAULT_RETENTION: Retention = Retention::For(Duration::from_secs(30 * 86_400));
/// `elasticsearch.dlq_retention` when absent and the transfer manages the templates.
pub const DEFAULT_DLQ_RETENTION: Retention = Retention::For(Duration::from_secs(90 * 86_400));

impl EsIndices {
    /// How long data indices are kept: `retention`, else [`DEFAULT_RETENTION`] when the
    /// transfer manages the templates, else forever.
    pub fn data_retention(&self) -> Retention {
        self.retention.unwrap_or(if self.manage_templates {
            DEFAULT_RETENTION
        } else {
            Retention::Forever
        })
    }

    /// How long dated dead-letter indices are kept (as [`EsIndices::data_retention`], with
    /// [`DEFAULT_DLQ_RETENTION`]).
    pub fn dlq_retention(&self) -> Retention {
        self.dlq_retention.unwrap_or(if self.manage_templates {
            DEFAULT_DLQ_RETENTION
        } else {
            Retention::Forever
        })
    }

    /// The parsed `dlq_index` (checked at load).
    pub fn dlq_template(&self) -> Result<IndexNameTemplate, String> {
        let template = IndexNameTemplate::parse(&self.dlq_index)
            .map_err(|e| format!("elasticsearch.dlq_index: {e}"))?;
        if template.uses_topic() {
            return Err(
                "elasticsearch.dlq_index cannot hold {topic}: one dead-letter index takes \
                 every topic's rejects"
                    .into(),
            );
        }
        template
            .check_renders("")
            .map_err(|e| format!("elasticsearch.dlq_index: {e}"))?;
        Ok(template)
    }
}

/// The most primary shards `elasticsearch.shards` takes (Elasticsearch's own limit).
pub const MAX_SHARDS: u32 = 1024;

impl TableKeys for ElasticsearchConfig {
    fn keys() -> Vec<&'static str> {
        let mut keys = EsConnection::keys();
        keys.extend([
            "index",
            "dlq_index",
            "manage_templates",
            "template_priority",
            "shards",
            "replicas",
            "retention",
            "retention_check_ms",
            "dlq_retention",
        ]);
        keys
    }
}

/// The transfer's timeout of one Elasticsearch request when `request_timeout_ms` is absent.
pub const ES_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

impl ElasticsearchConfig {
    /// The URL, CA and credentials, checked together (see [`EsAccess::new`]).
    pub fn access(&self) -> Result<EsAccess, String> {
        self.connection.access(ES_REQUEST_TIMEOUT)
    }
}

/// When a batch of records is sent as one `_bulk` request.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchConfig {
    /// A batch is sent when it holds this many documents.
    #[serde(default = "default_max_docs")]
    pub max_docs: usize,
    /// A batch is sent when its request body reaches this many bytes.
    #[serde(default = "default_max_bytes")]
    pub max_bytes: usize,
    /// A batch is sent at the latest this long after its first record arrived.
    #[serde(default = "default_max_wait_ms")]
    pub max_wait_ms: Millis,
    /// How many `_bulk` requests may be in flight (or retrying) at once; when all are busy the
    /// consumer pauses its partitions (and keeps its group membership).
    #[serde(default = "default_max_inflight_bulks")]
    pub max_inflight_bulks: usize,
}

impl Default for BatchConfig {
    fn default() -> Self {
        BatchConfig {
            max_docs: default_max_docs(),
            max_bytes: default_max_bytes(),
            max_wait_ms: default_max_wait_ms(),
            max_inflight_bulks: default_max_inflight_bulks(),
        }
    }
}

/// Retries of requests Elasticsearch did not accept, when `[retry]` does not say otherwise:
/// 100 ms, doubling, up to 30 s.
pub const ES_RETRY: BackoffPolicy =
    BackoffPolicy::new(Duration::from_millis(100), Duration::from_secs(30));

/// The whole transfer configuration.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TransferConfig {
    /// Kafka consumer settings.
    pub kafka: TransferKafkaConfig,
    /// Elasticsearch settings: where log records go (absent: a transfer serving metrics only;
    /// a log record it receives goes to `influxdb.dlq_topic`).
    #[serde(default)]
    pub elasticsearch: Option<ElasticsearchConfig>,
    /// InfluxDB settings: where metrics records (header `logship-kind: metrics`) go (absent: a
    /// metrics record is dead-lettered to `elasticsearch.dlq_index`).
    #[serde(default)]
    pub influxdb: Option<super::influx::InfluxDbConfig>,
    /// Batching of `_bulk` requests.
    #[serde(default)]
    pub batch: BatchConfig,
    /// Retry backoff.
    #[serde(default)]
    pub retry: RetryConfig,
    /// How the lines of some topics are parsed into fields (`[[parse]]` tables).
    #[serde(default)]
    pub parse: Vec<ParseConfig>,
    /// On SIGTERM, how long to wait for in-flight bulk requests before committing what is done
    /// and exiting (what is not done then is consumed again by the next owner). The whole
    /// shutdown stays within this, plus at most 7 s for the final commit and leaving the group
    /// when Kafka is slow or away.
    #[serde(default = "default_shutdown_timeout_ms")]
    pub shutdown_timeout_ms: Millis,
    /// Address of the HTTP endpoint serving `/metrics` and `/health` (absent: none;
    /// `--metrics-addr` overrides).
    #[serde(default)]
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Serve the endpoint over HTTPS with this certificate and key (re-read on reload).
    #[serde(default)]
    pub metrics_tls: Option<super::ListenTls>,
    /// `/health` answers 503 once a condition (Kafka unreachable, Elasticsearch failing) lasts
    /// this long.
    #[serde(default = "super::default_health_grace_ms")]
    pub health_grace_ms: Millis,
}

/// The default `kafka.group_instance_id`: the host, and a digest of the config file's
/// absolute path (two transfers of one host with their own config files are two members).
pub fn default_group_instance_id(host: &str, config: &Path) -> String {
    let path = std::fs::canonicalize(config).unwrap_or_else(|_| config.to_path_buf());
    let digest = crc32fast::hash(path.as_os_str().as_encoded_bytes());
    let host: String = host
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_') {
                c
            } else {
                '_'
            }
        })
        .collect();
    format!("logship-transfer-{host}-{digest:08x}")
}

fn default_commit_interval_ms() -> Millis {
    Millis::new(1000)
}
fn default_retention_check_ms() -> Millis {
    Millis::new(3_600_000)
}
fn default_dlq_index() -> String {
    "logship-dlq".to_string()
}
fn default_true() -> bool {
    true
}
fn default_template_priority() -> u32 {
    200
}
fn default_max_docs() -> usize {
    2000
}
fn default_max_bytes() -> usize {
    5 * 1024 * 1024
}
fn default_max_wait_ms() -> Millis {
    // Under load batches fill up (max_docs, max_bytes) long before; at a trickle this bounds the
    // time to searchable: max_wait_ms + the index refresh (1 s) + a poll. 1000 gave a p99 of
    // 2.0 s at 1,000 lines/s (docs/bench.md).
    Millis::new(500)
}
fn default_max_inflight_bulks() -> usize {
    4
}
fn default_shutdown_timeout_ms() -> Millis {
    Millis::new(20_000)
}

impl TransferConfig {
    /// Reads, parses and validates `path`.
    pub fn load(path: &Path) -> Result<TransferConfig, ConfigError> {
        let mut config: TransferConfig = load_toml(path)?;
        config.check_values(&path.display().to_string())?;
        if config.kafka.group_instance_id.is_none() {
            let host = gethostname::gethostname().to_string_lossy().into_owned();
            config.kafka.group_instance_id = Some(default_group_instance_id(&host, path));
        }
        Ok(config)
    }

    /// Parses and validates TOML text.
    pub fn from_toml(text: &str) -> Result<TransferConfig, ConfigError> {
        let config: TransferConfig = toml::from_str(text).map_err(|error| ConfigError::Parse {
            path: "<inline>".into(),
            message: error.to_string(),
        })?;
        config.check_values("<inline>")?;
        Ok(config)
    }

    /// The parsed `elasticsearch.index` template, `None` without `[elasticsearch]` (validated
    /// at load, so this only fails on a config that was built without [`TransferConfig::load`]).
    pub fn index_template(&self) -> Result<Option<IndexNameTemplate>, ConfigError> {
        let Some(es) = &self.elasticsearch else {
            return Ok(None);
        };
        IndexNameTemplate::parse(&es.indices.index)
            .map(Some)
            .map_err(|error| ConfigError::Invalid {
                path: "<config>".into(),
                message: format!("elasticsearch.index: {error}"),
            })
    }

    fn check_elasticsearch(&self, es: &ElasticsearchConfig) -> Result<(), String> {
        es.access()?;
        let template = IndexNameTemplate::parse(&es.indices.index)
            .map_err(|e| format!("elasticsearch.index: {e}"))?;
        for topic in &self.kafka.topics {
            template.check_renders(topic).map_err(|e| {
                format!(
                    "elasticsearch.index {:?} for topic {topic:?}: {e}",
                    es.indices.index
                )
            })?;
        }
        let dlq = es.indices.dlq_template()?;
        if es.indices.retention_check_ms.is_zero() {
            return Err("elasticsearch.retention_check_ms must be at least 1".into());
        }
        if let Some(shards) = es.indices.shards {
            if shards == 0 || shards > MAX_SHARDS {
                return Err(format!(
                    "elasticsearch.shards = {shards}: between 1 and {MAX_SHARDS}"
                ));
            }
        }
        if (es.indices.shards.is_some() || es.indices.replicas.is_some())
            && !es.indices.manage_templates
        {
            return Err(
                "elasticsearch.shards and replicas go into the index template the transfer \
                 puts: with manage_templates = false, set them in your own template"
                    .into(),
            );
        }
        let dlq_sample = dlq
            .render("", Some(time::OffsetDateTime::UNIX_EPOCH))
            .map_err(|e| format!("elasticsearch.dlq_index: {e}"))?;
        if template.could_match(&dlq.pattern(""), &self.kafka.topics)
            || template.could_match(&dlq_sample, &self.kafka.topics)
        {
            return Err(format!(
                "elasticsearch.dlq_index {:?} falls under the data index pattern of {:?}; \
                 choose a dead-letter index name the data indices cannot take",
                es.indices.dlq_index, es.indices.index
            ));
        }
        Ok(())
    }

    fn check_values(&self, file: &str) -> Result<(), ConfigError> {
        let invalid = |message: String| ConfigError::Invalid {
            path: file.to_string(),
            message,
        };
        let kafka = &self.kafka;
        if kafka.brokers.trim().is_empty() {
            return Err(invalid("kafka.brokers must not be empty".into()));
        }
        if kafka.group.trim().is_empty() {
            return Err(invalid("kafka.group must not be empty".into()));
        }
        if kafka.topics.is_empty() {
            return Err(invalid("kafka.topics must name at least one topic".into()));
        }
        if let Some(id) = &kafka.group_instance_id {
            if id.len() > 249 || id.chars().any(|c| c.is_whitespace() || c.is_control()) {
                return Err(invalid(format!(
                    "kafka.group_instance_id {id:?} must be at most 249 characters without \
                     spaces (\"\" turns static membership off)"
                )));
            }
        }
        for topic in &kafka.topics {
            if !is_topic_name(topic) {
                return Err(invalid(format!(
                    "kafka.topics: {topic:?} is not a valid Kafka topic name"
                )));
            }
        }
        if kafka.commit_interval_ms.is_zero() {
            return Err(invalid(
                "kafka.commit_interval_ms must be at least 1".into(),
            ));
        }
        crate::config::kafka_security::check(kafka.tls.as_ref(), kafka.sasl.as_ref())
            .map_err(invalid)?;
        for key in kafka.options.keys() {
            if let Some(refusal) = crate::config::kafka_security::refused_option(key) {
                return Err(invalid(refusal));
            }
            if PROTECTED_KAFKA_OPTIONS.contains(&key.as_str()) {
                return Err(invalid(format!(
                    "kafka.options.{key:?} cannot be set: the transfer sets it itself \
                     (use kafka.brokers / kafka.group / kafka.group_instance_id for the first \
                     ones)"
                )));
            }
        }

        if self.elasticsearch.is_none() && self.influxdb.is_none() {
            return Err(invalid(
                "the transfer needs [elasticsearch] (logs), [influxdb] (metrics) or both".into(),
            ));
        }
        if let Some(influx) = &self.influxdb {
            influx.check().map_err(invalid)?;
            if kafka.topics.contains(&influx.dlq_topic) {
                return Err(invalid(format!(
                    "influxdb.dlq_topic {:?} is also in kafka.topics: refused points would be \
                     consumed and refused again, forever",
                    influx.dlq_topic
                )));
            }
        }
        if let Some(es) = &self.elasticsearch {
            self.check_elasticsearch(es).map_err(invalid)?;
        }
        let mut parsed_topics = std::collections::BTreeSet::new();
        for (n, rule) in self.parse.iter().enumerate() {
            if rule.topics.is_empty() {
                return Err(invalid(format!(
                    "parse[{n}].topics must name at least one topic"
                )));
            }
            if let Some(rule) = &rule.timestamp {
                if rule.field.is_empty() {
                    return Err(invalid(format!(
                        "parse[{n}].timestamp.field must not be empty"
                    )));
                }
            }
            for topic in &rule.topics {
                if !kafka.topics.contains(topic) {
                    return Err(invalid(format!(
                        "parse[{n}].topics: {topic:?} is not in kafka.topics"
                    )));
                }
                if !parsed_topics.insert(topic) {
                    return Err(invalid(format!(
                        "parse[{n}].topics: {topic:?} is parsed by an earlier [[parse]] too; \
                         one rule per topic"
                    )));
                }
            }
        }

        let batch = &self.batch;
        if batch.max_docs == 0 {
            return Err(invalid("batch.max_docs must be at least 1".into()));
        }
        if batch.max_bytes < 1024 {
            return Err(invalid("batch.max_bytes must be at least 1024".into()));
        }
        if batch.max_wait_ms.is_zero() {
            return Err(invalid("batch.max_wait_ms must be at least 1".into()));
        }
        if batch.max_inflight_bulks == 0 {
            return Err(invalid(
                "batch.max_inflight_bulks must be at least 1".into(),
            ));
        }
        self.retry.check("retry", ES_RETRY).map_err(invalid)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn debug_output_never_shows_the_password() {
        let config = super::TransferConfig::from_toml(
            "[kafka]\nbrokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\n\
             [elasticsearch]\nurl = \"http://e:9200\"\nindex = \"{topic}\"\n\
             username = \"u\"\npassword = \"s3cr3t-pw\"\n",
        )
        .unwrap();
        let shown = format!("{config:?}");
        assert!(!shown.contains("s3cr3t-pw"), "{shown}");
        assert!(shown.contains("<hidden>"), "{shown}");
    }

    use super::*;

    const GOOD: &str = r#"
        [kafka]
        brokers = "127.0.0.1:9092"
        group = "logship-transfer"
        topics = ["web_log"]
        [elasticsearch]
        url = "http://127.0.0.1:9200"
        index = "{topic}"
    "#;

    fn error_of(text: &str) -> String {
        TransferConfig::from_toml(text).unwrap_err().to_string()
    }

    #[test]
    fn contract_example_parses_with_defaults() {
        let config = TransferConfig::from_toml(GOOD).unwrap();
        assert_eq!(config.kafka.topics, vec!["web_log".to_string()]);
        assert_eq!(
            config.elasticsearch.as_ref().unwrap().indices.dlq_index,
            "logship-dlq"
        );
        assert_eq!(config.batch.max_docs, 2000);
        assert_eq!(config.batch.max_inflight_bulks, 4);
        assert_eq!(config.kafka.commit_interval_ms, Millis::new(1000));
        assert!(
            config
                .elasticsearch
                .as_ref()
                .unwrap()
                .indices
                .manage_templates
        );
        assert!(config.kafka.options.is_empty());
    }

    #[test]
    fn retention_defaults_follow_who_manages_the_templates() {
        let plain = TransferConfig::from_toml(GOOD).unwrap();
        let indices = &plain.elasticsearch.as_ref().unwrap().indices;
        assert_eq!(indices.data_retention(), DEFAULT_RETENTION);
        assert_eq!(indices.dlq_retention(), DEFAULT_DLQ_RETENTION);
        assert_eq!(indices.retention_check_ms, Millis::new(3_600_000));
        let own = TransferConfig::from_toml(&format!(
            "{GOOD}manage_templates = false
"
        ))
        .unwrap();
        let indices = &own.elasticsearch.as_ref().unwrap().indices;
        assert_eq!(indices.data_retention(), Retention::Forever);
        assert_eq!(indices.dlq_retention(), Retention::Forever);
        let told = TransferConfig::from_toml(&format!(
            "{GOOD}manage_templates = false\nretention = \"7d\"\n"
        ))
        .unwrap();
        let indices = &told.elasticsearch.as_ref().unwrap().indices;
        assert_eq!(
            indices.data_retention(),
            Retention::For(Duration::from_secs(7 * 86_400))
        );
        assert!(error_of(&format!("{GOOD}retention = \"30\"\n")).contains("\"forever\""));
        assert!(error_of(&format!("{GOOD}retention = \"10m\"\n")).contains("shorter than an hour"));
        assert!(error_of(&format!("{GOOD}retention_check_ms = 0\n")).contains("at least 1"));
        assert!(error_of(&format!("{GOOD}dlq_index = \"dlq-{{topic}}\"\n"))
            .contains("cannot hold {topic}"));
        assert!(error_of(&format!("{GOOD}dlq_index = \"dlq-%j\"\n")).contains("%j"));
        // A dated dead-letter index the data pattern would take is refused like a plain one.
        assert!(error_of(&format!("{GOOD}dlq_index = \"web_log\"\n")).contains("falls under"));
        let dated =
            TransferConfig::from_toml(&format!("{GOOD}dlq_index = \"logship-dlq-%Y.%m\"\n"))
                .unwrap();
        let indices = &dated.elasticsearch.as_ref().unwrap().indices;
        assert!(indices.dlq_template().unwrap().uses_time());
    }

    #[test]
    fn shards_and_replicas_are_checked() {
        let shaped =
            TransferConfig::from_toml(&format!("{GOOD}shards = 3\nreplicas = 0\n")).unwrap();
        let indices = &shaped.elasticsearch.as_ref().unwrap().indices;
        assert_eq!((indices.shards, indices.replicas), (Some(3), Some(0)));
        assert!(error_of(&format!("{GOOD}shards = 0\n")).contains("between 1 and 1024"));
        assert!(error_of(&format!("{GOOD}shards = 1025\n")).contains("between 1 and 1024"));
        let own = format!("{GOOD}replicas = 2\nmanage_templates = false\n");
        assert!(error_of(&own).contains("set them in your own template"));
    }

    #[test]
    fn a_transfer_needs_a_sink_and_may_serve_metrics_alone() {
        let kafka = "[kafka]\nbrokers = \"b\"\ngroup = \"g\"\ntopics = [\"logship_metrics\"]\n";
        assert!(error_of(kafka).contains("needs [elasticsearch] (logs), [influxdb] (metrics)"));
        let metrics = format!(
            "{kafka}[influxdb]\nurl = \"http://127.0.0.1:8086\"\ndatabase = \"telegraf\"\n"
        );
        let config = TransferConfig::from_toml(&metrics).unwrap();
        assert!(config.elasticsearch.is_none());
        assert_eq!(config.influxdb.unwrap().dlq_topic, "logship_metrics_dlq");
        assert!(error_of(&format!("{metrics}dlq_topic = \"no good\"\n")).contains("dlq_topic"));
        let looping = format!("{metrics}dlq_topic = \"logship_metrics\"\n");
        assert!(error_of(&looping).contains("also in kafka.topics"));
        let both = format!("{GOOD}[influxdb]\nurl = \"http://i:8086\"\ndatabase = \"m\"\n");
        assert!(TransferConfig::from_toml(&both).unwrap().influxdb.is_some());
    }

    #[test]
    fn all_optional_keys_parse() {
        let text = format!(
            "shutdown_timeout_ms = 5000\n{GOOD}\n{}",
            r#"
            [batch]
            max_docs = 10
            max_bytes = 4096
            max_wait_ms = 50
            max_inflight_bulks = 2
            [retry]
            initial_backoff_ms = 10
            max_backoff_ms = 1000
            "#
        )
        .replace(
            "index = \"{topic}\"",
            "index = \"{topic}-%Y.%m.%d\"\ndlq_index = \"dead\"\nusername = \"u\"\npassword = \"p\"",
        )
        .replace(
            "topics = [\"web_log\"]",
            "topics = [\"web_log\"]\noptions = { \"session.timeout.ms\" = \"6000\" }",
        );
        let config = TransferConfig::from_toml(&text).unwrap();
        assert_eq!(config.batch.max_docs, 10);
        assert_eq!(config.retry.max_backoff_ms, Some(Millis::new(1000)));
        assert_eq!(
            config.elasticsearch.as_ref().unwrap().indices.dlq_index,
            "dead"
        );
        assert_eq!(config.kafka.options["session.timeout.ms"], "6000");
        assert_eq!(config.shutdown_timeout_ms, Millis::new(5000));
    }

    #[test]
    fn parse_rules_name_consumed_topics_once_each() {
        let rule =
            |topics: &str| format!("{GOOD}\n[[parse]]\ntopics = {topics}\nformat = \"json\"\n");
        let config = TransferConfig::from_toml(&rule(r#"["web_log"]"#)).unwrap();
        assert_eq!(config.parse.len(), 1);
        assert!(TransferConfig::from_toml(GOOD).unwrap().parse.is_empty());
        let error = error_of(&rule(r#"["other"]"#));
        assert!(
            error.contains("\"other\" is not in kafka.topics"),
            "{error}"
        );
        let error = error_of(&rule("[]"));
        assert!(error.contains("at least one topic"), "{error}");
        let twice = format!(
            "{}[[parse]]\ntopics = [\"web_log\"]\nformat = \"json\"\n",
            rule(r#"["web_log"]"#)
        );
        let error = error_of(&twice);
        assert!(error.contains("one rule per topic"), "{error}");
        let error = error_of(&format!(
            "{}timestamp = {{ field = \"\", format = \"unix\" }}\n",
            rule(r#"["web_log"]"#)
        ));
        assert!(
            error.contains("timestamp.field must not be empty"),
            "{error}"
        );
    }

    #[test]
    fn unknown_keys_are_rejected_by_name() {
        crate::config::credentials::assert_keys_taken::<ElasticsearchConfig, ElasticsearchConfig>(
            "url = \"http://e\"\nindex = \"{topic}\"\n",
        );
        let error = error_of(&GOOD.replace("group =", "grop ="));
        assert!(error.contains("grop"), "{error}");
        let error = error_of(&format!("{GOOD}\n[batch]\nmax_doc = 3\n"));
        assert!(error.contains("max_doc"), "{error}");
        let error = error_of(&GOOD.replace("index =", "idx ="));
        assert!(error.contains("idx"), "{error}");
    }

    #[test]
    fn protected_kafka_options_are_rejected() {
        let text = GOOD.replace(
            "topics = [\"web_log\"]",
            "topics = [\"web_log\"]\noptions = { \"enable.auto.commit\" = \"true\" }",
        );
        let error = error_of(&text);
        assert!(error.contains("enable.auto.commit"), "{error}");
        let text = GOOD.replace(
            "topics = [\"web_log\"]",
            "topics = [\"web_log\"]\noptions = { \"group.instance.id\" = \"x\" }",
        );
        assert!(error_of(&text).contains("kafka.group_instance_id"));
    }

    #[test]
    fn static_membership_is_on_by_default_named_after_the_host_and_the_config_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("transfer.toml");
        std::fs::write(&path, GOOD).unwrap();
        let id = TransferConfig::load(&path)
            .unwrap()
            .kafka
            .group_instance_id
            .unwrap();
        assert!(id.starts_with("logship-transfer-"), "{id}");
        // Stable across loads of one file, distinct for another file of the same host.
        assert_eq!(
            default_group_instance_id("h", &path),
            default_group_instance_id("h", &path)
        );
        let other = dir.path().join("other.toml");
        assert_ne!(
            default_group_instance_id("h", &path),
            default_group_instance_id("h", &other)
        );
        assert_eq!(
            default_group_instance_id("a b/c", &path).split('-').nth(2),
            Some("a_b_c")
        );
        let off = GOOD.replace("group = ", "group_instance_id = \"\"\ngroup = ");
        std::fs::write(&path, off).unwrap();
        let config = TransferConfig::load(&path).unwrap();
        assert_eq!(config.kafka.group_instance_id.as_deref(), Some(""));
        let spaced = GOOD.replace("group = ", "group_instance_id = \"a b\"\ngroup = ");
        assert!(error_of(&spaced).contains("kafka.group_instance_id"));
    }

    #[test]
    fn bad_values_are_rejected_naming_the_key() {
        let error = error_of(&GOOD.replace("topics = [\"web_log\"]", "topics = []"));
        assert!(error.contains("kafka.topics"), "{error}");
        let error = error_of(&GOOD.replace("http://127", "ftp://127"));
        assert!(error.contains("elasticsearch.url"), "{error}");
        let error = error_of(&GOOD.replace("{topic}", "{topic}-%Q"));
        assert!(
            error.contains("elasticsearch.index") && error.contains("%Q"),
            "{error}"
        );
        let error = error_of(&GOOD.replace("{topic}", "Logs-{topic}"));
        assert!(error.contains("lowercase"), "{error}");
        let error = error_of(&format!("{GOOD}\n[batch]\nmax_docs = 0\n"));
        assert!(error.contains("batch.max_docs"), "{error}");
        let error = error_of(&GOOD.replace(
            "index = \"{topic}\"",
            "index = \"{topic}\"\nusername = \"x\"",
        ));
        assert!(error.contains("password"), "{error}");
        let error = error_of(&format!(
            "{GOOD}\n[retry]\ninitial_backoff_ms = 500\nmax_backoff_ms = 100\n"
        ));
        assert!(error.contains("retry.max_backoff_ms"), "{error}");
    }

    #[test]
    fn dlq_index_inside_the_data_pattern_is_rejected() {
        let text = GOOD.replace(
            "index = \"{topic}\"",
            "index = \"logs-{topic}-%Y\"\ndlq_index = \"logs-web_log-dlq\"",
        );
        let error = error_of(&text);
        assert!(error.contains("dlq_index"), "{error}");
        let text = GOOD.replace(
            "index = \"{topic}\"",
            "index = \"{topic}\"\ndlq_index = \"web_log\"",
        );
        let error = error_of(&text);
        assert!(error.contains("dlq_index"), "{error}");
    }
}
