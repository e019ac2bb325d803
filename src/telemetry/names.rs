//! Metric names (Prometheus conventions: `logship_` prefix, base units, `_total` on counters)
//! and their help texts. Recording code uses these constants, so a renamed metric cannot drift
//! from its description.

use metrics::{describe_counter, describe_gauge, describe_histogram, Unit};

/// Lines the agent committed to its WAL, per file (`file` label: the path it was read under).
pub const AGENT_READ_LINES: &str = "logship_agent_read_lines_total";
/// Counter: rounds of host metrics written to the WAL (`[host_metrics]`).
pub const AGENT_METRICS_SAMPLES: &str = "logship_agent_metrics_samples_total";
/// Counter: rounds of host metrics removed from a full WAL to make room.
pub const AGENT_METRICS_SAMPLES_DROPPED: &str = "logship_agent_metrics_samples_dropped_total";
/// Bytes the agent committed to its WAL, per file.
pub const AGENT_READ_BYTES: &str = "logship_agent_read_bytes_total";
/// Files the agent follows now.
pub const AGENT_FILES_FOLLOWED: &str = "logship_agent_files_followed";
/// Files matched but not followed because no file descriptor is left (they wait for one).
pub const AGENT_FILES_WAITING: &str = "logship_agent_files_waiting";
/// 1 while reading is paused because the WAL is full or its disk nearly is, else 0.
pub const AGENT_READING_PAUSED: &str = "logship_agent_reading_paused";
/// WAL records (chunks) not yet acknowledged by Kafka.
pub const WAL_PENDING_RECORDS: &str = "logship_wal_pending_records";
/// Bytes of WAL records not yet acknowledged by Kafka.
pub const WAL_PENDING_BYTES: &str = "logship_wal_pending_bytes";
/// Bytes the agent's `data_dir` occupies on disk (the WAL store with sled's overhead).
pub const WAL_DISK_BYTES: &str = "logship_wal_disk_bytes";
/// Bytes free on the filesystem holding the agent's `data_dir`.
pub const AGENT_DISK_FREE_BYTES: &str = "logship_agent_disk_free_bytes";
/// Age of the oldest WAL record not yet acknowledged (0 when none is pending).
pub const WAL_OLDEST_PENDING_AGE: &str = "logship_wal_oldest_pending_age_seconds";
/// WAL records moved to quarantine because they could not be decoded.
pub const WAL_QUARANTINED_RECORDS: &str = "logship_wal_quarantined_records_total";
/// Lines Kafka acknowledged (acks=all).
pub const KAFKA_DELIVERED_LINES: &str = "logship_kafka_delivered_lines_total";
/// Records Kafka failed to take (each is resent; nothing is dropped).
pub const KAFKA_DELIVERY_ERRORS: &str = "logship_kafka_delivery_errors_total";
/// Time from handing a WAL chunk's lines to the producer to the last acknowledgement.
pub const KAFKA_DELIVERY_LATENCY: &str = "logship_kafka_delivery_latency_seconds";
/// Kafka brokers the client is connected to (librdkafka state `UP`).
pub const KAFKA_BROKERS_UP: &str = "logship_kafka_brokers_up";
/// Central collect entries (etcd) accepted and applied.
pub const CONFIG_RELOADS: &str = "logship_config_reloads_total";
/// Central collect entries (etcd) refused: malformed or outside `allowed_paths`.
pub const CONFIG_REJECTIONS: &str = "logship_config_rejections_total";
/// Records the transfer received from Kafka for its partitions.
pub const TRANSFER_RECEIVED: &str = "logship_transfer_received_records_total";
/// Records behind the end of each assigned partition (`topic`, `partition` labels).
pub const TRANSFER_CONSUMER_LAG: &str = "logship_transfer_consumer_lag_records";
/// `_bulk` requests sent.
pub const TRANSFER_BULK_REQUESTS: &str = "logship_transfer_bulk_requests_total";
/// Documents created in Elasticsearch.
pub const TRANSFER_CREATED: &str = "logship_transfer_documents_created_total";
/// Documents already present (409 on `create`: an earlier delivery of the same line).
pub const TRANSFER_ALREADY_PRESENT: &str = "logship_transfer_documents_already_present_total";
/// Documents sent again after a retryable failure (429, 5xx, connection trouble).
pub const TRANSFER_RETRIED: &str = "logship_transfer_documents_retried_total";
/// Records written to the dead-letter index.
pub const TRANSFER_DEAD_LETTERED: &str = "logship_transfer_documents_dead_lettered_total";
/// Documents whose line did not parse (`[[parse]]`; indexed with `parse_error`).
pub const TRANSFER_PARSE_ERRORS: &str = "logship_transfer_parse_errors_total";
/// Documents whose own time was missing, unreadable or too far from the read time (indexed
/// with the read time and `timestamp_error`).
pub const TRANSFER_TIMESTAMPS_REJECTED: &str = "logship_transfer_timestamps_rejected_total";
/// Documents indexed again with their parsed fields as one string after a mapping conflict.
pub const TRANSFER_MAPPING_CONFLICTS: &str = "logship_transfer_mapping_conflicts_total";
/// Consumer-group offset commits that succeeded.
pub const TRANSFER_COMMITS: &str = "logship_transfer_commits_total";
/// Consumer-group offset commits that failed (retried at the next commit).
pub const TRANSFER_COMMIT_FAILURES: &str = "logship_transfer_commit_failures_total";
/// Errors reported by the Kafka consumer.
pub const TRANSFER_CONSUMER_ERRORS: &str = "logship_transfer_consumer_errors_total";
/// Points InfluxDB accepted (2xx to `/write`).
pub const TRANSFER_POINTS_WRITTEN: &str = "logship_transfer_points_written_total";
/// Points whose write is retried (5xx, timeout, refused connection, credentials, no database).
pub const TRANSFER_POINTS_RETRIED: &str = "logship_transfer_points_retried_total";
/// Points InfluxDB refused for good (400), written to `influxdb.dlq_topic`.
pub const TRANSFER_POINTS_DEAD_LETTERED: &str = "logship_transfer_points_dead_lettered_total";
/// Counter: indices the transfer deleted because their retention passed.
pub const TRANSFER_INDICES_DELETED: &str = "logship_transfer_indices_deleted_total";
/// Gauge: the highest share of disk used among Elasticsearch's nodes (0–1).
pub const TRANSFER_ES_DISK_USED_RATIO: &str = "logship_transfer_es_disk_used_ratio";
/// Gauge: 1 while a node's disk is above the high watermark, else 0.
pub const TRANSFER_ES_DISK_ABOVE_HIGH: &str = "logship_transfer_es_disk_above_high_watermark";
/// 1, labelled with the running version.
pub const BUILD_INFO: &str = "logship_build_info";

/// Registers the help text and unit of every metric (call once, after installing the recorder).
pub fn describe_all() {
    describe_counter!(
        AGENT_READ_LINES,
        Unit::Count,
        "Lines committed to the WAL, per file."
    );
    describe_counter!(
        AGENT_READ_BYTES,
        Unit::Bytes,
        "Bytes committed to the WAL, per file."
    );
    describe_gauge!(AGENT_FILES_FOLLOWED, Unit::Count, "Files followed now.");
    describe_gauge!(
        AGENT_FILES_WAITING,
        Unit::Count,
        "Files matched but waiting for a file descriptor (open-files limit reached)."
    );
    describe_gauge!(
        AGENT_READING_PAUSED,
        "1 while reading is paused because the WAL is full or its disk nearly is (backpressure), else 0."
    );
    describe_gauge!(
        WAL_PENDING_RECORDS,
        Unit::Count,
        "WAL records not yet acknowledged by Kafka."
    );
    describe_gauge!(
        WAL_DISK_BYTES,
        Unit::Bytes,
        "Bytes the agent's data_dir occupies on disk."
    );
    describe_gauge!(
        AGENT_DISK_FREE_BYTES,
        Unit::Bytes,
        "Bytes free on the filesystem holding the agent's data_dir."
    );
    describe_gauge!(
        WAL_PENDING_BYTES,
        Unit::Bytes,
        "Bytes of WAL records not yet acknowledged by Kafka."
    );
    describe_gauge!(
        WAL_OLDEST_PENDING_AGE,
        Unit::Seconds,
        "Age of the oldest WAL record not yet acknowledged by Kafka (0 when none)."
    );
    describe_counter!(
        AGENT_METRICS_SAMPLES,
        Unit::Count,
        "Rounds of host metrics written to the WAL and flushed."
    );
    describe_counter!(
        AGENT_METRICS_SAMPLES_DROPPED,
        Unit::Count,
        "Rounds of host metrics removed from a full WAL to make room (never log lines)."
    );
    describe_counter!(
        WAL_QUARANTINED_RECORDS,
        Unit::Count,
        "WAL records quarantined because they could not be decoded."
    );
    describe_counter!(
        KAFKA_DELIVERED_LINES,
        Unit::Count,
        "Lines acknowledged by Kafka (acks=all)."
    );
    describe_counter!(
        KAFKA_DELIVERY_ERRORS,
        Unit::Count,
        "Records Kafka failed to take; each is resent."
    );
    describe_histogram!(
        KAFKA_DELIVERY_LATENCY,
        Unit::Seconds,
        "Time from handing a WAL chunk to the producer to Kafka's last acknowledgement of it."
    );
    describe_gauge!(
        KAFKA_BROKERS_UP,
        Unit::Count,
        "Kafka brokers the client is connected to."
    );
    describe_counter!(
        CONFIG_RELOADS,
        Unit::Count,
        "Central collect entries accepted and applied."
    );
    describe_counter!(
        CONFIG_REJECTIONS,
        Unit::Count,
        "Central collect entries refused (malformed or outside allowed_paths)."
    );
    describe_counter!(
        TRANSFER_RECEIVED,
        Unit::Count,
        "Records received from Kafka for assigned partitions."
    );
    describe_gauge!(
        TRANSFER_CONSUMER_LAG,
        Unit::Count,
        "Records behind the end of each assigned partition."
    );
    describe_counter!(
        TRANSFER_BULK_REQUESTS,
        Unit::Count,
        "Elasticsearch _bulk requests sent."
    );
    describe_counter!(TRANSFER_CREATED, Unit::Count, "Documents created.");
    describe_counter!(
        TRANSFER_ALREADY_PRESENT,
        Unit::Count,
        "Documents already present (an earlier delivery of the same line)."
    );
    describe_counter!(
        TRANSFER_RETRIED,
        Unit::Count,
        "Documents sent again after a retryable failure."
    );
    describe_counter!(
        TRANSFER_DEAD_LETTERED,
        Unit::Count,
        "Records written to the dead-letter index."
    );
    describe_counter!(
        TRANSFER_PARSE_ERRORS,
        Unit::Count,
        "Documents whose line did not parse (indexed with parse_error)."
    );
    describe_counter!(
        TRANSFER_TIMESTAMPS_REJECTED,
        Unit::Count,
        "Documents whose own time was not used (indexed with timestamp_error)."
    );
    describe_counter!(
        TRANSFER_MAPPING_CONFLICTS,
        Unit::Count,
        "Documents indexed again with their parsed fields as one string (mapping conflict)."
    );
    describe_counter!(
        TRANSFER_COMMITS,
        Unit::Count,
        "Offset commits that succeeded."
    );
    describe_counter!(
        TRANSFER_COMMIT_FAILURES,
        Unit::Count,
        "Offset commits that failed (retried)."
    );
    describe_counter!(
        TRANSFER_CONSUMER_ERRORS,
        Unit::Count,
        "Errors reported by the Kafka consumer."
    );
    describe_counter!(
        TRANSFER_POINTS_WRITTEN,
        Unit::Count,
        "Host metrics points InfluxDB accepted."
    );
    describe_counter!(
        TRANSFER_POINTS_RETRIED,
        Unit::Count,
        "Host metrics points whose write to InfluxDB is retried."
    );
    describe_counter!(
        TRANSFER_POINTS_DEAD_LETTERED,
        Unit::Count,
        "Host metrics points InfluxDB refused for good, written to the dead-letter topic."
    );
    describe_counter!(
        TRANSFER_INDICES_DELETED,
        Unit::Count,
        "Indices deleted because their retention (elasticsearch.retention) passed."
    );
    describe_gauge!(
        TRANSFER_ES_DISK_USED_RATIO,
        "The highest share of disk used among Elasticsearch's nodes (0-1)."
    );
    describe_gauge!(
        TRANSFER_ES_DISK_ABOVE_HIGH,
        "1 while an Elasticsearch node's disk is above the high watermark, else 0."
    );
    describe_gauge!(BUILD_INFO, "1, labelled with the running logship version.");
}
