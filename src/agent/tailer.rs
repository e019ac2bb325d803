//! One followed file (Vector's `FileWatcher`): its descriptor, checkpoint and read window. A
//! tailer reads complete lines, notices when its file was truncated or rewritten, and knows
//! when it is idle or drained; the file server only decides which tailers to run and commits
//! what they read.
//!
//! Durability: a tailer writes nothing. [`Tailer::read`] returns the chunk read together with
//! the checkpoint after it; the file server commits both in one fsynced WAL batch before the
//! tailer is read again. If that commit fails the process stops, and a restart reads the same
//! bytes again from the committed checkpoint, so the tailer's in-memory advance is never relied
//! on across a failure.
//!
//! A tailer holds its descriptor whatever happens at its path: a file renamed away or deleted
//! is read through it to its end (docs/design.md, rotation).

use std::fs::{File, Metadata};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use super::checkpoint::Checkpoint;
use super::chunk::Chunk;
use super::framing::frame;
use super::identity::{read_full_at, Fingerprint, PhysicalFile};
use super::multiline::Joiner;

/// The sizes a tailer reads and frames with.
#[derive(Debug, Clone, Copy)]
pub struct TailLimits {
    /// Lines longer than this are cut.
    pub max_line_bytes: usize,
    /// Size of one read (one WAL record at most, unless a line is longer).
    pub read_chunk_bytes: usize,
    /// How long a rotated-away or deleted file is followed after its last growth; after it, a
    /// last line without its newline is shipped as it is.
    pub rotate_wait: Duration,
}

/// A read ready to be committed: the encoded chunk and the checkpoint just after it.
#[derive(Debug)]
pub struct Read {
    /// The WAL record ([`Chunk::encode`]).
    pub payload: Vec<u8>,
    /// The file's checkpoint once `payload` is committed.
    pub checkpoint: Checkpoint,
    /// Lines (pieces) in the chunk.
    pub lines: u64,
    /// Source bytes in the chunk.
    pub bytes: u64,
    /// The chunk's read time ([`super::acked::stamp`]).
    pub read_at: i64,
}

/// What one [`Tailer::read`] found.
#[derive(Debug)]
pub enum Poll {
    /// Complete lines, to commit.
    Read(Read),
    /// Nothing complete to read now.
    Nothing,
    /// The file shrank below the checkpoint, or its first line is no longer the checkpoint's:
    /// its content was replaced (copytruncate, or a rewrite). Nothing was read.
    Truncated,
}

/// How a file is collected: the path it is read under, its topic, and what joins its lines.
#[derive(Debug, Clone)]
pub struct Collected {
    /// The collected path (for a file renamed away or an adopted copy: the path it had).
    pub path: PathBuf,
    /// Its topic.
    pub topic: String,
    /// The entry's `multiline`, compiled.
    pub joiner: Option<Arc<Joiner>>,
    /// The entry's static `fields`, by name.
    pub fields: Arc<Vec<(String, String)>>,
}

/// One followed file.
#[derive(Debug)]
pub struct Tailer {
    file: File,
    checkpoint: Checkpoint,
    /// The collected path it is read under (for a file renamed away or an adopted copy: the
    /// path it had, so that its checkpoint keeps naming a path the entries match), its topic,
    /// joiner and static fields.
    collected: Collected,
    /// Matched a collect entry in the latest scan; if not, it was renamed away or deleted (or
    /// is an adopted copy) and is drained, then closed.
    matched: bool,
    last_size: u64,
    last_growth: Instant,
    /// Bytes to read at once: `read_chunk_bytes`, doubled while no complete line fits.
    window: usize,
}

/// A matched file closed while idle (read to its end, unchanged for `close_idle`): what it
/// looked like then. It is reopened when its size or modification time differs.
#[derive(Debug, Clone)]
pub struct Closed {
    /// The collected path it was read under.
    pub path: PathBuf,
    /// Its topic.
    pub topic: String,
    /// Its size when closed (its checkpoint's offset).
    pub size: u64,
    /// Its modification time when closed.
    pub modified: Option<SystemTime>,
}

impl Closed {
    /// Whether `metadata` (of the same physical file) shows no change since the close.
    pub fn unchanged(&self, metadata: &Metadata) -> bool {
        metadata.len() == self.size && metadata.modified().ok() == self.modified
    }
}

impl Tailer {
    /// Follows `file` (`size` bytes now) from `checkpoint`, as `collected` says. `matched` is
    /// false for a file to drain (renamed away while not followed, or an adopted copy).
    pub fn new(
        file: File,
        checkpoint: Checkpoint,
        collected: Collected,
        matched: bool,
        size: u64,
        read_chunk_bytes: usize,
    ) -> Tailer {
        Tailer {
            file,
            checkpoint,
            collected,
            matched,
            last_size: size,
            last_growth: Instant::now(),
            window: read_chunk_bytes,
        }
    }

    /// The checkpoint after the latest read (committed or about to be).
    pub fn checkpoint(&self) -> &Checkpoint {
        &self.checkpoint
    }

    /// The physical file followed.
    pub fn key(&self) -> PhysicalFile {
        self.checkpoint.file
    }

    /// The collected path it is read under.
    pub fn path(&self) -> &Path {
        &self.collected.path
    }

    /// The open descriptor (to compare contents with a copy).
    pub fn file(&self) -> &File {
        &self.file
    }

    /// Whether the latest scan matched it.
    pub fn is_matched(&self) -> bool {
        self.matched
    }

    /// Marks it not matched, before a scan (which matches it again if it is still collected).
    pub fn unmatch(&mut self) {
        self.matched = false;
    }

    /// The scan found it, collected as `collected` says (the entries may have changed).
    pub fn matched_at(&mut self, collected: Collected) {
        self.matched = true;
        self.collected = collected;
    }

    /// How it is collected (for a copy of its content).
    pub fn collected(&self) -> Collected {
        self.collected.clone()
    }

    /// It was just renamed away or deleted: it is followed for `rotate_wait` from now at least,
    /// since its writer may go on appending until it reopens, however long it was idle before.
    pub fn rotated_now(&mut self) {
        self.last_growth = Instant::now();
    }

    /// Whether its first line is complete and differs from the checkpoint's: the content was
    /// rewritten in place without shrinking below the offset (only the fingerprint tells).
    pub fn first_line_changed(&self) -> io::Result<bool> {
        Ok(Fingerprint::of_file(&self.file)?.is_some_and(|fp| fp != self.checkpoint.fingerprint))
    }

    /// Whether its first line is still the checkpoint's (`Ok(None)`: the new content has no
    /// complete first line).
    pub fn same_first_line(&self) -> io::Result<Option<bool>> {
        Ok(Fingerprint::of_file(&self.file)?.map(|fp| fp == self.checkpoint.fingerprint))
    }

    /// After [`Poll::Truncated`]: starts the new content's stream at offset 0 and returns the
    /// checkpoint to write, or `None` while the new content has no complete first line (its
    /// stream starts once it has one).
    pub fn restart_stream(&mut self) -> io::Result<Option<Checkpoint>> {
        let Some(fingerprint) = Fingerprint::of_file(&self.file)? else {
            return Ok(None);
        };
        self.checkpoint.restart_after_truncation(fingerprint);
        Ok(Some(self.checkpoint.clone()))
    }

    /// Bytes written past the checkpoint (`None` if the file cannot be looked at).
    pub fn unread_bytes(&self) -> Option<u64> {
        let size = self.file.metadata().ok()?.len();
        Some(size.saturating_sub(self.checkpoint.offset))
    }

    /// Whether it may be closed while idle: matched, read to its end when last looked at, and
    /// unchanged for `close_idle` (or at once when `now`).
    pub fn is_idle(&self, close_idle: Duration, now: bool) -> bool {
        self.matched
            && self.last_size == self.checkpoint.offset
            && (now || self.last_growth.elapsed() >= close_idle)
    }

    /// What to remember of it when it is closed while idle (to reopen it when it changes), if
    /// it still has no unread bytes; `None` when it grew meanwhile (read it first) or cannot be
    /// looked at.
    pub fn closing(&self) -> Option<Closed> {
        let metadata = self.file.metadata().ok()?;
        if metadata.len() != self.checkpoint.offset {
            return None;
        }
        Some(Closed {
            size: metadata.len(),
            modified: metadata.modified().ok(),
            path: self.collected.path.clone(),
            topic: self.collected.topic.clone(),
        })
    }

    /// Whether it is drained: not matched, read to its end, unchanged for `rotate_wait`.
    pub fn is_drained(&self, rotate_wait: Duration) -> bool {
        !self.matched
            && self.last_growth.elapsed() >= rotate_wait
            && self.last_size <= self.checkpoint.offset
    }

    /// Its checkpoint, marked finished (the file is closed for good).
    pub fn finish(self) -> Checkpoint {
        let mut checkpoint = self.checkpoint;
        checkpoint.finished = true;
        checkpoint
    }

    /// Whether its path still holds this very file.
    pub fn still_at_path(&self) -> bool {
        std::fs::metadata(&self.collected.path)
            .is_ok_and(|m| PhysicalFile::from_metadata(&m) == self.checkpoint.file)
    }

    /// Reads the complete lines after the checkpoint, at most one window (more only for a line
    /// longer than the window, up to `max_line_bytes`), and advances the checkpoint past them.
    ///
    /// Truncation and rewrites are checked before every read, not only at rescans: a file only
    /// grows, so a first line that is no longer the checkpoint's (or no longer complete) means
    /// new content, and reading on at the old offset would ship the new content's bytes as the
    /// old stream's lines.
    pub fn read(&mut self, limits: &TailLimits) -> io::Result<Poll> {
        let size = self.file.metadata()?.len();
        if size != self.last_size {
            self.last_size = size;
            self.last_growth = Instant::now();
        }
        let rewritten = size > self.checkpoint.offset
            && Fingerprint::of_file(&self.file)? != Some(self.checkpoint.fingerprint);
        if size < self.checkpoint.offset || rewritten {
            return Ok(Poll::Truncated);
        }
        let available = size - self.checkpoint.offset;
        if available == 0 {
            return Ok(Poll::Nothing);
        }
        let idle = self.last_growth.elapsed() >= limits.rotate_wait;
        loop {
            let want = (self.window as u64).min(available) as usize;
            let mut buf = vec![0u8; want];
            let n = read_full_at(&self.file, &mut buf, self.checkpoint.offset)?;
            buf.truncate(n);
            let at_eof = (n as u64) == available;
            // A drained file's last line without its newline is shipped once the file stayed
            // unchanged for `rotate_wait`: its writer is gone.
            let flush_partial = !self.matched && idle && at_eof;
            let framed = frame(
                &buf,
                limits.max_line_bytes,
                flush_partial,
                self.checkpoint.mid_line,
            );
            // With `multiline`, whole events only: the last, still open, stays in the file (its
            // first byte is where the checkpoint stops) until a line closes it, the file stays
            // unchanged for the entry's timeout, or the file is drained.
            let mut ends_in_event = false;
            let (len, events, event_cuts, ends_mid_line, partial_end) = match &self.collected.joiner
            {
                None => (
                    framed.len,
                    Vec::new(),
                    Vec::new(),
                    framed.ends_mid_line,
                    framed.partial_end,
                ),
                Some(joiner) => {
                    let close_last =
                        at_eof && (flush_partial || self.last_growth.elapsed() >= joiner.timeout());
                    let grouped = joiner.group(
                        &buf[..framed.len],
                        &framed.cuts,
                        self.checkpoint.mid_line,
                        self.checkpoint.in_event,
                        close_last,
                    );
                    // An open event begins at a line's start.
                    let whole = grouped.len == framed.len;
                    ends_in_event = grouped.cut.last() == Some(&(grouped.len as u32));
                    (
                        grouped.len,
                        grouped.joined,
                        grouped.cut,
                        whole && framed.ends_mid_line,
                        whole && framed.partial_end,
                    )
                }
            };
            if len == 0 {
                // Nothing complete in the window: a longer line (or event) than it holds.
                let most = limits.max_line_bytes
                    + 1
                    + self
                        .collected
                        .joiner
                        .as_ref()
                        .map_or(0, |joiner| joiner.max_bytes());
                if n == want && self.window < most {
                    self.window = (self.window * 2).min(most);
                    continue;
                }
                return Ok(Poll::Nothing);
            }
            self.window = limits.read_chunk_bytes;
            buf.truncate(len);
            let read_at = super::acked::stamp();
            let chunk = Chunk {
                stream: self.checkpoint.stream.0.clone(),
                path: self.collected.path.display().to_string(),
                topic: self.collected.topic.clone(),
                start_offset: self.checkpoint.offset,
                read_at: super::acked::rfc3339(read_at),
                starts_mid_line: self.checkpoint.mid_line,
                cuts: framed
                    .cuts
                    .into_iter()
                    .filter(|&cut| cut as usize <= len)
                    .collect(),
                partial_end,
                data: buf,
                events,
                event_cuts,
                starts_in_event: self.checkpoint.in_event,
                fields: self.collected.fields.as_ref().clone(),
            };
            // Encoded before the checkpoint moves: a chunk that cannot be encoded is read again
            // next round (and the error reported each time), never skipped.
            let payload = chunk.encode().map_err(|error| {
                io::Error::other(format!("cannot encode the chunk read: {error}"))
            })?;
            let mut checkpoint = self.checkpoint.clone();
            checkpoint.advance(&chunk.data, ends_mid_line);
            checkpoint.in_event = ends_in_event;
            checkpoint.path = chunk.path.clone();
            self.checkpoint = checkpoint.clone();
            return Ok(Poll::Read(Read {
                payload,
                checkpoint,
                lines: chunk.piece_count() as u64,
                bytes: chunk.data.len() as u64,
                read_at,
            }));
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    const LIMITS: TailLimits = TailLimits {
        max_line_bytes: 64,
        read_chunk_bytes: 16,
        rotate_wait: Duration::ZERO,
    };

    struct Fixture {
        _dir: tempfile::TempDir,
        path: PathBuf,
        writer: File,
    }

    impl Fixture {
        fn new(content: &[u8]) -> Fixture {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("app.log");
            let mut writer = File::create(&path).unwrap();
            writer.write_all(content).unwrap();
            Fixture {
                _dir: dir,
                path,
                writer,
            }
        }

        fn append(&mut self, bytes: &[u8]) {
            self.writer.write_all(bytes).unwrap();
        }

        /// A tailer from offset 0, as a scan opens a new file.
        fn tailer(&self) -> Tailer {
            let file = File::open(&self.path).unwrap();
            let metadata = file.metadata().unwrap();
            let fingerprint = Fingerprint::of_file(&file).unwrap().unwrap();
            let physical = PhysicalFile::from_metadata(&metadata);
            let checkpoint = Checkpoint::start(
                physical,
                fingerprint,
                0,
                0,
                crc32fast::hash(b""),
                self.path.display().to_string(),
            );
            Tailer::new(
                file,
                checkpoint,
                Collected {
                    path: self.path.clone(),
                    topic: "t".into(),
                    joiner: None,
                    fields: Arc::default(),
                },
                true,
                metadata.len(),
                LIMITS.read_chunk_bytes,
            )
        }
    }

    /// Everything readable now, as the lines of the chunks read (pieces joined per chunk).
    fn read_all(tailer: &mut Tailer) -> Vec<u8> {
        let mut data = Vec::new();
        loop {
            match tailer.read(&LIMITS).unwrap() {
                Poll::Read(read) => {
                    let chunk = Chunk::decode(&read.payload).unwrap();
                    assert_eq!(read.checkpoint.offset, chunk.start_offset + read.bytes);
                    data.extend_from_slice(&chunk.data);
                }
                Poll::Nothing => return data,
                Poll::Truncated => panic!("unexpected truncation"),
            }
        }
    }

    #[test]
    fn reads_complete_lines_and_waits_for_the_end_of_a_partial_one() {
        let mut fixture = Fixture::new(b"first line\nsecond li");
        let mut tailer = fixture.tailer();
        assert_eq!(read_all(&mut tailer), b"first line\n");
        assert_eq!(tailer.checkpoint().offset, 11);
        fixture.append(b"ne\nthird\n");
        assert_eq!(read_all(&mut tailer), b"second line\nthird\n");
        assert_eq!(tailer.checkpoint().offset, 29);
        assert!(matches!(tailer.read(&LIMITS).unwrap(), Poll::Nothing));
    }

    #[test]
    fn a_line_longer_than_the_read_window_is_read_whole() {
        let long = [b'x'; 40];
        let mut content = long.to_vec();
        content.push(b'\n');
        let mut fixture = Fixture::new(b"head\n");
        fixture.append(&content);
        let mut tailer = fixture.tailer();
        let mut expected = b"head\n".to_vec();
        expected.extend_from_slice(&content);
        assert_eq!(read_all(&mut tailer), expected);
    }

    #[test]
    fn a_partial_last_line_of_a_drained_file_is_shipped_once_idle() {
        let fixture = Fixture::new(b"one\ntwo without newline");
        let mut tailer = fixture.tailer();
        assert_eq!(read_all(&mut tailer), b"one\n");
        // Still matched: its writer may finish the line.
        assert!(matches!(tailer.read(&LIMITS).unwrap(), Poll::Nothing));
        tailer.unmatch();
        assert_eq!(read_all(&mut tailer), b"two without newline");
        assert!(tailer.is_drained(LIMITS.rotate_wait));
    }

    #[test]
    fn truncation_is_noticed_before_reading_and_starts_a_new_stream() {
        let mut fixture = Fixture::new(b"old one\nold two\n");
        let mut tailer = fixture.tailer();
        read_all(&mut tailer);
        let old_stream = tailer.checkpoint().stream.clone();
        fixture.writer.set_len(0).unwrap();
        assert!(matches!(tailer.read(&LIMITS).unwrap(), Poll::Truncated));
        // No complete first line yet: no stream to start.
        assert!(tailer.restart_stream().unwrap().is_none());
        fixture.writer = std::fs::OpenOptions::new()
            .append(true)
            .open(&fixture.path)
            .unwrap();
        fixture.append(b"new\n");
        let checkpoint = tailer.restart_stream().unwrap().unwrap();
        assert_eq!(checkpoint.offset, 0);
        assert_ne!(checkpoint.stream, old_stream);
        assert_eq!(read_all(&mut tailer), b"new\n");
    }

    #[test]
    fn a_rewrite_past_the_offset_is_a_truncation_not_more_lines() {
        let fixture = Fixture::new(b"aaaa\n");
        let mut tailer = fixture.tailer();
        read_all(&mut tailer);
        // Replaced by longer content with another first line, before the tailer looked.
        std::fs::write(&fixture.path, b"bbbb\ncccc\n").unwrap();
        assert!(tailer.first_line_changed().unwrap());
        assert!(matches!(tailer.read(&LIMITS).unwrap(), Poll::Truncated));
    }

    #[test]
    fn a_renamed_file_is_read_on_through_its_descriptor() {
        let mut fixture = Fixture::new(b"before\n");
        let mut tailer = fixture.tailer();
        read_all(&mut tailer);
        let rotated = fixture.path.with_extension("log.1");
        std::fs::rename(&fixture.path, &rotated).unwrap();
        assert!(!tailer.still_at_path());
        fixture.append(b"after the rename\n");
        assert_eq!(read_all(&mut tailer), b"after the rename\n");
        // Read under the path it was collected at.
        assert_eq!(tailer.checkpoint().path, fixture.path.display().to_string());
    }

    #[test]
    fn a_deleted_file_is_read_to_its_end_then_drained() {
        let mut fixture = Fixture::new(b"kept\n");
        let mut tailer = fixture.tailer();
        std::fs::remove_file(&fixture.path).unwrap();
        fixture.append(b"written after the delete\n");
        tailer.unmatch();
        tailer.rotated_now();
        assert_eq!(read_all(&mut tailer), b"kept\nwritten after the delete\n");
        assert!(tailer.is_drained(Duration::ZERO));
        assert!(!tailer.is_drained(Duration::from_secs(3600)));
        let finished = tailer.finish();
        assert!(finished.finished);
        assert_eq!(finished.offset, 30);
    }

    #[test]
    fn only_a_file_read_to_its_end_closes_while_idle() {
        let mut fixture = Fixture::new(b"line\n");
        let mut tailer = fixture.tailer();
        assert!(!tailer.is_idle(Duration::ZERO, true), "unread bytes");
        read_all(&mut tailer);
        assert!(tailer.is_idle(Duration::ZERO, false));
        assert!(!tailer.is_idle(Duration::from_secs(3600), false));
        fixture.append(b"more\n");
        // Grew since it was last read: not closed.
        assert!(tailer.closing().is_none());
        read_all(&mut tailer);
        let closed = tailer.closing().unwrap();
        assert_eq!(closed.size, 10);
        let metadata = std::fs::metadata(&fixture.path).unwrap();
        assert!(closed.unchanged(&metadata));
        fixture.append(b"x\n");
        assert!(!closed.unchanged(&std::fs::metadata(&fixture.path).unwrap()));
    }
}
