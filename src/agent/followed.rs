//! The files the reader has in hand: the followed ones (open, each with its [`Tailer`]), in the
//! order a read round visits them, and the ones closed while idle (their checkpoints kept).
//!
//! This set owns no durability: it changes only after the reader committed what a change
//! needs (a new file's checkpoint, a drained file's finished one), so a crash between the two
//! leaves the WAL's checkpoints as the truth, from which the next start rebuilds the set.
//! It publishes two counts, updated as it changes: files followed (for the agent registry) and
//! files waiting for a descriptor after the latest scan (for `/status`).

use std::collections::{HashMap, HashSet};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use super::checkpoint::{Checkpoint, Checkpoints};
use super::copytruncate::Known;
use super::events::AgentEvents;
use super::identity::PhysicalFile;
use super::tailer::{Closed, Tailer};

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

/// Followed and idle-closed files.
#[derive(Default)]
pub struct Followed {
    files: HashMap<PhysicalFile, Tailer>,
    /// The order rounds visit files in (each round starts one further, so no file is always
    /// last when a round fills up).
    order: Vec<PhysicalFile>,
    next_start: usize,
    /// Files closed while idle, by identity (see [`Followed::close_idle`]).
    closed: HashMap<PhysicalFile, Closed>,
    count: Arc<AtomicU64>,
    waiting: Arc<AtomicU64>,
    /// The latest scan left files waiting for a descriptor: files read to their end are closed
    /// at once, so that every file gets its turn.
    starved: bool,
}

impl Followed {
    /// The number of files followed, kept up to date (for the agent registry).
    pub fn count(&self) -> Arc<AtomicU64> {
        self.count.clone()
    }

    /// The number of files waiting for a descriptor after the latest scan, kept up to date.
    pub fn waiting(&self) -> Arc<AtomicU64> {
        self.waiting.clone()
    }

    /// How many files are open.
    pub fn len(&self) -> usize {
        self.files.len()
    }

    /// The followed file `key`.
    pub fn get(&self, key: &PhysicalFile) -> Option<&Tailer> {
        self.files.get(key)
    }

    /// The followed file `key`, to read or change.
    pub fn get_mut(&mut self, key: &PhysicalFile) -> Option<&mut Tailer> {
        self.files.get_mut(key)
    }

    /// Whether `key` is followed or closed while idle.
    pub fn holds(&self, key: &PhysicalFile) -> bool {
        self.files.contains_key(key) || self.closed.contains_key(key)
    }

    /// Every followed file, to mark before a scan.
    pub fn tailers_mut(&mut self) -> impl Iterator<Item = (&PhysicalFile, &mut Tailer)> {
        self.files.iter_mut()
    }

    /// The idle-closed file `key`, seen again by a scan.
    pub fn closed_mut(&mut self, key: &PhysicalFile) -> Option<&mut Closed> {
        self.closed.get_mut(key)
    }

    /// What the copy checks need to know of files in hand.
    pub fn known<'a>(&'a self, checkpoints: &'a Checkpoints) -> Known<'a> {
        Known {
            checkpoints,
            followed: &self.files,
            closed: &self.closed,
        }
    }

    /// Bytes written to the followed files past their checkpoints.
    pub fn unread_bytes(&self) -> u64 {
        self.files.values().filter_map(Tailer::unread_bytes).sum()
    }

    /// The path of `key`, for messages (its checkpoint key when it is not followed).
    pub fn path_of(&self, key: &PhysicalFile) -> PathBuf {
        self.files.get(key).map_or_else(
            || PathBuf::from(key.checkpoint_key()),
            |t| t.path().to_path_buf(),
        )
    }

    /// Follows `tailer` (reopened, when it was closed while idle).
    pub fn track(&mut self, tailer: Tailer, events: &dyn AgentEvents) {
        let key = tailer.key();
        let checkpoint = tailer.checkpoint();
        if self.closed.remove(&key).is_some() {
            events.file_reopened(tailer.path(), checkpoint.offset);
        } else {
            events.file_followed(tailer.path(), checkpoint.stream.as_str(), checkpoint.offset);
        }
        self.order.push(key);
        self.files.insert(key, tailer);
    }

    /// The files in the order this round visits them.
    pub fn round_order(&mut self) -> Vec<PhysicalFile> {
        let count = self.order.len();
        if count == 0 {
            return Vec::new();
        }
        let start = self.next_start % count;
        self.next_start = self.next_start.wrapping_add(1);
        (0..count)
            .map(|i| self.order[(start + i) % count])
            .collect()
    }

    /// Publishes the count of files followed and of files waiting for a descriptor after a
    /// scan (the events say so at most once per interval: a scan runs every second or so).
    pub fn scanned(&mut self, waiting: usize, events: &dyn AgentEvents) {
        self.waiting.store(waiting as u64, Ordering::Relaxed);
        self.starved = waiting > 0;
        events.files_waiting(waiting, self.files.len(), super::open_files::soft_limit());
    }

    /// Publishes the count of files followed.
    pub fn publish_count(&self) {
        self.count.store(self.files.len() as u64, Ordering::Relaxed);
    }

    /// Closes matched files read to their end and unchanged for `close_idle` (at once while
    /// the latest scan left files waiting for a descriptor), keeping their checkpoints; the
    /// reader runs it at the start of each scan, which reopens a file when its size or
    /// modification time changes. Never a file with unread bytes, nor one renamed away or
    /// deleted (it is drained through its descriptor).
    pub fn close_idle(&mut self, close_idle: Duration, events: &dyn AgentEvents) {
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
            events.file_closed_idle(&closed.path, closed.size);
            self.closed.insert(key, closed);
        }
        self.forget_removed();
        self.publish_count();
    }

    /// Closes the files whose entry the latest configuration change removed (see
    /// [`unmatched`]). Their checkpoints stay as committed, unfinished: nothing is read past
    /// them until an entry matches the file again.
    pub fn pause_removed(&mut self, was_matched: &HashSet<PhysicalFile>, events: &dyn AgentEvents) {
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
                events.file_paused(tailer.path(), tailer.checkpoint().offset);
            }
        }
        self.forget_removed();
    }

    /// Idle-closed files no glob matched in the latest scan (`seen` holds those it did):
    /// renamed away or deleted while closed. They leave the set; returned are the keys whose
    /// unread bytes are to be drained, as for a file renamed while the agent was down — not
    /// those whose entry a configuration change removed while they are still at their path,
    /// which stay paused (see [`unmatched`]).
    pub fn closed_not_seen(
        &mut self,
        seen: &HashSet<PhysicalFile>,
        entries_changed: bool,
    ) -> Vec<PhysicalFile> {
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
            if unmatched(true, entries_changed, still_at_path) != Unmatched::Pause {
                orphans.push(key);
            }
        }
        orphans
    }

    /// Files no longer matched, fully read and idle for `rotate_wait`.
    pub fn drained(&self, rotate_wait: Duration) -> Vec<PhysicalFile> {
        self.files
            .iter()
            .filter(|(_, tailer)| tailer.is_drained(rotate_wait))
            .map(|(k, _)| *k)
            .collect()
    }

    /// Closes the drained file `key`; its finished checkpoint, to commit.
    pub fn finish(&mut self, key: &PhysicalFile, events: &dyn AgentEvents) -> Option<Checkpoint> {
        let tailer = self.files.remove(key)?;
        events.file_drained(tailer.path(), tailer.checkpoint().offset);
        Some(tailer.finish())
    }

    /// Drops the files no longer followed from the round order.
    pub fn forget_removed(&mut self) {
        let files = &self.files;
        self.order.retain(|k| files.contains_key(k));
    }
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
