//! The real `logship agent` against the real Kafka broker: rotation, truncation, odd lines,
//! crashes. Every test writes uniquely tagged lines and checks that each arrives, and that any
//! line that arrives twice carries the same id both times.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::io::Write;
use std::time::Duration;

use common::agent::*;
use common::{kafka_brokers, unique};
use logship::agent::chunk::{Chunk, ChunkRecord};
use logship_wal::{decode_frame, encode_frame, DecodedFrame, Wal, WalOptions, FRAME_OVERHEAD};

/// Generous: a broker that just started, on a loaded 2-core machine, can stall topic creation for
/// minutes (seen: KRaft `createTopics` took 63 s; the whole broker JVM silent for 2 minutes).
const ARRIVAL: Duration = Duration::from_secs(300);

#[test]
fn lines_from_several_files_arrive_across_rename_and_copytruncate() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-rotation");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let a = logs.join("a.log");
    let b = logs.join("b.log");
    let c = logs.join("c.log");
    let mut expected = Vec::new();
    for (path, tag) in [(&a, "a0"), (&b, "b0"), (&c, "c0")] {
        let batch = lines(tag, 0, 2000);
        append_lines(path, &batch);
        expected.extend(batch);
    }
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&expected, ARRIVAL).is_empty(),
        "initial lines missing\n{}",
        agent.log()
    );

    // Rename rotation: a.log -> a.log.1 (not matched by the glob), a new a.log.
    let tail = lines("a0-tail", 0, 500);
    append_lines(&a, &tail);
    expected.extend(tail);
    std::fs::rename(&a, logs.join("a.log.1")).unwrap();
    let fresh = lines("a1", 0, 1000);
    append_lines(&a, &fresh);
    expected.extend(fresh);

    // copytruncate: copy b.log to b.log.1, truncate b.log, keep writing to it.
    let tail = lines("b0-tail", 0, 500);
    append_lines(&b, &tail);
    expected.extend(tail);
    std::fs::copy(&b, logs.join("b.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&b)
        .unwrap();
    let fresh = lines("b1", 0, 1000);
    append_lines(&b, &fresh);
    expected.extend(fresh);

    // c.log keeps growing throughout.
    let more = lines("c1", 0, 1000);
    append_lines(&c, &more);
    expected.extend(more);

    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(
        missing.is_empty(),
        "{} lines missing, e.g. {:?}\n{}",
        missing.len(),
        &missing[..missing.len().min(5)],
        agent.log()
    );
    reader.poll(Duration::from_secs(1));
    assert_duplicates_share_ids(&reader.records);
    assert_offsets_in_order(&reader.records);
    // One stream per partition: the key is the stream id.
    for record in &reader.records {
        assert_eq!(record.key, record.file_id);
        assert_eq!(record.value["host"], "test-host");
        assert!(record.value["@timestamp"].as_str().unwrap().contains('T'));
        assert!(record.id.len() < 64);
    }
    // The rotated and copied lines kept their stream: no line of the old files got a second id.
    let ids: std::collections::HashSet<&str> =
        reader.records.iter().map(|r| r.id.as_str()).collect();
    let messages: std::collections::HashSet<&str> =
        reader.records.iter().map(|r| r.message.as_str()).collect();
    assert_eq!(
        ids.len(),
        messages.len(),
        "each distinct line has exactly one id"
    );
}

/// A file idle for longer than `rotate_wait_ms`, then renamed to a name the glob does not match:
/// its writer goes on appending to it (until it reopens), and those lines arrive too, in the same
/// stream.
#[test]
fn lines_appended_to_an_idle_file_after_its_rename_arrive() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-idle-rename");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let app = logs.join("app.log");
    let before = lines("before", 0, 50);
    append_lines(&app, &before);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&before, ARRIVAL).is_empty(),
        "{}",
        agent.log()
    );
    // Idle for more than rotate_wait_ms (1 s), then renamed, then written to.
    std::thread::sleep(Duration::from_millis(2500));
    std::fs::rename(&app, logs.join("app.log.1")).unwrap();
    // The agent sees the rename (inotify, or the 200 ms rescan) before the writer's next line.
    std::thread::sleep(Duration::from_millis(400));
    let after = lines("after", 0, 50);
    for line in &after {
        append_lines(&logs.join("app.log.1"), std::slice::from_ref(line));
        std::thread::sleep(Duration::from_millis(5));
    }
    let mut expected = before.clone();
    expected.extend(after);
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(missing.is_empty(), "missing {missing:?}\n{}", agent.log());
    let streams: std::collections::HashSet<&str> =
        reader.records.iter().map(|r| r.file_id.as_str()).collect();
    assert_eq!(streams.len(), 1, "one stream across the rename");
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

#[test]
fn long_lines_invalid_utf8_and_partial_lines_are_shipped_and_flagged() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-odd");
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        &topic,
        "max_line_bytes = 1000",
    );
    let path = logs.join("odd.log");
    let mut file = std::fs::File::create(&path).unwrap();
    file.write_all(b"first line\n").unwrap();
    file.write_all(&vec![b'x'; 2500]).unwrap();
    file.write_all(b"\n").unwrap();
    file.write_all(b"bad \xff\xfe bytes\n").unwrap();
    file.write_all(b"no newline at the end").unwrap();
    drop(file);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    reader.poll(Duration::from_secs(3));
    // The trailing partial line waits for its newline while the file is still there…
    assert!(reader
        .records
        .iter()
        .all(|r| r.message != "no newline at the end"));
    // …and is shipped, flagged, once the file is deleted and drained.
    std::fs::remove_file(&path).unwrap();
    let missing = reader.wait_for_messages(&["no newline at the end".to_string()], ARRIVAL);
    assert!(missing.is_empty(), "{}", agent.log());
    let by_offset = |offset: u64| {
        reader
            .records
            .iter()
            .find(|r| r.offset == offset)
            .unwrap_or_else(|| panic!("no record at offset {offset}"))
    };
    assert_eq!(by_offset(0).message, "first line");
    // 2500 bytes in pieces of 1000, 1000, 500, all flagged split.
    for (offset, len) in [(11u64, 1000usize), (1011, 1000), (2011, 500)] {
        let piece = by_offset(offset);
        assert_eq!(piece.message.len(), len);
        assert_eq!(piece.value["split"], true, "piece at {offset}");
    }
    let bad = by_offset(2512);
    assert_eq!(bad.value["invalid_utf8"], true);
    assert!(bad.message.starts_with("bad ") && bad.message.contains('\u{FFFD}'));
    let partial = by_offset(2512 + b"bad \xff\xfe bytes\n".len() as u64);
    assert_eq!(partial.value["partial"], true);
    assert!(by_offset(0).value.get("split").is_none());
}

/// Ships `lines` lines of one file with `kafka.max_lines_per_record = per_record` and returns
/// the lines of each Kafka record, in order.
fn records_with_lines_per_record(per_record: usize, lines: usize) -> Vec<Vec<Shipped>> {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-per-record");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(
        &config,
        text.replace(
            "[kafka]\n",
            &format!("[kafka]\nmax_lines_per_record = {per_record}\n"),
        ),
    )
    .unwrap();
    let expected: Vec<String> = (0..lines).map(|n| format!("line {n:04}")).collect();
    std::fs::write(logs.join("a.log"), expected.join("\n") + "\n").unwrap();
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(missing.is_empty(), "missing {missing:?}\n{}", agent.log());
    assert!(agent.terminate());
    let mut records: Vec<Vec<Shipped>> = Vec::new();
    for line in reader.records {
        match records.last_mut() {
            Some(last) if last[0].kafka_offset == line.kafka_offset => last.push(line),
            _ => records.push(vec![line]),
        }
    }
    for record in &records {
        assert_eq!(record.len(), record[0].record_lines);
    }
    records
}

#[test]
fn lines_travel_in_ndjson_records_of_at_most_max_lines_per_record() {
    let records = records_with_lines_per_record(3, 20);
    assert!(
        records.iter().all(|r| r.len() <= 3),
        "{:?}",
        sizes(&records)
    );
    assert!(
        records.iter().any(|r| r.len() == 3),
        "{:?}",
        sizes(&records)
    );
    // The lines of a record are consecutive lines of one file.
    for record in &records {
        for pair in record.windows(2) {
            assert_eq!(pair[0].file_id, pair[1].file_id);
            assert_eq!(pair[1].offset, pair[0].offset + 10, "{record:?}");
        }
    }
    // With 1, every record is a single JSON object, as other consumers expect.
    let single = records_with_lines_per_record(1, 5);
    assert_eq!(single.len(), 5);
    assert!(single
        .iter()
        .all(|r| r.len() == 1 && r[0].value.is_object()));
}

fn sizes(records: &[Vec<Shipped>]) -> Vec<usize> {
    records.iter().map(Vec::len).collect()
}

#[test]
fn content_rewritten_in_place_is_a_new_stream_read_from_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-rewrite");
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let path = logs.join("app.log");
    let old = lines("old", 0, 50);
    append_lines(&path, &old);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&old, ARRIVAL).is_empty(),
        "{}",
        agent.log()
    );
    // Same inode, new content longer than what was read: only the fingerprint tells.
    let new = lines("new", 0, 200);
    let mut text = String::new();
    for line in &new {
        text.push_str(line);
        text.push('\n');
    }
    std::fs::write(&path, text).unwrap();
    let missing = reader.wait_for_messages(&new, ARRIVAL);
    assert!(
        missing.is_empty(),
        "{} missing, first {:?}\n{}",
        missing.len(),
        missing.first(),
        agent.log()
    );
}

#[test]
fn sigkill_at_random_moments_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-kill");
    let config = write_config(
        dir.path(),
        &format!("{}/*.log*", logs.display()),
        &topic,
        "",
    );
    let seed: u64 = std::env::var("LOGSHIP_TEST_SEED")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| std::process::id() as u64);
    eprintln!("seed {seed} (LOGSHIP_TEST_SEED to rerun)");
    let mut rng = seed;
    let mut next = move |bound: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % bound
    };

    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer_stop = stop.clone();
    let writer_logs = logs.clone();
    let writer = std::thread::spawn(move || {
        let mut written = Vec::new();
        let mut round = 0usize;
        while !writer_stop.load(std::sync::atomic::Ordering::SeqCst) {
            for file in 0..3 {
                let batch = lines(&format!("f{file}"), round * 200, 200);
                append_lines(&writer_logs.join(format!("f{file}.log")), &batch);
                written.extend(batch);
            }
            round += 1;
            if round.is_multiple_of(15) {
                // Rename rotation to a name the glob still matches: a file created and rotated
                // while the agent is down must still be found, and a renamed file must not be
                // shipped again under new ids.
                let victim = (round / 15) % 3;
                let _ = std::fs::rename(
                    writer_logs.join(format!("f{victim}.log")),
                    writer_logs.join(format!("f{victim}.log.{round}")),
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        written
    });

    let mut agent = AgentProcess::start(&config);
    for kill in 0..3 {
        std::thread::sleep(Duration::from_millis(700 + next(2000)));
        eprintln!("kill -9 #{kill}");
        agent.kill9();
        std::thread::sleep(Duration::from_millis(next(500)));
        agent = AgentProcess::start(&config);
    }
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let written = writer.join().unwrap();
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&written, ARRIVAL);
    if !missing.is_empty() {
        let kept = dir.keep();
        panic!(
            "seed {seed}: {} of {} lines missing, e.g. {:?}; logs and data kept in {}",
            missing.len(),
            written.len(),
            &missing[..missing.len().min(5)],
            kept.display()
        );
    }
    assert_duplicates_share_ids(&reader.records);
    assert!(agent.terminate(), "agent did not stop cleanly on SIGTERM");
}

#[test]
fn start_position_end_skips_existing_lines_but_not_later_files() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-end");
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        &topic,
        "start_position = \"end\"",
    );
    let existing = logs.join("existing.log");
    let old = lines("old", 0, 100);
    append_lines(&existing, &old);
    let agent = AgentProcess::start(&config);
    std::thread::sleep(Duration::from_secs(2));
    let mut expected = lines("appended", 0, 100);
    append_lines(&existing, &expected);
    // A file that appears after start is read from its beginning, whatever start_position says.
    let later = lines("later", 0, 100);
    append_lines(&logs.join("later.log"), &later);
    expected.extend(later);
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(missing.is_empty(), "{:?}\n{}", missing.first(), agent.log());
    reader.poll(Duration::from_secs(1));
    assert!(
        reader
            .records
            .iter()
            .all(|r| !r.message.starts_with("old ")),
        "lines before the start were shipped"
    );
}

#[test]
fn copytruncate_copy_matched_by_the_glob_is_not_shipped_again() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-copy");
    // The glob matches the rotated copy too (app.log.1).
    let config = write_config(
        dir.path(),
        &format!("{}/app.log*", logs.display()),
        &topic,
        "",
    );
    let app = logs.join("app.log");
    let mut expected = lines("before", 0, 1000);
    append_lines(&app, &expected);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader.wait_for_messages(&expected, ARRIVAL).is_empty(),
        "{}",
        agent.log()
    );
    let tail = lines("tail", 0, 300);
    append_lines(&app, &tail);
    expected.extend(tail);
    std::fs::copy(&app, logs.join("app.log.1")).unwrap();
    std::fs::OpenOptions::new()
        .write(true)
        .truncate(true)
        .open(&app)
        .unwrap();
    let after = lines("after", 0, 300);
    append_lines(&app, &after);
    expected.extend(after);
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(missing.is_empty(), "{:?}\n{}", missing.first(), agent.log());
    reader.poll(Duration::from_secs(3));
    assert_duplicates_share_ids(&reader.records);
    let ids: std::collections::HashSet<&str> =
        reader.records.iter().map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        expected.len(),
        "the copy's lines must keep their original ids"
    );
}

/// What [`fill_wal_with_kafka_unreachable`] leaves: the agent's directory, its config (with the
/// real Kafka again), its topic and the lines in its WAL.
struct FilledWal {
    dir: tempfile::TempDir,
    config: std::path::PathBuf,
    topic: String,
    expected: Vec<String>,
}

/// Runs an agent over `count` new lines (4 KiB reads, so several WAL records) with Kafka
/// unreachable (a local port nothing listens on), so every line stays in its WAL, and stops it.
fn fill_wal_with_kafka_unreachable(name: &str, prefix: &str, count: usize) -> FilledWal {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique(name);
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        &topic,
        "shutdown_timeout_ms = 1000\nread_chunk_bytes = 4096",
    );
    let reachable = std::fs::read_to_string(&config).unwrap();
    // Kafka unreachable (a local port nothing listens on): every line stays in the WAL.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    std::fs::write(
        &config,
        reachable.replace(&kafka_brokers(), &closed.to_string()),
    )
    .unwrap();
    let expected = lines(prefix, 0, count);
    append_lines(&logs.join("app.log"), &expected);

    let agent = AgentProcess::start(&config);
    assert!(
        agent.wait_for_log("following file", Duration::from_secs(30)),
        "{}",
        agent.log()
    );
    // The reader commits what it read within a round or two; give it ample time.
    std::thread::sleep(Duration::from_secs(3));
    assert!(agent.terminate(), "agent did not stop on SIGTERM");

    std::fs::write(&config, &reachable).unwrap();
    FilledWal {
        dir,
        config,
        topic,
        expected,
    }
}

/// An upgrade: WAL records written by an agent before chunks were compressed (format 1) are
/// shipped by this one, every line, with the ids they would always have had. The WAL is filled
/// with Kafka unreachable, checked to hold compressed (format 2) records, and every record is
/// rewritten as format 1 before the agent starts again with Kafka reachable.
#[test]
fn uncompressed_wal_records_of_an_earlier_agent_are_shipped() {
    let FilledWal {
        dir,
        config,
        topic,
        expected,
    } = fill_wal_with_kafka_unreachable("agent-upgrade", "old", 300);

    {
        let wal = Wal::open(&dir.path().join("data/wal"), WalOptions::default()).unwrap();
        let records = wal.stored_records().unwrap();
        assert!(
            records.len() >= 3,
            "want several records, got {}",
            records.len()
        );
        let mut in_wal = Vec::new();
        for (seq, value) in records {
            let DecodedFrame::Payload(payload) = decode_frame(&value) else {
                panic!("damaged frame in a fresh WAL");
            };
            let stored: ChunkRecord = bincode::deserialize(&payload).unwrap();
            assert!(
                matches!(stored, ChunkRecord::V2(_)),
                "not stored compressed"
            );
            let chunk = Chunk::decode(&payload).unwrap();
            in_wal.extend(record_lines(&value).unwrap());
            let old = encode_frame(&chunk.encode_v1().unwrap()).unwrap();
            assert!(matches!(decode_frame(&old), DecodedFrame::Payload(_)));
            wal.overwrite_stored(seq, &old).unwrap();
        }
        assert_eq!(
            in_wal, expected,
            "the WAL does not hold every line, in order"
        );
        wal.flush().unwrap();
    }

    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&expected, ARRIVAL);
    assert!(missing.is_empty(), "missing {missing:?}\n{}", agent.log());
    assert!(
        !agent.plain_log().contains("quarantine"),
        "{}",
        agent.plain_log()
    );
    assert_duplicates_share_ids(&reader.records);
    assert!(agent.terminate(), "agent did not stop on SIGTERM");
}

/// The lines of one stored WAL record value, or why it is not an intact chunk.
fn record_lines(value: &[u8]) -> Result<Vec<String>, String> {
    let DecodedFrame::Payload(payload) = decode_frame(value) else {
        return Err(format!("not an intact frame: {:?}", decode_frame(value)));
    };
    let chunk = Chunk::decode(&payload).map_err(|e| e.to_string())?;
    Ok(chunk
        .pieces()
        .map(|p| String::from_utf8_lossy(p.text).into_owned())
        .collect())
}

/// A WAL record damaged on disk is quarantined and reported by its seq; every other line is
/// shipped; the damaged record's lines are not shipped from damaged bytes, and its raw bytes
/// are kept in the quarantine, from which they can be recovered.
///
/// The damage is done at the level of logship's WAL: with the agent stopped, the WAL at
/// `data_dir/wal` is opened and one stored record value is rewritten with a
/// byte flipped inside its payload — the record as the WAL reads it back from disk. Flipping
/// bytes in sled's own files instead would be caught by sled's own log checksums (sled
/// recovers its log up to the last intact write), a layer below the WAL's per-record CRC,
/// which is what this test is about.
#[test]
fn a_corrupted_wal_record_is_quarantined_and_the_rest_is_shipped() {
    let FilledWal {
        dir,
        config,
        topic,
        expected,
    } = fill_wal_with_kafka_unreachable("agent-corrupt", "wal", 400);

    // Damage one record in the middle of the WAL.
    let wal_dir = dir.path().join("data/wal");
    let (seq, damaged, lost) = {
        let wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
        let records = wal.stored_records().unwrap();
        let mut in_wal = Vec::new();
        for (_, value) in &records {
            in_wal.extend(record_lines(value).unwrap());
        }
        assert_eq!(
            in_wal, expected,
            "the WAL does not hold every line, in order"
        );
        assert!(
            records.len() >= 3,
            "want several records, got {}",
            records.len()
        );
        let (seq, value) = records[records.len() / 2].clone();
        let lost = record_lines(&value).unwrap();
        let mut damaged = value;
        let inside_payload = FRAME_OVERHEAD + (damaged.len() - FRAME_OVERHEAD) / 2;
        damaged[inside_payload] ^= 0x20;
        wal.overwrite_stored(seq, &damaged).unwrap();
        wal.flush().unwrap();
        (seq, damaged, lost)
    };

    let mut agent = AgentProcess::start(&config);
    let shipped: Vec<String> = expected
        .iter()
        .filter(|l| !lost.contains(l))
        .cloned()
        .collect();
    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&shipped, ARRIVAL);
    assert!(
        missing.is_empty(),
        "{} intact lines missing, e.g. {:?}\n{}",
        missing.len(),
        missing.first(),
        agent.log()
    );
    reader.poll(Duration::from_secs(2));
    assert!(
        reader.records.iter().all(|r| !lost.contains(&r.message)),
        "a line of the damaged record was shipped"
    );
    assert_duplicates_share_ids(&reader.records);
    let log = agent.plain_log();
    let reported = log.lines().any(|l| {
        l.contains("corrupted WAL record moved to quarantine") && l.contains(&format!("seq={seq}"))
    });
    assert!(reported, "no quarantine report for seq {seq}:\n{log}");
    assert!(agent.is_running(), "the agent stopped:\n{log}");
    assert!(agent.terminate(), "agent did not stop on SIGTERM");

    // The damaged record is kept, bytes and reason, and the lines can be recovered from it.
    let wal = Wal::open(&wal_dir, WalOptions::default()).unwrap();
    let quarantined = wal.quarantined().unwrap();
    assert_eq!(quarantined.len(), 1, "{quarantined:?}");
    assert_eq!(quarantined[0].seq, seq);
    assert!(
        quarantined[0].reason.contains("crc mismatch"),
        "{}",
        quarantined[0].reason
    );
    assert_eq!(quarantined[0].raw, damaged);
    let mut repaired = quarantined[0].raw.clone();
    let flipped = FRAME_OVERHEAD + (repaired.len() - FRAME_OVERHEAD) / 2;
    repaired[flipped] ^= 0x20;
    assert_eq!(record_lines(&repaired).unwrap(), lost);
}

/// Every lines record the agent writes says which version of the record contract it follows
/// (`logship-format: 1`) and carries no kind (lines); the transfer reads NDJSON by that header,
/// not by guessing from the value.
#[test]
fn lines_records_carry_the_format_version_header_and_no_kind() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let topic = unique("format-header");
    let lines: Vec<String> = (0..50).map(|i| format!("{{\"n\":{i}}}")).collect();
    append_lines(&logs.join("a.log"), &lines);
    let config = write_config(dir.path(), &format!("{}/*.log", logs.display()), &topic, "");
    let agent = AgentProcess::start(&config);
    let records = common::influx::read_topic(&topic, |records| {
        records
            .iter()
            .map(|r| r.payload.lines().count())
            .sum::<usize>()
            >= lines.len()
    });
    let shipped: usize = records.iter().map(|r| r.payload.lines().count()).sum();
    assert_eq!(shipped, lines.len(), "{}", agent.log());
    for record in &records {
        assert_eq!(
            record.headers.get("logship-format").map(String::as_str),
            Some("1"),
            "{record:?}"
        );
        assert_eq!(record.kind(), None, "{record:?}");
    }
}
