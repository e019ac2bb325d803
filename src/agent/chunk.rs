//! The agent's WAL record: one read from one file, holding whole pieces (lines or cut parts).
//!
//! One WAL record per read (up to `read_chunk_bytes`) rather than per line: sled appends 64–256
//! KiB values at disk speed, but only ~110k single-line values per second. The record carries
//! everything needed to rebuild the Kafka records exactly as they would have been sent the first
//! time — stream id, offsets, topic and the read time — so a resend after a crash produces the
//! same ids and the same `@timestamp` (hence the same daily index).

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::framing::{joined_pieces, Joins, Piece};

/// Versioned encoding of a [`Chunk`] in the WAL. A new layout is a new variant; old records are
/// always decoded by the variant they were written with. (Borrowed when encoding, owned when
/// decoded: `Cow` encodes exactly as the owned type.)
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ChunkRecord<'a> {
    /// Format 1: the data as read.
    V1(Cow<'a, Chunk>),
    /// Format 2 (what this agent writes for plain lines): the data LZ4-compressed (one block).
    /// Log text shrinks ~3.4×, so the WAL writes and fsyncs, and keeps resident (sled holds
    /// pending values in memory), a third of the bytes.
    #[serde(borrow)]
    V2(CompressedChunk<'a>),
    /// Format 3 (written when the chunk holds events joined from several lines, `multiline`):
    /// format 2 plus where those events are.
    V3 {
        /// The chunk as in format 2.
        #[serde(borrow)]
        chunk: CompressedChunk<'a>,
        /// [`Chunk::events`].
        events: Cow<'a, [(u32, u32)]>,
        /// [`Chunk::event_cuts`].
        event_cuts: Cow<'a, [u32]>,
        /// [`Chunk::starts_in_event`].
        starts_in_event: bool,
        /// [`Chunk::fields`].
        fields: Cow<'a, [(String, String)]>,
    },
    /// Format 4: not lines of a file but one round of host metrics samples
    /// ([`MetricsRecord`]), written by the agent's sampler (`[host_metrics]`).
    Metrics(Cow<'a, MetricsRecord>),
}

/// One round of host metrics in the WAL: InfluxDB line protocol, all points at `time_ns`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetricsRecord {
    /// The Kafka topic it goes to.
    pub topic: String,
    /// Sampling time, nanoseconds since the Unix epoch.
    pub time_ns: i64,
    /// The points, one line each.
    #[serde(with = "serde_bytes")]
    pub lines: Vec<u8>,
}

impl MetricsRecord {
    /// Encodes as format 4 of [`ChunkRecord`].
    pub fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        bincode::serialize(&ChunkRecord::Metrics(Cow::Borrowed(self)))
    }
}

/// What one WAL record holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Payload {
    /// Bytes read from a file.
    Lines(Chunk),
    /// Host metrics samples.
    Metrics(MetricsRecord),
}

impl Payload {
    /// Decodes any known version of either kind.
    pub fn decode(bytes: &[u8]) -> Result<Payload, ChunkDecodeError> {
        Ok(match bincode::deserialize::<ChunkRecord>(bytes)? {
            ChunkRecord::V1(chunk) => Payload::Lines(chunk.into_owned()),
            ChunkRecord::V2(compressed) => Payload::Lines(decompress(compressed)?),
            ChunkRecord::V3 {
                chunk,
                events,
                event_cuts,
                starts_in_event,
                fields,
            } => {
                let mut chunk = decompress(chunk)?;
                chunk.events = events.into_owned();
                chunk.event_cuts = event_cuts.into_owned();
                chunk.starts_in_event = starts_in_event;
                chunk.fields = fields.into_owned();
                Payload::Lines(chunk)
            }
            ChunkRecord::Metrics(record) => Payload::Metrics(record.into_owned()),
        })
    }
}

/// A [`Chunk`] whose `data` is LZ4-compressed (format 2 of [`ChunkRecord`]); the other fields
/// are the chunk's, in the same order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressedChunk<'a> {
    /// [`Chunk::stream`].
    pub stream: Cow<'a, str>,
    /// [`Chunk::path`].
    pub path: Cow<'a, str>,
    /// [`Chunk::topic`].
    pub topic: Cow<'a, str>,
    /// [`Chunk::start_offset`].
    pub start_offset: u64,
    /// [`Chunk::read_at`].
    pub read_at: Cow<'a, str>,
    /// [`Chunk::starts_mid_line`].
    pub starts_mid_line: bool,
    /// [`Chunk::cuts`].
    pub cuts: Cow<'a, [u32]>,
    /// [`Chunk::partial_end`].
    pub partial_end: bool,
    /// Length of the data before compression.
    pub data_len: u32,
    /// The data, one LZ4 block (borrowed from the WAL record when decoding).
    #[serde(with = "serde_bytes", borrow)]
    pub lz4: Cow<'a, [u8]>,
}

/// The largest chunk data a record may claim to hold (`read_chunk_bytes` is far below it); a
/// larger claim is damage, refused before anything is allocated.
pub const MAX_CHUNK_DATA_BYTES: usize = 64 * 1024 * 1024;

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
    /// `(start, end)` (relative to `data`) of each event joined from several lines; each is one
    /// piece. Not part of format 1, which holds plain lines only.
    #[serde(skip)]
    pub events: Vec<(u32, u32)>,
    /// Ends of events cut at their `max_lines` / `max_bytes` (flagged `split`, as cut lines).
    #[serde(skip)]
    pub event_cuts: Vec<u32>,
    /// `data` begins with the rest of an event cut at its limits in the chunk before.
    #[serde(skip)]
    pub starts_in_event: bool,
    /// The collect entry's static `fields`, put on every record (sorted by name, unique).
    #[serde(skip)]
    pub fields: Vec<(String, String)>,
}

/// A WAL payload that is not a chunk this agent understands.
#[derive(Debug, thiserror::Error)]
pub enum ChunkDecodeError {
    /// Not a bincode [`ChunkRecord`].
    #[error("cannot decode WAL chunk: {0}")]
    Encoding(#[from] bincode::Error),
    /// A compressed chunk whose data does not decompress to its stated length.
    #[error("cannot decompress WAL chunk data: {0}")]
    Data(String),
    /// A record of host metrics, not lines (see [`Payload`]).
    #[error("the WAL record holds host metrics, not lines")]
    NotLines,
}

impl Chunk {
    /// Encodes as the current [`ChunkRecord`] version (2, data LZ4-compressed; 3 when it holds
    /// joined events). An error here is the serializer's; the caller must not advance past
    /// data it could not encode.
    pub fn encode(&self) -> Result<Vec<u8>, bincode::Error> {
        let chunk = CompressedChunk {
            stream: Cow::Borrowed(&self.stream),
            path: Cow::Borrowed(&self.path),
            topic: Cow::Borrowed(&self.topic),
            start_offset: self.start_offset,
            read_at: Cow::Borrowed(&self.read_at),
            starts_mid_line: self.starts_mid_line,
            cuts: Cow::Borrowed(&self.cuts),
            partial_end: self.partial_end,
            data_len: self.data.len() as u32,
            lz4: Cow::Owned(lz4_flex::block::compress(&self.data)),
        };
        let record = if self.events.is_empty()
            && self.event_cuts.is_empty()
            && !self.starts_in_event
            && self.fields.is_empty()
        {
            ChunkRecord::V2(chunk)
        } else {
            ChunkRecord::V3 {
                chunk,
                events: Cow::Borrowed(&self.events),
                event_cuts: Cow::Borrowed(&self.event_cuts),
                starts_in_event: self.starts_in_event,
                fields: Cow::Borrowed(&self.fields),
            }
        };
        bincode::serialize(&record)
    }

    /// Encodes as format 1 (uncompressed), as agents before format 2 wrote it.
    pub fn encode_v1(&self) -> Result<Vec<u8>, bincode::Error> {
        bincode::serialize(&ChunkRecord::V1(Cow::Borrowed(self)))
    }

    /// Decodes any known version.
    pub fn decode(bytes: &[u8]) -> Result<Chunk, ChunkDecodeError> {
        match Payload::decode(bytes)? {
            Payload::Lines(chunk) => Ok(chunk),
            Payload::Metrics(_) => Err(ChunkDecodeError::NotLines),
        }
    }

    /// The read time of a WAL record of lines, or the sampling time of a round of host metrics
    /// (nanoseconds since the epoch), read without decompressing; `None` for what cannot be
    /// decoded.
    pub fn read_time_of(bytes: &[u8]) -> Option<i64> {
        let read_at = match bincode::deserialize::<ChunkRecord>(bytes).ok()? {
            ChunkRecord::V1(chunk) => chunk.read_at.clone(),
            ChunkRecord::V2(compressed)
            | ChunkRecord::V3 {
                chunk: compressed, ..
            } => compressed.read_at.into_owned(),
            ChunkRecord::Metrics(metrics) => return Some(metrics.time_ns),
        };
        super::acked::parse_rfc3339(&read_at)
    }

    /// The pieces (lines, parts of cut lines, joined events) in this chunk.
    pub fn pieces(&self) -> impl Iterator<Item = Piece<'_>> + '_ {
        joined_pieces(
            &self.data,
            &self.cuts,
            self.partial_end,
            self.starts_mid_line || self.starts_in_event,
            Joins {
                events: &self.events,
                cut: &self.event_cuts,
            },
        )
    }

    /// Number of pieces (lines or parts of cut lines), each a document downstream.
    pub fn piece_count(&self) -> usize {
        self.pieces().count()
    }
}

/// The chunk of a format 2 record (or of the format 2 part of a format 3 one).
fn decompress(compressed: CompressedChunk<'_>) -> Result<Chunk, ChunkDecodeError> {
    let data_len = compressed.data_len as usize;
    // LZ4 expands at most 255× (plus a few bytes): a larger claim is damage.
    if data_len > MAX_CHUNK_DATA_BYTES
        || data_len > compressed.lz4.len().saturating_mul(255).saturating_add(16)
    {
        return Err(ChunkDecodeError::Data(format!(
            "claims {data_len} bytes from {} compressed",
            compressed.lz4.len()
        )));
    }
    let data = lz4_flex::block::decompress(&compressed.lz4, data_len)
        .map_err(|e| ChunkDecodeError::Data(e.to_string()))?;
    if data.len() != data_len {
        return Err(ChunkDecodeError::Data(format!(
            "decompressed to {} bytes, not {data_len}",
            data.len()
        )));
    }
    Ok(Chunk {
        stream: compressed.stream.into_owned(),
        path: compressed.path.into_owned(),
        topic: compressed.topic.into_owned(),
        start_offset: compressed.start_offset,
        read_at: compressed.read_at.into_owned(),
        starts_mid_line: compressed.starts_mid_line,
        cuts: compressed.cuts.into_owned(),
        partial_end: compressed.partial_end,
        data,
        events: Vec::new(),
        event_cuts: Vec::new(),
        starts_in_event: false,
        fields: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::framing::PieceEnd;

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
            events: vec![],
            event_cuts: vec![],
            starts_in_event: false,
            fields: Vec::new(),
        };
        let bytes = chunk.encode().unwrap();
        let back = Chunk::decode(&bytes).unwrap();
        assert_eq!(back, chunk);
        assert_eq!(back.piece_count(), 2);
        let owned: ChunkRecord = bincode::deserialize(&bytes).unwrap();
        let ChunkRecord::V2(compressed) = owned else {
            panic!("new records are format 2");
        };
        assert_eq!(compressed.data_len, 8);
        assert_eq!(compressed.stream, "s");
        // Records written by earlier agents (format 1) still decode.
        let old = chunk.encode_v1().unwrap();
        assert_eq!(
            bincode::deserialize::<ChunkRecord>(&old).unwrap(),
            ChunkRecord::V1(Cow::Owned(chunk.clone()))
        );
        assert_eq!(Chunk::decode(&old).unwrap(), chunk);
    }

    fn text_chunk(data: Vec<u8>) -> Chunk {
        Chunk {
            stream: "s".into(),
            path: "/var/log/a.log".into(),
            topic: "t".into(),
            start_offset: 0,
            read_at: "2026-11-23T00:00:00Z".into(),
            starts_mid_line: false,
            cuts: vec![],
            partial_end: false,
            data,
            events: vec![],
            event_cuts: vec![],
            starts_in_event: false,
            fields: Vec::new(),
        }
    }

    #[test]
    fn log_text_is_stored_compressed() {
        let mut data = Vec::new();
        for n in 0..2000 {
            data.extend_from_slice(
                format!("10.0.0.{} - - [23/Nov/2026:10:00:00 +0000] \"GET /item/{n} HTTP/1.1\" 200 512\n", n % 250)
                    .as_bytes(),
            );
        }
        let chunk = text_chunk(data);
        let bytes = chunk.encode().unwrap();
        assert!(
            bytes.len() * 3 < chunk.data.len(),
            "{} of {}",
            bytes.len(),
            chunk.data.len()
        );
        assert_eq!(Chunk::decode(&bytes).unwrap(), chunk);
    }

    #[test]
    fn a_damaged_compressed_chunk_is_an_error() {
        let chunk = text_chunk(b"one\ntwo\nthree\n".to_vec());
        let encoded = chunk.encode().unwrap();
        let ChunkRecord::V2(mut compressed) = bincode::deserialize(&encoded).unwrap() else {
            panic!("format 2");
        };
        for data_len in [7, 40, u32::MAX] {
            let mut bad = compressed.clone();
            bad.data_len = data_len;
            let bytes = bincode::serialize(&ChunkRecord::V2(bad)).unwrap();
            assert!(Chunk::decode(&bytes).is_err(), "data_len {data_len}");
        }
        let half = compressed.lz4.len() / 2;
        compressed.lz4.to_mut().truncate(half);
        let bytes = bincode::serialize(&ChunkRecord::V2(compressed)).unwrap();
        assert!(Chunk::decode(&bytes).is_err());
    }

    #[test]
    fn chunks_with_joined_events_are_format_3_and_keep_them() {
        let mut chunk = text_chunk(b"2026 a\n  b\n  c\n2026 d\n".to_vec());
        chunk.events = vec![(0, 15)];
        chunk.event_cuts = vec![15];
        chunk.starts_in_event = true;
        let bytes = chunk.encode().unwrap();
        assert!(matches!(
            bincode::deserialize::<ChunkRecord>(&bytes).unwrap(),
            ChunkRecord::V3 { .. }
        ));
        let back = Chunk::decode(&bytes).unwrap();
        assert_eq!(back, chunk);
        let pieces: Vec<_> = back.pieces().collect();
        assert_eq!(pieces.len(), 2);
        assert_eq!(pieces[0].text, b"2026 a\n  b\n  c");
        assert_eq!(pieces[0].lines, 3);
        assert_eq!(pieces[0].end, PieceEnd::Cut);
        assert!(
            pieces[0].continues,
            "the rest of an event cut in the chunk before"
        );
        assert!(pieces[1].continues, "the rest of the event cut here");
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        assert!(Chunk::decode(&[0xff, 0xff, 0xff, 0xff, 1, 2]).is_err());
        assert!(Chunk::decode(&[]).is_err());
    }
}
