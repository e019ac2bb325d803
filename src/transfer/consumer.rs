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
//! - on **assign** each partition gets a fresh watermark epoch, and is paused at once if the
//!   transfer is applying backpressure — or resumed if it is not: librdkafka keeps a partition's
//!   pause across a cooperative rebalance, so a partition revoked while paused and assigned
//!   back after the pause ended would otherwise never be fetched again (seen in
//!   `tests/cluster.rs`, Elasticsearch silent while a transfer joined and left).

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

/// The consumer type of the transfer.
pub type TransferConsumer = StreamConsumer<ConsumerHooks>;

/// Rebalance callbacks tying the consumer to the commit watermark.
pub struct ConsumerHooks {
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
    paused: Arc<AtomicBool>,
    progress: Arc<ConsumerProgress>,
}

/// What the stall watch of the transfer reads about its consumer (shared by the hooks, the
/// consuming loop and the watch).
#[derive(Debug, Default)]
pub struct ConsumerProgress {
    /// The group view of the latest statistics.
    pub group: Mutex<GroupView>,
    /// Records received and commits answered so far (each one is progress).
    pub answered: std::sync::atomic::AtomicU64,
    /// Whether records are being taken (no backpressure holds them back).
    pub fetching: AtomicBool,
    /// Commits under way (periodic, or on revoke).
    pub committing: std::sync::atomic::AtomicU32,
}

impl ConsumerProgress {
    /// Kafka answered once more.
    pub fn answered(&self) {
        self.answered.fetch_add(1, Ordering::Relaxed);
    }

    /// Why the consumer waits on Kafka now, if it does.
    pub fn waiting(&self) -> Option<String> {
        let view = crate::sync::lock(&self.group).clone();
        view.waiting(self.fetching.load(Ordering::Relaxed))
            .or_else(|| {
                (self.committing.load(Ordering::Relaxed) > 0)
                    .then(|| "a commit has not been answered".to_string())
            })
    }
}

/// What the consumer's latest statistics (once a second) say of its group membership and of
/// the records its assigned partitions hold beyond what it has read.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct GroupView {
    /// Statistics have been seen (before that, nothing is known).
    pub seen: bool,
    /// librdkafka's group state (`up`: the coordinator is known and reachable).
    pub state: String,
    /// librdkafka's join state (`steady`: the member has its assignment).
    pub join_state: String,
    /// Records in the assigned partitions beyond what was read (unknown lags not counted).
    pub lag: i64,
}

impl GroupView {
    /// The view `statistics` give.
    pub fn from_statistics(statistics: &Statistics) -> GroupView {
        let lag = statistics
            .topics
            .values()
            .flat_map(|topic| topic.partitions.iter())
            .filter(|(partition, stats)| {
                **partition >= 0 && stats.desired && stats.consumer_lag > 0
            })
            .map(|(_, stats)| stats.consumer_lag)
            .sum();
        let (state, join_state) = match &statistics.cgrp {
            Some(group) => (group.state.clone(), group.join_state.clone()),
            None => (String::new(), String::new()),
        };
        GroupView {
            seen: true,
            state,
            join_state,
            lag,
        }
    }

    /// Why the consumer waits on Kafka now, if it does: no coordinator, no assignment, or
    /// records it should be fetching (`fetching`: nothing holds consumption back).
    pub fn waiting(&self, fetching: bool) -> Option<String> {
        if !self.seen {
            return Some("the consumer has not reported its group state yet".to_string());
        }
        if self.state != "up" {
            return Some(format!("no group coordinator (group state {})", self.state));
        }
        if self.join_state != "steady" {
            return Some(format!(
                "no assignment: joining the group does not finish (join state {})",
                self.join_state
            ));
        }
        if fetching && self.lag > 0 {
            return Some(format!(
                "{} records in the assigned partitions are not being fetched",
                self.lag
            ));
        }
        None
    }
}

impl ConsumerHooks {
    /// Hooks over the shared watermark; `paused` says whether newly assigned partitions must be
    /// paused at once.
    /// `progress` is given the group view of every statistics report and the commits made on
    /// revoke.
    pub fn new(
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
        paused: Arc<AtomicBool>,
        progress: Arc<ConsumerProgress>,
    ) -> ConsumerHooks {
        ConsumerHooks {
            marks,
            events,
            paused,
            progress,
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
        self.events
            .brokers_waiting(crate::kafka::brokers_waiting(&statistics));
        *crate::sync::lock(&self.progress.group) = GroupView::from_statistics(&statistics);
        for (topic, stats) in &statistics.topics {
            for (partition, stats) in &stats.partitions {
                // -1 is librdkafka's internal "unassigned" partition; a negative lag is unknown.
                if *partition < 0 || !stats.desired || stats.consumer_lag < 0 {
                    continue;
                }
                self.events
                    .partition_lag(topic, *partition, stats.consumer_lag);
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
                self.events.partitions_revoked(
                    partitions.count(),
                    commits.len(),
                    consumer.assignment_lost(),
                );
                if commits.is_empty() {
                    return;
                }
                match commit_list(&commits) {
                    Ok(list) => {
                        self.progress.committing.fetch_add(1, Ordering::Relaxed);
                        let committed = consumer.commit(&list, CommitMode::Sync);
                        self.progress.committing.fetch_sub(1, Ordering::Relaxed);
                        match committed {
                            Ok(()) => {
                                self.progress.answered();
                                self.events.committed(commits.len());
                            }
                            Err(error) => self
                                .events
                                .commit_failed(&format!("commit on revoke: {error}")),
                        }
                    }
                    Err(error) => self.events.commit_failed(&error.to_string()),
                }
            }
            Rebalance::Assign(partitions) => {
                let mut marks = lock(&self.marks);
                for p in partitions.elements() {
                    marks.assign(p.topic(), p.partition());
                }
                // Incremental (cooperative) rebalancing hands over only the partitions that
                // move: the ones owned already are still in the assignment.
                let owned = consumer.assignment().map_or(0, |owned| owned.count());
                self.events
                    .partitions_assigned(partitions.count(), owned + partitions.count());
            }
            Rebalance::Error(error) => self
                .events
                .consumer_error(&format!("rebalance error: {error}")),
        }
    }

    fn post_rebalance(&self, consumer: &BaseConsumer<Self>, rebalance: &Rebalance<'_>) {
        if let Rebalance::Assign(partitions) = rebalance {
            if partitions.count() == 0 {
                return;
            }
            let (result, what) = if self.paused.load(Ordering::SeqCst) {
                (consumer.pause(partitions), "pause")
            } else {
                (consumer.resume(partitions), "resume")
            };
            if let Err(error) = result {
                self.events
                    .consumer_error(&format!("cannot {what} new partitions: {error}"));
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

#[cfg(test)]
mod tests {
    use super::*;

    fn view(state: &str, join_state: &str, lag: i64) -> GroupView {
        GroupView {
            seen: true,
            state: state.into(),
            join_state: join_state.into(),
            lag,
        }
    }

    #[test]
    fn the_consumer_waits_on_kafka_without_a_coordinator_an_assignment_or_fetches() {
        // Nothing known yet: a new consumer counts as waiting until its first report (a
        // stall that outlasts a recreated consumer goes on).
        assert!(GroupView::default().waiting(true).is_some());
        assert_eq!(view("up", "steady", 0).waiting(true), None);
        let no_coordinator = view("wait-coord", "init", 0).waiting(true).unwrap();
        assert!(
            no_coordinator.contains("no group coordinator"),
            "{no_coordinator}"
        );
        assert!(no_coordinator.contains("wait-coord"), "{no_coordinator}");
        let joining = view("up", "wait-join", 0).waiting(true).unwrap();
        assert!(joining.contains("no assignment"), "{joining}");
        let behind = view("up", "steady", 42).waiting(true).unwrap();
        assert!(behind.contains("42 records"), "{behind}");
        // Held back by backpressure (Elasticsearch slow or down): not waiting on Kafka.
        assert_eq!(view("up", "steady", 42).waiting(false), None);
    }
}
