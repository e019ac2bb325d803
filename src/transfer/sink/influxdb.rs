//! Metrics records (Kafka header `logship-kind: metrics`): batches of InfluxDB line protocol
//! written to `/write` (`api = "v1"`) or `/api/v2/write` (`"v2"`), under the transfer's one
//! commit rule.
//!
//! A record's offset is done once every point in it was accepted by InfluxDB (2xx) or, refused
//! for good, written to the dead-letter topic and acknowledged there. Nothing else makes it
//! done: 5xx, timeouts, refused connections, refused credentials and a missing database are
//! retried with backoff until they succeed or the partition is revoked. Writing a point again
//! overwrites it with itself (a point is its measurement, tags and nanosecond timestamp), so a
//! replay after a crash doubles nothing.
//!
//! A 400 (a malformed point, a field whose type conflicts with the series) or 413 (too large)
//! answer to a request of several records is not the fault of all of them: the request is
//! split in halves, a record alone into its lines, until each refused point stands alone; that
//! one goes to the dead-letter topic with InfluxDB's message, the others are written (InfluxDB
//! 1.x writes the good points of a request that had bad ones, so writing them again is
//! harmless). With `api = "v2"`, a 422 is InfluxDB 2.x's partial write ("some or all of the data has been
//! rejected; data that has not been rejected is ingested"), and 3.x answers a partial write
//! with 400: both are split the same way, since the points already ingested overwrite
//! themselves when written again, and the rejected ones end alone and dead-lettered.

use std::ops::Range;
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::{Delivery, Outcome, Outgoing, RecordAt, Route, Sink, Sorted, Written};
use crate::config::influx::InfluxTarget;
use crate::influx::{InfluxError, SharedInflux};
use crate::kafka::dead_letters::DeadLetters;
use crate::record::wire::{self, Kind};
use crate::transfer::batch::BatchLimits;
use crate::transfer::dlq::Rejection;
use crate::transfer::document::KafkaRecord;
use crate::transfer::events::TransferEvents;
use crate::transfer::watermark::Epoch;

/// One record in a metrics batch.
#[derive(Debug, Clone)]
pub struct MetricsItem {
    /// Topic (interned).
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset.
    pub offset: i64,
    /// Assignment the record was received in.
    pub epoch: Epoch,
    /// The record's Kafka key (kept on its dead letters).
    pub key: Option<Vec<u8>>,
    /// Its points in [`MetricsBatch::body`], each line ending with `\n`.
    pub lines: Range<usize>,
    /// The length of the record's own value (`lines` may hold one more byte: the `\n` added
    /// after a last line without one). A record dead-lettered whole is sent as it came.
    pub payload_len: usize,
    /// Why it goes to the dead-letter topic without being written (`None`: written).
    pub dead: Option<String>,
}

/// Records collected for one `/write` request.
#[derive(Debug, Default)]
pub struct MetricsBatch {
    /// Every item's points, concatenated.
    pub body: Vec<u8>,
    /// The items, in arrival order.
    pub items: Vec<MetricsItem>,
    started: Option<Instant>,
}

impl MetricsBatch {
    /// Adds a received record: its points are written, or if `dead` says why not, the whole
    /// record goes to the dead-letter topic.
    pub fn push(
        &mut self,
        record: &KafkaRecord<'_>,
        key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
        dead: Option<String>,
    ) {
        if self.items.is_empty() {
            self.started = Some(Instant::now());
        }
        let start = self.body.len();
        let payload = record.payload.unwrap_or_default();
        self.body.extend_from_slice(payload);
        if !payload.is_empty() && !payload.ends_with(b"\n") {
            self.body.push(b'\n');
        }
        self.items.push(MetricsItem {
            topic,
            partition: record.partition,
            offset: record.offset,
            epoch,
            key: key.map(<[u8]>::to_vec),
            lines: start..self.body.len(),
            payload_len: payload.len(),
            dead,
        });
    }

    /// Number of records.
    pub fn len(&self) -> usize {
        self.items.len()
    }

    /// Whether the batch holds no record.
    pub fn is_empty(&self) -> bool {
        self.items.is_empty()
    }

    /// Whether the batch reached `max_records` records or `max_bytes` bytes.
    pub fn is_full(&self, max_records: usize, max_bytes: usize) -> bool {
        self.items.len() >= max_records || self.body.len() >= max_bytes
    }

    /// When the batch must be sent at the latest (`None` when empty).
    pub fn deadline(&self, max_wait: Duration) -> Option<Instant> {
        self.started.map(|started| started + max_wait)
    }

    /// Takes the batch out, leaving an empty one.
    pub fn take(&mut self) -> MetricsBatch {
        std::mem::take(self)
    }
}

/// A part of one item's points: the whole record, or one line of it after a split.
#[derive(Debug, Clone)]
pub struct Piece {
    item: usize,
    range: Range<usize>,
    /// The whole record as it came, dead-lettered without being written (not points).
    whole: bool,
}

/// Writes metrics batches to InfluxDB; dead letters go to a Kafka topic.
pub struct InfluxSink {
    influx: SharedInflux,
    dead_letters: Arc<DeadLetters>,
    dlq_topic: String,
    events: Arc<dyn TransferEvents>,
}

impl InfluxSink {
    /// Writes to `influx`, dead-letters to `dlq_topic` through `dead_letters`.
    pub fn new(
        influx: SharedInflux,
        dead_letters: Arc<DeadLetters>,
        dlq_topic: String,
        events: Arc<dyn TransferEvents>,
    ) -> InfluxSink {
        InfluxSink {
            influx,
            dead_letters,
            dlq_topic,
            events,
        }
    }
}

/// A record refused alone splits into its lines (one point each); `None` for one line.
fn split_lines(batch: &MetricsBatch, piece: &Piece) -> Option<Vec<Piece>> {
    let text = &batch.body[piece.range.clone()];
    let mut lines = Vec::new();
    let mut start = piece.range.start;
    for end in memchr::memchr_iter(b'\n', text) {
        let end = piece.range.start + end + 1;
        lines.push(Piece {
            item: piece.item,
            range: start..end,
            whole: false,
        });
        start = end;
    }
    if start < piece.range.end {
        lines.push(Piece {
            item: piece.item,
            range: start..piece.range.end,
            whole: false,
        });
    }
    (lines.len() > 1).then_some(lines)
}

/// Whether InfluxDB refused the request for its points (split, and dead-letter what stays
/// refused alone): 400 (malformed, a field type conflict; 3.x's partial write), 413 (too
/// large), and with the v2 API 422 (2.x's partial write: the points not named were ingested;
/// 1.x never answers 422, so there it comes from something in between and is retried).
/// Anything else is retried as it is.
fn refused_for_content(error: &InfluxError, v2: bool) -> bool {
    match error.status() {
        Some(400 | 413) => true,
        Some(422) => v2,
        _ => false,
    }
}

/// Why InfluxDB refused a request for its content, as a dead letter says it.
fn refusal(error: &InfluxError) -> Rejection {
    let (error, status) = match error {
        InfluxError::Status { status, body, .. } => {
            (format!("InfluxDB answered {status}: {body}"), Some(*status))
        }
        other => (other.to_string(), other.status()),
    };
    Rejection {
        error,
        error_type: None,
        status,
    }
}

impl Sink for InfluxSink {
    type Batch = MetricsBatch;
    type Entry = Piece;

    fn records(&self, batch: &MetricsBatch) -> usize {
        batch.items.len()
    }

    fn record_at<'b>(&self, batch: &'b MetricsBatch, item: usize) -> RecordAt<'b> {
        let item = &batch.items[item];
        RecordAt {
            topic: &item.topic,
            partition: item.partition,
            epoch: item.epoch,
            offset: item.offset,
        }
    }

    fn item_of(&self, entry: &Piece) -> usize {
        entry.item
    }

    fn entries(&self, batch: &MetricsBatch) -> Sorted<Piece> {
        let mut pieces = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        for (item, record) in batch.items.iter().enumerate() {
            match &record.dead {
                Some(reason) => dead.push((
                    Piece {
                        item,
                        range: record.lines.start..record.lines.start + record.payload_len,
                        whole: true,
                    },
                    Rejection {
                        error: reason.clone(),
                        error_type: None,
                        status: None,
                    },
                )),
                // A record without points is done at once.
                None if record.lines.is_empty() => {}
                None => pieces.push(Piece {
                    item,
                    range: record.lines.clone(),
                    whole: false,
                }),
            }
        }
        Sorted {
            write: pieces,
            dead,
        }
    }

    async fn write(&self, batch: &MetricsBatch, group: &[Piece]) -> Written {
        let mut body = Vec::with_capacity(group.iter().map(|p| p.range.len()).sum());
        for piece in group {
            body.extend_from_slice(&batch.body[piece.range.clone()]);
        }
        let points = memchr::memchr_iter(b'\n', &body).count() as u64;
        let client = self.influx.get();
        let v2 = matches!(client.target(), InfluxTarget::V2 { .. });
        match client.write(body).await {
            Ok(()) => {
                self.events.points_written(points);
                Written::Each(vec![Outcome::Done; group.len()])
            }
            Err(error) if refused_for_content(&error, v2) => Written::Refused(refusal(&error)),
            Err(error) => {
                let refused = matches!(error.status(), Some(401 | 403));
                self.events
                    .points_retrying(points, &error.to_string(), refused);
                Written::Retry
            }
        }
    }

    fn split(&self, batch: &MetricsBatch, piece: &Piece) -> Option<Vec<Piece>> {
        split_lines(batch, piece)
    }

    fn fallbacks(&self, _batch: &MetricsBatch, rejected: Vec<(Piece, Rejection)>) -> Sorted<Piece> {
        // A point has no other form: every refused one is dead-lettered.
        Sorted {
            write: Vec::new(),
            dead: rejected,
        }
    }

    /// Each letter to the dead-letter topic, with the reason and the source in headers (and
    /// marked as metrics when it holds points).
    async fn dead_letter(&self, batch: &MetricsBatch, letters: &[(Piece, Rejection)]) -> Vec<bool> {
        let mut acknowledged = Vec::with_capacity(letters.len());
        for (piece, rejection) in letters {
            let item = &batch.items[piece.item];
            let source = format!("{}/{}/{}", item.topic, item.partition, item.offset);
            let mut headers = vec![
                (wire::ERROR_HEADER, rejection.error.as_str()),
                (wire::SOURCE_HEADER, source.as_str()),
            ];
            if !piece.whole {
                headers.extend_from_slice(Kind::Metrics.headers());
            }
            let payload = &batch.body[piece.range.clone()];
            match self
                .dead_letters
                .send(&self.dlq_topic, item.key.as_deref(), payload, &headers)
                .await
            {
                Ok(()) => {
                    self.events.points_dead_lettered(1, &rejection.error);
                    acknowledged.push(true);
                }
                Err(error) => {
                    self.events.points_dead_letter_failed(1, &error);
                    acknowledged.push(false);
                }
            }
        }
        acknowledged
    }
}

/// The metrics route: records of kind `Metrics` (line protocol) in a `/write` batch for
/// [`InfluxSink`], under the same record and byte limits as a bulk.
pub struct MetricsRoute {
    batch: MetricsBatch,
    delivery: Arc<Delivery<InfluxSink>>,
    events: Arc<dyn TransferEvents>,
}

impl MetricsRoute {
    /// Fills batches delivered by `delivery`.
    pub fn new(delivery: Arc<Delivery<InfluxSink>>, events: Arc<dyn TransferEvents>) -> Self {
        MetricsRoute {
            batch: MetricsBatch::default(),
            delivery,
            events,
        }
    }
}

impl Route for MetricsRoute {
    fn takes(&self, kind: Kind) -> bool {
        kind == Kind::Metrics
    }

    fn push(
        &mut self,
        record: &KafkaRecord<'_>,
        key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
    ) {
        self.batch.push(record, key, topic, epoch, None);
        self.events.received(1);
    }

    fn push_dead(
        &mut self,
        record: &KafkaRecord<'_>,
        key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
        reason: &str,
    ) {
        self.batch
            .push(record, key, topic, epoch, Some(reason.to_string()));
        self.events.received(1);
    }

    fn is_empty(&self) -> bool {
        self.batch.is_empty()
    }

    fn is_full(&self, limits: &BatchLimits) -> bool {
        self.batch.is_full(limits.max_docs, limits.max_bytes)
    }

    fn deadline(&self, limits: &BatchLimits) -> Option<Instant> {
        self.batch.deadline(limits.max_wait)
    }

    fn take(&mut self) -> Outgoing {
        let batch = self.batch.take();
        let entries = batch.len();
        Outgoing::of(&self.delivery, batch, entries)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::transfer::watermark::Watermarks;

    fn batch(records: &[&str]) -> MetricsBatch {
        let mut batch = MetricsBatch::default();
        let epoch = Watermarks::new().assign("m", 0);
        for (n, text) in records.iter().enumerate() {
            let record = KafkaRecord {
                topic: "m",
                partition: 0,
                offset: n as i64,
                payload: Some(text.as_bytes()),
                timestamp_ms: None,
                current_format: false,
            };
            batch.push(&record, Some(b"host"), Arc::from("m"), epoch, None);
        }
        batch
    }

    fn refused() -> InfluxError {
        InfluxError::Status {
            url: "u".into(),
            what: "a write",
            status: 400,
            body: "unable to parse".into(),
        }
    }

    #[test]
    fn records_end_with_a_newline_and_keep_their_ranges() {
        let batch = batch(&["a v=1 1\nb v=2 2", "c v=3 3\n"]);
        assert_eq!(batch.body, b"a v=1 1\nb v=2 2\nc v=3 3\n");
        assert_eq!(batch.items[1].lines, 16..24);
        assert_eq!(batch.items[0].lines, 0..16);
        assert_eq!(batch.items[0].payload_len, 15, "without the added newline");
        assert_eq!(batch.items[0].key.as_deref(), Some(&b"host"[..]));
    }

    /// The sink's part of splitting a refused group (the halving is [`super::super::Delivery`]'s,
    /// tested there): a record alone splits into its lines, a line alone does not split and is
    /// dead-lettered with InfluxDB's answer, as points.
    #[test]
    fn a_refused_group_splits_down_to_the_single_bad_line() {
        let batch = batch(&["a v=1 1\nbad line\nc v=3 3", "d v=4 4"]);
        let pieces: Vec<Piece> = (0..2)
            .map(|item| Piece {
                item,
                range: batch.items[item].lines.clone(),
                whole: false,
            })
            .collect();
        let lines = split_lines(&batch, &pieces[0]).unwrap();
        let texts: Vec<&[u8]> = lines.iter().map(|p| &batch.body[p.range.clone()]).collect();
        assert_eq!(texts, vec![&b"a v=1 1\n"[..], b"bad line\n", b"c v=3 3\n"]);
        assert!(lines.iter().all(|line| line.item == 0 && !line.whole));
        assert!(
            split_lines(&batch, &lines[1]).is_none(),
            "one line is alone"
        );
        assert!(
            split_lines(&batch, &pieces[1]).is_none(),
            "one point is alone"
        );
        let status = |status: u16| InfluxError::Status {
            url: "u".into(),
            what: "a write",
            status,
            body: String::new(),
        };
        for v2 in [false, true] {
            for split in [400, 413] {
                assert!(refused_for_content(&status(split), v2), "{split}");
            }
            for retried in [401, 403, 404, 429, 500, 503] {
                assert!(!refused_for_content(&status(retried), v2), "{retried}");
            }
        }
        assert!(
            refused_for_content(&status(422), true),
            "2.x's partial write"
        );
        assert!(
            !refused_for_content(&status(422), false),
            "not a 1.x answer"
        );
        let rejection = refusal(&refused());
        assert!(
            rejection.error.contains("400: unable to parse"),
            "{rejection:?}"
        );
        assert_eq!(rejection.status, Some(400));
    }
}
