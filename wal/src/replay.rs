//! Reading pending records back, at startup.

use crate::{keys, Op, Seq, Wal, WalError};

/// One pending record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Its sequence number, as returned by [`Wal::append`].
    pub seq: Seq,
    /// The payload, exactly as appended.
    pub payload: Vec<u8>,
}

/// What [`Wal::replay`] found at one seq.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Replayed {
    /// An intact pending record: send it again.
    Record(Entry),
    /// A damaged record, now moved to the quarantine tree (see
    /// [`Wal::quarantined`]). Reported once: a later replay no longer sees it.
    Quarantined {
        /// The seq the record had.
        seq: Seq,
        /// Why it could not be read.
        reason: String,
    },
}

/// Iterator returned by [`Wal::replay`]: pending records in ascending seq order.
///
/// It owns a handle to the WAL and reads lazily, so replaying a large WAL does not hold it
/// all in memory. Each damaged record is quarantined as the iterator reaches it. After the
/// first `Err` the iterator ends (fused): the error is about the storage or about data this
/// build must not skip, and going on would hand out a gap.
///
/// Meant for startup, before new appends. Records appended while it runs may or may not be
/// yielded (those with a higher seq than the current position are).
pub struct Replay {
    wal: Wal,
    iter: sled::Iter,
    done: bool,
}

impl Replay {
    pub(crate) fn new(wal: Wal, iter: sled::Iter) -> Self {
        Replay {
            wal,
            iter,
            done: false,
        }
    }

    fn step(&mut self) -> Option<Result<Replayed, WalError>> {
        let (key, value) = match self.iter.next()? {
            Ok(kv) => kv,
            Err(e) => return Some(Err(WalError::storage(Op::Replay, None)(e))),
        };
        let Some(seq) = keys::parse_record(&key) else {
            return Some(Err(WalError::MalformedKey {
                op: Op::Replay,
                key: key.to_vec(),
            }));
        };
        Some(self.wal.resolve(seq, &value, Op::Replay))
    }
}

impl Iterator for Replay {
    type Item = Result<Replayed, WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = self.step();
        if !matches!(item, Some(Ok(_))) {
            self.done = true;
        }
        item
    }
}

impl std::iter::FusedIterator for Replay {}

impl std::fmt::Debug for Replay {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Replay")
            .field("wal", &self.wal)
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
