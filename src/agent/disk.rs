//! The agent's disk: how much its `data_dir` takes, and whether its filesystem still has room.
//!
//! A full disk is treated like a Kafka outage: before each read round the reader asks
//! [`DiskGuard::check`]; while the filesystem holding `data_dir` has less than
//! `min_free_bytes` free, reading pauses (the log files are the buffer), and resumes by itself
//! once space returns. The shipper goes on draining the WAL meanwhile, which is what frees its
//! space. Pausing *before* the disk is full matters: sled's store cannot be trusted after a
//! failed write (it keeps the error and may block in a later flush), so the guard's job is to
//! make that failure rare; when it happens anyway the agent exits non-zero (see
//! [`super::supervisor`]) and loses nothing.

use std::io;
use std::os::unix::fs::MetadataExt as _;
use std::path::{Path, PathBuf};

/// Bytes the files under `dir` occupy on disk (allocated blocks, as `du` counts them, so a
/// sparse file counts what it really takes). Files that vanish during the walk are skipped.
pub fn disk_usage(dir: &Path) -> io::Result<u64> {
    let mut total = 0u64;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let entries = match std::fs::read_dir(&dir) {
            Ok(entries) => entries,
            Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
            Err(error) => return Err(error),
        };
        for entry in entries {
            let entry = entry?;
            let metadata = match std::fs::symlink_metadata(entry.path()) {
                Ok(metadata) => metadata,
                Err(error) if error.kind() == io::ErrorKind::NotFound => continue,
                Err(error) => return Err(error),
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            total = total.saturating_add(metadata.blocks().saturating_mul(512));
        }
    }
    Ok(total)
}

/// Bytes available to this (unprivileged) process on the filesystem holding `path`.
pub fn free_bytes(path: &Path) -> io::Result<u64> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(stat.f_bavail.saturating_mul(stat.f_frsize))
}

/// The size and free space of a filesystem, as `statvfs` reports them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsSize {
    /// Bytes the filesystem holds in all (0: it does not say, as some FUSE and network
    /// filesystems do).
    pub total: u64,
    /// Bytes available to this (unprivileged) process.
    pub free: u64,
}

/// The size and free space of the filesystem holding `path` (one `statvfs`).
pub fn fs_size(path: &Path) -> io::Result<FsSize> {
    let stat = rustix::fs::statvfs(path)?;
    Ok(FsSize {
        total: stat.f_blocks.saturating_mul(stat.f_frsize),
        free: stat.f_bavail.saturating_mul(stat.f_frsize),
    })
}

/// The most one read round commits at once (the reader's round budget): a filesystem must hold
/// `min_free_bytes` plus this much for the agent ever to read.
pub const READ_ROUND_BYTES: u64 = 1024 * 1024;

/// Why an agent cannot start on its `data_dir`.
#[derive(Debug, thiserror::Error)]
pub enum DiskError {
    /// `statvfs` on `data_dir` failed.
    #[error("cannot read the size of the filesystem holding {dir}: {source}")]
    Stat {
        /// The data directory.
        dir: PathBuf,
        /// What `statvfs` said.
        source: io::Error,
    },
    /// The filesystem is smaller than `min_free_bytes` plus one read round: the guard would
    /// pause reading forever.
    #[error(
        "the filesystem holding data_dir {dir} is {total} bytes in all, smaller than \
         min_free_bytes ({min_free_bytes}) plus one read round ({round} bytes): the agent could \
         never read; lower min_free_bytes (0 turns the free-space guard off) or move data_dir to \
         a larger filesystem",
        round = READ_ROUND_BYTES
    )]
    TooSmall {
        /// The data directory.
        dir: PathBuf,
        /// The filesystem's total size.
        total: u64,
        /// The configured minimum.
        min_free_bytes: u64,
    },
}

/// What the guard does on a filesystem of this size, decided once at start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum GuardMode {
    /// Free space is watched before every read round.
    Watching,
    /// `min_free_bytes` is 0: never pauses.
    Off,
    /// The filesystem reports a total size of 0, so its free space means nothing either: the
    /// guard is skipped (a real ENOSPC still stops the agent cleanly, losing nothing).
    SizeUnknown,
}

/// Judges a filesystem reading taken at start against `min_free_bytes` (pure: the reading is
/// passed in, so tests can give any `statvfs` answer).
pub fn judge(dir: &Path, size: FsSize, min_free_bytes: u64) -> Result<GuardMode, DiskError> {
    if min_free_bytes == 0 {
        return Ok(GuardMode::Off);
    }
    if size.total == 0 {
        return Ok(GuardMode::SizeUnknown);
    }
    if size.total < min_free_bytes.saturating_add(READ_ROUND_BYTES) {
        return Err(DiskError::TooSmall {
            dir: dir.to_path_buf(),
            total: size.total,
            min_free_bytes,
        });
    }
    Ok(GuardMode::Watching)
}

/// What [`DiskGuard::check`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DiskRoom {
    /// At least `min_free_bytes` free (or the free space could not be read: reading goes on,
    /// and a real write error still stops the agent cleanly).
    Enough,
    /// Less than `min_free_bytes` free.
    Low {
        /// Bytes free now.
        free: u64,
    },
}

/// Watches the free space of the filesystem holding the agent's `data_dir`.
#[derive(Debug, Clone)]
pub struct DiskGuard {
    data_dir: PathBuf,
    min_free_bytes: u64,
    mode: GuardMode,
}

impl DiskGuard {
    /// A guard pausing reading while `data_dir`'s filesystem has less than `min_free_bytes`
    /// free (0: never pauses), after one look at the filesystem's size: one too small ever to
    /// read on is refused with [`DiskError::TooSmall`]; one that reports no size at all gets a
    /// guard that never pauses (its mode says so, for the caller to report once).
    pub fn open(data_dir: &Path, min_free_bytes: u64) -> Result<DiskGuard, DiskError> {
        let mode = if min_free_bytes == 0 {
            GuardMode::Off
        } else {
            let size = fs_size(data_dir).map_err(|source| DiskError::Stat {
                dir: data_dir.to_path_buf(),
                source,
            })?;
            judge(data_dir, size, min_free_bytes)?
        };
        Ok(DiskGuard {
            data_dir: data_dir.to_path_buf(),
            min_free_bytes,
            mode,
        })
    }

    /// What this guard does, as decided at [`DiskGuard::open`].
    pub fn mode(&self) -> GuardMode {
        self.mode
    }

    /// One `statvfs`: cheap enough for every read round.
    pub fn check(&self) -> DiskRoom {
        if self.mode != GuardMode::Watching {
            return DiskRoom::Enough;
        }
        match free_bytes(&self.data_dir) {
            Ok(free) if free < self.min_free_bytes => DiskRoom::Low { free },
            _ => DiskRoom::Enough,
        }
    }

    /// The reason `/health` and the log give while reading is paused for lack of space.
    pub fn reason(&self, free: u64) -> String {
        format!(
            "no space left on {}: {free} bytes free, below min_free_bytes ({}); reading paused \
             until space returns",
            self.data_dir.display(),
            self.min_free_bytes
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usage_counts_allocated_blocks_of_nested_files() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("blobs")).unwrap();
        std::fs::write(dir.path().join("a"), vec![1u8; 100_000]).unwrap();
        std::fs::write(dir.path().join("blobs/b"), vec![2u8; 50_000]).unwrap();
        let used = disk_usage(dir.path()).unwrap();
        assert!(used >= 150_000, "{used}");
        assert!(used < 150_000 + 64 * 1024, "{used}");
        // A sparse file takes what it allocated, not its length.
        let sparse = std::fs::File::create(dir.path().join("sparse")).unwrap();
        sparse.set_len(1 << 30).unwrap();
        assert!(disk_usage(dir.path()).unwrap() < used + 64 * 1024);
    }

    #[test]
    fn guard_reports_low_space_only_below_the_minimum() {
        let dir = tempfile::tempdir().unwrap();
        let free = free_bytes(dir.path()).unwrap();
        assert!(free > 0);
        assert_eq!(
            DiskGuard::open(dir.path(), 0).unwrap().check(),
            DiskRoom::Enough
        );
        assert_eq!(
            DiskGuard::open(dir.path(), 1).unwrap().check(),
            DiskRoom::Enough
        );
        let size = fs_size(dir.path()).unwrap();
        // Just above what is free, yet small enough for the filesystem to pass at start.
        let min = free + 1;
        if size.total >= min + READ_ROUND_BYTES {
            let guard = DiskGuard::open(dir.path(), min).unwrap();
            let DiskRoom::Low { free } = guard.check() else {
                panic!("more than is free asked for");
            };
            assert!(guard.reason(free).contains("no space left on"));
        }
    }

    #[test]
    fn a_filesystem_smaller_than_the_minimum_plus_a_round_is_refused_naming_both_sizes() {
        let dir = Path::new("/var/lib/logship");
        let mib = 1024 * 1024;
        let small = FsSize {
            total: 16 * mib,
            free: 16 * mib,
        };
        let error = judge(dir, small, 16 * mib).unwrap_err();
        let text = error.to_string();
        assert!(text.contains(&(16 * mib).to_string()), "{text}");
        assert!(text.contains("min_free_bytes (16777216)"), "{text}");
        assert!(text.contains("/var/lib/logship"), "{text}");
        // One byte short of minimum + round: refused; exactly that: watched.
        let edge = FsSize {
            total: 17 * mib - 1,
            free: 0,
        };
        assert!(judge(dir, edge, 16 * mib).is_err());
        let enough = FsSize {
            total: 17 * mib,
            free: 0,
        };
        assert_eq!(judge(dir, enough, 16 * mib).unwrap(), GuardMode::Watching);
        // min_free_bytes = 0 turns the guard off on any filesystem.
        assert_eq!(judge(dir, small, 0).unwrap(), GuardMode::Off);
    }

    #[test]
    fn a_filesystem_reporting_no_size_is_neither_too_small_nor_full() {
        let dir = Path::new("/mnt/fuse");
        let unknown = FsSize { total: 0, free: 0 };
        assert_eq!(
            judge(dir, unknown, 16 * 1024 * 1024).unwrap(),
            GuardMode::SizeUnknown
        );
        // On a real directory with an impossible minimum a watching guard pauses; the same
        // guard on a filesystem that reported no size does not.
        let real = tempfile::tempdir().unwrap();
        let mut guard = DiskGuard {
            data_dir: real.path().to_path_buf(),
            min_free_bytes: u64::MAX,
            mode: GuardMode::Watching,
        };
        assert!(matches!(guard.check(), DiskRoom::Low { .. }));
        guard.mode = GuardMode::SizeUnknown;
        assert_eq!(guard.check(), DiskRoom::Enough);
    }
}
