//! The chaos suite: the real agent and transfer, the real Kafka and Elasticsearch, and a seeded
//! schedule of trouble, then a check that Elasticsearch holds every written line exactly once.
//!
//! Writers append to several files at varied rates (some lines over 64 KiB, some not valid
//! UTF-8) and rotate them (rename, copytruncate) at random moments. Meanwhile, at seeded random
//! moments, the agent and the transfer are each SIGKILLed and restarted several times, and the
//! Kafka broker and Elasticsearch are each stopped and started once. Then everything drains and
//! the index must hold: distinct ids = lines written = `_count`, and every line's content.
//!
//! `LOGSHIP_CHAOS_SECONDS` (default 60 per run) or `LOGSHIP_CHAOS_MINUTES` sets how long trouble lasts;
//! `LOGSHIP_CHAOS_SEED` replays a schedule. Alone in its test binary: it stops shared servers.
//!
//! Rotated files get unique names (`a.log.1`, `a.log.2`, ...), as with logrotate's `dateext`:
//! a rotation that overwrote an older rotated file while the agent is down would delete lines
//! no tailer can read any more, which is not what this suite is about. A file is rotated at
//! most every 5 s ([`MIN_ROTATION_GAP`]): a file created and rotated away to a name the glob
//! does not match while the agent is down cannot be known to any tailer (the first runs of
//! this suite, rotating every second, lost exactly those files).
//!
//! The suite runs twice, once per collected glob (`LOGSHIP_CHAOS_GLOB`, comma-separated;
//! default `*.log,*.log*`): `*.log` drains rotated files through their descriptors and finds
//! copytruncate copies by searching the directory; `*.log*` collects the rotated names too, so
//! a copy is also met by a scan, possibly while it is still being written (a run with it once
//! doubled 964 lines that way), and rotations may come every second. A third run,
//! `java:*.log`, collects with `multiline = "java"` while the writers write Java stack traces
//! (a log line and up to 40 frames, `Caused by:`, `... N more`) among plain lines: every
//! event must then be one document holding all its lines, exactly once, across the same kills,
//! outages and rotations (copytruncate included).
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::collections::{BTreeMap, HashMap};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::agent::{write_config, AgentProcess};
use common::ops::{free_addr, http_get, sample};
use common::Outage;
use serde_json::Value;
use transfer_support::{count, create_topic, es, Transfer, TransferSetup};

/// The least time between two rotations of one file when rotated names are not collected:
/// longer than the agent can be down here (up to 3 s before its restart), so every file is seen
/// under its collected name. Real rotations are minutes apart.
const MIN_ROTATION_GAP: Duration = Duration::from_secs(5);
/// The same when the glob matches rotated names too: any file is seen under some name.
const MIN_ROTATION_GAP_ROTATED_COLLECTED: Duration = Duration::from_secs(1);

/// A small deterministic generator (xorshift64*), so a seed replays the same schedule.
#[derive(Debug, Clone)]
struct Rng(u64);

impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed.max(1))
    }
    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
    fn chance(&mut self, one_in: u64) -> bool {
        self.below(one_in) == 0
    }
}

/// What the chaos thread does at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Trouble {
    KillAgent,
    KillTransfer,
    StopKafka,
    StopElasticsearch,
}

/// The seeded schedule: each trouble at a moment within `span`, in time order.
fn schedule(rng: &mut Rng, span: Duration, kills: usize) -> Vec<(Duration, Trouble)> {
    let mut events = Vec::new();
    for _ in 0..kills {
        events.push(Trouble::KillAgent);
        events.push(Trouble::KillTransfer);
    }
    events.push(Trouble::StopKafka);
    events.push(Trouble::StopElasticsearch);
    let millis = span.as_millis() as u64;
    let mut timed: Vec<(Duration, Trouble)> = events
        .into_iter()
        .map(|t| (Duration::from_millis(rng.below(millis)), t))
        .collect();
    timed.sort_by_key(|(at, _)| *at);
    timed
}

/// One writer: appends lines to `path` until told to stop, rotating now and then.
struct Writer {
    path: PathBuf,
    name: String,
    rng: Rng,
    /// Every line written, as the message Elasticsearch must hold (lossy for invalid UTF-8).
    written: Arc<Mutex<Vec<String>>>,
    /// Mean pause between batches.
    pause: Duration,
    /// A rotation follows a batch with probability 1 in this.
    rotate_one_in: u64,
    /// The least time between two rotations.
    min_rotation_gap: Duration,
    /// Some lines are followed by a Java stack trace (one event with them).
    java: bool,
}

impl Writer {
    fn run(mut self, stop: &AtomicBool) -> usize {
        let mut seq = 0u64;
        let mut rotations = 0u32;
        let mut last_rotation = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            let batch = 1 + self.rng.below(20);
            let mut bytes = Vec::new();
            let mut messages = Vec::new();
            for _ in 0..batch {
                let line = self.line(seq);
                messages.push(String::from_utf8_lossy(&line).into_owned());
                bytes.extend_from_slice(&line);
                bytes.push(b'\n');
                seq += 1;
            }
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)
                .and_then(|mut f| f.write_all(&bytes))
                .expect("append");
            self.written.lock().unwrap().extend(messages);
            if last_rotation.elapsed() >= self.min_rotation_gap
                && self.rng.chance(self.rotate_one_in)
            {
                last_rotation = Instant::now();
                rotations += 1;
                let rotated = self
                    .path
                    .with_file_name(format!("{}.{rotations}", self.name));
                if self.rng.chance(2) {
                    std::fs::rename(&self.path, &rotated).expect("rename rotation");
                } else {
                    std::fs::copy(&self.path, &rotated).expect("copy");
                    std::fs::OpenOptions::new()
                        .write(true)
                        .open(&self.path)
                        .and_then(|f| f.set_len(0))
                        .expect("truncate");
                }
            }
            let pause = self.pause.as_millis() as u64;
            std::thread::sleep(Duration::from_millis(pause / 2 + self.rng.below(pause)));
        }
        seq as usize
    }

    fn line(&mut self, seq: u64) -> Vec<u8> {
        let mut line = self.single_line(seq);
        if self.java && self.rng.chance(4) {
            line.extend_from_slice(
                format!(
                    "\njava.lang.IllegalStateException: {}-{seq:08} failed",
                    self.name
                )
                .as_bytes(),
            );
            for frame in 0..1 + self.rng.below(25) {
                line.extend_from_slice(
                    format!("\n\tat com.example.Service{frame}.call(Service.java:{seq})")
                        .as_bytes(),
                );
            }
            if self.rng.chance(2) {
                line.extend_from_slice(b"\nCaused by: java.io.IOException: connection reset");
                for frame in 0..1 + self.rng.below(15) {
                    line.extend_from_slice(
                        format!("\n\tat java.net.Socket{frame}.read(Socket.java:{frame})")
                            .as_bytes(),
                    );
                }
                line.extend_from_slice(format!("\n\t... {} more", 3 + seq % 9).as_bytes());
            }
        }
        line
    }

    /// One line (over 64 KiB now and then, or not valid UTF-8).
    fn single_line(&mut self, seq: u64) -> Vec<u8> {
        let mut line = format!("{}-{seq:08} ", self.name).into_bytes();
        match self.rng.below(400) {
            0 => {
                // Over 64 KiB: several reads, one record.
                let len = 65 * 1024 + self.rng.below(64 * 1024) as usize;
                line.extend(std::iter::repeat_n(b'L', len));
            }
            1..=3 => line.extend_from_slice(b"invalid \xff\xfe utf-8 \xc3("),
            _ => {
                let len = 20 + self.rng.below(160) as usize;
                line.extend((0..len).map(|i| b'a' + (i % 26) as u8));
            }
        }
        line
    }
}

/// Every document's `message` by `_id`, paged with `search_after` on (file_id, offset).
fn all_messages(index: &str) -> HashMap<String, String> {
    es("POST", &format!("{index}/_refresh"), None);
    let mut found = HashMap::new();
    let mut after: Option<Value> = None;
    loop {
        let mut query = serde_json::json!({
            "size": 2000,
            "_source": ["message"],
            "query": {"match_all": {}},
            "sort": [{"file_id": "asc"}, {"offset": "asc"}],
        });
        if let Some(after) = &after {
            query["search_after"] = after.clone();
        }
        let answer = es(
            "POST",
            &format!("{index}/_search"),
            Some(&query.to_string()),
        );
        let hits = answer["hits"]["hits"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        if hits.is_empty() {
            return found;
        }
        for hit in &hits {
            let id = hit["_id"].as_str().unwrap_or_default().to_string();
            let message = hit["_source"]["message"]
                .as_str()
                .unwrap_or_default()
                .to_string();
            found.insert(id, message);
        }
        after = hits.last().map(|h| h["sort"].clone());
    }
}

fn chaos_span() -> Duration {
    if let Some(seconds) = std::env::var("LOGSHIP_CHAOS_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
    {
        return Duration::from_secs(seconds);
    }
    if let Some(minutes) = std::env::var("LOGSHIP_CHAOS_MINUTES")
        .ok()
        .and_then(|s| s.parse::<u64>().ok())
    {
        return Duration::from_secs(minutes * 60);
    }
    Duration::from_secs(60)
}

fn du(path: &Path) -> u64 {
    fn walk(path: &Path) -> u64 {
        let Ok(entries) = std::fs::read_dir(path) else {
            return 0;
        };
        entries
            .flatten()
            .map(|e| match e.metadata() {
                Ok(m) if m.is_dir() => walk(&e.path()),
                Ok(m) => m.len(),
                Err(_) => 0,
            })
            .sum()
    }
    walk(path)
}

/// One look at where the lines are during the drain: what each component reports.
#[derive(Debug, Clone)]
struct Sample {
    at: Duration,
    /// The agent's acknowledged lines and WAL records pending (`None`: no answer).
    agent: Option<(f64, f64)>,
    agent_health: String,
    /// The transfer's documents created (`None`: no answer).
    transfer: Option<f64>,
    transfer_health: String,
    indexed: u64,
}

impl Sample {
    fn take(
        at: Duration,
        agent: std::net::SocketAddr,
        transfer: std::net::SocketAddr,
        index: &str,
    ) -> Sample {
        let metrics = |addr| http_get(addr, "/metrics").map(|(_, body)| body);
        let health = |addr| {
            http_get(addr, "/health")
                .map(|(code, body)| format!("{code} {body}"))
                .unwrap_or_else(|| "no answer".into())
        };
        Sample {
            at,
            agent: metrics(agent).map(|m| {
                (
                    sample(&m, "logship_kafka_delivered_lines_total", None).unwrap_or(0.0),
                    sample(&m, "logship_wal_pending_records", None).unwrap_or(0.0),
                )
            }),
            agent_health: health(agent),
            transfer: metrics(transfer).map(|m| {
                sample(&m, "logship_transfer_documents_created_total", None).unwrap_or(0.0)
            }),
            transfer_health: health(transfer),
            indexed: count(index),
        }
    }
}

/// Which component made no progress over the drain's samples, in words: the agent's
/// acknowledgements while its WAL held records, the transfer's documents while lines were
/// missing, and what the broker says of itself.
fn diagnose(samples: &[Sample], expected: u64) -> String {
    let mut out = Vec::new();
    let (Some(first), Some(last)) = (samples.first(), samples.last()) else {
        return "no samples".into();
    };
    // Since when a value has stood still: the first sample of its last unchanged run.
    let still_since = |value: &dyn Fn(&Sample) -> Option<u64>| {
        let last_value = value(last);
        samples
            .iter()
            .rev()
            .take_while(|s| value(s) == last_value)
            .last()
            .map(|s| last.at.saturating_sub(s.at))
            .unwrap_or_default()
    };
    let acked = |s: &Sample| s.agent.map(|(a, _)| a as u64);
    let pending = last.agent.map(|(_, p)| p).unwrap_or(0.0);
    let agent_still = still_since(&acked);
    out.push(format!(
        "agent: {} lines acknowledged (from {}), {pending} WAL records pending, acknowledgements \
         unchanged for the last {agent_still:?}{}; /health {}",
        acked(last).map_or("?".into(), |a| a.to_string()),
        acked(first).map_or("?".into(), |a| a.to_string()),
        if pending > 0.0 && agent_still >= Duration::from_secs(30) {
            " <- NO PROGRESS"
        } else {
            ""
        },
        last.agent_health
    ));
    let created = |s: &Sample| s.transfer.map(|c| c as u64);
    let transfer_still = still_since(&created);
    out.push(format!(
        "transfer: {} documents created, {} of {expected} indexed, unchanged for the last \
         {transfer_still:?}{}; /health {}",
        created(last).map_or("?".into(), |c| c.to_string()),
        last.indexed,
        if last.indexed < expected && transfer_still >= Duration::from_secs(30) {
            " <- NO PROGRESS"
        } else {
            ""
        },
        last.transfer_health
    ));
    let status = std::process::Command::new("bash")
        .arg(common::services_script())
        .args(["status", "kafka"])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_else(|e| format!("cannot run services.sh status: {e}"));
    out.push(format!("broker: {status}"));
    let kafka_log = common::repo_root().join(".services/kafka/kafka.log");
    if kafka_log.exists() {
        common::keep_log(&kafka_log);
        let text = std::fs::read_to_string(&kafka_log).unwrap_or_default();
        out.push(format!(
            "broker log (kept in target/test-logs), last lines:\n{}",
            tail(&text, 15)
        ));
    }
    out.join("\n")
}

#[test]
fn chaos_every_line_indexed_exactly_once() {
    let globs =
        std::env::var("LOGSHIP_CHAOS_GLOB").unwrap_or_else(|_| "*.log,*.log*,java:*.log".into());
    for (run, spec) in globs.split(',').map(str::trim).enumerate() {
        match spec.strip_prefix("java:") {
            Some(glob) => chaos_run(run, glob, true),
            None => chaos_run(run, spec, false),
        }
    }
}

/// One chaos run collecting `glob` in its log directory (`java`: with `multiline = "java"`,
/// writing stack traces).
fn chaos_run(run: usize, glob: &str, java: bool) {
    let seed: u64 = std::env::var("LOGSHIP_CHAOS_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| {
            std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map(|d| d.as_nanos() as u64)
                .unwrap_or(1)
        });
    let span = chaos_span();
    let spec = if java {
        format!("java:{glob}")
    } else {
        glob.to_string()
    };
    let rerun = format!(
        "rerun: LOGSHIP_CHAOS_SEED={seed} LOGSHIP_CHAOS_SECONDS={} LOGSHIP_CHAOS_GLOB='{spec}' cargo test --test chaos -- --nocapture",
        span.as_secs()
    );
    eprintln!(
        "chaos: glob {spec}, seed {seed}, {} s of trouble",
        span.as_secs()
    );
    let rotated_collected = glob::Pattern::new(glob).is_ok_and(|p| p.matches("alpha.log.1"));
    let min_rotation_gap = if rotated_collected {
        MIN_ROTATION_GAP_ROTATED_COLLECTED
    } else {
        MIN_ROTATION_GAP
    };
    let mut rng = Rng::new(seed);

    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let mut setup = TransferSetup::new(&format!("chaos{run}"));
    create_topic(&setup.topic);
    let agent_config = write_config(
        dir.path(),
        &format!("{}/{glob}", logs.display()),
        &setup.topic,
        "",
    );
    if java {
        // The collect entry is the config's last table.
        std::fs::OpenOptions::new()
            .append(true)
            .open(&agent_config)
            .and_then(|mut f| f.write_all(b"multiline = \"java\"\n"))
            .expect("add multiline to the agent config");
    }
    // Both endpoints answer for the drain's diagnosis (the agent's address is in its config,
    // the same across restarts).
    let agent_addr = free_addr();
    let text = std::fs::read_to_string(&agent_config).unwrap();
    std::fs::write(
        &agent_config,
        format!("metrics_addr = \"{agent_addr}\"\n{text}"),
    )
    .unwrap();
    let transfer_addr = free_addr();
    setup.top_level = format!("metrics_addr = \"{transfer_addr}\"");
    let transfer_config = dir.path().join("transfer.toml");
    std::fs::write(&transfer_config, setup.toml()).unwrap();

    let written = Arc::new(Mutex::new(Vec::new()));
    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = ["alpha", "beta", "gamma"]
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let writer = Writer {
                path: logs.join(format!("{name}.log")),
                name: format!("{name}.log"),
                rng: Rng::new(seed.wrapping_add(i as u64 + 1).wrapping_mul(7919)),
                written: written.clone(),
                pause: Duration::from_millis([20, 80, 250][i]),
                // About as many rotations in a long soak as in the short profile: a soak is
                // about time (disk use, leaks), not about thousands of rotated files.
                rotate_one_in: 40 * (span.as_secs() / 90).max(1),
                min_rotation_gap,
                java,
            };
            let stop = stop.clone();
            std::thread::spawn(move || writer.run(&stop))
        })
        .collect();

    let mut agent = AgentProcess::start(&agent_config);
    let mut agent_starts = 1;
    let mut transfer = Transfer::start(&transfer_config, "transfer-0");
    let mut transfer_starts = 1;
    let data_dir = dir.path().join("data");
    let mut disk_use = vec![(0u64, du(&data_dir))];

    let started = Instant::now();
    let plan = schedule(&mut rng, span, 3);
    eprintln!("chaos: plan {plan:?}");
    for (at, trouble) in plan {
        while started.elapsed() < at {
            std::thread::sleep(Duration::from_millis(100));
        }
        eprintln!(
            "chaos: t={:.1}s {trouble:?}",
            started.elapsed().as_secs_f64()
        );
        match trouble {
            Trouble::KillAgent => {
                agent.kill9();
                std::thread::sleep(Duration::from_millis(rng.below(3000)));
                agent = AgentProcess::start(&agent_config);
                agent_starts += 1;
            }
            Trouble::KillTransfer => {
                transfer.kill9();
                std::thread::sleep(Duration::from_millis(rng.below(3000)));
                transfer =
                    Transfer::start(&transfer_config, &format!("transfer-{transfer_starts}"));
                transfer_starts += 1;
            }
            Trouble::StopKafka => {
                let outage = Outage::begin("kafka");
                std::thread::sleep(Duration::from_secs(3 + rng.below(10)));
                outage.end();
            }
            Trouble::StopElasticsearch => {
                let outage = Outage::begin("elasticsearch");
                std::thread::sleep(Duration::from_secs(3 + rng.below(10)));
                outage.end();
            }
        }
        disk_use.push((started.elapsed().as_secs(), du(&data_dir)));
    }
    while started.elapsed() < span {
        std::thread::sleep(Duration::from_millis(200));
    }
    stop.store(true, Ordering::Relaxed);
    for writer in writers {
        writer.join().expect("writer thread");
    }
    let expected: Vec<String> = written.lock().unwrap().clone();
    let drain_started = Instant::now();
    let events = expected.iter().filter(|m| m.contains('\n')).count();
    eprintln!(
        "chaos: {} lines written ({events} of them stack traces of several lines); draining",
        expected.len()
    );
    assert_eq!(
        java,
        events > 0,
        "stack traces are written in the java run only"
    );

    // Whether or not everything arrives in time, the checks below say what is missing, and
    // the samples taken meanwhile which component stopped moving.
    let mut samples = Vec::new();
    let mut next_sample = Instant::now();
    let _ = common::wait_for(Duration::from_secs(600), || {
        if Instant::now() >= next_sample {
            samples.push(Sample::take(
                drain_started.elapsed(),
                agent_addr,
                transfer_addr,
                &setup.index,
            ));
            next_sample = Instant::now() + Duration::from_secs(5);
        }
        (count(&setup.index) >= expected.len() as u64).then_some(())
    });
    samples.push(Sample::take(
        drain_started.elapsed(),
        agent_addr,
        transfer_addr,
        &setup.index,
    ));
    let drain = drain_started.elapsed();
    // A little longer: anything doubled would show up now.
    std::thread::sleep(Duration::from_secs(3));
    let total = count(&setup.index);
    let documents = all_messages(&setup.index);
    disk_use.push((started.elapsed().as_secs(), du(&data_dir)));

    let mut wanted: BTreeMap<&str, usize> = BTreeMap::new();
    for message in &expected {
        *wanted.entry(message.as_str()).or_default() += 1;
    }
    let mut got: BTreeMap<&str, usize> = BTreeMap::new();
    for message in documents.values() {
        *got.entry(message.as_str()).or_default() += 1;
    }
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(m, n)| got.get(*m).copied().unwrap_or(0) < **n)
        .map(|(m, _)| *m)
        .collect();
    let doubled: Vec<&str> = got
        .iter()
        .filter(|(m, n)| **n > wanted.get(*m).copied().unwrap_or(0))
        .map(|(m, _)| *m)
        .collect();
    let short = |m: &&str| m.chars().take(60).collect::<String>();
    eprintln!(
        "chaos: seed {seed}: written {} lines, _count {total}, distinct ids {}, agent starts {agent_starts}, \
         transfer starts {transfer_starts}, drained in {:.1} s; data_dir bytes over time {disk_use:?}",
        expected.len(),
        documents.len(),
        drain.as_secs_f64()
    );
    let report = format!(
        "seed {seed}: written {}, _count {total}, distinct ids {}, missing {} (e.g. {:?}), doubled {} (e.g. {:?})\n{rerun}\n{}\nagent log:\n{}\ntransfer log:\n{}",
        expected.len(),
        documents.len(),
        missing.len(),
        missing.iter().take(5).map(short).collect::<Vec<_>>(),
        doubled.len(),
        doubled.iter().take(5).map(short).collect::<Vec<_>>(),
        if missing.is_empty() && doubled.is_empty() && total == expected.len() as u64 {
            String::new()
        } else {
            diagnose(&samples, expected.len() as u64)
        },
        tail(&agent.log(), 60),
        tail(&transfer.log(), 60),
    );
    assert!(missing.is_empty(), "lines missing: {report}");
    assert!(doubled.is_empty(), "lines doubled: {report}");
    assert_eq!(total, expected.len() as u64, "{report}");
    assert_eq!(documents.len(), expected.len(), "{report}");
    assert!(agent.terminate(), "agent did not stop cleanly");
    transfer.terminate(Duration::from_secs(60));
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
