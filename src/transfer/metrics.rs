//! Metrics records (Kafka header `logship-kind: metrics`): batches of InfluxDB line protocol
//! written to `/write`, under the transfer's one commit rule.
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
//! harmless).

use std::ops::Range;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::document::KafkaRecord;
use super::events::TransferEvents;
use super::watermark::{self, lock, Epoch, Watermarks};
use crate::backoff::BackoffPolicy;
use crate::influx::{InfluxError, SharedInflux};
use crate::kafka::dead_letters::DeadLetters;
use crate::record::wire::{self, Kind};

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
struct Piece {
    item: usize,
    range: Range<usize>,
}

/// What goes to the dead-letter topic: points InfluxDB refused, or a whole record no sink of
/// this transfer takes (sent as it came, without the metrics header).
#[derive(Debug)]
struct DeadPiece {
    piece: Piece,
    reason: String,
    /// Points of a metrics record (marked `logship-kind: metrics` on the dead-letter topic).
    points: bool,
}

/// Writes metrics batches to InfluxDB and reports done records to the watermark.
pub struct MetricsDelivery {
    influx: SharedInflux,
    dead_letters: Arc<DeadLetters>,
    dlq_topic: String,
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
    backoff: BackoffPolicy,
}

impl MetricsDelivery {
    /// Writes to `influx`, dead-letters to `dlq_topic` through `dead_letters`.
    pub fn new(
        influx: SharedInflux,
        dead_letters: Arc<DeadLetters>,
        dlq_topic: String,
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
        backoff: BackoffPolicy,
    ) -> MetricsDelivery {
        MetricsDelivery {
            influx,
            dead_letters,
            dlq_topic,
            marks,
            events,
            backoff,
        }
    }

    /// Delivers `batch`: returns once every record in it is done or belongs to a revoked
    /// partition. Never gives up otherwise (the caller bounds it at shutdown).
    pub async fn deliver(&self, batch: MetricsBatch) {
        let mut dead: Vec<DeadPiece> = Vec::new();
        let mut pieces = Vec::with_capacity(batch.len());
        for (item, record) in batch.items.iter().enumerate() {
            let piece = Piece {
                item,
                range: record.lines.clone(),
            };
            match &record.dead {
                Some(reason) => dead.push(DeadPiece {
                    piece: Piece {
                        item,
                        range: record.lines.start..record.lines.start + record.payload_len,
                    },
                    reason: reason.clone(),
                    points: false,
                }),
                None if piece.range.is_empty() => {}
                None => pieces.push(piece),
            }
        }
        let mut groups = vec![pieces];
        while let Some(group) = groups.pop() {
            self.write_group(&batch, group, &mut groups, &mut dead)
                .await;
        }
        self.dead_letter(&batch, dead).await;
        self.mark_done(&batch);
    }

    /// Writes one group of pieces, retrying until InfluxDB accepts it, or refuses it for its
    /// content (then split into `groups`, or dead-lettered when it is one point).
    async fn write_group(
        &self,
        batch: &MetricsBatch,
        mut group: Vec<Piece>,
        groups: &mut Vec<Vec<Piece>>,
        dead: &mut Vec<DeadPiece>,
    ) {
        let mut delays = self.backoff.start();
        loop {
            self.retain_current(batch, &mut group);
            if group.is_empty() {
                return;
            }
            let mut body = Vec::with_capacity(group.iter().map(|p| p.range.len()).sum());
            for piece in &group {
                body.extend_from_slice(&batch.body[piece.range.clone()]);
            }
            let points = memchr::memchr_iter(b'\n', &body).count() as u64;
            match self.influx.get().write(body).await {
                Ok(()) => {
                    self.events.points_written(points);
                    return;
                }
                Err(
                    error @ InfluxError::Status {
                        status: 400 | 413, ..
                    },
                ) => {
                    split(batch, group, &error, groups, dead);
                    return;
                }
                Err(error) => {
                    let refused = matches!(error.status(), Some(401 | 403));
                    self.events
                        .points_retrying(points, &error.to_string(), refused);
                    tokio::time::sleep(delays.next_delay()).await;
                }
            }
        }
    }

    /// Writes every dead piece to the dead-letter topic, retrying each until Kafka
    /// acknowledged it (or its partition was revoked).
    async fn dead_letter(&self, batch: &MetricsBatch, dead: Vec<DeadPiece>) {
        for DeadPiece {
            piece,
            reason,
            points,
        } in dead
        {
            let item = &batch.items[piece.item];
            let source = format!("{}/{}/{}", item.topic, item.partition, item.offset);
            let mut headers = vec![
                (wire::ERROR_HEADER, reason.as_str()),
                (wire::SOURCE_HEADER, source.as_str()),
            ];
            if points {
                headers.extend_from_slice(Kind::Metrics.headers());
            }
            let payload = &batch.body[piece.range.clone()];
            let mut delays = self.backoff.start();
            loop {
                if !lock(&self.marks).is_current(&item.topic, item.partition, item.epoch) {
                    break;
                }
                match self
                    .dead_letters
                    .send(&self.dlq_topic, item.key.as_deref(), payload, &headers)
                    .await
                {
                    Ok(()) => {
                        self.events.points_dead_lettered(1, &reason);
                        break;
                    }
                    Err(error) => {
                        self.events.points_dead_letter_failed(1, &error);
                        tokio::time::sleep(delays.next_delay()).await;
                    }
                }
            }
        }
    }

    fn retain_current(&self, batch: &MetricsBatch, group: &mut Vec<Piece>) {
        let dropped = watermark::retain_current(&self.marks, group, |piece| {
            let item = &batch.items[piece.item];
            (&*item.topic, item.partition, item.epoch)
        });
        if dropped > 0 {
            self.events.revoked_dropped(dropped);
        }
    }

    fn mark_done(&self, batch: &MetricsBatch) {
        let stale = watermark::mark_done(
            &self.marks,
            batch
                .items
                .iter()
                .map(|item| (&*item.topic, item.partition, item.epoch, item.offset)),
        );
        if stale > 0 {
            self.events.revoked_dropped(stale);
        }
    }
}

/// A group InfluxDB refused for its content: halves for several pieces, lines for one piece of
/// several lines, the dead-letter topic for one line.
fn split(
    batch: &MetricsBatch,
    mut group: Vec<Piece>,
    error: &InfluxError,
    groups: &mut Vec<Vec<Piece>>,
    dead: &mut Vec<DeadPiece>,
) {
    if group.len() > 1 {
        let second = group.split_off(group.len() / 2);
        groups.push(second);
        groups.push(group);
        return;
    }
    let Some(piece) = group.pop() else {
        return;
    };
    let text = &batch.body[piece.range.clone()];
    let mut lines = Vec::new();
    let mut start = piece.range.start;
    for end in memchr::memchr_iter(b'\n', text) {
        let end = piece.range.start + end + 1;
        lines.push(Piece {
            item: piece.item,
            range: start..end,
        });
        start = end;
    }
    if start < piece.range.end {
        lines.push(Piece {
            item: piece.item,
            range: start..piece.range.end,
        });
    }
    if lines.len() > 1 {
        groups.push(lines);
    } else {
        let reason = match error {
            InfluxError::Status { status, body, .. } => {
                format!("InfluxDB answered {status}: {body}")
            }
            other => other.to_string(),
        };
        dead.push(DeadPiece {
            piece,
            reason,
            points: true,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

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

    #[test]
    fn a_refused_group_splits_down_to_the_single_bad_line() {
        let batch = batch(&["a v=1 1\nbad line\nc v=3 3", "d v=4 4"]);
        let whole: Vec<Piece> = (0..2)
            .map(|item| Piece {
                item,
                range: batch.items[item].lines.clone(),
            })
            .collect();
        let (mut groups, mut dead) = (Vec::new(), Vec::new());
        split(&batch, whole, &refused(), &mut groups, &mut dead);
        assert_eq!(groups.len(), 2, "halves");
        assert!(dead.is_empty());
        let first = groups.pop().unwrap();
        assert_eq!(first.len(), 1);
        split(&batch, first, &refused(), &mut groups, &mut dead);
        let lines = groups.pop().unwrap();
        let texts: Vec<&[u8]> = lines.iter().map(|p| &batch.body[p.range.clone()]).collect();
        assert_eq!(texts, vec![&b"a v=1 1\n"[..], b"bad line\n", b"c v=3 3\n"]);
        split(
            &batch,
            vec![lines[1].clone()],
            &refused(),
            &mut groups,
            &mut dead,
        );
        assert_eq!(dead.len(), 1);
        assert_eq!(&batch.body[dead[0].piece.range.clone()], b"bad line\n");
        assert!(
            dead[0].reason.contains("400: unable to parse"),
            "{:?}",
            dead[0]
        );
        assert!(dead[0].points);
    }
}
