//! copytruncate rotation: finding the copy of a file's content and continuing its stream there.
//!
//! logrotate's `copytruncate` copies `app.log` to `app.log.1` and then truncates `app.log`.
//! The bytes written between the agent's last read and the truncation exist only in the copy.
//! Two cases, both decided here without reading or writing anything durable:
//!
//! - The copy is matched by a glob (`app.log*`) and found by a scan as a new file: if it starts
//!   like a known stream and holds that stream's read part byte for byte (same CRC of the
//!   prefix), it *continues* that stream from its offset ([`continue_copy`]), so no line is
//!   shipped twice under other ids. A copy still being written looks shorter than the stream's
//!   read part: it is left for the next scan ([`CopyCheck::InProgress`]).
//! - The copy is not collected: when the original is found truncated, its directory is searched
//!   once ([`CopySearch::seek`]) for a file holding the old content's read part; that copy is
//!   *adopted* and drained as the old stream, under the original's path.
//!
//! The caller commits the checkpoint of a continued or adopted copy with its round; until then
//! a crash loses nothing (the copy is found again at the next start).

use std::collections::{HashMap, HashSet};
use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};

use super::checkpoint::{Checkpoint, Checkpoints, PreviousStream};
use super::identity::{crc_of_prefix, same_prefix, Fingerprint, PhysicalFile};
use super::tailer::{Closed, Tailer};

/// What the search may look at: the known checkpoints and the files followed or closed idle.
pub struct Known<'a> {
    /// Every checkpoint loaded or written.
    pub checkpoints: &'a Checkpoints,
    /// Files followed now.
    pub followed: &'a HashMap<PhysicalFile, Tailer>,
    /// Files closed while idle.
    pub closed: &'a HashMap<PhysicalFile, Closed>,
}

/// What [`continue_copy`] found.
#[derive(Debug)]
pub enum CopyCheck {
    /// A copy of a known stream's read part: continue that stream here, from this checkpoint.
    Continues(Checkpoint),
    /// Shorter than the known stream it starts like, and apparently a copy of it still being
    /// written: decide at the next scan.
    InProgress,
    /// Not a copy: a stream of its own.
    NotACopy,
}

/// Whether `file` (identity `physical`, `size` bytes, first line `fingerprint`), not followed
/// yet, holds a byte copy of a known stream's read part; its checkpoint will name `path`.
///
/// A copy is written front to back, so a scan can see it before it holds everything that was
/// read of its original. Read as a new stream, its lines would be shipped a second time under
/// other ids. So a file shorter than the read part of a stream with its fingerprint is a copy
/// in progress while it grows, or while its bytes equal the start of that stream's file, still
/// followed (or closed idle) and not yet truncated.
pub fn continue_copy(
    known: &Known,
    file: &File,
    physical: PhysicalFile,
    fingerprint: Fingerprint,
    size: u64,
    path: &str,
) -> io::Result<CopyCheck> {
    let mut in_progress = false;
    for candidate in known.checkpoints.copy_candidates(fingerprint, &physical) {
        if candidate.offset == 0 {
            continue;
        }
        if candidate.offset > size {
            in_progress = in_progress || copy_in_progress(known, file, size, &candidate)?;
            continue;
        }
        if crc_of_prefix(file, candidate.offset)? == candidate.prefix_crc {
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
    Ok(if in_progress {
        CopyCheck::InProgress
    } else {
        CopyCheck::NotACopy
    })
}

/// Whether `file` (`size` bytes when looked at, fewer than `candidate` was read to) is a copy
/// of `candidate`'s content still being written: it grew meanwhile, or its bytes are the first
/// bytes of the file whose current stream is `candidate`'s.
fn copy_in_progress(
    known: &Known,
    file: &File,
    size: u64,
    candidate: &PreviousStream,
) -> io::Result<bool> {
    if file.metadata()?.len() != size {
        return Ok(true);
    }
    let original = known
        .followed
        .values()
        .find(|tailer| tailer.checkpoint().stream == candidate.stream);
    if let Some(original) = original {
        return same_prefix(file, original.file(), size);
    }
    // The original may be closed while idle: compared through its path, if it still holds it.
    for (key, closed) in known.closed {
        if known
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

/// A copy found by [`CopySearch::seek`], to follow (unmatched: drained, then closed) under its
/// original's path.
#[derive(Debug)]
pub struct FoundCopy {
    /// The copy, open.
    pub file: File,
    /// Where it is (for the log).
    pub at: PathBuf,
    /// Its size when found.
    pub size: u64,
    /// Where to read it from: the old stream's offset, or the copy's own checkpoint when it
    /// was adopted before.
    pub checkpoint: Checkpoint,
    /// Adopted now (its checkpoint is to be written); else resumed from its checkpoint.
    pub newly_adopted: bool,
}

/// The searches made for copies of truncated files, so each is made once per process.
#[derive(Debug, Default)]
pub struct CopySearch {
    /// Keyed by physical file and stream.
    sought: HashSet<(PhysicalFile, String)>,
}

impl CopySearch {
    /// Looks once per process for a copy of the content `old` describes, now gone from
    /// `original`. Once, because the search opens every file of the directory, and a truncated
    /// file can stay without a first line (so without a new stream) for a long time; a restart
    /// looks again.
    ///
    /// A copy adopted before (it has a checkpoint of `old`'s stream) is resumed from that
    /// checkpoint, or left alone once finished. A new copy is adopted from `old`'s offset: its
    /// lines are the original's, and its checkpoint names the original's path, so a restart
    /// resumes it as a file renamed away.
    pub fn seek(&mut self, known: &Known, old: &Checkpoint, original: &Path) -> Option<FoundCopy> {
        if !self.sought.insert((old.file, old.stream.0.clone())) {
            return None;
        }
        let dir = original.parent()?;
        for entry in std::fs::read_dir(dir).ok()?.flatten() {
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
                || known.followed.contains_key(&physical)
                || known.closed.contains_key(&physical)
                || metadata.len() < old.offset
            {
                continue;
            }
            if let Some(earlier) = known.checkpoints.get(&physical) {
                if earlier.stream != old.stream {
                    continue;
                }
                if earlier.finished {
                    return None;
                }
                return Some(FoundCopy {
                    file,
                    at: path,
                    size: metadata.len(),
                    checkpoint: earlier.clone(),
                    newly_adopted: false,
                });
            }
            if !matches!(Fingerprint::of_file(&file), Ok(Some(fp)) if fp == old.fingerprint) {
                continue;
            }
            if !matches!(crc_of_prefix(&file, old.offset), Ok(crc) if crc == old.prefix_crc) {
                continue;
            }
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
            checkpoint.in_event = old.in_event;
            return Some(FoundCopy {
                file,
                at: path,
                size: metadata.len(),
                checkpoint,
                newly_adopted: true,
            });
        }
        None
    }
}
