//! The reading loop: discovers files, reads complete lines, and commits each read to the WAL
//! together with the file's new checkpoint.
//!
//! Durability: every round's reads are appended to the WAL with their checkpoints in one atomic
//! sled batch and fsynced (`Wal::flush`) before the shipper is told about them and before the
//! files are read further. A crash before the fsync loses neither data nor position: the
//! checkpoint did not move, so the bytes are read again. A crash after it loses nothing either:
//! the bytes are in the WAL and are resent on start.
//!
//! Reconfiguration: with central configuration, the collect entries can change while running
//! ([`FileServer::with_remote_entries`]). The loop then rebuilds its [`Discovery`] and rescans at
//! once. A followed file that no entry matches any more is either *rotated away* (its path no
//! longer holds it: drained to EOF, then finished, as always) or *dropped by the configuration*
//! (still at its path: closed at once, its checkpoint kept unfinished, so when an entry matches
//! it again the lines written meanwhile are read from where it stopped); see [`unmatched`].
//!
//! Backpressure: when the WAL holds `wal_max_bytes` not yet acknowledged by Kafka, no file is
//! read until acknowledgements free space. Lines wait in their files; none is dropped.

use std::collections::HashMap;
use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_wal::{Wal, WalError};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use super::checkpoint::{Checkpoint, Checkpoints, PreviousStream};
use super::chunk::Chunk;
use super::discovery::{Candidate, ChangeWatcher, Discovery, RemoteEntries};
use super::disk::{DiskGuard, DiskRoom};
use super::framing::frame;
use super::identity::{Fingerprint, PhysicalFile};
use super::monitor::Backlog;
use super::shipper::ShipQueue;
use crate::config::{CollectEntry, StartPosition};
use crate::shutdown::Shutdown;
use crate::telemetry::{names, Health};

/// Bytes read in one round across all files before the round is committed (group commit).
const ROUND_BYTES: usize = 1024 * 1024;
/// Reads from one file in one round, so one busy file cannot starve the others.
const READS_PER_FILE_PER_ROUND: usize = 8;

/// What the reading loop needs to know.
#[derive(Debug, Clone)]
pub struct ReaderSettings {
    /// Lines longer than this are cut.
    pub max_line_bytes: usize,
    /// Size of one read (one WAL record at most, unless a line is longer).
    pub read_chunk_bytes: usize,
    /// Interval between full rescans.
    pub rescan_interval: Duration,
    /// How long a rotated-away or deleted file is followed after its last growth.
    pub rotate_wait: Duration,
    /// A matched file read to its end and unchanged this long is closed (see
    /// [`FileServer::close_idle`]).
    pub close_idle: Duration,
    /// Where to start in files found by the first scan without a checkpoint.
    pub start_position: StartPosition,
}

/// A file being followed.
struct Tailed {
    file: File,
    checkpoint: Checkpoint,
    path: PathBuf,
    topic: String,
    /// Matched a collect entry in the latest scan; if not, it was renamed away or deleted and is
    /// drained, then closed.
    matched: bool,
    last_size: u64,
    last_growth: Instant,
    window: usize,
}

/// A matched file closed while idle (read to its end, unchanged for `close_idle`): what it
/// looked like then. Reopened when its size or modification time differs.
struct Closed {
    path: PathBuf,
    topic: String,
    size: u64,
    modified: Option<std::time::SystemTime>,
}

/// What to do with a followed file that no collect entry matched in the latest scan.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unmatched {
    /// Renamed away or deleted (or already draining): read to EOF, close after `rotate_wait`,
    /// mark the checkpoint finished.
    Drain,
    /// Its entry was removed from the configuration: close now, read nothing more, keep the
    /// checkpoint unfinished so a returning entry resumes it.
    Pause,
}

/// The removed-versus-rotated decision. A file is paused only when it was matched before this
/// scan, the entries changed just before it, and its path still holds the very same file: then
/// nothing happened to the file, only to the configuration. Everything else is a rotation (a
/// file already draining keeps draining even if the configuration changes meanwhile).
pub fn unmatched(was_matched: bool, entries_changed: bool, still_at_path: bool) -> Unmatched {
    if was_matched && entries_changed && still_at_path {
        Unmatched::Pause
    } else {
        Unmatched::Drain
    }
}

/// Entries that come from outside the config file (etcd), merged with the file's.
struct RemoteSource {
    local: Vec<CollectEntry>,
    default_start: StartPosition,
    entries: RemoteEntries,
    generation: u64,
}

/// A read ready to be committed.
struct PendingRead {
    payload: Vec<u8>,
    checkpoint: Checkpoint,
    /// Lines (pieces) in the chunk, for metrics.
    lines: u64,
    /// Source bytes in the chunk, for metrics.
    bytes: u64,
}

/// Errors that stop the reading loop (the agent then exits; a restart resumes safely).
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A checkpoint could not be encoded: nothing of it was written.
    #[error("cannot encode the checkpoint of {path}: {error}")]
    Encode {
        /// The file's path.
        path: String,
        /// The serializer's error (in the message, so not repeated as a source).
        error: bincode::Error,
    },
}

/// Encodes `checkpoint` with its state key, or says which file's could not be.
fn encoded(checkpoint: &Checkpoint) -> Result<(Vec<u8>, Vec<u8>), ReaderError> {
    let value = checkpoint.encode().map_err(|error| ReaderError::Encode {
        path: checkpoint.path.clone(),
        error,
    })?;
    Ok((checkpoint.key(), value))
}

/// Why reading waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Pause {
    /// The WAL holds `wal_max_bytes` not yet acknowledged.
    WalFull,
    /// The data directory's filesystem has less than `min_free_bytes` free.
    DiskLow { free: u64 },
}

/// While reading is paused, the reason is logged again this often (with what is pending).
const PAUSE_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The reading loop and its state.
pub struct FileServer {
    settings: ReaderSettings,
    discovery: Discovery,
    wal: Wal,
    checkpoints: Checkpoints,
    files: HashMap<PhysicalFile, Tailed>,
    order: Vec<PhysicalFile>,
    next_start: usize,
    first_scan: bool,
    watcher: ChangeWatcher,
    wake: Receiver<()>,
    queue: ShipQueue,
    remote: Option<RemoteSource>,
    followed: Arc<AtomicU64>,
    /// Files matched but waiting for a descriptor in the latest scan (for `/status`).
    waiting: Arc<AtomicU64>,
    backlog: Option<Arc<Backlog>>,
    /// Pauses reading while the data directory's filesystem is (nearly) full.
    disk: Option<DiskGuard>,
    /// Streams whose truncated file was already searched for a copy in this process (see
    /// [`FileServer::seek_copy`]); keyed by physical file and stream.
    copies_sought: HashSet<(PhysicalFile, String)>,
    /// When "files wait for a descriptor" was last logged (`None`: none waits).
    waiting_logged: Option<Instant>,
    /// Files closed while idle, by identity (see [`FileServer::close_idle`]).
    closed: HashMap<PhysicalFile, Closed>,
    /// The latest scan left files waiting for a descriptor: files read to their end are closed
    /// at once, so that every file gets its turn.
    starved: bool,
}

impl FileServer {
    /// Loads checkpoints from the WAL state. `wake` is poked by inotify events and by the
    /// shipper when acknowledgements free WAL space.
    pub fn new(
        settings: ReaderSettings,
        discovery: Discovery,
        wal: Wal,
        watcher: ChangeWatcher,
        wake: Receiver<()>,
        queue: ShipQueue,
    ) -> Result<FileServer, ReaderError> {
        let mut loaded = Vec::new();
        for item in wal.state_scan_prefix(super::checkpoint::KEY_PREFIX.as_bytes()) {
            let (key, value) = item?;
            match Checkpoint::decode(&value) {
                Ok(checkpoint) => loaded.push(checkpoint),
                Err(error) => tracing::error!(
                    key = %String::from_utf8_lossy(&key),
                    %error,
                    "unreadable checkpoint ignored; its file will be matched by content"
                ),
            }
        }
        tracing::info!(checkpoints = loaded.len(), "checkpoints loaded");
        Ok(FileServer {
            settings,
            discovery,
            wal,
            checkpoints: Checkpoints::load(loaded),
            files: HashMap::new(),
            order: Vec::new(),
            next_start: 0,
            first_scan: true,
            watcher,
            wake,
            queue,
            remote: None,
            followed: Arc::new(AtomicU64::new(0)),
            waiting: Arc::new(AtomicU64::new(0)),
            backlog: None,
            disk: None,
            copies_sought: HashSet::new(),
            waiting_logged: None,
            closed: HashMap::new(),
            starved: false,
        })
    }

    /// Reports the unread bytes found by the first scan to `backlog` (for progress logs).
    pub fn with_backlog(mut self, backlog: Arc<Backlog>) -> FileServer {
        self.backlog = Some(backlog);
        self
    }

    /// Pauses reading while `guard` finds too little free space (see [`super::disk`]).
    pub fn with_disk_guard(mut self, guard: DiskGuard) -> FileServer {
        self.disk = Some(guard);
        self
    }

    /// Why reading must wait now, if it must: the WAL is full, or its disk nearly is.
    fn must_wait(&self) -> Option<Pause> {
        if self.wal.is_full() {
            return Some(Pause::WalFull);
        }
        match self.disk.as_ref().map(DiskGuard::check) {
            Some(DiskRoom::Low { free }) => Some(Pause::DiskLow { free }),
            _ => None,
        }
    }

    /// Bytes written to the followed files past their checkpoints.
    fn unread_bytes(&self) -> u64 {
        self.files
            .values()
            .filter_map(|t| {
                let size = t.file.metadata().ok()?.len();
                Some(size.saturating_sub(t.checkpoint.offset))
            })
            .sum()
    }

    /// Makes the collect entries `local ++ remote` and follows changes of `remote` while running
    /// (checked on every loop iteration).
    pub fn with_remote_entries(
        mut self,
        local: Vec<CollectEntry>,
        default_start: StartPosition,
        remote: RemoteEntries,
    ) -> FileServer {
        self.remote = Some(RemoteSource {
            local,
            default_start,
            entries: remote,
            generation: u64::MAX,
        });
        self.refresh_discovery();
        self
    }

    /// The number of files followed, updated after every scan (for the agent registry).
    pub fn followed_files(&self) -> Arc<AtomicU64> {
        self.followed.clone()
    }

    /// The count of files waiting for a descriptor after the latest scan, kept up to date.
    pub fn waiting_files(&self) -> Arc<AtomicU64> {
        self.waiting.clone()
    }

    /// Rebuilds the discovery if the remote entries changed; returns whether they did.
    fn refresh_discovery(&mut self) -> bool {
        let Some(remote) = self.remote.as_mut() else {
            return false;
        };
        let Some((generation, entries)) = remote.entries.changed_since(remote.generation) else {
            return false;
        };
        remote.generation = generation;
        let mut all = remote.local.clone();
        all.extend(entries);
        tracing::info!(entries = all.len(), "collect entries changed; rescanning");
        self.discovery = Discovery::new(&all, remote.default_start);
        true
    }

    /// Runs until `shutdown`; then commits nothing further (everything committed is in the WAL).
    pub fn run(mut self, shutdown: &Shutdown) -> Result<(), ReaderError> {
        let mut last_scan: Option<Instant> = None;
        // While paused: whether for lack of disk space (else the WAL is full).
        let mut paused: Option<bool> = None;
        let mut last_pause_log = Instant::now();
        while !shutdown.is_triggered() {
            let scan_due = last_scan.is_none_or(|t| t.elapsed() >= self.settings.rescan_interval);
            let reconfigured = self.refresh_discovery();
            if scan_due || reconfigured || self.watcher.take_changed() {
                self.scan(reconfigured)?;
                if last_scan.is_none() {
                    if let Some(backlog) = &self.backlog {
                        backlog.set_files_at_start(self.unread_bytes());
                    }
                }
                last_scan = Some(Instant::now());
            }
            if let Some(pause) = self.must_wait() {
                let reason = match (&pause, &self.disk) {
                    (Pause::DiskLow { free }, Some(guard)) => guard.reason(*free),
                    _ => "WAL full: reading paused until Kafka acknowledges".to_string(),
                };
                let disk_low = matches!(pause, Pause::DiskLow { .. });
                let first = paused != Some(disk_low);
                if first || last_pause_log.elapsed() >= PAUSE_LOG_INTERVAL {
                    metrics::gauge!(names::AGENT_READING_PAUSED).set(1.0);
                    Health::global().fail("wal", reason.clone());
                    tracing::warn!(
                        pending_records = self.wal.pending_records(),
                        pending_bytes = self.wal.pending_bytes(),
                        "{reason} (backpressure; nothing is dropped)"
                    );
                    last_pause_log = Instant::now();
                }
                paused = Some(disk_low);
                let _ = self.wake.recv_timeout(Duration::from_millis(100));
                continue;
            }
            if paused.take().is_some() {
                metrics::gauge!(names::AGENT_READING_PAUSED).set(0.0);
                Health::global().recover("wal");
                tracing::info!(
                    pending_bytes = self.wal.pending_bytes(),
                    "reading resumed: the WAL and its disk have room again"
                );
            }
            let progressed = self.read_round()?;
            self.close_drained()?;
            if !progressed {
                let _ = self.wake.recv_timeout(Duration::from_millis(250));
            }
        }
        Ok(())
    }

    /// One iteration of [`FileServer::run`]'s loop body, without its waiting and its WAL-full
    /// check: a rescan if `scan`, one read round (committed and fsynced), then the close of
    /// drained files. Returns whether the round committed records.
    ///
    /// The seam through which `agent::reader_model` drives the reader deterministically (the
    /// test decides when files change, when the reader scans and reads, and when it restarts);
    /// `run` performs the same three steps, timed by the rescan interval and wake-ups.
    #[cfg(test)]
    pub(crate) fn round(&mut self, scan: bool) -> Result<bool, ReaderError> {
        if scan {
            self.scan(false)?;
        }
        let progressed = self.read_round()?;
        self.close_drained()?;
        Ok(progressed)
    }

    /// Re-evaluates the globs: new files are opened and positioned, files no longer matched
    /// are marked for draining, or closed when `entries_changed` removed their entry.
    fn scan(&mut self, entries_changed: bool) -> Result<(), ReaderError> {
        // Idle files are closed here, once per scan rather than once per read round: the
        // descriptors they free go to waiting files in this very scan.
        self.close_idle();
        self.watcher.watch(&self.discovery.watch_dirs());
        let mut was_matched = HashSet::new();
        for (key, tailed) in self.files.iter_mut() {
            if tailed.matched {
                was_matched.insert(*key);
            }
            tailed.matched = false;
        }
        let mut new_checkpoints = Vec::new();
        let mut rewritten = Vec::new();
        // Files not opened for lack of a descriptor: counted, logged once per interval. The
        // budget keeps descriptors for the WAL, Kafka and the endpoint (open_files::RESERVED).
        let mut waiting = 0usize;
        let budget = super::open_files::file_budget();
        let mut seen_closed = HashSet::new();
        for candidate in self.discovery.scan() {
            let Ok(metadata) = std::fs::metadata(&candidate.path) else {
                continue;
            };
            let physical = PhysicalFile::from_metadata(&metadata);
            if let Some(closed) = self.closed.get_mut(&physical) {
                seen_closed.insert(physical);
                closed.path = candidate.path.clone();
                closed.topic = candidate.topic.clone();
                if metadata.len() == closed.size && metadata.modified().ok() == closed.modified {
                    continue;
                }
                // Changed: reopened below (it stays in `closed` until it is open), and
                // `open_new` checks its identity against its checkpoint before reading on.
            }
            if let Some(tailed) = self.files.get_mut(&physical) {
                tailed.matched = true;
                tailed.path = candidate.path.clone();
                tailed.topic = candidate.topic.clone();
                // Content rewritten in place without shrinking below our offset: only the
                // fingerprint of the first line tells.
                if let Ok(Some(fingerprint)) = Fingerprint::of_file(&tailed.file) {
                    if fingerprint != tailed.checkpoint.fingerprint {
                        rewritten.push(physical);
                    }
                }
                continue;
            }
            if budget.is_some_and(|budget| self.files.len() >= budget) {
                waiting += 1;
                continue;
            }
            match self.open_new(&candidate, &mut new_checkpoints) {
                Ok(Some((tailed, is_new))) => {
                    if is_new {
                        new_checkpoints.push(tailed.checkpoint.clone());
                    }
                    self.track(tailed);
                }
                Ok(None) => {}
                Err(error) if super::open_files::is_out_of_descriptors(&error) => waiting += 1,
                Err(error) => tracing::warn!(
                    path = %candidate.path.display(), %error, "cannot open file; will retry"
                ),
            }
        }
        self.report_waiting(waiting);
        self.starved = waiting > 0;
        self.closed_not_seen(&seen_closed, entries_changed, &mut new_checkpoints);
        // A file just renamed away (or deleted) is followed for `rotate_wait` from now at least:
        // its writer may go on appending until it reopens, however long the file was idle before.
        for key in &was_matched {
            if let Some(tailed) = self.files.get_mut(key) {
                if !tailed.matched {
                    tailed.last_growth = Instant::now();
                }
            }
        }
        for key in rewritten {
            if let Err(error) = self.on_truncated(&key, &mut new_checkpoints) {
                tracing::warn!(file = ?key, %error, "cannot check the rewritten file; will retry");
            }
        }
        if entries_changed {
            self.pause_removed(&was_matched);
        }
        if self.first_scan {
            self.first_scan = false;
            self.resume_rotated_while_down(&mut new_checkpoints);
        }
        if !new_checkpoints.is_empty() {
            self.commit_checkpoints(new_checkpoints)?;
        }
        self.followed
            .store(self.files.len() as u64, Ordering::Relaxed);
        Ok(())
    }

    /// Publishes how many matched files wait for a descriptor, and says so at most once per
    /// [`PAUSE_LOG_INTERVAL`] (a scan runs every second or so; one line per file per scan
    /// would flood the log).
    fn report_waiting(&mut self, waiting: usize) {
        metrics::gauge!(names::AGENT_FILES_WAITING).set(waiting as f64);
        self.waiting.store(waiting as u64, Ordering::Relaxed);
        if waiting == 0 {
            if self.waiting_logged.take().is_some() {
                tracing::info!("every matched file is followed again");
            }
            return;
        }
        if self
            .waiting_logged
            .is_none_or(|at| at.elapsed() >= PAUSE_LOG_INTERVAL)
        {
            tracing::warn!(
                waiting,
                followed = self.files.len(),
                soft_limit = ?super::open_files::soft_limit(),
                "open-files limit reached: files wait for a descriptor (raise the limit, \
                 e.g. LimitNOFILE= in the service unit)"
            );
            self.waiting_logged = Some(Instant::now());
        }
    }

    /// Closes the files whose entry the latest configuration change removed (see
    /// [`unmatched`]). Their checkpoints stay as committed, unfinished: nothing is read past
    /// them until an entry matches the file again.
    fn pause_removed(&mut self, was_matched: &HashSet<PhysicalFile>) {
        let paused: Vec<PhysicalFile> = self
            .files
            .iter()
            .filter(|(key, tailed)| {
                if tailed.matched {
                    return false;
                }
                let still_at_path = std::fs::metadata(&tailed.path)
                    .is_ok_and(|m| PhysicalFile::from_metadata(&m) == **key);
                unmatched(was_matched.contains(*key), true, still_at_path) == Unmatched::Pause
            })
            .map(|(key, _)| *key)
            .collect();
        for key in paused {
            if let Some(tailed) = self.files.remove(&key) {
                tracing::info!(
                    path = %tailed.path.display(),
                    offset = tailed.checkpoint.offset,
                    "collect entry removed: file closed, checkpoint kept"
                );
            }
        }
        self.order.retain(|k| self.files.contains_key(k));
    }

    fn track(&mut self, tailed: Tailed) {
        let key = tailed.checkpoint.file;
        if self.closed.remove(&key).is_some() {
            tracing::debug!(
                path = %tailed.path.display(),
                offset = tailed.checkpoint.offset,
                "idle file changed; reopened"
            );
        } else {
            tracing::info!(
                path = %tailed.path.display(),
                stream = tailed.checkpoint.stream.as_str(),
                offset = tailed.checkpoint.offset,
                "following file"
            );
        }
        self.order.push(key);
        self.files.insert(key, tailed);
    }

    /// Opens a file not followed yet and decides where to read from. Returns `None` while its
    /// first line is incomplete (no fingerprint yet). The flag says whether the checkpoint is
    /// new or changed and must be written.
    /// Checkpoints of copies adopted on the way (see [`FileServer::seek_copy`]) go to `adopted`.
    fn open_new(
        &mut self,
        candidate: &Candidate,
        adopted: &mut Vec<Checkpoint>,
    ) -> io::Result<Option<(Tailed, bool)>> {
        let file = File::open(&candidate.path)?;
        let metadata = file.metadata()?;
        let physical = PhysicalFile::from_metadata(&metadata);
        let size = metadata.len();
        let fingerprint = Fingerprint::of_file(&file)?;
        if let Some(existing) = self.checkpoints.get(&physical) {
            let gone =
                size < existing.offset || fingerprint.is_some_and(|fp| fp != existing.fingerprint);
            if gone {
                // Truncated or rewritten while not followed (copytruncate while the agent was
                // down): the unread tail of the content it had may be in a copy.
                let old = existing.clone();
                self.seek_copy(&old, &candidate.path, &candidate.topic, adopted);
            }
        }
        let Some(fingerprint) = fingerprint else {
            return Ok(None);
        };
        let path = candidate.path.display().to_string();
        let (checkpoint, changed) = match self.checkpoints.get(&physical) {
            Some(existing) if existing.fingerprint == fingerprint && size >= existing.offset => {
                let mut checkpoint = existing.clone();
                let changed = checkpoint.finished || checkpoint.path != path;
                checkpoint.finished = false;
                checkpoint.path = path;
                (checkpoint, changed)
            }
            Some(existing) => {
                tracing::info!(
                    path,
                    "file was truncated or rewritten while not followed; new stream"
                );
                let mut checkpoint = existing.clone();
                checkpoint.restart_after_truncation(fingerprint);
                checkpoint.path = path;
                (checkpoint, true)
            }
            None => {
                match self.first_checkpoint(&file, physical, fingerprint, size, candidate, path)? {
                    Some(checkpoint) => (checkpoint, true),
                    None => return Ok(None),
                }
            }
        };
        Ok(Some((
            Tailed {
                file,
                checkpoint,
                path: candidate.path.clone(),
                topic: candidate.topic.clone(),
                matched: true,
                last_size: size,
                last_growth: Instant::now(),
                window: self.settings.read_chunk_bytes,
            },
            changed,
        )))
    }

    /// The checkpoint of a file without one: a copy of a known stream continues it; otherwise a
    /// new stream from the beginning (or the end, for `start_position = end` in the first scan).
    /// `None` while the file looks like a copy still being written (see [`CopyCheck`]): the next
    /// scan decides.
    fn first_checkpoint(
        &self,
        file: &File,
        physical: PhysicalFile,
        fingerprint: Fingerprint,
        size: u64,
        candidate: &Candidate,
        path: String,
    ) -> io::Result<Option<Checkpoint>> {
        match self.continue_copy(file, physical, fingerprint, size, &path)? {
            CopyCheck::Continues(checkpoint) => return Ok(Some(checkpoint)),
            CopyCheck::InProgress => return Ok(None),
            CopyCheck::NotACopy => {}
        }
        let start = if self.first_scan && candidate.start_position == StartPosition::End {
            last_line_end(file, size)?
        } else {
            0
        };
        let prefix_crc = crc_of_prefix(file, start)?;
        Ok(Some(Checkpoint::start(
            physical,
            fingerprint,
            0,
            start,
            prefix_crc,
            path,
        )))
    }

    /// Whether `file`, not followed yet and starting like a known stream, holds a byte copy of
    /// that stream's read part (copytruncate rotation, the copy matched by a glob such as
    /// `app.log*`): then it continues that stream where it was.
    ///
    /// A copy is written front to back, so a scan can see it before it holds everything that
    /// was read of its original. Read as a new stream, its lines would be shipped a second time
    /// under other ids. So a file shorter than the read part of a stream with its fingerprint is
    /// a copy in progress while it grows, or while its bytes equal the start of that stream's
    /// file, still followed and not yet truncated; it is looked at again at the next scan.
    fn continue_copy(
        &self,
        file: &File,
        physical: PhysicalFile,
        fingerprint: Fingerprint,
        size: u64,
        path: &str,
    ) -> io::Result<CopyCheck> {
        let mut in_progress = false;
        for candidate in self.checkpoints.copy_candidates(fingerprint, &physical) {
            if candidate.offset == 0 {
                continue;
            }
            if candidate.offset > size {
                in_progress = in_progress || self.copy_in_progress(file, size, &candidate)?;
                continue;
            }
            if crc_of_prefix(file, candidate.offset)? == candidate.prefix_crc {
                tracing::info!(
                    path,
                    stream = candidate.stream.as_str(),
                    offset = candidate.offset,
                    "file is a copy of a stream already read (copytruncate); continuing that stream"
                );
                let mut checkpoint = Checkpoint::start(
                    physical,
                    fingerprint,
                    0,
                    candidate.offset,
                    candidate.prefix_crc,
                    path.to_string(),
                );
                checkpoint.stream = candidate.stream;
                return Ok(CopyCheck::Continues(checkpoint));
            }
        }
        if in_progress {
            tracing::debug!(
                path,
                size,
                "file starts like a stream read further: a copy being written? looking again later"
            );
            return Ok(CopyCheck::InProgress);
        }
        Ok(CopyCheck::NotACopy)
    }

    /// Whether `file` (`size` bytes when looked at, fewer than `candidate` was read to) is a copy
    /// of `candidate`'s content still being written: it grew meanwhile, or its bytes are the
    /// first bytes of the followed file whose current stream is `candidate`'s.
    fn copy_in_progress(
        &self,
        file: &File,
        size: u64,
        candidate: &PreviousStream,
    ) -> io::Result<bool> {
        if file.metadata()?.len() != size {
            return Ok(true);
        }
        let original = self
            .files
            .values()
            .find(|tailed| tailed.checkpoint.stream == candidate.stream);
        if let Some(original) = original {
            return same_prefix(file, &original.file, size);
        }
        // The original may be closed while idle: compared through its path, if it still holds it.
        for (key, closed) in &self.closed {
            if self
                .checkpoints
                .get(key)
                .is_none_or(|c| c.stream != candidate.stream)
            {
                continue;
            }
            let Ok(original) = File::open(&closed.path) else {
                continue;
            };
            if PhysicalFile::from_metadata(&original.metadata()?) == *key {
                return same_prefix(file, &original, size);
            }
        }
        Ok(false)
    }

    /// After a restart: files whose checkpoint is unfinished but that no glob matches any more
    /// were renamed away while the agent was down. If they are still in the same directory,
    /// drain them. If the file no longer holds the content its checkpoint describes, or is gone
    /// (copytruncated, then renamed or deleted, around the stop), the unread tail of that
    /// content can only be in a copy: look for one as after a truncation
    /// ([`FileServer::seek_copy`]); a file found with other content is drained as a new
    /// stream, as a followed file would be. Checkpoints to write go to `out`.
    fn resume_rotated_while_down(&mut self, out: &mut Vec<Checkpoint>) {
        let orphans: Vec<Checkpoint> = self
            .checkpoints
            .iter()
            .filter(|c| {
                !c.finished
                    && !self.files.contains_key(&c.file)
                    && !self.closed.contains_key(&c.file)
            })
            .cloned()
            .collect();
        self.resume_orphans(orphans, out);
    }

    /// Unfinished checkpoints of files not followed and not matched: drained where they are
    /// found in their directory (same content: from the checkpoint; other content: as a new
    /// stream, after looking for a copy of the old), or looked for as a copy when gone.
    fn resume_orphans(&mut self, orphans: Vec<Checkpoint>, out: &mut Vec<Checkpoint>) {
        for checkpoint in orphans {
            let Some(dir) = Path::new(&checkpoint.path).parent() else {
                continue;
            };
            let Some(topic) = self.topic_for(&checkpoint.path) else {
                continue;
            };
            let original = PathBuf::from(&checkpoint.path);
            let found = find_in_dir(dir, |p| p == checkpoint.file).and_then(|(path, file)| {
                let size = file.metadata().ok()?.len();
                let fingerprint = Fingerprint::of_file(&file).ok()?;
                Some((path, file, size, fingerprint))
            });
            let (file, size, checkpoint) = match found {
                Some((path, file, size, Some(fp)))
                    if fp == checkpoint.fingerprint && size >= checkpoint.offset =>
                {
                    tracing::info!(
                        from = checkpoint.path,
                        to = %path.display(),
                        "file was renamed while not followed (agent down, or file closed while idle); draining it"
                    );
                    (file, size, checkpoint)
                }
                Some((path, file, size, Some(fp))) => {
                    tracing::info!(
                        from = checkpoint.path,
                        to = %path.display(),
                        "file was renamed and rewritten while not followed; draining it as a new stream"
                    );
                    self.seek_copy(&checkpoint, &original, &topic, out);
                    let mut checkpoint = checkpoint;
                    checkpoint.restart_after_truncation(fp);
                    out.push(checkpoint.clone());
                    (file, size, checkpoint)
                }
                _ => {
                    tracing::debug!(
                        path = checkpoint.path,
                        "file of an unfinished checkpoint is gone or has no complete line; looking for a copy"
                    );
                    self.seek_copy(&checkpoint, &original, &topic, out);
                    continue;
                }
            };
            // Followed under its last collected path, as a file renamed while followed is: the
            // checkpoint keeps naming a path the entries match, so a second restart before it
            // is drained still finds its topic and resumes it.
            self.track(Tailed {
                file,
                path: original,
                topic,
                matched: false,
                last_size: size,
                last_growth: Instant::now(),
                window: self.settings.read_chunk_bytes,
                checkpoint,
            });
        }
    }

    /// The topic the collect entries give to `path` (by its old name, for renamed files).
    fn topic_for(&self, path: &str) -> Option<String> {
        self.discovery.topic_for(Path::new(path))
    }

    /// Reads from every followed file once (up to a few chunks each) and commits the round.
    fn read_round(&mut self) -> Result<bool, ReaderError> {
        let mut reads: Vec<PendingRead> = Vec::new();
        let mut state_only: Vec<Checkpoint> = Vec::new();
        let mut round_bytes = 0usize;
        let count = self.order.len();
        if count == 0 {
            return Ok(false);
        }
        let start = self.next_start % count;
        self.next_start = self.next_start.wrapping_add(1);
        for i in 0..count {
            let key = self.order[(start + i) % count];
            for _ in 0..READS_PER_FILE_PER_ROUND {
                if round_bytes >= ROUND_BYTES {
                    break;
                }
                match self.read_one(&key, &mut state_only) {
                    Ok(Some(read)) => {
                        round_bytes += read.payload.len();
                        reads.push(read);
                    }
                    Ok(None) => break,
                    Err(error) => {
                        tracing::warn!(file = ?key, %error, "read failed; will retry");
                        break;
                    }
                }
            }
        }
        if reads.is_empty() && state_only.is_empty() {
            return Ok(false);
        }
        let mut states: Vec<(Vec<u8>, Vec<u8>)> =
            Vec::with_capacity(reads.len() + state_only.len());
        for checkpoint in state_only.iter().chain(reads.iter().map(|r| &r.checkpoint)) {
            states.push(encoded(checkpoint)?);
        }
        // The last write of a key in a batch wins, so a file read twice in one round ends at its
        // latest checkpoint.
        let payloads: Vec<&[u8]> = reads.iter().map(|r| r.payload.as_slice()).collect();
        let state_refs: Vec<(&[u8], Option<&[u8]>)> = states
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        let seqs = self.wal.append(&payloads, &state_refs)?;
        self.wal.flush()?;
        for read in &reads {
            metrics::counter!(names::AGENT_READ_LINES, "file" => read.checkpoint.path.clone())
                .increment(read.lines);
            metrics::counter!(names::AGENT_READ_BYTES, "file" => read.checkpoint.path.clone())
                .increment(read.bytes);
        }
        for checkpoint in state_only
            .into_iter()
            .chain(reads.into_iter().map(|r| r.checkpoint))
        {
            self.checkpoints.set(checkpoint);
        }
        self.queue.push(&seqs);
        Ok(!seqs.is_empty())
    }

    /// One read from one file: `None` when there is nothing complete to commit.
    fn read_one(
        &mut self,
        key: &PhysicalFile,
        state_only: &mut Vec<Checkpoint>,
    ) -> io::Result<Option<PendingRead>> {
        let settings = self.settings.clone();
        let Some(tailed) = self.files.get_mut(key) else {
            return Ok(None);
        };
        let size = tailed.file.metadata()?.len();
        if size != tailed.last_size {
            tailed.last_size = size;
            tailed.last_growth = Instant::now();
        }
        // Truncated, or rewritten and grown past our offset again before we looked: a file only
        // grows, so a first line that is no longer the checkpoint's (or no longer complete)
        // means new content. Checked before every read, not only at rescans (which check it
        // too): a rescan may be a second away, and reading on at the old offset would ship the
        // new content's bytes as the old stream's lines.
        let rewritten = size > tailed.checkpoint.offset
            && Fingerprint::of_file(&tailed.file)? != Some(tailed.checkpoint.fingerprint);
        if size < tailed.checkpoint.offset || rewritten {
            self.on_truncated(key, state_only)?;
            return Ok(None);
        }
        let available = size - tailed.checkpoint.offset;
        if available == 0 {
            return Ok(None);
        }
        let idle = tailed.last_growth.elapsed() >= settings.rotate_wait;
        loop {
            let want = (tailed.window as u64).min(available) as usize;
            let mut buf = vec![0u8; want];
            let n = read_full_at(&tailed.file, &mut buf, tailed.checkpoint.offset)?;
            buf.truncate(n);
            let at_eof = (n as u64) == available;
            let flush_partial = !tailed.matched && idle && at_eof;
            let framed = frame(
                &buf,
                settings.max_line_bytes,
                flush_partial,
                tailed.checkpoint.mid_line,
            );
            if framed.len == 0 {
                if n == want && tailed.window <= settings.max_line_bytes {
                    tailed.window = (tailed.window * 2).min(settings.max_line_bytes + 1);
                    continue;
                }
                return Ok(None);
            }
            tailed.window = settings.read_chunk_bytes;
            buf.truncate(framed.len);
            let chunk = Chunk {
                stream: tailed.checkpoint.stream.0.clone(),
                path: tailed.path.display().to_string(),
                topic: tailed.topic.clone(),
                start_offset: tailed.checkpoint.offset,
                read_at: now_rfc3339(),
                starts_mid_line: tailed.checkpoint.mid_line,
                cuts: framed.cuts,
                partial_end: framed.partial_end,
                data: buf,
            };
            // Encoded before the checkpoint moves: a chunk that cannot be encoded is read again
            // next round (and the error logged each time), never skipped.
            let payload = chunk.encode().map_err(|error| {
                io::Error::other(format!("cannot encode the chunk read: {error}"))
            })?;
            let mut checkpoint = tailed.checkpoint.clone();
            checkpoint.advance(&chunk.data, framed.ends_mid_line);
            checkpoint.path = chunk.path.clone();
            tailed.checkpoint = checkpoint.clone();
            return Ok(Some(PendingRead {
                payload,
                checkpoint,
                lines: chunk.piece_count() as u64,
                bytes: chunk.data.len() as u64,
            }));
        }
    }

    /// The followed file shrank below its checkpoint, or its first line changed: copytruncate
    /// rotation (or a rewrite). The unread tail of the old content is looked for in a copy next
    /// to the file; the file itself starts a new stream from 0 once its first line is complete.
    /// The checkpoints to write (the file's new one, an adopted copy's) go to `out`.
    fn on_truncated(&mut self, key: &PhysicalFile, out: &mut Vec<Checkpoint>) -> io::Result<()> {
        let Some(tailed) = self.files.get(key) else {
            return Ok(());
        };
        let old = tailed.checkpoint.clone();
        let path = tailed.path.clone();
        let topic = tailed.topic.clone();
        // The old content's unread tail is only in a copy, if anywhere. Look for it now, not once
        // the new content has a first line: an idle writer may not write one for hours, and the
        // copy may be compressed or deleted meanwhile.
        self.seek_copy(&old, &path, &topic, out);
        let Some(tailed) = self.files.get_mut(key) else {
            return Ok(());
        };
        let Some(fingerprint) = Fingerprint::of_file(&tailed.file)? else {
            // The new content has no complete first line yet; its stream starts once it has.
            return Ok(());
        };
        tracing::info!(
            path = %tailed.path.display(),
            offset = old.offset,
            "file truncated (copytruncate?); starting a new stream"
        );
        tailed.checkpoint.restart_after_truncation(fingerprint);
        out.push(tailed.checkpoint.clone());
        Ok(())
    }

    /// Looks once per process for a copy of the content `old` describes, now gone from `path`,
    /// and drains it as `old`'s stream (see [`FileServer::adopt_copy`]). Once, because the
    /// search opens every file of the directory, and a truncated file can stay without a first
    /// line (so without a new stream) for a long time; a restart looks again. A newly adopted
    /// copy's checkpoint goes to `adopted`, to be committed with the round: from then on a
    /// restart resumes the copy by its own checkpoint.
    fn seek_copy(
        &mut self,
        old: &Checkpoint,
        path: &Path,
        topic: &str,
        adopted: &mut Vec<Checkpoint>,
    ) {
        if !self.copies_sought.insert((old.file, old.stream.0.clone())) {
            return;
        }
        if let Some(dir) = path.parent() {
            adopted.extend(self.adopt_copy(dir, old, path, topic));
        }
    }

    /// Looks in `dir` for an untracked byte copy of `old`'s content and drains it as `old`'s
    /// stream, under the original's `path` (its lines are the original's, and the checkpoint's
    /// path must name a collected file for a restart to resume the copy, see
    /// [`FileServer::resume_rotated_while_down`]). A copy adopted before (it has a checkpoint of
    /// `old`'s stream) is resumed from that checkpoint, or left alone once finished. Returns the
    /// checkpoint of a newly adopted copy, to be written.
    fn adopt_copy(
        &mut self,
        dir: &Path,
        old: &Checkpoint,
        original: &Path,
        topic: &str,
    ) -> Option<Checkpoint> {
        let entries = std::fs::read_dir(dir).ok()?;
        for entry in entries.flatten() {
            let path = entry.path();
            let Ok(file) = File::open(&path) else {
                continue;
            };
            let Ok(metadata) = file.metadata() else {
                continue;
            };
            if !metadata.is_file() {
                continue;
            }
            let physical = PhysicalFile::from_metadata(&metadata);
            if physical == old.file
                || self.files.contains_key(&physical)
                || self.closed.contains_key(&physical)
                || metadata.len() < old.offset
            {
                continue;
            }
            if let Some(earlier) = self.checkpoints.get(&physical) {
                if earlier.stream != old.stream {
                    continue;
                }
                if !earlier.finished {
                    let checkpoint = earlier.clone();
                    tracing::info!(
                        copy = %path.display(),
                        stream = old.stream.as_str(),
                        offset = checkpoint.offset,
                        "resuming the copy of a truncated file"
                    );
                    self.follow_copy(file, checkpoint, original, topic, metadata.len());
                }
                return None;
            }
            if !matches!(Fingerprint::of_file(&file), Ok(Some(fp)) if fp == old.fingerprint) {
                continue;
            }
            if !matches!(crc_of_prefix(&file, old.offset), Ok(crc) if crc == old.prefix_crc) {
                continue;
            }
            tracing::info!(
                copy = %path.display(),
                stream = old.stream.as_str(),
                offset = old.offset,
                "draining the rest of the truncated file from its copy"
            );
            let mut checkpoint = Checkpoint::start(
                physical,
                old.fingerprint,
                0,
                old.offset,
                old.prefix_crc,
                original.display().to_string(),
            );
            checkpoint.stream = old.stream.clone();
            checkpoint.mid_line = old.mid_line;
            self.follow_copy(file, checkpoint.clone(), original, topic, metadata.len());
            return Some(checkpoint);
        }
        None
    }

    /// Follows an adopted copy (unmatched: drained, then closed) under its original's path.
    fn follow_copy(
        &mut self,
        file: File,
        checkpoint: Checkpoint,
        original: &Path,
        topic: &str,
        size: u64,
    ) {
        self.track(Tailed {
            file,
            checkpoint,
            path: original.to_path_buf(),
            topic: topic.to_string(),
            matched: false,
            last_size: size,
            last_growth: Instant::now(),
            window: self.settings.read_chunk_bytes,
        });
    }

    /// Closes matched files read to their end and unchanged for `close_idle` (at once while
    /// the latest scan left files waiting for a descriptor), keeping their checkpoints; run at
    /// the start of each scan, which reopens a file when its size or modification time
    /// changes. Never a file with unread bytes, nor one
    /// renamed away or deleted (it is drained through its descriptor, see `close_drained`).
    fn close_idle(&mut self) {
        let close_idle = self.settings.close_idle;
        let starved = self.starved;
        let idle: Vec<PhysicalFile> = self
            .files
            .iter()
            .filter(|(_, t)| {
                t.matched
                    && t.last_size == t.checkpoint.offset
                    && (starved || t.last_growth.elapsed() >= close_idle)
            })
            .map(|(k, _)| *k)
            .collect();
        if idle.is_empty() {
            return;
        }
        for key in idle {
            let Some(tailed) = self.files.get(&key) else {
                continue;
            };
            let Ok(metadata) = tailed.file.metadata() else {
                continue;
            };
            if metadata.len() != tailed.checkpoint.offset {
                continue; // it grew since: read it first
            }
            if let Some(tailed) = self.files.remove(&key) {
                tracing::debug!(
                    path = %tailed.path.display(),
                    offset = tailed.checkpoint.offset,
                    "idle file closed; reopened when it changes"
                );
                self.closed.insert(
                    key,
                    Closed {
                        path: tailed.path,
                        topic: tailed.topic,
                        size: metadata.len(),
                        modified: metadata.modified().ok(),
                    },
                );
            }
        }
        self.order.retain(|k| self.files.contains_key(k));
        self.followed
            .store(self.files.len() as u64, Ordering::Relaxed);
    }

    /// Closed idle files no glob matched in the latest scan: renamed away or deleted while
    /// closed. Their unread bytes (written after the close) are drained as for a file renamed
    /// while the agent was down ([`FileServer::resume_orphans`]); a file whose entry a
    /// configuration change removed stays paused instead (see [`unmatched`]).
    fn closed_not_seen(
        &mut self,
        seen: &HashSet<PhysicalFile>,
        entries_changed: bool,
        out: &mut Vec<Checkpoint>,
    ) {
        let gone: Vec<PhysicalFile> = self
            .closed
            .keys()
            .filter(|key| !seen.contains(key))
            .copied()
            .collect();
        let mut orphans = Vec::new();
        for key in gone {
            let Some(closed) = self.closed.remove(&key) else {
                continue;
            };
            let still_at_path = std::fs::metadata(&closed.path)
                .is_ok_and(|m| PhysicalFile::from_metadata(&m) == key);
            if unmatched(true, entries_changed, still_at_path) == Unmatched::Pause {
                continue;
            }
            if let Some(checkpoint) = self.checkpoints.get(&key) {
                orphans.push(checkpoint.clone());
            }
        }
        self.resume_orphans(orphans, out);
    }

    /// Closes files that are no longer matched, fully read and idle for `rotate_wait`, and
    /// marks their checkpoints finished.
    fn close_drained(&mut self) -> Result<(), ReaderError> {
        let rotate_wait = self.settings.rotate_wait;
        let idle: Vec<PhysicalFile> = self
            .files
            .iter()
            .filter(|(_, t)| {
                !t.matched
                    && t.last_growth.elapsed() >= rotate_wait
                    && t.last_size <= t.checkpoint.offset
            })
            .map(|(k, _)| *k)
            .collect();
        if idle.is_empty() {
            return Ok(());
        }
        let mut checkpoints = Vec::new();
        let mut done = Vec::new();
        for key in idle {
            match self.still_the_same_content(&key, &mut checkpoints) {
                Ok(true) => done.push(key),
                Ok(false) => {}
                Err(error) => {
                    tracing::warn!(file = ?key, %error, "cannot check a drained file; will retry");
                }
            }
        }
        for key in done {
            if let Some(tailed) = self.files.remove(&key) {
                tracing::info!(path = %tailed.path.display(), offset = tailed.checkpoint.offset, "file drained and closed");
                let mut checkpoint = tailed.checkpoint;
                checkpoint.finished = true;
                checkpoints.push(checkpoint);
            }
        }
        self.order.retain(|k| self.files.contains_key(k));
        if checkpoints.is_empty() {
            return Ok(());
        }
        self.commit_checkpoints(checkpoints)
    }

    /// A last look at a drained file before it is closed: one rewritten to exactly our offset
    /// shows no new bytes, only another first line (and [`FileServer::scan`] compares first
    /// lines of matched files only). If the content changed, it is handled as a truncation
    /// (checkpoints to write go to `out`) and the file stays open when its new content can be
    /// read; a new content without a complete first line cannot start a stream, so the file is
    /// closed all the same.
    fn still_the_same_content(
        &mut self,
        key: &PhysicalFile,
        out: &mut Vec<Checkpoint>,
    ) -> io::Result<bool> {
        let Some(tailed) = self.files.get(key) else {
            return Ok(false);
        };
        let fingerprint = Fingerprint::of_file(&tailed.file)?;
        if fingerprint == Some(tailed.checkpoint.fingerprint) {
            return Ok(true);
        }
        self.on_truncated(key, out)?;
        Ok(fingerprint.is_none())
    }

    /// Writes checkpoints without data (new files, finished files) durably.
    fn commit_checkpoints(&mut self, checkpoints: Vec<Checkpoint>) -> Result<(), ReaderError> {
        let states: Vec<(Vec<u8>, Vec<u8>)> =
            checkpoints.iter().map(encoded).collect::<Result<_, _>>()?;
        let refs: Vec<(&[u8], Option<&[u8]>)> = states
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        self.wal.append(&[], &refs)?;
        self.wal.flush()?;
        for checkpoint in checkpoints {
            self.checkpoints.set(checkpoint);
        }
        Ok(())
    }
}

/// Reads as much of `buf` as the file has at `offset`.
fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut filled = 0;
    while filled < buf.len() {
        match file.read_at(&mut buf[filled..], offset + filled as u64) {
            Ok(0) => break,
            Ok(n) => filled += n,
            Err(error) if error.kind() == io::ErrorKind::Interrupted => continue,
            Err(error) => return Err(error),
        }
    }
    Ok(filled)
}

/// What [`FileServer::continue_copy`] found.
enum CopyCheck {
    /// A copy of a known stream's read part: continue that stream here.
    Continues(Checkpoint),
    /// Shorter than the known stream it starts like, and apparently a copy of it still being
    /// written: decide at the next scan.
    InProgress,
    /// Not a copy: a stream of its own.
    NotACopy,
}

/// Whether the first `len` bytes of `a` and `b` are equal (both must hold `len` bytes).
fn same_prefix(a: &File, b: &File, len: u64) -> io::Result<bool> {
    let mut left = vec![0u8; 64 * 1024];
    let mut right = vec![0u8; 64 * 1024];
    let mut offset = 0u64;
    while offset < len {
        let want = ((len - offset) as usize).min(left.len());
        let n = read_full_at(a, &mut left[..want], offset)?;
        let m = read_full_at(b, &mut right[..want], offset)?;
        if n != want || m != want || left[..n] != right[..m] {
            return Ok(false);
        }
        offset += want as u64;
    }
    Ok(true)
}

/// CRC32 of the first `len` bytes of `file` (fewer if the file is shorter).
fn crc_of_prefix(file: &File, len: u64) -> io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; 1024 * 1024];
    let mut offset = 0u64;
    while offset < len {
        let want = ((len - offset) as usize).min(buf.len());
        let n = read_full_at(file, &mut buf[..want], offset)?;
        if n == 0 {
            break;
        }
        hasher.update(&buf[..n]);
        offset += n as u64;
    }
    Ok(hasher.finalize())
}

/// The offset just after the last newline before `size` (where `start_position = end` starts).
fn last_line_end(file: &File, size: u64) -> io::Result<u64> {
    let tail = size.min(64 * 1024);
    let mut buf = vec![0u8; tail as usize];
    let n = read_full_at(file, &mut buf, size - tail)?;
    Ok(match memchr::memrchr(b'\n', &buf[..n]) {
        Some(newline) => size - tail + newline as u64 + 1,
        None if size == tail => 0,
        None => size,
    })
}

/// The first regular file in `dir` whose physical identity satisfies `wanted`.
fn find_in_dir(dir: &Path, wanted: impl Fn(PhysicalFile) -> bool) -> Option<(PathBuf, File)> {
    let entries = std::fs::read_dir(dir).ok()?;
    for entry in entries.flatten() {
        let path = entry.path();
        let Ok(metadata) = std::fs::metadata(&path) else {
            continue;
        };
        if metadata.is_file() && wanted(PhysicalFile::from_metadata(&metadata)) {
            if let Ok(file) = File::open(&path) {
                return Some((path, file));
            }
        }
    }
    None
}

/// Now, RFC 3339 in UTC.
fn now_rfc3339() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_else(|_| "1970-01-01T00:00:00Z".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_a_file_still_at_its_path_after_a_config_change_is_paused() {
        assert_eq!(unmatched(true, true, true), Unmatched::Pause);
        // Renamed away or deleted at the same time as the change: a rotation.
        assert_eq!(unmatched(true, true, false), Unmatched::Drain);
        // No configuration change: whatever made it unmatched happened to the file.
        assert_eq!(unmatched(true, false, true), Unmatched::Drain);
        assert_eq!(unmatched(true, false, false), Unmatched::Drain);
        // Already draining (rotated earlier, or adopted copy): keeps draining.
        assert_eq!(unmatched(false, true, true), Unmatched::Drain);
        assert_eq!(unmatched(false, false, true), Unmatched::Drain);
    }
}
