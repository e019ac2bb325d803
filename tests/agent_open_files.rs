//! The agent and the open-files limit: it raises its soft limit to the hard one at start, so
//! more files than the usual soft limit of 1024 (here 128) are all followed; where the hard
//! limit is reached, the files beyond the budget wait: counted on `/metrics`, logged once per
//! interval (not once per file per scan), the agent keeps the descriptors its own endpoint and
//! Kafka connections need, and files read to their end are closed so that every file gets its
//! turn. Idle files are closed after `close_idle_ms` and reopened when they change.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

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
    reader.assert_each_once(&expected, Duration::from_secs(120), || agent.log());
    let log = agent.plain_log();
    assert!(
        log.contains("open-files limit") && log.contains("soft_limit=Some(4096)"),
        "the start says what it raised the limit to:\n{log}"
    );
    assert!(!log.contains("Too many open files"), "{log}");
    assert!(agent.terminate(), "agent did not stop");
}

#[test]
fn files_waiting_for_a_descriptor_are_counted_logged_once_per_interval_and_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    // Each file ends with a line still being written (no newline yet): a file with unread
    // bytes keeps its descriptor, so the files beyond the budget keep waiting until the lines
    // are completed below.
    let mut expected = Vec::new();
    for f in 0..300 {
        let (first, second) = (format!("file {f:04} line 0"), format!("file {f:04} line 1"));
        std::fs::write(
            logs.join(format!("f{f:04}.log")),
            format!("{first}\n{second}"),
        )
        .unwrap();
        expected.extend([first, second]);
    }
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
    let status = std::process::Command::new(common::logship_bin())
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let status = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.contains("waiting for a file descriptor"),
        "logship status shows the waiting files:\n{status}"
    );
    // The lines completed, the files are read to their end and closed while others wait:
    // every file gets its turn.
    for f in 0..300 {
        append_lines(&logs.join(format!("f{f:04}.log")), &[String::new()]);
    }
    let mut reader = TopicReader::new(&topic);
    reader.assert_each_once(&expected, Duration::from_secs(120), || agent.log());
    assert!(agent.terminate(), "agent did not stop");
}

/// The paths of the files process `pid` holds open.
fn open_paths(pid: u32) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| std::fs::read_link(e.path()).ok())
                .collect()
        })
        .unwrap_or_default()
}

/// An agent with `close_idle_ms = 300` following `logs/*.log`, whose `app.log` got `first` (5
/// lines tagged `tag`), shipped and then closed as idle.
struct ClosedIdle {
    _dir: tempfile::TempDir,
    logs: std::path::PathBuf,
    app: std::path::PathBuf,
    agent: AgentProcess,
    reader: TopicReader,
    first: Vec<String>,
}

impl ClosedIdle {
    fn new(tag: &str) -> ClosedIdle {
        let dir = tempfile::tempdir().unwrap();
        let topic = unique(&format!("idle-{tag}"));
        let logs = dir.path().join("logs");
        std::fs::create_dir(&logs).unwrap();
        let config = write_config(
            dir.path(),
            &format!("{}/*.log", logs.display()),
            &topic,
            "close_idle_ms = 300",
        );
        let agent = AgentProcess::start(&config);
        let app = logs.join("app.log");
        let first = lines(tag, 0, 5);
        append_lines(&app, &first);
        let mut reader = TopicReader::new(&topic);
        reader.assert_arrived(&first, Duration::from_secs(60), || agent.log());
        // Closed: the agent no longer holds the file open.
        let pid = agent.child.id();
        let closed = wait_for(Duration::from_secs(30), || {
            (!open_paths(pid).iter().any(|p| p == &app)).then_some(())
        });
        assert!(
            closed.is_some(),
            "still open after close_idle_ms:\n{}",
            agent.log()
        );
        ClosedIdle {
            _dir: dir,
            logs,
            app,
            agent,
            reader,
            first,
        }
    }

    /// Every line of `first` and `then` arrives, each once; the agent then stops cleanly.
    fn assert_each_once_with(&mut self, then: &[String]) {
        let all: Vec<String> = self.first.iter().chain(then).cloned().collect();
        let agent = &self.agent;
        self.reader
            .assert_each_once(&all, Duration::from_secs(60), || agent.log());
    }

    fn streams_of(&self, tag: &str) -> std::collections::HashSet<String> {
        self.reader
            .records
            .iter()
            .filter(|r| r.message.starts_with(tag))
            .map(|r| r.file_id.clone())
            .collect()
    }

    fn stop(self) {
        assert!(self.agent.terminate(), "agent did not stop");
    }
}

#[test]
fn an_idle_file_is_closed_and_reopened_at_its_checkpoint_when_it_grows() {
    let mut idle = ClosedIdle::new("idle");
    let more = lines("idle", 5, 10);
    append_lines(&idle.app, &more);
    idle.assert_each_once_with(&more);
    assert_eq!(
        idle.streams_of("idle").len(),
        1,
        "one stream across the close"
    );
    assert_offsets_in_order(&idle.reader.records);
    idle.stop();
}

#[test]
fn a_closed_file_replaced_by_another_of_the_same_name_is_a_new_stream() {
    let mut idle = ClosedIdle::new("old");
    std::fs::remove_file(&idle.app).unwrap();
    let new = lines("new", 0, 5);
    append_lines(&idle.app, &new);
    idle.assert_each_once_with(&new);
    let (old_streams, new_streams) = (idle.streams_of("old"), idle.streams_of("new"));
    assert_eq!((old_streams.len(), new_streams.len()), (1, 1));
    assert_ne!(old_streams, new_streams, "the new file is a new stream");
    idle.stop();
}

#[test]
fn lines_appended_to_a_closed_file_just_before_its_rename_arrive() {
    let mut idle = ClosedIdle::new("before");
    // Written while the agent does not hold the file, then renamed out of the glob at once.
    let last = lines("last", 0, 3);
    append_lines(&idle.app, &last);
    std::fs::rename(&idle.app, idle.logs.join("app.log.1")).unwrap();
    idle.assert_each_once_with(&last);
    idle.stop();
}

/// The case: 5,000 files, and a *hard* limit of 256 descriptors. Files read to their
/// end are closed while others wait, so every file gets its turn.
#[test]
fn five_thousand_files_under_a_hard_limit_of_256_all_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let expected = many_files(&logs, 5000, 2);
    let topic = unique("openfiles-5000");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let started = std::time::Instant::now();
    let agent = AgentProcess::start_with_nofile(&config, 256, 256);
    let mut reader = TopicReader::new(&topic);
    reader.assert_each_once(&expected, Duration::from_secs(240), || agent.log());
    let log = agent.plain_log();
    let said = log.matches("open-files limit reached").count();
    let allowed = started.elapsed().as_secs() as usize / 10 + 1;
    assert!(
        said <= allowed,
        "logged {said} times in {:?}",
        started.elapsed()
    );
    assert!(!log.contains("cannot open file"), "no warning per file");
    // A few lines per file (followed, closed: debug here), never one per file per retry.
    let count = log.lines().count();
    assert!(count < 3 * 5000 + 500, "{count} log lines");
    assert!(agent.terminate(), "agent did not stop");
}
