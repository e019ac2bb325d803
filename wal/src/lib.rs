//! A crash-safe write-ahead log of opaque records on [sled].
//!
//! The WAL knows nothing about files or Kafka: it stores byte strings, numbers them, and
//! gives back those not yet acknowledged. Its principal types:
//!
//! - [`Wal`]: the handle (cheap to clone, shareable between threads). [`Wal::append`]
//!   stages records and user state writes in one atomic step, [`Wal::flush`] makes them
//!   durable, [`Wal::ack`] removes what the downstream has, [`Wal::replay`] gives back the
//!   rest at startup.
//! - [`Seq`]: the number of a record, increasing and never reused, also across restarts.
//! - [`Replayed`]: what replay yields, an [`Entry`] (seq + payload) or the report of a
//!   damaged record that was moved to quarantine ([`QuarantinedRecord`]).
//! - [`WalOptions`] configures, [`WalError`] says what failed, in which [`Op`], for which seq.
//! - [`decode_frame`] checks and decodes one stored record value on its own ([`DecodedFrame`]),
//!   for tools and fuzzers; the WAL applies it to every record it reads.
//!
//! Besides records the WAL keeps small *state* (`key -> value`, e.g. a reader's file
//! offset) that can be written in the same atomic step as the records it describes, so
//! that after a crash the state never runs ahead of, or behind, the records.
//!
//! # Example
//!
//! ```
//! use logship_wal::{Replayed, Wal, WalOptions};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let dir = tempfile::tempdir()?;
//! let wal = Wal::open(dir.path(), WalOptions::default())?;
//!
//! // Two lines read from a file, and the offset reached, in one atomic step...
//! let seqs = wal.append(&[b"line 1", b"line 2"], &[(b"offset/app.log", Some(b"14"))])?;
//! // ...made durable (several appends may share one flush).
//! wal.flush()?;
//! assert_eq!(wal.pending_records(), 2);
//!
//! // The downstream acknowledged the first line.
//! wal.ack(&seqs[..1])?;
//! wal.flush()?;
//! drop(wal);
//!
//! // After a restart: resend what is still pending, resume from the saved offset.
//! let wal = Wal::open(dir.path(), WalOptions::default())?;
//! for item in wal.replay() {
//!     match item? {
//!         Replayed::Record(entry) => assert_eq!(entry.payload, b"line 2"),
//!         Replayed::Quarantined { seq, reason } => eprintln!("record {seq} lost to damage: {reason}"),
//!     }
//! }
//! assert_eq!(wal.state_get(b"offset/app.log")?, Some(b"14".to_vec()));
//! let more = wal.append(&[b"line 3"], &[])?;
//! assert!(more[0] > seqs[1]); // seqs go on increasing after a reopen
//! # Ok(()) }
//! ```
//!
//! # Storage layout
//!
//! One sled tree ([`TREE_NAME`]) holds records, user state and the WAL's metadata, told
//! apart by the first byte of the key (`b'r'` + big-endian seq, `b's'` + user key, `b'm'` +
//! name, `b'p'` + big-endian seq + big-endian u32 index for the pieces of a large record), so
//! that one `Tree::apply_batch` covers an append. A record value is a *frame*:
//!
//! ```text
//! crc32 (4 bytes LE, over the rest) ++ bincode(Frame::V1 { payload })
//! = crc32 | tag u32 LE (0 = V1) | payload length u64 LE | payload
//! ```
//!
//! A frame longer than 6 KiB is stored in pieces: the record key holds a small head
//! (`Frame::Pieces { count, len }`, crc-checked), and the frame itself is cut into `count`
//! values under the piece keys, written in the same batch, removed with the record; joined,
//! they are checked like any frame. This keeps every sled value, and so every sled tree node,
//! small: sled stores pages over about 128 KiB as separate blob files, which were seen to pile
//! up on disk without bound; with 6 KiB values the WAL's size on disk stays within
//! 3x [`WalOptions::max_bytes`] plus 16 MiB (measured: at most 3.6x for 8 MiB; docs/bench.md).
//!
//! `Frame` is a versioned enum: a new frame format is a new variant, and old records keep
//! decoding as `V1`. The layout as a whole (trees, key prefixes, metadata) is versioned by
//! [`FORMAT_VERSION`], recorded in the tree. Damaged records go to a second tree
//! ([`QUARANTINE_TREE_NAME`]), keyed by seq, with the reason and the raw bytes.
//!
//! # Durability: what is fsynced when, and what a crash leaves
//!
//! sled writes a log; [`Wal::open`] turns its periodic background flush off, so data is
//! fsynced exactly when [`Wal::flush`] runs (or when an append extends the seq lease, see
//! below). sled recovers its log up to the last intact write and applies batches
//! atomically; hence, for a crash (process killed, or power lost) at any point:
//!
//! | crash ...                                  | after reopen                                                  |
//! |--------------------------------------------|---------------------------------------------------------------|
//! | after `flush()` returned                   | every earlier append, ack, state write, quarantine is there   |
//! | after `append` returned, before the flush  | the batch is there entirely (records + state) or not at all   |
//! | during `append`                            | likewise: never some records of a batch, never state without its records |
//! | after `ack` returned, before the flush     | the record may be back: it is resent (at-least-once, not loss) |
//! | during replay's quarantine move            | the record is still a record (quarantined again) or moved; never gone |
//!
//! Unflushed operations that survive do so as a *prefix*: if one survives, every earlier
//! one does (`wal/tests/model.rs` checks this against a model, killing a real process).
//! Nothing that was never appended ever appears, and a seq is never handed out twice,
//! even when a crash lost the batch that had it (seqs come from a lease made durable before
//! use, so a reopen skips ahead).
//!
//! The pending counters ([`Wal::pending_bytes`], [`Wal::pending_records`]) live in memory
//! and are rebuilt at open by scanning the records (each value read once, nothing decoded).
//!
//! Dropping the last handle makes sled flush, but a correct caller never relies on that.

// Lints: the workspace's `[lints]` table (../Cargo.toml): missing docs, `unwrap`/`expect`/`panic`
// outside tests.

mod error;
mod frame;
mod keys;
mod options;
mod quarantine;
mod replay;
mod state;
mod wal;

pub use error::{Op, WalError};
#[cfg(any(test, feature = "test-support"))]
pub use frame::encode_frame;
pub use frame::{decode_frame, DecodedFrame, FRAME_OVERHEAD};
pub use options::{WalOptions, DEFAULT_CACHE_BYTES, DEFAULT_MAX_BYTES};
pub use quarantine::QuarantinedRecord;
pub use replay::{Entry, Replay, Replayed};
pub use state::StateScan;
pub use wal::{Wal, QUARANTINE_TREE_NAME, TREE_NAME};

/// Sequence number of a record: assigned by [`Wal::append`], strictly increasing, never
/// reused, continuing (with a gap) after a reopen or a crash.
pub type Seq = u64;

/// Version of the WAL's storage layout: tree names, key prefixes, metadata keys, and which
/// frame versions may occur.
///
/// Recorded in the WAL tree when it is created and checked at every open: a database whose
/// version this build does not know is refused with [`WalError::UnsupportedFormat`] instead
/// of being misread. Bump it (and teach `open` to migrate or refuse) whenever any of the
/// above changes; a new record frame variant alone is already told apart per record.
///
/// Version 1: the layout described in the [crate documentation](crate), frames `V1` only.
/// Version 2: adds records stored in pieces (a `Pieces` head under the record key, the pieces
/// under `b'p'` keys), so that no sled value exceeds 6 KiB. A version-1 WAL is upgraded at
/// open by recording version 2 (its records stay readable as they are); a version-1 build
/// refuses a version-2 WAL.
pub const FORMAT_VERSION: u32 = 2;

#[cfg(test)]
mod tests;
