//! The record that travels through Kafka: the contract between the agent and the transfer.
//!
//! The whole contract is here; the agent writes and the transfer reads through it:
//! - [`wire`]: the headers — which format version (`logship-format: 1`) and which kind of
//!   content (`logship-kind: metrics`; none for lines), and how a reader treats a record
//!   without them (older agents, other producers) or of a later version;
//! - [`ndjson`]: one Kafka record carries consecutive log lines of one file. Its **value** is
//!   NDJSON: the JSON of one [`LineRecord`] per line, separated by `\n` (no trailing newline;
//!   a single line is a plain JSON object), at most `kafka.max_lines_per_record` lines and about
//!   [`RECORD_TARGET_BYTES`]; [`ndjson::Joiner`] joins and [`ndjson::split`] splits;
//! - this module: the line record's fields ([`field`], [`LineRecord`]), how the transfer
//!   receives one ([`Received`]) and the document ids ([`line_id`]).
//!
//! A lines record's **key** is the stream id (see [`crate::agent::identity`]), so all lines of
//! one file land in one partition, in order; a metrics record's key is the host.
//!
//! Both sides use this module in production: the agent's encoder writes records with the field
//! names of [`field`] (byte for byte the JSON of a [`LineRecord`], property-tested there), and
//! the transfer reads them with [`Received::parse`], which applies the transfer's rule: any JSON
//! object with a non-empty string `id` and a `message` is a logship record, whoever produced
//! it; its other fields are carried through untouched.
//!
//! The `id` is derived only from the line's *source position* (host, stream, byte offset), never
//! from Kafka coordinates or the time of sending: however often a line is replayed (agent crash,
//! producer resend, consumer rebalance), it carries the same id and lands on the same
//! Elasticsearch document.

use std::borrow::Cow;
use std::collections::BTreeMap;

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

pub mod ndjson;
pub mod wire;

/// The JSON keys of the fields logship defines (those of [`LineRecord`]).
pub mod field {
    /// The document id ([`super::line_id`]).
    pub const ID: &str = "id";
    /// The host the line was read on.
    pub const HOST: &str = "host";
    /// The path of the file it was read from.
    pub const FILE: &str = "file";
    /// The stream id of that file.
    pub const FILE_ID: &str = "file_id";
    /// The byte offset of the line in its file.
    pub const OFFSET: &str = "offset";
    /// The line.
    pub const MESSAGE: &str = "message";
    /// The time the line was read (RFC 3339).
    pub const TIMESTAMP: &str = "@timestamp";
    /// The line was not valid UTF-8.
    pub const INVALID_UTF8: &str = "invalid_utf8";
    /// The record is one piece of a line longer than `max_line_bytes`.
    pub const SPLIT: &str = "split";
    /// The line had no newline when its file was drained.
    pub const PARTIAL: &str = "partial";
    /// Lines joined into the event (`multiline`), when more than 1.
    pub const LINES: &str = "lines";
    /// Every field, in the order the agent writes them.
    pub const ALL: [&str; 11] = [
        ID,
        HOST,
        FILE,
        FILE_ID,
        OFFSET,
        MESSAGE,
        TIMESTAMP,
        INVALID_UTF8,
        SPLIT,
        PARTIAL,
        LINES,
    ];
}

/// A Kafka record is closed before it grows past this many bytes of JSON (a single line larger
/// than this travels alone).
pub const RECORD_TARGET_BYTES: usize = 64 * 1024;

/// One log line as shipped to Kafka: one line of a lines record's NDJSON value ([`ndjson`]).
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
    /// Lines in the event when `multiline` joined several (`message` holds them separated by
    /// `\n`); absent, meaning 1, for a plain line.
    #[serde(default = "one", skip_serializing_if = "is_one")]
    pub lines: u32,
    /// The collect entry's static `fields` (`service`, `env`, ...), last, in name order.
    #[serde(flatten, borrow)]
    pub fields: BTreeMap<Cow<'a, str>, Cow<'a, str>>,
}

fn one() -> u32 {
    1
}

fn is_one(value: &u32) -> bool {
    *value == 1
}

fn is_false(value: &bool) -> bool {
    !*value
}

/// A logship record as the transfer reads it: its `id` apart, and every other field as it came
/// (values are not coerced: a field that does not fit the index mapping is refused by
/// Elasticsearch and dead-lettered, never quietly re-interpreted).
#[derive(Debug, Clone, PartialEq)]
pub struct Received {
    /// The record's `id` (non-empty).
    pub id: String,
    /// Every other field, `message` included.
    pub fields: Map<String, Value>,
}

impl Received {
    /// The record in `payload` if it is a logship record: a JSON object with a non-empty
    /// string `id` and a `message`. `None` for anything else (a plain line, another
    /// producer's JSON), which the transfer indexes as a plain line.
    pub fn parse(payload: &[u8]) -> Option<Received> {
        // Cheap test first: plain lines rarely start with `{`.
        if payload.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
            return None;
        }
        let mut fields: Map<String, Value> = serde_json::from_slice(payload).ok()?;
        if !fields.contains_key(field::MESSAGE) {
            return None;
        }
        match fields.remove(field::ID) {
            Some(Value::String(id)) if !id.is_empty() => Some(Received { id, fields }),
            _ => None,
        }
    }

    /// The time the line was read, as the record's `@timestamp` gives it: `Err` with the
    /// reason when it is missing or not a string (its format is checked by the caller).
    pub fn read_time(&self) -> Result<&str, String> {
        self.fields
            .get(field::TIMESTAMP)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("{} is missing or not a string", field::TIMESTAMP))
    }
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

    fn sample() -> LineRecord<'static> {
        LineRecord {
            id: Cow::Borrowed("abc"),
            host: Cow::Borrowed("h"),
            file: Cow::Borrowed("/var/log/a.log"),
            file_id: Cow::Borrowed("s"),
            offset: 7,
            message: Cow::Borrowed("hello"),
            timestamp: Cow::Borrowed("2026-12-01T00:00:00Z"),
            invalid_utf8: true,
            split: true,
            partial: true,
            lines: 3,
            fields: BTreeMap::new(),
        }
    }

    #[test]
    fn the_field_names_are_those_of_the_line_record() {
        let json = serde_json::to_value(sample()).unwrap();
        let keys: Vec<&str> = json
            .as_object()
            .unwrap()
            .keys()
            .map(String::as_str)
            .collect();
        let mut expected = field::ALL.to_vec();
        expected.sort_unstable();
        let mut keys = keys;
        keys.sort_unstable();
        assert_eq!(keys, expected);
    }

    #[test]
    fn a_line_record_is_received_with_its_id_apart_and_every_other_field() {
        let json = serde_json::to_vec(&sample()).unwrap();
        let received = Received::parse(&json).unwrap();
        assert_eq!(received.id, "abc");
        assert!(!received.fields.contains_key(field::ID));
        assert_eq!(received.fields.len(), field::ALL.len() - 1);
        assert_eq!(received.read_time(), Ok("2026-12-01T00:00:00Z"));
    }

    #[test]
    fn any_object_with_a_string_id_and_a_message_is_received_and_nothing_else() {
        let foreign = br#"{"id":"x1","message":{"nested":1},"level":"warn"}"#;
        let received = Received::parse(foreign).unwrap();
        assert_eq!(received.fields["level"], "warn");
        assert!(received.read_time().is_err());
        for plain in [
            &b"just a line"[..],
            br#"{"message":"no id"}"#,
            br#"{"id":"","message":"empty id"}"#,
            br#"{"id":5,"message":"numeric id"}"#,
            br#"{"id":"x","msg":"no message"}"#,
            br#"["id","message"]"#,
            b"{ not json",
        ] {
            assert!(
                Received::parse(plain).is_none(),
                "{}",
                String::from_utf8_lossy(plain)
            );
        }
    }

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
            fields: BTreeMap::new(),
            lines: 1,
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
