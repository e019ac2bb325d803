//! The WAL handle: append, flush, ack, replay, state.

use std::fmt;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use sled::Transactional;

use crate::frame::{self, DecodedFrame};
use crate::keys;
use crate::quarantine::{self, QuarantinedRecord};
use crate::{Op, Replay, Seq, StateScan, WalError, WalOptions, FORMAT_VERSION};

/// Name of the sled tree holding records, user state and WAL metadata.
pub const TREE_NAME: &str = "logship-wal";
/// Name of the sled tree holding quarantined records.
pub const QUARANTINE_TREE_NAME: &str = "logship-wal-quarantine";

/// The first seq a new WAL hands out.
const FIRST_SEQ: Seq = 1;

/// How many seqs one lease covers (see [`Wal::append`]): one extra flush per this many
/// appended records, and the size of the gap in seqs after a reopen.
const SEQ_LEASE: u64 = 1 << 20;

/// A write-ahead log of opaque records on sled. Cheap to clone; clones share one WAL and
/// may be used from several threads.
///
/// See the [crate documentation](crate) for the model and the durability contract.
#[derive(Clone)]
pub struct Wal {
    inner: Arc<Inner>,
}

struct Inner {
    db: sled::Db,
    tree: sled::Tree,
    quarantine: sled::Tree,
    opts: WalOptions,
    /// Held across seq assignment and `apply_batch`, so seq order is commit order.
    seqs: Mutex<SeqAlloc>,
    pending_bytes: AtomicU64,
    pending_records: AtomicU64,
}

/// A record as read back, pieces joined.
enum Stored {
    Payload(Vec<u8>),
    Corrupt { reason: String, raw: Vec<u8> },
}

struct SeqAlloc {
    /// The next seq to hand out.
    next: Seq,
    /// Seqs below this are covered by a lease known to be durable.
    leased: Seq,
}

impl fmt::Debug for Wal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Wal")
            .field("opts", &self.inner.opts)
            .field("pending_records", &self.pending_records())
            .field("pending_bytes", &self.pending_bytes())
            .finish_non_exhaustive()
    }
}

impl Wal {
    /// Opens (or creates) the WAL in the sled database at `dir`.
    ///
    /// sled's periodic background flush is **disabled** (`flush_every_ms(None)`): data
    /// becomes durable exactly when [`Wal::flush`] (or the lease flush of an append)
    /// returns, never at some other moment. The caller's group commit decides how often the
    /// disk is synced, and no background fsync competes with it; nothing is lost by this,
    /// since no caller may count on an unflushed write anyway.
    ///
    /// Rebuilds the pending counters by scanning the records (reads every pending value
    /// once, without decoding it). sled locks the directory: a second `open` of the same
    /// path while a handle is alive fails.
    pub fn open(dir: &Path, opts: WalOptions) -> Result<Wal, WalError> {
        opts.validate()?;
        let db = sled::Config::new()
            .path(dir)
            .flush_every_ms(None)
            .cache_capacity(opts.cache_bytes)
            .open()
            .map_err(|source| WalError::Open {
                path: dir.to_path_buf(),
                source,
            })?;
        Wal::with_db(db, opts)
    }

    /// Builds the WAL on an already opened database, in the trees [`TREE_NAME`] and
    /// [`QUARANTINE_TREE_NAME`]; other trees of `db` are left alone. The database's own
    /// configuration (including its background flush) is kept as the caller set it.
    pub fn with_db(db: sled::Db, opts: WalOptions) -> Result<Wal, WalError> {
        opts.validate()?;
        let open_err = WalError::storage(Op::Open, None);
        let tree = db.open_tree(TREE_NAME).map_err(open_err)?;
        let quarantine = db
            .open_tree(QUARANTINE_TREE_NAME)
            .map_err(WalError::storage(Op::Open, None))?;

        check_format(&tree)?;
        sweep_orphan_pieces(&tree)?;

        let mut records = 0u64;
        let mut bytes = 0u64;
        let mut last_record = None;
        for kv in tree.scan_prefix([keys::RECORD]) {
            let (k, v) = kv.map_err(WalError::storage(Op::Open, None))?;
            let seq = keys::parse_record(&k).ok_or_else(|| WalError::MalformedKey {
                op: Op::Open,
                key: k.to_vec(),
            })?;
            records += 1;
            bytes += frame::charge(&v);
            last_record = Some(seq);
        }
        let last_quarantined = match quarantine
            .last()
            .map_err(WalError::storage(Op::Open, None))?
        {
            Some((k, _)) => {
                Some(
                    keys::parse_quarantine(&k).ok_or_else(|| WalError::MalformedKey {
                        op: Op::Open,
                        key: k.to_vec(),
                    })?,
                )
            }
            None => None,
        };
        let leased = match tree
            .get(keys::META_SEQ_LEASE)
            .map_err(WalError::storage(Op::Open, None))?
        {
            Some(v) => keys::u64_value(&v).ok_or(WalError::Decode {
                op: Op::Open,
                what: "the sequence lease",
                seq: None,
                source: None,
            })?,
            None => FIRST_SEQ,
        };
        let after = |s: Option<Seq>| match s {
            Some(s) => s.checked_add(1).ok_or(WalError::SeqExhausted),
            None => Ok(FIRST_SEQ),
        };
        // Every seq ever handed out is below the durable lease, and every stored seq is
        // below `after(..)` of its tree: starting at the max never reuses a seq.
        let next = leased
            .max(after(last_record)?)
            .max(after(last_quarantined)?);

        Ok(Wal {
            inner: Arc::new(Inner {
                db,
                tree,
                quarantine,
                opts,
                seqs: Mutex::new(SeqAlloc { next, leased }),
                pending_bytes: AtomicU64::new(bytes),
                pending_records: AtomicU64::new(records),
            }),
        })
    }

    /// Stages `payloads` as new records, together with the user `state` writes
    /// (`Some(v)` puts, `None` deletes), as ONE atomic sled batch. Returns the seqs
    /// assigned, in the order of `payloads`.
    ///
    /// **Not durable until [`Wal::flush`] returns.** Append several batches, then flush
    /// once (group commit). A crash before that flush recovers this batch entirely or not
    /// at all (records and state together), and batches are recovered in order: if a
    /// batch survives, every earlier one does.
    ///
    /// Seqs increase across calls and across reopen and crash, and are never reused, even
    /// those of a batch a crash lost. To guarantee that without writing a counter durably on
    /// every append, seqs are handed out from a *lease* recorded in the WAL: when a batch
    /// needs seqs beyond the lease, the new lease goes into the same batch and this call
    /// flushes before returning (once every 2^20 seqs, and on the first append after each
    /// open). Hence the jump in seqs after a reopen.
    ///
    /// An empty call (no payloads, no state) does nothing. On error the batch may have been
    /// staged (then it is counted and will be replayed) or not; no seq is returned either way.
    pub fn append(
        &self,
        payloads: &[&[u8]],
        state: &[(&[u8], Option<&[u8]>)],
    ) -> Result<Vec<Seq>, WalError> {
        if payloads.is_empty() && state.is_empty() {
            return Ok(Vec::new());
        }
        // CPU work (crc, copy) outside the lock.
        let frames = payloads
            .iter()
            .map(|p| frame::encode(p))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|source| WalError::Encode {
                op: Op::Append,
                what: "a record frame",
                source,
            })?;
        let added_bytes: u64 = frames.iter().map(|f| frame::charge(f)).sum();

        let mut seqs = self.lock_seqs();
        let first = seqs.next;
        let end = first
            .checked_add(frames.len() as u64)
            .ok_or(WalError::SeqExhausted)?;

        let mut batch = sled::Batch::default();
        for (seq, f) in (first..end).zip(frames) {
            if f.len() <= frame::PIECE_BYTES {
                batch.insert(&keys::record(seq), f);
                continue;
            }
            let count = u32::try_from(f.len().div_ceil(frame::PIECE_BYTES))
                .map_err(|_| WalError::InvalidOptions("a record too large to store in pieces"))?;
            let head =
                frame::encode_head(count, f.len() as u64).map_err(|source| WalError::Encode {
                    op: Op::Append,
                    what: "a record head",
                    source,
                })?;
            batch.insert(&keys::record(seq), head);
            for (index, piece) in (0u32..).zip(f.chunks(frame::PIECE_BYTES)) {
                batch.insert(&keys::piece(seq, index), piece);
            }
        }
        for (k, v) in state {
            let key = keys::state(k);
            match v {
                Some(v) => batch.insert(key, *v),
                None => batch.remove(key),
            }
        }
        let new_lease = if end > seqs.leased {
            let lease = end.checked_add(SEQ_LEASE).ok_or(WalError::SeqExhausted)?;
            batch.insert(keys::META_SEQ_LEASE, &lease.to_be_bytes());
            Some(lease)
        } else {
            None
        };

        self.inner
            .tree
            .apply_batch(batch)
            .map_err(WalError::storage(Op::Append, Some(first)))?;
        // Staged: these seqs are taken and the records count, whatever happens next.
        seqs.next = end;
        self.inner
            .pending_records
            .fetch_add(end - first, Ordering::Relaxed);
        self.inner
            .pending_bytes
            .fetch_add(added_bytes, Ordering::Relaxed);

        if let Some(lease) = new_lease {
            // The new lease must be durable before any seq above the old one is handed
            // out. If this flush fails, `leased` stays put and the next append retries.
            self.inner
                .db
                .flush()
                .map_err(WalError::storage(Op::Flush, Some(first)))?;
            seqs.leased = lease;
        }
        Ok((first..end).collect())
    }

    /// Makes everything staged so far durable: sled writes its buffers and fsyncs.
    ///
    /// When this returns `Ok`, every earlier append, ack, state put and quarantine move
    /// (from any clone of this handle) survives a crash or a power loss. Calls from several
    /// threads may overlap; each returns once its own predecessors are durable.
    pub fn flush(&self) -> Result<(), WalError> {
        self.inner
            .db
            .flush()
            .map(drop)
            .map_err(WalError::storage(Op::Flush, None))
    }

    /// Removes acknowledged records: the downstream has them durably.
    ///
    /// Not flushed by itself, on purpose: acks ride along with the next flush. A crash
    /// before it brings acknowledged records back at replay, which only means a resend
    /// (at-least-once); it never loses anything. Unknown or already acknowledged seqs are
    /// ignored. Each record is removed on its own (not one atomic step for the slice),
    /// which is fine for the same reason.
    pub fn ack(&self, seqs: &[Seq]) -> Result<(), WalError> {
        for &seq in seqs {
            let removed = self
                .inner
                .tree
                .remove(keys::record(seq))
                .map_err(WalError::storage(Op::Ack, Some(seq)))?;
            if let Some(v) = removed {
                // Head first, then its pieces: a crash in between leaves orphan pieces, which
                // the next open deletes; never a head without its pieces.
                if let Some(count) = frame::head_pieces(&v) {
                    for index in 0..count {
                        self.inner
                            .tree
                            .remove(keys::piece(seq, index))
                            .map_err(WalError::storage(Op::Ack, Some(seq)))?;
                    }
                }
                self.uncount(&v);
            }
        }
        Ok(())
    }

    /// Replays pending records in seq order; used at startup to resend what the
    /// downstream never acknowledged.
    ///
    /// Lazy (see [`Replay`]): a damaged record (bad crc, truncated, undecodable) is moved
    /// to the quarantine tree with its seq and the reason, no longer counts as pending, and
    /// is reported as [`Replayed::Quarantined`](crate::Replayed::Quarantined); it is never
    /// dropped silently and never makes replay panic. An intact record of a newer frame
    /// version ends the replay with [`WalError::UnsupportedFrame`] and stays in place.
    pub fn replay(&self) -> Replay {
        Replay::new(self.clone(), self.inner.tree.scan_prefix([keys::RECORD]))
    }

    /// The stored value of every record in the WAL, by seq, exactly as on disk: a frame (see
    /// [`decode_frame`](crate::decode_frame)), or the head of a record stored in pieces. For
    /// tests that inspect, damage or downgrade stored records (feature `test-support`); the
    /// data path never needs it.
    #[cfg(any(test, feature = "test-support"))]
    pub fn stored_records(&self) -> Result<Vec<(Seq, Vec<u8>)>, WalError> {
        let mut out = Vec::new();
        for item in self.inner.tree.scan_prefix([keys::RECORD]) {
            let (key, value) = item.map_err(WalError::storage(Op::Raw, None))?;
            if let Some(seq) = keys::parse_record(&key) {
                out.push((seq, value.to_vec()));
            }
        }
        Ok(out)
    }

    /// Replaces the stored value of record `seq` with `value`, as is: nothing is checked (a
    /// damaged value is quarantined when it is read, as damage on disk would be). For tests
    /// (feature `test-support`); durable after [`Wal::flush`]. The pending byte count is not
    /// adjusted: reopen the WAL before relying on it.
    #[cfg(any(test, feature = "test-support"))]
    pub fn overwrite_stored(&self, seq: Seq, value: &[u8]) -> Result<(), WalError> {
        self.inner
            .tree
            .insert(keys::record(seq), value)
            .map_err(WalError::storage(Op::Raw, Some(seq)))?;
        Ok(())
    }

    /// Reads the pending record `seq`: `None` if it is not pending (acknowledged, or never
    /// written). A damaged record is quarantined exactly as [`Wal::replay`] does and reported
    /// as [`Replayed::Quarantined`](crate::Replayed::Quarantined).
    pub fn get(&self, seq: Seq) -> Result<Option<crate::Replayed>, WalError> {
        let Some(value) = self
            .inner
            .tree
            .get(keys::record(seq))
            .map_err(WalError::storage(Op::Get, Some(seq)))?
        else {
            return Ok(None);
        };
        self.resolve(seq, &value, Op::Get).map(Some)
    }

    /// What the stored `value` of record `seq` holds, its pieces joined; a damaged record is
    /// quarantined on the way.
    pub(crate) fn resolve(
        &self,
        seq: Seq,
        value: &[u8],
        op: Op,
    ) -> Result<crate::Replayed, WalError> {
        match self.read_stored(seq, value, op)? {
            Stored::Payload(payload) => Ok(crate::Replayed::Record(crate::Entry { seq, payload })),
            Stored::Corrupt { reason, raw } => {
                self.quarantine(seq, value, &raw, &reason)?;
                Ok(crate::Replayed::Quarantined { seq, reason })
            }
        }
    }

    /// Decodes the stored `value` of record `seq`, reading and joining its pieces if it is a
    /// head. A newer frame version is an error (the data is intact, this build too old).
    fn read_stored(&self, seq: Seq, value: &[u8], op: Op) -> Result<Stored, WalError> {
        let (count, len) = match frame::decode_frame(value) {
            DecodedFrame::Payload(payload) => return Ok(Stored::Payload(payload)),
            DecodedFrame::Unsupported { tag } => {
                return Err(WalError::UnsupportedFrame { seq, tag })
            }
            DecodedFrame::Corrupt(reason) => {
                return Ok(Stored::Corrupt {
                    reason,
                    raw: value.to_vec(),
                })
            }
            DecodedFrame::Pieces { count, len } => (count, len),
        };
        let mut joined = Vec::with_capacity(len.min(1 << 26) as usize);
        for index in 0..count {
            match self
                .inner
                .tree
                .get(keys::piece(seq, index))
                .map_err(WalError::storage(op, Some(seq)))?
            {
                Some(piece) => joined.extend_from_slice(&piece),
                None => {
                    return Ok(Stored::Corrupt {
                        reason: format!("piece {index} of {count} is missing"),
                        raw: joined,
                    })
                }
            }
        }
        if joined.len() as u64 != len {
            return Ok(Stored::Corrupt {
                reason: format!(
                    "the pieces hold {} bytes, the head says {len}",
                    joined.len()
                ),
                raw: joined,
            });
        }
        Ok(match frame::decode_frame(&joined) {
            DecodedFrame::Payload(payload) => Stored::Payload(payload),
            DecodedFrame::Unsupported { tag } => {
                return Err(WalError::UnsupportedFrame { seq, tag })
            }
            DecodedFrame::Corrupt(reason) => Stored::Corrupt {
                reason: format!("joined pieces: {reason}"),
                raw: joined,
            },
            DecodedFrame::Pieces { .. } => Stored::Corrupt {
                reason: "joined pieces are a head again".to_string(),
                raw: joined,
            },
        })
    }

    /// The seqs of every pending record, ascending (keys only; no payload is read).
    pub fn pending_seqs(&self) -> Result<Vec<Seq>, WalError> {
        let mut seqs = Vec::with_capacity(self.pending_records() as usize);
        for key in self.inner.tree.scan_prefix([keys::RECORD]).keys() {
            let key = key.map_err(WalError::storage(Op::Get, None))?;
            match keys::parse_record(&key) {
                Some(seq) => seqs.push(seq),
                None => {
                    return Err(WalError::MalformedKey {
                        op: Op::Get,
                        key: key.to_vec(),
                    })
                }
            }
        }
        Ok(seqs)
    }

    /// Moves an intact record the caller cannot use (for example a payload it cannot decode)
    /// to the quarantine with `reason`, so it is kept for inspection but no longer pending.
    /// Returns whether a record was moved. Not flushed by itself.
    pub fn quarantine_record(&self, seq: Seq, reason: &str) -> Result<bool, WalError> {
        let Some(value) = self
            .inner
            .tree
            .get(keys::record(seq))
            .map_err(WalError::storage(Op::Quarantine, Some(seq)))?
        else {
            return Ok(false);
        };
        let raw = match self.read_stored(seq, &value, Op::Quarantine) {
            Ok(Stored::Payload(_)) | Err(_) => self.stored_bytes(seq, &value)?,
            Ok(Stored::Corrupt { raw, .. }) => raw,
        };
        self.quarantine(seq, &value, &raw, reason)?;
        Ok(true)
    }

    /// The bytes record `seq` takes: its value, or its pieces joined (those still there).
    fn stored_bytes(&self, seq: Seq, value: &[u8]) -> Result<Vec<u8>, WalError> {
        let Some(count) = frame::head_pieces(value) else {
            return Ok(value.to_vec());
        };
        let mut joined = Vec::new();
        for index in 0..count {
            if let Some(piece) = self
                .inner
                .tree
                .get(keys::piece(seq, index))
                .map_err(WalError::storage(Op::Quarantine, Some(seq)))?
            {
                joined.extend_from_slice(&piece);
            }
        }
        Ok(joined)
    }

    /// Moves the record at `seq` to the quarantine, if its record key still holds `stored`;
    /// `raw` (the value, or the joined pieces) is what the quarantine keeps. The pieces of a
    /// head go in the same transaction.
    pub(crate) fn quarantine(
        &self,
        seq: Seq,
        stored: &[u8],
        raw: &[u8],
        reason: &str,
    ) -> Result<(), WalError> {
        let pieces = frame::head_pieces(stored).unwrap_or(0);
        let entry = quarantine::encode(reason, raw).map_err(|source| WalError::Encode {
            op: Op::Quarantine,
            what: "a quarantine entry",
            source,
        })?;
        let key = keys::record(seq);
        let moved = (&self.inner.tree, &self.inner.quarantine)
            .transaction(|(records, quarantine)| {
                // An ack may have removed the record meanwhile: then there is nothing to do.
                match records.get(key)? {
                    Some(current) if current == stored => {
                        records.remove(&key)?;
                        for index in 0..pieces {
                            records.remove(&keys::piece(seq, index))?;
                        }
                        quarantine.insert(&keys::quarantine(seq), entry.as_slice())?;
                        Ok(true)
                    }
                    _ => Ok(false),
                }
            })
            .map_err(|e: sled::transaction::TransactionError<()>| {
                let source = match e {
                    sled::transaction::TransactionError::Storage(e) => e,
                    sled::transaction::TransactionError::Abort(()) => {
                        sled::Error::ReportableBug("quarantine transaction aborted".into())
                    }
                };
                WalError::Storage {
                    op: Op::Quarantine,
                    seq: Some(seq),
                    source,
                }
            })?;
        if moved {
            self.uncount(stored);
        }
        Ok(())
    }

    /// Everything in the quarantine, in seq order: seq, reason and the raw stored bytes.
    pub fn quarantined(&self) -> Result<Vec<QuarantinedRecord>, WalError> {
        self.inner
            .quarantine
            .iter()
            .map(|kv| {
                let (k, v) = kv.map_err(WalError::storage(Op::Quarantine, None))?;
                let seq = keys::parse_quarantine(&k).ok_or_else(|| WalError::MalformedKey {
                    op: Op::Quarantine,
                    key: k.to_vec(),
                })?;
                quarantine::decode(seq, &v).map_err(|source| WalError::Decode {
                    op: Op::Quarantine,
                    what: "a quarantine entry",
                    seq: Some(seq),
                    source: Some(source),
                })
            })
            .collect()
    }

    /// Deletes a quarantined record for good. Returns whether there was one. Not flushed by
    /// itself. Test-only (feature `test-support`) until an operator tool needs it.
    #[cfg(any(test, feature = "test-support"))]
    pub fn purge_quarantined(&self, seq: Seq) -> Result<bool, WalError> {
        self.inner
            .quarantine
            .remove(keys::quarantine(seq))
            .map(|old| old.is_some())
            .map_err(WalError::storage(Op::Quarantine, Some(seq)))
    }

    /// Reads one user state value.
    pub fn state_get(&self, key: &[u8]) -> Result<Option<Vec<u8>>, WalError> {
        self.inner
            .tree
            .get(keys::state(key))
            .map(|v| v.map(|v| v.to_vec()))
            .map_err(WalError::storage(Op::StateGet, None))
    }

    /// All user state whose key starts with `prefix`, in key order (lazy, see [`StateScan`]).
    pub fn state_scan_prefix(&self, prefix: &[u8]) -> StateScan {
        StateScan::new(self.inner.tree.scan_prefix(keys::state(prefix)))
    }

    /// Writes (`Some`) or deletes (`None`) one user state value outside an append, for
    /// state that needs no atomicity with records (a cached config, say). Not flushed by
    /// itself: durable with the next flush, like everything else.
    pub fn state_put(&self, key: &[u8], value: Option<&[u8]>) -> Result<(), WalError> {
        let key = keys::state(key);
        match value {
            Some(v) => self.inner.tree.insert(key, v).map(drop),
            None => self.inner.tree.remove(key).map(drop),
        }
        .map_err(WalError::storage(Op::StatePut, None))
    }

    /// Payload bytes of pending records (appended, not acknowledged, not quarantined).
    /// Kept in memory, rebuilt at open.
    pub fn pending_bytes(&self) -> u64 {
        self.inner.pending_bytes.load(Ordering::Relaxed)
    }

    /// Number of pending records. Kept in memory, rebuilt at open.
    pub fn pending_records(&self) -> u64 {
        self.inner.pending_records.load(Ordering::Relaxed)
    }

    /// Whether [`Wal::pending_bytes`] reached [`WalOptions::max_bytes`]: the caller should
    /// stop reading input until acks make room. Appends are still accepted.
    pub fn is_full(&self) -> bool {
        self.pending_bytes() >= self.inner.opts.max_bytes
    }

    /// The lowest pending seq, if any. Reads the tree; a storage error reads as `None`
    /// (this feeds gauges) — use [`Wal::try_oldest_pending`] to see it.
    pub fn oldest_pending(&self) -> Option<Seq> {
        self.try_oldest_pending().ok().flatten()
    }

    /// [`Wal::oldest_pending`], with storage errors reported.
    pub fn try_oldest_pending(&self) -> Result<Option<Seq>, WalError> {
        match self.inner.tree.scan_prefix([keys::RECORD]).keys().next() {
            None => Ok(None),
            Some(Err(e)) => Err(WalError::storage(Op::OldestPending, None)(e)),
            Some(Ok(k)) => keys::parse_record(&k)
                .map(Some)
                .ok_or_else(|| WalError::MalformedKey {
                    op: Op::OldestPending,
                    key: k.to_vec(),
                }),
        }
    }

    /// Bytes the whole sled database occupies on disk (all trees, sled's overhead included).
    pub fn size_on_disk(&self) -> Result<u64, WalError> {
        self.inner
            .db
            .size_on_disk()
            .map_err(WalError::storage(Op::SizeOnDisk, None))
    }

    /// The options this WAL was opened with.
    pub fn options(&self) -> &WalOptions {
        &self.inner.opts
    }

    fn lock_seqs(&self) -> MutexGuard<'_, SeqAlloc> {
        // The guarded values are only written after the step they describe succeeded,
        // so they are consistent even if a holder panicked.
        self.inner
            .seqs
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Takes a removed record value out of the pending counters.
    fn uncount(&self, value: &[u8]) {
        let sub = |counter: &AtomicU64, n: u64| {
            // Saturating: a counter never wraps, even under an unforeseen race.
            let _ = counter.fetch_update(Ordering::Relaxed, Ordering::Relaxed, |c| {
                Some(c.saturating_sub(n))
            });
        };
        sub(&self.inner.pending_records, 1);
        sub(&self.inner.pending_bytes, frame::charge(value));
    }
}

/// Checks the layout version recorded in the tree, recording ours in a new tree.
fn check_format(tree: &sled::Tree) -> Result<(), WalError> {
    let err = WalError::storage(Op::Open, None);
    match tree.get(keys::META_FORMAT).map_err(err)? {
        Some(v) => match keys::u32_value(&v) {
            Some(FORMAT_VERSION) => Ok(()),
            // Version 1 is version 2 without pieces: recording 2 is the whole upgrade (and
            // keeps a version-1 build from misreading the heads written from now on).
            Some(1) => tree
                .insert(keys::META_FORMAT, &FORMAT_VERSION.to_be_bytes())
                .map(drop)
                .map_err(WalError::storage(Op::Open, None)),
            Some(found) => Err(WalError::UnsupportedFormat {
                found,
                supported: FORMAT_VERSION,
            }),
            None => Err(WalError::Decode {
                op: Op::Open,
                what: "the format version",
                seq: None,
                source: None,
            }),
        },
        None => {
            // Durable with the first flush; if a crash loses it, the tree it describes is
            // as new as it was, and the next open writes it again.
            tree.insert(keys::META_FORMAT, &FORMAT_VERSION.to_be_bytes())
                .map(drop)
                .map_err(WalError::storage(Op::Open, None))
        }
    }
}

/// Deletes pieces whose head is gone: an ack removes a head before its pieces, so a crash in
/// between leaves them behind (their record was acknowledged; nothing of value is deleted).
fn sweep_orphan_pieces(tree: &sled::Tree) -> Result<(), WalError> {
    let err = || WalError::storage(Op::Open, None);
    let mut checked: Option<(Seq, bool)> = None;
    for key in tree.scan_prefix([keys::PIECE]).keys() {
        let key = key.map_err(err())?;
        let seq = keys::parse_piece(&key).ok_or_else(|| WalError::MalformedKey {
            op: Op::Open,
            key: key.to_vec(),
        })?;
        let orphan = match checked {
            Some((s, orphan)) if s == seq => orphan,
            _ => {
                let orphan = !tree.contains_key(keys::record(seq)).map_err(err())?;
                checked = Some((seq, orphan));
                orphan
            }
        };
        if orphan {
            tree.remove(&key).map_err(err())?;
        }
    }
    Ok(())
}
