//! The Kafka record of each line of a chunk, written straight into a buffer.
//!
//! Every record is the JSON of a [`LineRecord`], byte for byte what `serde_json` makes of it
//! (property-tested below), with the field names of [`crate::record::field`]; but the parts
//! every line of a chunk shares (the keys, host, path, stream, read time, and the id's hash
//! input up to the offset) are prepared once per chunk, and the
//! message is escaped eight bytes at a time where it needs none. JSON per line was the largest
//! item of the shipper's profile (`serde_json::format_escaped_str` alone 8 % of the agent's CPU).
//!
//! [`LineRecord`]: crate::record::LineRecord

use std::borrow::Cow;

use super::chunk::Chunk;
use super::framing::{Piece, PieceEnd};
use crate::record::{field, LineIds};

/// Appends `,"name":` (or `{"name":` when `first`).
fn key(buf: &mut Vec<u8>, name: &str, first: bool) {
    buf.push(if first { b'{' } else { b',' });
    escape_str(buf, name);
    buf.push(b':');
}

/// Appends `,"name":true`.
fn flag(name: &str) -> Vec<u8> {
    let mut buf = Vec::with_capacity(name.len() + 8);
    key(&mut buf, name, false);
    buf.extend_from_slice(b"true");
    buf
}

/// Writes the records of one chunk's lines; made once per chunk.
pub struct LineEncoder {
    /// `{"id":"`
    open: Vec<u8>,
    /// `,"host":"…","file":"…","file_id":"…","offset":`
    middle: Vec<u8>,
    /// `,"message":`
    message: Vec<u8>,
    /// `,"@timestamp":"…"`
    timestamp: Vec<u8>,
    /// `,"invalid_utf8":true`, `,"split":true`, `,"partial":true`
    invalid_utf8: Vec<u8>,
    split: Vec<u8>,
    partial: Vec<u8>,
    /// `,"lines":` (written for joined events only)
    lines: Vec<u8>,
    /// `,"name":"value"` of each of the chunk's static fields (last, in name order)
    fields: Vec<u8>,
    /// The ids of the chunk's lines.
    ids: LineIds,
    start_offset: u64,
}

impl LineEncoder {
    /// An encoder for the lines of `chunk`, read on `host`.
    pub fn new(host: &str, chunk: &Chunk) -> LineEncoder {
        let mut open = Vec::with_capacity(8);
        key(&mut open, field::ID, true);
        open.push(b'"');
        let mut middle =
            Vec::with_capacity(64 + host.len() + chunk.path.len() + chunk.stream.len());
        key(&mut middle, field::HOST, false);
        escape_str(&mut middle, host);
        key(&mut middle, field::FILE, false);
        escape_str(&mut middle, &chunk.path);
        key(&mut middle, field::FILE_ID, false);
        escape_str(&mut middle, &chunk.stream);
        key(&mut middle, field::OFFSET, false);
        let mut message = Vec::with_capacity(12);
        key(&mut message, field::MESSAGE, false);
        let mut timestamp = Vec::with_capacity(16 + chunk.read_at.len());
        key(&mut timestamp, field::TIMESTAMP, false);
        escape_str(&mut timestamp, &chunk.read_at);
        LineEncoder {
            open,
            middle,
            message,
            timestamp,
            invalid_utf8: flag(field::INVALID_UTF8),
            split: flag(field::SPLIT),
            partial: flag(field::PARTIAL),
            lines: {
                let mut lines = Vec::with_capacity(10);
                key(&mut lines, field::LINES, false);
                lines
            },
            fields: {
                let mut fields = Vec::new();
                for (name, value) in &chunk.fields {
                    key(&mut fields, name, false);
                    escape_str(&mut fields, value);
                }
                fields
            },
            ids: LineIds::new(host, &chunk.stream),
            start_offset: chunk.start_offset,
        }
    }

    /// Appends the record of `piece` (a piece of this encoder's chunk) to `buf`.
    pub fn encode(&mut self, buf: &mut Vec<u8>, piece: &Piece<'_>) {
        let offset = self.start_offset + piece.start as u64;
        let (message, invalid_utf8) = match std::str::from_utf8(piece.text) {
            Ok(text) => (Cow::Borrowed(text), false),
            Err(_) => (String::from_utf8_lossy(piece.text), true),
        };
        buf.extend_from_slice(&self.open);
        self.ids.write(offset, buf);
        buf.push(b'"');
        buf.extend_from_slice(&self.middle);
        buf.extend_from_slice(itoa::Buffer::new().format(offset).as_bytes());
        buf.extend_from_slice(&self.message);
        escape_str(buf, &message);
        buf.extend_from_slice(&self.timestamp);
        if invalid_utf8 {
            buf.extend_from_slice(&self.invalid_utf8);
        }
        if piece.end == PieceEnd::Cut || piece.continues {
            buf.extend_from_slice(&self.split);
        }
        if piece.end == PieceEnd::Partial {
            buf.extend_from_slice(&self.partial);
        }
        if piece.lines > 1 {
            buf.extend_from_slice(&self.lines);
            buf.extend_from_slice(itoa::Buffer::new().format(piece.lines).as_bytes());
        }
        buf.extend_from_slice(&self.fields);
        buf.push(b'}');
    }
}

/// Appends `text` as a JSON string, escaped as `serde_json` does: `"` and `\` with a backslash,
/// control characters below U+0020 as `\b \t \n \f \r` or `\u00XX`, everything else as is.
pub fn escape_str(buf: &mut Vec<u8>, text: &str) {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGHS: u64 = 0x8080_8080_8080_8080;
    /// Whether any byte of `word` is below 0x20, `"` or `\`.
    fn needs_escape(word: u64) -> bool {
        let below_space = word.wrapping_sub(ONES * 0x20) & !word;
        let quote = word ^ (ONES * u64::from(b'"'));
        let backslash = word ^ (ONES * u64::from(b'\\'));
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v;
        (below_space | zero_in(quote) | zero_in(backslash)) & HIGHS != 0
    }
    let bytes = text.as_bytes();
    buf.reserve(bytes.len() + 2);
    buf.push(b'"');
    let mut copied = 0;
    let mut at = 0;
    while at < bytes.len() {
        if let Some(word) = bytes.get(at..at + 8) {
            let mut eight = [0u8; 8];
            eight.copy_from_slice(word);
            if !needs_escape(u64::from_le_bytes(eight)) {
                at += 8;
                continue;
            }
        }
        let byte = bytes[at];
        let escape: &[u8] = match byte {
            b'"' => b"\\\"",
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            b'\t' => b"\\t",
            0x08 => b"\\b",
            0x0c => b"\\f",
            0x00..=0x1f => b"",
            _ => {
                at += 1;
                continue;
            }
        };
        buf.extend_from_slice(&bytes[copied..at]);
        if escape.is_empty() {
            const HEX: &[u8; 16] = b"0123456789abcdef";
            buf.extend_from_slice(b"\\u00");
            buf.push(HEX[usize::from(byte >> 4)]);
            buf.push(HEX[usize::from(byte & 0xf)]);
        } else {
            buf.extend_from_slice(escape);
        }
        at += 1;
        copied = at;
    }
    buf.extend_from_slice(&bytes[copied..]);
    buf.push(b'"');
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::record::{line_id, LineRecord};

    /// What the encoder must produce: `serde_json` of the [`LineRecord`].
    fn reference(host: &str, chunk: &Chunk, piece: &Piece<'_>) -> Vec<u8> {
        let offset = chunk.start_offset + piece.start as u64;
        let (message, invalid_utf8) = match std::str::from_utf8(piece.text) {
            Ok(text) => (Cow::Borrowed(text), false),
            Err(_) => (String::from_utf8_lossy(piece.text), true),
        };
        let record = LineRecord {
            id: Cow::Owned(line_id(host, &chunk.stream, offset)),
            host: Cow::Borrowed(host),
            file: Cow::Borrowed(&chunk.path),
            file_id: Cow::Borrowed(&chunk.stream),
            offset,
            message,
            timestamp: Cow::Borrowed(&chunk.read_at),
            invalid_utf8,
            split: piece.end == PieceEnd::Cut || piece.continues,
            partial: piece.end == PieceEnd::Partial,
            lines: piece.lines,
            fields: chunk
                .fields
                .iter()
                .map(|(k, v)| (Cow::Borrowed(k.as_str()), Cow::Borrowed(v.as_str())))
                .collect(),
        };
        serde_json::to_vec(&record).unwrap_or_default()
    }

    fn text() -> impl Strategy<Value = String> {
        prop_oneof![
            ".{0,40}",
            proptest::collection::vec(0u8..0x80, 0..40)
                .prop_map(|b| String::from_utf8_lossy(&b).into_owned()),
            "[a-z\"\\\\/\u{7f}\u{1}\u{1f}é€😀 ]{0,40}",
        ]
    }

    proptest! {
        #[test]
        fn escaping_matches_serde_json(text in text()) {
            let mut ours = Vec::new();
            escape_str(&mut ours, &text);
            prop_assert_eq!(ours, serde_json::to_vec(&text).unwrap());
        }

        #[test]
        fn records_match_serde_json_of_the_line_record(
            host in text(),
            path in text(),
            stream in text(),
            read_at in text(),
            start_offset in any::<u64>().prop_map(|o| o >> 1),
            lines in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..60), 0..6),
            partial_end in any::<bool>(),
            cut_at in proptest::option::of(0usize..200),
            starts_mid_line in any::<bool>(),
            joined in any::<bool>(),
            event_cut in any::<bool>(),
            fields in proptest::collection::btree_map("[a-z_]{1,8}", text(), 0..3),
        ) {
            let mut data = Vec::new();
            for mut line in lines {
                line.retain(|&b| b != b'\n');
                data.extend_from_slice(&line);
                data.push(b'\n');
            }
            if partial_end {
                data.extend_from_slice(b"tail \xff");
            }
            let cuts = cut_at.filter(|&c| c < data.len()).map(|c| vec![c as u32]).unwrap_or_default();
            // The first two lines as one joined event (multiline), cut at a limit or not.
            let mut newlines = memchr::memchr_iter(b'\n', &data);
            let event = match (newlines.next(), newlines.next()) {
                (Some(_), Some(second)) if joined && !starts_mid_line && cuts.iter().all(|&c| c as usize > second) => {
                    Some((0u32, second as u32 + 1))
                }
                _ => None,
            };
            let events: Vec<(u32, u32)> = event.into_iter().collect();
            let event_cuts: Vec<u32> = events.iter().filter(|_| event_cut).map(|&(_, end)| end).collect();
            let chunk = Chunk {
                stream,
                path,
                topic: "t".into(),
                start_offset,
                read_at,
                starts_mid_line,
                cuts,
                partial_end,
                data,
                events,
                event_cuts,
                starts_in_event: false,
                fields: fields.into_iter().collect(),
            };
            let mut encoder = LineEncoder::new(&host, &chunk);
            for piece in chunk.pieces() {
                let mut ours = Vec::new();
                encoder.encode(&mut ours, &piece);
                let expected = reference(&host, &chunk, &piece);
                prop_assert_eq!(
                    String::from_utf8_lossy(&ours),
                    String::from_utf8_lossy(&expected)
                );
            }
        }
    }
}
