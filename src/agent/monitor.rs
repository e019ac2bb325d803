//! The agent's monitor thread: WAL and disk gauges once a second, and progress logs while the agent
//! catches up on the backlog it found at start.
//!
//! Backlog at start = WAL bytes not yet acknowledged + bytes written to the followed files past
//! their checkpoints (measured after the first scan). Progress = bytes Kafka acknowledged since
//! start. While that is below the backlog, every `progress_interval_ms` one line says how far,
//! how fast and how long still to go; a backlog cleared before the first interval is not logged.
//! When files keep growing meanwhile, newly written bytes count as progress too, so the figure
//! is an estimate, never a promise.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_wal::Wal;

use super::disk::{disk_usage, free_bytes};
use super::events::{AgentEvents, Gauges, ProgressLine};
use super::status::oldest_pending_age;
use crate::shutdown::Shutdown;

/// How often the gauges are refreshed.
const GAUGE_INTERVAL: Duration = Duration::from_secs(1);

/// Counters shared by the reader (backlog found by the first scan) and the shipper (bytes
/// acknowledged).
#[derive(Debug, Default)]
pub struct Backlog {
    files_at_start: AtomicU64,
    measured: AtomicBool,
    shipped: AtomicU64,
}

impl Backlog {
    /// The reader's first scan found `bytes` unread in the followed files.
    pub fn set_files_at_start(&self, bytes: u64) {
        self.files_at_start.store(bytes, Ordering::Relaxed);
        self.measured.store(true, Ordering::Release);
    }

    /// Kafka acknowledged a chunk of `bytes` source bytes.
    pub fn add_shipped(&self, bytes: u64) {
        self.shipped.fetch_add(bytes, Ordering::Relaxed);
    }

    fn files_at_start(&self) -> Option<u64> {
        self.measured
            .load(Ordering::Acquire)
            .then(|| self.files_at_start.load(Ordering::Relaxed))
    }
}

/// The monitor's inputs.
pub struct Monitor {
    /// The WAL (for its depth).
    pub wal: Wal,
    /// Shared backlog counters.
    pub backlog: Arc<Backlog>,
    /// Files followed (kept by the reader).
    pub followed: Arc<AtomicU64>,
    /// WAL bytes pending when the agent started.
    pub wal_at_start: u64,
    /// How often progress is logged while catching up.
    pub progress_interval: Duration,
    /// The agent's data directory (its size on disk and free space are gauges).
    pub data_dir: PathBuf,
    /// Where gauges and progress are reported.
    pub events: Arc<dyn AgentEvents>,
}

/// Progress at `shipped` bytes, `shipped_before` at the previous report `elapsed` ago;
/// `None` when the backlog is done.
pub fn progress(
    total: u64,
    shipped: u64,
    shipped_before: u64,
    elapsed: Duration,
) -> Option<ProgressLine> {
    if shipped >= total {
        return None;
    }
    let seconds = elapsed.as_secs_f64().max(1e-3);
    let rate = shipped.saturating_sub(shipped_before) as f64 / seconds;
    let left = (total - shipped) as f64;
    Some(ProgressLine {
        done: shipped,
        total,
        rate,
        eta_seconds: (rate > 0.0).then(|| left / rate),
    })
}

impl Monitor {
    /// Runs until `shutdown`.
    pub fn run(self, shutdown: &Shutdown) {
        let started = Instant::now();
        let mut catching_up = true;
        let mut logged = false;
        let mut last_report = Instant::now();
        let mut shipped_at_last_report = 0u64;
        while !shutdown.is_triggered() {
            let tick = Instant::now();
            self.update_gauges();
            if catching_up && last_report.elapsed() >= self.progress_interval {
                if let Some(files) = self.backlog.files_at_start() {
                    let total = self.wal_at_start + files;
                    let shipped = self.backlog.shipped.load(Ordering::Relaxed);
                    match progress(
                        total,
                        shipped,
                        shipped_at_last_report,
                        last_report.elapsed(),
                    ) {
                        Some(line) => {
                            self.events.backlog_progress(&line);
                            logged = true;
                        }
                        None => {
                            catching_up = false;
                            if logged {
                                self.events
                                    .backlog_shipped(total, started.elapsed().as_secs());
                            }
                        }
                    }
                    shipped_at_last_report = shipped;
                    last_report = Instant::now();
                }
            }
            shutdown.wait_timeout(GAUGE_INTERVAL.saturating_sub(tick.elapsed()));
        }
    }

    fn update_gauges(&self) {
        self.events.gauges(&Gauges {
            pending_records: self.wal.pending_records(),
            pending_bytes: self.wal.pending_bytes(),
            oldest_pending_age: oldest_pending_age(&self.wal).unwrap_or(0.0),
            disk_bytes: disk_usage(&self.data_dir).ok(),
            disk_free: free_bytes(&self.data_dir).ok(),
            files_followed: self.followed.load(Ordering::Relaxed),
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn progress_reports_rate_and_eta_until_the_backlog_is_shipped() {
        let line = progress(1000, 400, 200, Duration::from_secs(2)).unwrap();
        assert_eq!(line.done, 400);
        assert!((line.rate - 100.0).abs() < 1e-9);
        assert!((line.eta_seconds.unwrap() - 6.0).abs() < 1e-9);
        assert_eq!(
            progress(1000, 400, 400, Duration::from_secs(2))
                .unwrap()
                .eta_seconds,
            None
        );
        assert_eq!(progress(1000, 1000, 900, Duration::from_secs(1)), None);
        assert_eq!(progress(0, 0, 0, Duration::from_secs(1)), None);
    }
}
