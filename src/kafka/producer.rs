//! A Kafka producer that never gives up on a record and reports delivery per batch.
//!
//! Durability settings are fixed here and cannot be overridden by configuration:
//! `enable.idempotence=true` (no duplicates or reordering from the client's own retries),
//! `acks=all` (the record is on every in-sync replica before it counts) and
//! `message.timeout.ms=0` (librdkafka retries forever instead of failing a record after a
//! timeout; an outage only makes the agent wait).
//!
//! Records are sent in *batches* (the agent's batch is one WAL chunk). The caller registers how
//! many records a batch has, sends them, and later collects one [`BatchOutcome`] per batch: done
//! when the broker acknowledged every record, failed if any record failed for good. Counting in
//! the delivery callback avoids a future per record, which costs too much at a million lines per
//! second.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::error::{KafkaError, RDKafkaErrorCode};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::Statistics;

use crate::config::secret::SecretError;
use crate::config::KafkaProducerConfig;
use crate::sync::{lock, wait_timeout};
use crate::telemetry::names;

/// Producer properties that configuration may not override.
const FIXED: &[(&str, &str)] = &[
    ("enable.idempotence", "true"),
    ("acks", "all"),
    ("message.timeout.ms", "0"),
];

/// Id of a batch of records whose deliveries are counted together.
pub type BatchId = u64;

/// How a batch ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum BatchOutcome {
    /// Every record was acknowledged by the broker (acks=all).
    Delivered(BatchId),
    /// At least one record failed for good; the batch must be sent again.
    Failed(BatchId, String),
}

#[derive(Debug)]
struct Progress {
    remaining: usize,
    error: Option<String>,
    started: Instant,
}

#[derive(Default)]
struct Ledger {
    open: HashMap<BatchId, Progress>,
    finished: Vec<BatchOutcome>,
}

impl Ledger {
    fn settle(&mut self, batch: BatchId, delivered: usize, error: Option<String>) {
        let Some(progress) = self.open.get_mut(&batch) else {
            return;
        };
        progress.remaining = progress.remaining.saturating_sub(delivered);
        if error.is_some() && progress.error.is_none() {
            progress.error = error;
        }
        if progress.remaining == 0 {
            if let Some(progress) = self.open.remove(&batch) {
                self.finished.push(match progress.error {
                    None => {
                        metrics::histogram!(names::KAFKA_DELIVERY_LATENCY)
                            .record(progress.started.elapsed().as_secs_f64());
                        BatchOutcome::Delivered(batch)
                    }
                    Some(error) => BatchOutcome::Failed(batch, error),
                });
            }
        }
    }
}

/// rdkafka context: counts deliveries per batch and notices fatal errors.
pub struct DeliveryContext {
    ledger: Mutex<Ledger>,
    finished: Condvar,
    fatal: AtomicBool,
    brokers: Arc<dyn super::BrokerObserver>,
}

impl ClientContext for DeliveryContext {
    fn error(&self, error: KafkaError, reason: &str) {
        if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
            self.fatal.store(true, Ordering::SeqCst);
            tracing::error!(%error, reason, "fatal Kafka producer error");
        } else {
            tracing::warn!(%error, reason, "Kafka client error (retrying)");
        }
        self.brokers.client_error(&format!("{error}: {reason}"));
    }

    fn stats(&self, statistics: Statistics) {
        self.brokers.brokers_up(super::brokers_up(&statistics));
        self.brokers
            .brokers_waiting(super::brokers_waiting(&statistics));
    }
}

impl ProducerContext for DeliveryContext {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, batch: usize) {
        let error = match result {
            Ok(_) => None,
            Err((error, _)) => {
                metrics::counter!(names::KAFKA_DELIVERY_ERRORS).increment(1);
                if matches!(error.rdkafka_error_code(), Some(RDKafkaErrorCode::Fatal)) {
                    self.fatal.store(true, Ordering::SeqCst);
                }
                Some(error.to_string())
            }
        };
        {
            let mut ledger = lock(&self.ledger);
            ledger.settle(batch as BatchId, 1, error);
            if !ledger.finished.is_empty() {
                self.finished.notify_all();
            }
        }
    }
}

/// Why a record could not be handed to the producer.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// The producer hit a fatal error: it must be recreated and everything unacknowledged resent.
    #[error("Kafka producer is in a fatal state: {0}")]
    Fatal(String),
    /// The record was refused locally (for example larger than `message.max.bytes`).
    #[error("Kafka refused the record: {0}")]
    Refused(String),
}

/// The durable producer.
pub struct DurableProducer {
    inner: ThreadedProducer<DeliveryContext>,
}

impl DurableProducer {
    /// Creates a producer for `config`; `max_record_bytes` bounds the largest record sent;
    /// `brokers` is told how many brokers are up after each statistics report.
    pub fn new(
        config: &KafkaProducerConfig,
        max_record_bytes: usize,
        brokers: Arc<dyn super::BrokerObserver>,
    ) -> Result<Self, KafkaError> {
        let context = DeliveryContext {
            ledger: Mutex::new(Ledger::default()),
            finished: Condvar::new(),
            fatal: AtomicBool::new(false),
            brokers,
        };
        let inner = client_config(config, max_record_bytes)
            .map_err(|e| KafkaError::ClientCreation(e.to_string()))?
            .create_with_context(context)?;
        Ok(DurableProducer { inner })
    }

    /// Registers a batch of `records` records before they are sent.
    pub fn begin_batch(&self, batch: BatchId, records: usize) {
        {
            let mut ledger = lock(&self.inner.context().ledger);
            ledger.open.insert(
                batch,
                Progress {
                    remaining: records,
                    error: None,
                    started: Instant::now(),
                },
            );
            if records == 0 {
                ledger.settle(batch, 0, None);
            }
        }
    }

    /// Gives up on `unsent` records of `batch` that were never handed to the producer.
    pub fn abort_batch(&self, batch: BatchId, unsent: usize, error: String) {
        lock(&self.inner.context().ledger).settle(batch, unsent, Some(error));
    }

    /// Hands one record of `batch` with `headers` (what the record says about itself: see
    /// `crate::record::wire`) to the producer, waiting while its queue is full.
    pub fn send(
        &self,
        batch: BatchId,
        topic: &str,
        key: &[u8],
        payload: &[u8],
        headers: &[(&str, &str)],
    ) -> Result<(), SendError> {
        let mut record = BaseRecord::with_opaque_to(topic, batch as usize)
            .key(key)
            .payload(payload);
        if !headers.is_empty() {
            let mut owned = rdkafka::message::OwnedHeaders::new_with_capacity(headers.len());
            for (key, value) in headers {
                owned = owned.insert(rdkafka::message::Header {
                    key,
                    value: Some(*value),
                });
            }
            record = record.headers(owned);
        }
        loop {
            match self.inner.send(record) {
                Ok(()) => return Ok(()),
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), back)) => {
                    if let Some(error) = self.fatal_error() {
                        return Err(SendError::Fatal(error));
                    }
                    record = back;
                    std::thread::sleep(Duration::from_millis(2));
                }
                Err((error, _)) => {
                    if let Some(fatal) = self.fatal_error() {
                        return Err(SendError::Fatal(fatal));
                    }
                    return Err(SendError::Refused(error.to_string()));
                }
            }
        }
    }

    /// Takes the outcomes of batches finished since the last call, waiting up to `wait` for one.
    pub fn take_finished(&self, wait: Duration) -> Vec<BatchOutcome> {
        let context = self.inner.context();
        let mut ledger = lock(&context.ledger);
        if ledger.finished.is_empty() && !wait.is_zero() {
            ledger = wait_timeout(&context.finished, ledger, wait);
        }
        std::mem::take(&mut ledger.finished)
    }

    /// The fatal error, if the producer is in a fatal state.
    pub fn fatal_error(&self) -> Option<String> {
        if let Some((code, reason)) = self.inner.client().fatal_error() {
            return Some(format!("{code:?}: {reason}"));
        }
        if self.inner.context().fatal.load(Ordering::SeqCst) {
            return Some("fatal error reported by librdkafka".to_string());
        }
        None
    }

    /// Waits up to `timeout` for everything queued to be delivered.
    pub fn flush(&self, timeout: Duration) {
        if let Err(error) = self.inner.flush(timeout) {
            tracing::warn!(%error, "not every record was acknowledged before the flush timeout");
        }
    }
}

/// The librdkafka configuration: user options, then our fixed durability settings on top.
pub fn client_config(
    config: &KafkaProducerConfig,
    max_record_bytes: usize,
) -> Result<ClientConfig, SecretError> {
    let mut client = ClientConfig::new();
    client
        .set("bootstrap.servers", &config.brokers)
        .set("compression.type", &config.compression)
        .set("linger.ms", "5")
        .set("statistics.interval.ms", super::STATISTICS_INTERVAL_MS)
        .set("batch.size", "1000000")
        .set("queue.buffering.max.kbytes", "32768")
        .set("queue.buffering.max.messages", "500000")
        .set(
            "message.max.bytes",
            max_record_bytes.max(1_000_000).to_string(),
        );
    for (key, value) in &config.options {
        if FIXED.iter().any(|(fixed, _)| fixed == key) {
            tracing::warn!(
                key,
                "ignoring kafka option: logship fixes it for durability"
            );
            continue;
        }
        client.set(key, value);
    }
    for (key, value) in FIXED {
        client.set(*key, *value);
    }
    super::security::apply(&mut client, config.tls.as_ref(), config.sasl.as_ref())?;
    Ok(client)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durability_settings_cannot_be_overridden() {
        let config = KafkaProducerConfig {
            brokers: "b:9092".into(),
            compression: "lz4".into(),
            max_lines_per_record: 1,
            max_inflight_bytes: 1,
            stall_timeout_ms: crate::config::Millis::new(1),
            options: [
                ("acks".to_string(), "1".to_string()),
                ("client.id".to_string(), "x".to_string()),
            ]
            .into_iter()
            .collect(),
            tls: None,
            sasl: None,
        };
        let client = client_config(&config, 10).unwrap();
        assert_eq!(client.get("acks"), Some("all"));
        assert_eq!(client.get("enable.idempotence"), Some("true"));
        assert_eq!(client.get("message.timeout.ms"), Some("0"));
        assert_eq!(client.get("client.id"), Some("x"));
    }

    #[test]
    fn ledger_finishes_batches_when_every_record_settles() {
        let mut ledger = Ledger::default();
        ledger.open.insert(
            1,
            Progress {
                remaining: 2,
                error: None,
                started: Instant::now(),
            },
        );
        ledger.open.insert(
            2,
            Progress {
                remaining: 2,
                error: None,
                started: Instant::now(),
            },
        );
        ledger.settle(1, 1, None);
        ledger.settle(2, 1, Some("boom".into()));
        assert!(ledger.finished.is_empty());
        ledger.settle(1, 1, None);
        ledger.settle(2, 1, None);
        assert_eq!(
            ledger.finished,
            vec![
                BatchOutcome::Delivered(1),
                BatchOutcome::Failed(2, "boom".into())
            ]
        );
        // Unknown batches (from a producer that was replaced) are ignored.
        ledger.settle(9, 1, None);
        assert_eq!(ledger.finished.len(), 2);
    }
}
