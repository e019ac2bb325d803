//! A Kafka that answers but does not serve: every stall is noticed (`/health` 503 naming it and
//! what waits, a warning line), survived (the agent's producer and the transfer's consumer are
//! recreated, with backoff) and loses and doubles nothing once Kafka serves again.
//!
//! Two ways to stall a live broker, both deterministic: a proxy between the pipeline and the
//! broker that holds back the answers to produce, InitProducerId and the group coordinator's
//! requests while metadata and fetches pass ([`common::kafka_proxy`]); and the broker process
//! itself paused with SIGSTOP. The tests take one lock: they share the proxy's port and the
//! broker.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::agent::{append_lines, lines, write_config, AgentProcess};
use common::kafka_proxy::{KafkaProxy, PROXY_ADDR};
use common::ops::{free_addr, http_get};
use common::{kafka_brokers, repo_root, wait_for};
use transfer_support::{create_topic, wait_for_count, Transfer, TransferSetup};

/// The stall bound both roles are given here.
const BOUND: Duration = Duration::from_secs(5);
/// How long after the bound `/health` may take to say so (the promise).
const SAY_WITHIN: Duration = Duration::from_secs(10);

static SHARED: Mutex<()> = Mutex::new(());

fn lock() -> MutexGuard<'static, ()> {
    SHARED.lock().unwrap_or_else(|e| e.into_inner())
}

/// An agent and a transfer on `brokers`, both with `stall_timeout_ms` = [`BOUND`] and a
/// `/health` endpoint.
struct Pipeline {
    agent: AgentProcess,
    agent_addr: std::net::SocketAddr,
    transfer: Transfer,
    transfer_addr: std::net::SocketAddr,
    setup: TransferSetup,
    log_file: PathBuf,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

impl Pipeline {
    fn start(name: &str, brokers: &str) -> Pipeline {
        let mut setup = TransferSetup::new(name);
        create_topic(&setup.topic);
        setup.brokers = brokers.to_string();
        let transfer_addr = free_addr();
        setup.top_level = format!("metrics_addr = \"{transfer_addr}\"\nhealth_grace_ms = 1000");
        setup.kafka_extra = format!("stall_timeout_ms = {}", BOUND.as_millis());
        let (transfer_dir, transfer_config) = setup.write();
        let transfer = Transfer::start(&transfer_config, "transfer");

        let dir = tempfile::tempdir().unwrap();
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let agent_addr = free_addr();
        let config = write_config(
            dir.path(),
            &format!("{}/*.log", logs.display()),
            &setup.topic,
            &format!("metrics_addr = \"{agent_addr}\"\nhealth_grace_ms = 1000"),
        );
        let text = std::fs::read_to_string(&config).unwrap().replace(
            &format!("[kafka]\nbrokers = \"{}\"", kafka_brokers()),
            &format!(
                "[kafka]\nbrokers = \"{brokers}\"\nstall_timeout_ms = {}",
                BOUND.as_millis()
            ),
        );
        assert!(text.contains("stall_timeout_ms"), "{text}");
        std::fs::write(&config, text).unwrap();
        let agent = AgentProcess::start(&config);
        Pipeline {
            agent,
            agent_addr,
            transfer,
            transfer_addr,
            setup,
            log_file: logs.join("app.log"),
            _dirs: (dir, transfer_dir),
        }
    }

    fn logs(&self) -> String {
        format!(
            "agent:\n{}\n----- transfer:\n{}",
            self.agent.plain_log(),
            self.transfer.log()
        )
    }

    fn write(&self, tag: &str, from: usize, count: usize) {
        append_lines(&self.log_file, &lines(tag, from, count));
    }

    /// Kafka serves again: 500 more lines, then all 2,500 indexed once and both roles healthy.
    fn recovers(&self) {
        self.write("after", 0, 500);
        self.wait_indexed(2500);
        for (role, addr) in [("agent", self.agent_addr), ("transfer", self.transfer_addr)] {
            assert!(
                wait_healthy(addr),
                "{role} still unhealthy\n{}",
                self.logs()
            );
        }
    }

    fn wait_indexed(&self, expected: u64) {
        wait_for_count(
            &self.setup.index,
            expected,
            Duration::from_secs(240),
            &[&self.transfer],
        );
    }
}

/// Waits until `/health` at `addr` answers 503 naming a Kafka stall; returns the body.
fn wait_stall_said(addr: std::net::SocketAddr, within: Duration) -> Option<String> {
    wait_for(within, || {
        http_get(addr, "/health")
            .and_then(|(code, body)| (code == 503 && body.contains("kafka_stall")).then_some(body))
    })
}

fn wait_healthy(addr: std::net::SocketAddr) -> bool {
    wait_for(Duration::from_secs(120), || {
        http_get(addr, "/health").and_then(|(code, _)| (code == 200).then_some(()))
    })
    .is_some()
}

/// The proxy holds back the answers to produce, InitProducerId and the coordinator's requests:
/// both roles say so on `/health` within the bound plus 10 s and in a warning line, recreate
/// their clients, and once the answers flow again every line is indexed exactly once and both
/// are healthy.
#[test]
fn a_broker_that_answers_but_does_not_serve_is_noticed_said_and_survived() {
    let _shared = lock();
    let proxy = KafkaProxy::start();
    let pipeline = Pipeline::start("stall-proxy", PROXY_ADDR);
    pipeline.write("before", 0, 1000);
    pipeline.wait_indexed(1000);

    proxy.hold();
    let held_at = Instant::now();
    pipeline.write("during", 0, 1000);
    let agent_said =
        wait_stall_said(pipeline.agent_addr, BOUND + SAY_WITHIN).unwrap_or_else(|| {
            panic!(
                "the agent's /health never named the stall\n{}",
                pipeline.logs()
            )
        });
    eprintln!("agent said it after {:?}: {agent_said}", held_at.elapsed());
    assert!(agent_said.contains("Kafka stalled"), "{agent_said}");
    assert!(agent_said.contains("in flight"), "what waits: {agent_said}");
    let transfer_said =
        wait_stall_said(pipeline.transfer_addr, BOUND + SAY_WITHIN).unwrap_or_else(|| {
            panic!(
                "the transfer's /health never named the stall\n{}",
                pipeline.logs()
            )
        });
    eprintln!(
        "transfer said it after {:?}: {transfer_said}",
        held_at.elapsed()
    );
    assert!(transfer_said.contains("Kafka stalled"), "{transfer_said}");
    // Said in the logs too, and both clients recreated.
    let said = wait_for(Duration::from_secs(30), || {
        let agent = pipeline.agent.plain_log();
        let transfer = pipeline.transfer.log();
        (agent.contains("Kafka stalled")
            && agent.contains("recreating the Kafka producer")
            && transfer.contains("Kafka stalled")
            && transfer.contains("joining the group again with a new consumer"))
        .then_some(())
    });
    assert!(said.is_some(), "{}", pipeline.logs());
    assert!(proxy.held() > 0, "the proxy held nothing back");

    proxy.release();
    pipeline.recovers();
    // Nothing more arrives later: each line once.
    std::thread::sleep(Duration::from_secs(3));
    pipeline.wait_indexed(2500);
    assert!(
        pipeline.agent.plain_log().contains("the stall ended"),
        "{}",
        pipeline.logs()
    );
}

/// The broker's process, paused while held (SIGSTOP) and resumed when dropped (SIGCONT).
struct Paused(i32);

impl Paused {
    fn broker() -> Paused {
        // Beside the services.sh that started the servers (another checkout's, for a worktree).
        let script = common::services_script();
        let root = script
            .parent()
            .and_then(std::path::Path::parent)
            .map(std::path::Path::to_path_buf)
            .unwrap_or_else(repo_root);
        let pid_file = root.join(".services/run/kafka.pid");
        let pid: i32 = std::fs::read_to_string(&pid_file)
            .unwrap_or_else(|e| panic!("{}: {e} (services.sh starts Kafka)", pid_file.display()))
            .trim()
            .parse()
            .expect("a pid");
        signal(pid, "STOP");
        Paused(pid)
    }
}

impl Drop for Paused {
    fn drop(&mut self) {
        signal(self.0, "CONT");
    }
}

fn signal(pid: i32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{name} {pid}");
}

/// The broker paused (SIGSTOP) for at least twice the bound while an agent and a transfer run:
/// the agent says so within the bound plus 10 s although librdkafka's own timeouts are longer,
/// the transfer too while the pause lasts; resumed, every line is indexed once.
#[test]
fn a_paused_broker_is_a_stall_bounded_by_stall_timeout_ms() {
    let _shared = lock();
    let pipeline = Pipeline::start("stall-sigstop", &kafka_brokers());
    pipeline.write("before", 0, 1000);
    pipeline.wait_indexed(1000);

    let paused = Paused::broker();
    let paused_at = Instant::now();
    pipeline.write("during", 0, 1000);
    let agent_said = wait_stall_said(pipeline.agent_addr, BOUND + SAY_WITHIN);
    let transfer_said = wait_stall_said(pipeline.transfer_addr, Duration::from_secs(60));
    // Paused for twice the bound at least.
    let at_least = BOUND * 2;
    if paused_at.elapsed() < at_least {
        std::thread::sleep(at_least - paused_at.elapsed());
    }
    let pause = paused_at.elapsed();
    drop(paused);
    let agent_said = agent_said.unwrap_or_else(|| {
        panic!(
            "the agent's /health never named the stall\n{}",
            pipeline.logs()
        )
    });
    let transfer_said = transfer_said.unwrap_or_else(|| {
        panic!(
            "the transfer's /health never named the stall\n{}",
            pipeline.logs()
        )
    });
    eprintln!("paused {pause:?}; agent: {agent_said}; transfer: {transfer_said}");
    assert!(agent_said.contains("Kafka stalled"), "{agent_said}");
    assert!(transfer_said.contains("Kafka stalled"), "{transfer_said}");

    pipeline.recovers();
}
