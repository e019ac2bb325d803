//! The agent's WAL record: one read from one file, holding whole pieces (lines or cut parts).
//!
//! One WAL record per read (up to `read_chunk_bytes`) rather than per line: sled appends 64–256
//! KiB values at disk speed, but only ~110k single-line values per second. The record carries
//! everything needed to rebuild the Kafka records exactly as they would have been sent the first
//! time — stream id, offsets, topic and the read time — so a resend after a crash produces the
//! same ids and the same `@timestamp` (hence the same daily index).

use serde::{Deserialize, Serialize};

use super::framing::{pieces, Piece};

/// Versioned encoding of a [`Chunk`] in the WAL. A new layout is a new variant; old records are
/// always decoded by the variant they were written with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkRecord {
    /// Format 1.
    V1(Chunk),
}

/// Bytes read from one file, ready to become Kafka records.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Chunk {
    /// Stream the lines belong to (their ids derive from it).
    pub stream: String,
    /// Path of the file when it was read.
    pub path: String,
    /// Kafka topic.
    pub topic: String,
    /// Offset of `data[0]` in the file.
    pub start_offset: u64,
    /// RFC 3339 time of the read, the `@timestamp` of every line in the chunk.
    pub read_at: String,
    /// `data` begins in the middle of a line that was cut at the length limit.
    pub starts_mid_line: bool,
    /// Piece ends where a too-long line was cut (relative to `data`).
    pub cuts: Vec<u32>,
    /// The last piece is a line without newline, flushed because the file was drained.
    pub partial_end: bool,
    /// The framed bytes.
    #[serde(with = "serde_bytes")]
    pub data: Vec<u8>,
}

/// A WAL payload that is not a chunk this agent understands.
#[derive(Debug, thiserror::Error)]
#[error("cannot decode WAL chunk: {0}")]
pub struct ChunkDecodeError(#[from] bincode::Error);

impl Chunk {
    /// Encodes as the current [`ChunkRecord`] version.
    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain data into a Vec cannot fail.
        bincode::serialize(&ChunkRecordRef::V1(self)).unwrap_or_default()
    }

    /// Decodes any known version.
    pub fn decode(bytes: &[u8]) -> Result<Chunk, ChunkDecodeError> {
        match bincode::deserialize::<ChunkRecord>(bytes)? {
            ChunkRecord::V1(chunk) => Ok(chunk),
        }
    }

    /// The pieces (lines or parts of cut lines) in this chunk.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> + '_ {
        pieces(
            &self.data,
            &self.cuts,
            self.partial_end,
            self.starts_mid_line,
        )
    }

    /// Number of pieces, hence of Kafka records.
    pub fn piece_count(&self) -> usize {
        self.pieces().count()
    }
}

/// Borrowing twin of [`ChunkRecord`] with the same encoding, so encoding does not clone data.
#[derive(Serialize)]
enum ChunkRecordRef<'a> {
    V1(&'a Chunk),
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_pieces() {
        let chunk = Chunk {
            stream: "s".into(),
            path: "/var/log/a.log".into(),
            topic: "t".into(),
            start_offset: 100,
            read_at: "2026-11-23T00:00:00Z".into(),
            starts_mid_line: false,
            cuts: vec![],
            partial_end: false,
            data: b"one\ntwo\n".to_vec(),
        };
        let bytes = chunk.encode();
        let back = Chunk::decode(&bytes).unwrap();
        assert_eq!(back, chunk);
        assert_eq!(back.piece_count(), 2);
        let owned: ChunkRecord = bincode::deserialize(&bytes).unwrap();
        assert_eq!(owned, ChunkRecord::V1(chunk));
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Chunk::decode(&[0xff, 0xff, 0xff, 0xff, 1, 2]).is_err());
        assert!(Chunk::decode(&[]).is_err());
    }
}
