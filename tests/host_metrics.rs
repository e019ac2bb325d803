//! Host metrics against the real InfluxDB 1.x of `scripts/services.sh` (Debian's `influxdb`):
//! what the sampler produces is accepted by InfluxDB's `/write` as it is, and reads back as the
//! series Telegraf users query (`cpu`, `mem`, `disk`, `net`, `system`, ... with tag `host`),
//! with sane values; writing the same points again changes nothing (a point is identified by
//! measurement, tags and time, which is what makes a replay harmless).

mod common;

use std::process::Command;

use logship::host_metrics::Sampler;
use serde_json::Value;

fn influxdb() -> String {
    std::env::var("LOGSHIP_INFLUXDB").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

/// `curl` against InfluxDB: (status, body).
fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

fn query(db: &str, q: &str) -> Value {
    let (code, body) = curl(&[
        "-G",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("db={db}"),
        "--data-urlencode",
        &format!("q={q}"),
    ]);
    assert_eq!(code, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The single value of a one-row, one-column answer.
fn scalar(answer: &Value) -> f64 {
    answer["results"][0]["series"][0]["values"][0][1]
        .as_f64()
        .unwrap_or_else(|| panic!("no value: {answer}"))
}

#[test]
fn sampled_points_are_accepted_by_influxdb_and_read_back_as_telegraf_series() {
    let db = common::unique("metrics").replace('-', "_");
    let host = common::unique("metrics-host");
    let (code, body) = curl(&[
        "-XPOST",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("q=CREATE DATABASE {db}"),
    ]);
    assert_eq!(code, 200, "{body}");

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
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    assert_eq!(total, kib * 1024.0, "mem total is /proc/meminfo's");
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
    curl(&[
        "-XPOST",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("q=DROP DATABASE {db}"),
    ]);
}

/// Every record of `topic` so far: (key, `logship-kind` header, payload).
fn read_topic(
    topic: &str,
    until: impl Fn(&[(String, Option<String>, String)]) -> bool,
) -> Vec<(String, Option<String>, String)> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", common::kafka_brokers())
        .set("group.id", common::unique("metrics-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut assigned = false;
    let mut records = Vec::new();
    while std::time::Instant::now() < deadline && !until(&records) {
        if !assigned {
            if let Ok(metadata) =
                consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(5))
            {
                if let Some(t) = metadata.topics().iter().find(|t| {
                    t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                }) {
                    let mut list = TopicPartitionList::new();
                    for p in t.partitions() {
                        list.add_partition_offset(topic, p.id(), Offset::Beginning)
                            .unwrap();
                    }
                    consumer.assign(&list).unwrap();
                    assigned = true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        if let Some(Ok(message)) = consumer.poll(std::time::Duration::from_millis(500)) {
            let kind = message.headers().and_then(|h| {
                h.iter()
                    .find(|header| header.key == "logship-kind")
                    .and_then(|header| header.value)
                    .map(|v| String::from_utf8_lossy(v).to_string())
            });
            records.push((
                String::from_utf8_lossy(message.key().unwrap_or_default()).to_string(),
                kind,
                String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string(),
            ));
        }
    }
    records
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
    for (key, kind, payload) in &records {
        assert_eq!(key, &host, "keyed by host");
        assert_eq!(kind.as_deref(), Some("metrics"), "marked as metrics");
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
