//! InfluxDB and metrics-topic helpers for the host metrics tests: InfluxQL over `curl`
//! against the real InfluxDB of `scripts/services.sh`, and a reader of a metrics topic.

use std::process::Command;

use serde_json::Value;

/// InfluxDB's URL (`LOGSHIP_INFLUXDB`, default http://127.0.0.1:8086).
pub fn influxdb() -> String {
    std::env::var("LOGSHIP_INFLUXDB").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

/// `curl` against InfluxDB: (status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs InfluxQL `q` in `db` (timestamps in nanoseconds) and panics unless it answers 200.
pub fn query(db: &str, q: &str) -> Value {
    let (code, body) = curl(&[
        "-G",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("db={db}"),
        "--data-urlencode",
        &format!("q={q}"),
        "--data-urlencode",
        "epoch=ns",
    ]);
    assert_eq!(code, 200, "{q}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The single value of a one-row, one-column answer.
pub fn scalar(answer: &Value) -> f64 {
    answer["results"][0]["series"][0]["values"][0][1]
        .as_f64()
        .unwrap_or_else(|| panic!("no value: {answer}"))
}

/// Runs the InfluxQL statement `q` that changes something (a POST), and panics unless it
/// answers 200.
pub fn execute(q: &str) {
    let (code, body) = curl(&[
        "-XPOST",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("q={q}"),
    ]);
    assert_eq!(code, 200, "{q}: {body}");
}

/// Creates database `db`.
pub fn create_database(db: &str) {
    execute(&format!("CREATE DATABASE {db}"));
}

/// Drops database `db` (best effort).
pub fn drop_database(db: &str) {
    curl(&[
        "-XPOST",
        &format!("{}/query", influxdb()),
        "--data-urlencode",
        &format!("q=DROP DATABASE {db}"),
    ]);
}

/// The rows of the first series of a one-statement answer (empty when there is none).
pub fn rows(answer: &Value) -> Vec<Vec<Value>> {
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row.as_array().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// `MemTotal` of /proc/meminfo in bytes.
pub fn mem_total_bytes() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024.0
}

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    /// Key (lossy UTF-8).
    pub key: String,
    /// Headers (lossy UTF-8).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Payload (lossy UTF-8).
    pub payload: String,
}

impl TopicRecord {
    /// The `logship-kind` header.
    pub fn kind(&self) -> Option<&str> {
        self.headers.get("logship-kind").map(String::as_str)
    }
}

/// The records of `topic` from its beginning, read until `until` says enough (or 120 s).
pub fn read_topic(topic: &str, until: impl Fn(&[TopicRecord]) -> bool) -> Vec<TopicRecord> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", super::kafka_brokers())
        .set("group.id", super::unique("metrics-reader"))
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
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|header| {
                            (
                                header.key.to_string(),
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                                    .to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(TopicRecord {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).to_string(),
                headers,
                payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string(),
            });
        }
    }
    records
}
