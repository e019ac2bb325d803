//! Helpers for the transfer's integration tests: producing records, running the real binary,
//! and looking into Elasticsearch and the group's committed offsets.
#![allow(dead_code)]

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::{FutureProducer, FutureRecord};
use rdkafka::{Offset, TopicPartitionList};
use serde_json::Value;

use crate::common::{es_url, kafka_brokers, logship_bin, strip_ansi, wait_for};

/// Partitions of every test topic.
pub const PARTITIONS: i32 = 4;

/// Creates `topic` with [`PARTITIONS`] partitions.
pub fn create_topic(topic: &str) {
    create_topic_replicated(topic, 1);
}

/// Creates `topic` with [`PARTITIONS`] partitions, each kept by `replicas` brokers.
pub fn create_topic_replicated(topic: &str, replicas: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("admin client");
    let new = NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(replicas));
    let results = futures::executor::block_on(admin.create_topics([&new], &AdminOptions::new()))
        .expect("create topic");
    for result in results {
        result.expect("topic created");
    }
}

/// A producer for test records.
pub fn producer() -> FutureProducer {
    ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces `points` (line protocol) to `topic` with key `key` as the agent's host metrics do
/// (header `logship-kind: metrics`), or as a plain record when `metrics` is false; returns its
/// partition and offset once Kafka acknowledged it.
pub fn produce_points(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    points: &str,
    metrics: bool,
) -> (i32, i64) {
    let headers: &[(&str, &str)] = if metrics {
        &[("logship-kind", "metrics")]
    } else {
        &[]
    };
    produce_with_headers(producer, topic, key, points, headers)
}

/// Produces one record with `headers` to `topic` with key `key`; returns its partition and
/// offset once Kafka acknowledged it.
pub fn produce_with_headers(
    producer: &FutureProducer,
    topic: &str,
    key: &str,
    value: &str,
    headers: &[(&str, &str)],
) -> (i32, i64) {
    use rdkafka::message::{Header, OwnedHeaders};
    let mut record = FutureRecord::<str, str>::to(topic).key(key).payload(value);
    if !headers.is_empty() {
        let mut owned = OwnedHeaders::new();
        for (key, value) in headers {
            owned = owned.insert(Header {
                key,
                value: Some(*value),
            });
        }
        record = record.headers(owned);
    }
    futures::executor::block_on(producer.send(record, Duration::from_secs(30)))
        .map(|delivery| (delivery.partition, delivery.offset))
        .unwrap_or_else(|(error, _)| panic!("record not produced: {error}"))
}

/// Nanoseconds since the epoch, now.
pub fn now_nanos() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_nanos())
        .unwrap_or_default()
}

/// `records` metrics records of two points each of `measurement` (tag `host=h`, field `value`),
/// at distinct times from `now` on, produced to `topic`.
pub fn produce_probe_records(
    producer: &FutureProducer,
    topic: &str,
    measurement: &str,
    records: u128,
) {
    let now = now_nanos();
    for record in 0..records {
        let points = format!(
            "{measurement},host=h value={record} {}\n{measurement},host=h value={record}.5 {}\n",
            now + record * 2,
            now + record * 2 + 1
        );
        produce_points(producer, topic, "h", &points, true);
    }
}

/// One record to produce.
pub struct Produce {
    /// Key (`None` for none).
    pub key: Option<String>,
    /// Value.
    pub value: Vec<u8>,
    /// Timestamp in ms (`None`: the producer's clock).
    pub timestamp: Option<i64>,
}

/// Produces `records` to `topic` and waits until Kafka acknowledged all of them; returns
/// (partition, offset) of each.
pub fn produce(producer: &FutureProducer, topic: &str, records: &[Produce]) -> Vec<(i32, i64)> {
    let futures: Vec<_> = records
        .iter()
        .map(|r| {
            let mut record: FutureRecord<'_, str, [u8]> =
                FutureRecord::to(topic).payload(r.value.as_slice());
            if let Some(key) = &r.key {
                record = record.key(key.as_str());
            }
            if let Some(ts) = r.timestamp {
                record = record.timestamp(ts);
            }
            loop {
                match producer.send_result(record) {
                    Ok(future) => break future,
                    Err((_, back)) => {
                        producer.poll(Duration::from_millis(10));
                        record = back;
                    }
                }
            }
        })
        .collect();
    futures
        .into_iter()
        .map(|f| {
            let delivery = futures::executor::block_on(f)
                .expect("delivery future")
                .expect("delivered");
            (delivery.partition, delivery.offset)
        })
        .collect()
}

/// The JSON of a logship line record of host `host`, stream `stream`, at byte `offset`.
pub fn line_json(host: &str, stream: &str, offset: u64, message: &str) -> Vec<u8> {
    line_json_at(host, stream, offset, message, "2026-01-02T03:04:05.678Z")
}

/// As [`line_json`], read at `timestamp` (RFC 3339).
pub fn line_json_at(
    host: &str,
    stream: &str,
    offset: u64,
    message: &str,
    timestamp: &str,
) -> Vec<u8> {
    let record = logship::record::LineRecord {
        fields: Default::default(),
        lines: 1,
        id: logship::record::line_id(host, stream, offset).into(),
        host: host.into(),
        file: format!("/var/log/{stream}.log").into(),
        file_id: stream.into(),
        offset,
        message: message.into(),
        timestamp: timestamp.into(),
        invalid_utf8: false,
        split: false,
        partial: false,
    };
    serde_json::to_vec(&record).expect("serialize")
}

/// Line `n` of stream `stream` on host `host`, keyed by its stream as the agent does.
pub fn line(host: &str, stream: &str, n: u64) -> Produce {
    Produce {
        key: Some(stream.to_string()),
        value: line_json(host, stream, n * 100, &format!("{host} {stream} line {n}")),
        timestamp: None,
    }
}

/// As [`line`], read now.
pub fn line_now(host: &str, stream: &str, n: u64) -> Produce {
    let now = time::OffsetDateTime::now_utc()
        .format(&time::format_description::well_known::Rfc3339)
        .expect("format now");
    Produce {
        key: Some(stream.to_string()),
        value: line_json_at(
            host,
            stream,
            n * 100,
            &format!("{host} {stream} line {n}"),
            &now,
        ),
        timestamp: None,
    }
}

/// `lines` bundled as the agent sends them: consecutive lines of one key joined into NDJSON
/// records of at most `per_record` lines.
pub fn bundle(lines: &[Produce], per_record: usize) -> Vec<Produce> {
    let mut records: Vec<Produce> = Vec::new();
    let mut in_last = 0;
    for line in lines {
        match records.last_mut() {
            Some(last) if last.key == line.key && in_last < per_record => {
                last.value.push(b'\n');
                last.value.extend_from_slice(&line.value);
                in_last += 1;
            }
            _ => {
                records.push(Produce {
                    key: line.key.clone(),
                    value: line.value.clone(),
                    timestamp: line.timestamp,
                });
                in_last = 1;
            }
        }
    }
    records
}

/// Settings of one test transfer.
pub struct TransferSetup {
    /// Topic.
    pub topic: String,
    /// Group.
    pub group: String,
    /// Index template.
    pub index: String,
    /// Dead-letter index.
    pub dlq: String,
    /// `batch.max_docs`.
    pub max_docs: usize,
    /// `batch.max_wait_ms`.
    pub max_wait_ms: u64,
    /// Top-level keys added to the config file (before its first table).
    pub top_level: String,
    /// Tables added at the end of the config file (`[[parse]]`).
    pub tables: String,
    /// `elasticsearch.url`.
    pub es_url: String,
    /// Lines added to the `[elasticsearch]` table (CA, credentials).
    pub es_extra: String,
    /// `kafka.brokers`.
    pub brokers: String,
    /// Tables added after `[kafka]` (`[kafka.tls]`, `[kafka.sasl]`).
    pub kafka_extra: String,
    /// `kafka.options` (default: a 6 s session, so that a test's dead member is noticed soon).
    pub kafka_options: String,
}

impl TransferSetup {
    /// A setup with unique names derived from `name`.
    pub fn new(name: &str) -> TransferSetup {
        let topic = crate::common::unique(name);
        TransferSetup {
            group: format!("{topic}-group"),
            index: topic.clone(),
            dlq: format!("dlq-{topic}"),
            topic,
            max_docs: 100,
            max_wait_ms: 100,
            top_level: String::new(),
            tables: String::new(),
            es_url: es_url(),
            es_extra: String::new(),
            brokers: kafka_brokers(),
            kafka_extra: String::new(),
            kafka_options: r#"{ "session.timeout.ms" = "6000", "heartbeat.interval.ms" = "500" }"#
                .into(),
        }
    }

    /// The config file text.
    pub fn toml(&self) -> String {
        format!(
            r#"
shutdown_timeout_ms = 10000
{top_level}
[kafka]
brokers = "{brokers}"
group = "{group}"
topics = ["{topic}"]
commit_interval_ms = 200
options = {kafka_options}
{kafka_extra}
[elasticsearch]
url = "{es}"
index = "{index}"
dlq_index = "{dlq}"
{es_extra}
[batch]
max_docs = {max_docs}
max_wait_ms = {max_wait}
max_inflight_bulks = 3
[retry]
initial_backoff_ms = 100
max_backoff_ms = 2000
{tables}
"#,
            brokers = self.brokers,
            kafka_extra = self.kafka_extra,
            kafka_options = self.kafka_options,
            group = self.group,
            topic = self.topic,
            es = self.es_url,
            es_extra = self.es_extra,
            index = self.index,
            dlq = self.dlq,
            max_docs = self.max_docs,
            max_wait = self.max_wait_ms,
            top_level = self.top_level,
            tables = self.tables,
        )
    }

    /// Writes the config into a fresh temporary directory.
    pub fn write(&self) -> (tempfile::TempDir, PathBuf) {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("transfer.toml");
        std::fs::File::create(&path)
            .and_then(|mut f| f.write_all(self.toml().as_bytes()))
            .expect("write config");
        (dir, path)
    }
}

/// A running `logship transfer`; SIGKILLed on drop if still running.
pub struct Transfer {
    child: Mutex<Child>,
    log: PathBuf,
}

impl Transfer {
    /// Starts the real binary with `config`, logging to `<config dir>/<name>.log`.
    pub fn start(config: &std::path::Path, name: &str) -> Transfer {
        Transfer::start_with_args(config, name, &[])
    }

    /// As [`Transfer::start`], with more arguments after `transfer --config FILE`.
    pub fn start_with_args(config: &std::path::Path, name: &str, args: &[&str]) -> Transfer {
        let log = config.with_file_name(format!("{name}.log"));
        let stderr = std::fs::File::create(&log).expect("log file");
        let child = Command::new(logship_bin())
            .args(["--log-level", "info,logship=debug,rdkafka=warn"])
            .arg("transfer")
            .arg("--config")
            .arg(config)
            .args(args)
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .expect("start logship transfer");
        Transfer {
            child: Mutex::new(child),
            log,
        }
    }

    /// Its log so far (without terminal colors).
    pub fn log(&self) -> String {
        strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }

    /// How many partitions its latest assignment gave it (`None` before the first one).
    pub fn assigned_partitions(&self) -> Option<usize> {
        self.log()
            .lines()
            .rfind(|l| l.contains("partitions assigned"))
            .and_then(|l| l.split("partitions=").nth(1))
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|n| n.parse().ok())
    }

    fn child(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// SIGKILL and reap.
    pub fn kill9(self) {
        let mut child = self.child();
        let _ = child.kill();
        let _ = child.wait();
    }

    /// SIGTERM and wait (at most `timeout`) for the exit status.
    pub fn terminate(self, timeout: Duration) -> ExitStatus {
        let pid = self.child().id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
        }
        let deadline = Instant::now() + timeout;
        loop {
            let exited = self.child().try_wait().expect("wait");
            if let Some(status) = exited {
                return status;
            }
            if Instant::now() > deadline {
                let log = self.log();
                panic!("transfer did not exit within {timeout:?} after SIGTERM; log:\n{log}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Whether it is still running.
    /// Sends SIGHUP (read the Elasticsearch CA and credentials again).
    pub fn hangup(&self) {
        let pid = self.child().id() as i32;
        // SAFETY: plain kill(2) on our own child's pid.
        unsafe {
            libc::kill(pid, libc::SIGHUP);
        }
    }

    pub fn running(&self) -> bool {
        matches!(self.child().try_wait(), Ok(None))
    }
}

impl Drop for Transfer {
    fn drop(&mut self) {
        let mut child = self.child();
        if matches!(child.try_wait(), Ok(None)) {
            let _ = child.kill();
            let _ = child.wait();
        }
        drop(child);
        crate::common::keep_log(&self.log);
    }
}

/// `curl` against Elasticsearch; returns the parsed JSON answer (`Value::Null` when there is
/// none, e.g. while it is down). With several nodes in `LOGSHIP_ES` (cluster mode), the first
/// node that answers at all answers.
pub fn es(method: &str, path: &str, body: Option<&str>) -> Value {
    let urls = es_url();
    let mut answer = Value::Null;
    for node in urls.split(',').map(str::trim).filter(|u| !u.is_empty()) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-m", "20", "-X", method])
            .arg(format!("{node}/{path}"));
        if let Some(body) = body {
            command
                .args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body);
        }
        let output = command.output().expect("run curl");
        if output.status.success() {
            return serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
        }
        answer = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    }
    answer
}

/// Sends `ndjson` (`_bulk` lines) to Elasticsearch with `refresh=true`; panics unless every
/// item was accepted.
pub fn bulk_refreshed(ndjson: &str) {
    let output = Command::new("curl")
        .args([
            "-s",
            "-X",
            "POST",
            "-H",
            "Content-Type: application/x-ndjson",
        ])
        .arg(format!(
            "{}/_bulk?refresh=true",
            es_url().split(',').next().unwrap_or_default()
        ))
        .arg("--data-binary")
        .arg(ndjson)
        .output()
        .expect("run curl");
    let answer: Value = serde_json::from_slice(&output.stdout).unwrap_or(Value::Null);
    assert_eq!(answer["errors"], false, "_bulk: {answer}");
}

/// Refreshes `index` and returns its document count (0 if it does not exist yet).
pub fn count(index: &str) -> u64 {
    es(
        "POST",
        &format!("{index}/_refresh?ignore_unavailable=true"),
        None,
    );
    es(
        "GET",
        &format!("{index}/_count?ignore_unavailable=true"),
        None,
    )["count"]
        .as_u64()
        .unwrap_or(0)
}

/// Waits until `index` holds `expected` documents; panics with the transfer logs if not.
pub fn wait_for_count(index: &str, expected: u64, timeout: Duration, logs: &[&Transfer]) {
    let reached = wait_for(timeout, || {
        let now = count(index);
        if now < expected && logs.iter().any(|t| !t.running()) {
            let logs: Vec<String> = logs.iter().map(|t| t.log()).collect();
            panic!("a transfer exited early; logs:\n{}", logs.join("\n-----\n"));
        }
        (now >= expected).then_some(now)
    });
    match reached {
        Some(n) => assert_eq!(n, expected, "more documents than distinct ids in {index}"),
        None => {
            let logs: Vec<String> = logs.iter().map(|t| t.log()).collect();
            panic!(
                "{index} has {} documents, expected {expected}; logs:\n{}",
                count(index),
                logs.join("\n-----\n")
            );
        }
    }
}

/// Every document of `index` (up to 10 000): (`_id`, `_source`).
pub fn documents(index: &str) -> Vec<(String, Value)> {
    es("POST", &format!("{index}/_refresh"), None);
    let answer = es(
        "POST",
        &format!("{index}/_search"),
        Some(r#"{"size":10000,"query":{"match_all":{}}}"#),
    );
    answer["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .map(|h| {
                    (
                        h["_id"].as_str().unwrap_or_default().to_string(),
                        h["_source"].clone(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Asserts that no `message` occurs twice in `index` and returns how many there are.
pub fn assert_no_duplicate_messages(index: &str) -> usize {
    let docs = documents(index);
    let mut messages: Vec<String> = docs
        .iter()
        .map(|(_, source)| source["message"].as_str().unwrap_or_default().to_string())
        .collect();
    messages.sort();
    let total = messages.len();
    messages.dedup();
    assert_eq!(
        messages.len(),
        total,
        "a message was indexed twice in {index}"
    );
    total
}

/// The offsets committed by `group` for each partition of `topic` (`None`: nothing committed).
pub fn committed(group: &str, topic: &str) -> Vec<Option<i64>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut list = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        list.add_partition(topic, p);
    }
    // A coordinator that is moving or still loading answers with an error for a while: ask
    // again (a freshly restarted broker was seen answering NotCoordinator for seconds).
    let answer = wait_for(Duration::from_secs(30), || {
        consumer
            .committed_offsets(list.clone(), Duration::from_secs(10))
            .ok()
    })
    .expect("committed offsets within 30 s");
    (0..PARTITIONS)
        .map(
            |p| match answer.find_partition(topic, p).map(|e| e.offset()) {
                Some(Offset::Offset(o)) => Some(o),
                _ => None,
            },
        )
        .collect()
}

/// The end offset (high watermark) of each partition of `topic`.
pub fn end_offsets(topic: &str) -> Vec<i64> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", kafka_brokers())
        .create()
        .expect("consumer");
    (0..PARTITIONS)
        .map(|p| {
            consumer
                .fetch_watermarks(topic, p, Duration::from_secs(10))
                .expect("watermarks")
                .1
        })
        .collect()
}

/// Waits until `group` committed the end offset of every non-empty partition of `topic`.
pub fn wait_for_commits_at_end(group: &str, topic: &str, timeout: Duration) {
    let ends = end_offsets(topic);
    let done = wait_for(timeout, || {
        let committed = committed(group, topic);
        committed
            .iter()
            .zip(&ends)
            .all(|(c, &end)| end == 0 || *c == Some(end))
            .then_some(())
    });
    assert!(
        done.is_some(),
        "group {group} committed {:?}, end offsets {ends:?}",
        committed(group, topic)
    );
}

/// The whole pipe for a test: a real agent following `logs/*.log` into a fresh topic, and a real
/// transfer indexing it into a fresh index. Both stop when dropped.
pub struct Shipping {
    /// Topic and index names.
    pub setup: TransferSetup,
    /// The directory the agent follows.
    pub logs: PathBuf,
    /// The agent.
    pub agent: crate::common::agent::AgentProcess,
    /// The transfer.
    pub transfer: Transfer,
    /// The agent's directory (config, data, logs) and the transfer's.
    dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Shipping {
    /// Starts agent and transfer; names are made from `name`.
    pub fn start(name: &str) -> Shipping {
        Shipping::start_with(TransferSetup::new(name), "")
    }

    /// Starts agent and transfer with `setup`, `collect_extra` added to the agent's collect
    /// entry (`multiline = "java"`).
    pub fn start_with(setup: TransferSetup, collect_extra: &str) -> Shipping {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let agent_config = crate::common::agent::write_config(
            dir.path(),
            &format!("{}/*.log", logs.display()),
            &setup.topic,
            "",
        );
        // The collect entry is the config's last table.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&agent_config)
            .and_then(|mut f| f.write_all(format!("{collect_extra}\n").as_bytes()))
            .expect("extend the agent config");
        let agent = crate::common::agent::AgentProcess::start(&agent_config);
        let (transfer_dir, transfer_config) = setup.write();
        let transfer = Transfer::start(&transfer_config, "transfer");
        Shipping {
            setup,
            logs,
            agent,
            transfer,
            dirs: (dir, transfer_dir),
        }
    }

    /// A directory of this test's own (the agent's config and data are in it), for more files.
    pub fn dir(&self) -> &std::path::Path {
        self.dirs.0.path()
    }

    /// Waits until the index holds `expected` documents (failing with the transfer's log).
    pub fn wait_indexed(&self, expected: u64, timeout: Duration) {
        wait_for_count(&self.setup.index, expected, timeout, &[&self.transfer]);
    }

    /// Stops the agent (which must stop cleanly) and the transfer.
    pub fn stop(self) {
        assert!(self.agent.terminate(), "agent did not stop");
        let _ = self.transfer.terminate(Duration::from_secs(30));
    }
}
