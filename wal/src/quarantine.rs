//! The quarantine: where damaged records go instead of being dropped.
//!
//! A record whose frame fails its crc or cannot be decoded is moved, in ONE sled
//! transaction over the WAL tree and the quarantine tree, from the former to the latter,
//! keyed by its seq and kept with the reason and its raw bytes. The move is not flushed by
//! itself: a crash before the next flush either keeps the record where it was (the next
//! replay quarantines it again) or keeps the move; the bytes are never in neither place.

use std::borrow::Cow;

use bincode::Options;
use serde::{Deserialize, Serialize};

use crate::frame::{bytes, codec};
use crate::Seq;

/// A record the WAL could not read, as kept in the quarantine tree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct QuarantinedRecord {
    /// The seq the record had.
    pub seq: Seq,
    /// Why it was quarantined (crc mismatch, truncation, undecodable frame...).
    pub reason: String,
    /// The stored value exactly as it was found, for forensics or manual recovery.
    pub raw: Vec<u8>,
}

/// A quarantine value: `bincode(Entry::V1 { reason, raw })`, versioned like record frames.
#[derive(Debug, Serialize, Deserialize)]
enum Entry<'a> {
    V1 {
        reason: Cow<'a, str>,
        #[serde(with = "bytes")]
        raw: Cow<'a, [u8]>,
    },
}

pub(crate) fn encode(reason: &str, raw: &[u8]) -> Result<Vec<u8>, bincode::Error> {
    codec().serialize(&Entry::V1 {
        reason: Cow::Borrowed(reason),
        raw: Cow::Borrowed(raw),
    })
}

pub(crate) fn decode(seq: Seq, value: &[u8]) -> Result<QuarantinedRecord, bincode::Error> {
    let Entry::V1 { reason, raw } = codec()
        .with_limit(value.len() as u64)
        .deserialize::<Entry<'_>>(value)?;
    Ok(QuarantinedRecord {
        seq,
        reason: reason.into_owned(),
        raw: raw.into_owned(),
    })
}
