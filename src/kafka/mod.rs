//! Kafka: the agent's durable producer and the transfer's consumer.
//!
//! Both clients ask librdkafka for statistics every [`STATISTICS_INTERVAL_MS`]; the broker
//! states in them are handed to a [`BrokerObserver`]; the roles plug in their [`Health`], which
//! drives the `logship_kafka_brokers_up` gauge and the `kafka` health condition.

pub(crate) mod consumer;
pub(crate) mod dead_letters;
pub(crate) mod producer;
pub(crate) mod security;
pub mod stall;

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

/// Told how many cluster brokers are up after each statistics report of a Kafka client.
pub trait BrokerObserver: Send + Sync {
    /// `up` brokers are in librdkafka's `UP` state (see [`brokers_up`]).
    fn brokers_up(&self, up: usize);
    /// The client reported `error` (it keeps retrying); shown with "no broker reachable".
    fn client_error(&self, _error: &str) {}
}

/// The brokers-up gauge, and the `kafka` condition failing while no broker is up.
impl BrokerObserver for Health {
    fn brokers_up(&self, up: usize) {
        metrics::gauge!(names::KAFKA_BROKERS_UP).set(up as f64);
        let last = self.take_kafka_error(up > 0);
        if up == 0 {
            let reason = match last {
                Some(error) => format!("no Kafka broker reachable: {error}"),
                None => "no Kafka broker reachable".to_string(),
            };
            self.fail("kafka", reason);
        } else {
            self.recover("kafka");
        }
    }

    fn client_error(&self, error: &str) {
        self.kafka_client_error(error);
    }
}
