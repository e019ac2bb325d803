//! Central configuration against the real etcd and Kafka, with the real binary: entries set with
//! `logship ctl` are collected, removed ones stop (and resume from their checkpoint), invalid
//! values are refused without disturbing shipping, and a killed agent leaves the registry.
//! Every test uses its own etcd prefix, host and topic.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use common::agent::*;
use common::{etcd_endpoint, kafka_brokers, logship_bin, unique, wait_for, Outage};

/// Generous: a freshly started broker on a loaded 2-core machine can stall topic creation.
/// Arrival in Kafka: generous, because a freshly restarted broker on this shared small machine
/// has taken minutes to serve idempotent producers (see scripts/services.sh, kafka_health).
const ARRIVAL: Duration = Duration::from_secs(300);

/// Every test holds this for reading; the one that stops the shared etcd server holds it for
/// writing, so no other test of this file runs while etcd is down.
static ETCD_SERVER: std::sync::RwLock<()> = std::sync::RwLock::new(());

fn etcd_shared() -> std::sync::RwLockReadGuard<'static, ()> {
    ETCD_SERVER.read().unwrap_or_else(|e| e.into_inner())
}

/// One test's world: a temp dir with `logs/`, an agent config with `[etcd]`, a unique prefix,
/// host and topic.
struct Setup {
    dir: tempfile::TempDir,
    logs: PathBuf,
    config: PathBuf,
    prefix: String,
    host: String,
    topic: String,
    metrics_addr: std::net::SocketAddr,
}

impl Setup {
    fn new(name: &str) -> Setup {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let prefix = format!("/logship-test-{}", unique(name));
        let host = unique("host");
        let topic = unique(name);
        let config = dir.path().join("agent.toml");
        let metrics_addr = common::ops::free_addr();
        let text = format!(
            "host = \"{host}\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\nrotate_wait_ms = 1000\n\
             metrics_addr = \"{metrics_addr}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\n\n[etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             allowed_paths = [\"{logs}\"]\n",
            data = dir.path().join("data").display(),
            brokers = kafka_brokers(),
            etcd = etcd_endpoint(),
            logs = logs.display(),
        );
        std::fs::write(&config, text).unwrap();
        Setup {
            dir,
            logs,
            config,
            prefix,
            host,
            topic,
            metrics_addr,
        }
    }

    /// `logship ctl --etcd … --prefix … <args>`.
    fn ctl(&self, args: &[&str]) -> Output {
        Command::new(logship_bin())
            .args(["ctl", "--etcd", &etcd_endpoint(), "--prefix", &self.prefix])
            .args(args)
            .output()
            .unwrap()
    }

    /// `ctl collect set` with `json`; panics unless it succeeds.
    fn set_entries(&self, json: &str) {
        let file = self.dir.path().join("entries.json");
        std::fs::write(&file, json).unwrap();
        let output = self.ctl(&[
            "collect",
            "set",
            "--host",
            &self.host,
            "--file",
            file.to_str().unwrap(),
        ]);
        assert!(
            output.status.success(),
            "ctl collect set failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
    }

    /// The entries collecting `logs/*.log` into the test's topic.
    fn entries(&self) -> String {
        format!(
            r#"[{{"path": "{}/*.log", "topic": "{}"}}]"#,
            self.logs.display(),
            self.topic
        )
    }

    fn collect_key(&self) -> String {
        format!("{}/agents/{}/collect", self.prefix, self.host)
    }

    fn registry_key(&self) -> String {
        format!("{}/registry/{}", self.prefix, self.host)
    }
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// Puts `value` at `key` directly (bypassing ctl's validation); returns the revision.
fn etcd_put(key: &str, value: &str) -> i64 {
    runtime().block_on(async {
        let mut client = etcd_client::Client::connect([etcd_endpoint()], None)
            .await
            .unwrap();
        let response = client.put(key, value, None).await.unwrap();
        response.header().unwrap().revision()
    })
}

/// Compacts the store's history up to its current revision (every older version is gone).
fn etcd_compact() -> i64 {
    let revision = etcd_put(&format!("/logship-test-compact/{}", unique("c")), "x");
    runtime().block_on(async {
        let mut client = etcd_client::Client::connect([etcd_endpoint()], None)
            .await
            .unwrap();
        client
            .compact(
                revision,
                Some(etcd_client::CompactionOptions::new().with_physical()),
            )
            .await
            .unwrap();
    });
    revision
}

/// Whether `key` exists.
fn etcd_exists(key: &str) -> bool {
    runtime().block_on(async {
        let mut client = etcd_client::Client::connect([etcd_endpoint()], None)
            .await
            .unwrap();
        !client.get(key, None).await.unwrap().kvs().is_empty()
    })
}

/// The value at `key`, if any.
fn etcd_get(key: &str) -> Option<String> {
    runtime().block_on(async {
        let mut client = etcd_client::Client::connect([etcd_endpoint()], None)
            .await
            .unwrap();
        let response = client.get(key, None).await.unwrap();
        response
            .kvs()
            .first()
            .map(|kv| kv.value_str().unwrap().to_string())
    })
}

/// RFC 3339 as nanoseconds since the epoch.
fn nanos(text: &str) -> i128 {
    time::OffsetDateTime::parse(text, &time::format_description::well_known::Rfc3339)
        .unwrap()
        .unix_timestamp_nanos()
}

/// The registry value's `(heartbeat_at, progress.acked_through)`, once it has both.
fn acked_through(key: &str) -> Option<(i128, i128)> {
    let value: serde_json::Value = serde_json::from_str(&etcd_get(key)?).unwrap();
    Some((
        nanos(value["heartbeat_at"].as_str()?),
        nanos(value["progress"]["acked_through"].as_str()?),
    ))
}

fn append(path: &Path, tag: &str, count: usize) -> Vec<String> {
    let batch = lines(tag, 0, count);
    append_lines(path, &batch);
    batch
}

#[test]
fn entries_set_with_ctl_are_collected_removed_and_resumed_from_their_checkpoint() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-collect");
    let log = setup.logs.join("a.log");
    let first = append(&log, "before", 200);
    let agent = AgentProcess::start(&setup.config);
    let mut reader = TopicReader::new(&setup.topic);

    let set_at = Instant::now();
    setup.set_entries(&setup.entries());
    let got = setup.ctl(&["collect", "get", "--host", &setup.host]);
    assert!(got.status.success());
    assert!(String::from_utf8_lossy(&got.stdout).contains(&setup.topic));
    // The agent picks the entry up within 5 s (arrival in Kafka also depends on the broker).
    assert!(
        agent.wait_for_log("following file", Duration::from_secs(5)),
        "{}",
        agent.log()
    );
    eprintln!("entries set → file followed: {:?}", set_at.elapsed());
    let missing = reader.wait_for_messages(&first, ARRIVAL);
    assert!(
        missing.is_empty(),
        "{} missing\n{}",
        missing.len(),
        agent.log()
    );
    eprintln!(
        "entries set → all first lines in Kafka: {:?}",
        set_at.elapsed()
    );

    // Remove the entry: the file is closed, checkpoint kept; lines written now stay put.
    setup.set_entries("[]");
    assert!(
        agent.wait_for_log(
            "collect entry removed: file closed, checkpoint kept",
            Duration::from_secs(5)
        ),
        "{}",
        agent.log()
    );
    let meanwhile = append(&log, "meanwhile", 300);
    reader.poll(Duration::from_secs(4));
    let shipped_meanwhile = meanwhile.len() - missing_of(&meanwhile, &reader.records);
    assert_eq!(
        shipped_meanwhile,
        0,
        "lines written after the entry was removed were shipped\n{}",
        agent.log()
    );

    // Put it back: the lines written meanwhile are shipped, from the kept checkpoint.
    setup.set_entries(&setup.entries());
    let after = append(&log, "after", 100);
    let expected: Vec<String> = meanwhile.iter().chain(after.iter()).cloned().collect();
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(
        missing.is_empty(),
        "{} lines missing after the entry came back\n{}",
        missing.len(),
        agent.log()
    );
    reader.poll(Duration::from_secs(1));
    assert_duplicates_share_ids(&reader.records);
    assert_offsets_in_order(&reader.records);
    let streams: std::collections::HashSet<&str> =
        reader.records.iter().map(|r| r.file_id.as_str()).collect();
    assert_eq!(streams.len(), 1, "the file kept its stream");
    assert!(agent.terminate());
}

fn missing_of(expected: &[String], records: &[Shipped]) -> usize {
    missing(expected, records).len()
}

#[test]
fn malformed_and_disallowed_values_are_refused_and_shipping_continues() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-refuse");
    let log = setup.logs.join("a.log");
    let first = append(&log, "first", 100);
    setup.set_entries(&setup.entries());
    let agent = AgentProcess::start(&setup.config);
    let mut reader = TopicReader::new(&setup.topic);
    let missing = reader.wait_for_messages(&first, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());

    let key = setup.collect_key();
    let bad_json = etcd_put(&key, "[{\"path\": ");
    let outside = format!(
        r#"[{{"path": "{}/*.log", "topic": "{}"}}]"#,
        std::env::temp_dir().join(unique("elsewhere")).display(),
        setup.topic
    );
    assert!(agent.wait_for_log(&bad_json.to_string(), Duration::from_secs(5)));
    let disallowed = etcd_put(&key, &outside);
    assert!(
        agent.wait_for_log("outside the allowed paths", Duration::from_secs(5)),
        "{}",
        agent.log()
    );
    let log_text = agent.plain_log();
    for revision in [bad_json, disallowed] {
        let line = log_text
            .lines()
            .find(|l| l.contains("refused") && l.contains(&format!("revision={revision}")))
            .unwrap_or_else(|| panic!("no refusal logged for revision {revision}\n{log_text}"));
        assert!(line.contains(&key), "{line}");
    }

    // Both refusals are counted in the agent's metrics; the first value was applied.
    let (_, metrics) = common::ops::http_get(setup.metrics_addr, "/metrics").expect("/metrics");
    assert_eq!(
        common::ops::sample(&metrics, "logship_config_rejections_total", Some("")),
        Some(2.0),
        "{metrics}"
    );
    assert!(
        common::ops::sample(&metrics, "logship_config_reloads_total", Some(""))
            .is_some_and(|v| v >= 1.0),
        "{metrics}"
    );

    // The previous entries still apply.
    let second = append(&log, "second", 100);
    let missing = reader.wait_for_messages(&second, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());
    assert!(!agent.log().contains("collect entry removed"));
    assert!(agent.terminate());
}

#[test]
fn registry_lists_the_agent_and_forgets_it_after_sigkill() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-registry");
    let agent = AgentProcess::start(&setup.config);
    let key = setup.registry_key();
    assert!(
        wait_for(Duration::from_secs(10), || etcd_exists(&key).then_some(())).is_some(),
        "agent never registered\n{}",
        agent.log()
    );
    let listed = setup.ctl(&["agents"]);
    assert!(listed.status.success());
    let listed = String::from_utf8_lossy(&listed.stdout).into_owned();
    let row = listed
        .lines()
        .find(|l| l.starts_with(&setup.host))
        .unwrap_or_else(|| panic!("host not listed:\n{listed}"));
    assert!(row.contains(env!("CARGO_PKG_VERSION")), "{row}");

    agent.kill9();
    let killed = Instant::now();
    let gone = wait_for(Duration::from_secs(20), || {
        (!etcd_exists(&key)).then_some(())
    });
    let took = killed.elapsed();
    eprintln!("registry key gone {took:?} after SIGKILL");
    assert!(gone.is_some(), "registry key still there after {took:?}");
    assert!(took <= Duration::from_secs(16), "took {took:?}");
}

/// The alert evaluator's first condition for a complete window (docs/design.md, "Alerts"):
/// `acked_through` stays below the read time of lines Kafka has not acknowledged, however
/// long, goes past them once Kafka has them, and does not go back across a SIGKILL.
#[test]
fn registry_acked_through_holds_below_unacknowledged_lines_and_passes_them_once_kafka_has_them() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-acked");
    let good = std::fs::read_to_string(&setup.config).unwrap();
    // No Kafka listens on port 9 (discard): lines stay in the WAL.
    std::fs::write(
        &setup.config,
        good.replace(
            &format!("brokers = \"{}\"", kafka_brokers()),
            "brokers = \"127.0.0.1:9\"",
        ),
    )
    .unwrap();
    setup.set_entries(&setup.entries());
    let agent = AgentProcess::start(&setup.config);
    let key = setup.registry_key();
    let (_, idle) = wait_for(Duration::from_secs(20), || acked_through(&key))
        .unwrap_or_else(|| panic!("no acked_through published\n{}", agent.log()));
    let log = setup.logs.join("a.log");
    let written = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
    let batch = append(&log, "held", 50);
    assert!(idle <= written, "nothing pending: at most now");
    // Read (the agent's WAL holds them), never acknowledged: the heartbeat moves on, acked_through
    // stays at or below their read time, however many heartbeats pass.
    let held = wait_for(Duration::from_secs(30), || {
        let (heartbeat, through) = acked_through(&key)?;
        (heartbeat > written + 7_000_000_000).then_some(through)
    })
    .unwrap_or_else(|| panic!("no heartbeat 7 s after the lines\n{}", agent.log()));
    assert!(
        held <= written + 7_000_000_000 && held >= idle,
        "acked_through {held} passed lines read after {written} that Kafka never acknowledged"
    );
    let pinned = wait_for(Duration::from_secs(10), || {
        let (heartbeat, through) = acked_through(&key)?;
        (heartbeat > written + 10_000_000_000).then_some(through)
    })
    .unwrap();
    assert_eq!(
        pinned, held,
        "it does not move while the lines are unacknowledged"
    );

    // SIGKILLed and restarted with the real Kafka: the WAL's lines are shipped, acked_through
    // goes past them and was never below what was published before.
    agent.kill9();
    std::fs::write(&setup.config, &good).unwrap();
    let agent = AgentProcess::start(&setup.config);
    let mut seen = Vec::new();
    let passed = wait_for(ARRIVAL, || {
        let (_, through) = acked_through(&key)?;
        seen.push(through);
        (through > written + 10_000_000_000).then_some(through)
    });
    assert!(
        passed.is_some(),
        "acked_through never passed the lines once Kafka was there: {seen:?}\n{}",
        agent.log()
    );
    assert!(
        seen.iter().all(|t| *t >= held) && seen.windows(2).all(|w| w[0] <= w[1]),
        "acked_through went back: held at {held}, then {seen:?}"
    );
    let mut reader = TopicReader::new(&setup.topic);
    reader.assert_each_once(&batch, ARRIVAL, || agent.log());
}

#[test]
fn ctl_refuses_bad_json_and_entries_without_topic_naming_the_entry() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-ctl");
    let file = setup.dir.path().join("bad.json");
    let set = |json: &str| {
        std::fs::write(&file, json).unwrap();
        setup.ctl(&[
            "collect",
            "set",
            "--host",
            &setup.host,
            "--file",
            file.to_str().unwrap(),
        ])
    };
    let output = set("[{\"path\": \"/var/log/a.log\", ");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("not a JSON array"), "{stderr}");

    let output = set(r#"[{"path": "/var/log/a.log", "topic": "a"}, {"path": "/var/log/b.log"}]"#);
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains("entry 1") && stderr.contains("/var/log/b.log") && stderr.contains("topic"),
        "{stderr}"
    );
    // Nothing was written.
    assert!(!etcd_exists(&setup.collect_key()));
}

/// `ctl alert`: a rule is stored normalized and read back; bad ones are refused by name and
/// reason before anything is written; list says which stored value does not read; delete.
#[test]
fn ctl_alert_stores_good_rules_and_refuses_bad_ones_with_the_reason() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-alert");
    let file = setup.dir.path().join("rule.json");
    let set = |name: &str, json: &str| {
        std::fs::write(&file, json).unwrap();
        setup.ctl(&["alert", "set", name, "--file", file.to_str().unwrap()])
    };
    let text = |output: &Output| {
        format!(
            "{}{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        )
    };
    let good = r#"{"kind": "logs", "query": "ERROR", "window": "1m", "condition": "count > 10",
        "group_by": ["host"], "summary": "{{count}} errors on {{group.host}}"}"#;
    let output = set("shop-errors", good);
    assert!(output.status.success(), "{}", text(&output));
    let key = format!("{}/alerts/rules/shop-errors", setup.prefix);
    assert!(etcd_exists(&key));
    let output = setup.ctl(&["alert", "get", "shop-errors"]);
    assert!(output.status.success(), "{}", text(&output));
    let stored: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(stored["kind"], "logs");
    assert_eq!(stored["for"], 1, "defaults are written out: {stored}");
    assert_eq!(stored["max_delay"], "5m");

    for (name, json, reason) in [
        (
            "unknown-kind",
            r#"{"kind": "traces"}"#,
            "unknown variant `traces`",
        ),
        (
            "zero-window",
            r#"{"kind": "logs", "window": "0s", "condition": "count > 1"}"#,
            "window",
        ),
        (
            "bad-condition",
            r#"{"kind": "logs", "window": "1m", "condition": "many"}"#,
            "condition",
        ),
        (
            "empty-receiver",
            r#"{"kind": "agent_down", "receivers": [""]}"#,
            "receivers",
        ),
        ("a/b", r#"{"kind": "agent_down"}"#, "'/'"),
    ] {
        let output = set(name, json);
        assert!(!output.status.success(), "{name} was accepted");
        assert!(text(&output).contains(reason), "{name}: {}", text(&output));
        assert!(!etcd_exists(&format!(
            "{}/alerts/rules/{name}",
            setup.prefix
        )));
    }

    // What needs servers: with --es, Elasticsearch's word on the query and the group_by
    // fields; and the receivers the evaluator lists in etcd.
    let index = unique("alert-checks");
    let created = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(r#"{"mappings": {"properties": {"message": {"type": "text"}, "host": {"type": "keyword"}}}}"#)
        .arg(format!("{}/{index}", common::es_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let set_es = |name: &str, json: &str| {
        std::fs::write(&file, json).unwrap();
        setup.ctl(&[
            "alert",
            "set",
            name,
            "--file",
            file.to_str().unwrap(),
            "--es",
            &common::es_url(),
        ])
    };
    let checked = format!(
        r#"{{"kind": "logs", "index": "{index}", "query": "ERROR AND host:web-01", "window": "1m",
            "condition": "count > 1", "group_by": ["host"]}}"#
    );
    let output = set_es("checked", &checked);
    assert!(output.status.success(), "{}", text(&output));
    for (name, json, reason) in [
        (
            "bad-query",
            format!(
                r#"{{"kind": "logs", "index": "{index}", "query": "status:[200 TO", "window": "1m", "condition": "count > 1"}}"#
            ),
            "Elasticsearch refuses it",
        ),
        (
            "text-group",
            format!(
                r#"{{"kind": "logs", "index": "{index}", "window": "1m", "condition": "count > 1", "group_by": ["message"]}}"#
            ),
            "group_by \"message\" is a text field",
        ),
    ] {
        let output = set_es(name, &json);
        assert!(!output.status.success(), "{name} was accepted");
        assert!(text(&output).contains(reason), "{name}: {}", text(&output));
    }
    etcd_put(
        &format!("{}/alerts/receivers", setup.prefix),
        r#"["alertmanager", "ops"]"#,
    );
    let output = set(
        "paging",
        r#"{"kind": "agent_down", "receivers": ["pager"]}"#,
    );
    assert!(!output.status.success(), "a missing receiver was accepted");
    assert!(
        text(&output).contains("\"pager\" is not a receiver of the alert evaluator"),
        "{}",
        text(&output)
    );
    let output = set("paging", r#"{"kind": "agent_down", "receivers": ["ops"]}"#);
    assert!(output.status.success(), "{}", text(&output));

    // A value that reached etcd without ctl and does not read is listed as such.
    etcd_put(
        &format!("{}/alerts/rules/broken", setup.prefix),
        "{\"kind\": \"logs\"}",
    );
    let output = setup.ctl(&["alert", "list"]);
    assert!(output.status.success(), "{}", text(&output));
    let listed = String::from_utf8_lossy(&output.stdout);
    assert!(listed.contains("shop-errors\tlogs\tok"), "{listed}");
    assert!(
        listed.contains("broken\t-\tinvalid: missing field `window`"),
        "{listed}"
    );
    let output = setup.ctl(&["alert", "get", "broken"]);
    assert!(!output.status.success());
    assert!(
        text(&output).contains("holds an invalid rule"),
        "{}",
        text(&output)
    );

    let output = setup.ctl(&["alert", "delete", "shop-errors"]);
    assert!(output.status.success(), "{}", text(&output));
    assert!(!etcd_exists(&key));
    let output = setup.ctl(&["alert", "delete", "shop-errors"]);
    assert!(!output.status.success());
    assert!(text(&output).contains("no alert rule"), "{}", text(&output));
}

#[test]
fn unreachable_etcd_at_start_runs_on_the_cached_entries() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-cache");
    let log = setup.logs.join("a.log");
    let first = append(&log, "first", 100);
    setup.set_entries(&setup.entries());
    let agent = AgentProcess::start(&setup.config);
    let mut reader = TopicReader::new(&setup.topic);
    let missing = reader.wait_for_messages(&first, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());
    assert!(agent.terminate());

    // Same agent, but etcd cannot be reached (nothing listens on port 1): the entries cached in
    // the WAL apply, and lines written while it was down are shipped.
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(&etcd_endpoint(), "http://127.0.0.1:1"),
    )
    .unwrap();
    let second = append(&log, "second", 100);
    let agent = AgentProcess::start(&setup.config);
    let missing = reader.wait_for_messages(&second, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());
    assert!(
        agent.wait_for_log("running on cached config", Duration::from_secs(10)),
        "{}",
        agent.log()
    );
    reader.poll(Duration::from_secs(1));
    assert_duplicates_share_ids(&reader.records);
    assert!(agent.terminate());
}

/// A TCP proxy in front of the shared etcd, so a test can cut the agent's connection without
/// stopping the server other test runs use.
struct Proxy {
    port: u16,
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    streams: std::sync::Arc<std::sync::Mutex<Vec<std::net::TcpStream>>>,
    accept: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens on `port` (0: any free port) and forwards every connection to etcd.
    fn start(port: u16) -> Proxy {
        use std::net::{TcpListener, TcpStream};
        use std::sync::atomic::Ordering;
        let listener = TcpListener::bind(("127.0.0.1", port)).unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let upstream = etcd_endpoint()
            .trim_start_matches("http://")
            .trim_end_matches('/')
            .to_string();
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let streams = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let (stop2, streams2) = (stop.clone(), streams.clone());
        let accept = std::thread::spawn(move || {
            while !stop2.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                let Ok(server) = TcpStream::connect(&upstream) else {
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let mut list = streams2.lock().unwrap();
                for (mut from, mut to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server.try_clone().unwrap(), client.try_clone().unwrap()),
                ] {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
                list.push(client);
                list.push(server);
            }
        });
        Proxy {
            port,
            stop,
            streams,
            accept: Some(accept),
        }
    }

    /// Closes the listener and every forwarded connection.
    fn cut(mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::SeqCst);
        if let Some(accept) = self.accept.take() {
            let _ = accept.join();
        }
        for stream in self.streams.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

#[test]
fn a_change_made_while_etcd_was_unreachable_and_compacted_away_is_applied_on_reconnection() {
    let _etcd = etcd_shared();
    let setup = Setup::new("etcd-lost");
    let proxy = Proxy::start(0);
    let port = proxy.port;
    let text = std::fs::read_to_string(&setup.config).unwrap();
    std::fs::write(
        &setup.config,
        text.replace(&etcd_endpoint(), &format!("http://127.0.0.1:{port}")),
    )
    .unwrap();
    let log = setup.logs.join("a.log");
    let first = append(&log, "first", 100);
    setup.set_entries(&setup.entries());
    let agent = AgentProcess::start(&setup.config);
    let mut reader = TopicReader::new(&setup.topic);
    let missing = reader.wait_for_messages(&first, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());

    // etcd away: the agent notices, keeps its entries and keeps shipping.
    proxy.cut();
    assert!(
        agent.wait_for_log("etcd watch lost", Duration::from_secs(20)),
        "{}",
        agent.log()
    );
    let during = append(&log, "during", 100);
    let missing = reader.wait_for_messages(&during, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());

    // Changes made meanwhile, and the history compacted past them: the latest is applied once
    // etcd is reachable again (the key is re-read, not replayed from an old revision).
    setup.set_entries(&setup.entries().replace(&setup.topic, "some-other-topic"));
    setup.set_entries("[]");
    let compacted = etcd_compact();
    eprintln!("etcd compacted at revision {compacted}");
    let proxy = Proxy::start(port);
    assert!(
        agent.wait_for_log(
            "collect entry removed: file closed, checkpoint kept",
            Duration::from_secs(20)
        ),
        "{}",
        agent.log()
    );
    assert!(agent.terminate());
    proxy.cut();
}

#[test]
fn etcd_stopped_while_the_agent_runs_then_a_change_applies_once_it_is_back() {
    let _exclusive = ETCD_SERVER.write().unwrap_or_else(|e| e.into_inner());
    let setup = Setup::new("etcd-stop");
    let log = setup.logs.join("a.log");
    let first = append(&log, "first", 100);
    setup.set_entries(&setup.entries());
    let agent = AgentProcess::start(&setup.config);
    let mut reader = TopicReader::new(&setup.topic);
    let missing = reader.wait_for_messages(&first, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());

    // The real etcd server stops: lines keep shipping with the last good entries.
    let outage = Outage::begin("etcd");
    let during = append(&log, "during", 100);
    let missing = reader.wait_for_messages(&during, ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());

    // etcd is back; a change made now applies.
    outage.end();
    setup.set_entries("[]");
    assert!(
        agent.wait_for_log(
            "collect entry removed: file closed, checkpoint kept",
            Duration::from_secs(30)
        ),
        "{}",
        agent.log()
    );
    assert!(agent.terminate());
}
