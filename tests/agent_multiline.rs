//! `multiline` against the real agent and Kafka: Java stack traces, Python tracebacks and Go
//! panics become one record each, with every line, at the offset of their first byte; an event
//! written in several bursts stays one; a too-long event is cut and flagged; and SIGKILL while a
//! long stack trace is being written and read loses no part and doubles nothing.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::agent::*;
use common::{expected_events, fixture, kafka_brokers, unique};

const ARRIVAL: Duration = Duration::from_secs(300);

/// An agent config with one `[[collect]]` per `(glob, multiline)`, all into `topic`.
fn config(dir: &Path, topic: &str, entries: &[(String, String)]) -> PathBuf {
    let mut text = format!(
        "host = \"test-host\"\ndata_dir = \"{}\"\nrescan_interval_ms = 200\nrotate_wait_ms = 1000\n\
         [kafka]\nbrokers = \"{}\"\n",
        dir.join("data").display(),
        kafka_brokers()
    );
    for (glob, multiline) in entries {
        text.push_str(&format!(
            "\n[[collect]]\npath = \"{glob}\"\ntopic = \"{topic}\"\nmultiline = {multiline}\n"
        ));
    }
    let path = dir.join("agent.toml");
    std::fs::write(&path, text).unwrap();
    path
}

/// A directory with `logs/`, and an agent config collecting `logs/app.log` with `multiline` into
/// a new topic named after `prefix`: (the directory, the topic, the file's path, the config).
fn one_file(prefix: &str, multiline: &str) -> (tempfile::TempDir, String, PathBuf, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique(prefix);
    let path = logs.join("app.log");
    let config = config(
        dir.path(),
        &topic,
        &[(path.display().to_string(), multiline.to_string())],
    );
    (dir, topic, path, config)
}

/// Every expected event arrived once, whole, from `file`, at its offset, with its line count.
fn assert_events(reader: &TopicReader, file: &Path, expected: &[(u64, String, usize)]) {
    let file = file.display().to_string();
    let from_file: Vec<&Shipped> = reader.records.iter().filter(|r| r.file == file).collect();
    for (offset, text, lines) in expected {
        let found: Vec<&&Shipped> = from_file.iter().filter(|r| r.message == *text).collect();
        assert_eq!(
            found.len(),
            1,
            "event at {offset} of {file} arrived {} times:\n{text}",
            found.len()
        );
        let record = found[0];
        assert_eq!(record.offset, *offset, "{text}");
        let counted = record.value["lines"].as_u64().unwrap_or(1) as usize;
        assert_eq!(counted, *lines, "{text}");
        assert!(record.value.get("split").is_none(), "{text}");
    }
    assert_eq!(
        from_file.len(),
        expected.len(),
        "records of {file}: {:#?}",
        from_file.iter().map(|r| &r.message).collect::<Vec<_>>()
    );
}

#[test]
fn stack_traces_of_java_python_and_go_are_one_record_each() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("multiline");
    let mut files = Vec::new();
    let mut entries = Vec::new();
    for (name, preset) in [("java", "java"), ("python", "python"), ("go", "go")] {
        let path = logs.join(format!("{name}.log"));
        let text = fixture(&format!("{name}.log"));
        std::fs::write(&path, &text).unwrap();
        // The Java entry also puts static fields on its records.
        let extra = if name == "java" {
            "\nfields = { service = \"shop\", env = \"prod\" }"
        } else {
            ""
        };
        entries.push((path.display().to_string(), format!("\"{preset}\"{extra}")));
        files.push((path, expected_events(&text)));
    }
    // A custom rule too: an event starts at a date; more lines written in two bursts.
    let custom = logs.join("custom.log");
    entries.push((
        custom.display().to_string(),
        r#"{ start = '^\d{4}-', timeout_ms = 3000 }"#.to_string(),
    ));
    let config = config(dir.path(), &topic, &entries);
    let agent = AgentProcess::start(&config);

    let first = "2026-12-01 one\n  detail a\n  detail b\n";
    std::fs::write(&custom, first).unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let mut file = std::fs::OpenOptions::new()
        .append(true)
        .open(&custom)
        .unwrap();
    file.write_all(b"  detail c\n2026-12-01 two\n").unwrap();
    drop(file);
    let custom_expected = vec![
        (
            0,
            "2026-12-01 one\n  detail a\n  detail b\n  detail c".to_string(),
            4,
        ),
        (
            (first.len() + "  detail c\n".len()) as u64,
            "2026-12-01 two".to_string(),
            1,
        ),
    ];

    let mut reader = TopicReader::new(&topic);
    let all: Vec<String> = files
        .iter()
        .flat_map(|(_, events)| events.iter().map(|(_, text, _)| text.clone()))
        .chain(custom_expected.iter().map(|(_, text, _)| text.clone()))
        .collect();
    reader.assert_arrived(&all, ARRIVAL, || agent.log());
    reader.poll(Duration::from_secs(1));
    for (path, events) in &files {
        assert!(
            events.iter().any(|(_, _, lines)| *lines > 5),
            "fixture without a trace"
        );
        assert_events(&reader, path, events);
    }
    assert_events(&reader, &custom, &custom_expected);
    for record in &reader.records {
        let java = record.file.ends_with("java.log");
        assert_eq!(
            record.value.get("service").is_some(),
            java,
            "{:?}",
            record.value
        );
        if java {
            assert_eq!(
                (&record.value["service"], &record.value["env"]),
                (&"shop".into(), &"prod".into())
            );
        }
    }
    assert_duplicates_share_ids(&reader.records);
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

#[test]
fn an_event_past_max_lines_is_cut_and_both_parts_are_flagged() {
    let (_dir, topic, path, config) = one_file(
        "multiline-cut",
        r#"{ preset = "java", max_lines = 5, timeout_ms = 300 }"#,
    );
    let mut text = String::from("2026-12-01 ERROR boom\njava.lang.RuntimeException: boom\n");
    for n in 0..6 {
        text.push_str(&format!("\tat a.B.c{n}(B.java:{n})\n"));
    }
    std::fs::write(&path, &text).unwrap();
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    let lines: Vec<&str> = text.lines().collect();
    let head = lines[..5].join("\n");
    let tail = lines[5..].join("\n");
    reader.assert_arrived(&[head.clone(), tail.clone()], ARRIVAL, || agent.log());
    reader.poll(Duration::from_secs(1));
    assert_eq!(reader.records.len(), 2, "{:#?}", reader.records);
    for record in &reader.records {
        assert_eq!(record.value["split"], true, "{:?}", record.value);
    }
    assert_eq!(
        reader
            .records
            .iter()
            .find(|r| r.message == head)
            .unwrap()
            .value["lines"],
        5
    );
    assert!(agent.terminate());
}

/// SIGKILL while long stack traces are being written and read, again and again, and a rename
/// rotation in the middle: every event arrives whole, exactly once (a record that arrives twice
/// is the same event with the same id), never in two parts.
#[test]
fn sigkill_while_long_stack_traces_are_written_loses_and_splits_nothing() {
    let (dir, topic, path, config) = one_file(
        "multiline-kill",
        r#"{ preset = "java", timeout_ms = 5000 }"#,
    );
    let logs = dir.path().join("logs");
    let open = || {
        std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .unwrap()
    };
    let mut file = open();
    let mut expected = Vec::new();
    let mut agent = Some(AgentProcess::start(&config));
    for event in 0..12 {
        if event == 6 {
            // Rename rotation: the writer goes on in a new file at the same path.
            std::fs::rename(&path, logs.join("app.log.1")).unwrap();
            file = open();
        }
        let mut trace = format!(
            "2026-12-01 10:00:{event:02} ERROR request {event} failed\njava.lang.IllegalStateException: boom {event}\n"
        );
        for frame in 0..200 {
            trace.push_str(&format!(
                "\tat com.example.L{event}.m{frame}(L{event}.java:{frame})\n"
            ));
        }
        // Written in bursts, the agent killed in the middle of some of them.
        for (part, piece) in trace.as_bytes().chunks(2500).enumerate() {
            file.write_all(piece).unwrap();
            file.flush().unwrap();
            std::thread::sleep(Duration::from_millis(40));
            if (event + part) % 5 == 3 {
                if let Some(running) = agent.take() {
                    running.kill9();
                }
                agent = Some(AgentProcess::start(&config));
            }
        }
        expected.push(trace.trim_end_matches('\n').to_string());
    }
    // The last event is closed by the timeout.
    let mut reader = TopicReader::new(&topic);
    let running = agent.take().unwrap();
    reader.assert_arrived(&expected, ARRIVAL, || running.log());
    reader.poll(Duration::from_secs(2));
    for record in &reader.records {
        assert!(
            expected.contains(&record.message),
            "a part of an event was shipped: {:.300}",
            record.message
        );
        assert_eq!(record.value["lines"], 202);
    }
    assert_duplicates_share_ids(&reader.records);
    assert!(running.terminate());
}
