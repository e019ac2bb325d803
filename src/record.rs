//! The record that travels through Kafka: the contract between the agent and the transfer.
//!
//! One Kafka record carries consecutive log lines of one file. Its **value** is NDJSON: the JSON
//! of one [`LineRecord`] per line, separated by `\n` (no trailing newline; a single line is a
//! plain JSON object), at most `kafka.max_lines_per_record` lines and about 64 KiB. Its **key**
//! is the stream id (see [`crate::agent::identity`]), so all lines of one file land in one
//! partition, in order.
//!
//! The `id` is derived only from the line's *source position* (host, stream, byte offset), never
//! from Kafka coordinates or the time of sending: however often a line is replayed (agent crash,
//! producer resend, consumer rebalance), it carries the same id and lands on the same
//! Elasticsearch document.

use std::borrow::Cow;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};

/// A Kafka record is closed before it grows past this many bytes of JSON (a single line larger
/// than this travels alone).
pub const RECORD_TARGET_BYTES: usize = 64 * 1024;

/// One log line as shipped to Kafka (JSON value of the Kafka record).
///
/// Optional flags are omitted from the JSON when false, so the common record stays small.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LineRecord<'a> {
    /// Deterministic id: see [`line_id`]. URL-safe, 22 characters.
    #[serde(borrow)]
    pub id: Cow<'a, str>,
    /// Host the line was read on.
    #[serde(borrow)]
    pub host: Cow<'a, str>,
    /// Path of the file the line was read from (the path at the time it was read).
    #[serde(borrow)]
    pub file: Cow<'a, str>,
    /// Stream id of the file (stable across renames; see `agent::identity`).
    #[serde(borrow)]
    pub file_id: Cow<'a, str>,
    /// Byte offset of the line's first byte in its file.
    pub offset: u64,
    /// The line without its trailing `\n`. Invalid UTF-8 is replaced by U+FFFD (see `invalid_utf8`).
    #[serde(borrow)]
    pub message: Cow<'a, str>,
    /// RFC 3339 time the line was read by the agent (kept in the agent's WAL, so a replay
    /// carries the same time and lands in the same daily index).
    #[serde(rename = "@timestamp", borrow)]
    pub timestamp: Cow<'a, str>,
    /// The line was not valid UTF-8 and `message` is a lossy conversion.
    #[serde(default, skip_serializing_if = "is_false")]
    pub invalid_utf8: bool,
    /// The line was longer than `max_line_bytes`: this record is one piece of it, and the next
    /// piece starts at `offset + piece length`.
    #[serde(default, skip_serializing_if = "is_false")]
    pub split: bool,
    /// The line had no trailing newline when its file was rotated away or deleted and drained.
    #[serde(default, skip_serializing_if = "is_false")]
    pub partial: bool,
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// The deterministic id of the line starting at `offset` in `stream` on `host`.
///
/// 128 bits of XXH3 over the three parts (length-prefixed, so no two different triples share an
/// input), encoded as unpadded URL-safe base64: 22 characters.
pub fn line_id(host: &str, stream: &str, offset: u64) -> String {
    let mut id = Vec::with_capacity(ID_LEN);
    LineIds::new(host, stream).write(offset, &mut id);
    String::from_utf8_lossy(&id).into_owned()
}

/// Length of every id logship makes.
pub const ID_LEN: usize = 22;

/// The [`line_id`]s of one stream's lines: the hash input up to the offset is built once.
pub struct LineIds {
    input: Vec<u8>,
    prefix: usize,
}

impl LineIds {
    /// Ids of lines of `stream` read on `host`.
    pub fn new(host: &str, stream: &str) -> LineIds {
        let mut input = Vec::with_capacity(host.len() + stream.len() + 24);
        input.extend_from_slice(&(host.len() as u64).to_le_bytes());
        input.extend_from_slice(host.as_bytes());
        input.extend_from_slice(&(stream.len() as u64).to_le_bytes());
        input.extend_from_slice(stream.as_bytes());
        let prefix = input.len();
        LineIds { input, prefix }
    }

    /// Appends the id of the line at `offset` to `out`, without allocating.
    pub fn write(&mut self, offset: u64, out: &mut Vec<u8>) {
        self.input.truncate(self.prefix);
        self.input.extend_from_slice(&offset.to_le_bytes());
        write_id(&self.input, out);
    }
}

/// The id form shared by every document id logship makes: 128 bits of XXH3 over `input` (which
/// the caller builds unambiguously, e.g. with length prefixes), as unpadded URL-safe base64.
pub fn id_of(input: &[u8]) -> String {
    let mut id = Vec::with_capacity(ID_LEN);
    write_id(input, &mut id);
    String::from_utf8_lossy(&id).into_owned()
}

/// Appends [`id_of`]`(input)` to `out`.
fn write_id(input: &[u8], out: &mut Vec<u8>) {
    let hash = xxhash_rust::xxh3::xxh3_128(input).to_le_bytes();
    let mut id = [0u8; ID_LEN + 2];
    // 16 bytes are always 22 characters of unpadded base64, which the buffer holds.
    let written = URL_SAFE_NO_PAD.encode_slice(hash, &mut id).unwrap_or(0);
    out.extend_from_slice(&id[..written]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_id_is_deterministic_short_and_url_safe() {
        let a = line_id("web-01", "s1", 42);
        assert_eq!(a, line_id("web-01", "s1", 42));
        assert_eq!(a.len(), 22);
        assert!(a
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_'));
    }

    #[test]
    fn line_id_differs_by_each_part() {
        let base = line_id("web-01", "s1", 42);
        assert_ne!(base, line_id("web-02", "s1", 42));
        assert_ne!(base, line_id("web-01", "s2", 42));
        assert_ne!(base, line_id("web-01", "s1", 43));
        // Length prefixes keep ("ab","c") and ("a","bc") apart.
        assert_ne!(line_id("ab", "c", 0), line_id("a", "bc", 0));
    }

    #[test]
    fn flags_are_omitted_when_false_and_round_trip() {
        let record = LineRecord {
            id: "x".into(),
            host: "h".into(),
            file: "/f".into(),
            file_id: "s".into(),
            offset: 7,
            message: "hello".into(),
            timestamp: "2026-01-01T00:00:00Z".into(),
            invalid_utf8: false,
            split: true,
            partial: false,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(!json.contains("invalid_utf8"));
        assert!(json.contains("\"split\":true"));
        assert!(json.contains("\"@timestamp\""));
        let back: LineRecord = serde_json::from_str(&json).unwrap();
        assert_eq!(back, record);
    }
}
