//! Exponential backoff with jitter, without an attempt limit: the one retry pacing of logship
//! (the agent's shipper resending a chunk, the etcd watcher and registry reconnecting, the
//! transfer retrying a bulk request).
//!
//! Nothing gives up on a line (giving up would lose it); the backoff only decides how long to
//! wait before the next attempt: from `initial`, doubling, up to `max`, each delay drawn between
//! half and all of its nominal value so that many waiting clients do not retry in lockstep.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The configured bounds.
#[derive(Debug, Clone, Copy)]
pub struct BackoffPolicy {
    /// First delay.
    pub initial: Duration,
    /// Largest delay.
    pub max: Duration,
}

impl BackoffPolicy {
    /// From `initial` up to `max`.
    pub const fn new(initial: Duration, max: Duration) -> BackoffPolicy {
        BackoffPolicy { initial, max }
    }

    /// A fresh sequence of delays.
    pub fn start(&self) -> Backoff {
        Backoff {
            policy: *self,
            next: self.initial,
        }
    }
}

/// One sequence of delays (one per unit of work being retried).
#[derive(Debug, Clone)]
pub struct Backoff {
    policy: BackoffPolicy,
    next: Duration,
}

impl Backoff {
    /// The delay before the next attempt; the following one is twice as long (up to the max).
    pub fn next_delay(&mut self) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(self.policy.max);
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0);
        let fraction = (xxhash_rust::xxh3::xxh3_64(&nanos.to_le_bytes()) % 1000) as u32;
        nominal / 2 + nominal / 2 * fraction / 1000
    }

    /// Back to the initial delay (after a success).
    pub fn reset(&mut self) {
        self.next = self.policy.initial;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_max_with_jitter_and_reset() {
        let policy = BackoffPolicy {
            initial: Duration::from_millis(100),
            max: Duration::from_millis(1000),
        };
        let mut backoff = policy.start();
        let mut nominal = 100;
        for _ in 0..8 {
            let delay = backoff.next_delay().as_millis() as u64;
            assert!(
                delay >= nominal / 2 && delay <= nominal,
                "{delay} vs {nominal}"
            );
            nominal = (nominal * 2).min(1000);
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(100));
    }
}
