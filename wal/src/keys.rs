//! Key layout of the WAL tree.
//!
//! Records, user state and the WAL's own metadata live in ONE sled tree so that a record and
//! the state written with it go into the same `apply_batch` (sled batches are atomic per
//! tree). The first byte of a key says what it is:
//!
//! | key                               | value                                         |
//! |-----------------------------------|-----------------------------------------------|
//! | `b'm'` ++ name                    | WAL metadata (see the `META_*` constants)     |
//! | `b'p'` ++ seq ++ index (u32 BE)   | piece `index` of a record stored in pieces    |
//! | `b'r'` ++ seq (u64 big endian)    | a record frame, or the head of a record stored in pieces (see the `frame` module) |
//! | `b's'` ++ user key                | a user state value, stored as given           |
//!
//! Big-endian seqs sort numerically, so iterating the `b'r'` prefix yields records in seq
//! order. The quarantine tree is keyed by the bare big-endian seq.

use crate::Seq;

pub(crate) const META: u8 = b'm';
pub(crate) const PIECE: u8 = b'p';
pub(crate) const RECORD: u8 = b'r';
pub(crate) const STATE: u8 = b's';

// Distinct prefixes, metadata first: a scan of one prefix never meets another kind of key.
const _: () = assert!(META < PIECE && PIECE < RECORD && RECORD < STATE);

/// u32 big endian: the [`FORMAT_VERSION`](crate::FORMAT_VERSION) the tree was written with.
pub(crate) const META_FORMAT: &[u8] = b"mformat";
/// u64 big endian: the sequence lease, one past the highest seq the WAL may hand out
/// without first making a higher lease durable (see `Wal::append`).
pub(crate) const META_SEQ_LEASE: &[u8] = b"mseq_lease";

pub(crate) fn record(seq: Seq) -> [u8; 9] {
    let mut k = [RECORD; 9];
    k[1..].copy_from_slice(&seq.to_be_bytes());
    k
}

/// The key of piece `index` of record `seq`.
pub(crate) fn piece(seq: Seq, index: u32) -> [u8; 13] {
    let mut k = [PIECE; 13];
    k[1..9].copy_from_slice(&seq.to_be_bytes());
    k[9..].copy_from_slice(&index.to_be_bytes());
    k
}

/// The seq of a piece key, or `None` if the key is not one.
pub(crate) fn parse_piece(key: &[u8]) -> Option<Seq> {
    match key.split_first() {
        Some((&PIECE, rest)) if rest.len() == 12 => {
            rest.get(..8)?.try_into().ok().map(Seq::from_be_bytes)
        }
        _ => None,
    }
}

/// The seq of a record key, or `None` if the key is not one.
pub(crate) fn parse_record(key: &[u8]) -> Option<Seq> {
    match key.split_first() {
        Some((&RECORD, rest)) => rest.try_into().ok().map(Seq::from_be_bytes),
        _ => None,
    }
}

pub(crate) fn state(user_key: &[u8]) -> Vec<u8> {
    let mut k = Vec::with_capacity(1 + user_key.len());
    k.push(STATE);
    k.extend_from_slice(user_key);
    k
}

pub(crate) fn quarantine(seq: Seq) -> [u8; 8] {
    seq.to_be_bytes()
}

pub(crate) fn parse_quarantine(key: &[u8]) -> Option<Seq> {
    key.try_into().ok().map(Seq::from_be_bytes)
}

pub(crate) fn u64_value(v: &[u8]) -> Option<u64> {
    v.try_into().ok().map(u64::from_be_bytes)
}

pub(crate) fn u32_value(v: &[u8]) -> Option<u32> {
    v.try_into().ok().map(u32::from_be_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn meta_keys_use_the_meta_prefix() {
        for k in [META_FORMAT, META_SEQ_LEASE] {
            assert_eq!(k[0], META);
        }
    }

    #[test]
    fn record_keys_sort_by_seq_and_round_trip() {
        let seqs = [0, 1, 255, 256, 65_536, u64::MAX];
        for w in seqs.windows(2) {
            assert!(record(w[0]) < record(w[1]));
        }
        for s in seqs {
            assert_eq!(parse_record(&record(s)), Some(s));
        }
        assert_eq!(parse_record(b"r123"), None);
        assert_eq!(parse_record(&state(b"12345678")), None);
    }

    #[test]
    fn piece_keys_sort_by_seq_then_index_and_round_trip() {
        assert!(piece(1, 9) < piece(1, 10));
        assert!(piece(1, u32::MAX) < piece(2, 0));
        assert_eq!(parse_piece(&piece(77, 3)), Some(77));
        assert_eq!(parse_piece(&record(77)), None);
    }
}
