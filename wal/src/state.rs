//! Iterating user state.

use crate::{Op, WalError};

/// Iterator returned by [`Wal::state_scan_prefix`](crate::Wal::state_scan_prefix):
/// `(user key, value)` pairs in ascending key order. Ends after the first `Err`.
pub struct StateScan {
    iter: sled::Iter,
    done: bool,
}

impl StateScan {
    pub(crate) fn new(iter: sled::Iter) -> Self {
        StateScan { iter, done: false }
    }
}

impl Iterator for StateScan {
    type Item = Result<(Vec<u8>, Vec<u8>), WalError>;

    fn next(&mut self) -> Option<Self::Item> {
        if self.done {
            return None;
        }
        let item = match self.iter.next()? {
            // Every key under the state prefix has the one-byte tag in front.
            Ok((k, v)) => Ok((k.get(1..).unwrap_or_default().to_vec(), v.to_vec())),
            Err(e) => Err(WalError::storage(Op::StateScan, None)(e)),
        };
        self.done = item.is_err();
        Some(item)
    }
}

impl std::iter::FusedIterator for StateScan {}

impl std::fmt::Debug for StateScan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StateScan")
            .field("done", &self.done)
            .finish_non_exhaustive()
    }
}
