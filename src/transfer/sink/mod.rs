//! What a sink of the transfer is, and the one delivery that drives any sink.
//!
//! A [`Sink`] says what it accepts (the entries of one of its batches), how it writes a group
//! of entries (one request), and what each answer means: **done** (written, or already there),
//! **retried** (later, after a backoff, without limit: overload, an outage, refused
//! credentials), or **refused for its content** — then written in another form if the sink
//! has one ([`Sink::fallbacks`]), else **dead-lettered**. A request refused as a whole for its
//! content is split ([`Delivery`] halves the group; one entry alone may split further with
//! [`Sink::split`]) until the culprit is alone.
//!
//! [`Delivery`] does the rest the same way for every sink: before each attempt it drops the
//! entries of partitions revoked meanwhile (their next owner consumes them again from the
//! committed offset), and it reports a Kafka record to the commit watermark only when every
//! entry made of it is done or dead-lettered — the one rule that makes delivery exactly once
//! (a record is committed only after its sink acknowledged it; a replay is recognised by the
//! sink: Elasticsearch's `create` answers 409, InfluxDB overwrites the same point).
//!
//! The consuming loop sees a sink only as a [`Route`]: the records of the kinds it takes go into
//! a batch of its own, and a full (or old enough) batch comes out as the task that delivers it.
//! A new sink is one module implementing [`Sink`] and [`Route`] beside [`elasticsearch`] and
//! [`influxdb`], plus its configuration section (and the line in `transfer::setup` that builds
//! its route from it).

pub mod elasticsearch;
pub mod influxdb;

use std::collections::VecDeque;
use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use super::batch::BatchLimits;
use super::dlq::Rejection;
use super::document::KafkaRecord;
use super::events::TransferEvents;
use super::watermark::{self, Epoch, Watermarks};
use crate::backoff::BackoffPolicy;
use crate::record::wire::Kind;

/// A sink as the consuming loop sees it: which records it takes, the batch it fills with them,
/// and the batch handed over as the task that delivers it. Records reach a route registered
/// with the commit watermark (`topic`, `epoch`); the route reports what it received to the
/// events.
pub trait Route: Send {
    /// Whether records of `kind` go to this sink.
    fn takes(&self, kind: Kind) -> bool;
    /// Adds a record of a kind it takes.
    fn push(&mut self, record: &KafkaRecord<'_>, key: Option<&[u8]>, topic: Arc<str>, epoch: Epoch);
    /// Adds a record to dead-letter for `reason` (a record of a later format or an unknown
    /// kind, or of a kind no sink of this transfer takes): the first route of the transfer
    /// receives those.
    fn push_dead(
        &mut self,
        record: &KafkaRecord<'_>,
        key: Option<&[u8]>,
        topic: Arc<str>,
        epoch: Epoch,
        reason: &str,
    );
    /// Whether the batch being filled holds nothing.
    fn is_empty(&self) -> bool;
    /// Whether the batch being filled reached `limits`' records or bytes.
    fn is_full(&self, limits: &BatchLimits) -> bool;
    /// When the batch being filled must go at the latest (`None` when empty).
    fn deadline(&self, limits: &BatchLimits) -> Option<Instant>;
    /// Takes the batch being filled out, as its delivery.
    fn take(&mut self) -> Outgoing;

    /// Whether the batch being filled must go now: full, or as old as `limits` allow.
    fn is_ready(&self, limits: &BatchLimits, now: Instant) -> bool {
        !self.is_empty()
            && (self.is_full(limits) || self.deadline(limits).is_some_and(|at| at <= now))
    }
}

/// A batch taken out of a [`Route`], waiting for a delivery slot.
pub struct Outgoing {
    /// Entries in it (what is left undelivered if the transfer stops first).
    pub entries: usize,
    /// Delivers it (see [`Delivery::deliver`]); nothing is sent before it is run.
    pub delivery: Pin<Box<dyn Future<Output = ()> + Send>>,
}

impl Outgoing {
    /// The delivery of `batch` by `delivery`, as a task to run on a slot.
    pub fn of<S: Sink>(delivery: &Arc<Delivery<S>>, batch: S::Batch, entries: usize) -> Outgoing {
        let delivery = delivery.clone();
        Outgoing {
            entries,
            delivery: Box::pin(async move { delivery.deliver(batch).await }),
        }
    }
}

/// Where a Kafka record of a batch came from: what the commit watermark needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordAt<'a> {
    /// Topic.
    pub topic: &'a str,
    /// Partition.
    pub partition: i32,
    /// The assignment the record was received in.
    pub epoch: Epoch,
    /// Offset.
    pub offset: i64,
}

/// What the sink made of one entry of a write.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    /// Written, or found already there: done.
    Done,
    /// Not written now: written again after a backoff.
    Retry,
    /// Refused for its content: written in another form if the sink has one, else
    /// dead-lettered.
    Reject(Rejection),
}

/// The answer to one write.
#[derive(Debug, Clone, PartialEq)]
pub enum Written {
    /// One outcome per entry written, in order.
    Each(Vec<Outcome>),
    /// The request failed as a whole and is made again after a backoff (unreachable,
    /// overloaded, credentials refused).
    Retry,
    /// The request was refused as a whole for its content: split until the culprit is alone,
    /// which is then rejected with this.
    Refused(Rejection),
}

/// Entries sorted by what happens next: written, or dead-lettered with why.
#[derive(Debug)]
pub struct Sorted<E> {
    /// To write.
    pub write: Vec<E>,
    /// To dead-letter.
    pub dead: Vec<(E, Rejection)>,
}

/// A destination of records. The sink reports its own events (what it wrote, why it retries)
/// to the transfer's events; [`Delivery`] calls it and keeps the books.
pub trait Sink: Send + Sync + 'static {
    /// What the sink accepts: records collected for one delivery.
    type Batch: Send + Sync + 'static;
    /// A part of a batch written or refused on its own (a document, a group of points).
    type Entry: Send + Sync + 'static;

    /// The Kafka records of `batch` (indexed from 0).
    fn records(&self, batch: &Self::Batch) -> usize;
    /// Where record `item` of `batch` came from.
    fn record_at<'b>(&self, batch: &'b Self::Batch, item: usize) -> RecordAt<'b>;
    /// The record an entry was made of.
    fn item_of(&self, entry: &Self::Entry) -> usize;
    /// The entries of `batch` to write, and those refused before any write (they go straight
    /// to the dead letters). A record with no entry at all is done at once.
    fn entries(&self, batch: &Self::Batch) -> Sorted<Self::Entry>;
    /// Writes `entries` of `batch` once (one request).
    fn write(
        &self,
        batch: &Self::Batch,
        entries: &[Self::Entry],
    ) -> impl Future<Output = Written> + Send;
    /// Smaller entries for one entry refused as a whole request, or `None` when it cannot be
    /// split (it is then rejected).
    fn split(&self, batch: &Self::Batch, entry: &Self::Entry) -> Option<Vec<Self::Entry>>;
    /// Entries refused for their content, after the first round: those written again in
    /// another form, and those dead-lettered. Called once per delivery.
    fn fallbacks(
        &self,
        batch: &Self::Batch,
        rejected: Vec<(Self::Entry, Rejection)>,
    ) -> Sorted<Self::Entry>;
    /// Writes the dead letters of `letters` once; `true` for each one acknowledged.
    fn dead_letter(
        &self,
        batch: &Self::Batch,
        letters: &[(Self::Entry, Rejection)],
    ) -> impl Future<Output = Vec<bool>> + Send;
}

/// Drives a sink: delivers each batch until every record of it is done or belongs to a revoked
/// partition, and reports done records to the commit watermark. Shared by all bulk tasks.
pub struct Delivery<S: Sink> {
    sink: S,
    marks: Arc<Mutex<Watermarks>>,
    events: Arc<dyn TransferEvents>,
    backoff: BackoffPolicy,
}

/// Entries still owed per record of one batch; a record is done when it reaches 0.
struct Owed(Vec<usize>);

impl<S: Sink> Delivery<S> {
    /// Delivers to `sink`, reporting done records to `marks`, retrying with `backoff`.
    pub fn new(
        sink: S,
        marks: Arc<Mutex<Watermarks>>,
        events: Arc<dyn TransferEvents>,
        backoff: BackoffPolicy,
    ) -> Delivery<S> {
        Delivery {
            sink,
            marks,
            events,
            backoff,
        }
    }

    /// The sink driven.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// Delivers `batch`: returns once every record in it is done or belongs to a revoked
    /// partition. Never gives up otherwise (the caller bounds it at shutdown).
    pub async fn deliver(&self, batch: S::Batch) {
        let Sorted {
            write: entries,
            mut dead,
        } = self.sink.entries(&batch);
        let mut owed = Owed(vec![0; self.sink.records(&batch)]);
        for entry in entries.iter().chain(dead.iter().map(|(entry, _)| entry)) {
            if let Some(count) = owed.0.get_mut(self.sink.item_of(entry)) {
                *count += 1;
            }
        }
        let nothing_owed: Vec<usize> = (0..owed.0.len()).filter(|&i| owed.0[i] == 0).collect();
        self.mark_done(&batch, nothing_owed);
        let mut rejected = Vec::new();
        if !entries.is_empty() {
            self.write_all(&batch, entries, &mut owed, &mut rejected)
                .await;
        }
        if !rejected.is_empty() {
            let Sorted {
                write: again,
                dead: refused,
            } = self.sink.fallbacks(&batch, rejected);
            dead.extend(refused);
            if !again.is_empty() {
                let mut rejected = Vec::new();
                self.write_all(&batch, again, &mut owed, &mut rejected)
                    .await;
                dead.extend(rejected);
            }
        }
        if !dead.is_empty() {
            self.dead_letter(&batch, dead, &mut owed).await;
        }
    }

    /// Writes `entries` until each is done or refused for its content (into `rejected`).
    async fn write_all(
        &self,
        batch: &S::Batch,
        entries: Vec<S::Entry>,
        owed: &mut Owed,
        rejected: &mut Vec<(S::Entry, Rejection)>,
    ) {
        let mut queue = VecDeque::from([entries]);
        let mut backoff = self.backoff.start();
        while let Some(mut group) = queue.pop_front() {
            self.retain_assigned(batch, &mut group, |entry| entry);
            if group.is_empty() {
                continue;
            }
            match self.sink.write(batch, &group).await {
                Written::Each(outcomes) => {
                    let mut done = Vec::new();
                    let mut retry = Vec::new();
                    // An entry the sink gave no outcome for is written again.
                    let outcomes = outcomes
                        .into_iter()
                        .chain(std::iter::repeat_with(|| Outcome::Retry));
                    for (entry, outcome) in group.into_iter().zip(outcomes) {
                        match outcome {
                            Outcome::Done => done.push(entry),
                            Outcome::Retry => retry.push(entry),
                            Outcome::Reject(rejection) => rejected.push((entry, rejection)),
                        }
                    }
                    self.settle(batch, owed, done.iter());
                    if retry.is_empty() {
                        backoff.reset();
                    } else {
                        tokio::time::sleep(backoff.next_delay()).await;
                        queue.push_back(retry);
                    }
                }
                Written::Retry => {
                    tokio::time::sleep(backoff.next_delay()).await;
                    queue.push_front(group);
                }
                Written::Refused(_) if group.len() > 1 => {
                    let second = group.split_off(group.len() / 2);
                    queue.push_front(second);
                    queue.push_front(group);
                }
                Written::Refused(rejection) => {
                    let Some(entry) = group.pop() else {
                        continue;
                    };
                    match self.sink.split(batch, &entry) {
                        Some(parts) if parts.len() > 1 => {
                            if let Some(count) = owed.0.get_mut(self.sink.item_of(&entry)) {
                                *count += parts.len() - 1;
                            }
                            queue.push_front(parts);
                        }
                        _ => rejected.push((entry, rejection)),
                    }
                }
            }
        }
    }

    /// Writes the dead letters of `letters` until all are acknowledged (or their partition was
    /// revoked); each acknowledged one is done.
    async fn dead_letter(
        &self,
        batch: &S::Batch,
        letters: Vec<(S::Entry, Rejection)>,
        owed: &mut Owed,
    ) {
        let mut pending = letters;
        let mut backoff = self.backoff.start();
        loop {
            self.retain_assigned(batch, &mut pending, |(entry, _)| entry);
            if pending.is_empty() {
                return;
            }
            let acknowledged = self.sink.dead_letter(batch, &pending).await;
            let mut still = Vec::new();
            let mut done = Vec::new();
            for (i, letter) in pending.into_iter().enumerate() {
                if acknowledged.get(i).copied().unwrap_or(false) {
                    done.push(letter.0);
                } else {
                    still.push(letter);
                }
            }
            self.settle(batch, owed, done.iter());
            pending = still;
            if !pending.is_empty() {
                tokio::time::sleep(backoff.next_delay()).await;
            }
        }
    }

    /// Counts `done` entries off their records; reports the records now complete.
    fn settle<'e>(
        &self,
        batch: &S::Batch,
        owed: &mut Owed,
        done: impl Iterator<Item = &'e S::Entry>,
    ) {
        let mut complete = Vec::new();
        for entry in done {
            let item = self.sink.item_of(entry);
            if let Some(count) = owed.0.get_mut(item) {
                *count = count.saturating_sub(1);
                if *count == 0 {
                    complete.push(item);
                }
            }
        }
        self.mark_done(batch, complete);
    }

    /// Keeps the entries whose record's partition is still assigned in the epoch it was
    /// received in; `entry` finds the entry in an element.
    fn retain_assigned<T>(
        &self,
        batch: &S::Batch,
        elements: &mut Vec<T>,
        entry: impl Fn(&T) -> &S::Entry,
    ) {
        let dropped = watermark::retain_current(&self.marks, elements, |element| {
            let at = self
                .sink
                .record_at(batch, self.sink.item_of(entry(element)));
            (at.topic, at.partition, at.epoch)
        });
        if dropped > 0 {
            self.events.revoked_dropped(dropped);
        }
    }

    fn mark_done(&self, batch: &S::Batch, items: Vec<usize>) {
        if items.is_empty() {
            return;
        }
        let stale = watermark::mark_done(
            &self.marks,
            items.into_iter().map(|item| {
                let at = self.sink.record_at(batch, item);
                (at.topic, at.partition, at.epoch, at.offset)
            }),
        );
        if stale > 0 {
            self.events.revoked_dropped(stale);
        }
    }
}

#[cfg(test)]
mod tests {
    //! The delivery's rules through the trait, with a scripted in-process sink (pure logic: the
    //! real sinks are tested against their servers in `elasticsearch` and `tests/`).

    use std::collections::HashMap;
    use std::time::Duration;

    use super::*;
    use crate::sync::lock;
    use crate::transfer::events::Counters;

    /// An entry: record `item`, part `part` (0 = the whole record), `fallback` form or not.
    #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
    struct Part {
        item: usize,
        part: u8,
        fallback: bool,
    }

    fn whole(item: usize) -> Part {
        Part {
            item,
            part: 0,
            fallback: false,
        }
    }

    /// What the scripted sink answers.
    #[derive(Default)]
    struct Script {
        /// Per entry, answers to give in turn (then `Done`).
        answers: HashMap<Part, VecDeque<Outcome>>,
        /// Whole-request answers to give in turn before the per-entry ones.
        requests: VecDeque<Written>,
        /// Entries refusing any request they are in, until alone (then rejected).
        poison: Vec<Part>,
        /// Records that split into parts 1 and 2 when refused alone.
        splits: Vec<usize>,
        /// Records with a fallback form.
        fallbacks: Vec<usize>,
        /// Records refused before any write.
        refused_at_once: Vec<usize>,
        /// Dead letters failing this many times before they are acknowledged.
        dead_letter_failures: usize,
        /// Records in the batch with no entry.
        empty: Vec<usize>,
    }

    #[derive(Default)]
    struct Seen {
        writes: Vec<Vec<Part>>,
        dead_letters: Vec<Vec<Part>>,
    }

    struct Scripted {
        script: Mutex<Script>,
        seen: Mutex<Seen>,
    }

    /// A batch: the offsets of records 0.. on partition 0 of topic `t`, or 1 for odd records
    /// when `two_partitions`.
    struct Records {
        epochs: [Epoch; 2],
        count: usize,
        two_partitions: bool,
    }

    fn rejection(why: &str) -> Rejection {
        Rejection {
            error: why.into(),
            error_type: None,
            status: Some(400),
        }
    }

    impl Sink for Scripted {
        type Batch = Records;
        type Entry = Part;

        fn records(&self, batch: &Records) -> usize {
            batch.count
        }

        fn record_at<'b>(&self, batch: &'b Records, item: usize) -> RecordAt<'b> {
            let partition = if batch.two_partitions { item % 2 } else { 0 };
            RecordAt {
                topic: "t",
                partition: partition as i32,
                epoch: batch.epochs[partition],
                offset: if batch.two_partitions { item / 2 } else { item } as i64,
            }
        }

        fn item_of(&self, entry: &Part) -> usize {
            entry.item
        }

        fn entries(&self, batch: &Records) -> Sorted<Part> {
            let script = lock(&self.script);
            let mut sorted = Sorted {
                write: Vec::new(),
                dead: Vec::new(),
            };
            for item in (0..batch.count).filter(|item| !script.empty.contains(item)) {
                if script.refused_at_once.contains(&item) {
                    sorted.dead.push((whole(item), rejection("no index")));
                } else {
                    sorted.write.push(whole(item));
                }
            }
            sorted
        }

        async fn write(&self, _batch: &Records, entries: &[Part]) -> Written {
            lock(&self.seen).writes.push(entries.to_vec());
            let mut script = lock(&self.script);
            if let Some(answer) = script.requests.pop_front() {
                return answer;
            }
            if script.poison.iter().any(|bad| entries.contains(bad)) {
                return Written::Refused(rejection("poison"));
            }
            Written::Each(
                entries
                    .iter()
                    .map(|entry| {
                        script
                            .answers
                            .get_mut(entry)
                            .and_then(VecDeque::pop_front)
                            .unwrap_or(Outcome::Done)
                    })
                    .collect(),
            )
        }

        fn split(&self, _batch: &Records, entry: &Part) -> Option<Vec<Part>> {
            let script = lock(&self.script);
            (entry.part == 0 && script.splits.contains(&entry.item)).then(|| {
                (1..=2)
                    .map(|part| Part {
                        item: entry.item,
                        part,
                        fallback: false,
                    })
                    .collect()
            })
        }

        fn fallbacks(&self, _batch: &Records, rejected: Vec<(Part, Rejection)>) -> Sorted<Part> {
            let script = lock(&self.script);
            let mut sorted = Sorted {
                write: Vec::new(),
                dead: Vec::new(),
            };
            for (entry, rejection) in rejected {
                if !entry.fallback && script.fallbacks.contains(&entry.item) {
                    sorted.write.push(Part {
                        fallback: true,
                        ..entry
                    });
                } else {
                    sorted.dead.push((entry, rejection));
                }
            }
            sorted
        }

        async fn dead_letter(&self, _batch: &Records, letters: &[(Part, Rejection)]) -> Vec<bool> {
            lock(&self.seen)
                .dead_letters
                .push(letters.iter().map(|(entry, _)| *entry).collect());
            let mut script = lock(&self.script);
            if script.dead_letter_failures > 0 {
                script.dead_letter_failures -= 1;
                return vec![false; letters.len()];
            }
            vec![true; letters.len()]
        }
    }

    struct Run {
        marks: Arc<Mutex<Watermarks>>,
        seen: Seen,
        counters: Arc<Counters>,
    }

    impl Run {
        /// The commit point of partition `p` (the next offset to consume).
        fn committed(&self, partition: i32) -> Option<i64> {
            watermark::lock(&self.marks).commit_point("t", partition)
        }

        fn outstanding(&self) -> usize {
            watermark::lock(&self.marks).outstanding()
        }
    }

    /// Delivers `count` records (all received) through a sink following `script`; with
    /// `revoke`, partition 1 is revoked before delivery starts.
    async fn deliver(count: usize, two_partitions: bool, script: Script, revoke: bool) -> Run {
        let marks = Arc::new(Mutex::new(Watermarks::new()));
        let epochs = {
            let mut marks = watermark::lock(&marks);
            let epochs = [marks.assign("t", 0), marks.assign("t", 1)];
            for item in 0..count {
                let partition = if two_partitions { item % 2 } else { 0 };
                let offset = if two_partitions { item / 2 } else { item };
                marks.received("t", partition as i32, offset as i64);
            }
            if revoke {
                marks.revoke("t", 1);
            }
            epochs
        };
        let counters = Arc::new(Counters::default());
        let sink = Scripted {
            script: Mutex::new(script),
            seen: Mutex::new(Seen::default()),
        };
        let delivery = Delivery::new(
            sink,
            marks.clone(),
            counters.clone(),
            BackoffPolicy::new(Duration::from_millis(1), Duration::from_millis(2)),
        );
        let batch = Records {
            epochs,
            count,
            two_partitions,
        };
        tokio::time::timeout(Duration::from_secs(20), delivery.deliver(batch))
            .await
            .expect("delivery finished");
        let seen = std::mem::take(&mut *lock(&delivery.sink().seen));
        Run {
            marks,
            seen,
            counters,
        }
    }

    #[tokio::test]
    async fn done_entries_complete_their_records_in_one_write() {
        let run = deliver(4, false, Script::default(), false).await;
        assert_eq!(run.seen.writes, vec![(0..4).map(whole).collect::<Vec<_>>()]);
        assert_eq!(run.committed(0), Some(4));
        assert_eq!(run.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_retried_entry_is_written_again_alone_and_holds_its_record_until_done() {
        let mut script = Script::default();
        script
            .answers
            .insert(whole(2), VecDeque::from([Outcome::Retry, Outcome::Retry]));
        let run = deliver(4, false, script, false).await;
        assert_eq!(run.seen.writes.len(), 3);
        assert_eq!(run.seen.writes[1], vec![whole(2)]);
        assert_eq!(run.seen.writes[2], vec![whole(2)]);
        assert_eq!(run.committed(0), Some(4));
        assert!(run.seen.dead_letters.is_empty());
    }

    #[tokio::test]
    async fn a_request_retried_as_a_whole_is_made_again_with_every_entry() {
        let script = Script {
            requests: VecDeque::from([Written::Retry, Written::Retry]),
            ..Script::default()
        };
        let run = deliver(3, false, script, false).await;
        assert_eq!(run.seen.writes.len(), 3);
        assert!(run.seen.writes.iter().all(|w| w.len() == 3));
        assert_eq!(run.committed(0), Some(3));
    }

    #[tokio::test]
    async fn a_rejected_entry_with_a_fallback_form_is_written_in_it_and_done() {
        let mut script = Script::default();
        script.answers.insert(
            whole(1),
            VecDeque::from([Outcome::Reject(rejection("mapping"))]),
        );
        script.fallbacks.push(1);
        let run = deliver(3, false, script, false).await;
        let fallback = Part {
            fallback: true,
            ..whole(1)
        };
        assert_eq!(run.seen.writes.last(), Some(&vec![fallback]));
        assert!(run.seen.dead_letters.is_empty());
        assert_eq!(run.committed(0), Some(3));
    }

    #[tokio::test]
    async fn a_rejected_entry_is_done_only_once_its_dead_letter_is_acknowledged() {
        let mut script = Script::default();
        let fallback = Part {
            fallback: true,
            ..whole(0)
        };
        script.answers.insert(
            whole(0),
            VecDeque::from([Outcome::Reject(rejection("mapping"))]),
        );
        // Its fallback form is refused too; record 2 is refused before any write.
        script.fallbacks.push(0);
        script.answers.insert(
            fallback,
            VecDeque::from([Outcome::Reject(rejection("again"))]),
        );
        script.refused_at_once.push(2);
        script.dead_letter_failures = 2;
        let run = deliver(3, false, script, false).await;
        assert_eq!(
            run.seen.dead_letters.len(),
            3,
            "two failures, then acknowledged"
        );
        let mut letters = run.seen.dead_letters[2].clone();
        letters.sort_by_key(|part| part.item);
        assert_eq!(letters, vec![fallback, whole(2)]);
        assert_eq!(run.committed(0), Some(3));
        assert_eq!(run.outstanding(), 0);
    }

    #[tokio::test]
    async fn a_refused_request_is_split_until_the_culprit_is_alone_then_its_parts() {
        // Record 2 refuses every request it is in; alone it splits into parts 1 and 2, and
        // part 2 refuses too: only that part is dead-lettered.
        let script = Script {
            poison: vec![
                whole(2),
                Part {
                    item: 2,
                    part: 2,
                    fallback: false,
                },
            ],
            splits: vec![2],
            ..Script::default()
        };
        let run = deliver(4, false, script, false).await;
        let sizes: Vec<usize> = run.seen.writes.iter().map(Vec::len).collect();
        // [0..4] refused → [0,1] written, [2,3] refused → [2] refused alone → its parts
        // [2.1,2.2] refused → [2.1] written, [2.2] refused alone (dead) → then [3] written.
        assert_eq!(sizes, vec![4, 2, 2, 1, 2, 1, 1, 1]);
        let dead: Vec<Part> = run.seen.dead_letters.concat();
        assert_eq!(
            dead,
            vec![Part {
                item: 2,
                part: 2,
                fallback: false
            }]
        );
        assert_eq!(run.committed(0), Some(4));
        assert_eq!(run.outstanding(), 0);
    }

    #[tokio::test]
    async fn entries_of_a_revoked_partition_are_neither_written_nor_done() {
        let run = deliver(6, true, Script::default(), true).await;
        let written: Vec<Part> = run.seen.writes.concat();
        assert_eq!(written, vec![whole(0), whole(2), whole(4)]);
        assert_eq!(run.committed(0), Some(3));
        assert_eq!(run.committed(1), None, "revoked");
        assert_eq!(
            run.counters
                .revoked_dropped
                .load(std::sync::atomic::Ordering::Relaxed),
            3
        );
    }

    #[tokio::test]
    async fn a_record_without_entries_is_done_at_once_and_one_still_owed_holds_the_commit() {
        let mut script = Script::default();
        script.empty.push(0);
        script
            .answers
            .insert(whole(1), VecDeque::from([Outcome::Retry]));
        let run = deliver(2, false, script, false).await;
        assert!(run.seen.writes.iter().all(|w| !w.contains(&whole(0))));
        assert_eq!(run.committed(0), Some(2));
    }
}
