//! What the reader has committed: the WAL (records and checkpoints), the checkpoints in memory,
//! and the shipper's queue of records to send.
//!
//! Durability: a round's reads are appended to the WAL with their files' new checkpoints in one
//! atomic sled batch and fsynced (`Wal::flush`) before the in-memory checkpoints move and
//! before the shipper is told of the records ([`Store::commit_round`]); checkpoints without
//! data (new files, finished files) the same way ([`Store::commit_checkpoints`]). A crash
//! before the fsync loses neither data nor position: the checkpoint did not move, so the
//! bytes are read again; a crash after it loses nothing either: the bytes are in the WAL and
//! are resent on start.

use std::sync::Arc;

use logship_wal::{Wal, WalError};

use super::acked::AckedThrough;
use super::checkpoint::{Checkpoint, Checkpoints};
use super::events::AgentEvents;
use super::shipper::ShipQueue;
use super::tailer::Read;

/// Errors that stop the reading loop (the agent then exits; a restart resumes safely).
#[derive(Debug, thiserror::Error)]
pub enum ReaderError {
    /// The WAL failed.
    #[error(transparent)]
    Wal(#[from] WalError),
    /// A checkpoint could not be encoded: nothing of it was written.
    #[error("cannot encode the checkpoint of {path}: {error}")]
    Encode {
        /// The file's path.
        path: String,
        /// The serializer's error (in the message, so not repeated as a source).
        error: bincode::Error,
    },
}

/// Encodes `checkpoint` with its state key, or says which file's could not be.
fn encoded(checkpoint: &Checkpoint) -> Result<(Vec<u8>, Vec<u8>), ReaderError> {
    let value = checkpoint.encode().map_err(|error| ReaderError::Encode {
        path: checkpoint.path.clone(),
        error,
    })?;
    Ok((checkpoint.key(), value))
}

/// The WAL, the committed checkpoints and the shipper's queue.
pub struct Store {
    wal: Wal,
    checkpoints: Checkpoints,
    queue: ShipQueue,
    acked: Arc<AckedThrough>,
}

impl Store {
    /// Loads the checkpoints kept in `wal`'s state (an unreadable one is reported and
    /// skipped: its file is then read as new).
    pub fn load(
        wal: Wal,
        queue: ShipQueue,
        events: &dyn AgentEvents,
    ) -> Result<Store, ReaderError> {
        let mut loaded = Vec::new();
        for item in wal.state_scan_prefix(super::checkpoint::KEY_PREFIX.as_bytes()) {
            let (key, value) = item?;
            match Checkpoint::decode(&value) {
                Ok(checkpoint) => loaded.push(checkpoint),
                Err(error) => {
                    events.checkpoint_unreadable(&String::from_utf8_lossy(&key), &error.to_string())
                }
            }
        }
        events.checkpoints_loaded(loaded.len());
        Ok(Store {
            wal,
            checkpoints: Checkpoints::load(loaded),
            queue,
            acked: Arc::default(),
        })
    }

    /// Reports read rounds and their records' read times to `acked` (the agent's published
    /// `acked_through`) instead of a tracker of its own.
    pub fn set_acked_through(&mut self, acked: Arc<AckedThrough>) {
        self.acked = acked;
    }

    /// The committed checkpoints.
    pub fn checkpoints(&self) -> &Checkpoints {
        &self.checkpoints
    }

    /// The WAL holds `wal_max_bytes` not yet acknowledged by Kafka.
    pub fn is_full(&self) -> bool {
        self.wal.is_full()
    }

    /// Records and bytes in the WAL not yet acknowledged by Kafka.
    pub fn pending(&self) -> (u64, u64) {
        (self.wal.pending_records(), self.wal.pending_bytes())
    }

    /// A read round begins (its start holds `acked_through` until the round is committed).
    pub fn begin_round(&self) {
        self.acked.begin_round();
    }

    /// Commits a round: `reads` with their checkpoints and `state_only` checkpoints in one
    /// batch, fsynced, registers the records' read times as not yet acknowledged and ends the
    /// round ([`AckedThrough::end_round`]), then tells the shipper. Returns whether records
    /// were committed.
    pub fn commit_round(
        &mut self,
        reads: Vec<Read>,
        state_only: Vec<Checkpoint>,
        events: &dyn AgentEvents,
    ) -> Result<bool, ReaderError> {
        if reads.is_empty() && state_only.is_empty() {
            self.acked.end_round(&[]);
            return Ok(false);
        }
        let mut states: Vec<(Vec<u8>, Vec<u8>)> =
            Vec::with_capacity(reads.len() + state_only.len());
        for checkpoint in state_only.iter().chain(reads.iter().map(|r| &r.checkpoint)) {
            states.push(encoded(checkpoint)?);
        }
        // The last write of a key in a batch wins, so a file read twice in one round ends at its
        // latest checkpoint.
        let payloads: Vec<&[u8]> = reads.iter().map(|r| r.payload.as_slice()).collect();
        let state_refs: Vec<(&[u8], Option<&[u8]>)> = states
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        let seqs = self.wal.append(&payloads, &state_refs)?;
        self.wal.flush()?;
        let read_times: Vec<(u64, i64)> = seqs
            .iter()
            .zip(reads.iter())
            .map(|(seq, read)| (*seq, read.read_at))
            .collect();
        self.acked.end_round(&read_times);
        for read in &reads {
            events.read(&read.checkpoint.path, read.lines, read.bytes);
        }
        for checkpoint in state_only
            .into_iter()
            .chain(reads.into_iter().map(|r| r.checkpoint))
        {
            self.checkpoints.set(checkpoint);
        }
        self.queue.push(&seqs);
        Ok(!seqs.is_empty())
    }

    /// Writes checkpoints without data (new files, finished files) durably.
    pub fn commit_checkpoints(&mut self, checkpoints: Vec<Checkpoint>) -> Result<(), ReaderError> {
        if checkpoints.is_empty() {
            return Ok(());
        }
        let states: Vec<(Vec<u8>, Vec<u8>)> =
            checkpoints.iter().map(encoded).collect::<Result<_, _>>()?;
        let refs: Vec<(&[u8], Option<&[u8]>)> = states
            .iter()
            .map(|(k, v)| (k.as_slice(), Some(v.as_slice())))
            .collect();
        self.wal.append(&[], &refs)?;
        self.wal.flush()?;
        for checkpoint in checkpoints {
            self.checkpoints.set(checkpoint);
        }
        Ok(())
    }
}
