//! Host metrics against the real InfluxDB 1.x of `scripts/services.sh` (Debian's `influxdb`):
//! what the sampler produces is accepted by InfluxDB's `/write` as it is, and reads back as the
//! series Telegraf users query (`cpu`, `mem`, `disk`, `net`, `system`, ... with tag `host`),
//! with sane values; writing the same points again changes nothing (a point is identified by
//! measurement, tags and time, which is what makes a replay harmless). The agent samples into
//! its WAL and ships to Kafka; the transfer writes those records into InfluxDB, and what
//! InfluxDB refuses goes to the dead-letter topic, counted.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::Duration;

use common::influx::*;
use logship::host_metrics::Sampler;
use transfer_support::Transfer;

#[test]
fn sampled_points_are_accepted_by_influxdb_and_read_back_as_telegraf_series() {
    let db = common::unique("metrics").replace('-', "_");
    let host = common::unique("metrics-host");
    create_database(&db);

    let mut sampler = Sampler::new(&host);
    let mut batches = String::new();
    let start = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    for round in 0..3i64 {
        let sample = sampler.sample(start + round * 1_000_000_000);
        assert!(sample.problems.is_empty(), "{:?}", sample.problems);
        batches.push_str(&sample.to_line_protocol());
        std::thread::sleep(std::time::Duration::from_millis(300));
    }
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), &batches).unwrap();
    let write = |what: &str| {
        let (code, body) = curl(&[
            "-XPOST",
            &format!("{}/write?db={db}&precision=ns", influxdb()),
            "--data-binary",
            &format!("@{}", file.path().display()),
        ]);
        assert_eq!(code, 204, "{what}: InfluxDB refused the points: {body}");
    };
    write("first write");

    let measurements = query(&db, "SHOW MEASUREMENTS");
    let names: Vec<&str> = measurements["results"][0]["series"][0]["values"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|v| v[0].as_str())
        .collect();
    for m in [
        "cpu",
        "mem",
        "swap",
        "disk",
        "diskio",
        "system",
        "processes",
    ] {
        assert!(names.contains(&m), "{m} missing from {names:?}");
    }
    let total = scalar(&query(
        &db,
        &format!("SELECT last(total) FROM mem WHERE host = '{host}'"),
    ));
    assert_eq!(total, mem_total_bytes(), "mem total is /proc/meminfo's");
    let idle = scalar(&query(
        &db,
        &format!("SELECT max(usage_idle) FROM cpu WHERE host = '{host}' AND cpu = 'cpu-total'"),
    ));
    assert!((0.0..=100.0).contains(&idle), "usage_idle {idle}");
    let cpu_points = |db: &str| {
        scalar(&query(
            db,
            &format!(
                "SELECT count(usage_user) FROM cpu WHERE host = '{host}' AND cpu = 'cpu-total'"
            ),
        ))
    };
    // Three rounds, the first without CPU usage.
    assert_eq!(cpu_points(&db), 2.0);
    // The same points again (a replay): the same series and times, nothing added.
    write("replay");
    assert_eq!(cpu_points(&db), 2.0, "a replayed point overwrites itself");
    let n_cpus = scalar(&query(
        &db,
        &format!("SELECT last(n_cpus) FROM system WHERE host = '{host}'"),
    ));
    assert_eq!(
        n_cpus as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    drop_database(&db);
}

#[test]
fn the_agent_ships_host_metrics_through_its_wal_to_kafka_marked_as_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::unique("sampled-host");
    let topic = common::unique("host-metrics");
    let health = common::ops::free_addr();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{}\"\nmetrics_addr = \"{health}\"\n\
             [kafka]\nbrokers = \"{}\"\n[host_metrics]\ninterval_ms = 1000\ntopic = \"{topic}\"\n",
            dir.path().join("data").display(),
            common::kafka_brokers()
        ),
    )
    .unwrap();
    let agent = common::agent::AgentProcess::start(&config);
    let records = read_topic(&topic, |records| records.len() >= 3);
    assert!(
        records.len() >= 3,
        "{} rounds in Kafka\n{}",
        records.len(),
        agent.log()
    );
    for record in &records {
        let payload = &record.payload;
        assert_eq!(record.key, host, "keyed by host");
        assert_eq!(record.kind(), Some("metrics"), "marked as metrics");
        assert_eq!(
            record.headers.get("logship-format").map(String::as_str),
            Some("1"),
            "the record contract's version"
        );
        let measurements: std::collections::BTreeSet<&str> = payload
            .lines()
            .map(|line| line.split([',', ' ']).next().unwrap_or(""))
            .collect();
        for m in ["cpu", "mem", "disk", "system"] {
            assert!(measurements.contains(m), "{m} missing: {payload}");
        }
        assert!(
            payload
                .lines()
                .all(|l| l.contains(&format!(",host={host}"))),
            "{payload}"
        );
    }
    let (_, metrics) = common::ops::http_get(health, "/metrics").unwrap();
    let committed = common::ops::sample(&metrics, "logship_agent_metrics_samples_total", None)
        .expect("the agent counts committed rounds");
    assert!(
        committed >= records.len() as f64,
        "{committed} < {}",
        records.len()
    );
    assert!(agent.terminate());
}

/// A transfer config serving `topics` into InfluxDB database `db` only (no Elasticsearch).
fn metrics_transfer(
    dir: &std::path::Path,
    group: &str,
    topics: &[&str],
    db: &str,
    extra: &str,
) -> std::path::PathBuf {
    metrics_transfer_to(&Server::v1(), dir, group, topics, db, extra)
}

/// A transfer config serving `topics` into database `db` of `server` only.
fn metrics_transfer_to(
    server: &Server,
    dir: &std::path::Path,
    group: &str,
    topics: &[&str],
    db: &str,
    extra: &str,
) -> std::path::PathBuf {
    let path = dir.join("transfer.toml");
    std::fs::write(
        &path,
        format!(
            "{extra}[kafka]\nbrokers = \"{}\"\ngroup = \"{group}\"\ntopics = {topics:?}\n\
             commit_interval_ms = 200\n[batch]\nmax_wait_ms = 200\n{}",
            common::kafka_brokers(),
            server.table(db, dir)
        ),
    )
    .unwrap();
    path
}

#[test]
fn agent_and_transfer_fill_influxdb_with_the_hosts_series() {
    let dir = tempfile::tempdir().unwrap();
    let host = common::unique("influx-host");
    let topic = common::unique("host-metrics");
    let db = common::unique("telegraf").replace('-', "_");
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{}\"\n\
             [kafka]\nbrokers = \"{}\"\n[host_metrics]\ninterval_ms = 1000\ntopic = \"{topic}\"\n",
            dir.path().join("data").display(),
            common::kafka_brokers()
        ),
    )
    .unwrap();
    let agent = common::agent::AgentProcess::start(&config);
    let transfer_config = metrics_transfer(
        dir.path(),
        &common::unique("influx-group"),
        &[&topic],
        &db,
        "",
    );
    let transfer = Transfer::start(&transfer_config, "transfer");
    // The transfer creates the database itself (influxdb.create_database defaults to true).
    std::thread::sleep(Duration::from_secs(20));
    let series = |q: &str| rows(&query(&db, q));
    let seen = common::wait_for(Duration::from_secs(60), || {
        let measurements: Vec<String> = series("SHOW MEASUREMENTS")
            .iter()
            .filter_map(|row| row[0].as_str().map(String::from))
            .collect();
        ["cpu", "mem", "disk", "net", "system"]
            .iter()
            .all(|m| measurements.iter().any(|n| n == m))
            .then_some(measurements)
    });
    assert!(
        seen.is_some(),
        "series missing after 20 s\nagent:\n{}\ntransfer:\n{}",
        agent.log(),
        transfer.log()
    );
    let one = |q: &str| scalar(&query(&db, q));
    let filter = format!("host = '{host}'");
    let total = one(&format!("SELECT last(total) FROM mem WHERE {filter}"));
    assert_eq!(total, mem_total_bytes(), "mem total is /proc/meminfo's");
    for field in ["usage_user", "usage_system", "usage_idle", "usage_iowait"] {
        let low = one(&format!(
            "SELECT min({field}) FROM cpu WHERE {filter} AND cpu = 'cpu-total'"
        ));
        let high = one(&format!(
            "SELECT max({field}) FROM cpu WHERE {filter} AND cpu = 'cpu-total'"
        ));
        assert!(0.0 <= low && high <= 100.0, "{field} in [{low}, {high}]");
    }
    let used_percent = one(&format!(
        "SELECT last(used_percent) FROM disk WHERE {filter} AND path = '/'"
    ));
    assert!(
        (0.0..=100.0).contains(&used_percent),
        "disk / used {used_percent}%"
    );
    let n_cpus = one(&format!("SELECT last(n_cpus) FROM system WHERE {filter}"));
    assert_eq!(
        n_cpus as usize,
        std::thread::available_parallelism().unwrap().get()
    );
    let interfaces = series(&format!(
        "SHOW TAG VALUES FROM net WITH KEY = \"interface\" WHERE {filter}"
    ));
    assert!(!interfaces.is_empty(), "net has interfaces");
    let rounds = one(&format!("SELECT count(total) FROM mem WHERE {filter}"));
    assert!(
        rounds >= 10.0,
        "{rounds} rounds in InfluxDB after 20 s at 1 s"
    );
    let log = transfer.log();
    assert!(
        log.contains("InfluxDB database or bucket in place"),
        "{log}"
    );
    assert!(agent.terminate());
    transfer.terminate(Duration::from_secs(30));
    drop_database(&db);
}

#[test]
fn refused_points_and_records_no_sink_takes_go_to_the_dead_letter_topic() {
    refused_points_go_to_the_dead_letter_topic(&Server::v1());
}

/// The same through the v2 API (`/api/v2/write` with a token; InfluxDB 1.8 as `influxdb2`).
#[test]
fn points_the_v2_api_refuses_go_to_the_dead_letter_topic() {
    refused_points_go_to_the_dead_letter_topic(&Server::v2());
}

fn refused_points_go_to_the_dead_letter_topic(server: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let topic = common::unique("metrics-in");
    let dlq = common::unique("metrics-dlq");
    let db = common::unique("dlq_db").replace('-', "_");
    transfer_support::create_topic(&topic);
    if server.token.is_some() {
        // InfluxDB 1.8 has no buckets API: the database is made here.
        server.create_database(&db);
    }
    let producer = transfer_support::producer();
    let now = transfer_support::now_nanos();
    // One record: two good points around a malformed one, then a field of another type.
    let good = format!(
        "probe,host=h value=1 {now}\nthis is not line protocol\nprobe,host=h value=2 {}\n",
        now + 1
    );
    let conflict = format!("probe,host=h value=\"text\" {}\n", now + 2);
    let send = |payload: &str, metrics: bool| {
        transfer_support::produce_points(&producer, &topic, "h", payload, metrics);
    };
    send(&good, true);
    send(&conflict, true);
    send("{\"id\":\"x\",\"message\":\"a log line\"}", false);
    let metrics_addr = common::ops::free_addr();
    let config = metrics_transfer_to(
        server,
        dir.path(),
        &common::unique("dlq-group"),
        &[&topic],
        &db,
        &format!("metrics_addr = \"{metrics_addr}\"\n"),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, format!("{text}dlq_topic = \"{dlq}\"\n")).unwrap();
    let transfer = Transfer::start(&config, "transfer");
    let dead = read_topic(&dlq, |records| records.len() >= 3);
    assert_eq!(dead.len(), 3, "{dead:?}\n{}", transfer.log());
    let find = |needle: &str| {
        dead.iter()
            .find(|r| r.payload.contains(needle))
            .unwrap_or_else(|| panic!("{needle} not dead-lettered: {dead:?}"))
    };
    let malformed = find("this is not line protocol");
    assert_eq!(
        malformed.payload, "this is not line protocol\n",
        "only the bad line"
    );
    assert!(
        malformed.headers["logship-error"].contains("400"),
        "{malformed:?}"
    );
    assert!(malformed.headers["logship-source"].starts_with(&format!("{topic}/")));
    assert_eq!(malformed.key, "h");
    let conflicting = find("value=\"text\"");
    assert!(
        conflicting.headers["logship-error"].contains("conflict"),
        "{conflicting:?}"
    );
    let log_record = find("a log line");
    assert!(log_record.headers["logship-error"].contains("no [elasticsearch]"));
    let values: Vec<f64> = rows(&server.query(&db, "SELECT value FROM probe"))
        .iter()
        .filter_map(|row| row[1].as_f64())
        .collect();
    assert_eq!(values, vec![1.0, 2.0], "the good points are written, once");
    let counted = common::wait_for(Duration::from_secs(10), || {
        let (_, metrics) = common::ops::http_get(metrics_addr, "/metrics")?;
        common::ops::sample(
            &metrics,
            "logship_transfer_points_dead_lettered_total",
            None,
        )
        .filter(|n| *n == 3.0)
    });
    assert!(counted.is_some(), "3 dead letters counted");
    transfer_support::wait_for_commits_at_end(
        &config_group(&config),
        &topic,
        Duration::from_secs(30),
    );
    transfer.terminate(Duration::from_secs(30));
    server.drop_database(&db);
}

fn config_group(config: &std::path::Path) -> String {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("group = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .to_string()
}

#[test]
fn without_create_database_the_transfer_waits_for_the_database_then_writes_into_its_retention_policy(
) {
    let dir = tempfile::tempdir().unwrap();
    let topic = common::unique("metrics-rp");
    let db = common::unique("rp_db").replace('-', "_");
    transfer_support::create_topic(&topic);
    transfer_support::produce_probe_records(&transfer_support::producer(), &topic, "probe", 2);
    let health = common::ops::free_addr();
    let group = common::unique("rp-group");
    let config = metrics_transfer(
        dir.path(),
        &group,
        &[&topic],
        &db,
        &format!("metrics_addr = \"{health}\"\nhealth_grace_ms = 500\n"),
    );
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        format!("{text}create_database = false\nretention_policy = \"two_days\"\n"),
    )
    .unwrap();
    let transfer = Transfer::start(&config, "transfer");

    // Nobody made the database yet: InfluxDB's 404 is retried, /health says it, nothing done.
    let unhealthy = common::wait_for(Duration::from_secs(60), || {
        common::ops::http_get(health, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("database not found"))
    });
    assert!(
        unhealthy.is_some(),
        "no 503 naming the missing database\n{}",
        transfer.log()
    );
    let offsets = transfer_support::committed(&group, &topic);
    assert!(
        offsets.iter().all(|offset| offset.unwrap_or(0) == 0),
        "nothing committed past an unwritten point: {offsets:?}"
    );
    let log = transfer.log();
    assert!(
        !log.contains("InfluxDB database or bucket in place"),
        "{log}"
    );

    // Someone else makes it, with the retention policy the transfer writes into.
    create_database(&db);
    execute(&format!(
        "CREATE RETENTION POLICY two_days ON {db} DURATION 2d REPLICATION 1"
    ));
    let written = common::wait_for(Duration::from_secs(60), || {
        let answer = query(&db, "SELECT count(value) FROM \"two_days\".\"probe\"");
        (rows(&answer).first().and_then(|row| row[1].as_f64()) == Some(4.0)).then_some(())
    });
    assert!(
        written.is_some(),
        "4 points not in two_days\n{}",
        transfer.log()
    );
    let default_policy = query(&db, "SELECT count(value) FROM \"autogen\".\"probe\"");
    assert!(rows(&default_policy).is_empty(), "{default_policy}");
    transfer_support::wait_for_commits_at_end(&group, &topic, Duration::from_secs(30));
    let healthy = common::wait_for(Duration::from_secs(30), || {
        common::ops::http_get(health, "/health").filter(|(status, _)| *status == 200)
    });
    assert!(
        healthy.is_some(),
        "/health did not recover\n{}",
        transfer.log()
    );
    transfer.terminate(Duration::from_secs(30));
    drop_database(&db);
}

/// `[influxdb] retention`: the transfer creates its policy (`logship`) with that duration and
/// writes into it; the database's default policy — here a shared database whose default was
/// made by someone else — keeps its duration, its default flag and its data. Started again
/// with another duration, the policy is altered, not duplicated.
#[test]
fn retention_creates_the_transfers_own_policy_and_leaves_the_default_one_alone() {
    let dir = tempfile::tempdir().unwrap();
    let topic = common::unique("metrics-ret");
    let db = common::unique("ret_db").replace('-', "_");
    create_database(&db);
    execute(&format!(
        "CREATE RETENTION POLICY shared ON {db} DURATION 3d REPLICATION 1 DEFAULT"
    ));
    transfer_support::create_topic(&topic);
    transfer_support::produce_probe_records(&transfer_support::producer(), &topic, "probe", 2);
    let group = common::unique("ret-group");
    let config = metrics_transfer(dir.path(), &group, &[&topic], &db, "");
    let text = std::fs::read_to_string(&config).unwrap();
    let policies = |db: &str| -> Vec<Vec<serde_json::Value>> {
        rows(&query(db, &format!("SHOW RETENTION POLICIES ON {db}")))
    };
    for (round, duration, expected) in [(1, "30d", "720h0m0s"), (2, "2w", "336h0m0s")] {
        std::fs::write(&config, format!("{text}retention = \"{duration}\"\n")).unwrap();
        let transfer = Transfer::start(&config, &format!("transfer-{round}"));
        // The points are in the policy, and the policy has this round's duration.
        let written = common::wait_for(Duration::from_secs(60), || {
            let answer = query(&db, "SELECT count(value) FROM \"logship\".\"probe\"");
            let altered = policies(&db)
                .iter()
                .any(|row| row[0] == "logship" && row[1] == expected);
            (altered && rows(&answer).first().and_then(|row| row[1].as_f64()) == Some(4.0))
                .then_some(())
        });
        assert!(
            written.is_some(),
            "4 points not in logship\n{}",
            transfer.log()
        );
        let all = policies(&db);
        let ours: Vec<_> = all.iter().filter(|row| row[0] == "logship").collect();
        assert_eq!(ours.len(), 1, "{all:?}");
        assert_eq!(ours[0][1], expected, "{all:?}");
        assert_eq!(ours[0][4], false, "logship became the default: {all:?}");
        let shared = all
            .iter()
            .find(|row| row[0] == "shared")
            .expect("shared policy");
        assert_eq!(shared[1], "72h0m0s", "{all:?}");
        assert_eq!(shared[4], true, "{all:?}");
        transfer.terminate(Duration::from_secs(30));
    }
    let elsewhere = query(&db, "SELECT count(value) FROM \"shared\".\"probe\"");
    assert!(rows(&elsewhere).is_empty(), "{elsewhere}");
    drop_database(&db);
}
