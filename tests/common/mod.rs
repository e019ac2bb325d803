//! Helpers shared by the integration tests: endpoints of the real services started by
//! `scripts/services.sh`, unique names, and control of the services for outage tests.
#![allow(dead_code)]

pub mod agent;
pub mod browser;
pub mod console;
pub mod influx;
pub mod kafka_proxy;
pub mod ops;
pub mod webhook;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Kafka bootstrap address (`LOGSHIP_KAFKA`, default 127.0.0.1:9092).
pub fn kafka_brokers() -> String {
    std::env::var("LOGSHIP_KAFKA").unwrap_or_else(|_| "127.0.0.1:9092".to_string())
}

/// Elasticsearch base URL (`LOGSHIP_ES`, default http://127.0.0.1:9200).
pub fn es_url() -> String {
    std::env::var("LOGSHIP_ES").unwrap_or_else(|_| "http://127.0.0.1:9200".to_string())
}

/// etcd endpoint (`LOGSHIP_ETCD`, default http://127.0.0.1:2379).
pub fn etcd_endpoint() -> String {
    std::env::var("LOGSHIP_ETCD").unwrap_or_else(|_| "http://127.0.0.1:2379".to_string())
}

/// Alertmanager's API (`LOGSHIP_ALERTMANAGER`, default `http://127.0.0.1:9193`).
pub fn alertmanager_url() -> String {
    std::env::var("LOGSHIP_ALERTMANAGER").unwrap_or_else(|_| "http://127.0.0.1:9193".to_string())
}

/// A name no other test run on this machine has used: `prefix-<unix ms>-<pid>-<n>`, lowercase,
/// valid as a Kafka topic, an Elasticsearch index and an etcd key part.
pub fn unique(prefix: &str) -> String {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let millis = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let n = COUNTER.fetch_add(1, Ordering::SeqCst);
    format!("{prefix}-{millis}-{}-{n}", std::process::id())
}

/// The repository root.
pub fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// The `services.sh` that controls the running servers: `LOGSHIP_SERVICES_SCRIPT` if set (for
/// a git worktree whose servers were started from another checkout), else
/// `<repo>/scripts/services.sh`.
pub fn services_script() -> PathBuf {
    match std::env::var_os("LOGSHIP_SERVICES_SCRIPT") {
        Some(path) => PathBuf::from(path),
        None => repo_root().join("scripts/services.sh"),
    }
}

/// Runs `services.sh <action> <service>` (see [`services_script`]) and panics if it fails.
pub fn services(action: &str, service: &str) {
    let status = Command::new("bash")
        .arg(services_script())
        .arg(action)
        .arg(service)
        .status()
        .expect("run scripts/services.sh");
    assert!(status.success(), "services.sh {action} {service} failed");
}

/// Stops a service for an outage test and starts it again when dropped (even if the test
/// panics), so one failing test does not leave the server down for the next.
pub struct Outage {
    service: String,
    restarted: bool,
}

impl Outage {
    /// Stops `service` (`kafka`, `elasticsearch` or `etcd`).
    pub fn begin(service: &str) -> Outage {
        services("down", service);
        Outage {
            service: service.to_string(),
            restarted: false,
        }
    }

    /// Starts the service again and waits until it is healthy.
    pub fn end(mut self) {
        services("up", &self.service);
        self.restarted = true;
    }
}

impl Drop for Outage {
    fn drop(&mut self) {
        if !self.restarted {
            services("up", &self.service);
        }
    }
}

/// Polls `check` until it returns `Some` or `timeout` passes.
pub fn wait_for<T>(timeout: Duration, mut check: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = check() {
            return Some(value);
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Path of the `logship` binary built for these tests.
pub fn logship_bin() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_logship"))
}

/// `text` without ANSI colour sequences (the binary's text logs colour field names when they
/// go to a file too), so a test can look for `seq=5`.
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The events of a fixture as a person reads them: each begins at a line starting with a date
/// (`2026-12-01 ` or `2026/12/01 `) or `panic: `; the lines after it belong to it. Returns
/// (byte offset of the first line, the event's text without its last newline, its lines).
pub fn expected_events(text: &str) -> Vec<(u64, String, usize)> {
    let starts = |line: &str| {
        let date = line.len() > 11
            && line.as_bytes()[..4].iter().all(u8::is_ascii_digit)
            && matches!(line.as_bytes()[4], b'-' | b'/');
        date || line.starts_with("panic: ")
    };
    let mut events: Vec<(u64, String, usize)> = Vec::new();
    let mut offset = 0u64;
    for line in text.split_inclusive('\n') {
        let content = line.trim_end_matches('\n');
        match events.last_mut() {
            Some((_, event, lines)) if !starts(content) => {
                event.push('\n');
                event.push_str(content);
                *lines += 1;
            }
            _ => events.push((offset, content.to_string(), 1)),
        }
        offset += line.len() as u64;
    }
    events
}

/// The text of `tests/fixtures/multiline/<name>`.
pub fn fixture(name: &str) -> String {
    let path = repo_root().join("tests/fixtures/multiline").join(name);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// Copies a process's log to `target/test-logs/` when the test lets go of the process, so that
/// `scripts/check-test-logs.sh` can look through every log the tests produced for secrets
/// (the temporary directories they were written in are gone by then).
pub fn keep_log(log: &Path) {
    let dir = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"))
        .join("test-logs");
    if std::fs::create_dir_all(&dir).is_err() {
        return;
    }
    let name = log
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_else(|| "log".into());
    let _ = std::fs::copy(log, dir.join(format!("{}-{name}", unique("log"))));
}
