//! Where the agent is in each file, kept in the WAL's state so it advances atomically with the
//! data it covers.
//!
//! A checkpoint's `offset` is the first byte **not yet in the WAL**. It is written in the same
//! atomic sled batch as the WAL record holding the bytes before it, and that batch is fsynced
//! before the agent reads further or sends anything: after a crash, every byte before the
//! checkpoint is in the WAL (and will be resent until Kafka acknowledges it) and every byte after
//! it will be read again. Nothing falls between.
//!
//! Checkpoints are keyed by the physical file (device, inode, birth time). Each holds the
//! fingerprint and stream of the content it tracks, and a CRC of all bytes before `offset`, which
//! lets the agent recognise a copy of the file made by copytruncate rotation and continue the
//! original stream in the copy, so no line is shipped twice under different ids.

use std::collections::HashMap;
use std::time::{SystemTime, UNIX_EPOCH};

use serde::{Deserialize, Serialize};

use super::identity::{Fingerprint, PhysicalFile, StreamId};

/// Prefix of checkpoint keys in the WAL state.
pub const KEY_PREFIX: &str = "cp/";

/// Versioned on-disk form of a [`Checkpoint`].
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum CheckpointRecord {
    /// Format 1 (still written whenever `in_event` is false, so older agents read it).
    V1(Checkpoint),
    /// Format 2: format 1 plus [`Checkpoint::in_event`].
    V2 {
        /// The checkpoint as in format 1.
        checkpoint: Checkpoint,
        /// [`Checkpoint::in_event`].
        in_event: bool,
    },
}

/// An earlier stream of the same physical file, kept after a truncation so that a copy of the
/// old content (copytruncate) can still be matched and drained.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PreviousStream {
    /// Its stream.
    pub stream: StreamId,
    /// Its fingerprint.
    pub fingerprint: Fingerprint,
    /// How far it was read.
    pub offset: u64,
    /// CRC32 of its bytes before `offset`.
    pub prefix_crc: u32,
}

/// Progress in one physical file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    /// The file.
    pub file: PhysicalFile,
    /// Fingerprint of the content being read.
    pub fingerprint: Fingerprint,
    /// Stream the lines belong to.
    pub stream: StreamId,
    /// How often this physical file was truncated while tracked.
    pub generation: u32,
    /// First byte not yet in the WAL.
    pub offset: u64,
    /// CRC32 of the bytes before `offset`.
    pub prefix_crc: u32,
    /// The reading stopped inside a line that was cut at the length limit.
    pub mid_line: bool,
    /// Last path the file was seen under.
    pub path: String,
    /// Unix milliseconds of the last update.
    pub updated_ms: u64,
    /// The file was renamed away or deleted and drained; it is no longer followed.
    pub finished: bool,
    /// The stream before the last truncation, if any.
    pub previous: Option<PreviousStream>,
    /// The reading stopped between two parts of an event cut at its `multiline` limits: the
    /// next piece continues it (flagged `split`, and joined as the rest of that event).
    #[serde(skip)]
    pub in_event: bool,
}

impl Checkpoint {
    /// The checkpoint of a stream just started at `offset` (0, or the end for `start_position = end`).
    pub fn start(
        file: PhysicalFile,
        fingerprint: Fingerprint,
        generation: u32,
        offset: u64,
        prefix_crc: u32,
        path: String,
    ) -> Checkpoint {
        Checkpoint {
            file,
            fingerprint,
            stream: StreamId::start(&file, fingerprint, generation),
            generation,
            offset,
            prefix_crc,
            mid_line: false,
            path,
            updated_ms: now_ms(),
            finished: false,
            previous: None,
            in_event: false,
        }
    }

    /// The state key of this checkpoint.
    pub fn key(&self) -> Vec<u8> {
        format!("{KEY_PREFIX}{}", self.file.checkpoint_key()).into_bytes()
    }

    /// Encodes as the current version. An error is the serializer's: the checkpoint must then
    /// not be written (nor the data it covers).
    pub fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        if self.in_event {
            bincode::serialize(&CheckpointRecord::V2 {
                checkpoint: self.clone(),
                in_event: true,
            })
        } else {
            bincode::serialize(&CheckpointRecord::V1(self.clone()))
        }
    }

    /// Decodes any known version.
    pub fn decode(bytes: &[u8]) -> Result<Checkpoint, bincode::Error> {
        match bincode::deserialize::<CheckpointRecord>(bytes)? {
            CheckpointRecord::V1(checkpoint) => Ok(checkpoint),
            CheckpointRecord::V2 {
                mut checkpoint,
                in_event,
            } => {
                checkpoint.in_event = in_event;
                Ok(checkpoint)
            }
        }
    }

    /// Moves the checkpoint past `consumed`, the bytes just framed at `offset`.
    pub fn advance(&mut self, consumed: &[u8], ends_mid_line: bool) {
        let mut hasher = crc32fast::Hasher::new_with_initial_len(self.prefix_crc, self.offset);
        hasher.update(consumed);
        self.prefix_crc = hasher.finalize();
        self.offset += consumed.len() as u64;
        self.mid_line = ends_mid_line;
        self.updated_ms = now_ms();
    }

    /// Starts a new stream in the same physical file after it was truncated or rewritten.
    pub fn restart_after_truncation(&mut self, fingerprint: Fingerprint) {
        self.previous = Some(PreviousStream {
            stream: self.stream.clone(),
            fingerprint: self.fingerprint,
            offset: self.offset,
            prefix_crc: self.prefix_crc,
        });
        self.in_event = false;
        self.generation += 1;
        self.fingerprint = fingerprint;
        self.stream = StreamId::start(&self.file, fingerprint, self.generation);
        self.offset = 0;
        self.prefix_crc = 0;
        self.mid_line = false;
        self.finished = false;
        self.updated_ms = now_ms();
    }

    /// The streams of this checkpoint a copy with `fingerprint` could continue: current, then previous.
    pub fn copy_candidates(&self, fingerprint: Fingerprint) -> Vec<PreviousStream> {
        let mut out = Vec::new();
        if self.fingerprint == fingerprint {
            out.push(PreviousStream {
                stream: self.stream.clone(),
                fingerprint: self.fingerprint,
                offset: self.offset,
                prefix_crc: self.prefix_crc,
            });
        }
        if let Some(previous) = &self.previous {
            if previous.fingerprint == fingerprint {
                out.push(previous.clone());
            }
        }
        out
    }
}

/// Milliseconds since the Unix epoch.
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// All checkpoints, in memory, mirroring the WAL state.
#[derive(Debug, Default)]
pub struct Checkpoints {
    by_file: HashMap<PhysicalFile, Checkpoint>,
}

impl Checkpoints {
    /// Builds the set from decoded checkpoints.
    pub fn load(checkpoints: impl IntoIterator<Item = Checkpoint>) -> Checkpoints {
        Checkpoints {
            by_file: checkpoints.into_iter().map(|c| (c.file, c)).collect(),
        }
    }

    /// The checkpoint of `file`.
    pub fn get(&self, file: &PhysicalFile) -> Option<&Checkpoint> {
        self.by_file.get(file)
    }

    /// Records `checkpoint` (after it was durably written).
    pub fn set(&mut self, checkpoint: Checkpoint) {
        self.by_file.insert(checkpoint.file, checkpoint);
    }

    /// Every checkpoint.
    pub fn iter(&self) -> impl Iterator<Item = &Checkpoint> {
        self.by_file.values()
    }

    /// Streams (of other physical files) a new file with `fingerprint` could be a copy of,
    /// furthest-read first.
    pub fn copy_candidates(
        &self,
        fingerprint: Fingerprint,
        not: &PhysicalFile,
    ) -> Vec<PreviousStream> {
        let mut out: Vec<PreviousStream> = self
            .by_file
            .values()
            .filter(|c| &c.file != not)
            .flat_map(|c| c.copy_candidates(fingerprint))
            .collect();
        out.sort_by_key(|c| std::cmp::Reverse(c.offset));
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(ino: u64) -> PhysicalFile {
        PhysicalFile {
            dev: 1,
            ino,
            btime_ns: 7,
        }
    }

    #[test]
    fn advance_keeps_a_running_crc_of_the_prefix() {
        let mut checkpoint = Checkpoint::start(file(1), Fingerprint(9), 0, 0, 0, "/a".into());
        checkpoint.advance(b"hello\n", false);
        checkpoint.advance(b"world\n", false);
        assert_eq!(checkpoint.offset, 12);
        assert_eq!(checkpoint.prefix_crc, crc32fast::hash(b"hello\nworld\n"));
    }

    #[test]
    fn encode_decode_round_trip() {
        let mut checkpoint = Checkpoint::start(file(1), Fingerprint(9), 0, 0, 0, "/a".into());
        checkpoint.advance(b"x\n", false);
        checkpoint.restart_after_truncation(Fingerprint(10));
        let back = Checkpoint::decode(&checkpoint.encode().unwrap()).unwrap();
        assert_eq!(back, checkpoint);
        assert!(Checkpoint::decode(b"junk").is_err());
        // Stopped between two parts of a cut event: format 2, which keeps that.
        checkpoint.in_event = true;
        let bytes = checkpoint.encode().unwrap();
        assert!(matches!(
            bincode::deserialize::<CheckpointRecord>(&bytes).unwrap(),
            CheckpointRecord::V2 { in_event: true, .. }
        ));
        assert_eq!(Checkpoint::decode(&bytes).unwrap(), checkpoint);
        checkpoint.restart_after_truncation(Fingerprint(11));
        assert!(!checkpoint.in_event);
        assert!(matches!(
            bincode::deserialize::<CheckpointRecord>(&checkpoint.encode().unwrap()).unwrap(),
            CheckpointRecord::V1(_)
        ));
    }

    #[test]
    fn truncation_starts_a_new_stream_and_remembers_the_old() {
        let mut checkpoint = Checkpoint::start(file(1), Fingerprint(9), 0, 0, 0, "/a".into());
        checkpoint.advance(b"line\n", false);
        let old = checkpoint.stream.clone();
        checkpoint.restart_after_truncation(Fingerprint(9));
        assert_ne!(
            checkpoint.stream, old,
            "same first line after truncation is still a new stream"
        );
        assert_eq!(checkpoint.offset, 0);
        let set = Checkpoints::load([checkpoint]);
        let candidates = set.copy_candidates(Fingerprint(9), &file(2));
        assert_eq!(candidates.len(), 2);
        assert_eq!(candidates[0].stream, old);
        assert_eq!(candidates[0].offset, 5);
        assert!(set.copy_candidates(Fingerprint(9), &file(1)).is_empty());
    }
}
