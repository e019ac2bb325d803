//! The commit watermark: which Kafka offset may be committed for each partition.
//!
//! The rule it enforces: the committed offset of a partition never passes a record that is not
//! done (acknowledged by Elasticsearch, or written to the dead-letter index). Records are
//! registered when they are received ([`Watermarks::received`]) and marked done in any order
//! ([`Watermarks::done`]), since several bulk requests are in flight at once and finish in any
//! order. The commit point is the offset of the lowest record not yet done, or, when every
//! received record is done, one past the highest received offset — Kafka's meaning of a
//! committed offset ("the next record to read"). Gaps between offsets (compaction, transaction
//! markers) are fine: only received records count.
//!
//! Each assignment of a partition gets a fresh [`Epoch`]. When a partition is revoked, its state
//! is dropped, and completions that still arrive for the old epoch are ignored: the work belongs
//! to the partition's next owner now, which starts again from the committed offset (and the
//! deterministic ids make the repeat harmless).
//!
//! This module knows nothing of Kafka or Elasticsearch; it is plain bookkeeping, unit- and
//! property-tested.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

/// Locks watermarks shared between the consuming loop, the bulk tasks and the rebalance hooks —
/// also after a panic elsewhere: no method leaves them half-updated before it could panic.
pub fn lock(marks: &Mutex<Watermarks>) -> MutexGuard<'_, Watermarks> {
    crate::sync::lock(marks)
}

/// Keeps the `entries` whose record (`record(entry)`: topic, partition, epoch received in) is
/// still assigned in that epoch; returns how many were dropped.
pub fn retain_current<'a, T>(
    marks: &Mutex<Watermarks>,
    entries: &mut Vec<T>,
    record: impl Fn(&T) -> (&'a str, i32, Epoch),
) -> u64 {
    let before = entries.len();
    let marks = lock(marks);
    entries.retain(|entry| {
        let (topic, partition, epoch) = record(entry);
        marks.is_current(topic, partition, epoch)
    });
    (before - entries.len()) as u64
}

/// Reports every record (topic, partition, epoch, offset) done; returns how many belonged to an
/// assignment since revoked (their completion is ignored).
pub fn mark_done<'a>(
    marks: &Mutex<Watermarks>,
    records: impl IntoIterator<Item = (&'a str, i32, Epoch, i64)>,
) -> u64 {
    let mut marks = lock(marks);
    records
        .into_iter()
        .filter(|&(topic, partition, epoch, offset)| !marks.done(topic, partition, epoch, offset))
        .count() as u64
}

/// Identifies one assignment of one partition to this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Epoch(u64);

#[derive(Debug)]
struct PartitionState {
    epoch: Epoch,
    /// Received offsets not done yet, with how many times each was received (a re-fetch of the
    /// same offset counts twice and must be done twice).
    outstanding: BTreeMap<i64, u32>,
    /// Highest offset received in this epoch.
    highest: Option<i64>,
    /// The commit point last handed out by [`Watermarks::take_commits`].
    handed_out: Option<i64>,
}

impl PartitionState {
    fn commit_point(&self) -> Option<i64> {
        match self.outstanding.first_key_value() {
            Some((&lowest, _)) => Some(lowest),
            None => self.highest.map(|h| h + 1),
        }
    }
}

/// One commit to make: the next offset to read for `topic`/`partition`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CommitPoint {
    /// Topic.
    pub topic: Arc<str>,
    /// Partition.
    pub partition: i32,
    /// Offset to commit (the lowest offset not done).
    pub offset: i64,
}

#[derive(Debug)]
struct TopicState {
    /// The interned name, handed to callers so records need not carry their own copy.
    name: Arc<str>,
    partitions: HashMap<i32, PartitionState>,
}

/// Commit watermarks of every partition assigned to this process.
#[derive(Debug, Default)]
pub struct Watermarks {
    topics: HashMap<Arc<str>, TopicState>,
    next_epoch: u64,
}

impl Watermarks {
    /// No partition assigned.
    pub fn new() -> Watermarks {
        Watermarks::default()
    }

    /// Starts tracking `topic`/`partition` with a new epoch (replacing any earlier state).
    pub fn assign(&mut self, topic: &str, partition: i32) -> Epoch {
        self.next_epoch += 1;
        let epoch = Epoch(self.next_epoch);
        let state = PartitionState {
            epoch,
            outstanding: BTreeMap::new(),
            highest: None,
            handed_out: None,
        };
        match self.topics.get_mut(topic) {
            Some(topic_state) => {
                topic_state.partitions.insert(partition, state);
            }
            None => {
                let name: Arc<str> = Arc::from(topic);
                self.topics.insert(
                    name.clone(),
                    TopicState {
                        name,
                        partitions: HashMap::from([(partition, state)]),
                    },
                );
            }
        }
        epoch
    }

    /// Stops tracking `topic`/`partition` and returns its last commit point (if any record was
    /// received). Later completions for it are ignored.
    pub fn revoke(&mut self, topic: &str, partition: i32) -> Option<CommitPoint> {
        let topic_state = self.topics.get_mut(topic)?;
        let state = topic_state.partitions.remove(&partition)?;
        let point = state.commit_point().map(|offset| CommitPoint {
            topic: topic_state.name.clone(),
            partition,
            offset,
        });
        if topic_state.partitions.is_empty() {
            self.topics.remove(topic);
        }
        point
    }

    /// Registers a received record. Returns the interned topic name and the current epoch, or
    /// `None` if the partition is not assigned (the record must then be dropped: it belongs to
    /// another owner).
    pub fn received(
        &mut self,
        topic: &str,
        partition: i32,
        offset: i64,
    ) -> Option<(Arc<str>, Epoch)> {
        let topic_state = self.topics.get_mut(topic)?;
        let state = topic_state.partitions.get_mut(&partition)?;
        *state.outstanding.entry(offset).or_insert(0) += 1;
        state.highest = Some(state.highest.map_or(offset, |h| h.max(offset)));
        Some((topic_state.name.clone(), state.epoch))
    }

    /// Registers `times` more receptions of the record at `offset`, already registered by
    /// [`Watermarks::received`]: a record that became several documents is outstanding until
    /// each of them is [done](Watermarks::done). Does nothing if the partition is not assigned.
    pub fn received_again(&mut self, topic: &str, partition: i32, offset: i64, times: usize) {
        let state = self
            .topics
            .get_mut(topic)
            .and_then(|topic_state| topic_state.partitions.get_mut(&partition));
        if let Some(state) = state {
            let count = state.outstanding.entry(offset).or_insert(0);
            *count = count.saturating_add(u32::try_from(times).unwrap_or(u32::MAX));
        }
    }

    /// Whether `epoch` is still the current assignment of `topic`/`partition`.
    pub fn is_current(&self, topic: &str, partition: i32, epoch: Epoch) -> bool {
        self.state(topic, partition)
            .is_some_and(|state| state.epoch == epoch)
    }

    /// Marks the record at `offset` (received in `epoch`) done. Returns false, changing nothing,
    /// when the epoch is no longer current or the record is not outstanding.
    pub fn done(&mut self, topic: &str, partition: i32, epoch: Epoch, offset: i64) -> bool {
        let Some(state) = self
            .topics
            .get_mut(topic)
            .and_then(|topic_state| topic_state.partitions.get_mut(&partition))
        else {
            return false;
        };
        if state.epoch != epoch {
            return false;
        }
        match state.outstanding.get_mut(&offset) {
            Some(count) if *count > 1 => {
                *count -= 1;
                true
            }
            Some(_) => {
                state.outstanding.remove(&offset);
                true
            }
            None => false,
        }
    }

    /// The commit point of `topic`/`partition`, if it is assigned and received anything.
    pub fn commit_point(&self, topic: &str, partition: i32) -> Option<i64> {
        self.state(topic, partition)?.commit_point()
    }

    /// The commit points that moved since they were last handed out, marking them handed out.
    pub fn take_commits(&mut self) -> Vec<CommitPoint> {
        let mut commits = Vec::new();
        for topic_state in self.topics.values_mut() {
            for (&partition, state) in topic_state.partitions.iter_mut() {
                if let Some(offset) = state.commit_point() {
                    if state.handed_out != Some(offset) {
                        state.handed_out = Some(offset);
                        commits.push(CommitPoint {
                            topic: topic_state.name.clone(),
                            partition,
                            offset,
                        });
                    }
                }
            }
        }
        commits
    }

    /// Every assigned partition's commit point, handed out or not (for the final commit).
    pub fn all_commits(&self) -> Vec<CommitPoint> {
        let mut commits = Vec::new();
        for topic_state in self.topics.values() {
            for (&partition, state) in &topic_state.partitions {
                if let Some(offset) = state.commit_point() {
                    commits.push(CommitPoint {
                        topic: topic_state.name.clone(),
                        partition,
                        offset,
                    });
                }
            }
        }
        commits
    }

    /// A commit handed out by [`Watermarks::take_commits`] failed: hand it out again next time.
    pub fn commit_failed(&mut self, topic: &str, partition: i32, offset: i64) {
        if let Some(state) = self
            .topics
            .get_mut(topic)
            .and_then(|topic_state| topic_state.partitions.get_mut(&partition))
        {
            if state.handed_out == Some(offset) {
                state.handed_out = None;
            }
        }
    }

    /// Number of received records not done yet, over all partitions.
    pub fn outstanding(&self) -> usize {
        self.topics
            .values()
            .flat_map(|topic_state| topic_state.partitions.values())
            .map(|state| {
                state
                    .outstanding
                    .values()
                    .map(|&c| c as usize)
                    .sum::<usize>()
            })
            .sum()
    }

    fn state(&self, topic: &str, partition: i32) -> Option<&PartitionState> {
        self.topics.get(topic)?.partitions.get(&partition)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn commit_point_is_the_lowest_unfinished_offset() {
        let mut marks = Watermarks::new();
        let epoch = marks.assign("t", 0);
        assert_eq!(marks.commit_point("t", 0), None);
        for offset in [10, 11, 13] {
            marks.received("t", 0, offset).unwrap();
        }
        assert_eq!(marks.commit_point("t", 0), Some(10));
        assert!(marks.done("t", 0, epoch, 11));
        assert_eq!(marks.commit_point("t", 0), Some(10));
        assert!(marks.done("t", 0, epoch, 10));
        assert_eq!(marks.commit_point("t", 0), Some(13));
        assert!(marks.done("t", 0, epoch, 13));
        // All done: one past the highest (the gap at 12 never existed).
        assert_eq!(marks.commit_point("t", 0), Some(14));
        assert!(!marks.done("t", 0, epoch, 13), "done twice is refused");
    }

    #[test]
    fn unassigned_partitions_receive_nothing() {
        let mut marks = Watermarks::new();
        assert!(marks.received("t", 0, 1).is_none());
        marks.assign("t", 0);
        assert!(marks.received("t", 1, 1).is_none());
        assert!(marks.received("u", 0, 1).is_none());
    }

    #[test]
    fn completions_of_a_revoked_epoch_are_ignored() {
        let mut marks = Watermarks::new();
        let old = marks.assign("t", 0);
        marks.received("t", 0, 5).unwrap();
        marks.received("t", 0, 6).unwrap();
        assert!(marks.done("t", 0, old, 5));
        let last = marks.revoke("t", 0).unwrap();
        assert_eq!(last.offset, 6);
        assert!(!marks.done("t", 0, old, 6));
        // Reassigned: the new owner (maybe us again) starts from the commit.
        let new = marks.assign("t", 0);
        assert_ne!(old, new);
        marks.received("t", 0, 6).unwrap();
        assert!(!marks.is_current("t", 0, old));
        assert!(
            !marks.done("t", 0, old, 6),
            "old epoch must not finish new work"
        );
        assert_eq!(marks.commit_point("t", 0), Some(6));
        assert!(marks.done("t", 0, new, 6));
        assert_eq!(marks.commit_point("t", 0), Some(7));
    }

    #[test]
    fn take_commits_hands_out_moves_once_and_again_after_failure() {
        let mut marks = Watermarks::new();
        let epoch = marks.assign("t", 3);
        marks.received("t", 3, 0).unwrap();
        assert_eq!(
            marks.take_commits().len(),
            1,
            "offset 0 (nothing done) is a commit too"
        );
        assert!(marks.take_commits().is_empty());
        marks.done("t", 3, epoch, 0);
        let commits = marks.take_commits();
        assert_eq!(commits[0].offset, 1);
        assert!(marks.take_commits().is_empty());
        marks.commit_failed("t", 3, 1);
        assert_eq!(marks.take_commits()[0].offset, 1);
        assert_eq!(marks.all_commits().len(), 1);
    }

    #[test]
    fn a_refetched_offset_must_be_done_as_often_as_received() {
        let mut marks = Watermarks::new();
        let epoch = marks.assign("t", 0);
        marks.received("t", 0, 1).unwrap();
        marks.received("t", 0, 1).unwrap();
        assert_eq!(marks.outstanding(), 2);
        assert!(marks.done("t", 0, epoch, 1));
        assert_eq!(marks.commit_point("t", 0), Some(1));
        assert!(marks.done("t", 0, epoch, 1));
        assert_eq!(marks.commit_point("t", 0), Some(2));
    }

    #[test]
    fn a_record_of_several_documents_is_done_only_with_the_last() {
        let mut marks = Watermarks::new();
        let epoch = marks.assign("t", 0);
        marks.received("t", 0, 5).unwrap();
        marks.received_again("t", 0, 5, 2);
        for _ in 0..2 {
            assert!(marks.done("t", 0, epoch, 5));
            assert_eq!(marks.commit_point("t", 0), Some(5));
        }
        assert!(marks.done("t", 0, epoch, 5));
        assert_eq!(marks.commit_point("t", 0), Some(6));
        // Not assigned: nothing is registered.
        marks.received_again("u", 0, 5, 2);
        assert_eq!(marks.outstanding(), 0);
    }

    /// A generated run: records over a few partitions with gaps in their offsets, cut into
    /// batches in arrival order (batches mix partitions, as the transfer's do), completed in a
    /// random order.
    fn scenario() -> impl Strategy<Value = (Vec<(i32, i64)>, Vec<usize>, Vec<usize>)> {
        (1usize..200, 1i32..4).prop_flat_map(|(count, partitions)| {
            (
                proptest::collection::vec((0..partitions, 1i64..4), count),
                proptest::collection::vec(1usize..20, count),
            )
                .prop_flat_map(move |(steps, cuts)| {
                    // Records in arrival order with increasing offsets per partition.
                    let mut next = [0i64; 4];
                    let records: Vec<(i32, i64)> = steps
                        .iter()
                        .map(|&(p, gap)| {
                            next[p as usize] += gap;
                            (p, next[p as usize])
                        })
                        .collect();
                    let mut sizes = Vec::new();
                    let mut left = records.len();
                    for cut in cuts {
                        if left == 0 {
                            break;
                        }
                        let size = cut.min(left);
                        sizes.push(size);
                        left -= size;
                    }
                    let order: Vec<usize> = (0..sizes.len()).collect();
                    (Just(records), Just(sizes), Just(order).prop_shuffle())
                })
        })
    }

    proptest! {
        #[test]
        fn no_completion_order_commits_past_an_unfinished_record(
            (records, sizes, order) in scenario()
        ) {
            let mut marks = Watermarks::new();
            let mut epochs = HashMap::new();
            for p in 0..4 {
                epochs.insert(p, marks.assign("t", p));
            }
            let mut batches: Vec<Vec<(i32, i64)>> = Vec::new();
            let mut iter = records.iter().copied();
            for size in &sizes {
                let batch: Vec<(i32, i64)> = iter.by_ref().take(*size).collect();
                for &(p, o) in &batch {
                    marks.received("t", p, o).unwrap();
                }
                batches.push(batch);
            }
            let mut finished = vec![false; batches.len()];
            for &index in &order {
                for &(p, o) in &batches[index] {
                    prop_assert!(marks.done("t", p, epochs[&p], o));
                }
                finished[index] = true;
                for p in 0..4 {
                    let unfinished_min = batches
                        .iter()
                        .zip(&finished)
                        .filter(|(_, f)| !**f)
                        .flat_map(|(b, _)| b.iter())
                        .filter(|(bp, _)| *bp == p)
                        .map(|(_, o)| *o)
                        .min();
                    if let (Some(point), Some(lowest)) = (marks.commit_point("t", p), unfinished_min) {
                        prop_assert!(point <= lowest,
                            "partition {} commit {} passes unfinished {}", p, point, lowest);
                    }
                }
            }
            // Everything done: each partition commits one past its highest offset.
            for p in 0..4 {
                let highest = records.iter().filter(|(rp, _)| *rp == p).map(|(_, o)| *o).max();
                prop_assert_eq!(marks.commit_point("t", p), highest.map(|h| h + 1));
            }
            prop_assert_eq!(marks.outstanding(), 0);
        }

        #[test]
        fn a_revoke_in_the_middle_never_lets_old_work_advance_the_new_epoch(
            (records, sizes, order) in scenario(),
            revoke_after in 0usize..20,
        ) {
            let mut marks = Watermarks::new();
            let first = marks.assign("t", 0);
            let mut batches: Vec<Vec<i64>> = Vec::new();
            let mut iter = records.iter().filter(|(p, _)| *p == 0).map(|(_, o)| *o);
            for size in &sizes {
                let batch: Vec<i64> = iter.by_ref().take(*size).collect();
                for &o in &batch {
                    marks.received("t", 0, o).unwrap();
                }
                batches.push(batch);
            }
            let mut revoked_at = None;
            for (step, &index) in order.iter().enumerate() {
                if step == revoke_after && revoked_at.is_none() {
                    let last = marks.revoke("t", 0).map(|c| c.offset);
                    let second = marks.assign("t", 0);
                    prop_assert_ne!(first, second);
                    revoked_at = Some(last);
                }
                for &o in &batches[index] {
                    let accepted = marks.done("t", 0, first, o);
                    prop_assert_eq!(accepted, revoked_at.is_none());
                }
            }
            if revoked_at.is_some() {
                // The new epoch received nothing, so it has nothing to commit.
                prop_assert_eq!(marks.commit_point("t", 0), None);
            }
        }
    }
}
