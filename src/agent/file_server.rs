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
//! it again the lines written meanwhile are read from where it stopped); see
//! [`super::followed::unmatched`].
//!
//! Backpressure: when the WAL holds `wal_max_bytes` not yet acknowledged by Kafka, no file is
//! read until acknowledgements free space. Lines wait in their files; none is dropped.

use std::collections::HashSet;
use std::fs::File;
use std::io;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::mpsc::Receiver;
use std::sync::Arc;
use std::time::{Duration, Instant};

use logship_wal::Wal;

use super::checkpoint::Checkpoint;
use super::copytruncate::{continue_copy, CopyCheck, CopySearch, FoundCopy};
use super::discovery::{Candidate, ChangeWatcher};
use super::disk::{DiskGuard, DiskRoom};
use super::events::{AgentEvents, FileTrouble, PauseCause};
use super::followed::Followed;
use super::identity::{crc_of_prefix, Fingerprint, PhysicalFile};
use super::identity::{find_in_dir, last_line_end};
use super::monitor::Backlog;
use super::paths::{PathsProvider, Sources};
use super::shipper::ShipQueue;
use super::store::Store;
use super::tailer::{Collected, Poll, Read, TailLimits, Tailer};
use crate::config::StartPosition;
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

pub use super::store::ReaderError;

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
    /// Where the collect entries come from, and the discovery built from them.
    sources: Sources,
    /// The committed checkpoints, the WAL and the shipper's queue.
    store: Store,
    /// The files in hand.
    followed: Followed,
    first_scan: bool,
    watcher: ChangeWatcher,
    wake: Receiver<()>,
    backlog: Option<Arc<Backlog>>,
    /// Pauses reading while the data directory's filesystem is (nearly) full.
    disk: Option<DiskGuard>,
    /// The copies of truncated files already searched for (see [`FileServer::seek_copy`]).
    copies: CopySearch,
    /// Where everything the reader does is reported.
    events: Arc<dyn AgentEvents>,
}

impl FileServer {
    /// Loads checkpoints from the WAL state and the collect entries from `providers` (in
    /// order). `wake` is poked by inotify events and by the shipper when acknowledgements free
    /// WAL space.
    pub fn new(
        settings: ReaderSettings,
        providers: Vec<Box<dyn PathsProvider>>,
        wal: Wal,
        watcher: ChangeWatcher,
        wake: Receiver<()>,
        queue: ShipQueue,
        events: Arc<dyn AgentEvents>,
    ) -> Result<FileServer, ReaderError> {
        let store = Store::load(wal, queue, events.as_ref())?;
        let sources = Sources::new(providers, settings.start_position, events.as_ref());
        Ok(FileServer {
            settings,
            sources,
            store,
            followed: Followed::default(),
            first_scan: true,
            watcher,
            wake,
            backlog: None,
            disk: None,
            copies: CopySearch::default(),
            events,
        })
    }

    /// Reports read rounds and read times to `acked` (the `acked_through` the agent publishes).
    pub fn with_acked_through(mut self, acked: Arc<super::acked::AckedThrough>) -> FileServer {
        self.store.set_acked_through(acked);
        self
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
        if self.store.is_full() {
            return Some(Pause::WalFull);
        }
        match self.disk.as_ref().map(DiskGuard::check) {
            Some(DiskRoom::Low { free }) => Some(Pause::DiskLow { free }),
            _ => None,
        }
    }

    /// The number of files followed, updated after every scan (for the agent registry).
    pub fn followed_files(&self) -> Arc<AtomicU64> {
        self.followed.count()
    }

    /// The count of files waiting for a descriptor after the latest scan, kept up to date.
    pub fn waiting_files(&self) -> Arc<AtomicU64> {
        self.followed.waiting()
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
                    let (records, bytes) = self.store.pending();
                    self.events.reading_paused(cause, &reason, records, bytes);
                    paused = true;
                    let _ = self.wake.recv_timeout(Duration::from_millis(100));
                }
                Step::Read { progressed } => {
                    if std::mem::take(&mut paused) {
                        self.events.reading_resumed(self.store.pending().1);
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
        let reconfigured = self
            .sources
            .refresh(self.settings.start_position, self.events.as_ref());
        if scan || reconfigured {
            let first = self.first_scan;
            self.scan(reconfigured)?;
            if first {
                if let Some(backlog) = &self.backlog {
                    backlog.set_files_at_start(self.followed.unread_bytes());
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
        self.followed
            .close_idle(self.settings.close_idle, self.events.as_ref());
        self.watcher
            .watch(&self.sources.discovery.watch_dirs(), self.events.as_ref());
        let mut was_matched = HashSet::new();
        for (key, tailer) in self.followed.tailers_mut() {
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
        for candidate in self.sources.discovery.scan(self.events.as_ref()) {
            let Ok(metadata) = std::fs::metadata(&candidate.path) else {
                continue;
            };
            let physical = PhysicalFile::from_metadata(&metadata);
            if let Some(closed) = self.followed.closed_mut(&physical) {
                seen_closed.insert(physical);
                closed.path = candidate.path.clone();
                closed.topic = candidate.topic.clone();
                if closed.unchanged(&metadata) {
                    continue;
                }
                // Changed: reopened below (it stays in `closed` until it is open), and
                // `open_new` checks its identity against its checkpoint before reading on.
            }
            if let Some(tailer) = self.followed.get_mut(&physical) {
                tailer.matched_at(candidate.collected());
                if tailer.first_line_changed().unwrap_or(false) {
                    rewritten.push(physical);
                }
                continue;
            }
            if budget.is_some_and(|budget| self.followed.len() >= budget) {
                waiting += 1;
                continue;
            }
            match self.open_new(&candidate, &mut new_checkpoints) {
                Ok(Some((tailer, is_new))) => {
                    if is_new {
                        new_checkpoints.push(tailer.checkpoint().clone());
                    }
                    self.followed.track(tailer, self.events.as_ref());
                }
                Ok(None) => {}
                Err(error) if super::open_files::is_out_of_descriptors(&error) => waiting += 1,
                Err(error) => self
                    .events
                    .file_trouble(&candidate.path, FileTrouble::Open, &error),
            }
        }
        self.followed.scanned(waiting, self.events.as_ref());
        let orphans: Vec<Checkpoint> = self
            .followed
            .closed_not_seen(&seen_closed, entries_changed)
            .iter()
            .filter_map(|key| self.store.checkpoints().get(key).cloned())
            .collect();
        self.resume_orphans(orphans, &mut new_checkpoints);
        // A file just renamed away (or deleted) is followed for `rotate_wait` from now at least:
        // its writer may go on appending until it reopens, however long the file was idle before.
        for key in &was_matched {
            if let Some(tailer) = self.followed.get_mut(key) {
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
            self.followed
                .pause_removed(&was_matched, self.events.as_ref());
        }
        if self.first_scan {
            self.first_scan = false;
            self.resume_rotated_while_down(&mut new_checkpoints);
        }
        self.store.commit_checkpoints(new_checkpoints)?;
        self.followed.publish_count();
        Ok(())
    }

    /// Reports trouble with the followed file `key`.
    fn file_trouble(&self, key: &PhysicalFile, trouble: FileTrouble, error: &io::Error) {
        self.events
            .file_trouble(&self.followed.path_of(key), trouble, error);
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
        if let Some(existing) = self.store.checkpoints().get(&physical) {
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
        let (checkpoint, changed) = match self.store.checkpoints().get(&physical) {
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
        let known = self.followed.known(self.store.checkpoints());
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
            .store
            .checkpoints()
            .iter()
            .filter(|c| !c.finished && !self.followed.holds(&c.file))
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
            let Some(collected) = self
                .sources
                .discovery
                .collected_for(Path::new(&checkpoint.path))
            else {
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
            let tailer = Tailer::new(
                file,
                checkpoint,
                collected,
                false,
                size,
                self.settings.read_chunk_bytes,
            );
            self.followed.track(tailer, self.events.as_ref());
        }
    }

    /// Reads from every followed file once (up to a few chunks each) and commits the round
    /// ([`Store::commit_round`]: WAL append and fsync before anything moves).
    fn read_round(&mut self) -> Result<bool, ReaderError> {
        self.store.begin_round();
        let mut reads: Vec<Read> = Vec::new();
        let mut state_only: Vec<Checkpoint> = Vec::new();
        let mut round_bytes = 0usize;
        for key in self.followed.round_order() {
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
        self.store
            .commit_round(reads, state_only, self.events.as_ref())
    }

    /// One read from one file: `None` when there is nothing complete to commit. A truncated
    /// file's new checkpoint (and an adopted copy's) go to `state_only`.
    fn read_one(
        &mut self,
        key: &PhysicalFile,
        state_only: &mut Vec<Checkpoint>,
    ) -> io::Result<Option<Read>> {
        let limits = self.settings.limits();
        let Some(tailer) = self.followed.get_mut(key) else {
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
        let Some(tailer) = self.followed.get(key) else {
            return Ok(());
        };
        let old = tailer.checkpoint().clone();
        let collected = tailer.collected();
        // The old content's unread tail is only in a copy, if anywhere. Look for it now, not once
        // the new content has a first line: an idle writer may not write one for hours, and the
        // copy may be compressed or deleted meanwhile.
        self.seek_copy(&old, collected, out);
        let Some(tailer) = self.followed.get_mut(key) else {
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
        let known = self.followed.known(self.store.checkpoints());
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
        let tailer = Tailer::new(
            file,
            checkpoint,
            collected,
            false,
            size,
            self.settings.read_chunk_bytes,
        );
        self.followed.track(tailer, self.events.as_ref());
    }

    /// Closes files that are no longer matched, fully read and idle for `rotate_wait`, and
    /// marks their checkpoints finished (committed before they leave).
    fn close_drained(&mut self) -> Result<(), ReaderError> {
        let idle = self.followed.drained(self.settings.rotate_wait);
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
            checkpoints.extend(self.followed.finish(&key, self.events.as_ref()));
        }
        self.followed.forget_removed();
        self.store.commit_checkpoints(checkpoints)
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
        let Some(tailer) = self.followed.get(key) else {
            return Ok(false);
        };
        let same = tailer.same_first_line()?;
        if same == Some(true) {
            return Ok(true);
        }
        self.on_truncated(key, out)?;
        Ok(same.is_none())
    }
}
