//! Kafka: the agent's durable producer and the transfer's consumer.
//!
//! Both clients ask librdkafka for statistics every [`STATISTICS_INTERVAL_MS`]; the broker
//! states in them are handed to a [`BrokerObserver`]; the roles plug in their [`Health`], which
//! drives the `logship_kafka_brokers_up` gauge and the `kafka` health condition.

pub(crate) mod consumer;
pub(crate) mod dead_letters;
pub mod group;
pub(crate) mod producer;
pub(crate) mod security;
pub mod stall;
pub(crate) mod topics;

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

/// The brokers with requests sent and not answered yet in `statistics`, the longest silent
/// first, as `host:port (node N): K request(s), nothing received for S s` — the group
/// coordinator's connection, which librdkafka lists apart, counted with its broker. A broker
/// that stopped serving heads the list; brokers waiting on it (an `acks=all` produce waits
/// for every in-sync replica) follow.
pub fn brokers_waiting(statistics: &Statistics) -> Vec<String> {
    struct Waiting<'a> {
        name: &'a str,
        node: i32,
        requests: i64,
        silent_us: i64,
    }
    let mut waiting: Vec<Waiting> = Vec::new();
    for broker in statistics.brokers.values() {
        if broker.waitresp_cnt <= 0 || broker.nodename.is_empty() {
            continue;
        }
        match waiting.iter_mut().find(|w| w.name == broker.nodename) {
            Some(w) => {
                w.node = w.node.max(broker.nodeid);
                w.requests += broker.waitresp_cnt;
                w.silent_us = w.silent_us.max(broker.rxidle);
            }
            None => waiting.push(Waiting {
                name: &broker.nodename,
                node: broker.nodeid,
                requests: broker.waitresp_cnt,
                silent_us: broker.rxidle,
            }),
        }
    }
    waiting.sort_by(|a, b| {
        b.silent_us
            .cmp(&a.silent_us)
            .then(b.requests.cmp(&a.requests))
            .then(a.name.cmp(b.name))
    });
    waiting
        .into_iter()
        .map(|w| {
            let node = if w.node >= 0 {
                format!(" (node {})", w.node)
            } else {
                String::new()
            };
            let silent = if w.silent_us >= 0 {
                format!(", nothing received for {:.1} s", w.silent_us as f64 / 1e6)
            } else {
                String::new()
            };
            format!("{}{node}: {} request(s){silent}", w.name, w.requests)
        })
        .collect()
}

/// Told how many cluster brokers are up after each statistics report of a Kafka client.
pub trait BrokerObserver: Send + Sync {
    /// `up` brokers are in librdkafka's `UP` state (see [`brokers_up`]).
    fn brokers_up(&self, up: usize);
    /// The brokers with requests unanswered (see [`brokers_waiting`]).
    fn brokers_waiting(&self, _waiting: Vec<String>) {}
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
