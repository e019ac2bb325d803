//! Errors of the WAL, each naming the operation and, where one is involved, the record.

use std::fmt;
use std::path::PathBuf;

use crate::Seq;

/// The WAL operation during which an error happened.
///
/// Carried by [`WalError`] so that a log line says what the WAL was doing, not only what
/// sled or bincode complained about.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Op {
    /// [`Wal::open`](crate::Wal::open) / [`Wal::with_db`](crate::Wal::with_db), including the
    /// scan that rebuilds the pending counters.
    Open,
    /// [`Wal::append`](crate::Wal::append).
    Append,
    /// [`Wal::flush`](crate::Wal::flush), or the flush an append does when it extends the
    /// sequence lease.
    Flush,
    /// [`Wal::ack`](crate::Wal::ack).
    Ack,
    /// Reading records during [`Wal::replay`](crate::Wal::replay).
    Replay,
    /// Reading one record with [`Wal::get`](crate::Wal::get), or listing them with
    /// [`Wal::pending_seqs`](crate::Wal::pending_seqs).
    Get,
    /// Moving a damaged record to the quarantine tree, or reading/purging that tree.
    Quarantine,
    /// [`Wal::state_get`](crate::Wal::state_get).
    StateGet,
    /// [`Wal::state_scan_prefix`](crate::Wal::state_scan_prefix).
    StateScan,
    /// [`Wal::state_put`](crate::Wal::state_put).
    StatePut,
    /// [`Wal::oldest_pending`](crate::Wal::oldest_pending).
    OldestPending,
    /// [`Wal::size_on_disk`](crate::Wal::size_on_disk).
    SizeOnDisk,
    /// `Wal::stored_records` /
    /// `Wal::overwrite_stored` (tests, feature `test-support`).
    Raw,
}

impl fmt::Display for Op {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Op::Open => "open",
            Op::Append => "append",
            Op::Flush => "flush",
            Op::Ack => "ack",
            Op::Replay => "replay",
            Op::Get => "get",
            Op::Quarantine => "quarantine",
            Op::StateGet => "state get",
            Op::StateScan => "state scan",
            Op::StatePut => "state put",
            Op::OldestPending => "oldest pending",
            Op::SizeOnDisk => "size on disk",
            Op::Raw => "raw access",
        })
    }
}

/// Everything that can go wrong in the WAL.
///
/// Corrupt *records* are not errors: [`Wal::replay`](crate::Wal::replay) quarantines them
/// and reports [`Replayed::Quarantined`](crate::Replayed::Quarantined). Errors are what
/// stops the WAL from doing its job: storage failures, data written by a newer build, misuse.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum WalError {
    /// The options given to [`Wal::open`](crate::Wal::open) make no sense.
    #[error("invalid WAL options: {0}")]
    InvalidOptions(&'static str),

    /// sled could not open (or create) the database directory.
    #[error("cannot open the WAL database at {}", path.display())]
    Open {
        /// The directory given to [`Wal::open`](crate::Wal::open).
        path: PathBuf,
        /// What sled reported.
        #[source]
        source: sled::Error,
    },

    /// sled failed while the WAL was doing `op` (for `seq`, when one record is concerned).
    #[error("WAL {op} failed{}", at_seq(*.seq))]
    Storage {
        /// What the WAL was doing.
        op: Op,
        /// The record concerned, or the first of the batch for an append.
        seq: Option<Seq>,
        /// What sled reported.
        #[source]
        source: sled::Error,
    },

    /// The database was written with a WAL layout this build does not know.
    #[error(
        "WAL on-disk format version {found} is not supported by this build (it reads version {supported})"
    )]
    UnsupportedFormat {
        /// The version recorded in the database.
        found: u32,
        /// [`FORMAT_VERSION`](crate::FORMAT_VERSION) of this build.
        supported: u32,
    },

    /// A record's checksum is fine but its frame version is newer than this build.
    ///
    /// Such a record is intact, so it is neither quarantined nor skipped: replay stops here
    /// and the record stays in place for a build that can read it.
    #[error("WAL record {seq} has frame version tag {tag}, unknown to this build; refusing to replay past it")]
    UnsupportedFrame {
        /// The record.
        seq: Seq,
        /// The bincode variant index found in the frame.
        tag: u32,
    },

    /// A key in the WAL tree does not follow the WAL's key layout (someone else wrote it).
    #[error("WAL {op}: malformed key {key:?} in the WAL tree")]
    MalformedKey {
        /// What the WAL was doing.
        op: Op,
        /// The offending key.
        key: Vec<u8>,
    },

    /// A value the WAL itself wrote outside the record frames (metadata, a quarantine
    /// entry) cannot be decoded.
    #[error("WAL {op}: cannot decode {what}{}", at_seq(*.seq))]
    Decode {
        /// What the WAL was doing.
        op: Op,
        /// Which value.
        what: &'static str,
        /// The record concerned, if any.
        seq: Option<Seq>,
        /// Why, when bincode said so.
        #[source]
        source: Option<bincode::Error>,
    },

    /// bincode refused to encode a frame (cannot happen with the V1 frame; kept so the
    /// encoder never panics).
    #[error("WAL {op}: cannot encode {what}")]
    Encode {
        /// What the WAL was doing.
        op: Op,
        /// Which value.
        what: &'static str,
        /// What bincode reported.
        #[source]
        source: bincode::Error,
    },

    /// All 2^64 sequence numbers are used up.
    #[error("WAL sequence numbers exhausted")]
    SeqExhausted,
}

fn at_seq(seq: Option<Seq>) -> String {
    match seq {
        Some(seq) => format!(" at seq {seq}"),
        None => String::new(),
    }
}

impl WalError {
    pub(crate) fn storage(op: Op, seq: Option<Seq>) -> impl FnOnce(sled::Error) -> WalError {
        move |source| WalError::Storage { op, seq, source }
    }
}
