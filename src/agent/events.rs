//! What can happen in the agent, as one trait: the list of methods is the list of events.
//!
//! The reader ([`super::file_server`]), the shipper, the monitor and the supervisor call
//! [`AgentEvents`] and nothing else to be observed: they never log, record a metric or touch
//! the health state themselves. What is done with an event is plugged in from outside:
//! [`super::report::Reported`] logs it, exports it as a metric and keeps the `wal`, `agent` and
//! `kafka` health conditions; tests plug in their own to watch the core. Events never affect
//! durability: an implementation that drops every event changes nothing on the data path.
//!
//! Methods are called on the hot path (per read, per delivery): implementations must be cheap
//! and must not block.

use std::io;
use std::path::Path;
use std::time::Duration;

use super::open_files::OpenFilesLimit;
use crate::kafka::BrokerObserver;

/// What went wrong with one file (it is retried; nothing is lost).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileTrouble {
    /// It could not be opened.
    Open,
    /// A read failed.
    Read,
    /// Its content could not be compared with its checkpoint (rewritten? drained?).
    Check,
}

/// Why reading waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PauseCause {
    /// The WAL holds `wal_max_bytes` not yet acknowledged.
    WalFull,
    /// The data directory's filesystem has less than `min_free_bytes` free.
    DiskLow,
}

/// The WAL and disk gauges the monitor samples once a second.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Gauges {
    /// WAL records not acknowledged by Kafka.
    pub pending_records: u64,
    /// Bytes of those records.
    pub pending_bytes: u64,
    /// Age of the oldest of them, in seconds.
    pub oldest_pending_age: f64,
    /// Size of `data_dir` on disk (`None` if it could not be measured).
    pub disk_bytes: Option<u64>,
    /// Free space on `data_dir`'s filesystem (`None` if unknown).
    pub disk_free: Option<u64>,
    /// Files followed.
    pub files_followed: u64,
}

/// One progress report of the backlog found at start (see `monitor::progress`).
#[derive(Debug, Clone, PartialEq)]
pub struct ProgressLine {
    /// Bytes of the backlog done.
    pub done: u64,
    /// The backlog at start.
    pub total: u64,
    /// Bytes per second since the last report.
    pub rate: f64,
    /// Seconds to go at that rate (`None` when nothing moved).
    pub eta_seconds: Option<f64>,
}

/// One method per event. The [`BrokerObserver`] part is handed to the Kafka producer.
pub trait AgentEvents: BrokerObserver + crate::etcd::EtcdEvents {
    // --- start and stop -------------------------------------------------------------------
    /// The agent opened its WAL and is about to start its threads.
    fn starting(&self, host: &str, data_dir: &Path, pending_chunks: u64, pending_bytes: u64);
    /// The filesystem holding `data_dir` reports a total size of 0 (some FUSE and network
    /// filesystems do): its free space means nothing, so the free-space guard is skipped there
    /// (a write that finds the disk full still stops the agent cleanly, losing nothing).
    fn disk_size_unknown(&self, data_dir: &Path);
    /// The open-files soft limit was raised (or already at the hard limit).
    fn open_files_limit(&self, limit: &OpenFilesLimit);
    /// The open-files soft limit could not be raised; fewer files are held open at once.
    fn open_files_not_raised(&self, error: &io::Error, soft_limit: Option<u64>);
    /// The collect entries accepted from etcd last time were loaded from the WAL state.
    fn etcd_cache_loaded(&self, entries: usize);
    /// The etcd entries kept in the WAL state could not be read, used or written (the entries
    /// in force are unaffected; a restart without etcd may then collect other files).
    fn etcd_cache_trouble(&self, error: &str);
    /// The agent stopped; `pending_bytes` wait in the WAL for the next start.
    fn stopped(&self, pending_bytes: u64);

    // --- the reader -------------------------------------------------------------------------
    /// Checkpoints were loaded from the WAL state.
    fn checkpoints_loaded(&self, count: usize);
    /// A checkpoint could not be decoded and is ignored (its file is matched by content).
    fn checkpoint_unreadable(&self, key: &str, error: &str);
    /// The collect entries changed (central configuration); a rescan follows at once.
    fn entries_changed(&self, entries: usize);
    /// A collect entry cannot be used as written: its glob (the entry is skipped) or its
    /// `multiline` (its files are read line by line).
    fn invalid_entry(&self, path: &str, error: &str);
    /// inotify cannot be used: changes are found by the periodic rescans alone.
    fn inotify_unavailable(&self, error: &str);
    /// A directory cannot be watched (tried again at the next scan).
    fn watch_failed(&self, dir: &Path, error: &str);
    /// A file is followed from `offset` of `stream`.
    fn file_followed(&self, path: &Path, stream: &str, offset: u64);
    /// A file closed while idle changed and was reopened.
    fn file_reopened(&self, path: &Path, offset: u64);
    /// A file read to its end and idle for `close_idle` was closed (its checkpoint kept).
    fn file_closed_idle(&self, path: &Path, offset: u64);
    /// A file whose collect entry was removed was closed; its checkpoint is kept.
    fn file_paused(&self, path: &Path, offset: u64);
    /// A file renamed away or deleted was read to its end and closed.
    fn file_drained(&self, path: &Path, offset: u64);
    /// A followed file was truncated (copytruncate?) at `offset`: a new stream starts.
    fn file_truncated(&self, path: &Path, offset: u64);
    /// A file was truncated or rewritten while not followed: a new stream.
    fn file_replaced_while_away(&self, path: &str);
    /// A file renamed while not followed (agent down, or closed while idle) was found in its
    /// directory and is drained; `rewritten`: as a new stream, its content having changed.
    fn file_renamed_while_away(&self, from: &str, to: &Path, rewritten: bool);
    /// The file of an unfinished checkpoint is gone or has no complete line; a copy of it is
    /// looked for.
    fn file_missing(&self, path: &str);
    /// A new file is a copy of a stream already read (copytruncate): that stream continues.
    fn copy_continued(&self, path: &str, stream: &str, offset: u64);
    /// A new file starts like a stream read further: a copy being written? looked at again at
    /// the next scan.
    fn copy_in_progress(&self, path: &str, size: u64);
    /// The copy of a truncated file is drained from `offset` (`resumed`: adopted earlier).
    fn copy_adopted(&self, copy: &Path, stream: &str, offset: u64, resumed: bool);
    /// Something failed with one file; it is retried.
    fn file_trouble(&self, path: &Path, trouble: FileTrouble, error: &io::Error);
    /// After a scan: `waiting` matched files wait for a descriptor, `followed` are open
    /// (reported after every scan, also when `waiting` is 0).
    fn files_waiting(&self, waiting: usize, followed: usize, soft_limit: Option<u64>);
    /// Reading waits (reported at every check while it does).
    fn reading_paused(
        &self,
        cause: PauseCause,
        reason: &str,
        pending_records: u64,
        pending_bytes: u64,
    );
    /// Reading goes on after a pause.
    fn reading_resumed(&self, pending_bytes: u64);
    /// Lines were read from `path` and committed to the WAL.
    fn read(&self, path: &str, lines: u64, bytes: u64);

    // --- the shipper ------------------------------------------------------------------------
    /// Kafka acknowledged a chunk of `lines` lines.
    fn delivered(&self, lines: u64);
    /// Kafka did not accept chunk `seq`; it stays in the WAL and is resent after `retry_in`.
    fn resend(&self, seq: u64, error: &str, retry_in: Duration);
    /// Records have waited on Kafka (`in_flight` chunks, `pending_bytes` in the WAL) for
    /// `stalled_for`, at least `stall_timeout_ms`, with neither an acknowledgement nor an error:
    /// a broker that answers but does not serve. Called on every check while it lasts.
    fn kafka_stalled(&self, stalled_for: Duration, in_flight: usize, pending_bytes: u64);
    /// The stall reported by [`AgentEvents::kafka_stalled`] ended: Kafka answers again.
    fn kafka_stall_ended(&self, lasted: Duration);
    /// The producer was recreated and everything unacknowledged queued again (a fatal error,
    /// or a stall); `reason` says why.
    fn producer_recreated(&self, error: &str);

    // --- host metrics ----------------------------------------------------------------------
    /// Sampling starts: rounds every `interval` into `topic`.
    fn metrics_sampling(&self, topic: &str, interval: Duration);
    /// `rounds` rounds of samples were written to the WAL and flushed.
    fn metrics_committed(&self, rounds: u64);
    /// `rounds` waiting rounds were removed from a full WAL to make room for a new one.
    fn metrics_dropped(&self, rounds: u64);
    /// Some sources could not be read (the round holds the others).
    fn metrics_unreadable(&self, problems: &[String]);
    /// On a reload, the producer was rebuilt with freshly read credentials; `unacknowledged`
    /// chunks were still in flight and are resent with the rest of the WAL.
    fn producer_reloaded(&self, unacknowledged: usize);
    /// On a reload, the new producer could not be built (an unreadable file): the old one
    /// stays.
    fn producer_reload_failed(&self, error: &str);
    /// A WAL record was moved to quarantine (the rest is shipped): `damaged` when its bytes
    /// failed their check, else it is intact but not a chunk this agent can read.
    fn quarantined(&self, seq: u64, reason: &str, damaged: bool);
    /// The shipper stopped with `chunks` unacknowledged; they are resent on start.
    fn stopped_unacknowledged(&self, chunks: usize);

    // --- the monitor ------------------------------------------------------------------------
    /// The WAL and disk gauges, once a second.
    fn gauges(&self, gauges: &Gauges);
    /// Progress on the backlog found at start.
    fn backlog_progress(&self, progress: &ProgressLine);
    /// The backlog found at start (`total` bytes) is shipped, after `seconds`.
    fn backlog_shipped(&self, total: u64, seconds: u64);

    // --- the supervisor ---------------------------------------------------------------------
    /// A thread the agent cannot run without ended; the agent stops.
    fn thread_ended(&self, thread: &str);
    /// A thread failed (error or panic); the agent stops.
    fn thread_failed(&self, thread: &str, error: &str);
}
