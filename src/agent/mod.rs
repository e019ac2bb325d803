//! The agent: follows log files and ships every line to Kafka, losing none.
//!
//! Modules, in data-path order:
//! - [`discovery`]: which files (globs, rescans, inotify hints, the central entries);
//! - [`identity`]: what a file is (device, inode, birth time, first-line fingerprint, stream);
//! - [`checkpoint`]: where we are in each file, stored atomically with the data;
//! - [`framing`]: which bytes form complete lines;
//! - [`file_server`]: the reading loop that commits reads and checkpoints to the WAL;
//! - [`open_files`]: the open-files budget (the soft limit raised at start);
//! - [`disk`]: whether `data_dir`'s filesystem still has room (reading pauses when not);
//! - [`chunk`]: the WAL record format;
//! - [`encoder`]: the Kafka record of each line of a chunk;
//! - [`shipper`]: WAL → Kafka, acknowledging WAL records only after Kafka did;
//! - [`monitor`]: WAL and disk gauges, backlog progress;
//! - [`supervisor`]: the threads, watched (an error is logged at once, the stop is bounded);
//! - [`status`]: `logship status`, from the agent's endpoint or its stopped WAL.
//!
//! Up to four threads, started by [`supervisor::Workers`]: the reader
//! ([`file_server::FileServer`]), the shipper ([`shipper::Shipper`]) and the monitor
//! ([`monitor`]); they share the WAL and a queue of committed sequence numbers. With `[etcd]`, a
//! fourth ([`crate::etcd::start_agent_side`]) publishes the central collect entries
//! ([`discovery::RemoteEntries`]) that the reader applies between rounds.

pub mod checkpoint;
pub mod chunk;
pub mod discovery;
pub mod disk;
pub mod encoder;
pub mod file_server;
pub mod framing;
pub mod identity;
pub mod monitor;
pub mod open_files;
pub mod shipper;
pub mod status;
pub mod supervisor;

#[cfg(test)]
mod reader_model;

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use logship_wal::{Replayed, Wal, WalOptions};

use crate::config::AgentConfig;
use crate::shutdown::Shutdown;
use discovery::{ChangeWatcher, Discovery, RemoteEntries};
use file_server::{FileServer, ReaderSettings};
use shipper::{ShipQueue, Shipper};

/// Runs the agent until `shutdown` (or a fatal error, which also stops the other thread).
/// With `metrics_addr`, the endpoint is listening before the agent starts reading.
pub async fn run(config: AgentConfig, shutdown: Shutdown) -> anyhow::Result<()> {
    crate::telemetry::Health::global().set_grace(Duration::from_millis(config.health_grace_ms));
    let status = Arc::new(status::RunningStatus::default());
    if let Some(addr) = config.metrics_addr {
        let endpoint = crate::telemetry::Endpoint::install()?.with_status(status.clone());
        // The endpoint is not stopped with the agent: /health answers (503, with the reason a
        // thread failed) until the process exits, which the supervisor bounds.
        crate::telemetry::serve(addr, endpoint, Shutdown::new()).await?;
    }
    tokio::task::spawn_blocking(move || run_blocking(config, shutdown, &status))
        .await
        .context("agent thread panicked")?
}

/// The agent on the calling thread (blocking); `status` is given the WAL once it is open.
pub fn run_blocking(
    config: AgentConfig,
    shutdown: Shutdown,
    status: &status::RunningStatus,
) -> anyhow::Result<()> {
    let host = config.host_name();
    let wal_dir = config.data_dir.join("wal");
    let wal = Wal::open(
        &wal_dir,
        WalOptions::default().max_bytes(config.wal_max_bytes),
    )
    .with_context(|| format!("cannot open the WAL in {}", wal_dir.display()))?;

    let queue = ShipQueue::new();
    let mut pending = 0u64;
    for item in wal.replay() {
        match item.context("cannot replay the WAL")? {
            Replayed::Record(entry) => {
                queue.push(&[entry.seq]);
                pending += 1;
            }
            Replayed::Quarantined { seq, reason } => {
                metrics::counter!(crate::telemetry::names::WAL_QUARANTINED_RECORDS).increment(1);
                tracing::error!(
                    seq,
                    reason,
                    "corrupted WAL record moved to quarantine (see `wal.quarantined`); the rest is shipped"
                )
            }
        }
    }
    status.attach(wal.clone(), &config.data_dir);
    let backlog = Arc::new(monitor::Backlog::default());
    let wal_at_start = wal.pending_bytes();
    tracing::info!(
        host,
        data_dir = %config.data_dir.display(),
        pending_chunks = pending,
        pending_bytes = wal.pending_bytes(),
        "agent starting"
    );

    match open_files::raise_soft_limit() {
        Ok(limit) => tracing::info!(
            soft_limit_at_start = ?limit.before,
            soft_limit = ?limit.now,
            files_at_once = ?limit.files(),
            "open-files limit: the agent keeps each followed file open"
        ),
        Err(error) => tracing::warn!(
            %error,
            soft_limit = ?open_files::soft_limit(),
            "cannot raise the open-files limit; following fewer files at once"
        ),
    }

    let (wake_tx, wake_rx) = sync_channel(1);
    let settings = ReaderSettings {
        max_line_bytes: config.max_line_bytes,
        read_chunk_bytes: config.read_chunk_bytes,
        rescan_interval: Duration::from_millis(config.rescan_interval_ms),
        rotate_wait: Duration::from_millis(config.rotate_wait_ms),
        close_idle: Duration::from_millis(config.close_idle_ms),
        start_position: config.start_position,
    };
    let mut server = FileServer::new(
        settings,
        Discovery::new(&config.collect, config.start_position),
        wal.clone(),
        ChangeWatcher::new(wake_tx.clone()),
        wake_rx,
        queue.clone(),
    )?
    .with_backlog(backlog.clone())
    .with_disk_guard(disk::DiskGuard::new(
        &config.data_dir,
        config.min_free_bytes,
    ));
    status.attach_waiting(server.waiting_files());
    let mut etcd_side = None;
    if let Some(etcd) = &config.etcd {
        // The entries accepted last time, so the first scan (and a start without etcd)
        // collects what was collected before.
        let remote = RemoteEntries::default();
        if let Some(cached) = crate::etcd::watcher::load_cache(&wal, &etcd.allowed_paths) {
            tracing::info!(entries = cached.len(), "etcd entries loaded from the cache");
            remote.publish(cached);
        }
        server = server.with_remote_entries(
            config.collect.clone(),
            config.start_position,
            remote.clone(),
        );
        etcd_side = Some(
            crate::etcd::start_agent_side(
                etcd,
                &host,
                wal.clone(),
                remote,
                server.followed_files(),
                shutdown.clone(),
            )
            .context("cannot start the etcd thread")?,
        );
    }
    let stop_budget = Duration::from_millis(config.shutdown_timeout_ms);
    let shipper = Shipper {
        host,
        wal: wal.clone(),
        kafka: config.kafka.clone(),
        max_record_bytes: max_record_bytes(config.max_line_bytes),
        queue,
        wake_reader: wake_tx,
        shutdown_timeout: drain_budget(stop_budget),
        backlog: backlog.clone(),
    };
    let monitor = monitor::Monitor {
        wal: wal.clone(),
        backlog,
        followed: server.followed_files(),
        wal_at_start,
        progress_interval: Duration::from_millis(config.progress_interval_ms),
        data_dir: config.data_dir.clone(),
    };
    let mut workers = supervisor::Workers::default();
    let monitor_shutdown = shutdown.clone();
    workers.spawn("monitor", false, &shutdown, move || {
        monitor.run(&monitor_shutdown);
        Ok(())
    })?;
    let reader_shutdown = shutdown.clone();
    let data_dir = config.data_dir.clone();
    workers.spawn("reader", true, &shutdown, move || {
        server
            .run(&reader_shutdown)
            .with_context(|| format!("reading into the WAL in {} failed", data_dir.display()))
    })?;
    let shipper_shutdown = shutdown.clone();
    workers.spawn("shipper", true, &shutdown, move || {
        shipper.run(&shipper_shutdown).context("shipping failed")
    })?;
    if let Some(etcd_side) = etcd_side {
        workers.adopt("etcd", etcd_side)?;
    }
    workers.stop(&shutdown, stop_budget, wal.clone())?;
    tracing::info!(pending_bytes = wal.pending_bytes(), "agent stopped");
    Ok(())
}

/// The largest Kafka record a line of `max_line_bytes` can become: invalid UTF-8 can triple in
/// size as U+FFFD, JSON escaping can double control characters, plus the envelope.
pub fn max_record_bytes(max_line_bytes: usize) -> usize {
    max_line_bytes.saturating_mul(6).saturating_add(64 * 1024)
}

/// Of the time allowed to stop, what the shipper may spend waiting for Kafka: all of it but
/// [`FINAL_FLUSH_RESERVE`] (and at least half of it), so the final WAL flush fits in too.
fn drain_budget(stop_budget: Duration) -> Duration {
    stop_budget
        .saturating_sub(FINAL_FLUSH_RESERVE)
        .max(stop_budget / 2)
}

/// The part of `shutdown_timeout_ms` kept for the final WAL flush.
const FINAL_FLUSH_RESERVE: Duration = Duration::from_secs(1);
