//! Repeating log lines, thinned out: one line per interval, with the number held back.
//!
//! A condition that lasts (Kafka down, the open-files limit reached, the WAL full) is observed
//! many times a second; logging each observation floods the log and hides everything else.
//! Metrics and health are still updated on every observation; only the line is throttled.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How often a repeating line is logged by default; the repeats in between are counted and
/// reported with the next line.
pub const REPEAT_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Lets one log line through per interval and counts the ones held back.
#[derive(Debug)]
pub struct Throttle {
    interval: Duration,
    last: Mutex<Option<Instant>>,
    held_back: AtomicU64,
}

impl Default for Throttle {
    /// One line per [`REPEAT_LOG_INTERVAL`].
    fn default() -> Throttle {
        Throttle::every(REPEAT_LOG_INTERVAL)
    }
}

impl Throttle {
    /// One line per `interval`.
    pub fn every(interval: Duration) -> Throttle {
        Throttle {
            interval,
            last: Mutex::new(None),
            held_back: AtomicU64::new(0),
        }
    }

    /// `Some(held back since the last line)` if a line may be logged now.
    pub fn admit(&self) -> Option<u64> {
        let mut last = crate::sync::lock(&self.last);
        let now = Instant::now();
        if last.is_some_and(|at| now.duration_since(at) < self.interval) {
            self.held_back.fetch_add(1, Ordering::Relaxed);
            return None;
        }
        *last = Some(now);
        Some(self.held_back.swap(0, Ordering::Relaxed))
    }

    /// Forgets the last line: the next [`Throttle::admit`] lets one through (a condition
    /// ended, so its next occurrence is news).
    pub fn reset(&self) {
        *crate::sync::lock(&self.last) = None;
        self.held_back.store(0, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lets_one_line_through_per_interval_and_counts_the_rest() {
        let throttle = Throttle::default();
        assert_eq!(throttle.admit(), Some(0));
        assert_eq!(throttle.admit(), None);
        assert_eq!(throttle.admit(), None);
        *throttle.last.lock().unwrap() = Some(Instant::now() - REPEAT_LOG_INTERVAL);
        assert_eq!(throttle.admit(), Some(2));
        throttle.admit();
        throttle.reset();
        assert_eq!(throttle.admit(), Some(0));
    }
}
