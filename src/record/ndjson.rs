//! How line records share a Kafka record: NDJSON.
//!
//! A lines record's value is the JSON of one [`LineRecord`](super::LineRecord) per line,
//! joined by `\n`, with no trailing newline (a single line is a plain JSON object). JSON never
//! holds a raw newline (one inside a string is written `\n`), so [`split`] on `\n` gives the
//! line records back exactly. [`Joiner`] closes a record after `max_lines` lines, and before a
//! line that would take it past `target_bytes`: only a single line larger than that makes a
//! larger record.

use std::ops::Range;

/// Joins encoded line records into Kafka record values, in a caller's buffer.
#[derive(Debug)]
pub struct Joiner<'b> {
    buf: &'b mut Vec<u8>,
    records: Vec<Range<usize>>,
    start: usize,
    in_record: usize,
    lines: usize,
    max_lines: usize,
    target_bytes: usize,
}

/// The records [`Joiner`] made.
#[derive(Debug)]
pub struct Joined {
    /// Byte range of each record in the buffer.
    pub records: Vec<Range<usize>>,
    /// Lines in all of them.
    pub lines: usize,
}

impl<'b> Joiner<'b> {
    /// A joiner writing into `buf` (cleared first), with at most `max_lines` lines (at least 1)
    /// and about `target_bytes` bytes in a record.
    pub fn new(buf: &'b mut Vec<u8>, max_lines: usize, target_bytes: usize) -> Joiner<'b> {
        buf.clear();
        Joiner {
            buf,
            records: Vec::new(),
            start: 0,
            in_record: 0,
            lines: 0,
            max_lines: max_lines.max(1),
            target_bytes,
        }
    }

    /// Adds one line record, which `encode` appends to the buffer as JSON (with no newline).
    pub fn push(&mut self, encode: impl FnOnce(&mut Vec<u8>)) {
        if self.in_record == self.max_lines {
            self.records.push(self.start..self.buf.len());
            self.start = self.buf.len();
            self.in_record = 0;
        }
        let line_start = self.buf.len();
        if self.in_record > 0 {
            self.buf.push(b'\n');
        }
        encode(self.buf);
        if self.in_record > 0 && self.buf.len() - self.start > self.target_bytes {
            // Too big with this line: close the record before it and start a new one with it.
            self.records.push(self.start..line_start);
            self.buf.remove(line_start);
            self.start = line_start;
            self.in_record = 0;
        }
        self.in_record += 1;
        self.lines += 1;
    }

    /// The records made, the last one closed.
    pub fn finish(mut self) -> Joined {
        if self.in_record > 0 {
            self.records.push(self.start..self.buf.len());
        }
        Joined {
            records: self.records,
            lines: self.lines,
        }
    }
}

/// The line records of a record `value` written by [`Joiner`], in order.
pub fn split(value: &[u8]) -> impl Iterator<Item = &[u8]> {
    value.split(|&b| b == b'\n')
}

/// Whether a `value` without a format header (see [`super::wire`]) may be NDJSON of line
/// records: it starts with `{` and holds a newline before its last byte. Only a guess: the
/// caller takes it for NDJSON only if every piece is a logship record.
pub fn may_be_joined(value: &[u8]) -> bool {
    let value = value.strip_suffix(b"\n").unwrap_or(value);
    value.first() == Some(&b'{') && memchr::memchr(b'\n', value).is_some()
}

#[cfg(test)]
mod tests {
    use std::borrow::Cow;
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;
    use crate::record::LineRecord;

    fn record(offset: u64, line: &[u8]) -> LineRecord<'static> {
        let message = String::from_utf8_lossy(line).into_owned();
        LineRecord {
            id: Cow::Owned(crate::record::line_id("web-01", "s1", offset)),
            host: "web-01".into(),
            file: "/var/log/app.log".into(),
            file_id: "s1".into(),
            offset,
            invalid_utf8: std::str::from_utf8(line).is_err(),
            message: Cow::Owned(message),
            timestamp: "2026-12-06T10:00:00Z".into(),
            split: false,
            partial: false,
            lines: 1,
            fields: BTreeMap::new(),
        }
    }

    /// Joins the JSON of `records`, splits every record value again and parses each piece.
    fn round_trip(
        records: &[LineRecord<'static>],
        max_lines: usize,
        target: usize,
    ) -> (Vec<serde_json::Value>, Joined, Vec<u8>) {
        let mut buf = Vec::new();
        let mut joiner = Joiner::new(&mut buf, max_lines, target);
        for record in records {
            joiner.push(|out| {
                serde_json::to_writer(out, record).expect("a line record always serializes")
            });
        }
        let joined = joiner.finish();
        let mut back = Vec::new();
        for range in &joined.records {
            for piece in split(&buf[range.clone()]) {
                let parsed: LineRecord = serde_json::from_slice(piece).expect("a piece parses");
                back.push(serde_json::to_value(parsed).expect("a line record always serializes"));
            }
        }
        (back, joined, buf)
    }

    /// Lines as the agent may store them: empty, `{`, with newlines and quotes, invalid UTF-8,
    /// and now and then a megabyte.
    fn any_line() -> impl Strategy<Value = Vec<u8>> {
        prop_oneof![
            8 => proptest::collection::vec(any::<u8>(), 0..200),
            2 => Just(Vec::new()),
            2 => Just(b"{".to_vec()),
            2 => Just(b"{\"a\":\"b\\n\"}\n{".to_vec()),
            1 => any::<u8>().prop_map(|b| vec![b; 1 << 20]),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]
        /// split(join(records)) gives back every record, in order; no record has more than
        /// `max_lines` lines and only a record of one line passes the byte target.
        #[test]
        fn split_of_join_is_the_identity(
            lines in proptest::collection::vec(any_line(), 0..40),
            max_lines in 1usize..8,
            target in 1usize..4000,
        ) {
            let records: Vec<_> = lines
                .iter()
                .enumerate()
                .map(|(i, line)| record(i as u64 * 1000, line))
                .collect();
            let (back, joined, buf) = round_trip(&records, max_lines, target);
            prop_assert_eq!(joined.lines, records.len());
            let expected: Vec<serde_json::Value> = records
                .iter()
                .map(|r| serde_json::to_value(r).unwrap())
                .collect();
            prop_assert_eq!(back, expected);
            for range in &joined.records {
                let value = &buf[range.clone()];
                let pieces = split(value).count();
                prop_assert!(pieces <= max_lines);
                prop_assert!(pieces == 1 || value.len() <= target);
                prop_assert!(!value.ends_with(b"\n"));
            }
        }
    }

    #[test]
    fn nothing_joined_makes_no_record_and_one_line_is_a_plain_object() {
        let (back, joined, _) = round_trip(&[], 10, 100);
        assert!(back.is_empty() && joined.records.is_empty() && joined.lines == 0);
        let one = [record(0, b"hello")];
        let (_, joined, buf) = round_trip(&one, 10, 100);
        assert_eq!(joined.records.len(), 1);
        let value: serde_json::Value = serde_json::from_slice(&buf).unwrap();
        assert_eq!(value["message"], "hello");
    }

    #[test]
    fn the_legacy_guess_takes_only_multi_line_json_looking_values() {
        assert!(may_be_joined(b"{\"a\":1}\n{\"b\":2}"));
        assert!(may_be_joined(b"{\"a\":1}\n{\"b\":2}\n"));
        assert!(!may_be_joined(b"{\"a\":1}\n"));
        assert!(!may_be_joined(b"plain\ntext"));
        assert!(!may_be_joined(b""));
    }
}
