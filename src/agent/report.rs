//! The agent's events, reported: log lines (tracing), Prometheus metrics and the health
//! conditions `wal` (reading paused), `agent` (a thread failed) and `kafka` (no broker up).
//!
//! This is the plug [`super::events`] speaks of; the core knows only the trait. Conditions that
//! last and are observed many times a second (reading paused, files waiting for a descriptor)
//! are logged when they begin, then once per [`REPEAT_LOG_INTERVAL`] with the number of
//! repeats, and once when they end; their gauges are updated on every observation.

use std::io;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::events::{AgentEvents, FileTrouble, Gauges, PauseCause, ProgressLine};
use super::open_files::OpenFilesLimit;
use crate::kafka::BrokerObserver;
use crate::telemetry::throttle::REPEAT_LOG_INTERVAL;
use crate::telemetry::{names, Health, Throttle};

const MIB: f64 = 1024.0 * 1024.0;

/// Logs, metrics and health for one agent.
#[derive(Debug)]
pub struct Reported {
    health: Arc<Health>,
    /// The cause of the ongoing pause, if reading is paused.
    paused: Mutex<Option<PauseCause>>,
    pause_log: Throttle,
    /// Whether "files wait for a descriptor" was logged and not yet ended.
    waiting: AtomicBool,
    waiting_log: Throttle,
    stall: crate::kafka::stall::StallReport,
}

impl Reported {
    /// Reports into `health` (which the agent's endpoint serves).
    pub fn new(health: Arc<Health>) -> Reported {
        Reported {
            health,
            paused: Mutex::new(None),
            pause_log: Throttle::every(REPEAT_LOG_INTERVAL),
            waiting: AtomicBool::new(false),
            waiting_log: Throttle::every(REPEAT_LOG_INTERVAL),
            stall: Default::default(),
        }
    }
}

impl Default for Reported {
    /// Reports into a health state of its own, which nothing serves (tests, tools).
    fn default() -> Reported {
        Reported::new(Arc::new(Health::default()))
    }
}

impl BrokerObserver for Reported {
    fn brokers_up(&self, up: usize) {
        self.health.brokers_up(up);
    }

    fn brokers_waiting(&self, waiting: Vec<String>) {
        self.stall.waiting(waiting);
    }

    fn client_error(&self, error: &str) {
        self.health.client_error(error);
    }
}

impl crate::etcd::EtcdEvents for Reported {
    fn etcd_refused(&self, reason: &str) {
        tracing::error!(
            %reason,
            "fix the etcd credentials (they are read again at every reconnection)"
        );
        self.health.fail("etcd", reason);
    }

    fn etcd_reached(&self) {
        self.health.recover("etcd");
    }

    fn etcd_unreachable(&self, key: &str, error: &str, cached: usize) {
        tracing::warn!(
            key,
            error,
            entries = cached,
            "etcd unreachable: running on cached config; retrying"
        );
    }

    fn watch_lost(&self, key: &str, error: &str) {
        tracing::warn!(key, error, "etcd watch lost; retrying");
    }

    fn watch_restarted(&self, key: &str, why: &str) {
        tracing::info!(key, why, "etcd watch ended; re-reading the key");
    }

    fn collect_accepted(&self, key: &str, revision: i64, entries: usize) {
        metrics::counter!(names::CONFIG_RELOADS).increment(1);
        tracing::info!(
            key,
            revision,
            entries,
            "collect entries from etcd accepted; the reader applies them at its next round"
        );
    }

    fn collect_refused(&self, key: &str, revision: i64, rejected: u64, reason: &str) {
        metrics::counter!(names::CONFIG_REJECTIONS).increment(1);
        tracing::error!(
            key,
            revision,
            rejected_total = rejected,
            reason,
            "collect entries in etcd refused; keeping the previous ones"
        );
    }

    fn registration_lost(&self, key: &str, error: &str) {
        tracing::warn!(key, error, "agent registration lost; retrying");
    }
}

impl AgentEvents for Reported {
    fn starting(&self, host: &str, data_dir: &Path, pending_chunks: u64, pending_bytes: u64) {
        tracing::info!(
            host,
            data_dir = %data_dir.display(),
            pending_chunks,
            pending_bytes,
            "agent starting"
        );
    }

    fn open_files_limit(&self, limit: &OpenFilesLimit) {
        tracing::info!(
            soft_limit_at_start = ?limit.before,
            soft_limit = ?limit.now,
            files_at_once = ?limit.files(),
            "open-files limit: the agent keeps each followed file open"
        );
    }

    fn disk_size_unknown(&self, data_dir: &Path) {
        tracing::warn!(
            data_dir = %data_dir.display(),
            "the filesystem holding data_dir reports no size (statvfs total 0), so free space \
             cannot be watched: min_free_bytes is not applied here; a full disk still stops \
             the agent without losing a line"
        );
    }

    fn open_files_not_raised(&self, error: &io::Error, soft_limit: Option<u64>) {
        tracing::warn!(
            %error,
            soft_limit = ?soft_limit,
            "cannot raise the open-files limit; following fewer files at once"
        );
    }

    fn etcd_cache_loaded(&self, entries: usize) {
        tracing::info!(entries, "etcd entries loaded from the cache");
    }

    fn etcd_cache_trouble(&self, error: &str) {
        tracing::error!(error, "etcd entries kept in the WAL");
    }

    fn stopped(&self, pending_bytes: u64) {
        tracing::info!(pending_bytes, "agent stopped");
    }

    fn checkpoints_loaded(&self, count: usize) {
        tracing::info!(checkpoints = count, "checkpoints loaded");
    }

    fn checkpoint_unreadable(&self, key: &str, error: &str) {
        tracing::error!(
            key,
            error,
            "unreadable checkpoint ignored; its file will be matched by content"
        );
    }

    fn entries_changed(&self, entries: usize) {
        tracing::info!(entries, "collect entries changed; rescanning");
    }

    fn invalid_entry(&self, path: &str, error: &str) {
        tracing::error!(path, error, "collect entry cannot be used as written");
    }

    fn inotify_unavailable(&self, error: &str) {
        tracing::warn!(error, "inotify unavailable; relying on periodic rescans");
    }

    fn watch_failed(&self, dir: &Path, error: &str) {
        tracing::debug!(dir = %dir.display(), error, "cannot watch");
    }

    fn file_followed(&self, path: &Path, stream: &str, offset: u64) {
        tracing::info!(path = %path.display(), stream, offset, "following file");
    }

    fn file_reopened(&self, path: &Path, offset: u64) {
        tracing::debug!(path = %path.display(), offset, "idle file changed; reopened");
    }

    fn file_closed_idle(&self, path: &Path, offset: u64) {
        tracing::debug!(
            path = %path.display(),
            offset,
            "idle file closed; reopened when it changes"
        );
    }

    fn file_paused(&self, path: &Path, offset: u64) {
        tracing::info!(
            path = %path.display(),
            offset,
            "collect entry removed: file closed, checkpoint kept"
        );
    }

    fn file_drained(&self, path: &Path, offset: u64) {
        tracing::info!(path = %path.display(), offset, "file drained and closed");
    }

    fn file_truncated(&self, path: &Path, offset: u64) {
        tracing::info!(
            path = %path.display(),
            offset,
            "file truncated (copytruncate?); starting a new stream"
        );
    }

    fn file_replaced_while_away(&self, path: &str) {
        tracing::info!(
            path,
            "file was truncated or rewritten while not followed; new stream"
        );
    }

    fn file_renamed_while_away(&self, from: &str, to: &Path, rewritten: bool) {
        if rewritten {
            tracing::info!(
                from,
                to = %to.display(),
                "file was renamed and rewritten while not followed; draining it as a new stream"
            );
        } else {
            tracing::info!(
                from,
                to = %to.display(),
                "file was renamed while not followed (agent down, or file closed while idle); draining it"
            );
        }
    }

    fn file_missing(&self, path: &str) {
        tracing::debug!(
            path,
            "file of an unfinished checkpoint is gone or has no complete line; looking for a copy"
        );
    }

    fn copy_continued(&self, path: &str, stream: &str, offset: u64) {
        tracing::info!(
            path,
            stream,
            offset,
            "file is a copy of a stream already read (copytruncate); continuing that stream"
        );
    }

    fn copy_in_progress(&self, path: &str, size: u64) {
        tracing::debug!(
            path,
            size,
            "file starts like a stream read further: a copy being written? looking again later"
        );
    }

    fn copy_adopted(&self, copy: &Path, stream: &str, offset: u64, resumed: bool) {
        let what = if resumed {
            "resuming the copy of a truncated file"
        } else {
            "draining the rest of the truncated file from its copy"
        };
        tracing::info!(copy = %copy.display(), stream, offset, "{what}");
    }

    fn file_trouble(&self, path: &Path, trouble: FileTrouble, error: &io::Error) {
        let what = match trouble {
            FileTrouble::Open => "cannot open file; will retry",
            FileTrouble::Read => "read failed; will retry",
            FileTrouble::Check => "cannot check the file's content; will retry",
        };
        tracing::warn!(path = %path.display(), %error, "{what}");
    }

    fn files_waiting(&self, waiting: usize, followed: usize, soft_limit: Option<u64>) {
        metrics::gauge!(names::AGENT_FILES_WAITING).set(waiting as f64);
        if waiting == 0 {
            if self.waiting.swap(false, Ordering::Relaxed) {
                self.waiting_log.reset();
                tracing::info!("every matched file is followed again");
            }
            return;
        }
        if let Some(repeats) = self.waiting_log.admit() {
            self.waiting.store(true, Ordering::Relaxed);
            tracing::warn!(
                waiting,
                followed,
                soft_limit = ?soft_limit,
                repeats,
                "open-files limit reached: files wait for a descriptor (raise the limit, \
                 e.g. LimitNOFILE= in the service unit)"
            );
        }
    }

    fn reading_paused(
        &self,
        cause: PauseCause,
        reason: &str,
        pending_records: u64,
        pending_bytes: u64,
    ) {
        metrics::gauge!(names::AGENT_READING_PAUSED).set(1.0);
        self.health.fail("wal", reason);
        let changed = crate::sync::lock(&self.paused).replace(cause) != Some(cause);
        if changed {
            self.pause_log.reset();
        }
        if let Some(repeats) = self.pause_log.admit() {
            tracing::warn!(
                pending_records,
                pending_bytes,
                repeats,
                "{reason} (backpressure; nothing is dropped)"
            );
        }
    }

    fn reading_resumed(&self, pending_bytes: u64) {
        metrics::gauge!(names::AGENT_READING_PAUSED).set(0.0);
        self.health.recover("wal");
        *crate::sync::lock(&self.paused) = None;
        self.pause_log.reset();
        tracing::info!(
            pending_bytes,
            "reading resumed: the WAL and its disk have room again"
        );
    }

    fn read(&self, path: &str, lines: u64, bytes: u64) {
        metrics::counter!(names::AGENT_READ_LINES, "file" => path.to_string()).increment(lines);
        metrics::counter!(names::AGENT_READ_BYTES, "file" => path.to_string()).increment(bytes);
    }

    fn delivered(&self, lines: u64) {
        metrics::counter!(names::KAFKA_DELIVERED_LINES).increment(lines);
    }

    fn resend(&self, seq: u64, error: &str, retry_in: Duration) {
        tracing::warn!(
            seq,
            error,
            retry_in = ?retry_in,
            "Kafka did not accept a chunk; it stays in the WAL and will be resent"
        );
    }

    fn kafka_stalled(&self, stalled_for: Duration, in_flight: usize, pending_bytes: u64) {
        let reason = format!(
            "Kafka stalled: no acknowledgement and no error for {}s while {in_flight} chunk(s) \
             are in flight and {:.1} MiB wait in the WAL (a broker down, or one that answers but does \
             not serve); the producer is recreated and the WAL resent, with backoff",
            stalled_for.as_secs(),
            pending_bytes as f64 / MIB
        );
        self.stall.stalled(&self.health, reason);
    }

    fn kafka_stall_ended(&self, lasted: Duration) {
        self.stall
            .ended(&self.health, lasted, "Kafka answers again");
    }

    fn producer_recreated(&self, error: &str) {
        tracing::error!(
            error,
            "recreating the Kafka producer and resending everything unacknowledged"
        );
    }

    fn producer_reloaded(&self, unacknowledged: usize) {
        tracing::info!(
            unacknowledged,
            "reload: Kafka credentials and certificates read again; the new producer resends what is unacknowledged"
        );
    }

    fn producer_reload_failed(&self, error: &str) {
        tracing::error!(
            error,
            "reload: cannot build a Kafka producer from the credentials files; keeping the one in use"
        );
    }

    fn metrics_sampling(&self, topic: &str, interval: Duration) {
        tracing::info!(topic, interval = ?interval, "host metrics sampling");
    }

    fn metrics_committed(&self, rounds: u64) {
        metrics::counter!(names::AGENT_METRICS_SAMPLES).increment(rounds);
    }

    fn metrics_dropped(&self, rounds: u64) {
        metrics::counter!(names::AGENT_METRICS_SAMPLES_DROPPED).increment(rounds);
        tracing::warn!(
            rounds,
            "the WAL is full: dropped the oldest waiting host metrics (never log lines)"
        );
    }

    fn metrics_unreadable(&self, problems: &[String]) {
        tracing::warn!(?problems, "some host metrics cannot be read");
    }

    fn quarantined(&self, seq: u64, reason: &str, damaged: bool) {
        metrics::counter!(names::WAL_QUARANTINED_RECORDS).increment(1);
        if damaged {
            tracing::error!(
                seq,
                reason,
                "corrupted WAL record moved to quarantine (see `wal.quarantined`); the rest is shipped"
            );
        } else {
            tracing::error!(
                seq,
                reason,
                "WAL record is not a chunk this agent can read; moved to quarantine (see \
                 `wal.quarantined`); the rest is shipped"
            );
        }
    }

    fn stopped_unacknowledged(&self, chunks: usize) {
        tracing::warn!(
            chunks,
            "shutting down with unacknowledged chunks; they stay in the WAL and are resent on start"
        );
    }

    fn gauges(&self, gauges: &Gauges) {
        metrics::gauge!(names::WAL_PENDING_RECORDS).set(gauges.pending_records as f64);
        metrics::gauge!(names::WAL_PENDING_BYTES).set(gauges.pending_bytes as f64);
        metrics::gauge!(names::WAL_OLDEST_PENDING_AGE).set(gauges.oldest_pending_age);
        if let Some(bytes) = gauges.disk_bytes {
            metrics::gauge!(names::WAL_DISK_BYTES).set(bytes as f64);
        }
        if let Some(free) = gauges.disk_free {
            metrics::gauge!(names::AGENT_DISK_FREE_BYTES).set(free as f64);
        }
        metrics::gauge!(names::AGENT_FILES_FOLLOWED).set(gauges.files_followed as f64);
    }

    fn backlog_progress(&self, line: &ProgressLine) {
        tracing::info!(
            done_mib = format!("{:.1}", line.done as f64 / MIB),
            total_mib = format!("{:.1}", line.total as f64 / MIB),
            percent = format!("{:.1}", 100.0 * line.done as f64 / line.total as f64),
            rate_mib_per_s = format!("{:.1}", line.rate / MIB),
            eta_s = line
                .eta_seconds
                .map_or_else(|| "unknown".to_string(), |s| format!("{s:.0}")),
            "catching up on the backlog found at start"
        );
    }

    fn backlog_shipped(&self, total: u64, seconds: u64) {
        tracing::info!(
            total_mib = format!("{:.1}", total as f64 / MIB),
            seconds,
            "backlog found at start is shipped"
        );
    }

    fn thread_ended(&self, thread: &str) {
        tracing::error!(thread, "thread ended; stopping the agent");
    }

    fn thread_failed(&self, thread: &str, error: &str) {
        tracing::error!(thread, "{thread} failed: {error}; stopping the agent");
        self.health
            .fail_at_once("agent", format!("{thread} failed: {error}; stopping"));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pause_fails_the_wal_condition_until_reading_resumes() {
        let health = Arc::new(Health::default());
        let reported = Reported::new(health.clone());
        reported.reading_paused(PauseCause::DiskLow, "no space left on /x", 3, 4);
        let report = health.report();
        assert_eq!(report.problems.len(), 1);
        assert_eq!(report.problems[0].component, "wal");
        assert_eq!(report.problems[0].reason, "no space left on /x");
        reported.reading_resumed(0);
        assert!(health.report().is_healthy());
    }

    #[test]
    fn a_failed_thread_is_reported_at_once() {
        let health = Arc::new(Health::new(Duration::from_secs(3600)));
        let reported = Reported::new(health.clone());
        reported.thread_failed("reader", "boom");
        let report = health.report();
        assert_eq!(report.problems[0].component, "agent");
        assert!(report.problems[0].reason.contains("reader failed: boom"));
    }
}
