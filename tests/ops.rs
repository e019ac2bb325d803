//! Operating logship: a real Prometheus scrapes the agent and the transfer, `promtool` checks
//! their metrics, `logship status` reads a running and a stopped agent, and a backlog found at
//! start is reported while it is caught up. Real Kafka and Elasticsearch, the real binary.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::agent::*;
use common::ops::*;
use common::{logship_bin, wait_for};
use transfer_support::{wait_for_count, Transfer, TransferSetup};

const ARRIVAL: Duration = Duration::from_secs(300);

fn agent_config(dir: &Path, topic: &str, extra: &str) -> std::path::PathBuf {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    write_config(dir, &format!("{}/*.log", logs.display()), topic, extra)
}

fn metrics_of(addr: SocketAddr) -> String {
    let (code, body) = http_get(addr, "/metrics").expect("metrics endpoint answers");
    assert_eq!(code, 200, "{body}");
    body
}

#[test]
fn prometheus_scrapes_agent_and_transfer_and_the_counters_match_the_lines_shipped() {
    let dir = tempfile::tempdir().unwrap();
    let setup = TransferSetup::new("ops-prom");
    let agent_addr = free_addr();
    let config = agent_config(
        dir.path(),
        &setup.topic,
        &format!("metrics_addr = \"{agent_addr}\""),
    );
    let logs = dir.path().join("logs");
    let a = lines("a", 0, 700);
    let b = lines("b", 0, 300);
    append_lines(&logs.join("a.log"), &a);
    append_lines(&logs.join("b.log"), &b);
    let agent = AgentProcess::start(&config);

    let transfer_addr = free_addr();
    let transfer_config = dir.path().join("transfer.toml");
    std::fs::write(
        &transfer_config,
        format!("metrics_addr = \"{transfer_addr}\"\n{}", setup.toml()),
    )
    .unwrap();
    let transfer = Transfer::start(&transfer_config, "ops");
    let prometheus = Prometheus::start(
        dir.path(),
        &[("agent", agent_addr), ("transfer", transfer_addr)],
    );

    wait_for_count(&setup.index, 1000, ARRIVAL, &[&transfer]);

    let expect = |expr: &str, wanted: f64| {
        let got = wait_for(Duration::from_secs(60), || {
            prometheus.query(expr).filter(|v| *v == wanted)
        });
        assert!(
            got.is_some(),
            "{expr}: wanted {wanted}, Prometheus says {:?}\nagent /metrics:\n{}\ntransfer /metrics:\n{}\n{}",
            prometheus.query(expr),
            metrics_of(agent_addr),
            metrics_of(transfer_addr),
            prometheus.log()
        );
    };
    expect("up{job=\"agent\"}", 1.0);
    expect("up{job=\"transfer\"}", 1.0);
    let a_path = logs.join("a.log").display().to_string();
    expect(
        &format!("logship_agent_read_lines_total{{file=\"{a_path}\"}}"),
        700.0,
    );
    expect("sum(logship_agent_read_lines_total)", 1000.0);
    expect("logship_kafka_delivered_lines_total", 1000.0);
    expect("logship_wal_pending_records", 0.0);
    expect("sum(logship_transfer_documents_created_total)", 1000.0);
    expect("logship_transfer_received_records_total", 1000.0);
    expect("sum(logship_transfer_consumer_lag_records)", 0.0);
    expect("logship_kafka_brokers_up{job=\"agent\"}", 1.0);
    expect("logship_kafka_brokers_up{job=\"transfer\"}", 1.0);

    for (role, addr) in [("agent", agent_addr), ("transfer", transfer_addr)] {
        let metrics = metrics_of(addr);
        if let Err(complaint) = promtool_check(&metrics) {
            panic!("{role} metrics fail promtool: {complaint}\n{metrics}");
        }
        let (code, body) = http_get(addr, "/health").unwrap();
        assert_eq!(code, 200, "{role} /health: {body}");
    }
    let bytes = std::fs::metadata(logs.join("a.log")).unwrap().len() as f64;
    assert_eq!(
        sample(
            &metrics_of(agent_addr),
            "logship_agent_read_bytes_total",
            Some(&format!("file=\"{a_path}\""))
        ),
        Some(bytes)
    );
    let log = agent.log();
    assert!(agent.terminate(), "{log}");
    transfer.terminate(Duration::from_secs(30));
}

/// One file line of `logship status`: path, offset, bytes behind.
type FileLine = (String, u64, String);

/// `logship status` output: its first line, its file lines and its `wal:` line.
fn status(config: &Path) -> Result<(String, Vec<FileLine>, String), String> {
    let output = Command::new(logship_bin())
        .args(["status", "--config"])
        .arg(config)
        .output()
        .expect("run logship status");
    let stdout = String::from_utf8_lossy(&output.stdout).to_string();
    if !output.status.success() {
        return Err(format!(
            "{stdout}{}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let wal = stdout
        .lines()
        .find(|l| l.starts_with("wal:"))
        .unwrap_or_default()
        .to_string();
    let mut lines = stdout.lines();
    let state = lines.next().unwrap_or_default().to_string();
    let files = lines
        .skip(1)
        .filter(|l| l.starts_with('/'))
        .map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (
                fields[0].to_string(),
                fields[2].parse().unwrap(),
                fields[4].to_string(),
            )
        })
        .collect();
    Ok((state, files, wal))
}

/// The bytes `data_dir` takes on disk, as the `wal:` line of `logship status` says.
fn disk_bytes(wal_line: &str) -> u64 {
    let (_, rest) = wal_line
        .split_once("data_dir ")
        .unwrap_or_else(|| panic!("no data_dir size in {wal_line:?}"));
    rest.split_whitespace().next().unwrap().parse().unwrap()
}

#[test]
fn status_lists_files_and_offsets_of_a_running_and_a_stopped_agent() {
    let dir = tempfile::tempdir().unwrap();
    let topic = common::unique("ops-status");
    let addr = free_addr();
    let config = agent_config(dir.path(), &topic, &format!("metrics_addr = \"{addr}\""));
    let logs = dir.path().join("logs");
    let one = logs.join("one.log");
    let two = logs.join("two.log");
    let mut expected = lines("one", 0, 300);
    append_lines(&one, &expected);
    let second = lines("two", 0, 120);
    append_lines(&two, &second);
    expected.extend(second);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&expected, ARRIVAL).is_empty(),
        "{}",
        agent.log()
    );

    let size = |p: &Path| std::fs::metadata(p).unwrap().len();
    let want = vec![
        (one.display().to_string(), size(&one), "0".to_string()),
        (two.display().to_string(), size(&two), "0".to_string()),
    ];
    let (state, files, wal) = status(&config).unwrap();
    assert_eq!(state, "agent: running");
    assert_eq!(files, want);
    let on_disk = disk_bytes(&wal);
    let measured = logship::agent::disk::disk_usage(&dir.path().join("data")).unwrap();
    assert!(
        on_disk > 0 && on_disk <= 2 * measured,
        "{wal} vs {measured}"
    );

    // Lines written while the agent is stopped show up as bytes behind.
    let log = agent.log();
    assert!(agent.terminate(), "{log}");
    append_lines(&two, &lines("late", 0, 10));
    let (state, files, wal) = status(&config).unwrap();
    assert_eq!(state, "agent: stopped");
    assert!(disk_bytes(&wal) > 0, "{wal}");
    assert_eq!(files[0], want[0]);
    assert_eq!(files[1].1, want[1].1);
    assert_eq!(files[1].2, (size(&two) - want[1].1).to_string());

    // Running without a reachable endpoint: said plainly, not guessed.
    let no_endpoint = agent_config(dir.path(), &topic, "");
    let agent = AgentProcess::start(&no_endpoint);
    assert!(wait_for(Duration::from_secs(60), || agent
        .log()
        .contains("agent starting")
        .then_some(()))
    .is_some());
    let error = status(&no_endpoint).unwrap_err();
    assert!(error.contains("is running"), "{error}");
    assert!(agent.terminate());
}

#[test]
fn a_backlog_found_at_start_is_reported_while_it_is_caught_up() {
    let dir = tempfile::tempdir().unwrap();
    let topic = common::unique("ops-backlog");
    // One 16 KiB read at a time in the WAL: catching up takes one Kafka round trip (linger
    // 5 ms at least) per 16 KiB, about 750 of them, so it lasts several of the monitor's 1 s
    // ticks however fast the machine. (With the default WAL a fast agent shipped the 12 MB
    // before the first tick, and a backlog gone by then is not reported.)
    let config = agent_config(
        dir.path(),
        &topic,
        "progress_interval_ms = 200\nwal_max_bytes = 16384\nread_chunk_bytes = 16384",
    );
    let big = dir.path().join("logs/big.log");
    // About 12 MB of pseudo-random hex, which LZ4 cannot shrink much (the WAL stores chunks
    // compressed; repetitive lines would fit the 16 KiB WAL a hundred at a time).
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let text: String = (0..60_000)
        .map(|n| {
            let noise: String = (0..25)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    format!("{:08x}", state as u32)
                })
                .collect();
            format!("{n:08} {noise}\n")
        })
        .collect();
    std::fs::write(&big, text).unwrap();
    let agent = AgentProcess::start(&config);
    let done = wait_for(ARRIVAL, || {
        agent
            .log()
            .contains("backlog found at start is shipped")
            .then_some(())
    });
    let log = agent.log();
    assert!(done.is_some(), "{log}");
    let progress = log
        .lines()
        .find(|l| l.contains("catching up on the backlog"))
        .unwrap_or_else(|| panic!("no progress line:\n{log}"));
    for field in [
        "done_mib=",
        "total_mib=",
        "percent=",
        "rate_mib_per_s=",
        "eta_s=",
    ] {
        assert!(progress.contains(field), "{progress}");
    }
    assert!(agent.terminate());
}
