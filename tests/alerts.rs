//! The alert evaluator against the real pipeline (issue 30): agent → Kafka → transfer →
//! Elasticsearch, rules in etcd, notifications to the real Alertmanager (which routes every
//! alert to 127.0.0.1:9194) and to a plain webhook. Every test uses its own etcd prefix, host,
//! topic and group.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
#[path = "transfer_support/mod.rs"]
mod transfer_support;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::agent::{append_lines, lines, AgentProcess};
use common::webhook::{listen, Received};
use common::{etcd_endpoint, kafka_brokers, logship_bin, unique, Outage};
use transfer_support::{Transfer, TransferSetup};

/// A running `logship alert`, SIGKILLed when dropped.
struct Evaluator {
    child: Child,
    log: PathBuf,
}

impl Evaluator {
    fn start(config: &Path, name: &str) -> Evaluator {
        let log = config.with_file_name(format!("{name}.log"));
        let child = Command::new(logship_bin())
            .args(["--log-level", "info,logship=debug,rdkafka=warn"])
            .arg("alert")
            .arg("--config")
            .arg(config)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Evaluator { child, log }
    }

    fn log(&self) -> String {
        common::strip_ansi(&std::fs::read_to_string(&self.log).unwrap_or_default())
    }
}

impl Drop for Evaluator {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Everything received on `receiver` within `for_how_long`.
fn gather(receiver: &mpsc::Receiver<Received>, for_how_long: Duration) -> Vec<Received> {
    let deadline = Instant::now() + for_how_long;
    let mut out = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match receiver.recv_timeout(left) {
            Ok(r) => out.push(r),
            Err(_) => break,
        }
    }
    out
}

/// Receives until `done` holds of everything received, or `timeout`.
fn until(
    receiver: &mpsc::Receiver<Received>,
    got: &mut Vec<Received>,
    timeout: Duration,
    done: impl Fn(&[Received]) -> bool,
) -> bool {
    let deadline = Instant::now() + timeout;
    while !done(got) {
        let Some(left) = deadline.checked_duration_since(Instant::now()) else {
            return false;
        };
        if let Ok(r) = receiver.recv_timeout(left) {
            got.push(r);
        }
    }
    true
}

fn states(got: &[Received], field: &str, value: &str) -> Vec<String> {
    got.iter()
        .filter(|r| r.body[field] == value)
        .map(|r| r.body["state"].as_str().unwrap_or("").to_string())
        .collect()
}

#[test]
fn errors_held_by_a_kafka_outage_and_a_transfer_sigkill_fire_once_and_resolve_once() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let prefix = format!("/logship-test-{}", unique("alert"));
    let host = unique("alert-host");
    let mut setup = TransferSetup::new("alert");
    setup.top_level = String::new();
    let (_transfer_dir, transfer_config) = setup.write();
    let agent_config = dir.path().join("agent.toml");
    std::fs::write(
        &agent_config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\n\
             [kafka]\nbrokers = \"{brokers}\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\nallowed_paths = [\"{logs}\"]\n\
             [[collect]]\npath = \"{logs}/*.log\"\ntopic = \"{topic}\"\n",
            data = dir.path().join("data").display(),
            brokers = kafka_brokers(),
            etcd = etcd_endpoint(),
            logs = logs.display(),
            topic = setup.topic,
        ),
    )
    .unwrap();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let (_, am) = listen("127.0.0.1:9194");
    let alert_config = dir.path().join("alert.toml");
    std::fs::write(
        &alert_config,
        format!(
            "console_url = \"http://127.0.0.1:9700\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             [elasticsearch]\nurl = \"{es}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\ntransfer_group = \"{group}\"\n\
             [alertmanager]\nurl = \"{am}\"\n\
             [[webhook]]\nname = \"ops\"\nurl = \"http://{hook_addr}/\"\n",
            etcd = etcd_endpoint(),
            es = common::es_url(),
            brokers = kafka_brokers(),
            group = setup.group,
            am = common::alertmanager_url(),
        ),
    )
    .unwrap();
    let rule_name = unique("errors");
    let rule = format!(
        r#"{{"kind": "logs", "query": "ERROR", "index": "{index}*", "window": "1m",
            "condition": "count > 10", "group_by": ["host"], "max_delay": "5m",
            "summary": "{{{{count}}}} errors on {{{{group.host}}}}"}}"#,
        index = setup.index
    );
    let rule_file = dir.path().join("rule.json");
    std::fs::write(&rule_file, rule).unwrap();
    let set = Command::new(logship_bin())
        .args(["ctl", "--etcd", &etcd_endpoint(), "--prefix", &prefix])
        .args(["alert", "set", &rule_name, "--file"])
        .arg(&rule_file)
        .output()
        .unwrap();
    assert!(
        set.status.success(),
        "{}",
        String::from_utf8_lossy(&set.stderr)
    );

    let log = logs.join("app.log");
    append_lines(&log, &lines("warmup INFO", 0, 5));
    let transfer = Transfer::start(&transfer_config, "transfer");
    let agent = AgentProcess::start(&agent_config);
    let evaluator = Evaluator::start(&alert_config, "alert");
    assert!(
        common::wait_for(Duration::from_secs(60), || evaluator
            .log()
            .contains("rule taken up")
            .then_some(()))
        .is_some(),
        "the evaluator never took the rule up\n{}",
        evaluator.log()
    );

    // Kafka stops; 50 ERROR lines are read into the agent's WAL; the transfer is SIGKILLed.
    let outage = Outage::begin("kafka");
    let errors: Vec<String> = lines("ERROR payment failed", 0, 50);
    append_lines(&log, &errors);
    std::thread::sleep(Duration::from_secs(5));
    transfer.kill9();
    std::thread::sleep(Duration::from_secs(35));
    outage.end();
    let transfer = Transfer::start(&transfer_config, "transfer-2");

    // Firing once, then resolved once, to both receivers.
    let mut got = Vec::new();
    let fired_and_resolved = until(&hook, &mut got, Duration::from_secs(420), |got| {
        states(got, "rule", &rule_name).contains(&"resolved".to_string())
    });
    assert!(
        fired_and_resolved,
        "webhook: {:?}\nalert log:\n{}\ntransfer log:\n{}\nagent log:\n{}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>(),
        evaluator.log(),
        transfer.log(),
        agent.log()
    );
    got.extend(gather(&hook, Duration::from_secs(15)));
    let mine: Vec<&Received> = got.iter().filter(|r| r.body["rule"] == rule_name).collect();
    assert_eq!(
        mine.iter()
            .map(|r| r.body["state"].as_str().unwrap())
            .collect::<Vec<_>>(),
        vec!["firing", "resolved"],
        "exactly one of each: {:?}",
        mine.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let (firing, resolved) = (&mine[0], &mine[1]);
    assert_eq!(firing.body["group"]["host"], host);
    assert_eq!(firing.body["count"], 50, "every held line counted once");
    assert_eq!(firing.body["summary"], format!("50 errors on {host}"));
    assert_eq!(firing.body["samples"].as_array().unwrap().len(), 3);
    assert!(firing.body["incomplete_hosts"]
        .as_array()
        .unwrap()
        .is_empty());
    assert_eq!(firing.body["key"], resolved.body["key"]);
    assert_ne!(
        firing.header("idempotency-key"),
        resolved.header("idempotency-key")
    );
    assert!(firing.body["url"]
        .as_str()
        .unwrap()
        .starts_with("http://127.0.0.1:9700/?q="));

    // Alertmanager's own notifications: one firing, one resolved for this rule.
    let mut am_got = gather(&am, Duration::from_secs(5));
    let am_done = until(&am, &mut am_got, Duration::from_secs(60), |got| {
        got.iter().any(|r| {
            r.body["commonLabels"]["alertname"] == rule_name && r.body["status"] == "resolved"
        })
    });
    assert!(
        am_done,
        "Alertmanager: {:?}",
        am_got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let am_states: Vec<&str> = am_got
        .iter()
        .filter(|r| r.body["commonLabels"]["alertname"] == rule_name)
        .map(|r| r.body["status"].as_str().unwrap())
        .collect();
    assert_eq!(
        am_states,
        vec!["firing", "resolved"],
        "Alertmanager sent each once"
    );
    let am_firing = am_got
        .iter()
        .find(|r| r.body["commonLabels"]["alertname"] == rule_name)
        .unwrap();
    assert_eq!(am_firing.body["commonLabels"]["host"], host);
    drop(agent);
    drop(transfer);
}
