//! The reading loop: discovers files, reads complete lines, and commits each read to the WAL
//! together with the file's new checkpoint.
//!
//! Durability: every round's reads are appended to the WAL with their checkpoints in one atomic
//! sled batch and fsynced (`Wal::flush`) before the shipper is told about them and before the
//! files are read further. A crash before the fsync loses neither data nor position: the
//! checkpoint did not move, so the bytes are read again. A crash after it loses nothing either:
//! the bytes are in the WAL and are resent on start.
//!
//! Reconfiguration: the collect entries come from [`PathsProvider`]s (the config file's, and
//! with central configuration etcd's, which change while running). When one changes, the loop
//! rebuilds its [`Discovery`] from all of them and rescans at once. A followed file that no entry matches any more is either *rotated away* (its path no
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
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_wal::{Wal, WalError};

use super::checkpoint::{Checkpoint, Checkpoints};
use super::copytruncate::{continue_copy, CopyCheck, CopySearch, FoundCopy, Known};
use super::discovery::{Candidate, ChangeWatcher, Discovery};
use super::disk::{DiskGuard, DiskRoom};
use super::events::{AgentEvents, FileTrouble, PauseCause};
use super::identity::{crc_of_prefix, read_full_at, Fingerprint, PhysicalFile};
use super::monitor::Backlog;
use super::paths::PathsProvider;
use super::shipper::ShipQueue;
use super::tailer::{Closed, Collected, Poll, Read, TailLimits, Tailer};
use crate::config::{CollectEntry, StartPosition};
use crate::shutdown::Shutdown;

/// Bytes read in one round across all files before the round is committed (group commit).
const ROUND_BYTES: usize = super::disk::READ_ROUND_BYTES as usize;
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

impl ReaderSettings {
    /// What each tailer reads and frames with.
    pub fn limits(&self) -> TailLimits {
        TailLimits {
            max_line_bytes: self.max_line_bytes,
            read_chunk_bytes: self.read_chunk_bytes,
            rotate_wait: self.rotate_wait,
        }
    }
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

/// What one [`FileServer::step`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Step {
    /// Reading waits (nothing was read).
    Paused(Pause),
    /// A read round ran; `progressed`: it committed records.
    Read {
        /// The round committed records.
        progressed: bool,
    },
}

/// Why reading waits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Pause {
    /// The WAL holds `wal_max_bytes` not yet acknowledged.
    WalFull,
    /// The data directory's filesystem has less than `min_free_bytes` free.
    DiskLow { free: u64 },
}

/// The reading loop and its state.
pub struct FileServer {
    settings: ReaderSettings,
    discovery: Discovery,
    wal: Wal,
    checkpoints: Checkpoints,
    files: HashMap<PhysicalFile, Tailer>,
    order: Vec<PhysicalFile>,
    next_start: usize,
    first_scan: bool,
    watcher: ChangeWatcher,
    wake: Receiver<()>,
    queue: ShipQueue,
    /// Where the collect entries come from, and what each provided last.
    providers: Vec<Box<dyn PathsProvider>>,
    provided: Vec<Vec<CollectEntry>>,
    followed: Arc<AtomicU64>,
    /// Files matched but waiting for a descriptor in the latest scan (for `/status`).
    waiting: Arc<AtomicU64>,
    backlog: Option<Arc<Backlog>>,
    /// Pauses reading while the data directory's filesystem is (nearly) full.
    disk: Option<DiskGuard>,
    /// The copies of truncated files already searched for (see [`FileServer::seek_copy`]).
    copies: CopySearch,
    /// Where everything the reader does is reported.
    events: Arc<dyn AgentEvents>,
    /// Files closed while idle, by identity (see [`FileServer::close_idle`]).
    closed: HashMap<PhysicalFile, Closed>,
    /// The latest scan left files waiting for a descriptor: files read to their end are closed
    /// at once, so that every file gets its turn.
    starved: bool,
}

impl FileServer {
    /// Loads checkpoints from the WAL state and the collect entries from `providers` (in
    /// order). `wake` is poked by inotify events and by the shipper when acknowledgements free
    /// WAL space.
    pub fn new(
        settings: ReaderSettings,
        mut providers: Vec<Box<dyn PathsProvider>>,
        wal: Wal,
        watcher: ChangeWatcher,
        wake: Receiver<()>,
        queue: ShipQueue,
        events: Arc<dyn AgentEvents>,
    ) -> Result<FileServer, ReaderError> {
        let mut loaded = Vec::new();
        for item in wal.state_scan_prefix(super::checkpoint::KEY_PREFIX.as_bytes()) {
            let (key, value) = item?;
            match Checkpoint::decode(&value) {
                Ok(checkpoint) => loaded.push(checkpoint),
                Err(error) => {
                    events.checkpoint_unreadable(&String::from_utf8_lossy(&key), &error.to_string())
                }
            }
        }
        events.checkpoints_loaded(loaded.len());
        let provided: Vec<Vec<CollectEntry>> = providers
            .iter_mut()
            .map(|provider| provider.changed(events.as_ref()).unwrap_or_default())
            .collect();
        let discovery =
            Discovery::new(&provided.concat(), settings.start_position, events.as_ref());
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
            provided,
            providers,
            followed: Arc::new(AtomicU64::new(0)),
            waiting: Arc::new(AtomicU64::new(0)),
            backlog: None,
            disk: None,
            copies: CopySearch::default(),
            events,
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
        self.files.values().filter_map(Tailer::unread_bytes).sum()
    }

    /// The number of files followed, updated after every scan (for the agent registry).
    pub fn followed_files(&self) -> Arc<AtomicU64> {
        self.followed.clone()
    }

    /// The count of files waiting for a descriptor after the latest scan, kept up to date.
    pub fn waiting_files(&self) -> Arc<AtomicU64> {
        self.waiting.clone()
    }

    /// Asks every paths provider for changes and rebuilds the discovery from all their
    /// entries if one changed; returns whether one did.
    fn refresh_discovery(&mut self) -> bool {
        let mut changed = false;
        for (provider, entries) in self.providers.iter_mut().zip(self.provided.iter_mut()) {
            if let Some(new) = provider.changed(self.events.as_ref()) {
                *entries = new;
                changed = true;
            }
        }
        if !changed {
            return false;
        }
        let all: Vec<CollectEntry> = self.provided.concat();
        self.events.entries_changed(all.len());
        self.discovery = Discovery::new(&all, self.settings.start_position, self.events.as_ref());
        true
    }

    /// Runs until `shutdown`; then commits nothing further (everything committed is in the WAL).
    /// Each iteration is one [`FileServer::step`]; this loop only paces them (rescans every
    /// `rescan_interval` or when inotify saw a change, waits when idle or paused) and reports a
    /// pause to the events at every check while it lasts, and once when it ends.
    pub fn run(mut self, shutdown: &Shutdown) -> Result<(), ReaderError> {
        let mut last_scan: Option<Instant> = None;
        let mut paused = false;
        while !shutdown.is_triggered() {
            let scan_due = last_scan.is_none_or(|t| t.elapsed() >= self.settings.rescan_interval);
            let scan = scan_due || self.watcher.take_changed();
            let step = self.step(scan)?;
            if scan {
                last_scan = Some(Instant::now());
            }
            match step {
                Step::Paused(pause) => {
                    let (cause, reason) = match (&pause, &self.disk) {
                        (Pause::DiskLow { free }, Some(guard)) => {
                            (PauseCause::DiskLow, guard.reason(*free))
                        }
                        _ => (
                            PauseCause::WalFull,
                            "WAL full: reading paused until Kafka acknowledges".to_string(),
                        ),
                    };
                    self.events.reading_paused(
                        cause,
                        &reason,
                        self.wal.pending_records(),
                        self.wal.pending_bytes(),
                    );
                    paused = true;
                    let _ = self.wake.recv_timeout(Duration::from_millis(100));
                }
                Step::Read { progressed } => {
                    if std::mem::take(&mut paused) {
                        self.events.reading_resumed(self.wal.pending_bytes());
                    }
                    if !progressed {
                        let _ = self.wake.recv_timeout(Duration::from_millis(250));
                    }
                }
            }
        }
        Ok(())
    }

    /// One iteration of the reading loop, without its waiting: applies changed collect
    /// entries; rescans if `scan` (or the entries changed); unless the WAL or its disk is full,
    /// reads one round from every followed file (committed and fsynced) and closes drained
    /// files.
    ///
    /// [`FileServer::run`] calls it, timed by the rescan interval and wake-ups; the reader
    /// model test (`agent::reader_model`) calls it directly to decide when files change, when
    /// the reader scans and reads, and when it restarts.
    pub(crate) fn step(&mut self, scan: bool) -> Result<Step, ReaderError> {
        let reconfigured = self.refresh_discovery();
        if scan || reconfigured {
            let first = self.first_scan;
            self.scan(reconfigured)?;
            if first {
                if let Some(backlog) = &self.backlog {
                    backlog.set_files_at_start(self.unread_bytes());
                }
            }
        }
        if let Some(pause) = self.must_wait() {
            return Ok(Step::Paused(pause));
        }
        let progressed = self.read_round()?;
        self.close_drained()?;
        Ok(Step::Read { progressed })
    }

    /// Re-evaluates the globs: new files are opened and positioned, files no longer matched
    /// are marked for draining, or closed when `entries_changed` removed their entry.
    fn scan(&mut self, entries_changed: bool) -> Result<(), ReaderError> {
        // Idle files are closed here, once per scan rather than once per read round: the
        // descriptors they free go to waiting files in this very scan.
        self.close_idle();
        self.watcher
            .watch(&self.discovery.watch_dirs(), self.events.as_ref());
        let mut was_matched = HashSet::new();
        for (key, tailer) in self.files.iter_mut() {
            if tailer.is_matched() {
                was_matched.insert(*key);
            }
            tailer.unmatch();
        }
        let mut new_checkpoints = Vec::new();
        let mut rewritten = Vec::new();
        // Files not opened for lack of a descriptor: counted, logged once per interval. The
        // budget keeps descriptors for the WAL, Kafka and the endpoint (open_files::RESERVED).
        let mut waiting = 0usize;
        let budget = super::open_files::file_budget();
        let mut seen_closed = HashSet::new();
        for candidate in self.discovery.scan(self.events.as_ref()) {
            let Ok(metadata) = std::fs::metadata(&candidate.path) else {
                continue;
            };
            let physical = PhysicalFile::from_metadata(&metadata);
            if let Some(closed) = self.closed.get_mut(&physical) {
                seen_closed.insert(physical);
                closed.path = candidate.path.clone();
                closed.topic = candidate.topic.clone();
                if closed.unchanged(&metadata) {
                    continue;
                }
                // Changed: reopened below (it stays in `closed` until it is open), and
                // `open_new` checks its identity against its checkpoint before reading on.
            }
            if let Some(tailer) = self.files.get_mut(&physical) {
                tailer.matched_at(candidate.collected());
                if tailer.first_line_changed().unwrap_or(false) {
                    rewritten.push(physical);
                }
                continue;
            }
            if budget.is_some_and(|budget| self.files.len() >= budget) {
                waiting += 1;
                continue;
            }
            match self.open_new(&candidate, &mut new_checkpoints) {
                Ok(Some((tailer, is_new))) => {
                    if is_new {
                        new_checkpoints.push(tailer.checkpoint().clone());
                    }
                    self.track(tailer);
                }
                Ok(None) => {}
                Err(error) if super::open_files::is_out_of_descriptors(&error) => waiting += 1,
                Err(error) => self
                    .events
                    .file_trouble(&candidate.path, FileTrouble::Open, &error),
            }
        }
        self.report_waiting(waiting);
        self.starved = waiting > 0;
        self.closed_not_seen(&seen_closed, entries_changed, &mut new_checkpoints);
        // A file just renamed away (or deleted) is followed for `rotate_wait` from now at least:
        // its writer may go on appending until it reopens, however long the file was idle before.
        for key in &was_matched {
            if let Some(tailer) = self.files.get_mut(key) {
                if !tailer.is_matched() {
                    tailer.rotated_now();
                }
            }
        }
        for key in rewritten {
            if let Err(error) = self.on_truncated(&key, &mut new_checkpoints) {
                self.file_trouble(&key, FileTrouble::Check, &error);
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

    /// Publishes how many matched files wait for a descriptor (for `/status`, and to the
    /// events, which say so at most once per interval: a scan runs every second or so).
    fn report_waiting(&mut self, waiting: usize) {
        self.waiting.store(waiting as u64, Ordering::Relaxed);
        self.events
            .files_waiting(waiting, self.files.len(), super::open_files::soft_limit());
    }

    /// Reports trouble with the followed file `key`.
    fn file_trouble(&self, key: &PhysicalFile, trouble: FileTrouble, error: &io::Error) {
        let path = self.files.get(key).map_or_else(
            || PathBuf::from(key.checkpoint_key()),
            |t| t.path().to_path_buf(),
        );
        self.events.file_trouble(&path, trouble, error);
    }

    /// Closes the files whose entry the latest configuration change removed (see
    /// [`unmatched`]). Their checkpoints stay as committed, unfinished: nothing is read past
    /// them until an entry matches the file again.
    fn pause_removed(&mut self, was_matched: &HashSet<PhysicalFile>) {
        let paused: Vec<PhysicalFile> = self
            .files
            .iter()
            .filter(|(key, tailer)| {
                !tailer.is_matched()
                    && unmatched(was_matched.contains(*key), true, tailer.still_at_path())
                        == Unmatched::Pause
            })
            .map(|(key, _)| *key)
            .collect();
        for key in paused {
            if let Some(tailer) = self.files.remove(&key) {
                self.events
                    .file_paused(tailer.path(), tailer.checkpoint().offset);
            }
        }
        self.order.retain(|k| self.files.contains_key(k));
    }

    fn track(&mut self, tailer: Tailer) {
        let key = tailer.key();
        let checkpoint = tailer.checkpoint();
        if self.closed.remove(&key).is_some() {
            self.events.file_reopened(tailer.path(), checkpoint.offset);
        } else {
            self.events
                .file_followed(tailer.path(), checkpoint.stream.as_str(), checkpoint.offset);
        }
        self.order.push(key);
        self.files.insert(key, tailer);
    }

    /// Opens a file not followed yet and decides where to read from. Returns `None` while its
    /// first line is incomplete (no fingerprint yet). The flag says whether the checkpoint is
    /// new or changed and must be written.
    /// Checkpoints of copies adopted on the way (see [`FileServer::seek_copy`]) go to `adopted`.
    fn open_new(
        &mut self,
        candidate: &Candidate,
        adopted: &mut Vec<Checkpoint>,
    ) -> io::Result<Option<(Tailer, bool)>> {
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
                self.seek_copy(&old, candidate.collected(), adopted);
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
                self.events.file_replaced_while_away(&path);
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
        let tailer = Tailer::new(
            file,
            checkpoint,
            candidate.collected(),
            true,
            size,
            self.settings.read_chunk_bytes,
        );
        Ok(Some((tailer, changed)))
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
        let known = Known {
            checkpoints: &self.checkpoints,
            followed: &self.files,
            closed: &self.closed,
        };
        match continue_copy(&known, file, physical, fingerprint, size, &path)? {
            CopyCheck::Continues(checkpoint) => {
                self.events
                    .copy_continued(&path, checkpoint.stream.as_str(), checkpoint.offset);
                return Ok(Some(checkpoint));
            }
            CopyCheck::InProgress => {
                self.events.copy_in_progress(&path, size);
                return Ok(None);
            }
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
            let Some(collected) = self.discovery.collected_for(Path::new(&checkpoint.path)) else {
                continue;
            };
            let found = find_in_dir(dir, |p| p == checkpoint.file).and_then(|(path, file)| {
                let size = file.metadata().ok()?.len();
                let fingerprint = Fingerprint::of_file(&file).ok()?;
                Some((path, file, size, fingerprint))
            });
            let (file, size, checkpoint) = match found {
                Some((path, file, size, Some(fp)))
                    if fp == checkpoint.fingerprint && size >= checkpoint.offset =>
                {
                    self.events
                        .file_renamed_while_away(&checkpoint.path, &path, false);
                    (file, size, checkpoint)
                }
                Some((path, file, size, Some(fp))) => {
                    self.events
                        .file_renamed_while_away(&checkpoint.path, &path, true);
                    self.seek_copy(&checkpoint, collected.clone(), out);
                    let mut checkpoint = checkpoint;
                    checkpoint.restart_after_truncation(fp);
                    out.push(checkpoint.clone());
                    (file, size, checkpoint)
                }
                _ => {
                    self.events.file_missing(&checkpoint.path);
                    self.seek_copy(&checkpoint, collected, out);
                    continue;
                }
            };
            // Followed under its last collected path, as a file renamed while followed is: the
            // checkpoint keeps naming a path the entries match, so a second restart before it
            // is drained still finds its topic and resumes it.
            self.track(Tailer::new(
                file,
                checkpoint,
                collected,
                false,
                size,
                self.settings.read_chunk_bytes,
            ));
        }
    }

    /// Reads from every followed file once (up to a few chunks each) and commits the round.
    fn read_round(&mut self) -> Result<bool, ReaderError> {
        let mut reads: Vec<Read> = Vec::new();
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
                        self.file_trouble(&key, FileTrouble::Read, &error);
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
            self.events
                .read(&read.checkpoint.path, read.lines, read.bytes);
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

    /// One read from one file: `None` when there is nothing complete to commit. A truncated
    /// file's new checkpoint (and an adopted copy's) go to `state_only`.
    fn read_one(
        &mut self,
        key: &PhysicalFile,
        state_only: &mut Vec<Checkpoint>,
    ) -> io::Result<Option<Read>> {
        let limits = self.settings.limits();
        let Some(tailer) = self.files.get_mut(key) else {
            return Ok(None);
        };
        match tailer.read(&limits)? {
            Poll::Read(read) => Ok(Some(read)),
            Poll::Nothing => Ok(None),
            Poll::Truncated => {
                self.on_truncated(key, state_only)?;
                Ok(None)
            }
        }
    }

    /// The followed file shrank below its checkpoint, or its first line changed: copytruncate
    /// rotation (or a rewrite). The unread tail of the old content is looked for in a copy next
    /// to the file; the file itself starts a new stream from 0 once its first line is complete.
    /// The checkpoints to write (the file's new one, an adopted copy's) go to `out`.
    fn on_truncated(&mut self, key: &PhysicalFile, out: &mut Vec<Checkpoint>) -> io::Result<()> {
        let Some(tailer) = self.files.get(key) else {
            return Ok(());
        };
        let old = tailer.checkpoint().clone();
        let collected = tailer.collected();
        // The old content's unread tail is only in a copy, if anywhere. Look for it now, not once
        // the new content has a first line: an idle writer may not write one for hours, and the
        // copy may be compressed or deleted meanwhile.
        self.seek_copy(&old, collected, out);
        let Some(tailer) = self.files.get_mut(key) else {
            return Ok(());
        };
        // Without a complete first line the new content's stream starts once it has one.
        if let Some(checkpoint) = tailer.restart_stream()? {
            self.events.file_truncated(tailer.path(), old.offset);
            out.push(checkpoint);
        }
        Ok(())
    }

    /// Looks once per process for a copy of the content `old` describes, now gone from `path`
    /// (see [`CopySearch::seek`]), and drains it as `old`'s stream, under the path, topic and
    /// joiner of the file that held it (`collected`).
    /// A newly adopted copy's checkpoint goes to `adopted`, to be committed with the round:
    /// from then on a restart resumes the copy by its own checkpoint.
    fn seek_copy(&mut self, old: &Checkpoint, collected: Collected, adopted: &mut Vec<Checkpoint>) {
        let known = Known {
            checkpoints: &self.checkpoints,
            followed: &self.files,
            closed: &self.closed,
        };
        let Some(found) = self.copies.seek(&known, old, &collected.path) else {
            return;
        };
        let FoundCopy {
            file,
            at,
            size,
            checkpoint,
            newly_adopted,
        } = found;
        self.events
            .copy_adopted(&at, old.stream.as_str(), checkpoint.offset, !newly_adopted);
        if newly_adopted {
            adopted.push(checkpoint.clone());
        }
        self.track(Tailer::new(
            file,
            checkpoint,
            collected,
            false,
            size,
            self.settings.read_chunk_bytes,
        ));
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
            .filter(|(_, tailer)| tailer.is_idle(close_idle, starved))
            .map(|(k, _)| *k)
            .collect();
        if idle.is_empty() {
            return;
        }
        for key in idle {
            // `None`: it grew since (read it first).
            let Some(closed) = self.files.get(&key).and_then(Tailer::closing) else {
                continue;
            };
            self.files.remove(&key);
            self.events.file_closed_idle(&closed.path, closed.size);
            self.closed.insert(key, closed);
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
            .filter(|(_, tailer)| tailer.is_drained(rotate_wait))
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
                    self.file_trouble(&key, FileTrouble::Check, &error);
                }
            }
        }
        for key in done {
            if let Some(tailer) = self.files.remove(&key) {
                self.events
                    .file_drained(tailer.path(), tailer.checkpoint().offset);
                checkpoints.push(tailer.finish());
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
        let Some(tailer) = self.files.get(key) else {
            return Ok(false);
        };
        let same = tailer.same_first_line()?;
        if same == Some(true) {
            return Ok(true);
        }
        self.on_truncated(key, out)?;
        Ok(same.is_none())
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
