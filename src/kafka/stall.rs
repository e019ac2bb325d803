//! Noticing a Kafka that answers but does not serve: work waits on it, and for a bounded time
//! (`stall_timeout_ms`) nothing comes back, neither an acknowledgement nor an error.
//!
//! librdkafka retries forever by design here (`message.timeout.ms=0`, a consumer that rejoins
//! by itself), which is what keeps lines from being lost during an outage, but it also means a
//! broker that accepts connections and then sits on its answers (a stuck coordinator, a
//! producer-id allocation that never finishes) stalls a client without a word. [`StallWatch`]
//! is the clock for that: the caller says when something is waiting and when progress was made;
//! the watch says when the wait has become a stall, and when to try a recovery (recreate the
//! client), spaced by the project's [`crate::backoff`] so a Kafka that stays stuck is not
//! hammered. It decides nothing about data: recovering only ever resends or re-reads, and the
//! ids (agent) and the commit watermark (transfer) keep that exactly once.
//!
//! Pure logic over [`Instant`]s handed in, so it is unit-tested without a broker.

use std::time::{Duration, Instant};

use crate::backoff::{Backoff, BackoffPolicy};
use crate::telemetry::throttle::REPEAT_LOG_INTERVAL;
use crate::telemetry::{Health, Throttle};

/// The health condition of a stall.
pub const STALL_CONDITION: &str = "kafka_stall";

/// How both roles say a stall: the `kafka_stall` condition at once (the bound was the grace),
/// a warning when it begins and then once per [`REPEAT_LOG_INTERVAL`], a line when it ends.
/// The reason names the brokers that had requests waiting for an answer in the client's last
/// statistics (see [`StallReport::waiting`]): in a cluster, the member that stopped serving.
#[derive(Debug)]
pub struct StallReport {
    log: Throttle,
    waiting: std::sync::Mutex<Vec<String>>,
}

impl Default for StallReport {
    fn default() -> StallReport {
        StallReport {
            log: Throttle::every(REPEAT_LOG_INTERVAL),
            waiting: std::sync::Mutex::new(Vec::new()),
        }
    }
}

impl StallReport {
    /// The brokers with requests unanswered in the client's latest statistics
    /// ([`super::brokers_waiting`]).
    pub fn waiting(&self, brokers: Vec<String>) {
        *crate::sync::lock(&self.waiting) = brokers;
    }

    /// The stall goes on, for `reason`.
    pub fn stalled(&self, health: &Health, reason: String) {
        let waiting = crate::sync::lock(&self.waiting).clone();
        let reason = if waiting.is_empty() {
            reason
        } else {
            format!("{reason}; requests unanswered by {}", waiting.join(", "))
        };
        if let Some(repeats) = self.log.admit() {
            tracing::warn!(repeats, "{reason}");
        }
        health.fail_at_once(STALL_CONDITION, reason);
    }

    /// The stall ended after `lasted`: `what` says what works again.
    pub fn ended(&self, health: &Health, lasted: Duration, what: &str) {
        health.recover(STALL_CONDITION);
        self.log.reset();
        tracing::info!(lasted_s = lasted.as_secs(), "{what}: the stall ended");
    }
}

/// What [`StallWatch::check`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stall {
    /// Nothing waits, or progress came within the bound.
    Fine,
    /// A stall reported earlier has ended (progress came, or nothing waits any more).
    Ended {
        /// How long it lasted.
        lasted: Duration,
    },
    /// Work has waited this long without progress (at least the bound).
    Stalled {
        /// Time since the last progress (or since the wait began).
        stalled_for: Duration,
        /// True the first time, and again each time the backoff says to recover once more: the
        /// caller recreates its client now.
        recover: bool,
    },
}

/// The clock of one client's progress.
#[derive(Debug)]
pub struct StallWatch {
    timeout: Duration,
    /// Since when work waits without progress (`None`: nothing waits).
    waiting_since: Option<Instant>,
    /// When the ongoing stall was first reported.
    stalled_at: Option<Instant>,
    next_recovery: Option<Instant>,
    recoveries: Backoff,
    policy: BackoffPolicy,
}

impl StallWatch {
    /// A watch calling a wait of `timeout` without progress a stall (zero: never). After the
    /// first recovery, further ones are spaced from `timeout` doubling up to ten times that.
    pub fn new(timeout: Duration) -> StallWatch {
        let policy = BackoffPolicy::new(timeout, timeout.saturating_mul(10));
        StallWatch {
            timeout,
            waiting_since: None,
            stalled_at: None,
            next_recovery: None,
            recoveries: policy.start(),
            policy,
        }
    }

    /// The bound.
    pub fn timeout(&self) -> Duration {
        self.timeout
    }

    /// Kafka answered (an acknowledgement, an error, records fetched, a commit done): the wait,
    /// if any, starts again from `now`.
    pub fn progress(&mut self, now: Instant) {
        if self.waiting_since.is_some() {
            self.waiting_since = Some(now);
        }
    }

    /// Says whether work waits on Kafka now and judges: `waiting` false clears the clock.
    pub fn check(&mut self, now: Instant, waiting: bool) -> Stall {
        if !waiting {
            self.waiting_since = None;
            return self.end(now);
        }
        let since = *self.waiting_since.get_or_insert(now);
        let stalled_for = now.saturating_duration_since(since);
        if self.timeout.is_zero() || stalled_for < self.timeout {
            return self.end(now);
        }
        let recover = match self.next_recovery {
            Some(due) => now >= due,
            None => true,
        };
        if recover {
            self.next_recovery = Some(now + self.recoveries.next_delay());
        }
        self.stalled_at.get_or_insert(now);
        Stall::Stalled {
            stalled_for,
            recover,
        }
    }

    fn end(&mut self, now: Instant) -> Stall {
        match self.stalled_at.take() {
            Some(at) => {
                self.next_recovery = None;
                self.recoveries = self.policy.start();
                Stall::Ended {
                    lasted: now.saturating_duration_since(at) + self.timeout,
                }
            }
            None => Stall::Fine,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn a_wait_without_progress_becomes_a_stall_at_the_bound_and_recovers_with_backoff() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(60 * S);
        assert_eq!(watch.check(t0, true), Stall::Fine);
        assert_eq!(watch.check(t0 + 59 * S, true), Stall::Fine);
        assert_eq!(
            watch.check(t0 + 60 * S, true),
            Stall::Stalled {
                stalled_for: 60 * S,
                recover: true
            }
        );
        // Not again right away: the next recovery waits at least half the bound (jitter).
        assert!(matches!(
            watch.check(t0 + 61 * S, true),
            Stall::Stalled { recover: false, .. }
        ));
        assert!(matches!(
            watch.check(t0 + 121 * S, true),
            Stall::Stalled { recover: true, .. }
        ));
        // The delays grow: the third recovery is due at least 60 s after the second.
        assert!(matches!(
            watch.check(t0 + 170 * S, true),
            Stall::Stalled { recover: false, .. }
        ));
    }

    #[test]
    fn progress_restarts_the_clock_and_ends_a_stall() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(10 * S);
        watch.check(t0, true);
        watch.progress(t0 + 9 * S);
        assert_eq!(watch.check(t0 + 18 * S, true), Stall::Fine);
        assert!(matches!(
            watch.check(t0 + 19 * S, true),
            Stall::Stalled { recover: true, .. }
        ));
        watch.progress(t0 + 25 * S);
        assert!(matches!(
            watch.check(t0 + 25 * S, true),
            Stall::Ended { .. }
        ));
        assert_eq!(watch.check(t0 + 26 * S, true), Stall::Fine);
        // The next stall recovers at once again (the backoff was reset).
        assert!(matches!(
            watch.check(t0 + 35 * S, true),
            Stall::Stalled { recover: true, .. }
        ));
    }

    #[test]
    fn nothing_waiting_is_never_a_stall_and_ends_one() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(10 * S);
        assert_eq!(watch.check(t0, false), Stall::Fine);
        assert_eq!(watch.check(t0 + 100 * S, false), Stall::Fine);
        // The clock starts when work begins to wait, not before.
        assert_eq!(watch.check(t0 + 100 * S, true), Stall::Fine);
        assert!(matches!(
            watch.check(t0 + 110 * S, true),
            Stall::Stalled { .. }
        ));
        assert!(matches!(
            watch.check(t0 + 111 * S, false),
            Stall::Ended { .. }
        ));
        assert_eq!(watch.check(t0 + 112 * S, false), Stall::Fine);
    }

    #[test]
    fn a_zero_bound_never_stalls() {
        let t0 = Instant::now();
        let mut watch = StallWatch::new(Duration::ZERO);
        assert_eq!(watch.check(t0, true), Stall::Fine);
        assert_eq!(watch.check(t0 + 10_000 * S, true), Stall::Fine);
    }
}
