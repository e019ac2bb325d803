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

/// The tests of this file stop Kafka or bind Alertmanager's receiver port: one at a time.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL.lock().unwrap_or_else(|e| e.into_inner())
}
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

/// Whether a `state` notification of `rule` was accepted.
fn has(got: &[Received], rule: &str, state: &str) -> bool {
    states(got, rule).iter().any(|s| s == state)
}

/// The states accepted for `rule`, in order.
fn states(got: &[Received], rule: &str) -> Vec<String> {
    got.iter()
        .filter(|r| r.accepted && r.body["rule"] == rule)
        .map(|r| r.body["state"].as_str().unwrap_or("").to_string())
        .collect()
}

/// One test's pipeline: an agent collecting `logs/*.log` with its own host, a transfer with
/// its own topic, group and index, an etcd prefix, and an `alert.toml` sending to the real
/// Alertmanager and to a webhook on `hook_addr`.
struct Pipeline {
    dir: tempfile::TempDir,
    _transfer_dir: tempfile::TempDir,
    prefix: String,
    host: String,
    setup: TransferSetup,
    transfer_config: PathBuf,
    agent_config: PathBuf,
    alert_config: PathBuf,
    log: PathBuf,
}

impl Pipeline {
    fn new(name: &str, hook_addr: std::net::SocketAddr) -> Pipeline {
        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let prefix = format!("/logship-test-{}", unique(name));
        let host = unique(&format!("{name}-host"));
        let setup = TransferSetup::new(name);
        let (transfer_dir, transfer_config) = setup.write();
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
        let alert_config = dir.path().join("alert.toml");
        std::fs::write(
            &alert_config,
            format!(
                "console_url = \"http://127.0.0.1:9700\"\n\
                 [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
                 [elasticsearch]\nurl = \"{es}\"\n\
                 [kafka]\nbrokers = \"{brokers}\"\ntransfer_group = \"{group}\"\ntopics = [\"{topic}\"]\n\
                 [alertmanager]\nurl = \"{am}\"\n\
                 [[webhook]]\nname = \"ops\"\nurl = \"http://{hook_addr}/\"\n",
                etcd = etcd_endpoint(),
                es = common::es_url(),
                brokers = kafka_brokers(),
                group = setup.group,
                topic = setup.topic,
                am = common::alertmanager_url(),
            ),
        )
        .unwrap();
        Pipeline {
            log: logs.join("app.log"),
            dir,
            _transfer_dir: transfer_dir,
            prefix,
            host,
            setup,
            transfer_config,
            agent_config,
            alert_config,
        }
    }

    /// `ctl alert set NAME` with `json`; panics unless stored.
    fn set_rule(&self, name: &str, json: &str) {
        let file = self.dir.path().join(format!("{name}.json"));
        std::fs::write(&file, json).unwrap();
        let set = Command::new(logship_bin())
            .args(["ctl", "--etcd", &etcd_endpoint(), "--prefix", &self.prefix])
            .args(["alert", "set", name, "--file"])
            .arg(&file)
            .output()
            .unwrap();
        assert!(
            set.status.success(),
            "{}",
            String::from_utf8_lossy(&set.stderr)
        );
    }

    fn evaluator(&self, name: &str) -> Evaluator {
        Evaluator::start(&self.alert_config, name)
    }
}

/// Waits until `evaluator`'s log holds `needle`.
fn wait_log(evaluator: &Evaluator, needle: &str, timeout: Duration) {
    assert!(
        common::wait_for(timeout, || evaluator.log().contains(needle).then_some(())).is_some(),
        "no {needle:?} in the evaluator's log within {timeout:?}\n{}",
        evaluator.log()
    );
}

/// The windows (`from`, ms) `log` says were evaluated for `rule`.
fn windows_evaluated(log: &str, rule: &str) -> Vec<i64> {
    log.lines()
        .filter(|l| l.contains("window evaluated") && l.contains(&format!("rule={rule}")))
        .filter_map(|l| {
            l.split(" from=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

#[test]
fn errors_held_by_a_kafka_outage_and_a_transfer_sigkill_fire_once_and_resolve_once() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let (_, am) = listen("127.0.0.1:9194");
    let pipeline = Pipeline::new("alert", hook_addr);
    let (host, setup) = (&pipeline.host, &pipeline.setup);
    let rule_name = unique("errors");
    pipeline.set_rule(
        &rule_name,
        &format!(
            r#"{{"kind": "logs", "query": "ERROR", "index": "{index}*", "window": "1m",
                "condition": "count > 10", "group_by": ["host"], "max_delay": "5m",
                "summary": "{{{{count}}}} errors on {{{{group.host}}}}"}}"#,
            index = setup.index
        ),
    );
    let (transfer_config, agent_config) = (&pipeline.transfer_config, &pipeline.agent_config);
    let log = &pipeline.log;
    append_lines(log, &lines("warmup INFO", 0, 5));
    let transfer = Transfer::start(transfer_config, "transfer");
    let agent = AgentProcess::start(agent_config);
    let evaluator = pipeline.evaluator("alert");
    wait_log(&evaluator, "rule taken up", Duration::from_secs(60));

    // Kafka stops; 50 ERROR lines are read into the agent's WAL; the transfer is SIGKILLed.
    let outage = Outage::begin("kafka");
    let errors: Vec<String> = lines("ERROR payment failed", 0, 50);
    append_lines(log, &errors);
    std::thread::sleep(Duration::from_secs(5));
    transfer.kill9();
    std::thread::sleep(Duration::from_secs(35));
    outage.end();
    let transfer = Transfer::start(transfer_config, "transfer-2");

    // Firing once, then resolved once, to both receivers.
    let mut got = Vec::new();
    let fired_and_resolved = until(&hook, &mut got, Duration::from_secs(420), |got| {
        has(got, &rule_name, "resolved")
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
    assert_eq!(firing.body["group"]["host"], host.as_str());
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
    assert_eq!(am_firing.body["commonLabels"]["host"], host.as_str());
    drop(agent);
    drop(transfer);
}

#[test]
fn two_evaluators_one_leads_and_the_other_takes_over_without_skipping_or_doubling() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let pipeline = Pipeline::new("leader", hook_addr);
    let rule_name = unique("failover");
    pipeline.set_rule(
        &rule_name,
        &format!(
            r#"{{"kind": "logs", "query": "ERROR", "index": "{index}*", "window": "10s",
                "condition": "count > 0", "receivers": ["ops"]}}"#,
            index = pipeline.setup.index
        ),
    );
    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let agent = AgentProcess::start(&pipeline.agent_config);
    let first = pipeline.evaluator("alert-1");
    wait_log(&first, "leading: evaluating", Duration::from_secs(60));
    let second = pipeline.evaluator("alert-2");
    wait_log(
        &second,
        "campaigning for leadership",
        Duration::from_secs(30),
    );
    wait_log(&first, "rule taken up", Duration::from_secs(60));

    // ERROR lines every second: the rule fires once and stays firing across the failover.
    let writing = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let writer = {
        let (writing, log) = (writing.clone(), pipeline.log.clone());
        std::thread::spawn(move || {
            let mut n = 0;
            while writing.load(std::sync::atomic::Ordering::Relaxed) {
                append_lines(&log, &lines("ERROR steady", n, 1));
                n += 1;
                std::thread::sleep(Duration::from_secs(1));
            }
        })
    };
    let mut got = Vec::new();
    assert!(
        until(&hook, &mut got, Duration::from_secs(120), |got| !states(
            got, &rule_name
        )
        .is_empty()),
        "never fired\n{}",
        first.log()
    );
    assert!(
        !second.log().contains("leading: evaluating"),
        "the second evaluator does not lead while the first does\n{}",
        second.log()
    );
    // The console's alerts show the rule firing, and the firing group's search finds its lines.
    let console_dir = tempfile::tempdir().unwrap();
    let console = common::console::Console::launch(console_dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[elasticsearch]\nurl = \"{es}\"\nindex_pattern = \"{index}*\"\n\
             [etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n",
            es = common::es_url(),
            index = pipeline.setup.index,
            etcd = etcd_endpoint(),
            prefix = pipeline.prefix,
        )
    });
    let (code, listed) = console.get("/api/alerts");
    assert_eq!(code, 200, "{listed}");
    let shown = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == rule_name.as_str())
        .unwrap_or_else(|| panic!("rule not listed: {listed}"))
        .clone();
    let group = shown["state"]["groups"][""].clone();
    let since = group["firing_since"]
        .as_i64()
        .unwrap_or_else(|| panic!("not shown firing: {shown}"));
    assert!(shown["behind_s"].as_i64().unwrap() < 60, "{shown}");
    let from = time::OffsetDateTime::from_unix_timestamp_nanos(i128::from(since) * 1_000_000)
        .unwrap()
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let (code, hits) = console.get(&format!(
        "/api/search?q={}&from={}&to=now",
        common::console::query("ERROR"),
        common::console::query(&from)
    ));
    assert_eq!(code, 200, "{hits}");
    assert!(
        hits["hits"].as_array().is_some_and(|h| !h.is_empty()),
        "the firing group's search finds its lines: {hits}"
    );
    // In Chromium: the Alerts page shows the rule firing; its link opens the search with the
    // lines.
    let browser_dir = tempfile::tempdir().unwrap();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
        .block_on(async {
            use common::browser::{browser, screenshot, wait_texts, ChromeDriver};
            let driver = ChromeDriver::start(&browser_dir.path().join("chromedriver.log"));
            let client = browser(&driver, &browser_dir.path().join("profile")).await;
            client
                .goto(&format!("{}/alerts", console.url()))
                .await
                .unwrap();
            let row = format!("tr[data-rule=\"{rule_name}\"] a.alert-link");
            wait_texts(&client, &row, Duration::from_secs(20), |t| {
                t.len() == 1 && t[0].contains("since")
            })
            .await;
            screenshot(&client, "alerts.png").await;
            client
                .find(fantoccini::Locator::Css(&row))
                .await
                .unwrap()
                .click()
                .await
                .unwrap();
            let lines = wait_texts(&client, "#hits td.message", Duration::from_secs(20), |t| {
                !t.is_empty()
            })
            .await;
            assert!(
                lines.iter().all(|l| l.contains("ERROR steady")),
                "{lines:?}"
            );
            screenshot(&client, "alert-search.png").await;
            client.close().await.unwrap();
        });

    // Killed once the firing is confirmed (stored as sent): a kill between sending and that
    // confirmation re-sends it with the same key (the crash test below).
    std::thread::sleep(Duration::from_secs(3));
    let mut first = first;
    let _ = first.child.kill();
    let _ = first.child.wait();
    let killed = Instant::now();
    wait_log(
        &second,
        "leading: evaluating",
        Duration::from_secs(leader_ttl() + 10),
    );
    let took_over = killed.elapsed();
    eprintln!("the second evaluator led {took_over:?} after the first's SIGKILL");
    // It continues: windows evaluated after the takeover.
    let before = windows_evaluated(&second.log(), &rule_name).len();
    assert!(
        common::wait_for(Duration::from_secs(40), || (windows_evaluated(
            &second.log(),
            &rule_name
        )
        .len()
            > before + 1)
            .then_some(()))
        .is_some(),
        "the second evaluator evaluates no window\n{}",
        second.log()
    );
    writing.store(false, std::sync::atomic::Ordering::Relaxed);
    writer.join().unwrap();
    assert!(
        until(&hook, &mut got, Duration::from_secs(120), |got| has(
            got, &rule_name, "resolved"
        )),
        "never resolved\n{}",
        second.log()
    );
    got.extend(gather(&hook, Duration::from_secs(12)));
    assert_eq!(
        states(&got, &rule_name),
        vec!["firing", "resolved"],
        "one episode, notified once: {:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    // Every window from the rule's first to the last, once, by one evaluator or the other.
    let mut windows = windows_evaluated(&first.log(), &rule_name);
    windows.extend(windows_evaluated(&second.log(), &rule_name));
    let count = windows.len();
    windows.sort();
    windows.dedup();
    assert_eq!(
        windows.len(),
        count,
        "a window evaluated twice: {windows:?}"
    );
    assert!(
        windows.windows(2).all(|w| w[1] - w[0] == 10_000),
        "a window skipped: {windows:?}"
    );

    // A rule firing for over a minute is re-sent to Alertmanager with its summary (its
    // `endsAt` moves on); deleted while firing, its episode is resolved and its state cleared.
    let quiet = unique("too-quiet");
    pipeline.set_rule(
        &quiet,
        &format!(
            r#"{{"kind": "logs", "query": "NOSUCHWORD", "index": "{index}*", "window": "10s",
                "condition": "count < 1", "receivers": ["ops", "alertmanager"],
                "summary": "too quiet: {{{{count}}}} lines"}}"#,
            index = pipeline.setup.index
        ),
    );
    assert!(
        until(&hook, &mut got, Duration::from_secs(60), |got| has(
            got, &quiet, "firing"
        )),
        "the too-quiet rule never fired\n{}",
        second.log()
    );
    let first_ends = common::wait_for(Duration::from_secs(20), || {
        alertmanager_alert(&quiet).and_then(|a| a["endsAt"].as_str().map(str::to_string))
    })
    .expect("the firing alert is in Alertmanager");
    let resent = common::wait_for(Duration::from_secs(90), || {
        alertmanager_alert(&quiet).filter(|a| {
            a["endsAt"]
                .as_str()
                .is_some_and(|e| e > first_ends.as_str())
        })
    })
    .unwrap_or_else(|| {
        panic!(
            "never re-sent to Alertmanager (endsAt {first_ends})\n{}",
            second.log()
        )
    });
    assert_eq!(
        resent["annotations"]["summary"], "too quiet: 0 lines",
        "{resent}"
    );
    let deleted = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd_endpoint(), "del"])
        .arg(format!("{}/alerts/rules/{quiet}", pipeline.prefix))
        .output()
        .unwrap();
    assert!(deleted.status.success());
    assert!(
        until(&hook, &mut got, Duration::from_secs(30), |got| has(
            got, &quiet, "resolved"
        )),
        "a deleted rule's episode never resolved\n{}",
        second.log()
    );
    let state_key = format!("{}/alerts/state/{quiet}", pipeline.prefix);
    assert!(
        common::wait_for(Duration::from_secs(20), || etcd_value(&state_key)
            .is_none()
            .then_some(()))
        .is_some(),
        "its state stays in etcd"
    );
    got.extend(gather(&hook, Duration::from_secs(5)));
    assert_eq!(states(&got, &quiet), vec!["firing", "resolved"]);
    drop(agent);
    drop(transfer);
}

/// The leader lease's TTL (seconds), as documented.
fn leader_ttl() -> u64 {
    10
}

#[test]
fn an_evaluator_killed_between_deciding_and_sending_and_after_sending_notifies_one_episode() {
    let _serial = serial();
    let refuse = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(true));
    let (hook_addr, hook) = common::webhook::listen_refusing("127.0.0.1:0", refuse.clone());
    let pipeline = Pipeline::new("crash", hook_addr);
    // /health on, with a short grace; the webhook's bearer token from a file.
    let health_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let token_file = pipeline.dir.path().join("ops-token");
    std::fs::write(&token_file, "first-token\n").unwrap();
    let config = std::fs::read_to_string(&pipeline.alert_config).unwrap();
    let hook_url = format!("url = \"http://{hook_addr}/\"\n");
    assert!(config.contains(&hook_url));
    std::fs::write(
        &pipeline.alert_config,
        format!(
            "metrics_addr = \"{health_addr}\"\nhealth_grace_ms = 2000\n{}",
            config.replace(
                &hook_url,
                &format!("{hook_url}token_file = \"{}\"\n", token_file.display())
            )
        ),
    )
    .unwrap();
    let rule_name = unique("crash");
    pipeline.set_rule(
        &rule_name,
        &format!(
            r#"{{"kind": "logs", "query": "ERROR", "index": "{index}*", "window": "10s",
                "condition": "count > 0", "receivers": ["ops"]}}"#,
            index = pipeline.setup.index
        ),
    );
    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let agent = AgentProcess::start(&pipeline.agent_config);
    let mut logs = Vec::new();
    let first = pipeline.evaluator("alert-1");
    wait_log(&first, "rule taken up", Duration::from_secs(60));
    // A broken version reaching etcd without ctl: logged, and the last good one goes on.
    let broken = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &etcd_endpoint(), "put"])
        .arg(format!("{}/alerts/rules/{rule_name}", pipeline.prefix))
        .arg(r#"{"kind": "logs", "window": "0s", "condition": "count > 0"}"#)
        .output()
        .unwrap();
    assert!(broken.status.success());
    wait_log(
        &first,
        "rule in etcd refused; the last good version is used",
        Duration::from_secs(20),
    );
    append_lines(&pipeline.log, &lines("ERROR once", 0, 3));

    // Decided (the receiver refuses it: stored, not confirmed), then SIGKILL.
    let mut got = Vec::new();
    assert!(
        until(&hook, &mut got, Duration::from_secs(120), |got| got
            .iter()
            .any(|r| r.body["rule"] == rule_name.as_str())),
        "no firing decided\n{}",
        first.log()
    );
    // Undelivered past the grace: /health says so.
    let unhealthy = common::wait_for(Duration::from_secs(30), || {
        common::ops::http_get(health_addr, "/health").and_then(|(code, body)| {
            (code == 503 && body.contains("notifications")).then_some(body)
        })
    });
    assert!(
        unhealthy.is_some(),
        "/health never turned 503 on an undelivered notification: {:?}\n{}",
        common::ops::http_get(health_addr, "/health"),
        first.log()
    );
    logs.push(first.log());
    drop(first);

    // Restarted, the receiver answers: the decision is sent; SIGKILL right after sending.
    refuse.store(false, std::sync::atomic::Ordering::SeqCst);
    let second = pipeline.evaluator("alert-2");
    assert!(
        until(&hook, &mut got, Duration::from_secs(60), |got| has(
            got, &rule_name, "firing"
        )),
        "the stored decision was never sent\n{}",
        second.log()
    );
    // The token file is read at every send: the resolution carries the new token.
    std::fs::write(&token_file, "second-token\n").unwrap();
    let healthy = common::wait_for(Duration::from_secs(20), || {
        common::ops::http_get(health_addr, "/health")
            .and_then(|(code, _)| (code == 200).then_some(()))
    });
    assert!(
        healthy.is_some(),
        "/health stayed unhealthy once delivered: {:?}",
        common::ops::http_get(health_addr, "/health")
    );
    logs.push(second.log());
    drop(second);

    // Restarted again: the episode resolves (no more ERROR lines).
    let third = pipeline.evaluator("alert-3");
    assert!(
        until(&hook, &mut got, Duration::from_secs(120), |got| has(
            got, &rule_name, "resolved"
        )),
        "never resolved\n{}",
        third.log()
    );
    got.extend(gather(&hook, Duration::from_secs(12)));
    logs.push(third.log());
    let accepted: Vec<&Received> = got
        .iter()
        .filter(|r| r.accepted && r.body["rule"] == rule_name.as_str())
        .collect();
    let mut keys: Vec<(String, String)> = accepted
        .iter()
        .map(|r| {
            (
                r.body["state"].as_str().unwrap().to_string(),
                r.header("idempotency-key").unwrap().to_string(),
            )
        })
        .collect();
    keys.dedup();
    assert_eq!(
        keys.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        vec!["firing", "resolved"],
        "one episode: a re-send after a crash carries the same Idempotency-Key: {keys:?}"
    );
    assert!(accepted.len() <= 3, "{accepted:?}");
    let bearer = |state: &str| {
        accepted
            .iter()
            .filter(|r| r.body["state"] == state)
            .map(|r| r.header("authorization").unwrap_or("").to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        bearer("firing").iter().all(|h| h == "Bearer first-token"),
        "{:?}",
        bearer("firing")
    );
    assert!(
        bearer("resolved")
            .iter()
            .all(|h| h == "Bearer second-token"),
        "the token file re-read: {:?}",
        bearer("resolved")
    );
    assert!(accepted
        .iter()
        .all(|r| r.body["key"] == accepted[0].body["key"]));
    // Windows from the rule's first, each once, across the three evaluators.
    let mut windows: Vec<i64> = logs
        .iter()
        .flat_map(|log| windows_evaluated(log, &rule_name))
        .collect();
    let count = windows.len();
    windows.sort();
    windows.dedup();
    assert_eq!(
        windows.len(),
        count,
        "a window evaluated twice: {windows:?}"
    );
    assert!(
        windows.windows(2).all(|w| w[1] - w[0] == 10_000),
        "a window skipped: {windows:?}"
    );
    let taken_up = logs[0]
        .lines()
        .find(|l| l.contains("rule taken up"))
        .and_then(|l| {
            l.split("first_window=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse::<i64>()
                .ok()
        })
        .unwrap();
    assert_eq!(
        windows.first(),
        Some(&taken_up),
        "contiguous from the rule's creation"
    );
    drop(agent);
    drop(transfer);
}

#[test]
fn an_agent_killed_with_matching_lines_holds_the_window_until_max_delay_then_its_lines_correct_it()
{
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let pipeline = Pipeline::new("late", hook_addr);
    let host = pipeline.host.clone();
    let logs_rule = unique("late");
    let down_rule = unique("down");
    pipeline.set_rule(
        &logs_rule,
        &format!(
            r#"{{"kind": "logs", "query": "ERROR", "index": "{index}*", "window": "10s",
                "condition": "count > 0", "group_by": ["host"], "max_delay": "20s",
                "receivers": ["ops"]}}"#,
            index = pipeline.setup.index
        ),
    );
    pipeline.set_rule(
        &down_rule,
        r#"{"kind": "agent_down", "for": "10s", "receivers": ["ops"]}"#,
    );
    // The agent reads into its WAL but cannot reach Kafka (nothing listens on port 9).
    let good = std::fs::read_to_string(&pipeline.agent_config).unwrap();
    std::fs::write(
        &pipeline.agent_config,
        good.replace(
            &format!("brokers = \"{}\"", kafka_brokers()),
            "brokers = \"127.0.0.1:9\"",
        ),
    )
    .unwrap();
    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let agent = AgentProcess::start(&pipeline.agent_config);
    let evaluator = pipeline.evaluator("alert");
    wait_log(&evaluator, "rule taken up", Duration::from_secs(60));
    std::thread::sleep(Duration::from_secs(4));
    append_lines(&pipeline.log, &lines("ERROR held", 0, 3));
    std::thread::sleep(Duration::from_secs(3));
    agent.kill9();
    let killed = Instant::now();

    // agent_down fires for the host; the window with its lines is evaluated after max_delay,
    // naming the host (its lines are not there: nothing fires for them yet).
    let mut got = Vec::new();
    assert!(
        until(&hook, &mut got, Duration::from_secs(60), |got| has(
            got, &down_rule, "firing"
        )),
        "agent_down never fired\n{}",
        evaluator.log()
    );
    let down = got
        .iter()
        .find(|r| r.accepted && r.body["rule"] == down_rule.as_str())
        .unwrap();
    assert_eq!(down.body["group"]["host"], host.as_str());
    assert!(
        killed.elapsed() >= Duration::from_secs(10),
        "not before `for`"
    );
    assert!(
        common::wait_for(Duration::from_secs(90), || {
            let state = etcd_value(&format!("{}/alerts/state/{logs_rule}", pipeline.prefix))?;
            let late = state["late"].as_array()?;
            late.iter()
                .any(|l| {
                    l["hosts"]
                        .as_array()
                        .is_some_and(|h| h.iter().any(|h| h == host.as_str()))
                })
                .then_some(())
        })
        .is_some(),
        "no window evaluated after max_delay naming {host}\n{}",
        evaluator.log()
    );
    assert!(
        states(&got, &logs_rule).is_empty(),
        "nothing fired before the lines arrived"
    );

    // Back with Kafka: its lines arrive, the window is evaluated once more and the change is
    // notified once; agent_down resolves.
    std::fs::write(&pipeline.agent_config, &good).unwrap();
    let agent = AgentProcess::start(&pipeline.agent_config);
    assert!(
        until(&hook, &mut got, Duration::from_secs(180), |got| {
            has(got, &logs_rule, "resolved") && has(got, &down_rule, "resolved")
        }),
        "webhook: {:?}\n{}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>(),
        evaluator.log()
    );
    got.extend(gather(&hook, Duration::from_secs(12)));
    assert_eq!(states(&got, &down_rule), vec!["firing", "resolved"]);
    assert_eq!(
        states(&got, &logs_rule),
        vec!["firing", "resolved"],
        "the late window's change, once: {:?}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let late = got
        .iter()
        .find(|r| r.accepted && r.body["rule"] == logs_rule.as_str())
        .unwrap();
    assert_eq!(late.body["count"], 3);
    assert!(
        late.body["key"].as_str().unwrap().contains("/late/"),
        "a correction's own key: {}",
        late.body
    );
    assert_eq!(late.body["group"]["host"], host.as_str());
    assert_eq!(
        evaluator
            .log()
            .matches("late window evaluated again")
            .count(),
        1,
        "evaluated once more, once"
    );
    drop(agent);
    drop(transfer);
}

/// The alert named `name` that Alertmanager holds now, if any.
fn alertmanager_alert(name: &str) -> Option<serde_json::Value> {
    let output = Command::new("curl")
        .args(["-s", "-m", "10", "-G"])
        .arg("--data-urlencode")
        .arg(format!("filter=alertname=\"{name}\""))
        .arg(format!("{}/api/v2/alerts", common::alertmanager_url()))
        .output()
        .ok()?;
    let alerts: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
    alerts.as_array()?.first().cloned()
}

/// The JSON at `key` in etcd.
fn etcd_value(key: &str) -> Option<serde_json::Value> {
    let output = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args([
            "--endpoints",
            &etcd_endpoint(),
            "get",
            key,
            "--print-value-only",
        ])
        .output()
        .ok()?;
    serde_json::from_slice(&output.stdout).ok()
}

#[test]
fn a_metrics_rule_fires_for_a_host_whose_cpu_crosses_the_threshold_and_resolves_after() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("/logship-test-{}", unique("metrics-alert"));
    let host = unique("busy-host");
    let topic = unique("metrics-alert");
    let group = unique("metrics-alert-group");
    let db = unique("alert_telegraf").replace('-', "_");
    let influx = common::influx::influxdb();
    let transfer_config = dir.path().join("transfer.toml");
    std::fs::write(
        &transfer_config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n\
             commit_interval_ms = 200\n[batch]\nmax_wait_ms = 200\n\
             [influxdb]\nurl = \"{influx}\"\ndatabase = \"{db}\"\n",
            kafka_brokers()
        ),
    )
    .unwrap();
    let alert_config = dir.path().join("alert.toml");
    std::fs::write(
        &alert_config,
        format!(
            "[etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"{prefix}\"\n\
             [elasticsearch]\nurl = \"{es}\"\n\
             [kafka]\nbrokers = \"{brokers}\"\ntransfer_group = \"{group}\"\ntopics = [\"{topic}\"]\n\
             [influxdb]\nurl = \"{influx}\"\ndatabase = \"{db}\"\n\
             [[webhook]]\nname = \"ops\"\nurl = \"http://{hook_addr}/\"\n",
            etcd = etcd_endpoint(),
            es = common::es_url(),
            brokers = kafka_brokers(),
        ),
    )
    .unwrap();
    let rule_name = unique("cpu-busy");
    let rule_file = dir.path().join("rule.json");
    std::fs::write(
        &rule_file,
        r#"{"kind": "metrics", "select": "mean(usage_idle)", "from": "cpu",
            "where": "cpu = 'cpu-total'", "window": "10s", "condition": "value < 10",
            "group_by": ["host"], "summary": "{{value}}% idle on {{group.host}}"}"#,
    )
    .unwrap();
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
    let transfer = Transfer::start(&transfer_config, "transfer");
    let evaluator = Evaluator::start(&alert_config, "alert");
    wait_log(&evaluator, "rule taken up", Duration::from_secs(60));

    // 25 s of a busy CPU (5 % idle), then 30 s of an idle one (90 %), a point a second.
    let producer = transfer_support::producer();
    let started = Instant::now();
    let mut fired_seen = Vec::new();
    while started.elapsed() < Duration::from_secs(55) {
        let idle = if started.elapsed() < Duration::from_secs(25) {
            5
        } else {
            90
        };
        let now = time::OffsetDateTime::now_utc().unix_timestamp_nanos();
        transfer_support::produce_points(
            &producer,
            &topic,
            &host,
            &format!("cpu,host={host},cpu=cpu-total usage_idle={idle} {now}\n"),
            true,
        );
        fired_seen.extend(gather(&hook, Duration::from_secs(1)));
    }
    let mut got = fired_seen;
    assert!(
        until(&hook, &mut got, Duration::from_secs(90), |got| has(
            got, &rule_name, "resolved"
        )),
        "webhook: {:?}\nalert log:\n{}\ntransfer log:\n{}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>(),
        evaluator.log(),
        transfer.log()
    );
    got.extend(gather(&hook, Duration::from_secs(5)));
    assert_eq!(states(&got, &rule_name), vec!["firing", "resolved"]);
    let firing = got
        .iter()
        .find(|r| r.accepted && r.body["rule"] == rule_name.as_str())
        .unwrap();
    assert_eq!(firing.body["group"]["host"], host.as_str());
    assert_eq!(firing.body["value"], 5.0);
    assert_eq!(firing.body["summary"], format!("5.00% idle on {host}"));
}

/// A `logs` rule: more than 10 `ERROR` lines in a 1 m window of the indices `pattern*`.
fn errors_over_ten(pattern: &str, max_delay: &str) -> String {
    format!(
        r#"{{"kind": "logs", "query": "ERROR", "index": "{pattern}*", "window": "1m",
            "condition": "count > 10", "max_delay": "{max_delay}"}}"#
    )
}

/// Creates index `name` with `body`; panics unless Elasticsearch acknowledged it.
fn make_index(name: &str, body: &str) {
    let made = transfer_support::es("PUT", name, Some(body));
    assert_eq!(made["acknowledged"], true, "creating {name}: {made}");
}

/// Waits until `evaluator` has taken up each of `rules`.
fn wait_taken_up(evaluator: &Evaluator, rules: &[&str]) {
    for rule in rules {
        wait_log(
            evaluator,
            &format!("rule={rule} first_window"),
            Duration::from_secs(60),
        );
    }
}

/// The accepted firing notification of `rule` among `got`.
fn firing_of<'a>(got: &'a [Received], rule: &str) -> &'a Received {
    got.iter()
        .find(|r| r.body["rule"] == rule && r.body["state"] == "firing")
        .unwrap_or_else(|| panic!("no firing of {rule}"))
}

/// One rule's lasting Elasticsearch error is that rule's: its index is blocked for reads after
/// it was taken up, so every count of it fails (logged, counted, retried), and a rule evaluated
/// after it in the same round still fires. (Before, the first error ended the round, and a
/// rule sorted after a broken one was never evaluated.)
#[test]
fn one_rules_lasting_elasticsearch_error_does_not_hold_back_the_others() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let pipeline = Pipeline::new("isolate", hook_addr);
    let blocked = unique("blocked-alerts").to_lowercase();
    make_index(&blocked, "{}");
    // Rules are evaluated in name order: the broken one first.
    let broken = format!("a-{}", unique("broken"));
    let working = format!("b-{}", unique("working"));
    pipeline.set_rule(&broken, &errors_over_ten(&blocked, "5m"));
    pipeline.set_rule(&working, &errors_over_ten(&pipeline.setup.index, "5m"));
    append_lines(&pipeline.log, &lines("warmup INFO", 0, 5));
    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let agent = AgentProcess::start(&pipeline.agent_config);
    let evaluator = pipeline.evaluator("alert");
    wait_taken_up(&evaluator, &[&broken, &working]);
    let block = transfer_support::es(
        "PUT",
        &format!("{blocked}/_settings"),
        Some(r#"{"index.blocks.read": true}"#),
    );
    assert_eq!(block["acknowledged"], true, "{block}");
    append_lines(&pipeline.log, &lines("ERROR payment failed", 0, 20));

    let mut got = Vec::new();
    let fired = until(&hook, &mut got, Duration::from_secs(180), |got| {
        has(got, &working, "firing")
    });
    let log = evaluator.log();
    transfer_support::es(
        "PUT",
        &format!("{blocked}/_settings"),
        Some(r#"{"index.blocks.read": false}"#),
    );
    transfer_support::es("DELETE", &blocked, None);
    assert!(
        fired,
        "the working rule never fired: {:?}\nalert log:\n{log}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>()
    );
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| {
            l.contains("rule not evaluated this round; retried")
                && l.contains(&format!("rule={broken}"))
        })
        .collect();
    assert!(
        !errors.is_empty() && errors.iter().any(|l| l.contains("blocked")),
        "the broken rule's error is logged, naming the block:\n{log}"
    );
    assert!(
        !states(&got, &broken).iter().any(|s| s == "firing"),
        "the broken rule fired"
    );
    drop(agent);
    drop(transfer);
}

/// Each rule's indices are refreshed before its window is counted, whatever another rule's
/// refresh covered: the pipeline's index is made with automatic refresh off, so its lines are
/// searchable only after the evaluator's own `_refresh` of it, and a rule on another index is
/// evaluated first in every round. (Before, one refresh per window stood for every rule's
/// indices: this rule counted 0 and never fired.)
#[test]
fn each_rules_indices_are_refreshed_before_its_window_is_counted() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let pipeline = Pipeline::new("refresh", hook_addr);
    let index = &pipeline.setup.index;
    make_index(index, r#"{"settings": {"index.refresh_interval": "-1"}}"#);
    let other = unique("other-alerts").to_lowercase();
    make_index(&other, "{}");
    let first = format!("a-{}", unique("elsewhere"));
    let second = format!("b-{}", unique("unrefreshed"));
    pipeline.set_rule(&first, &errors_over_ten(&other, "5m"));
    pipeline.set_rule(&second, &errors_over_ten(index, "5m"));
    append_lines(&pipeline.log, &lines("warmup INFO", 0, 5));
    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let agent = AgentProcess::start(&pipeline.agent_config);
    let evaluator = pipeline.evaluator("alert");
    wait_taken_up(&evaluator, &[&first, &second]);
    append_lines(&pipeline.log, &lines("ERROR payment failed", 0, 20));
    let mut got = Vec::new();
    let fired = until(&hook, &mut got, Duration::from_secs(180), |got| {
        has(got, &second, "firing")
    });
    transfer_support::es("DELETE", &other, None);
    assert!(
        fired,
        "the rule on the unrefreshed index never fired: {:?}\nalert log:\n{}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>(),
        evaluator.log()
    );
    let firing = firing_of(&got, &second);
    assert_eq!(firing.body["count"], 20, "{}", firing.body);
    drop(agent);
    drop(transfer);
}

/// A topic named in `[kafka] topics` is waited for before the transfer group has ever committed
/// on it: the group has committed on another topic only (a transfer that served just that one),
/// the evaluator starts with the agent shipping to the new topic and no transfer on it, 20
/// `ERROR` lines fall in a window that ends, and no window is judged (it would count 0: the lines
/// are only in Kafka) until a transfer has indexed them; then it fires with all 20. (Without the
/// topics, the group's positions are its other topic's, all reached: the window is judged at 0
/// and never fires.)
#[test]
fn a_window_waits_for_a_topic_the_transfer_group_has_not_committed_on_yet() {
    let _serial = serial();
    let (hook_addr, hook) = listen("127.0.0.1:0");
    let pipeline = Pipeline::new("first-commit", hook_addr);
    let mut before = TransferSetup::new("first-commit-before");
    before.group = pipeline.setup.group.clone();
    transfer_support::create_topic(&before.topic);
    let (_before_dir, before_config) = before.write();
    let earlier = Transfer::start(&before_config, "transfer-before");
    transfer_support::produce(
        &transfer_support::producer(),
        &before.topic,
        &[transfer_support::line_now("elsewhere", "s", 0)],
    );
    transfer_support::wait_for_commits_at_end(
        &before.group,
        &before.topic,
        Duration::from_secs(60),
    );
    assert!(earlier.terminate(Duration::from_secs(20)).success());
    // The agent's topic exists: its lines reach Kafka while no transfer serves it.
    transfer_support::create_topic(&pipeline.setup.topic);
    let index = &pipeline.setup.index;
    make_index(index, "{}");
    let rule = unique("before-commit");
    pipeline.set_rule(&rule, &errors_over_ten(index, "10m"));
    let agent = AgentProcess::start(&pipeline.agent_config);
    let evaluator = pipeline.evaluator("alert");
    wait_taken_up(&evaluator, &[&rule]);
    append_lines(&pipeline.log, &lines("ERROR payment failed", 0, 20));
    let appended_ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let window = appended_ms - appended_ms % 60_000;
    // The window ends, and 45 s more pass: the lines are in Kafka, no transfer has run.
    let end = window + 60_000 + 45_000;
    std::thread::sleep(Duration::from_millis((end - appended_ms).max(0) as u64));
    let early = gather(&hook, Duration::from_secs(1));
    // Nothing is complete before the group's first commit on the topic: no window is judged.
    assert!(
        windows_evaluated(&evaluator.log(), &rule).is_empty(),
        "a window was judged before the transfer indexed the lines (window of the lines: \
         {window}):\n{}",
        evaluator.log()
    );
    assert!(states(&early, &rule).is_empty(), "{early:?}");

    let transfer = Transfer::start(&pipeline.transfer_config, "transfer");
    let mut got = early;
    let fired = until(&hook, &mut got, Duration::from_secs(120), |got| {
        has(got, &rule, "firing")
    });
    assert!(
        fired,
        "never fired once the transfer ran: {:?}\nalert log:\n{}\ntransfer log:\n{}",
        got.iter().map(|r| &r.body).collect::<Vec<_>>(),
        evaluator.log(),
        transfer.log()
    );
    let firing = firing_of(&got, &rule);
    assert_eq!(firing.body["count"], 20, "{}", firing.body);
    drop(agent);
    drop(transfer);
}
