//! The transfer's dead-letter producer: records InfluxDB refused for good (and records no sink
//! of this transfer takes) are written to a Kafka topic, acknowledged by all in-sync replicas,
//! before their offsets may be committed.
//!
//! Not idempotent on purpose: a dead letter may be written twice (a retry after a lost
//! acknowledgement, a replay after a crash), which is harmless for a topic people inspect, while
//! an idempotent producer can fail fatally and would then have to be replaced. The transfer makes
//! a new one with every consumer (at start and after each reload), so rotated credentials are
//! used from the next round on.

use std::time::Duration;

use rdkafka::config::ClientConfig;
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::util::Timeout;

use crate::config::TransferKafkaConfig;

/// How long one dead-letter write may wait for Kafka before it is retried.
const SEND_TIMEOUT: Duration = Duration::from_secs(30);

/// Why the dead-letter producer could not be made.
#[derive(Debug, thiserror::Error)]
pub enum DeadLetterSetupError {
    /// A credentials file could not be read.
    #[error(transparent)]
    Secret(#[from] crate::config::secret::SecretError),
    /// librdkafka refused the settings.
    #[error("cannot create the dead-letter producer: {0}")]
    Kafka(#[from] rdkafka::error::KafkaError),
}

/// A producer (`acks=all`) to the transfer's brokers, with its TLS and SASL.
pub struct DeadLetters {
    producer: FutureProducer,
}

impl DeadLetters {
    /// A producer for the brokers and security settings of `config`.
    pub fn new(config: &TransferKafkaConfig) -> Result<DeadLetters, DeadLetterSetupError> {
        let mut client = ClientConfig::new();
        client
            .set("client.id", "logship-transfer-dlq")
            .set("bootstrap.servers", &config.brokers)
            .set("acks", "all")
            .set("compression.type", "lz4");
        super::security::apply(&mut client, config.tls.as_ref(), config.sasl.as_ref())?;
        Ok(DeadLetters {
            producer: client.create()?,
        })
    }

    /// Writes one record to `topic` and returns once Kafka acknowledged it (or why not).
    pub async fn send(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), String> {
        let mut owned = OwnedHeaders::new_with_capacity(headers.len());
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        let mut record = FutureRecord::<[u8], [u8]>::to(topic)
            .payload(payload)
            .headers(owned);
        if let Some(key) = key {
            record = record.key(key);
        }
        self.producer
            .send(record, Timeout::After(SEND_TIMEOUT))
            .await
            .map(|_| ())
            .map_err(|(error, _)| error.to_string())
    }
}
