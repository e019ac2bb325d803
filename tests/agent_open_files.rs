//! The agent and the open-files limit: it raises its soft limit to the hard one at start, so
//! more files than the usual soft limit of 1024 (here 128) are all followed; where the hard
//! limit is reached, the files beyond the budget wait: counted on `/metrics`, logged once per
//! interval (not once per file per scan), and the agent keeps the descriptors its own endpoint
//! and Kafka connections need.

mod common;

use std::time::Duration;

use common::agent::*;
use common::ops::{free_addr, http_get, sample};
use common::{unique, wait_for};

/// `count` files of `per_file` lines each in `dir`; returns every line.
fn many_files(dir: &std::path::Path, count: usize, per_file: usize) -> Vec<String> {
    let mut all = Vec::new();
    for f in 0..count {
        let lines: Vec<String> = (0..per_file)
            .map(|n| format!("file {f:04} line {n}"))
            .collect();
        append_lines(&dir.join(format!("f{f:04}.log")), &lines);
        all.extend(lines);
    }
    all
}

#[test]
fn a_soft_limit_below_the_file_count_is_raised_and_every_file_arrives() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let expected = many_files(&logs, 600, 5);
    let topic = unique("openfiles");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    // A soft limit of 128 holds about 60 files besides what the agent itself needs.
    let agent = AgentProcess::start_with_nofile(&config, 128, 4096);
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&expected, Duration::from_secs(120));
    assert!(
        missing.is_empty(),
        "{} of {} lines missing, e.g. {:?}\n{}",
        missing.len(),
        expected.len(),
        missing.first(),
        agent.log()
    );
    reader.poll(Duration::from_secs(1));
    assert_eq!(reader.records.len(), expected.len(), "no line twice");
    let log = agent.plain_log();
    assert!(
        log.contains("open-files limit") && log.contains("soft_limit=Some(4096)"),
        "the start says what it raised the limit to:\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(agent.terminate(), "agent did not stop");
}

#[test]
fn files_waiting_for_a_descriptor_are_counted_and_logged_once_per_interval() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let expected = many_files(&logs, 300, 2);
    let topic = unique("openfiles-full");
    let metrics = free_addr();
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        &topic,
        &format!("metrics_addr = \"{metrics}\""),
    );
    // The hard limit is 128 too: nothing to raise, most files must wait.
    let started = std::time::Instant::now();
    let agent = AgentProcess::start_with_nofile(&config, 128, 128);
    let waiting = wait_for(Duration::from_secs(60), || {
        let (_, body) = http_get(metrics, "/metrics")?;
        sample(&body, "logship_agent_files_waiting", None).filter(|w| *w > 0.0)
    });
    let waiting = waiting.unwrap_or_else(|| panic!("no files waiting:\n{}", agent.log()));
    assert!(waiting < 300.0, "some files are followed: {waiting}");
    // Scans run every 200 ms: per-file logging would write over a thousand lines a second.
    // The endpoint still answers: the descriptors it needs were kept out of the budget.
    std::thread::sleep(Duration::from_secs(5));
    assert!(http_get(metrics, "/metrics").is_some(), "{}", agent.log());
    let log = agent.plain_log();
    let said = log.matches("open-files limit reached").count();
    let allowed = started.elapsed().as_secs() as usize / 10 + 1;
    assert!(
        (1..=allowed).contains(&said),
        "logged {said} times in {:?} (at most once per 10 s):\n{log}",
        started.elapsed()
    );
    assert!(!log.contains("cannot open file"), "{log}");
    let mut reader = TopicReader::new(&topic);
    reader.poll(Duration::from_secs(3));
    assert!(
        !reader.records.is_empty() && reader.records.len() < expected.len(),
        "the files that have a descriptor are shipped: {} of {}",
        reader.records.len(),
        expected.len()
    );
    assert!(agent.terminate(), "agent did not stop");
}
