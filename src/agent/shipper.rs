//! The shipper: sends WAL chunks to Kafka as NDJSON records of several lines (see
//! [`encode_records`]), and removes a chunk from the WAL once Kafka acknowledged every record of
//! it.
//!
//! Order: chunks are sent in WAL order, so one file's lines reach its partition in offset order
//! (the idempotent producer keeps that order across its own retries).
//!
//! Failure handling, never by dropping:
//! - a chunk with a line Kafka refused for good is sent again after a backoff (its lines keep
//!   their ids, so copies that did land are harmless downstream);
//! - a fatal producer error (idempotence state lost) recreates the producer and resends every
//!   chunk still in the WAL;
//! - on a reload (SIGHUP, a changed credentials file) the shipper reads the Kafka credentials
//!   and certificates again by building a new producer; if that fails it keeps the old one and
//!   says why. Otherwise it stops sending, gives what is in flight up to [`RELOAD_DRAIN`] to be
//!   acknowledged (nothing to resend on a working connection), then drops the old producer and
//!   resends every chunk still in the WAL through the new one (the fix for a wrong password or
//!   CA: what the old one could not deliver goes out now, with the same ids);
//! - on shutdown nothing new is sent; what is in flight gets `shutdown_timeout` to be
//!   acknowledged, the rest stays in the WAL and is resent on the next start.

use std::collections::{HashMap, VecDeque};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use logship_wal::{Replayed, Seq, Wal, WalError};

use super::chunk::{Chunk, MetricsRecord, Payload};
use super::encoder::LineEncoder;
use super::events::AgentEvents;
use super::monitor::Backlog;
use crate::backoff::{Backoff, BackoffPolicy};
use crate::config::KafkaProducerConfig;
use crate::kafka::producer::{BatchOutcome, DurableProducer, SendError};
use crate::kafka::stall::{Stall, StallWatch};
use crate::kafka::BrokerObserver;
use crate::record::ndjson::{self, Joined};
use crate::record::wire::Kind;
use crate::record::RECORD_TARGET_BYTES;
use crate::shutdown::Shutdown;
use crate::sync::lock;

/// WAL sequence numbers committed by the reader and not yet handed to the producer.
#[derive(Clone, Default)]
pub struct ShipQueue {
    inner: Arc<(Mutex<VecDeque<Seq>>, Condvar)>,
}

impl ShipQueue {
    /// An empty queue.
    pub fn new() -> ShipQueue {
        ShipQueue::default()
    }

    /// Appends committed seqs (in commit order).
    pub fn push(&self, seqs: &[Seq]) {
        if seqs.is_empty() {
            return;
        }
        let (queue, ready) = &*self.inner;
        lock(queue).extend(seqs.iter().copied());
        ready.notify_all();
    }

    fn pop(&self) -> Option<Seq> {
        lock(&self.inner.0).pop_front()
    }

    fn replace(&self, seqs: impl IntoIterator<Item = Seq>) {
        let mut queue = lock(&self.inner.0);
        queue.clear();
        queue.extend(seqs);
    }

    fn is_empty(&self) -> bool {
        lock(&self.inner.0).is_empty()
    }
}

/// Sends WAL chunks to Kafka.
pub struct Shipper {
    /// Host name for records and ids.
    pub host: String,
    /// The WAL.
    pub wal: Wal,
    /// Producer settings.
    pub kafka: KafkaProducerConfig,
    /// Largest record that may be produced.
    pub max_record_bytes: usize,
    /// Seqs to send.
    pub queue: ShipQueue,
    /// Poked when acknowledgements free WAL space (the reader may be waiting for it).
    pub wake_reader: SyncSender<()>,
    /// How long to wait for in-flight records on shutdown.
    pub shutdown_timeout: Duration,
    /// Told the source bytes of every acknowledged chunk (progress logs).
    pub backlog: Arc<Backlog>,
    /// How a chunk Kafka did not accept is resent.
    pub resend: BackoffPolicy,
    /// Where deliveries, resends and quarantines are reported (and the producer's broker
    /// count).
    pub events: Arc<dyn AgentEvents>,
    /// Reload requests: switch to a producer with freshly read credentials.
    pub reload: crate::reload::Reload,
    /// Told of every record acknowledged (or quarantined): it no longer holds `acked_through`.
    pub acked_through: Arc<super::acked::AckedThrough>,
}

/// On a reload, how long in-flight chunks may take to be acknowledged by the old producer
/// before it is dropped and they are resent through the new one.
pub const RELOAD_DRAIN: Duration = Duration::from_secs(5);

/// A chunk handed to the producer: its source bytes and lines.
#[derive(Debug, Clone, Copy)]
struct InFlight {
    bytes: usize,
    lines: u64,
}

/// What stops the shipper.
#[derive(Debug, thiserror::Error)]
pub enum ShipperError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// The producer could not be created (bad configuration).
    #[error("cannot create the Kafka producer: {0}")]
    Producer(#[from] rdkafka::error::KafkaError),
}

impl Shipper {
    /// The producer's broker observer: the agent's events.
    fn brokers(&self) -> Arc<dyn BrokerObserver> {
        self.events.clone()
    }

    /// Runs until `shutdown`, then waits (bounded) for in-flight acknowledgements.
    pub fn run(self, shutdown: &Shutdown) -> Result<(), ShipperError> {
        let mut producer =
            DurableProducer::new(&self.kafka, self.max_record_bytes, self.brokers())?;
        let mut in_flight: HashMap<Seq, InFlight> = HashMap::new();
        let mut in_flight_bytes = 0usize;
        let mut retry: VecDeque<(Instant, Seq)> = VecDeque::new();
        let mut backoff = self.resend.start();
        let mut encode_buf = Vec::with_capacity(1024);
        let mut reloaded = self.reload.generation();
        let mut stall = StallWatch::new(self.kafka.stall_timeout_ms.get());
        loop {
            let idle = in_flight_bytes >= self.kafka.max_inflight_bytes
                || (self.queue.is_empty() && retry.is_empty());
            let wait = if idle {
                Duration::from_millis(20)
            } else {
                Duration::ZERO
            };
            let finished = producer.take_finished(wait);
            if !finished.is_empty() {
                // An acknowledgement or an error: Kafka answers.
                stall.progress(Instant::now());
            }
            self.settle(
                finished,
                &mut in_flight,
                &mut in_flight_bytes,
                &mut retry,
                &mut backoff,
            )?;

            // A fatal error, or a stall whose watch says to recover now: a new producer.
            let waiting = !in_flight.is_empty() || !self.queue.is_empty();
            let recreate_for = match producer.fatal_error() {
                Some(error) => Some(error),
                None => match stall.check(Instant::now(), waiting) {
                    Stall::Fine => None,
                    Stall::Ended { lasted } => {
                        self.events.kafka_stall_ended(lasted);
                        None
                    }
                    Stall::Stalled {
                        stalled_for,
                        recover,
                    } => {
                        let pending = self.wal.pending_bytes();
                        self.events
                            .kafka_stalled(stalled_for, in_flight.len(), pending);
                        recover.then(|| {
                            format!(
                                "Kafka acknowledged nothing and reported no error for {}s",
                                stalled_for.as_secs()
                            )
                        })
                    }
                },
            };
            if let Some(reason) = recreate_for {
                self.events.producer_recreated(&reason);
                self.recreate(
                    &mut producer,
                    &mut in_flight,
                    &mut in_flight_bytes,
                    &mut retry,
                )?;
                continue;
            }

            if shutdown.is_triggered() {
                return self.finish(producer, &mut in_flight, &mut in_flight_bytes);
            }

            let generation = self.reload.generation();
            if generation != reloaded {
                reloaded = generation;
                match DurableProducer::new(&self.kafka, self.max_record_bytes, self.brokers()) {
                    Ok(fresh) => {
                        let deadline = Instant::now() + RELOAD_DRAIN;
                        while !in_flight.is_empty()
                            && Instant::now() < deadline
                            && !shutdown.is_triggered()
                        {
                            self.settle(
                                producer.take_finished(Duration::from_millis(50)),
                                &mut in_flight,
                                &mut in_flight_bytes,
                                &mut retry,
                                &mut backoff,
                            )?;
                        }
                        let unacknowledged = in_flight.len();
                        drop(std::mem::replace(&mut producer, fresh));
                        in_flight.clear();
                        in_flight_bytes = 0;
                        retry.clear();
                        self.queue.replace(pending_seqs(&self.wal)?);
                        self.events.producer_reloaded(unacknowledged);
                    }
                    Err(error) => self.events.producer_reload_failed(&error.to_string()),
                }
                continue;
            }

            while in_flight_bytes < self.kafka.max_inflight_bytes {
                let seq = match retry.front() {
                    Some((due, seq)) if *due <= Instant::now() => {
                        let seq = *seq;
                        retry.pop_front();
                        seq
                    }
                    _ => match self.queue.pop() {
                        Some(seq) => seq,
                        None => break,
                    },
                };
                let Some(payload) = self.load(seq)? else {
                    continue;
                };
                let (bytes, sent) = match &payload {
                    Payload::Lines(chunk) => (
                        chunk.data.len(),
                        self.send_chunk(&producer, seq, chunk, &mut encode_buf),
                    ),
                    Payload::Metrics(record) => (
                        record.lines.len(),
                        self.send_metrics(&producer, seq, record).map(|()| 0),
                    ),
                };
                let lines = match sent {
                    Ok(lines) => lines,
                    // The batch fails and is retried; its line count is only used on delivery.
                    Err(SendError::Refused(_)) => 0,
                    Err(SendError::Fatal(_)) => break,
                };
                let sent = InFlight {
                    bytes,
                    lines: lines as u64,
                };
                in_flight.insert(seq, sent);
                in_flight_bytes += sent.bytes;
            }
        }
    }

    /// Replaces `producer` with a new one and queues every WAL record not yet acknowledged,
    /// oldest first (the old producer's answers are no longer awaited; a record it did deliver
    /// is sent again and its lines keep their ids, so the transfer indexes them once). The old
    /// producer is dropped on a thread of its own: a client stuck on a broker must not hold the
    /// shipper.
    fn recreate(
        &self,
        producer: &mut DurableProducer,
        in_flight: &mut HashMap<Seq, InFlight>,
        in_flight_bytes: &mut usize,
        retry: &mut VecDeque<(Instant, Seq)>,
    ) -> Result<(), ShipperError> {
        let fresh = DurableProducer::new(&self.kafka, self.max_record_bytes, self.brokers())?;
        let old = std::mem::replace(producer, fresh);
        if let Err(error) = std::thread::Builder::new()
            .name("old-producer".into())
            .spawn(move || drop(old))
        {
            tracing::debug!(%error, "cannot drop the old producer on a thread; dropped inline");
        }
        in_flight.clear();
        *in_flight_bytes = 0;
        retry.clear();
        self.queue.replace(pending_seqs(&self.wal)?);
        Ok(())
    }

    /// Applies finished batches: acknowledged chunks leave the WAL, failed ones are scheduled again.
    fn settle(
        &self,
        outcomes: Vec<BatchOutcome>,
        in_flight: &mut HashMap<Seq, InFlight>,
        in_flight_bytes: &mut usize,
        retry: &mut VecDeque<(Instant, Seq)>,
        backoff: &mut Backoff,
    ) -> Result<(), WalError> {
        if outcomes.is_empty() {
            return Ok(());
        }
        let mut acked = Vec::with_capacity(outcomes.len());
        for outcome in outcomes {
            match outcome {
                BatchOutcome::Delivered(seq) => {
                    acked.push(seq);
                    backoff.reset();
                    if let Some(sent) = in_flight.remove(&seq) {
                        *in_flight_bytes -= sent.bytes;
                        self.backlog.add_shipped(sent.bytes as u64);
                        self.events.delivered(sent.lines);
                    }
                }
                BatchOutcome::Failed(seq, error) => {
                    let delay = backoff.next_delay();
                    self.events.resend(seq, &error, delay);
                    retry.push_back((Instant::now() + delay, seq));
                    if let Some(sent) = in_flight.remove(&seq) {
                        *in_flight_bytes -= sent.bytes;
                    }
                }
            }
        }
        if !acked.is_empty() {
            self.wal.ack(&acked)?;
            self.acked_through.acknowledged(&acked);
            let _ = self.wake_reader.try_send(());
        }
        Ok(())
    }

    /// On shutdown: wait for what is in flight, acknowledge what was delivered.
    fn finish(
        &self,
        producer: DurableProducer,
        in_flight: &mut HashMap<Seq, InFlight>,
        in_flight_bytes: &mut usize,
    ) -> Result<(), ShipperError> {
        producer.flush(self.shutdown_timeout);
        let mut retry = VecDeque::new();
        let mut backoff = self.resend.start();
        self.settle(
            producer.take_finished(Duration::ZERO),
            in_flight,
            in_flight_bytes,
            &mut retry,
            &mut backoff,
        )?;
        if !in_flight.is_empty() {
            self.events.stopped_unacknowledged(in_flight.len());
        }
        self.wal.flush()?;
        Ok(())
    }

    /// Reads record `seq` from the WAL; `None` if it is gone (acknowledged) or unreadable.
    fn load(&self, seq: Seq) -> Result<Option<Payload>, WalError> {
        match self.wal.get(seq)? {
            Some(Replayed::Record(entry)) => match Payload::decode(&entry.payload) {
                Ok(payload) => Ok(Some(payload)),
                Err(error) => {
                    let reason = error.to_string();
                    self.wal.quarantine_record(seq, &reason)?;
                    self.acked_through.acknowledged(&[seq]);
                    self.events.quarantined(seq, &reason, false);
                    Ok(None)
                }
            },
            Some(Replayed::Quarantined { seq, reason }) => {
                self.events.quarantined(seq, &reason, true);
                Ok(None)
            }
            None => Ok(None),
        }
    }

    /// Sends one round of host metrics as one record keyed by the host (one partition keeps
    /// a host's samples in order), with the headers of [`Kind::Metrics`].
    fn send_metrics(
        &self,
        producer: &DurableProducer,
        seq: Seq,
        record: &MetricsRecord,
    ) -> Result<(), SendError> {
        producer.begin_batch(seq, 1);
        let sent = producer.send(
            seq,
            &record.topic,
            self.host.as_bytes(),
            &record.lines,
            Kind::Metrics.headers(),
        );
        if let Err(error) = &sent {
            producer.abort_batch(seq, 1, error.to_string());
        }
        sent
    }

    /// Sends the lines of `chunk` as NDJSON records of at most `max_lines_per_record` lines and
    /// [`RECORD_TARGET_BYTES`] each (a longer line goes alone), keyed by the stream so they
    /// keep their order in one partition. The batch is registered with the number of records
    /// before the first is sent. Returns the number of lines sent.
    fn send_chunk(
        &self,
        producer: &DurableProducer,
        seq: Seq,
        chunk: &Chunk,
        buf: &mut Vec<u8>,
    ) -> Result<usize, SendError> {
        let encoded = encode_records(
            buf,
            &self.host,
            chunk,
            self.kafka.max_lines_per_record,
            RECORD_TARGET_BYTES,
        );
        let count = encoded.records.len();
        producer.begin_batch(seq, count);
        for (sent, range) in encoded.records.into_iter().enumerate() {
            let value = &buf[range];
            let key = chunk.stream.as_bytes();
            if let Err(error) = producer.send(seq, &chunk.topic, key, value, Kind::Lines.headers())
            {
                producer.abort_batch(seq, count - sent, error.to_string());
                return Err(error);
            }
        }
        Ok(encoded.lines)
    }
}

/// Encodes every line of `chunk` into `buf` (cleared first) as the values of Kafka lines
/// records, joined as the record contract says ([`ndjson::Joiner`]): up to `max_lines` lines
/// and about `target_bytes` bytes each.
pub fn encode_records(
    buf: &mut Vec<u8>,
    host: &str,
    chunk: &Chunk,
    max_lines: usize,
    target_bytes: usize,
) -> Joined {
    let mut joiner = ndjson::Joiner::new(buf, max_lines, target_bytes);
    let mut encoder = LineEncoder::new(host, chunk);
    for piece in chunk.pieces() {
        joiner.push(|out| encoder.encode(out, &piece));
    }
    joiner.finish()
}

/// Every seq still in the WAL, oldest first.
pub fn pending_seqs(wal: &Wal) -> Result<Vec<Seq>, WalError> {
    wal.pending_seqs()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::record::line_id;

    #[test]
    fn encoded_lines_carry_offsets_flags_and_deterministic_ids() {
        let chunk = Chunk {
            stream: "stream-1".into(),
            path: "/var/log/a.log".into(),
            topic: "t".into(),
            start_offset: 1000,
            read_at: "2026-11-23T10:00:00Z".into(),
            starts_mid_line: false,
            cuts: vec![],
            partial_end: true,
            data: b"ok line\n\xff\xfe bad\ntail".to_vec(),
            events: vec![],
            event_cuts: vec![],
            starts_in_event: false,
            fields: Vec::new(),
        };
        let records: Vec<serde_json::Value> = chunk
            .pieces()
            .map(|piece| {
                let mut buf = Vec::new();
                LineEncoder::new("web-01", &chunk).encode(&mut buf, &piece);
                serde_json::from_slice(&buf).unwrap()
            })
            .collect();
        assert_eq!(records.len(), 3);
        assert_eq!(records[0]["offset"], 1000);
        assert_eq!(records[0]["message"], "ok line");
        assert_eq!(records[0]["id"], line_id("web-01", "stream-1", 1000));
        assert_eq!(records[0]["@timestamp"], "2026-11-23T10:00:00Z");
        assert!(records[0].get("invalid_utf8").is_none());
        assert_eq!(records[1]["offset"], 1008);
        assert_eq!(records[1]["invalid_utf8"], true);
        assert_eq!(records[2]["offset"], 1015);
        assert_eq!(records[2]["partial"], true);
        assert_eq!(records[2]["message"], "tail");
    }

    fn chunk_of(lines: &[Vec<u8>]) -> Chunk {
        let mut data = Vec::new();
        for line in lines {
            data.extend_from_slice(line);
            data.push(b'\n');
        }
        Chunk {
            stream: "stream-1".into(),
            path: "/var/log/a.log".into(),
            topic: "t".into(),
            start_offset: 0,
            read_at: "2026-11-23T10:00:00Z".into(),
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

    proptest::proptest! {
        /// Splitting every record on `\n` gives back exactly the per-line records, in order;
        /// no record has more than `max_lines` lines, and only a record of one line passes
        /// the byte target.
        #[test]
        fn records_split_back_into_every_line_in_order(
            lines in proptest::collection::vec(
                proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300), 0..60),
            max_lines in 1usize..8,
            target in 1usize..2000,
        ) {
            let chunk = chunk_of(&lines);
            let mut buf = Vec::new();
            let encoded = encode_records(&mut buf, "web-01", &chunk, max_lines, target);
            let mut expected = Vec::new();
            let mut encoder = LineEncoder::new("web-01", &chunk);
            for piece in chunk.pieces() {
                let mut one = Vec::new();
                encoder.encode(&mut one, &piece);
                expected.push(one);
            }
            proptest::prop_assert_eq!(encoded.lines, expected.len());
            let mut got = Vec::new();
            for range in &encoded.records {
                let record = &buf[range.clone()];
                let parts: Vec<&[u8]> = ndjson::split(record).collect();
                proptest::prop_assert!(parts.len() <= max_lines);
                proptest::prop_assert!(parts.len() == 1 || record.len() <= target);
                got.extend(parts.into_iter().map(<[u8]>::to_vec));
            }
            proptest::prop_assert_eq!(got, expected);
        }
    }
}
