//! The agent when its own host fails it: a full disk, a thread that dies, a thread that hangs.
//! Never a silent zombie, never a lost line.
//!
//! The disk tests mount a small tmpfs for the agent's `data_dir`, so they need root; without it
//! they say so and pass without checking anything. Tests that stop the shared Kafka broker, or
//! need it at their end, take the [`KAFKA`] lock, so no test of this binary finds it stopped.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use common::agent::*;
use common::ops::{free_addr, http_get};
use common::{kafka_brokers, unique, wait_for, Outage};

/// Held by every test that stops Kafka or needs it.
static KAFKA: Mutex<()> = Mutex::new(());

fn kafka_lock() -> MutexGuard<'static, ()> {
    KAFKA.lock().unwrap_or_else(|e| e.into_inner())
}

/// How long every line may take to arrive once the agent can ship.
const ARRIVAL: Duration = Duration::from_secs(300);

/// A tmpfs of a given size, mounted for one test and unmounted when dropped.
struct Tmpfs {
    path: PathBuf,
    _dir: tempfile::TempDir,
}

impl Tmpfs {
    /// Mounts `mib` MiB, or returns `None` (after saying why) when not root.
    fn mount(test: &str, mib: u64) -> Option<Tmpfs> {
        let uid = Command::new("id").arg("-u").output().expect("run id -u");
        if String::from_utf8_lossy(&uid.stdout).trim() != "0" {
            eprintln!("SKIPPED {test}: mounting a small tmpfs for data_dir needs root");
            return None;
        }
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fs");
        std::fs::create_dir(&path).unwrap();
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={mib}m"), "tmpfs"])
            .arg(&path)
            .status()
            .expect("run mount");
        assert!(status.success(), "mount -t tmpfs failed (as root)");
        Some(Tmpfs { path, _dir: dir })
    }

    /// Grows the filesystem to `mib` MiB (space returns).
    fn resize(&self, mib: u64) {
        let status = Command::new("mount")
            .args(["-o", &format!("remount,size={mib}m")])
            .arg(&self.path)
            .status()
            .expect("run mount -o remount");
        assert!(status.success(), "remount failed");
    }

    fn free(&self) -> u64 {
        logship::agent::disk::free_bytes(&self.path).unwrap()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.path).status();
    }
}

/// Writes `path` until the filesystem holding it has at most `leave` bytes free.
fn fill_until_free(fs: &Tmpfs, path: &Path, leave: u64) {
    use std::io::Write;
    let mut file = std::fs::File::create(path).unwrap();
    let block = vec![0x5au8; 256 * 1024];
    loop {
        let free = fs.free();
        if free <= leave {
            break;
        }
        let n = block.len().min((free - leave) as usize);
        if file.write_all(&block[..n]).is_err() {
            break;
        }
        file.sync_all().unwrap();
    }
}

/// An agent config with `data_dir` at `data_dir` (and logs, config, agent logs in `dir`).
fn config_with_data_dir(dir: &Path, data_dir: &Path, topic: &str, extra: &str) -> PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let config = write_config(dir, &format!("{}/*.log", logs.display()), topic, extra);
    let text = std::fs::read_to_string(&config).unwrap().replace(
        &format!("data_dir = \"{}\"", dir.join("data").display()),
        &format!("data_dir = \"{}\"", data_dir.display()),
    );
    std::fs::write(&config, text).unwrap();
    config
}

/// A loopback address nothing listens on: Kafka unreachable without stopping the shared broker.
fn closed_port() -> String {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string()
}

/// `count` lines that compress poorly (hex of pseudo-random bytes), so they fill a disk.
fn noisy_lines(tag: &str, count: usize) -> Vec<String> {
    let mut x = 0x2545_f491_4f6c_dd1du64;
    (0..count)
        .map(|i| {
            let mut hex = String::with_capacity(96);
            for _ in 0..6 {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                hex.push_str(&format!("{x:016x}"));
            }
            format!("{tag} {i:08} {hex}")
        })
        .collect()
}

fn assert_all_arrived_once(topic: &str, expected: &[String], log: impl Fn() -> String) {
    let mut reader = TopicReader::new(topic);
    reader.assert_arrived(expected, ARRIVAL, log);
    assert_duplicates_share_ids(&reader.records);
}

/// The disk of `data_dir` fills up (another file leaves 1 MiB) while Kafka is down and 100,000
/// lines are written: the agent pauses reading, says why on `/health` and in its log, and stays
/// responsive. Space freed and Kafka back, it resumes by itself and every line arrives once.
#[test]
fn a_full_disk_pauses_reading_and_everything_arrives_once_space_returns() {
    let _kafka = kafka_lock();
    let Some(fs) = Tmpfs::mount("a_full_disk_pauses_reading", 16) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("disk-full");
    let addr = free_addr();
    let config = config_with_data_dir(
        dir.path(),
        &fs.path.join("data"),
        &topic,
        &format!(
            "wal_max_bytes = 1048576\nmin_free_bytes = 2097152\nmetrics_addr = \"{addr}\"\n\
             health_grace_ms = 500\nshutdown_timeout_ms = 2000"
        ),
    );
    let log_path = dir.path().join("logs/app.log");
    let mut expected = lines("before", 0, 1000);
    append_lines(&log_path, &expected);
    let mut agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&expected, ARRIVAL).is_empty(),
        "{}",
        agent.log()
    );

    fill_until_free(&fs, &fs.path.join("filler"), 1024 * 1024);
    let outage = Outage::begin("kafka");
    for round in 0..10 {
        let batch = lines("during", round * 10_000, 10_000);
        append_lines(&log_path, &batch);
        expected.extend(batch);
    }
    let body = wait_for(Duration::from_secs(60), || {
        http_get(addr, "/health").and_then(|(code, body)| (code == 503).then_some(body))
    })
    .unwrap_or_else(|| panic!("/health never turned 503:\n{}", agent.plain_log()));
    assert!(body.contains("no space left on"), "{body}");
    assert!(body.contains(&fs.path.display().to_string()), "{body}");
    assert!(
        agent.plain_log().contains("no space left on"),
        "{}",
        agent.plain_log()
    );
    // Paused, not dead and not hung: still running, still answering.
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.is_running(), "{}", agent.plain_log());
    assert!(
        http_get(addr, "/health").is_some(),
        "/health stopped answering"
    );

    std::fs::remove_file(fs.path.join("filler")).unwrap();
    outage.end();
    assert_all_arrived_once(&topic, &expected, || agent.plain_log());
    assert!(
        agent.is_running(),
        "the agent needed a restart:\n{}",
        agent.plain_log()
    );
    assert!(
        agent.plain_log().contains("reading resumed"),
        "{}",
        agent.plain_log()
    );
    let healthy = wait_for(Duration::from_secs(60), || {
        http_get(addr, "/health").and_then(|(code, _)| (code == 200).then_some(()))
    });
    assert!(healthy.is_some(), "/health still failing");
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

/// With no space reserved (`min_free_bytes = 0`) and Kafka unreachable, the WAL itself fills
/// the disk until a write fails with ENOSPC. Returns the running agent at that moment.
struct FilledDisk {
    fs: Tmpfs,
    dir: tempfile::TempDir,
    config: PathBuf,
    reachable: String,
    topic: String,
    expected: Vec<String>,
}

fn fill_disk_through_the_wal(test: &str) -> Option<(FilledDisk, AgentProcess)> {
    let fs = Tmpfs::mount(test, 16)?;
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("enospc");
    let config = config_with_data_dir(
        dir.path(),
        &fs.path.join("data"),
        &topic,
        "wal_max_bytes = 268435456\nmin_free_bytes = 0\nshutdown_timeout_ms = 2000",
    );
    let reachable = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, reachable.replace(&kafka_brokers(), &closed_port())).unwrap();
    let expected = noisy_lines("enospc", 300_000);
    append_lines(&dir.path().join("logs/app.log"), &expected);
    let agent = AgentProcess::start(&config);
    let deadline = Instant::now() + Duration::from_secs(180);
    loop {
        let log = agent.plain_log();
        if log.contains("No space left") || log.contains("os error 28") {
            break;
        }
        assert!(Instant::now() < deadline, "no ENOSPC after 180 s:\n{}", log);
        std::thread::sleep(Duration::from_millis(5));
    }
    Some((
        FilledDisk {
            fs,
            dir,
            config,
            reachable,
            topic,
            expected,
        },
        agent,
    ))
}

/// SIGKILL at the moment the first ENOSPC is logged; then space returns and the agent is
/// restarted: every line arrives, once.
#[test]
fn sigkill_at_the_first_enospc_loses_nothing() {
    let _kafka = kafka_lock();
    let Some((filled, agent)) = fill_disk_through_the_wal("sigkill_at_the_first_enospc") else {
        return;
    };
    agent.kill9();
    filled.fs.resize(1024);
    std::fs::write(&filled.config, &filled.reachable).unwrap();
    let agent = AgentProcess::start(&filled.config);
    assert_all_arrived_once(&filled.topic, &filled.expected, || agent.plain_log());
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
    drop(filled.dir);
}

/// Left alone after ENOSPC, the agent logs the error and exits non-zero within
/// `shutdown_timeout_ms` (never hangs in a flush); restarted with space, it ships every line once.
#[test]
fn enospc_ends_the_agent_promptly_and_a_restart_ships_everything() {
    let _kafka = kafka_lock();
    let Some((filled, mut agent)) = fill_disk_through_the_wal("enospc_ends_the_agent_promptly")
    else {
        return;
    };
    let status = agent.wait_exit(Duration::from_secs(2 + 3));
    let log = agent.plain_log();
    let status = status.unwrap_or_else(|| panic!("still running 5 s after ENOSPC:\n{log}"));
    assert!(!status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("reader failed"), "{log}");
    filled.fs.resize(1024);
    std::fs::write(&filled.config, &filled.reachable).unwrap();
    let agent = AgentProcess::start(&filled.config);
    assert_all_arrived_once(&filled.topic, &filled.expected, || agent.plain_log());
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

/// An agent config with Kafka unreachable (for tests of the agent's own threads).
fn unreachable_kafka_config(dir: &Path, extra: &str) -> PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    append_lines(&logs.join("app.log"), &lines("x", 0, 10));
    let config = write_config(
        dir,
        &format!("{}/*.log", logs.display()),
        &unique("faults"),
        extra,
    );
    let text = std::fs::read_to_string(&config)
        .unwrap()
        .replace(&kafka_brokers(), &closed_port());
    std::fs::write(&config, text).unwrap();
    config
}

/// A thread of the agent that fails (an injected error or panic) is logged at once, and the
/// agent exits non-zero within `shutdown_timeout_ms`.
#[test]
fn a_failing_thread_is_logged_at_once_and_ends_the_agent_in_time() {
    for (fault, thread) in [
        ("shipper:error:300", "shipper"),
        ("reader:panic:300", "reader"),
        ("monitor:error:300", "monitor"),
    ] {
        let dir = tempfile::tempdir().unwrap();
        let config = unreachable_kafka_config(dir.path(), "shutdown_timeout_ms = 3000");
        let mut agent = AgentProcess::start_with_env(&config, &[("LOGSHIP_TEST_FAULT", fault)]);
        let needle = format!("{thread} failed");
        assert!(
            agent.wait_for_log(&needle, Duration::from_secs(60)),
            "{fault}: no '{needle}' in the log:\n{}",
            agent.plain_log()
        );
        let logged = Instant::now();
        let status = agent.wait_exit(Duration::from_secs(3 + 2));
        let log = agent.plain_log();
        let status = status.unwrap_or_else(|| panic!("{fault}: still running:\n{log}"));
        assert!(
            logged.elapsed() <= Duration::from_secs(3 + 1),
            "{fault}: took {:?}",
            logged.elapsed()
        );
        assert!(!status.success(), "{fault}: exit status {status}:\n{log}");
        assert!(log.contains("injected fault"), "{fault}:\n{log}");
    }
}

/// SIGTERM ends the agent in bounded time even when a thread is stuck for good (as one stuck in a
/// broken disk): non-zero, naming the thread.
#[test]
fn sigterm_ends_the_agent_even_with_a_stuck_thread() {
    let dir = tempfile::tempdir().unwrap();
    let config = unreachable_kafka_config(dir.path(), "shutdown_timeout_ms = 2000");
    let mut agent = AgentProcess::start_with_env(&config, &[("LOGSHIP_TEST_FAULT", "reader:hang")]);
    assert!(
        agent.wait_for_log("agent starting", Duration::from_secs(60)),
        "{}",
        agent.plain_log()
    );
    std::thread::sleep(Duration::from_millis(500));
    agent.sigterm();
    let status = agent.wait_exit(Duration::from_secs(2 + 2));
    let log = agent.plain_log();
    let status = status.unwrap_or_else(|| panic!("SIGTERM did not end the agent:\n{log}"));
    assert!(!status.success(), "exit status {status}:\n{log}");
    assert!(log.contains("did not stop within"), "{log}");
    assert!(log.contains("reader"), "{log}");
}

/// The documented bound of the agent's `data_dir` on disk (docs/config.md): three times
/// `wal_max_bytes`, plus 16 MiB.
fn data_dir_bound(wal_max_bytes: u64) -> u64 {
    3 * wal_max_bytes + 16 * 1024 * 1024
}

/// 1 GB shipped through the default 8 MiB WAL, with Kafka stopped for a minute in the middle
/// (the WAL fills, reading pauses, then it drains): the `data_dir` never takes more than the
/// documented bound, measured every 100 ms, and `logship_wal_disk_bytes` reports it.
#[test]
fn data_dir_stays_within_its_bound_through_1_gb_and_an_outage() {
    use std::io::Write;
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let _kafka = kafka_lock();
    let dir = tempfile::tempdir().unwrap();
    let topic = unique("disk-bound");
    let addr = free_addr();
    let data_dir = dir.path().join("data");
    let config = config_with_data_dir(
        dir.path(),
        &data_dir,
        &topic,
        &format!("metrics_addr = \"{addr}\"\nshutdown_timeout_ms = 2000"),
    );
    let mut agent = AgentProcess::start(&config);

    let largest = Arc::new(AtomicU64::new(0));
    let done = Arc::new(AtomicBool::new(false));
    let sampler = {
        let (largest, done, data_dir) = (largest.clone(), done.clone(), data_dir.clone());
        std::thread::spawn(move || {
            while !done.load(Ordering::Relaxed) {
                if let Ok(bytes) = logship::agent::disk::disk_usage(&data_dir) {
                    largest.fetch_max(bytes, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };

    // ~1 KiB lines that compress poorly, written in 16 MiB steps; Kafka is stopped for a minute
    // after the first 400 MiB.
    let pool = noisy_lines("bound", 2000);
    let total: u64 = 1 << 30;
    let mut written = 0u64;
    let mut lines_written = 0u64;
    // None before the outage, Some(running) during it, and the outage ended after it.
    let mut outage: Option<(Outage, Instant)> = None;
    let mut outage_over = false;
    let mut file = std::fs::File::create(dir.path().join("logs/big.log")).unwrap();
    let mut step = Vec::with_capacity(17 << 20);
    while written < total {
        step.clear();
        while step.len() < 16 << 20 {
            let i = lines_written as usize;
            for k in 0..8 {
                step.extend_from_slice(pool[(i * 7 + k) % pool.len()].as_bytes());
            }
            writeln!(step, " {i}").unwrap();
            lines_written += 1;
        }
        file.write_all(&step).unwrap();
        written += step.len() as u64;
        if !outage_over && outage.is_none() && written >= 400 << 20 {
            outage = Some((Outage::begin("kafka"), Instant::now()));
        }
        if let Some((_, since)) = &outage {
            if since.elapsed() < Duration::from_secs(60) {
                // The files are the buffer: writing goes on, slowly, while the WAL is full.
                std::thread::sleep(Duration::from_millis(500));
            } else if let Some((running, _)) = outage.take() {
                running.end();
                outage_over = true;
            }
        }
    }
    if let Some((running, since)) = outage.take() {
        std::thread::sleep(Duration::from_secs(60).saturating_sub(since.elapsed()));
        running.end();
    }
    let delivered = wait_for(ARRIVAL, || {
        let (_, metrics) = http_get(addr, "/metrics")?;
        let lines = common::ops::sample(&metrics, "logship_kafka_delivered_lines_total", None)?;
        (lines as u64 >= lines_written).then_some(metrics)
    });
    done.store(true, Ordering::Relaxed);
    sampler.join().unwrap();
    let metrics =
        delivered.unwrap_or_else(|| panic!("not everything was delivered:\n{}", agent.plain_log()));
    let largest = largest.load(Ordering::Relaxed);
    let bound = data_dir_bound(8 << 20);
    eprintln!(
        "data_dir: at most {largest} bytes on disk for {written} bytes shipped (bound {bound})"
    );
    assert!(
        largest <= bound,
        "data_dir took {largest} bytes, over the bound {bound}"
    );
    let reported = common::ops::sample(&metrics, "logship_wal_disk_bytes", None)
        .expect("logship_wal_disk_bytes on /metrics");
    assert!(reported > 0.0 && reported as u64 <= bound, "{reported}");
    assert!(agent.is_running(), "{}", agent.plain_log());
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

/// While the agent stops after a thread failed (here the shipper fails and the reader hangs, so
/// the stop takes the whole `shutdown_timeout_ms`), `/health` answers 503 naming the failure; the
/// process then exits non-zero.
#[test]
fn health_says_why_while_the_agent_stops_after_a_failure() {
    let dir = tempfile::tempdir().unwrap();
    let addr = free_addr();
    let config = unreachable_kafka_config(
        dir.path(),
        &format!("shutdown_timeout_ms = 4000\nmetrics_addr = \"{addr}\""),
    );
    let mut agent = AgentProcess::start_with_env(
        &config,
        &[("LOGSHIP_TEST_FAULT", "shipper:error:1000,reader:hang")],
    );
    assert!(
        agent.wait_for_log("shipper failed", Duration::from_secs(60)),
        "{}",
        agent.plain_log()
    );
    let (code, body) = http_get(addr, "/health").unwrap_or_else(|| {
        panic!(
            "/health did not answer while stopping:\n{}",
            agent.plain_log()
        )
    });
    assert_eq!(code, 503, "{body}");
    assert!(body.contains("shipper failed"), "{body}");
    assert!(body.contains("agent"), "{body}");
    let status = agent.wait_exit(Duration::from_secs(4 + 2));
    let log = agent.plain_log();
    let status = status.unwrap_or_else(|| panic!("still running:\n{log}"));
    assert!(!status.success(), "{log}");
    assert!(log.contains("did not stop within"), "{log}");
}

/// A `data_dir` on a filesystem smaller than `min_free_bytes` plus one read round could never
/// be read into: the agent refuses to start, naming both sizes, instead of pausing forever.
#[test]
fn a_data_dir_on_a_filesystem_too_small_to_ever_read_is_refused_naming_both_sizes() {
    let Some(fs) = Tmpfs::mount("a_data_dir_too_small", 16) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    // The default min_free_bytes (16 MiB): nothing about it in the config.
    let config = config_with_data_dir(dir.path(), &fs.path.join("data"), &unique("small"), "");
    let mut child = Command::new(common::logship_bin())
        .args(["agent", "--config"])
        .arg(&config)
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the agent did not refuse a data_dir on a 16 MiB filesystem within 30 s");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let mut err = String::new();
    std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
    assert!(!status.success(), "{err}");
    let total = 16u64 * 1024 * 1024;
    assert!(err.contains(&format!("is {total} bytes in all")), "{err}");
    assert!(err.contains(&format!("min_free_bytes ({total})")), "{err}");
    assert!(err.contains(&fs.path.display().to_string()), "{err}");
}
