//! Read times, and how far they are acknowledged by Kafka: the agent's `acked_through`, which
//! it publishes in its registry value so that the alert evaluator knows when every line read
//! before a time is in Kafka (docs/design.md, "Alerts").
//!
//! Promises:
//! - read times ([`stamp`]) never go backwards within the process, even when the system clock
//!   steps back: a line read later never carries an earlier `@timestamp` than one read before;
//! - [`AckedThrough::now`] is a time such that every line this agent read (and will read) with
//!   an earlier read time has been acknowledged by Kafka (or quarantined, so it never will be);
//!   it never decreases within the process, and it starts at the oldest unacknowledged record
//!   the WAL holds from before, so it does not go back across restarts either (a record still
//!   pending was read after everything published before it).
//!
//! How: the minimum of the start of the read round in progress and the read times of the WAL
//! records not yet acknowledged, kept in memory (one entry per WAL record: a chunk of many
//! lines, or a round of host metrics with its sampling time). The reader and the sampler
//! register their records before the shipper can see them; the shipper removes them once Kafka
//! acknowledged them (the sampler those it drops when the WAL is full).

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Mutex;
use std::time::{SystemTime, UNIX_EPOCH};

use logship_wal::Seq;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

use crate::sync::lock;

/// The latest read time handed out, nanoseconds since the Unix epoch.
static LAST_STAMP: AtomicI64 = AtomicI64::new(0);

/// A read time: now, or the latest read time handed out if the clock went back since.
/// Nanoseconds since the Unix epoch.
pub fn stamp() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
        .unwrap_or(0);
    let before = LAST_STAMP.fetch_max(now, Ordering::SeqCst);
    before.max(now)
}

/// `nanos` (since the Unix epoch) as RFC 3339 UTC, the form of `@timestamp` and of the
/// registry's times.
pub fn rfc3339(nanos: i64) -> String {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .ok()
        .and_then(|t| t.format(&Rfc3339).ok())
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".to_string())
}

/// Reads an RFC 3339 read time back into nanoseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let time = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(time.unix_timestamp_nanos()).ok()
}

/// The agent's acknowledged-through time (see the module's promises). Shared by the reader,
/// the shipper and the registry's heartbeat.
#[derive(Debug, Default)]
pub struct AckedThrough {
    inner: Mutex<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Start of the read round in progress.
    round: Option<i64>,
    /// Time of the host metrics sample being written.
    sampling: Option<i64>,
    /// Read time of every WAL record of lines not yet acknowledged.
    pending: BTreeMap<Seq, i64>,
    /// The last value answered (answers never go below it).
    answered: i64,
}

impl AckedThrough {
    /// Starts from the records of lines the WAL holds unacknowledged from before a restart
    /// (seq, read time). A record that cannot be read is left out: the shipper quarantines it,
    /// it never reaches Kafka.
    pub fn starting_with(records: &[(Seq, i64)]) -> AckedThrough {
        let acked = AckedThrough::default();
        lock(&acked.inner).pending.extend(records.iter().copied());
        acked
    }

    /// A read round begins: lines read from now on carry read times from [`stamp`], taken
    /// after this.
    pub fn begin_round(&self) {
        let mut inner = lock(&self.inner);
        inner.round = Some(stamp());
    }

    /// The round ended; `records` (seq, read time) were committed to the WAL in it and are not
    /// yet acknowledged. Called before the shipper is told of them.
    pub fn end_round(&self, records: &[(Seq, i64)]) {
        let mut inner = lock(&self.inner);
        inner.pending.extend(records.iter().copied());
        inner.round = None;
    }

    /// A host metrics sample is taken: its time (nanoseconds since the epoch), which holds the
    /// answer until [`AckedThrough::end_sample`].
    pub fn begin_sample(&self) -> i64 {
        let mut inner = lock(&self.inner);
        let at = stamp();
        inner.sampling = Some(at);
        at
    }

    /// The sample taken at `at` was committed to the WAL as `seqs` (none: it was not written).
    pub fn end_sample(&self, seqs: &[Seq], at: i64) {
        let mut inner = lock(&self.inner);
        inner.pending.extend(seqs.iter().map(|seq| (*seq, at)));
        inner.sampling = None;
    }

    /// `seqs` were acknowledged by Kafka (or quarantined): their lines no longer hold the time.
    pub fn acknowledged(&self, seqs: &[Seq]) {
        let mut inner = lock(&self.inner);
        for seq in seqs {
            inner.pending.remove(seq);
        }
    }

    /// Every line with a read time below the answer is acknowledged (nanoseconds since the
    /// epoch); never below an earlier answer.
    pub fn now(&self) -> i64 {
        let mut inner = lock(&self.inner);
        let mut through = stamp();
        if let Some(round) = inner.round {
            through = through.min(round);
        }
        if let Some(sampling) = inner.sampling {
            through = through.min(sampling);
        }
        if let Some(oldest) = inner.pending.values().min() {
            through = through.min(*oldest);
        }
        inner.answered = inner.answered.max(through);
        inner.answered
    }

    /// Records tracked (for tests and gauges).
    pub fn pending(&self) -> usize {
        lock(&self.inner).pending.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stamps_never_go_back() {
        let a = stamp();
        LAST_STAMP.fetch_max(a + 3_600_000_000_000, Ordering::SeqCst);
        let b = stamp();
        assert!(b >= a + 3_600_000_000_000, "a clock behind the last stamp");
        assert!(stamp() >= b);
    }

    #[test]
    fn the_answer_waits_for_the_oldest_unacknowledged_record_and_the_round_in_progress() {
        let acked = AckedThrough::default();
        let before = stamp();
        acked.begin_round();
        let in_round = acked.now();
        assert!(in_round >= before, "at least the round's start");
        let read1 = stamp();
        let read2 = stamp();
        assert!(acked.now() <= read1, "a round in progress holds it");
        acked.end_round(&[(1, read1), (2, read2)]);
        assert_eq!(acked.now(), read1.max(in_round));
        acked.acknowledged(&[2]);
        assert_eq!(acked.now(), read1.max(in_round), "seq 1 is still pending");
        acked.acknowledged(&[1]);
        let after = stamp();
        let now = acked.now();
        assert!(now >= after && now <= stamp(), "nothing pending: now");
        assert_eq!(acked.pending(), 0);
    }

    #[test]
    fn the_answer_never_decreases() {
        let acked = AckedThrough::default();
        let first = acked.now();
        // A record read before the last answer (as after a restart that found it in the WAL)
        // cannot pull the answer back.
        acked.end_round(&[(7, first - 1_000)]);
        assert_eq!(acked.now(), first);
    }
}
