//! Kafka: the agent's durable producer and the transfer's consumer.
//!
//! Both clients ask librdkafka for statistics every [`STATISTICS_INTERVAL_MS`]; the broker
//! states in them drive the `logship_kafka_brokers_up` gauge and the `kafka` health condition.

pub mod consumer;
pub mod producer;

use rdkafka::Statistics;

use crate::telemetry::{names, Health};

/// How often librdkafka reports statistics (milliseconds, as a config value).
pub const STATISTICS_INTERVAL_MS: &str = "1000";

/// Cluster brokers in librdkafka's `UP` state in `statistics` (the bootstrap connections,
/// node id -1, are not brokers of their own and are not counted).
pub fn brokers_up(statistics: &Statistics) -> usize {
    statistics
        .brokers
        .values()
        .filter(|broker| broker.nodeid >= 0 && broker.state == "UP")
        .count()
}

/// Updates the brokers-up gauge and the `kafka` health condition from `statistics`.
pub fn observe_brokers(statistics: &Statistics) {
    let up = brokers_up(statistics);
    metrics::gauge!(names::KAFKA_BROKERS_UP).set(up as f64);
    if up == 0 {
        Health::global().fail("kafka", "no Kafka broker reachable");
    } else {
        Health::global().recover("kafka");
    }
}
