//! Batches: records collected for one `_bulk` request, sent when full (documents or bytes) or
//! when the oldest record has waited long enough.
//!
//! A batch may mix partitions. Each item remembers where it came from (topic, partition, offset
//! and the [`Epoch`] of the assignment it was received in), so its completion can be reported to
//! the commit watermark and dropped if the partition was revoked meanwhile. The documents of all
//! items are written once into one body; a retry of some items copies their byte ranges into a
//! new body.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::document::{Documents, KafkaRecord};
use super::parse;
use super::watermark::Epoch;
use crate::record::ndjson;

/// When a batch is sent.
#[derive(Debug, Clone, Copy)]
pub struct BatchLimits {
    /// Documents.
    pub max_docs: usize,
    /// Body bytes.
    pub max_bytes: usize,
    /// Age of the oldest record.
    pub max_wait: Duration,
}

/// One document in a batch (a Kafka record of several lines gives several).
#[derive(Debug, Clone)]
pub struct Item {
    /// Topic (interned).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Assignment the record was received in.
    pub epoch: Epoch,
    /// Document `_id`.
    pub id: String,
    /// Target index, or why the record cannot be indexed (it goes to the dead-letter index).
    pub index: Result<String, String>,
    /// Its `create` action and document in [`Batch::body`] (empty when not routable).
    pub lines: Range<usize>,
    /// Its original Kafka value in [`Batch::payloads`] (for the dead-letter index).
    pub payload: Range<usize>,
    /// The Kafka timestamp of its record (to prepare it again).
    pub timestamp_ms: Option<i64>,
    /// What parsing did. When parsed fields were added as fields (`merged`) and Elasticsearch
    /// refuses them for the mapping, the document is indexed again with them as one string
    /// ([`Documents::prepare_fallback`]).
    pub parse: parse::Outcome,
}

/// What [`Batch::push`] made of one record.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Pushed {
    /// Documents added.
    pub documents: usize,
    /// The record was plain (not logship JSON).
    pub plain: bool,
    /// Documents whose line did not parse (`parse_error`).
    pub parse_errors: usize,
    /// Documents whose own time was not used (`timestamp_error`).
    pub times_rejected: usize,
}

impl Pushed {
    fn of(items: &[Item], plain: bool) -> Pushed {
        Pushed {
            documents: items.len(),
            plain,
            parse_errors: items.iter().filter(|i| i.parse.parse_error).count(),
            times_rejected: items.iter().filter(|i| i.parse.time_rejected).count(),
        }
    }
}

/// Records collected for one `_bulk` request.
#[derive(Debug, Default)]
pub struct Batch {
    /// The `_bulk` body: every routable item's action and document, in item order.
    pub body: Vec<u8>,
    /// Every item's original Kafka value, concatenated.
    pub payloads: Vec<u8>,
    /// The items, in arrival order.
    pub items: Vec<Item>,
    started: Option<Instant>,
}

impl Batch {
    /// An empty batch.
    pub fn new() -> Batch {
        Batch::default()
    }

    /// Adds a received record as one or more documents and says what they were.
    ///
    /// A lines record of the current format is NDJSON: one logship JSON object per line (see
    /// [`crate::record::ndjson`]); each line becomes a document with its own `_id` and the
    /// record's offset, so the offset is done only when all of them are. A record without a
    /// format header (`record.current_format` false) is taken for NDJSON only when it looks like it
    /// ([`ndjson::may_be_joined`]). A record whose lines are not all logship JSON is one
    /// document, exactly as a single-line record would be (a pretty-printed JSON object, a
    /// plain multi-line text).
    pub fn push(
        &mut self,
        record: &KafkaRecord<'_>,
        topic: Arc<str>,
        epoch: Epoch,
        documents: &Documents,
    ) -> Pushed {
        if self.items.is_empty() {
            self.started = Some(Instant::now());
        }
        let payload = record.payload.unwrap_or_default();
        let lines = payload.strip_suffix(b"\n").unwrap_or(payload);
        let joined = if record.current_format {
            memchr::memchr(b'\n', lines).is_some()
        } else {
            ndjson::may_be_joined(payload)
        };
        if joined {
            let (body_len, payloads_len, items_len) =
                (self.body.len(), self.payloads.len(), self.items.len());
            let mut all_logship = true;
            for line in ndjson::split(lines) {
                let part = KafkaRecord {
                    payload: Some(line),
                    ..*record
                };
                if self.push_document(&part, topic.clone(), epoch, documents) {
                    all_logship = false;
                    break;
                }
            }
            if all_logship {
                return Pushed::of(&self.items[items_len..], false);
            }
            self.body.truncate(body_len);
            self.payloads.truncate(payloads_len);
            self.items.truncate(items_len);
        }
        let plain = self.push_document(record, topic, epoch, documents);
        Pushed::of(&self.items[self.items.len() - 1..], plain)
    }

    /// Adds `record` as an item that goes straight to the dead-letter index for `reason`
    /// (its `_id` is its Kafka coordinates: it has no document).
    pub fn push_dead(
        &mut self,
        record: &KafkaRecord<'_>,
        topic: Arc<str>,
        epoch: Epoch,
        reason: &str,
    ) {
        if self.items.is_empty() {
            self.started = Some(Instant::now());
        }
        let payload_start = self.payloads.len();
        self.payloads
            .extend_from_slice(record.payload.unwrap_or_default());
        self.items.push(Item {
            id: format!("{}-{}-{}", record.topic, record.partition, record.offset),
            topic,
            partition: record.partition,
            offset: record.offset,
            epoch,
            index: Err(reason.to_string()),
            lines: self.body.len()..self.body.len(),
            payload: payload_start..self.payloads.len(),
            timestamp_ms: record.timestamp_ms,
            parse: parse::Outcome::default(),
        });
    }

    /// Adds one document for `record`; returns whether it was plain.
    fn push_document(
        &mut self,
        record: &KafkaRecord<'_>,
        topic: Arc<str>,
        epoch: Epoch,
        documents: &Documents,
    ) -> bool {
        let start = self.body.len();
        let prepared = documents.prepare(record, &mut self.body);
        let payload_start = self.payloads.len();
        self.payloads
            .extend_from_slice(record.payload.unwrap_or_default());
        self.items.push(Item {
            topic,
            partition: record.partition,
            offset: record.offset,
            epoch,
            id: prepared.id,
            index: prepared.index,
            lines: start..self.body.len(),
            payload: payload_start..self.payloads.len(),
            timestamp_ms: record.timestamp_ms,
            parse: prepared.parse,
        });
        prepared.plain
    }

    /// Number of documents.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the batch reached its document or byte limit.
    pub fn is_full(&self, limits: &BatchLimits) -> bool {
        self.items.len() >= limits.max_docs || self.body.len() >= limits.max_bytes
    }

    /// When the batch must be sent at the latest (`None` when empty).
    pub fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.started.map(|started| started + limits.max_wait)
    }

    /// Whether the batch should be sent now.
    pub fn is_ready(&self, limits: &BatchLimits, now: Instant) -> bool {
        !self.is_empty()
            && (self.is_full(limits) || self.deadline(limits).is_some_and(|d| d <= now))
    }

    /// Takes the batch out, leaving an empty one.
    pub fn take(&mut self) -> Batch {
        std::mem::take(self)
    }

    /// The `_bulk` body for the items at `indices` (which must be routable).
    pub fn body_for(&self, indices: &[usize]) -> Vec<u8> {
        let size = indices.iter().map(|&i| self.items[i].lines.len()).sum();
        let mut body = Vec::with_capacity(size);
        for &i in indices {
            body.extend_from_slice(&self.body[self.items[i].lines.clone()]);
        }
        body
    }

    /// The original Kafka value of item `i`.
    pub fn payload(&self, i: usize) -> &[u8] {
        &self.payloads[self.items[i].payload.clone()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::watermark::Watermarks;

    fn limits() -> BatchLimits {
        BatchLimits {
            max_docs: 3,
            max_bytes: 10_000,
            max_wait: Duration::from_millis(50),
        }
    }

    fn push(
        batch: &mut Batch,
        marks: &mut Watermarks,
        offset: i64,
        payload: &[u8],
    ) -> (usize, bool) {
        let (topic, epoch) = marks.received("t", 0, offset).unwrap();
        let record = KafkaRecord {
            topic: "t",
            partition: 0,
            offset,
            payload: Some(payload),
            timestamp_ms: Some(0),
            current_format: false,
        };
        let pushed = batch.push(
            &record,
            topic,
            epoch,
            &Documents::new(
                crate::config::index_name::IndexNameTemplate::parse("{topic}").unwrap(),
                Vec::new(),
            ),
        );
        (pushed.documents, pushed.plain)
    }

    #[test]
    fn full_by_count_bytes_or_age() {
        let mut marks = Watermarks::new();
        marks.assign("t", 0);
        let mut batch = Batch::new();
        let now = Instant::now();
        assert!(!batch.is_ready(&limits(), now));
        push(&mut batch, &mut marks, 0, b"a");
        push(&mut batch, &mut marks, 1, b"b");
        assert!(!batch.is_full(&limits()));
        assert!(!batch.is_ready(&limits(), now));
        assert!(batch.is_ready(&limits(), now + Duration::from_millis(60)));
        push(&mut batch, &mut marks, 2, b"c");
        assert!(batch.is_full(&limits()));
        let taken = batch.take();
        assert!(batch.is_empty() && batch.deadline(&limits()).is_none());
        assert_eq!(taken.len(), 3);

        let mut big = Batch::new();
        push(&mut big, &mut marks, 3, &vec![b'x'; 20_000]);
        assert!(big.is_full(&limits()));
    }

    #[test]
    fn subsets_rebuild_their_bodies_and_keep_payloads() {
        let mut marks = Watermarks::new();
        marks.assign("t", 0);
        let mut batch = Batch::new();
        for (offset, payload) in [(0, &b"zero"[..]), (1, b"one"), (2, b"two")] {
            push(&mut batch, &mut marks, offset, payload);
        }
        let body = batch.body_for(&[0, 2]);
        let text = String::from_utf8(body).unwrap();
        assert_eq!(text.lines().count(), 4);
        assert!(text.contains("\"zero\"") && text.contains("\"two\"") && !text.contains("\"one\""));
        assert_eq!(batch.payload(1), b"one");
        assert_eq!(batch.body_for(&[0, 1, 2]), batch.body);
    }

    fn line(offset: u64, message: &str) -> String {
        serde_json::json!({
            "id": crate::record::line_id("h", "s", offset),
            "host": "h",
            "file": "/var/log/a.log",
            "file_id": "s",
            "offset": offset,
            "message": message,
            "@timestamp": "2026-01-02T03:04:05.678Z",
        })
        .to_string()
    }

    #[test]
    fn an_ndjson_record_of_logship_lines_gives_one_document_per_line() {
        let mut marks = Watermarks::new();
        marks.assign("t", 0);
        let mut batch = Batch::new();
        let record = format!("{}\n{}\n{}", line(0, "a"), line(2, "b"), line(4, "c"));
        assert_eq!(
            push(&mut batch, &mut marks, 7, record.as_bytes()),
            (3, false)
        );
        let ids: Vec<&str> = batch.items.iter().map(|item| item.id.as_str()).collect();
        let expected: Vec<String> = [0, 2, 4]
            .iter()
            .map(|&o| crate::record::line_id("h", "s", o))
            .collect();
        assert_eq!(ids, expected);
        assert!(batch.items.iter().all(|item| item.offset == 7));
        assert_eq!(batch.payload(1), line(2, "b").as_bytes());
        assert_eq!(String::from_utf8_lossy(&batch.body).lines().count(), 6);
        // A trailing newline changes nothing.
        let mut again = Batch::new();
        let record = format!("{}\n{}\n", line(0, "a"), line(2, "b"));
        assert_eq!(
            push(&mut again, &mut marks, 7, record.as_bytes()),
            (2, false)
        );
    }

    #[test]
    fn a_multi_line_record_that_is_not_all_logship_lines_is_one_document() {
        let mut marks = Watermarks::new();
        marks.assign("t", 0);
        let mut batch = Batch::new();
        // A logship line followed by something else: one plain document of the whole value.
        let mixed = format!("{}\nnot json", line(0, "a"));
        assert_eq!(push(&mut batch, &mut marks, 7, mixed.as_bytes()), (1, true));
        assert_eq!(batch.len(), 1);
        assert_eq!(batch.payload(0), mixed.as_bytes());
        assert_eq!(String::from_utf8_lossy(&batch.body).lines().count(), 2);
        // A pretty-printed logship record is still one logship document.
        let value: serde_json::Value = serde_json::from_str(&line(4, "pretty")).unwrap();
        let pretty = serde_json::to_string_pretty(&value).unwrap();
        assert_eq!(
            push(&mut batch, &mut marks, 7, pretty.as_bytes()),
            (1, false)
        );
        assert_eq!(batch.items[1].id, crate::record::line_id("h", "s", 4));
    }
}
