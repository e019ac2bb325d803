//! Measures how much disk a WAL takes compared with what it holds (sled's space amplification).
//!
//! `cargo run --release -p logship-wal --example disk_use -- [max_bytes] [value_bytes] [gigabytes]`
//!
//! Appends records of `value_bytes` (random, incompressible: like the agent's compressed chunks)
//! through a WAL of `max_bytes` (default 8 MiB), acknowledging the oldest records so that what is
//! pending stays at most `max_bytes`, for `gigabytes` written in all (default 1). Three phases:
//! steady (little pending), an outage (pending grows to `max_bytes`, then drains at once), steady
//! again. Prints the largest size on disk seen in each phase, in bytes and as a multiple of
//! `max_bytes`.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::VecDeque;
use std::os::unix::fs::MetadataExt as _;
use std::path::Path;

use logship_wal::{Wal, WalOptions};

fn disk_usage(dir: &Path) -> u64 {
    let mut total = 0;
    let mut pending = vec![dir.to_path_buf()];
    while let Some(dir) = pending.pop() {
        let Ok(entries) = std::fs::read_dir(&dir) else {
            continue;
        };
        for entry in entries.flatten() {
            let Ok(metadata) = std::fs::symlink_metadata(entry.path()) else {
                continue;
            };
            if metadata.is_dir() {
                pending.push(entry.path());
            }
            total += metadata.blocks() * 512;
        }
    }
    total
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse())
        .collect::<Result<_, _>>()?;
    let max_bytes = args.first().copied().unwrap_or(8 << 20);
    let value_bytes = args.get(1).copied().unwrap_or(200 << 10) as usize;
    let gigabytes = args.get(2).copied().unwrap_or(1);
    let dir = tempfile::tempdir_in(std::env::var("DISK_USE_DIR").unwrap_or_else(|_| ".".into()))?;
    let opts = WalOptions::default().max_bytes(max_bytes);
    let wal = match std::env::var("DISK_USE_SLED_MODE").as_deref() {
        Ok("low-space") => Wal::with_db(
            sled::Config::new()
                .path(dir.path())
                .flush_every_ms(None)
                .cache_capacity(opts.cache_bytes)
                .mode(sled::Mode::LowSpace)
                .open()?,
            opts,
        )?,
        _ => Wal::open(dir.path(), opts)?,
    };
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut value = vec![0u8; value_bytes];
    let mut pending: VecDeque<u64> = VecDeque::new();
    let total = gigabytes << 30;
    let per_phase = total / 3;
    let mut written = 0u64;
    for phase in ["steady", "outage then drain", "steady after"] {
        let mut max_seen = 0u64;
        let phase_end = written + per_phase;
        let outage = phase.starts_with("outage");
        while written < phase_end {
            for chunk in value.chunks_mut(8) {
                rng ^= rng << 13;
                rng ^= rng >> 7;
                rng ^= rng << 17;
                let bytes = rng.to_le_bytes();
                chunk.copy_from_slice(&bytes[..chunk.len()]);
            }
            let seqs = wal.append(&[&value], &[(b"offset", Some(&written.to_le_bytes()))])?;
            wal.flush()?;
            pending.extend(seqs);
            written += value_bytes as u64;
            // Steady: Kafka acknowledges all but the last few records. Outage: nothing until the
            // WAL is full, then everything at once.
            let keep = if outage { usize::MAX } else { 4 };
            if outage && wal.is_full() {
                let all: Vec<u64> = pending.drain(..).collect();
                wal.ack(&all)?;
                wal.flush()?;
            }
            while pending.len() > keep {
                if let Some(seq) = pending.pop_front() {
                    wal.ack(&[seq])?;
                }
            }
            max_seen = max_seen.max(disk_usage(dir.path()));
        }
        println!(
            "{phase:>18}: max on disk {max_seen} bytes = {:.2} x max_bytes ({} MiB written, value {} KiB)",
            max_seen as f64 / max_bytes as f64,
            per_phase >> 20,
            value_bytes >> 10
        );
    }
    Ok(())
}
