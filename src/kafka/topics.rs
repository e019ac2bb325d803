//! Topic settings the transfer reads to warn about its own configuration (never to decide
//! what is written): `retention.ms` of the topics it consumes.

use std::time::Duration;

use rdkafka::admin::{AdminClient, AdminOptions, ResourceSpecifier};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;

use crate::config::TransferKafkaConfig;

/// Why topic settings could not be read.
#[derive(Debug, thiserror::Error)]
pub enum TopicConfigError {
    /// A credentials file could not be read.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::SecretError),
    /// The admin client could not be made, or the request failed.
    #[error("describing the topics' configuration: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// How long Kafka keeps the records of a topic.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TopicRetention {
    /// `retention.ms` of this many milliseconds.
    For(Duration),
    /// `retention.ms = -1`: records are kept until size limits remove them, if any.
    Unlimited,
    /// The broker did not say (no such topic, no permission to describe it).
    Unknown(String),
}

/// `retention.ms` of each of `config.topics`, asked of the brokers within `timeout`.
pub async fn retention(
    config: &TransferKafkaConfig,
    timeout: Duration,
) -> Result<Vec<(String, TopicRetention)>, TopicConfigError> {
    let mut client = ClientConfig::new();
    client
        .set("client.id", "logship-transfer-admin")
        .set("bootstrap.servers", &config.brokers);
    super::security::apply(&mut client, config.tls.as_ref(), config.sasl.as_ref())?;
    let admin: AdminClient<DefaultClientContext> = client.create()?;
    let specifiers: Vec<ResourceSpecifier<'_>> = config
        .topics
        .iter()
        .map(|topic| ResourceSpecifier::Topic(topic))
        .collect();
    let options = AdminOptions::new().request_timeout(Some(timeout));
    let answers = admin.describe_configs(&specifiers, &options).await?;
    Ok(config
        .topics
        .iter()
        .zip(answers)
        .map(|(topic, answer)| {
            let retention = match answer {
                Err(code) => TopicRetention::Unknown(code.to_string()),
                Ok(resource) => match resource
                    .get("retention.ms")
                    .and_then(|entry| entry.value.as_deref())
                    .map(str::parse::<i64>)
                {
                    Some(Ok(ms)) if ms < 0 => TopicRetention::Unlimited,
                    Some(Ok(ms)) => TopicRetention::For(Duration::from_millis(ms.unsigned_abs())),
                    Some(Err(e)) => TopicRetention::Unknown(e.to_string()),
                    None => TopicRetention::Unknown("no retention.ms".into()),
                },
            };
            (topic.clone(), retention)
        })
        .collect())
}
