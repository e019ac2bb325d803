//! The transfer: Kafka consumer group → its sinks (Elasticsearch `_bulk` for log records,
//! InfluxDB `/write` for metrics records), every record written exactly once.
//!
//! This module runs rounds: [`run`] sets up the sinks ([`setup`]), then each round makes a
//! consumer, runs the consuming loop ([`pipeline`]) with a stall watch beside it, and ends at
//! shutdown, a reload or a stall (a new consumer joins for the next round).
//!
//! The data path: the loop consumes the configured topics and turns each log
//! record into a document ([`document`]) in the current [`batch::Batch`] (a metrics record into
//! the metrics batch). A batch is handed to a delivery task ([`sink::Delivery`] driving the
//! sink's [`sink::Sink`]) when it is full (documents or bytes) or old enough; up to
//! `batch.max_inflight_bulks` tasks run at once, across partitions. A task retries until every
//! record of its batch is done — created, already present (409), or dead-lettered — and reports
//! each done record to the commit [`watermark`].
//!
//! The commit rule: offsets are committed (every `kafka.commit_interval_ms` — synchronously, on a
//! thread of their own, so a failed commit is known and made again — on every revocation and at
//! shutdown) only up to the lowest record of each partition that is not done. A crash
//! therefore loses nothing (what was not committed is consumed again) and doubles nothing (the
//! `_id` of a record is deterministic and written with `create`, so a second delivery is a 409).
//!
//! Backpressure: up to `batch.max_inflight_bulks` more batches wait for a slot. When they are all
//! waiting and the next batch is full, no record is taken (librdkafka's bounded prefetch queue
//! holds them); if that lasts 2 s, the assigned partitions are paused and the consumer polls
//! again, so it keeps its group membership and serves rebalances while Elasticsearch is down. They
//! are resumed once half the waiting batches are sent. Memory is therefore bounded by about
//! `2 × max_inflight_bulks + 1` batches (each holding its body and the original values, about
//! `2 × batch.max_bytes`) plus librdkafka's prefetch queue.
//!
//! Shutdown: stop consuming, send what was already received, wait for in-flight bulks up to
//! `shutdown_timeout_ms`, commit what is done, leave the group.

pub mod batch;
pub(crate) mod consumer;
pub(crate) mod dlq;
pub mod document;
pub(crate) mod events;
pub mod parse;
mod pipeline;
mod setup;
pub mod sink;
pub mod storage;
pub mod watermark;

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::Context as _;
use rdkafka::consumer::Consumer;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;

use crate::backoff::BackoffPolicy;
use crate::config::{TransferConfig, ES_RETRY};
use crate::kafka::stall::{Stall, StallWatch};
use crate::shutdown::Shutdown;
use crate::telemetry::Health;
use batch::BatchLimits;
use consumer::{ConsumerHooks, ConsumerProgress};
use events::{Counters, TransferEvents};
use pipeline::Pipeline;
use setup::{Setup, Sinks};
use watermark::Watermarks;

/// How often the consumer is looked at for a stall ([`crate::kafka::stall`]).
const STALL_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Runs the transfer until `shutdown` is triggered; returns `Ok` after a clean shutdown.
///
/// Waits (with backoff) while Elasticsearch is unreachable at startup; fails only on a
/// configuration Elasticsearch or Kafka refuses outright.
///
/// On every `reload` (SIGHUP, a changed credentials file) the Elasticsearch client is rebuilt
/// from its files, and the Kafka consumer too: the current round finishes as at shutdown (bulks
/// in flight answered, their offsets committed), the consumer leaves the group, and a new one
/// with the credentials read again joins and goes on from the committed offsets. A reload whose
/// Kafka files cannot be read is logged and changes nothing.
pub async fn run(
    mut config: TransferConfig,
    shutdown: Shutdown,
    reload: crate::reload::Reload,
) -> anyhow::Result<()> {
    let health = Arc::new(Health::new(config.health_grace_ms.get()));
    if let Some(addr) = config.metrics_addr {
        let endpoint = crate::telemetry::Endpoint::install(health.clone())?;
        // Not stopped with the transfer: /health and /metrics answer until the process exits.
        crate::telemetry::serve(
            addr,
            config.metrics_tls.as_ref(),
            endpoint,
            Shutdown::new(),
            &reload,
        )
        .await?;
    }
    let backoff = config.retry.policy(ES_RETRY);
    let counters = Arc::new(Counters::new(health));
    let events: Arc<dyn TransferEvents> = counters.clone();
    let mut files: Vec<std::path::PathBuf> =
        crate::config::kafka_security::files(config.kafka.tls.as_ref(), config.kafka.sasl.as_ref());
    files.extend(config.metrics_tls.iter().flat_map(|tls| tls.files()));
    let setup = Setup {
        config: &config,
        backoff,
        events: events.as_ref(),
        shutdown: &shutdown,
        reload: &reload,
    };
    let Some(sinks) = setup.sinks(&mut files).await? else {
        return Ok(());
    };
    let _watch = reload.watch_files(files);
    if let (Some((es, _)), Some(es_config)) = (&sinks.logs, &config.elasticsearch) {
        let upkeep = storage::Storage {
            es: es.clone(),
            rules: setup::retention_rules(&config, es_config)?,
            every: es_config.indices.retention_check_ms.get(),
            events: counters.clone(),
        };
        tokio::spawn(upkeep.run(config.kafka.clone(), shutdown.clone()));
    }

    let mut changes = reload.subscribe();
    // Lives across rounds: a stall that outlasts a recreated consumer is the same stall, and
    // its recoveries back off.
    let stall = Arc::new(Mutex::new(StallWatch::new(
        config.kafka.stall_timeout_ms.get(),
    )));
    loop {
        changes.borrow_and_update();
        let round = Shutdown::new();
        let ending = tokio::spawn(end_round_on_reload(
            round.clone(),
            shutdown.clone(),
            changes.clone(),
            config.kafka.clone(),
            events.clone(),
        ));
        let consumed =
            consume_round(&config, &round, &sinks, events.clone(), backoff, &stall).await;
        ending.abort();
        if shutdown.is_triggered() {
            events.stopped();
            return consumed.map(drop);
        }
        match consumed {
            Err(error) => {
                events.stopped();
                return Err(error);
            }
            // Said by the `fenced` event; the next consumer joins without the name.
            Ok(RoundEnd::Fenced) => config.kafka.group_instance_id = Some(String::new()),
            Ok(round_end) => events.rejoining(round_end == RoundEnd::Stalled),
        }
    }
}

/// Why a consumer's round ended without an error.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RoundEnd {
    /// Shutdown or a reload ended it.
    Ended,
    /// Kafka stalled (see [`crate::kafka::stall`]), or the consumer failed for good: a new
    /// consumer must join.
    Stalled,
    /// Another transfer joined the group under this one's `group.instance.id`: a new consumer
    /// joins with dynamic membership.
    Fenced,
}

/// Ends `round` at shutdown, or at a reload whose Kafka credentials can be read (one that
/// cannot is logged and the round goes on).
async fn end_round_on_reload(
    round: Shutdown,
    shutdown: Shutdown,
    mut changes: tokio::sync::watch::Receiver<u64>,
    kafka: crate::config::TransferKafkaConfig,
    events: Arc<dyn TransferEvents>,
) {
    loop {
        tokio::select! {
            _ = shutdown.wait() => break,
            changed = changes.changed() => {
                if changed.is_err() {
                    return;
                }
                match crate::kafka::consumer::client_config(&kafka) {
                    Ok(_) => break,
                    Err(error) => events.reload_refused(&error.to_string()),
                }
            }
        }
    }
    round.trigger();
}

/// One consumer's life: created, subscribed, consuming until `round` ends or `stall` says to
/// recover, then finished as at shutdown (in-flight bulks answered, offsets committed).
async fn consume_round(
    config: &TransferConfig,
    round: &Shutdown,
    sinks: &Sinks,
    events: Arc<dyn TransferEvents>,
    backoff: BackoffPolicy,
    stall: &Arc<Mutex<StallWatch>>,
) -> anyhow::Result<RoundEnd> {
    let marks = Arc::new(Mutex::new(Watermarks::new()));
    let paused = Arc::new(AtomicBool::new(false));
    let progress = Arc::new(ConsumerProgress::default());
    let consumer = consumer::create(
        &config.kafka,
        ConsumerHooks::new(
            marks.clone(),
            events.clone(),
            paused.clone(),
            progress.clone(),
        ),
    )
    .context("cannot create the Kafka consumer")?;
    let topics: Vec<&str> = config.kafka.topics.iter().map(String::as_str).collect();
    consumer
        .subscribe(&topics)
        .with_context(|| format!("cannot subscribe to {topics:?}"))?;
    events.consuming(
        &config.kafka.topics,
        &config.kafka.group,
        config
            .kafka
            .group_instance_id
            .as_deref()
            .filter(|id| !id.is_empty()),
        config
            .elasticsearch
            .as_ref()
            .map(|es| es.indices.index.as_str()),
        config
            .influxdb
            .as_ref()
            .map(|influx| influx.connection.url.as_str()),
    );

    let routes = sinks.routes(config, &marks, &events, backoff)?;
    let limits = BatchLimits {
        max_docs: config.batch.max_docs,
        max_bytes: config.batch.max_bytes,
        max_wait: config.batch.max_wait_ms.get(),
    };
    let mut pipeline = Pipeline {
        consumer: Arc::new(consumer),
        marks,
        events,
        paused,
        routes,
        limits,
        permits: Arc::new(Semaphore::new(config.batch.max_inflight_bulks)),
        tasks: JoinSet::new(),
        ready: VecDeque::new(),
        max_ready: config.batch.max_inflight_bulks,
        commit: None,
        progress: progress.clone(),
        ended: None,
    };
    // The watch runs beside the loop, so that a loop held inside the client (a synchronous
    // commit on revoke to a coordinator that does not answer) is noticed all the same.
    let stalled = Arc::new(AtomicBool::new(false));
    let watch = tokio::spawn(watch_stalls(
        stall.clone(),
        progress,
        pipeline.events.clone(),
        round.clone(),
        stalled.clone(),
    ));
    let consumed = pipeline
        .consume(round, config.kafka.commit_interval_ms.get())
        .await;
    watch.abort();
    pipeline.finish(config.shutdown_timeout_ms.get()).await;
    match consumed {
        Ok(_) if stalled.load(Ordering::SeqCst) => Ok(RoundEnd::Stalled),
        other => other,
    }
}

/// Looks at the consumer once every [`STALL_CHECK_INTERVAL`]: while it waits on Kafka (see
/// [`ConsumerProgress::waiting`]) with no record received and no commit answered for the
/// stall bound, the stall is reported (`/health`, a warning); when the watch says to recover,
/// the round is ended (`stalled` set) so that a new consumer joins.
async fn watch_stalls(
    stall: Arc<Mutex<StallWatch>>,
    progress: Arc<ConsumerProgress>,
    events: Arc<dyn TransferEvents>,
    round: Shutdown,
    stalled: Arc<AtomicBool>,
) {
    let mut tick = tokio::time::interval(STALL_CHECK_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut seen = progress.answered.load(Ordering::Relaxed);
    loop {
        tick.tick().await;
        let now = std::time::Instant::now();
        let answered = progress.answered.load(Ordering::Relaxed);
        let waiting = progress.waiting();
        let verdict = {
            let mut stall = crate::sync::lock(&stall);
            if answered != seen {
                stall.progress(now);
            }
            stall.check(now, waiting.is_some())
        };
        seen = answered;
        match verdict {
            Stall::Fine => {}
            Stall::Ended { lasted } => events.kafka_stall_ended(lasted),
            Stall::Stalled {
                stalled_for,
                recover,
            } => {
                events.kafka_stalled(&waiting.unwrap_or_default(), stalled_for);
                if recover {
                    stalled.store(true, Ordering::SeqCst);
                    round.trigger();
                    return;
                }
            }
        }
    }
}
