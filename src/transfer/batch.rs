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

use super::document::{prepare, KafkaRecord};
use super::watermark::Epoch;
use crate::es::index_name::IndexNameTemplate;

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

/// One record in a batch.
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

    /// Adds a received record; returns whether it was a plain (non-logship) record.
    pub fn push(
        &mut self,
        record: &KafkaRecord<'_>,
        topic: Arc<str>,
        epoch: Epoch,
        index: &IndexNameTemplate,
    ) -> bool {
        if self.items.is_empty() {
            self.started = Some(Instant::now());
        }
        let start = self.body.len();
        let prepared = prepare(record, index, &mut self.body);
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
        });
        prepared.plain
    }

    /// Number of records.
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

    fn push(batch: &mut Batch, marks: &mut Watermarks, offset: i64, payload: &[u8]) {
        let (topic, epoch) = marks.received("t", 0, offset).unwrap();
        let record = KafkaRecord {
            topic: "t",
            partition: 0,
            offset,
            payload: Some(payload),
            timestamp_ms: Some(0),
        };
        batch.push(
            &record,
            topic,
            epoch,
            &IndexNameTemplate::parse("{topic}").unwrap(),
        );
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
}
