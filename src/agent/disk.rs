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
}

impl DiskGuard {
    /// A guard pausing reading while `data_dir`'s filesystem has less than `min_free_bytes`
    /// free (0: never pauses).
    pub fn new(data_dir: &Path, min_free_bytes: u64) -> DiskGuard {
        DiskGuard {
            data_dir: data_dir.to_path_buf(),
            min_free_bytes,
        }
    }

    /// One `statvfs`: cheap enough for every read round.
    pub fn check(&self) -> DiskRoom {
        if self.min_free_bytes == 0 {
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
        assert_eq!(DiskGuard::new(dir.path(), 0).check(), DiskRoom::Enough);
        assert_eq!(DiskGuard::new(dir.path(), 1).check(), DiskRoom::Enough);
        let guard = DiskGuard::new(dir.path(), u64::MAX);
        let DiskRoom::Low { free } = guard.check() else {
            panic!("u64::MAX bytes cannot be free");
        };
        assert!(guard.reason(free).contains("no space left on"));
    }
}
