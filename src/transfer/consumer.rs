//! The transfer's Kafka consumer: a group member that never commits on its own (its settings:
//! [`crate::kafka::consumer::client_config`]).
//!
//! The transfer commits explicit offsets taken from the commit watermark
//! ([`crate::transfer::watermark`]), which never passes a record
//! Elasticsearch has not acknowledged. The rebalance hooks of [`ConsumerHooks`] keep the
//! watermark in step with the assignment:
//!
//! - on **revoke** (before the partitions are given up) the done prefix of each revoked partition
//!   is committed synchronously, then the partition's watermark is dropped, so completions that
//!   still arrive for it are ignored and its next owner starts exactly after what is done;
//! - on **assign** each partition gets a fresh watermark epoch (and is paused at once if the
//!   transfer is applying backpressure).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use rdkafka::consumer::{
    BaseConsumer, CommitMode, Consumer, ConsumerContext, Rebalance, StreamConsumer,
};
use rdkafka::error::{KafkaError, KafkaResult};
use rdkafka::{ClientContext, Offset, Statistics, TopicPartitionList};

use super::events::TransferEvents;
use super::watermark::{lock, CommitPoint, Watermarks};
use crate::config::TransferKafkaConfig;
use crate::kafka::consumer::client_config;
use crate::telemetry::names;

/// The consumer type of the transfer.
pub type TransferConsumer = StreamConsumer<ConsumerHooks>;

/// Rebalance callbacks tying the consumer to the commit watermark.
pub struct ConsumerHooks {
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
    paused: Arc<AtomicBool>,
}

impl ConsumerHooks {
    /// Hooks over the shared watermark; `paused` says whether newly assigned partitions must be
    /// paused at once.
    pub fn new(
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
        paused: Arc<AtomicBool>,
    ) -> ConsumerHooks {
        ConsumerHooks {
            marks,
            events,
            paused,
        }
    }
}

impl ClientContext for ConsumerHooks {
    /// librdkafka's client-level errors (brokers unreachable, ...) are transient: the client
    /// reconnects by itself. They go to the events (throttled there) instead of one error line
    /// each, which would be dozens per second while Kafka is down.
    fn error(&self, error: KafkaError, reason: &str) {
        let error = format!("{error}: {reason}");
        self.events.client_error(&error);
        self.events.consumer_error(&error);
    }

    /// Broker reachability (health) and the lag of every partition this consumer fetches.
    fn stats(&self, statistics: Statistics) {
        self.events
            .brokers_up(crate::kafka::brokers_up(&statistics));
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a negative lag is unknown.
                if *partition < 0 || !stats.desired || stats.consumer_lag < 0 {
                    continue;
                }
                metrics::gauge!(
                    names::TRANSFER_CONSUMER_LAG,
                    "topic" => topic.clone(),
                    "partition" => partition.to_string()
                )
                .set(stats.consumer_lag as f64);
            }
        }
    }
}

impl ConsumerContext for ConsumerHooks {
    fn pre_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        match rebalance {
            Rebalance::Revoke(partitions) => {
                let commits: Vec<CommitPoint> = {
                    let mut marks = lock(&self.marks);
                    partitions
                        .elements()
                        .iter()
                        .filter_map(|p| marks.revoke(p.topic(), p.partition()))
                        .collect()
                };
                tracing::info!(
                    partitions = partitions.count(),
                    committing = commits.len(),
                    "partitions revoked; committing what is done"
                );
                if commits.is_empty() {
                    return;
                }
                if consumer.assignment_lost() {
                    tracing::warn!(
                        "assignment lost (session timed out); the commit may be refused"
                    );
                }
                match commit_list(&commits) {
                    Ok(list) => match consumer.commit(&list, CommitMode::Sync) {
                        Ok(()) => self.events.committed(commits.len()),
                        Err(error) => self
                            .events
                            .commit_failed(&format!("commit on revoke: {error}")),
                    },
                    Err(error) => self.events.commit_failed(&error.to_string()),
                }
            }
            Rebalance::Assign(partitions) => {
                let mut marks = lock(&self.marks);
                for p in partitions.elements() {
                    marks.assign(p.topic(), p.partition());
                }
                tracing::info!(partitions = partitions.count(), "partitions assigned");
            }
            Rebalance::Error(error) => self
                .events
                .consumer_error(&format!("rebalance error: {error}")),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if self.paused.load(Ordering::SeqCst) && partitions.count() > 0 {
                if let Err(error) = consumer.pause(partitions) {
                    self.events
                        .consumer_error(&format!("cannot pause new partitions: {error}"));
                }
            }
        }
    }
}

/// Creates the consumer (it subscribes nothing yet).
pub fn create(
    config: &TransferKafkaConfig,
    hooks: ConsumerHooks,
) -> Result<TransferConsumer, KafkaError> {
    client_config(config)
        .map_err(|e| KafkaError::ClientCreation(e.to_string()))?
        .create_with_context(hooks)
}

/// A topic-partition list with the offsets of `commits`.
pub fn commit_list(commits: &[CommitPoint]) -> KafkaResult<TopicPartitionList> {
    let mut list = TopicPartitionList::with_capacity(commits.len());
    for commit in commits {
        list.add_partition_offset(
            &commit.topic,
            commit.partition,
            Offset::Offset(commit.offset),
        )?;
    }
    Ok(list)
}
