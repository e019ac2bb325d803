//! Harness for agent tests: config files, the real `logship agent` process, and an independent
//! Kafka reader that collects what arrived.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{Message, Offset, TopicPartitionList};

use super::{kafka_brokers, logship_bin, unique};

/// One record as read back from Kafka.
#[derive(Debug, Clone)]
pub struct Shipped {
    pub id: String,
    pub file: String,
    pub file_id: String,
    pub offset: u64,
    pub message: String,
    pub key: String,
    pub partition: i32,
    /// Kafka offset of the record that carried the line.
    pub kafka_offset: i64,
    /// Lines in that record.
    pub record_lines: usize,
    pub value: serde_json::Value,
}

/// Writes an agent config collecting `glob` into `topic`, with `extra` TOML lines appended at
/// the top level (before the tables).
pub fn write_config(dir: &Path, glob: &str, topic: &str, extra: &str) -> PathBuf {
    let config = dir.join("agent.toml");
    let text = format!(
        "host = \"test-host\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\nrotate_wait_ms = 1000\n{extra}\n\
         [kafka]\nbrokers = \"{brokers}\"\n\n[[collect]]\npath = \"{glob}\"\ntopic = \"{topic}\"\n",
        data = dir.join("data").display(),
        brokers = kafka_brokers(),
    );
    std::fs::write(&config, text).expect("write agent config");
    config
}

/// A running `logship agent`, killed when dropped.
pub struct AgentProcess {
    pub child: Child,
    config: PathBuf,
    log: PathBuf,
}

impl AgentProcess {
    /// Starts the agent; its log goes to `agent-<n>.log` next to the config.
    pub fn start(config: &Path) -> AgentProcess {
        Self::start_with_env(config, &[])
    }

    /// [`AgentProcess::start`] with extra environment variables.
    pub fn start_with_env(config: &Path, env: &[(&str, &str)]) -> AgentProcess {
        Self::spawn(config, env, &[])
    }

    /// [`AgentProcess::start`] with the open-files limits `soft` and `hard` (through util-linux's
    /// `prlimit`).
    pub fn start_with_nofile(config: &Path, soft: u64, hard: u64) -> AgentProcess {
        Self::spawn(
            config,
            &[],
            &["prlimit", &format!("--nofile={soft}:{hard}"), "--"],
        )
    }

    /// Starts the agent, through the `wrapper` command line when not empty.
    fn spawn(config: &Path, env: &[(&str, &str)], wrapper: &[&str]) -> AgentProcess {
        let dir = config.parent().expect("config dir");
        let mut n = 0;
        let log = loop {
            let candidate = dir.join(format!("agent-{n}.log"));
            if !candidate.exists() {
                break candidate;
            }
            n += 1;
        };
        let log_file = std::fs::File::create(&log).expect("agent log");
        let mut command = match wrapper.split_first() {
            Some((program, args)) => {
                let mut command = Command::new(program);
                command.args(args).arg(logship_bin());
                command
            }
            None => Command::new(logship_bin()),
        };
        let child = command
            .args(["agent", "--config"])
            .arg(config)
            .env("RUST_LOG", "info,logship=debug")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .expect("start logship agent");
        AgentProcess {
            child,
            config: config.to_path_buf(),
            log,
        }
    }

    /// SIGKILL, no goodbye.
    pub fn kill9(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM and wait for a clean exit; returns whether it exited successfully.
    pub fn terminate(mut self) -> bool {
        unsafe_sigterm(self.child.id());
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status.success();
            }
            if Instant::now() > deadline {
                let _ = self.child.kill();
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The agent's log so far.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The agent's log so far, without ANSI colour sequences (fields read `seq=5`).
    pub fn plain_log(&self) -> String {
        super::strip_ansi(&self.log())
    }

    /// Waits up to `timeout` for `needle` in the plain log.
    pub fn wait_for_log(&self, needle: &str, timeout: Duration) -> bool {
        super::wait_for(timeout, || self.plain_log().contains(needle).then_some(())).is_some()
    }

    /// Whether it is still running.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits up to `timeout` for the process to exit; its exit status, or `None` if it still runs.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Sends SIGHUP (read the credentials and certificates again).
    pub fn hangup(&self) {
        let _ = Command::new("kill")
            .arg("-HUP")
            .arg(self.child.id().to_string())
            .status();
    }

    /// Sends SIGTERM without waiting.
    pub fn sigterm(&self) {
        unsafe_sigterm(self.child.id());
    }
}

impl Drop for AgentProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        super::keep_log(&self.log);
    }
}

fn unsafe_sigterm(pid: u32) {
    let _ = Command::new("kill")
        .arg("-TERM")
        .arg(pid.to_string())
        .status();
}

/// Reads a topic from the beginning by assigning all its partitions directly (no consumer
/// group: a group's first rebalance on a topic that does not exist yet can take a session
/// timeout, which would only slow the tests down).
pub struct TopicReader {
    consumer: BaseConsumer,
    topic: String,
    assigned: bool,
    pub records: Vec<Shipped>,
}

impl TopicReader {
    pub fn new(topic: &str) -> TopicReader {
        let consumer: BaseConsumer = ClientConfig::new()
            .set("bootstrap.servers", kafka_brokers())
            .set("group.id", unique("reader"))
            .set("enable.auto.commit", "false")
            .create()
            .expect("create test consumer");
        TopicReader {
            consumer,
            topic: topic.to_string(),
            assigned: false,
            records: Vec::new(),
        }
    }

    /// Assigns every partition of the topic at its beginning, once the topic exists.
    fn assign(&mut self) {
        let Ok(metadata) = self
            .consumer
            .fetch_metadata(Some(&self.topic), Duration::from_secs(5))
        else {
            return;
        };
        let Some(topic) = metadata.topics().iter().find(|t| t.name() == self.topic) else {
            return;
        };
        if topic.error().is_some() || topic.partitions().is_empty() {
            return;
        }
        let mut list = TopicPartitionList::new();
        for partition in topic.partitions() {
            list.add_partition_offset(&self.topic, partition.id(), Offset::Beginning)
                .expect("partition offset");
        }
        self.consumer.assign(&list).expect("assign partitions");
        self.assigned = true;
    }

    /// Polls for up to `for_how_long`, appending what arrives.
    pub fn poll(&mut self, for_how_long: Duration) {
        let deadline = Instant::now() + for_how_long;
        while Instant::now() < deadline {
            if !self.assigned {
                self.assign();
                if !self.assigned {
                    std::thread::sleep(Duration::from_millis(200));
                    continue;
                }
            }
            match self.consumer.poll(Duration::from_millis(100)) {
                Some(Ok(message)) => {
                    let Some(payload) = message.payload() else {
                        panic!("record without value")
                    };
                    let key = message
                        .key()
                        .map(|k| String::from_utf8_lossy(k).into_owned())
                        .unwrap_or_default();
                    // An agent record is NDJSON: one JSON object per line.
                    let record_lines = payload.split(|&b| b == b'\n').count();
                    for line in payload.split(|&b| b == b'\n') {
                        let value: serde_json::Value =
                            serde_json::from_slice(line).expect("every line of a record is JSON");
                        self.records.push(Shipped {
                            id: value["id"].as_str().unwrap_or_default().to_string(),
                            file: value["file"].as_str().unwrap_or_default().to_string(),
                            file_id: value["file_id"].as_str().unwrap_or_default().to_string(),
                            offset: value["offset"].as_u64().unwrap_or(u64::MAX),
                            message: value["message"].as_str().unwrap_or_default().to_string(),
                            key: key.clone(),
                            partition: message.partition(),
                            kafka_offset: message.offset(),
                            record_lines,
                            value,
                        });
                    }
                }
                Some(Err(error)) => eprintln!("test consumer: {error}"),
                None => {}
            }
        }
    }

    /// Waits until every message of `expected` arrived; fails naming what is missing, with
    /// `log()` (the agent's log).
    pub fn assert_arrived(
        &mut self,
        expected: &[String],
        timeout: Duration,
        log: impl Fn() -> String,
    ) {
        let missing = self.wait_for_messages(expected, timeout);
        assert!(
            missing.is_empty(),
            "{} of {} lines missing, e.g. {:?}\n{}",
            missing.len(),
            expected.len(),
            missing.first(),
            log()
        );
    }

    /// [`TopicReader::assert_arrived`], then a second more of polling, and no line may have
    /// arrived twice (the records are exactly `expected`).
    pub fn assert_each_once(
        &mut self,
        expected: &[String],
        timeout: Duration,
        log: impl Fn() -> String,
    ) {
        self.assert_arrived(expected, timeout, log);
        self.poll(Duration::from_secs(1));
        assert_eq!(self.records.len(), expected.len(), "no line twice");
    }

    /// Polls until every message in `expected` has arrived or `timeout` passes.
    pub fn wait_for_messages(&mut self, expected: &[String], timeout: Duration) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let missing = missing(expected, &self.records);
            if missing.is_empty() || Instant::now() > deadline {
                return missing;
            }
            self.poll(Duration::from_millis(500));
        }
    }
}

/// Messages of `expected` not among `records`.
pub fn missing(expected: &[String], records: &[Shipped]) -> Vec<String> {
    let have: std::collections::HashSet<&str> =
        records.iter().map(|r| r.message.as_str()).collect();
    expected
        .iter()
        .filter(|m| !have.contains(m.as_str()))
        .cloned()
        .collect()
}

/// Panics if one message arrived under two different ids (a duplicate that would be indexed twice).
pub fn assert_duplicates_share_ids(records: &[Shipped]) {
    let mut ids: HashMap<&str, &str> = HashMap::new();
    for record in records {
        if let Some(previous) = ids.insert(&record.message, &record.id) {
            assert_eq!(
                previous, record.id,
                "message {:?} shipped under two ids",
                record.message
            );
        }
    }
}

/// Panics if, in arrival order, one stream's offsets ever go backwards (ignoring exact repeats).
pub fn assert_offsets_in_order(records: &[Shipped]) {
    let mut last: HashMap<&str, u64> = HashMap::new();
    for record in records {
        let previous = last.entry(&record.file_id).or_insert(0);
        assert!(
            record.offset >= *previous,
            "stream {} went back from {} to {}",
            record.file_id,
            previous,
            record.offset
        );
        *previous = record.offset;
    }
}

/// Appends `lines` to `path` (creating it), each followed by `\n`.
pub fn append_lines(path: &Path, lines: &[String]) {
    use std::io::Write;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .expect("open log for append");
    let mut buf = Vec::new();
    for line in lines {
        buf.extend_from_slice(line.as_bytes());
        buf.push(b'\n');
    }
    file.write_all(&buf).expect("append lines");
}

/// `count` distinct lines tagged with `tag`, numbered from `from`.
pub fn lines(tag: &str, from: usize, count: usize) -> Vec<String> {
    (from..from + count)
        .map(|i| format!("{tag} line {i:08} GET /index.html?q={i} HTTP/1.1 200 512"))
        .collect()
}
