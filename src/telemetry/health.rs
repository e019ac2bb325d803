//! Health: named failing conditions, and whether any has lasted longer than the grace period.
//!
//! Components report what they observe (`fail("kafka", "no broker reachable")`,
//! `recover("kafka")`); `/health` is unhealthy while some condition has been failing for at
//! least `grace`, so a short blip (one broker restart, a WAL briefly full during a burst) does not
//! page anyone. Conditions used: `kafka` (no broker reachable), `wal` (full, or no space left on
//! its disk: reading paused), `agent` (a thread failed and the agent is stopping; no grace),
//! `elasticsearch` (requests failing or being refused).
//!
//! Each role makes one [`Health`] (with its `health_grace_ms`) and hands it to what reports
//! into it and to the endpoint that serves `/health`; there is no process-wide instance.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde::Serialize;

#[derive(Debug, Clone)]
struct Failing {
    reason: String,
    since: Instant,
}

/// Failing conditions by component.
#[derive(Debug)]
pub struct Health {
    grace: Duration,
    failing: Mutex<BTreeMap<&'static str, Failing>>,
    /// Conditions worth a warning that do not make the process unhealthy (yet): shown in
    /// `/health` with status 200.
    warnings: Mutex<BTreeMap<&'static str, String>>,
    /// The last error a Kafka client reported, shown with "no broker reachable" (it says why:
    /// refused credentials, an unknown CA).
    kafka_error: Mutex<Option<String>>,
}

/// One condition that makes the process unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// Which part (`kafka`, `wal`, `elasticsearch`).
    pub component: String,
    /// What is wrong.
    pub reason: String,
    /// For how long, in whole seconds.
    pub for_seconds: u64,
}

/// A condition worth a warning that does not make the process unhealthy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Warning {
    /// Which part (`elasticsearch_disk`, `retention`).
    pub component: String,
    /// What is wrong, and what comes next if nothing is done.
    pub reason: String,
}

/// What `/health` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Report {
    /// `ok` or `failing`.
    pub status: &'static str,
    /// Conditions failing for longer than the grace period.
    pub problems: Vec<Problem>,
    /// Warnings: they leave the status `ok` (and the answer 200).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub warnings: Vec<Warning>,
}

impl Report {
    /// True when nothing has failed for longer than the grace period.
    pub fn is_healthy(&self) -> bool {
        self.problems.is_empty()
    }
}

impl Default for Health {
    /// No grace: a condition is reported as soon as it fails (for tests and tools).
    fn default() -> Health {
        Health::new(Duration::ZERO)
    }
}

impl Health {
    /// An empty health state with the given grace period.
    pub fn new(grace: Duration) -> Health {
        Health {
            grace,
            failing: Mutex::new(BTreeMap::new()),
            warnings: Mutex::new(BTreeMap::new()),
            kafka_error: Mutex::new(None),
        }
    }

    /// `component` is failing; the start time of an ongoing failure is kept, the reason updated.
    pub fn fail(&self, component: &'static str, reason: impl Into<String>) {
        let reason = reason.into();
        let mut failing = crate::sync::lock(&self.failing);
        match failing.get_mut(component) {
            Some(existing) => existing.reason = reason,
            None => {
                failing.insert(
                    component,
                    Failing {
                        reason,
                        since: Instant::now(),
                    },
                );
            }
        }
    }

    /// `component` failed in a way that needs no grace period (the process is stopping because
    /// of it): reported from now on.
    pub fn fail_at_once(&self, component: &'static str, reason: impl Into<String>) {
        let grace = self.grace;
        let now = Instant::now();
        let since = now.checked_sub(grace).unwrap_or(now);
        crate::sync::lock(&self.failing).insert(
            component,
            Failing {
                reason: reason.into(),
                since,
            },
        );
    }

    /// Remembers the last Kafka client error (see [`crate::kafka::BrokerObserver`]). The
    /// summary "all brokers are down" does not replace a cause seen before it (an SSL or
    /// authentication failure), which is what a person needs to read.
    pub fn kafka_client_error(&self, error: &str) {
        let mut last = crate::sync::lock(&self.kafka_error);
        if error.contains("AllBrokersDown") && last.is_some() {
            return;
        }
        *last = Some(error.to_string());
    }

    /// The last Kafka client error, forgotten once a broker is up again.
    pub fn take_kafka_error(&self, brokers_up: bool) -> Option<String> {
        let mut last = crate::sync::lock(&self.kafka_error);
        if brokers_up {
            *last = None;
        }
        last.clone()
    }

    /// `component` works again.
    pub fn recover(&self, component: &'static str) {
        crate::sync::lock(&self.failing).remove(component);
    }

    /// `component` deserves a warning (replacing its previous one); the process stays healthy.
    pub fn warn(&self, component: &'static str, reason: impl Into<String>) {
        crate::sync::lock(&self.warnings).insert(component, reason.into());
    }

    /// `component`'s warning no longer holds.
    pub fn clear_warning(&self, component: &'static str) {
        crate::sync::lock(&self.warnings).remove(component);
    }

    /// The conditions failing for at least the grace period.
    pub fn report(&self) -> Report {
        self.report_at(Instant::now())
    }

    fn report_at(&self, now: Instant) -> Report {
        let grace = self.grace;
        let failing = crate::sync::lock(&self.failing);
        let problems: Vec<Problem> = failing
            .iter()
            .filter_map(|(component, failing)| {
                let age = now.saturating_duration_since(failing.since);
                (age >= grace).then(|| Problem {
                    component: component.to_string(),
                    reason: failing.reason.clone(),
                    for_seconds: age.as_secs(),
                })
            })
            .collect();
        let warnings = crate::sync::lock(&self.warnings)
            .iter()
            .map(|(component, reason)| Warning {
                component: component.to_string(),
                reason: reason.clone(),
            })
            .collect();
        Report {
            status: if problems.is_empty() { "ok" } else { "failing" },
            problems,
            warnings,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_broker_reachable_says_the_clients_last_error_until_a_broker_is_up() {
        use crate::kafka::BrokerObserver as _;
        let health = Health::default();
        health.client_error("SSL handshake failed: certificate verify failed");
        health
            .client_error("Global error: AllBrokersDown (Local: All broker connections are down)");
        health.brokers_up(0);
        let report = health.report();
        assert_eq!(
            report.problems[0].reason,
            "no Kafka broker reachable: SSL handshake failed: certificate verify failed"
        );
        health.brokers_up(1);
        assert!(health.report().is_healthy());
        health.brokers_up(0);
        assert_eq!(
            health.report().problems[0].reason,
            "no Kafka broker reachable"
        );
    }

    #[test]
    fn a_condition_counts_only_after_the_grace_period_and_clears_on_recovery() {
        let health = Health::new(Duration::from_secs(10));
        let start = Instant::now();
        health.fail("kafka", "no broker reachable");
        assert!(health.report_at(start).is_healthy());
        let later = start + Duration::from_secs(11);
        let report = health.report_at(later);
        assert!(!report.is_healthy());
        assert_eq!(report.problems[0].component, "kafka");
        assert_eq!(report.problems[0].reason, "no broker reachable");
        // A repeated report keeps the original start time.
        health.fail("kafka", "still no broker");
        assert_eq!(
            health.report_at(later).problems[0].reason,
            "still no broker"
        );
        assert!(!health.report_at(later).is_healthy());
        health.recover("kafka");
        assert!(health.report_at(later).is_healthy());
        assert_eq!(health.report_at(later).status, "ok");
    }

    #[test]
    fn a_failure_at_once_is_reported_without_the_grace_period() {
        let health = Health::new(Duration::from_secs(10));
        health.fail_at_once("agent", "reader failed; stopping");
        let report = health.report();
        assert!(!report.is_healthy());
        assert_eq!(report.problems[0].component, "agent");
    }
}
