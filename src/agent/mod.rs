//! The agent: follows log files and ships every line to Kafka, losing none.
//!
//! Modules, in data-path order:
//! - [`paths`]: which collect entries, from where (the config file, etcd; kept in the WAL);
//! - [`discovery`]: which files the entries match (globs, rescans, inotify hints);
//! - [`identity`]: what a file is (device, inode, birth time, first-line fingerprint, stream);
//! - [`checkpoint`]: where we are in each file, stored atomically with the data;
//! - [`framing`]: which bytes form complete lines;
//! - [`multiline`]: which consecutive lines form one event (`multiline` of a collect entry);
//! - [`tailer`]: one followed file: reads its complete lines, notices truncation, idleness
//!   and the end of a drained file;
//! - [`copytruncate`]: finding the copy of a truncated file and continuing its stream there;
//! - [`file_server`]: the reading loop over the tailers, committing reads and checkpoints to
//!   the WAL;
//! - [`open_files`]: the open-files budget (the soft limit raised at start);
//! - [`disk`]: whether `data_dir`'s filesystem still has room (reading pauses when not);
//! - [`chunk`]: the WAL record format;
//! - [`acked`]: read times, and how far Kafka has acknowledged them (`acked_through`);
//! - [`encoder`]: the Kafka record of each line of a chunk;
//! - [`shipper`]: WAL → Kafka, acknowledging WAL records only after Kafka did;
//! - [`monitor`]: WAL and disk gauges, backlog progress;
//! - [`supervisor`]: the threads, watched (an error is reported at once, the stop is bounded);
//! - [`status`]: `logship status`, from the agent's endpoint or its stopped WAL;
//! - [`events`]: what the modules above report, as one trait ([`events::AgentEvents`]); they
//!   never log, record metrics or touch health themselves;
//! - [`report`]: the agent's events turned into logs, metrics and health ([`report::Reported`],
//!   plugged in by [`run`]).
//!
//! Up to four threads, started by [`supervisor::Workers`]: the reader
//! ([`file_server::FileServer`]), the shipper ([`shipper::Shipper`]) and the monitor
//! ([`monitor`]); they share the WAL and a queue of committed sequence numbers. With `[etcd]`, a
//! fourth ([`crate::etcd::start_agent_side`]) publishes the central collect entries that the
//! reader picks up between rounds through [`paths::CentralPaths`].

pub mod acked;
pub mod checkpoint;
pub mod chunk;
mod copytruncate;
pub(crate) mod discovery;
pub mod disk;
pub(crate) mod encoder;
pub(crate) mod events;
pub(crate) mod file_server;
pub(crate) mod followed;
pub mod framing;
pub(crate) mod host_sampler;
pub(crate) mod identity;
pub(crate) mod monitor;
pub mod multiline;
pub(crate) mod open_files;
pub(crate) mod paths;
pub(crate) mod report;
pub mod shipper;
pub mod status;
pub(crate) mod store;
pub(crate) mod supervisor;
mod tailer;

// The reader's model test: test-only, kept out of the production files.
#[cfg(test)]
#[path = "tests/reader_model.rs"]
mod reader_model;

use std::sync::mpsc::sync_channel;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use logship_wal::{Replayed, Wal, WalOptions};

use crate::config::{AgentConfig, MAX_READ_BYTES};
use crate::etcd::entries::CentralEntries;
use crate::shutdown::Shutdown;
use crate::telemetry::Health;
use discovery::ChangeWatcher;
use events::AgentEvents;
use file_server::{FileServer, ReaderSettings};
use paths::{CentralPaths, PathsProvider, StaticPaths};
use report::Reported;
use shipper::{ShipQueue, Shipper};

/// Runs the agent until `shutdown` (or a fatal error, which also stops the other thread).
/// With `metrics_addr`, the endpoint is listening before the agent starts reading.
///
/// On every `reload` (SIGHUP, or a change to a `[kafka.tls]` / `[kafka.sasl]` file) the shipper
/// switches to a producer built from the files as they are then (see [`shipper`]).
pub async fn run(
    config: AgentConfig,
    shutdown: Shutdown,
    reload: crate::reload::Reload,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(config.health_grace_ms.get()));
    let events: Arc<dyn AgentEvents> = Arc::new(Reported::new(health.clone()));
    let status = Arc::new(status::RunningStatus::default());
    if let Some(addr) = config.metrics_addr {
        let endpoint = crate::telemetry::Endpoint::install(health)?.with_status(status.clone());
        // The endpoint is not stopped with the agent: /health answers (503, with the reason a
        // thread failed) until the process exits, which the supervisor bounds.
        crate::telemetry::serve(
            addr,
            config.metrics_tls.as_ref(),
            endpoint,
            Shutdown::new(),
            &reload,
        )
        .await?;
    }
    let mut files =
        crate::config::kafka_security::files(config.kafka.tls.as_ref(), config.kafka.sasl.as_ref());
    files.extend(config.metrics_tls.iter().flat_map(|tls| tls.files()));
    let _watch = reload.watch_files(files);
    tokio::task::spawn_blocking(move || run_blocking(config, shutdown, reload, &status, events))
        .await
        .context("agent thread panicked")?
}

/// The agent on the calling thread (blocking); `status` is given the WAL once it is open;
/// everything that happens is reported to `events`.
pub fn run_blocking(
    config: AgentConfig,
    shutdown: Shutdown,
    reload: crate::reload::Reload,
    status: &status::RunningStatus,
    events: Arc<dyn AgentEvents>,
) -> anyhow::Result<()> {
    let host = config.host_name();
    // The free-space guard looks at data_dir's filesystem once before anything is written:
    // one too small ever to read on is refused here rather than paused on forever.
    std::fs::create_dir_all(&config.data_dir)
        .with_context(|| format!("cannot create data_dir {}", config.data_dir.display()))?;
    let disk_guard = disk::DiskGuard::open(&config.data_dir, config.min_free_bytes)?;
    if disk_guard.mode() == disk::GuardMode::SizeUnknown {
        events.disk_size_unknown(&config.data_dir);
    }
    let wal_dir = config.data_dir.join("wal");
    let wal = Wal::open(
        &wal_dir,
        WalOptions::default().max_bytes(config.wal_max_bytes),
    )
    .with_context(|| format!("cannot open the WAL in {}", wal_dir.display()))?;

    let queue = ShipQueue::new();
    let mut pending = 0u64;
    let mut read_times = Vec::new();
    for item in wal.replay() {
        match item.context("cannot replay the WAL")? {
            Replayed::Record(entry) => {
                queue.push(&[entry.seq]);
                pending += 1;
                if let Some(read) = chunk::Chunk::read_time_of(&entry.payload) {
                    read_times.push((entry.seq, read));
                }
            }
            Replayed::Quarantined { seq, reason } => events.quarantined(seq, &reason, true),
        }
    }
    let acked_through = Arc::new(acked::AckedThrough::starting_with(&read_times));
    status.attach(wal.clone(), &config.data_dir);
    let backlog = Arc::new(monitor::Backlog::default());
    let wal_at_start = wal.pending_bytes();
    events.starting(&host, &config.data_dir, pending, wal.pending_bytes());
    match open_files::raise_soft_limit() {
        Ok(limit) => events.open_files_limit(&limit),
        Err(error) => events.open_files_not_raised(&error, open_files::soft_limit()),
    }

    let (wake_tx, wake_rx) = sync_channel(1);
    let settings = ReaderSettings {
        max_line_bytes: config.max_line_bytes,
        read_chunk_bytes: config.read_chunk_bytes,
        rescan_interval: config.rescan_interval_ms.get(),
        rotate_wait: config.rotate_wait_ms.get(),
        close_idle: config.close_idle_ms.get(),
        start_position: config.start_position,
    };
    // The file's entries, then etcd's: those accepted last time (kept in the WAL state) until
    // the watcher publishes newer ones, so the first scan, and a start without etcd, collect
    // what was collected before.
    let mut providers: Vec<Box<dyn PathsProvider>> =
        vec![Box::new(StaticPaths::new(config.collect.clone()))];
    let central = config.etcd.as_ref().map(|etcd| {
        let entries = CentralEntries::default();
        providers.push(Box::new(CentralPaths::load(
            entries.clone(),
            wal.clone(),
            &etcd.allowed_paths,
            events.as_ref(),
        )));
        (etcd, entries)
    });
    let server = FileServer::new(
        settings,
        providers,
        wal.clone(),
        ChangeWatcher::new(wake_tx.clone(), events.as_ref()),
        wake_rx,
        queue.clone(),
        events.clone(),
    )?
    .with_backlog(backlog.clone())
    .with_disk_guard(disk_guard)
    .with_acked_through(acked_through.clone());
    status.attach_waiting(server.waiting_files());
    let etcd_side = match central {
        Some((etcd, entries)) => Some(
            crate::etcd::start_agent_side(
                etcd,
                &host,
                entries,
                server.followed_files(),
                Arc::new(status::WalProgress {
                    wal: wal.clone(),
                    acked_through: acked_through.clone(),
                }),
                events.clone(),
                shutdown.clone(),
            )
            .context("cannot start the etcd thread")?,
        ),
        None => None,
    };
    let stop_budget = config.shutdown_timeout_ms.get();
    let sampler_queue = queue.clone();
    let shipper = Shipper {
        host,
        wal: wal.clone(),
        kafka: config.kafka.clone(),
        // Events joined by `multiline` (from the file or, later, from etcd) may reach
        // `multiline.max_bytes`, at most MAX_READ_BYTES: records are allowed that large.
        max_record_bytes: max_record_bytes(config.max_line_bytes.max(MAX_READ_BYTES)),
        queue,
        wake_reader: wake_tx,
        shutdown_timeout: drain_budget(stop_budget),
        backlog: backlog.clone(),
        resend: config.retry.policy(crate::config::KAFKA_RESEND),
        events: events.clone(),
        reload,
        acked_through: acked_through.clone(),
    };
    let monitor = monitor::Monitor {
        wal: wal.clone(),
        backlog,
        followed: server.followed_files(),
        wal_at_start,
        progress_interval: config.progress_interval_ms.get(),
        data_dir: config.data_dir.clone(),
        events: events.clone(),
    };
    let mut workers = supervisor::Workers::new(events.clone());
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
    if let Some(metrics) = config.host_metrics.clone() {
        let sampler = host_sampler::HostSampler {
            wal: wal.clone(),
            queue: sampler_queue,
            host: config.host_name(),
            config: metrics,
            events: events.clone(),
            acked_through: acked_through.clone(),
        };
        let sampler_shutdown = shutdown.clone();
        workers.spawn("host-metrics", true, &shutdown, move || {
            sampler
                .run(&sampler_shutdown)
                .context("host metrics sampling failed")
        })?;
    }
    if let Some(etcd_side) = etcd_side {
        workers.adopt("etcd", etcd_side)?;
    }
    workers.stop(&shutdown, stop_budget, wal.clone())?;
    events.stopped(wal.pending_bytes());
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
