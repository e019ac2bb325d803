//! What identifies a file, independent of its name.
//!
//! A path is not an identity: rotation renames files, and a new file can take an old name. An
//! inode alone is not one either: inodes are reused after a delete (Filebeat #1341, Fluent Bit
//! #1875). A content fingerprint alone collides when two files start with the same line
//! (Vector #5833). logship therefore identifies a file by all of:
//!
//! - [`PhysicalFile`]: device, inode and birth time (`statx` btime where the filesystem records
//!   it, else 0). Birth time separates a new file from an old one that had the same inode.
//! - a [`Fingerprint`]: CRC32 of the file's first line (or its first `FINGERPRINT_MAX_BYTES`
//!   bytes when that line is longer). A file whose first line is not complete yet has no
//!   fingerprint and is not read until it has one, so the fingerprint never changes under us.
//!
//! The **stream** of a file is what line ids are derived from ([`StreamId`]). A file starts its own
//! stream; a copy of a file made by copytruncate rotation continues the stream of its original
//! (see `checkpoint`), so its lines keep their ids.

use std::fs::{File, Metadata};
use std::io;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::{Deserialize, Serialize};

/// How many bytes of the first line are fingerprinted at most.
pub const FINGERPRINT_MAX_BYTES: usize = 1024;

/// Device, inode and birth time of a file: stable across renames, different for a new file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PhysicalFile {
    /// `st_dev`.
    pub dev: u64,
    /// `st_ino`.
    pub ino: u64,
    /// Birth time in nanoseconds since the epoch, or 0 where the filesystem does not keep it.
    pub btime_ns: u64,
}

impl PhysicalFile {
    /// Reads the identity from metadata (of an open file or a path).
    pub fn from_metadata(metadata: &Metadata) -> PhysicalFile {
        let btime_ns = metadata
            .created()
            .ok()
            .and_then(|created| created.duration_since(UNIX_EPOCH).ok())
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        PhysicalFile {
            dev: metadata.dev(),
            ino: metadata.ino(),
            btime_ns,
        }
    }

    /// The key under which this file's checkpoint is stored.
    pub fn checkpoint_key(&self) -> String {
        format!("{:x}:{:x}:{:x}", self.dev, self.ino, self.btime_ns)
    }
}

/// CRC32 of a file's first line (including its `\n`) or first [`FINGERPRINT_MAX_BYTES`] bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Fingerprint(pub u32);

impl Fingerprint {
    /// Computes the fingerprint of `file`, or `None` while its first line is incomplete and
    /// shorter than [`FINGERPRINT_MAX_BYTES`] (the file is then not read yet).
    pub fn of_file(file: &File) -> io::Result<Option<Fingerprint>> {
        let mut buf = [0u8; FINGERPRINT_MAX_BYTES];
        let mut filled = 0;
        while filled < buf.len() {
            let n = file.read_at(&mut buf[filled..], filled as u64)?;
            if n == 0 {
                break;
            }
            filled += n;
        }
        Ok(Fingerprint::of_head(&buf[..filled]))
    }

    /// Fingerprint of a file whose first bytes are `head` (at least [`FINGERPRINT_MAX_BYTES`]
    /// of them, or all of the file).
    pub fn of_head(head: &[u8]) -> Option<Fingerprint> {
        let end = match memchr::memchr(b'\n', head) {
            Some(newline) => newline + 1,
            None if head.len() >= FINGERPRINT_MAX_BYTES => FINGERPRINT_MAX_BYTES,
            None => return None,
        };
        Some(Fingerprint(crc32fast::hash(&head[..end])))
    }
}

/// The stream a file's lines belong to; line ids are derived from it (see `record::line_id`).
///
/// Written as 32 lowercase hex digits: the XXH3-128 of the physical identity, fingerprint and
/// truncation generation of the file that started the stream.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct StreamId(pub String);

impl StreamId {
    /// The stream started by `file` with `fingerprint`; `generation` counts truncations of the
    /// same physical file, so content rewritten after a truncation is a new stream even when it
    /// begins with the same first line.
    pub fn start(file: &PhysicalFile, fingerprint: Fingerprint, generation: u32) -> StreamId {
        let mut input = [0u8; 8 * 3 + 4 + 4];
        input[0..8].copy_from_slice(&file.dev.to_le_bytes());
        input[8..16].copy_from_slice(&file.ino.to_le_bytes());
        input[16..24].copy_from_slice(&file.btime_ns.to_le_bytes());
        input[24..28].copy_from_slice(&fingerprint.0.to_le_bytes());
        input[28..32].copy_from_slice(&generation.to_le_bytes());
        StreamId(format!("{:032x}", xxhash_rust::xxh3::xxh3_128(&input)))
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Reads as much of `buf` as the file has at `offset` (fewer bytes only at its end).
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
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

/// CRC32 of the first `len` bytes of `file` (fewer if the file is shorter): with a stream's
/// offset, what a copy of its content must start with (see `Checkpoint::prefix_crc`).
pub fn crc_of_prefix(file: &File, len: u64) -> io::Result<u32> {
    let mut hasher = crc32fast::Hasher::new();
    let mut buf = vec![0u8; (len.min(1024 * 1024) as usize).max(1)];
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

/// Whether the first `len` bytes of `a` and `b` are equal (both must hold `len` bytes).
pub fn same_prefix(a: &File, b: &File, len: u64) -> io::Result<bool> {
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

/// The offset just after the last newline before `size` (where `start_position = end` starts).
pub(crate) fn last_line_end(file: &File, size: u64) -> io::Result<u64> {
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
pub(crate) fn find_in_dir(
    dir: &Path,
    wanted: impl Fn(PhysicalFile) -> bool,
) -> Option<(PathBuf, File)> {
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
    fn fingerprint_waits_for_first_line() {
        assert_eq!(Fingerprint::of_head(b"partial"), None);
        let a = Fingerprint::of_head(b"first\nsecond").unwrap();
        assert_eq!(a, Fingerprint::of_head(b"first\nother").unwrap());
        assert_ne!(a, Fingerprint::of_head(b"First\n").unwrap());
    }

    #[test]
    fn fingerprint_of_long_first_line_uses_max_bytes() {
        let long = vec![b'x'; FINGERPRINT_MAX_BYTES + 10];
        assert!(Fingerprint::of_head(&long).is_some());
    }

    #[test]
    fn stream_ids_differ_by_every_part() {
        let file = PhysicalFile {
            dev: 1,
            ino: 2,
            btime_ns: 3,
        };
        let fp = Fingerprint(4);
        let base = StreamId::start(&file, fp, 0);
        assert_eq!(base, StreamId::start(&file, fp, 0));
        assert_eq!(base.as_str().len(), 32);
        assert_ne!(base, StreamId::start(&file, fp, 1));
        assert_ne!(base, StreamId::start(&file, Fingerprint(5), 0));
        let other = PhysicalFile { ino: 9, ..file };
        assert_ne!(base, StreamId::start(&other, fp, 0));
    }

    #[test]
    fn renamed_file_keeps_identity_new_file_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.log");
        std::fs::write(&a, b"line\n").unwrap();
        let before = PhysicalFile::from_metadata(&std::fs::metadata(&a).unwrap());
        let b = dir.path().join("b.log");
        std::fs::rename(&a, &b).unwrap();
        let after = PhysicalFile::from_metadata(&std::fs::metadata(&b).unwrap());
        assert_eq!(before, after);
        std::fs::write(&a, b"line\n").unwrap();
        let new = PhysicalFile::from_metadata(&std::fs::metadata(&a).unwrap());
        assert_ne!(before, new);
    }
}
