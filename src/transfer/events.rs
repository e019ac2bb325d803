//! What can happen in the transfer, as one trait: the list of methods is the list of events.
//!
//! The core calls [`TransferEvents`]; what is done with an event (count it, log it, export it as
//! a metric) is plugged in from outside. [`Counters`] counts every outcome, exports it as a
//! Prometheus metric, keeps the `elasticsearch` health condition, and logs the ones an
//! operator must see (refused credentials, dead letters, failed commits); warnings that repeat
//! while a server is down are logged at most once per 10 s, with the number of repeats.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use crate::config::retention::Retention;
use crate::es::disk::{DiskLevel, NodeDisk, Watermarks};
use crate::kafka::topics::TopicRetention;
use crate::kafka::BrokerObserver as _;
use crate::telemetry::{names, Health, Throttle};
use crate::transfer::storage::StorageEvents;

/// The health condition for Elasticsearch trouble (see [`Health`]).
const ES_CONDITION: &str = "elasticsearch";
/// The health condition for InfluxDB trouble.
const INFLUX_CONDITION: &str = "influxdb";

/// One method per event. Implementations must be cheap: several are called per batch.
pub trait TransferEvents: Send + Sync {
    /// Records were received from Kafka for an assigned partition.
    fn received(&self, count: u64);
    /// A record that is not logship JSON was received; it is indexed as a plain line.
    fn plain_record(&self, topic: &str, partition: i32, offset: i64);
    /// A record arrived for a partition not assigned to us (dropped; its owner reads it).
    fn unassigned_record(&self, topic: &str, partition: i32, offset: i64);
    /// A `_bulk` request is sent.
    fn bulk_sent(&self, docs: usize, bytes: usize);
    /// Documents were created.
    fn created(&self, count: u64);
    /// Documents already existed (409 on `create`): an earlier delivery of the same record.
    fn already_present(&self, count: u64);
    /// Documents will be sent again after a backoff (429, 5xx, connection trouble, ...).
    fn retrying(&self, count: u64, reason: &str);
    /// Elasticsearch refused our credentials or permissions; nothing is counted as delivered.
    fn unauthorized(&self, status: u16, detail: &str);
    /// Documents were prepared whose line did not parse, or whose own time was not used (they
    /// are indexed with `parse_error` / `timestamp_error`).
    fn parse_trouble(&self, parse_errors: u64, times_rejected: u64);
    /// Elasticsearch refused the parsed fields of documents for the index's mapping; they are
    /// indexed again with the parsed fields as one string (`parsed_raw`).
    fn mapping_conflict(&self, count: u64, reason: &str);
    /// Records were written to the dead-letter index (and are done).
    fn dead_lettered(&self, count: u64, reason: &str);
    /// Writing to the dead-letter index failed; it is retried.
    fn dead_letter_failed(&self, count: u64, reason: &str);
    /// Work of a partition that was revoked was dropped (its next owner redoes it).
    fn revoked_dropped(&self, count: u64);
    /// Offsets were committed.
    fn committed(&self, partitions: usize);
    /// An offset commit failed (it is retried at the next commit).
    fn commit_failed(&self, error: &str);
    /// The Kafka consumer reported an error (usually transient: a broker is unreachable).
    fn consumer_error(&self, error: &str);
    /// The Kafka client reported `error` with its reason (kept for `/health`, which shows it
    /// while no broker is up).
    fn client_error(&self, error: &str);
    /// The consumer has waited on Kafka for `stalled_for` (at least `stall_timeout_ms`)
    /// without progress, for `reason`; called on every check while it lasts.
    fn kafka_stalled(&self, reason: &str, stalled_for: Duration);
    /// The stall reported by [`TransferEvents::kafka_stalled`] ended.
    fn kafka_stall_ended(&self, lasted: Duration);
    /// The consumer was paused (all bulk slots busy) or resumed.
    fn backpressure(&self, paused: bool);
    /// The consumer's statistics say `up` brokers are up.
    fn brokers_up(&self, up: usize);
    /// The consumer's statistics list these brokers with requests unanswered (named when a
    /// stall is said).
    fn brokers_waiting(&self, waiting: Vec<String>);
    /// An index template is in place.
    fn template_put(&self, template: &str, patterns: &str);
    /// The InfluxDB database or bucket (`destination`, as [`crate::influx::InfluxClient::
    /// destination`] names it) was created (or already there); `refused` when InfluxDB refused
    /// to create it (no admin rights, a token that may not, no buckets API) and writing goes on
    /// anyway.
    fn database_ready(&self, url: &str, destination: &str, refused: Option<&str>);
    /// A deprecated setting is in use (the warning says what to use instead).
    fn deprecated_setting(&self, warning: &str);
    /// An index template could not be put yet (`refused`: credentials or permissions); it is
    /// retried.
    fn template_failed(&self, error: &str, refused: bool);
    /// InfluxDB accepted `count` points.
    fn points_written(&self, count: u64);
    /// A write of `count` points failed and is retried (`refused`: credentials or permissions).
    fn points_retrying(&self, count: u64, reason: &str, refused: bool);
    /// Points InfluxDB refused for good were written to the dead-letter topic (and are done).
    fn points_dead_lettered(&self, count: u64, reason: &str);
    /// Writing points to the dead-letter topic failed; it is retried.
    fn points_dead_letter_failed(&self, count: u64, reason: &str);

    // The life of the consumer and its rounds.

    /// A consumer joined and subscribed (`member`: its static group membership, if any;
    /// `index`/`influxdb`: where records go).
    fn consuming(
        &self,
        topics: &[String],
        group: &str,
        member: Option<&str>,
        index: Option<&str>,
        influxdb: Option<&str>,
    );
    /// A round ended and a new consumer joins: after a stall (`stalled`) or a reload.
    fn rejoining(&self, stalled: bool);
    /// Another transfer joined the group under this one's `kafka.group_instance_id` and Kafka
    /// fenced this one (`reason`, librdkafka's): it goes on with dynamic membership.
    fn fenced(&self, reason: &str);
    /// A reload whose Kafka credentials cannot be read: the consumer in use stays.
    fn reload_refused(&self, error: &str);
    /// Periodic summary, with the records received and not done yet.
    fn progress(&self, outstanding: usize);
    /// The transfer stopped (shutdown or an error).
    fn stopped(&self);
    /// Partitions revoked, `committing` of them with offsets to commit; `lost` when the
    /// assignment was lost (session timed out) and the commit may be refused.
    fn partitions_revoked(&self, partitions: usize, committing: usize, lost: bool);
    /// `added` partitions assigned, `owned` in all now (with incremental rebalancing the
    /// partitions kept are not handed over again).
    fn partitions_assigned(&self, added: usize, owned: usize);
    /// The lag of a partition this consumer fetches, as librdkafka last measured it.
    fn partition_lag(&self, topic: &str, partition: i32, lag: i64);
    /// At shutdown: `records` were never sent (no slot before the timeout), `bulks` in flight
    /// were abandoned; the next owner consumes them again.
    fn left_at_shutdown(&self, records: usize, bulks: usize);
    /// The final commit at the end of a round landed.
    fn final_commit(&self, partitions: usize);
    /// A helper thread could not be started.
    fn thread_failed(&self, name: &str, error: &str);
    /// Leaving the group took too long: the consumer was dropped without it.
    fn close_abandoned(&self);
}

/// Counts every event (atomically) and logs the ones an operator must see.
#[derive(Debug, Default)]
pub struct Counters {
    /// Records received for assigned partitions.
    pub received: AtomicU64,
    /// Records that were not logship JSON.
    pub plain: AtomicU64,
    /// Records dropped because their partition is not ours.
    pub unassigned: AtomicU64,
    /// `_bulk` requests sent.
    pub bulks: AtomicU64,
    /// Documents created.
    pub created: AtomicU64,
    /// Documents that already existed.
    pub already_present: AtomicU64,
    /// Document retries.
    pub retried: AtomicU64,
    /// Unauthorized answers.
    pub unauthorized: AtomicU64,
    /// Documents whose line did not parse.
    pub parse_errors: AtomicU64,
    /// Documents whose own time was not used.
    pub times_rejected: AtomicU64,
    /// Documents indexed again after a mapping conflict.
    pub mapping_conflicts: AtomicU64,
    /// Records written to the dead-letter index.
    pub dead_lettered: AtomicU64,
    /// Failed dead-letter writes.
    pub dead_letter_failed: AtomicU64,
    /// Records of revoked partitions dropped.
    pub revoked_dropped: AtomicU64,
    /// Successful commit requests.
    pub commits: AtomicU64,
    /// Failed commit requests.
    pub commit_failures: AtomicU64,
    /// Consumer errors.
    pub consumer_errors: AtomicU64,
    /// Points written to InfluxDB.
    pub points_written: AtomicU64,
    /// Point write retries.
    pub points_retried: AtomicU64,
    /// Points written to the dead-letter topic.
    pub points_dead_lettered: AtomicU64,
    /// Indices this transfer deleted (retention).
    pub indices_deleted: AtomicU64,
    /// The highest disk level of any node last read (a [`DiskLevel`] as a number), to log
    /// changes only.
    disk_level: AtomicU64,
    /// The process's health (the `elasticsearch` and `kafka` conditions).
    pub health: Arc<Health>,
    consumer_error_log: Throttle,
    stall: crate::kafka::stall::StallReport,
    commit_failure_log: Throttle,
    retry_log: Throttle,
    unauthorized_log: Throttle,
    dead_letter_failure_log: Throttle,
    mapping_conflict_log: Throttle,
    template_log: Throttle,
    points_retry_log: Throttle,
    points_dead_letter_log: Throttle,
}

impl Counters {
    /// Counters reporting into `health`.
    pub fn new(health: Arc<Health>) -> Counters {
        Counters {
            health,
            ..Counters::default()
        }
    }

    /// A one-line summary for the log.
    pub fn summary(&self) -> String {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        format!(
            "received={} plain={} parse_errors={} times_rejected={} mapping_conflicts={} \
             created={} already_present={} dead_lettered={} retried={} \
             unauthorized={} dead_letter_failed={} revoked_dropped={} unassigned={} bulks={} \
             commits={} commit_failures={} consumer_errors={} points_written={} \
             points_retried={} points_dead_lettered={}",
            get(&self.received),
            get(&self.plain),
            get(&self.parse_errors),
            get(&self.times_rejected),
            get(&self.mapping_conflicts),
            get(&self.created),
            get(&self.already_present),
            get(&self.dead_lettered),
            get(&self.retried),
            get(&self.unauthorized),
            get(&self.dead_letter_failed),
            get(&self.revoked_dropped),
            get(&self.unassigned),
            get(&self.bulks),
            get(&self.commits),
            get(&self.commit_failures),
            get(&self.consumer_errors),
            get(&self.points_written),
            get(&self.points_retried),
            get(&self.points_dead_lettered),
        )
    }
}

fn add(counter: &AtomicU64, n: u64) {
    counter.fetch_add(n, Ordering::Relaxed);
}

impl TransferEvents for Counters {
    fn consuming(
        &self,
        topics: &[String],
        group: &str,
        member: Option<&str>,
        index: Option<&str>,
        influxdb: Option<&str>,
    ) {
        tracing::info!(
            ?topics,
            group,
            group_instance_id = member.unwrap_or("(dynamic membership)"),
            index,
            influxdb,
            "transfer started"
        );
    }

    fn fenced(&self, reason: &str) {
        tracing::error!(
            reason,
            "another transfer joined the group under this transfer's kafka.group_instance_id, \
             and Kafka fenced this one: it goes on with dynamic membership (its restarts then \
             wait for the session timeout); give every transfer its own group_instance_id \
             (or its own config file: the default is derived from the file's path)"
        );
    }

    fn rejoining(&self, stalled: bool) {
        if stalled {
            tracing::info!(
                "Kafka stalled: joining the group again with a new consumer (offsets committed \
                 only up to what is indexed)"
            );
        } else {
            tracing::info!(
                "reload: joining the group again with a consumer built from the credentials read again"
            );
        }
    }

    fn reload_refused(&self, error: &str) {
        tracing::error!(
            error,
            "reload: cannot read the Kafka credentials; the consumer in use stays"
        );
    }

    fn progress(&self, outstanding: usize) {
        tracing::info!(counters = %self.summary(), outstanding, "transfer progress");
    }

    fn stopped(&self) {
        tracing::info!(counters = %self.summary(), "transfer stopped");
    }

    fn partitions_revoked(&self, partitions: usize, committing: usize, lost: bool) {
        tracing::info!(
            partitions,
            committing,
            "partitions revoked; committing what is done"
        );
        if lost && committing > 0 {
            tracing::warn!("assignment lost (session timed out); the commit may be refused");
        }
    }

    fn partitions_assigned(&self, added: usize, owned: usize) {
        tracing::info!(partitions = owned, added, "partitions assigned");
    }

    fn partition_lag(&self, topic: &str, partition: i32, lag: i64) {
        metrics::gauge!(
            names::TRANSFER_CONSUMER_LAG,
            "topic" => topic.to_string(),
            "partition" => partition.to_string()
        )
        .set(lag as f64);
    }

    fn left_at_shutdown(&self, records: usize, bulks: usize) {
        if records > 0 {
            tracing::warn!(
                records,
                "no bulk slot before the shutdown timeout; these records are consumed again by the next owner"
            );
        }
        if bulks > 0 {
            tracing::warn!(
                bulks,
                "shutdown timeout: abandoning in-flight bulk requests; their records are consumed again by the next owner"
            );
        }
    }

    fn final_commit(&self, partitions: usize) {
        self.committed(partitions);
        tracing::info!(partitions, "final offsets committed");
    }

    fn thread_failed(&self, name: &str, error: &str) {
        tracing::warn!(error, thread = name, "cannot start a thread");
    }

    fn close_abandoned(&self) {
        tracing::warn!("closing the Kafka consumer takes too long; leaving without it");
    }

    fn received(&self, count: u64) {
        add(&self.received, count);
        metrics::counter!(names::TRANSFER_RECEIVED).increment(count);
    }
    fn plain_record(&self, topic: &str, partition: i32, offset: i64) {
        add(&self.plain, 1);
        tracing::debug!(
            topic,
            partition,
            offset,
            "record is not logship JSON; indexing it as a plain line"
        );
    }
    fn unassigned_record(&self, topic: &str, partition: i32, offset: i64) {
        add(&self.unassigned, 1);
        tracing::debug!(
            topic,
            partition,
            offset,
            "record of a partition not assigned to us; dropped"
        );
    }
    fn bulk_sent(&self, docs: usize, bytes: usize) {
        add(&self.bulks, 1);
        metrics::counter!(names::TRANSFER_BULK_REQUESTS).increment(1);
        tracing::trace!(docs, bytes, "bulk request sent");
    }
    fn created(&self, count: u64) {
        add(&self.created, count);
        metrics::counter!(names::TRANSFER_CREATED).increment(count);
        if count > 0 {
            self.health.recover(ES_CONDITION);
        }
        tracing::trace!(count, "documents created");
    }
    fn already_present(&self, count: u64) {
        add(&self.already_present, count);
        metrics::counter!(names::TRANSFER_ALREADY_PRESENT).increment(count);
        if count > 0 {
            self.health.recover(ES_CONDITION);
        }
        tracing::trace!(count, "documents already present");
    }
    fn retrying(&self, count: u64, reason: &str) {
        add(&self.retried, count);
        metrics::counter!(names::TRANSFER_RETRIED).increment(count);
        self.health
            .fail(ES_CONDITION, format!("documents not accepted: {reason}"));
        if let Some(repeats) = self.retry_log.admit() {
            tracing::warn!(
                count,
                reason,
                repeats,
                "documents not accepted yet; retrying with backoff"
            );
        }
    }
    fn unauthorized(&self, status: u16, detail: &str) {
        add(&self.unauthorized, 1);
        self.health.fail(
            ES_CONDITION,
            format!("credentials or permissions refused (status {status})"),
        );
        if let Some(repeats) = self.unauthorized_log.admit() {
            tracing::error!(
                status,
                detail,
                repeats,
                "Elasticsearch refused the transfer's credentials or permissions; nothing is \
                 committed until this is fixed"
            );
        }
    }
    fn parse_trouble(&self, parse_errors: u64, times_rejected: u64) {
        add(&self.parse_errors, parse_errors);
        add(&self.times_rejected, times_rejected);
        metrics::counter!(names::TRANSFER_PARSE_ERRORS).increment(parse_errors);
        metrics::counter!(names::TRANSFER_TIMESTAMPS_REJECTED).increment(times_rejected);
    }
    fn mapping_conflict(&self, count: u64, reason: &str) {
        add(&self.mapping_conflicts, count);
        metrics::counter!(names::TRANSFER_MAPPING_CONFLICTS).increment(count);
        if let Some(repeats) = self.mapping_conflict_log.admit() {
            tracing::warn!(
                count,
                reason,
                repeats,
                "parsed fields conflict with the index mapping; indexing them as one string \
                 (parsed_raw)"
            );
        }
    }
    fn dead_lettered(&self, count: u64, reason: &str) {
        add(&self.dead_lettered, count);
        metrics::counter!(names::TRANSFER_DEAD_LETTERED).increment(count);
        tracing::warn!(count, reason, "records written to the dead-letter index");
    }
    fn dead_letter_failed(&self, count: u64, reason: &str) {
        add(&self.dead_letter_failed, count);
        self.health.fail(
            ES_CONDITION,
            format!("dead-letter writes failing: {reason}"),
        );
        if let Some(repeats) = self.dead_letter_failure_log.admit() {
            tracing::error!(
                count,
                reason,
                repeats,
                "writing to the dead-letter index failed; retrying"
            );
        }
    }
    fn revoked_dropped(&self, count: u64) {
        add(&self.revoked_dropped, count);
        tracing::debug!(
            count,
            "work of revoked partitions dropped; the next owner redoes it"
        );
    }
    fn committed(&self, partitions: usize) {
        add(&self.commits, 1);
        metrics::counter!(names::TRANSFER_COMMITS).increment(1);
        tracing::trace!(partitions, "offsets committed");
    }
    fn commit_failed(&self, error: &str) {
        add(&self.commit_failures, 1);
        metrics::counter!(names::TRANSFER_COMMIT_FAILURES).increment(1);
        if let Some(repeats) = self.commit_failure_log.admit() {
            tracing::warn!(error, repeats, "offset commit failed; it is retried");
        }
    }
    fn client_error(&self, error: &str) {
        crate::kafka::BrokerObserver::client_error(self.health.as_ref(), error);
    }
    fn consumer_error(&self, error: &str) {
        add(&self.consumer_errors, 1);
        metrics::counter!(names::TRANSFER_CONSUMER_ERRORS).increment(1);
        if let Some(repeats) = self.consumer_error_log.admit() {
            tracing::warn!(
                error,
                repeats,
                "Kafka consumer error (the consumer keeps retrying)"
            );
        }
    }
    fn kafka_stalled(&self, reason: &str, stalled_for: Duration) {
        let reason = format!(
            "Kafka stalled for {}s: {reason}; the consumer is recreated and rejoins, with backoff",
            stalled_for.as_secs()
        );
        self.stall.stalled(&self.health, reason);
    }
    fn kafka_stall_ended(&self, lasted: Duration) {
        self.stall
            .ended(&self.health, lasted, "Kafka serves the consumer again");
    }
    fn backpressure(&self, paused: bool) {
        if paused {
            tracing::debug!("all bulk slots busy: consumption paused");
        } else {
            tracing::debug!("consumption resumed");
        }
    }
    fn brokers_up(&self, up: usize) {
        self.health.brokers_up(up);
    }
    fn brokers_waiting(&self, waiting: Vec<String>) {
        self.stall.waiting(waiting);
    }
    fn template_put(&self, template: &str, patterns: &str) {
        self.health.recover(ES_CONDITION);
        tracing::info!(template, patterns, "index template in place");
    }
    fn database_ready(&self, url: &str, destination: &str, refused: Option<&str>) {
        match refused {
            None => tracing::info!(url, destination, "InfluxDB database or bucket in place"),
            Some(error) => tracing::warn!(
                url,
                destination,
                %error,
                "cannot create the InfluxDB database or bucket; writing to it anyway (set \
                 influxdb.create_database = false when someone else makes it)"
            ),
        }
    }

    fn deprecated_setting(&self, warning: &str) {
        tracing::warn!("{warning}");
    }

    fn template_failed(&self, error: &str, refused: bool) {
        self.health
            .fail(ES_CONDITION, format!("cannot put index templates: {error}"));
        let Some(repeats) = self.template_log.admit() else {
            return;
        };
        if refused {
            tracing::error!(
                error,
                repeats,
                "Elasticsearch refused the transfer's credentials; retrying (fix the secret, \
                 then SIGHUP)"
            );
        } else {
            tracing::warn!(error, repeats, "cannot put index template yet; retrying");
        }
    }
    fn points_written(&self, count: u64) {
        add(&self.points_written, count);
        metrics::counter!(names::TRANSFER_POINTS_WRITTEN).increment(count);
        self.health.recover(INFLUX_CONDITION);
    }
    fn points_retrying(&self, count: u64, reason: &str, refused: bool) {
        add(&self.points_retried, count);
        metrics::counter!(names::TRANSFER_POINTS_RETRIED).increment(count);
        self.health
            .fail(INFLUX_CONDITION, format!("points not accepted: {reason}"));
        if let Some(repeats) = self.points_retry_log.admit() {
            if refused {
                tracing::error!(
                    count,
                    reason,
                    repeats,
                    "InfluxDB refused the transfer's credentials or permissions; nothing is \
                     committed until this is fixed"
                );
            } else {
                tracing::warn!(
                    count,
                    reason,
                    repeats,
                    "points not accepted by InfluxDB yet; retrying with backoff"
                );
            }
        }
    }
    fn points_dead_lettered(&self, count: u64, reason: &str) {
        add(&self.points_dead_lettered, count);
        metrics::counter!(names::TRANSFER_POINTS_DEAD_LETTERED).increment(count);
        tracing::warn!(count, reason, "records written to the dead-letter topic");
    }
    fn points_dead_letter_failed(&self, count: u64, reason: &str) {
        self.health.fail(
            INFLUX_CONDITION,
            format!("dead-letter topic writes failing: {reason}"),
        );
        if let Some(repeats) = self.points_dead_letter_log.admit() {
            tracing::error!(
                count,
                reason,
                repeats,
                "writing to the dead-letter topic failed; retrying"
            );
        }
    }
}

/// The health warning of a node above the high watermark.
const DISK_WARNING: &str = "elasticsearch_disk";
/// The health warning of a retention sweep that failed.
const RETENTION_WARNING: &str = "retention";

impl StorageEvents for Counters {
    fn retention_in_force(&self, data: Retention, dead_letters: Retention) {
        match data {
            Retention::Forever => tracing::warn!(
                "elasticsearch.retention = \"forever\": no index is ever deleted by logship, and \
                 Elasticsearch's disk will fill unless something else deletes them (an ILM \
                 policy, a cron job)"
            ),
            Retention::For(_) => tracing::info!(
                retention = %data,
                dead_letters = %dead_letters,
                "indices older than their retention are deleted"
            ),
        }
    }
    fn index_deleted(&self, index: &str, due: time::OffsetDateTime) {
        add(&self.indices_deleted, 1);
        metrics::counter!(names::TRANSFER_INDICES_DELETED).increment(1);
        tracing::info!(index, due = %due, "index deleted: its retention has passed");
    }
    fn sweep_done(&self, deleted: usize) {
        self.health.clear_warning(RETENTION_WARNING);
        tracing::debug!(deleted, "retention sweep done");
    }
    fn sweep_failed(&self, error: &str) {
        self.health.warn(
            RETENTION_WARNING,
            format!("old indices cannot be deleted ({error}); the disk fills until this is fixed"),
        );
        tracing::warn!(
            error,
            "retention sweep failed; trying again at the next check"
        );
    }
    fn topic_outlives_indices(&self, topic: &str, kafka: &TopicRetention, indices: Retention) {
        let kept = match kafka {
            TopicRetention::For(duration) => humantime::format_duration(*duration).to_string(),
            _ => "without a time limit".to_string(),
        };
        tracing::warn!(
            topic,
            kafka_retention = %kept,
            elasticsearch_retention = %indices,
            "Kafka keeps this topic's records longer than elasticsearch.retention keeps their \
             indices: a replay from its oldest offsets (a reset group) would create indices \
             retention already deleted, until the next sweep deletes them again"
        );
    }
    fn disks(&self, watermarks: &Watermarks, disks: &[NodeDisk]) {
        let worst = disks
            .iter()
            .map(|disk| (watermarks.level(disk), disk))
            .max_by_key(|(level, _)| *level);
        let used_ratio = disks
            .iter()
            .filter(|disk| disk.total > 0)
            .map(|disk| disk.used() as f64 / disk.total as f64)
            .fold(0.0, f64::max);
        metrics::gauge!(names::TRANSFER_ES_DISK_USED_RATIO).set(used_ratio);
        let level = worst.map_or(DiskLevel::Below, |(level, _)| level);
        metrics::gauge!(names::TRANSFER_ES_DISK_ABOVE_HIGH).set(if level >= DiskLevel::High {
            1.0
        } else {
            0.0
        });
        let previous = self.disk_level.swap(level as u64, Ordering::Relaxed);
        match worst {
            Some((level, disk)) if level >= DiskLevel::High => {
                let used = disk.used() as f64 / disk.total.max(1) as f64 * 100.0;
                let enforced = if watermarks.enforced {
                    ""
                } else {
                    " (not enforced: threshold_enabled is false)"
                };
                let reason = format!(
                    "node {} disk {used:.1}% used: above the {} watermark{enforced}; at the \
                     flood stage Elasticsearch refuses writes (shorten elasticsearch.retention \
                     or add disk)",
                    disk.name,
                    if level == DiskLevel::FloodStage {
                        "flood-stage"
                    } else {
                        "high"
                    },
                );
                if previous != level as u64 {
                    tracing::warn!("{reason}");
                }
                self.health.warn(DISK_WARNING, reason);
            }
            _ => {
                if previous >= DiskLevel::High as u64 {
                    tracing::info!("Elasticsearch's disks are below the high watermark again");
                }
                self.health.clear_warning(DISK_WARNING);
            }
        }
    }
    fn disks_unknown(&self, error: &str) {
        tracing::debug!(error, "cannot read Elasticsearch's disks");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_disk_above_the_high_watermark_is_a_warning_until_it_is_below_again() {
        let counters = Counters::default();
        let marks = Watermarks::default();
        let disk = |available| NodeDisk {
            name: "es-1".into(),
            total: 100,
            available,
        };
        counters.disks(&marks, &[disk(50), disk(8)]);
        let report = counters.health.report();
        assert!(report.is_healthy());
        assert_eq!(report.warnings.len(), 1);
        assert!(report.warnings[0]
            .reason
            .contains("92.0% used: above the high watermark"));
        counters.disks(&marks, &[disk(4)]);
        assert!(counters.health.report().warnings[0]
            .reason
            .contains("flood-stage"));
        counters.disks(&marks, &[disk(50)]);
        assert!(counters.health.report().warnings.is_empty());
        counters.sweep_failed("403");
        assert!(counters.health.report().warnings[0].reason.contains("403"));
        counters.sweep_done(0);
        assert!(counters.health.report().warnings.is_empty());
    }

    #[test]
    fn counters_count_every_event() {
        let counters = Counters::default();
        counters.created(3);
        counters.already_present(2);
        counters.dead_lettered(1, "x");
        for _ in 0..5 {
            counters.consumer_error("down");
        }
        assert_eq!(counters.created.load(Ordering::Relaxed), 3);
        assert_eq!(counters.consumer_errors.load(Ordering::Relaxed), 5);
        assert!(counters.summary().contains("already_present=2"));
    }
}
