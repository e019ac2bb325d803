//! A consumer group's position, read from outside the group: its committed offsets (an
//! OffsetFetch, which does not join the group) and the partitions' watermarks. The console
//! shows the transfer's lag from it; the alert evaluator waits on it until everything Kafka
//! held at a moment is indexed.

use std::time::Duration;

use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Offset, TopicPartitionList};

use super::security;
use crate::config::kafka_security::{KafkaSasl, KafkaTls};

/// A client in `group` that never subscribes: it only reads the group's committed offsets and
/// the watermarks.
pub fn offsets_client(
    brokers: &str,
    group: &str,
    client_id: &str,
    tls: Option<&KafkaTls>,
    sasl: Option<&KafkaSasl>,
) -> Result<BaseConsumer, String> {
    let mut client = rdkafka::ClientConfig::new();
    client
        .set("bootstrap.servers", brokers)
        .set("group.id", group)
        .set("client.id", client_id)
        .set("enable.auto.commit", "false");
    security::apply(&mut client, tls, sasl).map_err(|e| e.to_string())?;
    client.create().map_err(|e| e.to_string())
}

/// One partition of a topic the group consumes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PartitionPosition {
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (`None`: the group committed nothing on it).
    pub committed: Option<i64>,
    /// The partition's first offset still held.
    pub low: i64,
    /// Its end offset (the next record's).
    pub end: i64,
}

impl PartitionPosition {
    /// Whether every record below `end` (an end offset read earlier) is committed: a partition
    /// without a commit has committed nothing, unless it holds nothing below `end`.
    pub fn committed_through(&self, end: i64) -> bool {
        match self.committed {
            Some(committed) => committed >= end,
            None => self.low >= end,
        }
    }
}

/// Every partition of every topic on which `consumer`'s group has committed an offset on at
/// least one partition, and of every existing topic in `topics` whether committed on or not
/// (blocking; each request within `timeout`). Internal topics (`__…`) are left out.
pub fn group_positions(
    consumer: &BaseConsumer,
    topics: &[String],
    timeout: Duration,
) -> Result<Vec<PartitionPosition>, String> {
    let metadata = consumer
        .fetch_metadata(None, timeout)
        .map_err(|e| format!("Kafka metadata: {e}"))?;
    let mut partitions = TopicPartitionList::new();
    for topic in metadata.topics() {
        if topic.name().starts_with("__") {
            continue;
        }
        for partition in topic.partitions() {
            partitions.add_partition(topic.name(), partition.id());
        }
    }
    let committed = consumer
        .committed_offsets(partitions, timeout)
        .map_err(|e| format!("the group's committed offsets: {e}"))?;
    let consumed: std::collections::BTreeSet<String> = committed
        .elements()
        .iter()
        .filter(|e| {
            matches!(e.offset(), Offset::Offset(_)) || topics.iter().any(|t| t == e.topic())
        })
        .map(|e| e.topic().to_string())
        .collect();
    let mut positions = Vec::new();
    for element in committed.elements() {
        if !consumed.contains(element.topic()) {
            continue;
        }
        let (low, end) = consumer
            .fetch_watermarks(element.topic(), element.partition(), timeout)
            .map_err(|e| {
                format!(
                    "end offset of {}/{}: {e}",
                    element.topic(),
                    element.partition()
                )
            })?;
        positions.push(PartitionPosition {
            topic: element.topic().to_string(),
            partition: element.partition(),
            committed: match element.offset() {
                Offset::Offset(offset) => Some(offset),
                _ => None,
            },
            low,
            end,
        });
    }
    positions.sort_by(|a, b| (&a.topic, a.partition).cmp(&(&b.topic, b.partition)));
    Ok(positions)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_partition_without_a_commit_has_indexed_nothing_it_holds() {
        let at = |committed, low, end| PartitionPosition {
            topic: "t".into(),
            partition: 0,
            committed,
            low,
            end,
        };
        assert!(at(Some(10), 0, 12).committed_through(10));
        assert!(!at(Some(9), 0, 12).committed_through(10));
        assert!(!at(None, 0, 12).committed_through(10));
        assert!(
            at(None, 10, 10).committed_through(10),
            "emptied by retention"
        );
        assert!(at(None, 0, 0).committed_through(0), "never written");
    }
}
