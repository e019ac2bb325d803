//! The consuming loop of one round: records taken from the consumer into the sinks' batches,
//! batches handed to delivery tasks (bounded by `batch.max_inflight_bulks`, with backpressure
//! that pauses the partitions), offsets committed up to what the sinks acknowledged, and the
//! round finished as at shutdown (in-flight deliveries answered, a final commit, the group
//! left).

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::OptionFuture;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::error::KafkaResult;
use rdkafka::message::Message;
use tokio::sync::oneshot::{self, error::RecvError};
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::batch::BatchLimits;
use super::consumer::{commit_list, ConsumerProgress, TransferConsumer};
use super::document::KafkaRecord;
use super::events::TransferEvents;
use super::sink::{Outgoing, Route};
use super::watermark::{lock, CommitPoint, Watermarks};
use super::RoundEnd;
use crate::record::wire::{self, Envelope, EnvelopeError, Kind};
use crate::shutdown::Shutdown;

/// Why a metrics record goes to the Elasticsearch dead-letter index on a transfer without
/// `[influxdb]`.
const NO_INFLUXDB: &str =
    "a metrics record (header logship-kind: metrics), and this transfer has no [influxdb]";
/// Why a log record goes to the dead-letter topic on a transfer without `[elasticsearch]`.
const NO_ELASTICSEARCH: &str = "a log record, and this transfer has no [elasticsearch]";

/// How often the counters are logged.
const SUMMARY_INTERVAL: Duration = Duration::from_secs(60);
/// How long consumption may be blocked (all bulk slots busy) before the partitions are paused.
/// Until then no record is taken and rebalances wait; after it the consumer polls again.
const PAUSE_AFTER: Duration = Duration::from_secs(2);
/// How long the final commit may take even when the shutdown timeout is spent.
const FINAL_COMMIT_TIMEOUT: Duration = Duration::from_secs(5);
/// How long leaving the group may take even when the shutdown timeout is spent.
const CLOSE_TIMEOUT: Duration = Duration::from_secs(2);

/// The consuming loop's state.
pub(super) struct Pipeline {
    pub(super) consumer: Arc<TransferConsumer>,
    pub(super) marks: Arc<Mutex<Watermarks>>,
    pub(super) events: Arc<dyn TransferEvents>,
    pub(super) paused: Arc<AtomicBool>,
    /// The sinks, each with the batch it fills: a record goes to the first that takes its
    /// kind; the first of all receives what is dead-lettered without a sink (at least one).
    pub(super) routes: Vec<Box<dyn Route>>,
    pub(super) limits: BatchLimits,
    pub(super) permits: Arc<Semaphore>,
    pub(super) tasks: JoinSet<()>,
    /// Batches waiting for a slot (at most `max_ready`).
    pub(super) ready: VecDeque<Outgoing>,
    pub(super) max_ready: usize,
    pub(super) commit: Option<InFlightCommit>,
    /// What the stall watch reads: records received, commits under way and answered.
    pub(super) progress: Arc<ConsumerProgress>,
    /// Set when the consumer failed for good (a fatal error): how the round ends.
    pub(super) ended: Option<RoundEnd>,
}

impl Pipeline {
    /// Consumes until shutdown (`Ok(Ended)`), until `stall` says to recover (`Ok(Stalled)`) or
    /// until a bulk task failed (`Err`).
    pub(super) async fn consume(
        &mut self,
        shutdown: &Shutdown,
        commit_interval: Duration,
    ) -> anyhow::Result<RoundEnd> {
        let stop = shutdown.wait();
        tokio::pin!(stop);
        // Fires when the current batch is old enough; reset whenever a new batch starts.
        let batch_timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(batch_timer);
        // Fires when consumption has been blocked for `PAUSE_AFTER`.
        let pause_timer = tokio::time::sleep(Duration::from_secs(3600));
        tokio::pin!(pause_timer);
        let mut was_blocked = false;
        let mut commit_tick = tokio::time::interval(commit_interval);
        commit_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut summary_tick = tokio::time::interval(SUMMARY_INTERVAL);
        summary_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        summary_tick.tick().await;
        loop {
            if let Some(end) = self.ended.take() {
                return Ok(end);
            }
            // A batch that is full or old enough waits in `ready` for a bulk slot, so that a slot
            // busy for a moment does not stop consumption.
            let now = Instant::now().into_std();
            for route in &mut self.routes {
                if self.ready.len() < self.max_ready && route.is_ready(&self.limits, now) {
                    self.ready.push_back(route.take());
                }
            }
            // Blocked: every slot busy, the waiting room full, the next batch full. For a
            // moment, simply stop taking records (librdkafka's bounded prefetch queue absorbs
            // them). Only when it lasts, pause the partitions and poll again, to keep the group
            // membership and serve rebalances: pausing drops the prefetched records and delays
            // the next fetch, so it must not happen with every slow bulk answer. Resume once the
            // waiting room has drained to half.
            let blocked = self.ready.len() >= self.max_ready && self.a_batch_is_full();
            if blocked && !was_blocked {
                pause_timer.as_mut().reset(Instant::now() + PAUSE_AFTER);
            }
            was_blocked = blocked;
            let paused = self.paused.load(Ordering::SeqCst);
            if !paused && blocked && pause_timer.is_elapsed() {
                self.set_paused(true);
            } else if paused && self.ready.len() <= self.max_ready / 2 {
                self.set_paused(false);
            }
            let paused = self.paused.load(Ordering::SeqCst);
            let take_records = !blocked || paused;
            self.progress
                .fetching
                .store(!blocked && !paused, Ordering::Relaxed);
            let batch_waiting = self
                .routes
                .iter()
                .any(|route| !route.is_empty() && !route.is_full(&self.limits));
            let deadline = self
                .routes
                .iter()
                .filter_map(|route| route.deadline(&self.limits))
                .min();
            if let Some(deadline) = deadline.map(Instant::from_std) {
                if batch_timer.deadline() != deadline {
                    batch_timer.as_mut().reset(deadline);
                }
            }
            // The record borrows the consumer, while `accept` needs the whole pipeline.
            let consumer = self.consumer.clone();
            // Biased: commits and finished tasks are served even when records keep coming.
            tokio::select! {
                biased;
                _ = &mut stop => return Ok(RoundEnd::Ended),
                _ = commit_tick.tick() => self.start_commit(),
                result = OptionFuture::from(self.commit.as_mut().map(|c| &mut c.done)),
                    if self.commit.is_some() => self.commit_finished(result),
                _ = summary_tick.tick() => {
                    let outstanding = lock(&self.marks).outstanding();
                    self.events.progress(outstanding);
                }
                Some(joined) = self.tasks.join_next(), if !self.tasks.is_empty() => {
                    if let Err(error) = joined {
                        // A bug: its records would hold their partitions' commits back forever.
                        // Stop, so that a restart consumes them again.
                        return Err(anyhow::anyhow!("a bulk task failed: {error}"));
                    }
                }
                permit = self.permits.clone().acquire_owned(), if !self.ready.is_empty() => {
                    match permit {
                        Ok(permit) => self.dispatch_ready(permit),
                        Err(_) => return Err(anyhow::anyhow!("the bulk slots were closed")),
                    }
                }
                message = consumer.recv(), if take_records => self.accept(message),
                _ = &mut batch_timer, if batch_waiting && !batch_timer.is_elapsed() => {}
                _ = &mut pause_timer, if blocked && !paused && !pause_timer.is_elapsed() => {}
            }
        }
    }

    fn a_batch_is_full(&self) -> bool {
        self.routes.iter().any(|route| route.is_full(&self.limits))
    }

    /// Hands the oldest waiting batch to a delivery task holding `permit`.
    fn dispatch_ready(&mut self, permit: tokio::sync::OwnedSemaphorePermit) {
        let Some(outgoing) = self.ready.pop_front() else {
            return;
        };
        self.tasks.spawn(async move {
            outgoing.delivery.await;
            drop(permit);
        });
    }

    /// The consumer failed for good: fenced by another member with its `group.instance.id`
    /// (the round ends and the next consumer joins with dynamic membership), or another fatal
    /// error (a new consumer joins, as after a stall).
    fn fatal(&self) -> RoundEnd {
        match self.consumer.client().fatal_error() {
            Some((rdkafka::types::RDKafkaErrorCode::FencedInstanceId, reason)) => {
                self.events.fenced(&reason);
                RoundEnd::Fenced
            }
            _ => RoundEnd::Stalled,
        }
    }

    /// Registers a received record with the watermark and adds it to the batch of its sink
    /// (or drops it if its partition is not ours).
    fn accept(
        &mut self,
        message: Result<rdkafka::message::BorrowedMessage<'_>, rdkafka::error::KafkaError>,
    ) {
        let message = match message {
            Ok(message) => message,
            Err(error) => {
                self.events.consumer_error(&error.to_string());
                if let rdkafka::error::KafkaError::MessageConsumptionFatal(_) = error {
                    self.ended = Some(self.fatal());
                }
                return;
            }
        };
        self.progress.answered();
        let registered =
            lock(&self.marks).received(message.topic(), message.partition(), message.offset());
        let Some((topic, epoch)) = registered else {
            self.events
                .unassigned_record(message.topic(), message.partition(), message.offset());
            return;
        };
        let envelope = read_envelope(&message);
        let record = KafkaRecord {
            topic: message.topic(),
            partition: message.partition(),
            offset: message.offset(),
            payload: message.payload(),
            timestamp_ms: message.timestamp().to_millis(),
            current_format: matches!(envelope, Ok(Envelope::Current(_))),
        };
        let envelope = match envelope {
            Ok(envelope) => envelope,
            Err(error) => {
                // A later format or an unknown kind: never guessed at, dead-lettered with why.
                let reason = error.to_string();
                self.dead_letter(&record, message.key(), topic, epoch, &reason);
                return;
            }
        };
        let kind = envelope.kind();
        match self.routes.iter_mut().find(|route| route.takes(kind)) {
            Some(route) => route.push(&record, message.key(), topic, epoch),
            None => {
                let reason = match kind {
                    Kind::Metrics => NO_INFLUXDB,
                    Kind::Lines => NO_ELASTICSEARCH,
                };
                self.dead_letter(&record, message.key(), topic, epoch, reason);
            }
        }
    }

    /// Dead-letters a registered record through the first route (every transfer has one).
    fn dead_letter(
        &mut self,
        record: &KafkaRecord<'_>,
        key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: super::watermark::Epoch,
        reason: &str,
    ) {
        if let Some(route) = self.routes.first_mut() {
            route.push_dead(record, key, topic, epoch, reason);
        }
    }

    fn set_paused(&mut self, pause: bool) {
        self.paused.store(pause, Ordering::SeqCst);
        let result = self.consumer.assignment().and_then(|assignment| {
            if pause {
                self.consumer.pause(&assignment)
            } else {
                self.consumer.resume(&assignment)
            }
        });
        if let Err(error) = result {
            self.events
                .consumer_error(&format!("cannot pause/resume partitions: {error}"));
        }
        self.events.backpressure(pause);
    }

    /// Starts committing the watermarks that moved, unless a commit is still under way.
    ///
    /// Commits are synchronous, on a thread of their own: librdkafka reports the result of a
    /// synchronous commit only (an asynchronous manual commit has no result event), and a commit
    /// that failed — Kafka down — must be made again.
    fn start_commit(&mut self) {
        if self.commit.is_some() {
            return;
        }
        let points = lock(&self.marks).take_commits();
        if points.is_empty() {
            return;
        }
        self.progress.committing.fetch_add(1, Ordering::Relaxed);
        self.commit = Some(InFlightCommit {
            done: commit_off_runtime(self.consumer.clone(), &points, &*self.events),
            points,
        });
    }

    /// A commit started by [`Pipeline::start_commit`] finished.
    fn commit_finished(&mut self, result: Option<Result<KafkaResult<()>, RecvError>>) {
        let Some(commit) = self.commit.take() else {
            return;
        };
        self.progress.committing.fetch_sub(1, Ordering::Relaxed);
        match result {
            Some(Ok(Ok(()))) => {
                self.progress.answered();
                self.events.committed(commit.points.len());
            }
            other => {
                let error = match other {
                    Some(Ok(Err(error))) => error.to_string(),
                    _ => "the commit thread ended without a result".to_string(),
                };
                self.events.commit_failed(&error);
                let mut marks = lock(&self.marks);
                for point in &commit.points {
                    marks.commit_failed(&point.topic, point.partition, point.offset);
                }
            }
        }
    }

    /// After shutdown: send what was received, wait for in-flight bulks (bounded), commit what
    /// is done, leave the group.
    pub(super) async fn finish(mut self, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        for route in &mut self.routes {
            if !route.is_empty() {
                self.ready.push_back(route.take());
            }
        }
        while !self.ready.is_empty() {
            match tokio::time::timeout_at(deadline, self.permits.clone().acquire_owned()).await {
                Ok(Ok(permit)) => self.dispatch_ready(permit),
                _ => {
                    let records: usize = self.ready.iter().map(|outgoing| outgoing.entries).sum();
                    self.events.left_at_shutdown(records, 0);
                    break;
                }
            }
        }
        while !self.tasks.is_empty() {
            match tokio::time::timeout_at(deadline, self.tasks.join_next()).await {
                Ok(_) => {}
                Err(_) => {
                    self.events.left_at_shutdown(0, self.tasks.len());
                    self.tasks.abort_all();
                    while self.tasks.join_next().await.is_some() {}
                }
            }
        }
        // Let a periodic commit under way land first, so it cannot overtake the final one.
        if let Some(commit) = self.commit.as_mut() {
            let landed = tokio::time::timeout_at(deadline, &mut commit.done)
                .await
                .ok();
            self.commit_finished(landed);
        }
        let points = lock(&self.marks).all_commits();
        if !points.is_empty() {
            // Even after a shutdown timeout, give the final commit a few seconds.
            let until = deadline.max(Instant::now() + FINAL_COMMIT_TIMEOUT);
            let done = commit_off_runtime(self.consumer.clone(), &points, &*self.events);
            match tokio::time::timeout_at(until, done).await {
                Ok(Ok(Ok(()))) => {
                    self.events.final_commit(points.len());
                    // Forget the partitions, so that leaving the group (which revokes them)
                    // does not commit them again.
                    let mut marks = lock(&self.marks);
                    for point in &points {
                        marks.revoke(&point.topic, point.partition);
                    }
                }
                Ok(Ok(Err(error))) => self.events.commit_failed(&format!("final commit: {error}")),
                _ => self
                    .events
                    .commit_failed("final commit: no answer from Kafka in time"),
            }
        }
        close_consumer(
            self.consumer,
            deadline.max(Instant::now() + CLOSE_TIMEOUT),
            &*self.events,
        )
        .await;
    }
}

/// What `message`'s headers say it is (see [`crate::record::wire`]).
fn read_envelope(
    message: &rdkafka::message::BorrowedMessage<'_>,
) -> Result<Envelope, EnvelopeError> {
    use rdkafka::message::Headers as _;
    match message.headers() {
        Some(headers) => wire::read(headers.iter().map(|header| (header.key, header.value))),
        None => wire::read([]),
    }
}

/// A synchronous commit under way on its own thread.
pub(super) struct InFlightCommit {
    points: Vec<CommitPoint>,
    done: oneshot::Receiver<KafkaResult<()>>,
}

/// Commits `points` synchronously on a thread of its own; the receiver gets the result.
fn commit_off_runtime(
    consumer: Arc<TransferConsumer>,
    points: &[CommitPoint],
    events: &dyn TransferEvents,
) -> oneshot::Receiver<KafkaResult<()>> {
    let list = commit_list(points);
    off_runtime("kafka-commit", events, move || {
        list.and_then(|list| consumer.commit(&list, CommitMode::Sync))
    })
}

/// Runs a librdkafka call that may block on the network on a plain thread: neither the async
/// runtime nor its shutdown waits for it (a detached thread does not keep the process alive).
/// If the thread cannot be started, the receiver reports a closed channel.
fn off_runtime<T: Send + 'static>(
    name: &str,
    events: &dyn TransferEvents,
    call: impl FnOnce() -> T + Send + 'static,
) -> oneshot::Receiver<T> {
    let (sender, receiver) = oneshot::channel();
    let spawned = std::thread::Builder::new()
        .name(name.to_string())
        .spawn(move || {
            let _ = sender.send(call());
        });
    if let Err(error) = spawned {
        events.thread_failed(name, &error.to_string());
    }
    receiver
}

/// Leaves the group and closes the consumer, waiting at most until `until` (closing blocks while
/// Kafka is unreachable; the offsets are committed already, so nothing depends on it).
async fn close_consumer(
    consumer: Arc<TransferConsumer>,
    until: Instant,
    events: &dyn TransferEvents,
) {
    let closed = off_runtime("kafka-close", events, move || drop(consumer));
    if tokio::time::timeout_at(until, closed).await.is_err() {
        events.close_abandoned();
    }
}
