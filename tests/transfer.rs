//! The transfer against real Kafka and Elasticsearch, through the real binary.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use transfer_support::*;

const INDEXED: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(20);

/// Static group membership: a transfer SIGKILLed and started again with its config rejoins as
/// the member it was and consumes at once — not after its old session timed out (Kafka's
/// default, 45 s, which this test keeps).
#[test]
fn a_transfer_killed_and_started_again_consumes_within_seconds_not_after_the_session_timeout() {
    let mut setup = TransferSetup::new("xfer-static");
    setup.kafka_options = "{}".into();
    create_topic(&setup.topic);
    let producer = producer();
    let first: Vec<Produce> = (0..200).map(|n| line("web-01", "s1", n)).collect();
    produce(&producer, &setup.topic, &first);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 200, INDEXED, &[&transfer]);
    let log = transfer.log();
    assert!(
        log.contains("group_instance_id") && log.contains("logship-transfer-"),
        "the transfer names its static membership:\n{log}"
    );
    transfer.kill9();

    let second: Vec<Produce> = (200..300).map(|n| line("web-01", "s1", n)).collect();
    produce(&producer, &setup.topic, &second);
    let restarted = std::time::Instant::now();
    let transfer = Transfer::start(&config, "t2");
    // Without static membership the old member keeps every partition until its 45 s session
    // times out; with it, the restart takes its partitions back at once.
    wait_for_count(&setup.index, 300, Duration::from_secs(10), &[&transfer]);
    let took = restarted.elapsed();
    eprintln!("restarted transfer indexed the next lines {took:?} after its start");
    assert_eq!(assert_no_duplicate_messages(&setup.index), 300);
    let status = transfer.terminate(EXIT);
    assert!(status.success(), "exit status {status:?}");
}

/// `shards` and `replicas` in `[elasticsearch]` shape the data indices the transfer creates
/// (through its index template); without them Elasticsearch's defaults apply.
#[test]
fn shards_and_replicas_in_the_config_shape_the_indices_it_creates() {
    let mut setup = TransferSetup::new("xfer-shape");
    setup.es_extra = "shards = 2\nreplicas = 0".into();
    create_topic(&setup.topic);
    let producer = producer();
    let lines: Vec<Produce> = (0..20).map(|n| line("web-01", "s1", n)).collect();
    produce(&producer, &setup.topic, &lines);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t");
    wait_for_count(&setup.index, 20, INDEXED, &[&transfer]);
    let settings = es("GET", &format!("{}/_settings", setup.index), None);
    let index = &settings[&setup.index]["settings"]["index"];
    assert_eq!(index["number_of_shards"], "2", "{settings}");
    assert_eq!(index["number_of_replicas"], "0", "{settings}");
    assert!(transfer.terminate(EXIT).success());
}

/// Several Elasticsearch nodes in `url` (here comma-separated, the first one dead: nothing
/// listens on its port): a request the dead node does not answer goes to the next node at
/// once, so no bulk waits for a retry, and every line is indexed exactly once.
#[test]
fn a_node_that_does_not_answer_is_skipped_and_every_line_is_indexed_once() {
    let mut setup = TransferSetup::new("xfer-nodes");
    let dead = format!("http://{}", common::ops::free_addr());
    setup.es_url = format!("{dead}, {}", common::es_url());
    setup.max_docs = 20;
    create_topic(&setup.topic);
    let producer = producer();
    let lines: Vec<Produce> = (0..600)
        .map(|n| line("web-01", &format!("s{}", n % 5), n))
        .collect();
    produce(&producer, &setup.topic, &lines);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 600, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 600);
    let log = transfer.log();
    assert!(
        !log.contains("retrying") && !log.contains("cannot put index template"),
        "the dead node was not skipped: a request waited for a retry:\n{log}"
    );
    let status = transfer.terminate(EXIT);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn replays_with_the_same_id_are_indexed_once() {
    let setup = TransferSetup::new("xfer-replay");
    create_topic(&setup.topic);
    let producer = producer();
    let lines: Vec<Produce> = (0..400)
        .map(|n| line("web-01", &format!("s{}", n % 7), n))
        .collect();
    produce(&producer, &setup.topic, &lines);
    // The same lines again (an agent resending after a crash): new offsets, same ids, once
    // one per record and once bundled as the agent sends them (NDJSON records of several
    // lines), grouped differently from the first time.
    produce(&producer, &setup.topic, &lines[100..250]);
    produce(&producer, &setup.topic, &bundle(&lines[..50], 3));

    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 400, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 400);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));

    let status = transfer.terminate(EXIT);
    assert!(status.success(), "exit status {status:?}");
    assert_eq!(count(&setup.index), 400);
}

#[test]
fn sigkill_three_times_mid_stream_loses_and_doubles_nothing() {
    let mut setup = TransferSetup::new("xfer-kill");
    setup.max_docs = 20;
    setup.max_wait_ms = 50;
    create_topic(&setup.topic);
    let (_dir, config) = setup.write();
    let total: u64 = 3000;

    let topic = setup.topic.clone();
    let producing = std::thread::spawn(move || {
        let producer = producer();
        for chunk in 0..30u64 {
            // Runs of lines of one stream, sent as NDJSON records of up to 4 lines, so a kill
            // can land between the lines of one record.
            let lines: Vec<Produce> = (chunk * 100..(chunk + 1) * 100)
                .map(|n| line("web-02", &format!("s{}", n / 10 % 5), n))
                .collect();
            produce(&producer, &topic, &bundle(&lines, 4));
            std::thread::sleep(Duration::from_millis(150));
        }
    });

    for round in 0..3 {
        let transfer = Transfer::start(&config, &format!("run{round}"));
        // Let it index some, then kill it in the middle of the stream.
        let before = count(&setup.index);
        common::wait_for(Duration::from_secs(30), || {
            (count(&setup.index) > before + 100).then_some(())
        });
        transfer.kill9();
    }
    producing.join().expect("producer thread");
    let last = Transfer::start(&config, "last");
    wait_for_count(&setup.index, total, Duration::from_secs(90), &[&last]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), total as usize);
    let status = last.terminate(EXIT);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn a_record_that_breaks_the_mapping_is_dead_lettered_and_passed() {
    let setup = TransferSetup::new("xfer-dlq");
    create_topic(&setup.topic);
    let producer = producer();
    let mut records: Vec<Produce> = (0..30).map(|n| line("web-03", "one-stream", n)).collect();
    // Logship JSON whose `offset` cannot be a long: Elasticsearch rejects it for good.
    let mut bad: serde_json::Value =
        serde_json::from_slice(&line_json("web-03", "one-stream", 99_999, "bad offset")).unwrap();
    bad["offset"] = serde_json::Value::String("not-a-number".into());
    let bad_id = bad["id"].as_str().unwrap().to_string();
    records.insert(
        15,
        Produce {
            key: Some("one-stream".into()),
            value: serde_json::to_vec(&bad).unwrap(),
            timestamp: None,
        },
    );
    let placed = produce(&producer, &setup.topic, &records);
    let (bad_partition, bad_offset) = placed[15];

    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 30, INDEXED, &[&transfer]);
    wait_for_count(&setup.dlq, 1, INDEXED, &[&transfer]);
    let letters = documents(&setup.dlq);
    let (id, letter) = &letters[0];
    assert_eq!(id, &bad_id);
    assert_eq!(letter["partition"], bad_partition);
    assert_eq!(letter["offset"], bad_offset);
    assert_eq!(letter["topic"], setup.topic.as_str());
    assert_eq!(letter["status"], 400);
    assert!(letter["record"].as_str().unwrap().contains("not-a-number"));
    assert!(!letter["error"].as_str().unwrap().is_empty());

    // The committed offset moved past the dead-lettered record.
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    let committed = committed(&setup.group, &setup.topic);
    assert!(committed[bad_partition as usize].unwrap() > bad_offset);
    assert!(transfer.terminate(EXIT).success());
}

#[test]
fn a_metrics_record_on_a_transfer_without_influxdb_is_dead_lettered_and_passed() {
    let setup = TransferSetup::new("xfer-no-influx");
    create_topic(&setup.topic);
    let producer = producer();
    let lines: Vec<Produce> = (0..20).map(|n| line("web-05", "one-stream", n)).collect();
    produce(&producer, &setup.topic, &lines[..10]);
    // What the agent's host metrics send, on a topic this transfer (Elasticsearch only) reads.
    let points = "cpu,host=web-05,cpu=cpu-total usage_user=1.5 1764540000000000000\n";
    let (partition, offset) = produce_points(&producer, &setup.topic, "one-stream", points, true);
    produce(&producer, &setup.topic, &lines[10..]);

    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 20, INDEXED, &[&transfer]);
    wait_for_count(&setup.dlq, 1, INDEXED, &[&transfer]);
    let letters = documents(&setup.dlq);
    let (_, letter) = &letters[0];
    assert_eq!(letter["topic"], setup.topic.as_str());
    assert_eq!(letter["partition"], partition);
    assert_eq!(letter["offset"], offset);
    assert_eq!(letter["record"], points, "the record as it came");
    let error = letter["error"].as_str().unwrap_or_default();
    assert!(error.contains("no [influxdb]"), "{letter}");
    // The points are not indexed as a log line; every line is, once.
    assert_eq!(assert_no_duplicate_messages(&setup.index), 20);
    assert!(documents(&setup.index)
        .iter()
        .all(|(_, doc)| !doc["message"].to_string().contains("usage_user")));
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    assert!(transfer.terminate(EXIT).success());
}

#[test]
fn a_record_of_a_later_format_or_an_unknown_kind_is_dead_lettered_with_the_reason() {
    let setup = TransferSetup::new("xfer-format");
    create_topic(&setup.topic);
    let producer = producer();
    let lines: Vec<Produce> = (0..10).map(|n| line("web-06", "one-stream", n)).collect();
    produce(&producer, &setup.topic, &lines[..5]);
    // A logship record as a later agent might write it, and a kind this transfer does not know.
    let later = r#"{"id":"later-1","message":"from the future"}"#;
    let (later_partition, later_offset) = produce_with_headers(
        &producer,
        &setup.topic,
        "one-stream",
        later,
        &[("logship-format", "2")],
    );
    produce_with_headers(
        &producer,
        &setup.topic,
        "one-stream",
        "span data",
        &[("logship-format", "1"), ("logship-kind", "traces")],
    );
    produce(&producer, &setup.topic, &lines[5..]);

    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 10, INDEXED, &[&transfer]);
    wait_for_count(&setup.dlq, 2, INDEXED, &[&transfer]);
    let letters = documents(&setup.dlq);
    let letter = letters
        .iter()
        .map(|(_, letter)| letter)
        .find(|letter| letter["offset"] == later_offset)
        .unwrap_or_else(|| panic!("no letter for the later format: {letters:?}"));
    assert_eq!(letter["partition"], later_partition);
    assert_eq!(letter["record"], later, "the record as it came");
    let error = letter["error"].as_str().unwrap_or_default();
    assert!(
        error.contains("format \"2\"") && error.contains("upgrade"),
        "{letter}"
    );
    assert!(
        letters.iter().any(|(_, letter)| letter["error"]
            .as_str()
            .unwrap_or_default()
            .contains("kind \"traces\"")),
        "{letters:?}"
    );
    // Neither is indexed as a log line; every line is, once; the offsets move past both.
    assert_eq!(assert_no_duplicate_messages(&setup.index), 10);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    assert!(transfer.terminate(EXIT).success());
}

#[test]
fn plain_records_are_indexed_with_deterministic_ids_by_their_kafka_time() {
    let mut setup = TransferSetup::new("xfer-plain");
    setup.index = format!("{}-%Y.%m.%d", setup.topic);
    // Records of 2024: the default retention (30 days) would delete their index.
    setup.es_extra = "retention = \"forever\"".into();
    create_topic(&setup.topic);
    let producer = producer();
    // 2024-02-29T12:00:00Z: the daily index comes from the record, not from today.
    let timestamp = 1_709_208_000_000;
    let records: Vec<Produce> = (0..25)
        .map(|n| Produce {
            key: None,
            value: format!("plain line {n} from kcat").into_bytes(),
            timestamp: Some(timestamp),
        })
        .collect();
    let placed = produce(&producer, &setup.topic, &records);

    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    let index = format!("{}-2024.02.29", setup.topic);
    wait_for_count(&index, 25, INDEXED, &[&transfer]);
    let docs = documents(&index);
    for (id, source) in &docs {
        let partition = source["kafka_partition"].as_i64().unwrap() as i32;
        let offset = source["kafka_offset"].as_i64().unwrap();
        assert!(placed.contains(&(partition, offset)));
        assert_eq!(
            id,
            &logship::transfer::document::plain_record_id(
                &setup.topic,
                partition,
                offset,
                Some(timestamp)
            )
        );
        assert!(source["message"]
            .as_str()
            .unwrap()
            .starts_with("plain line "));
        assert_eq!(source["@timestamp"], "2024-02-29T12:00:00Z");
        assert_eq!(source["topic"], setup.topic.as_str());
    }
    assert_no_duplicate_messages(&index);
    assert!(transfer.terminate(EXIT).success());
}

#[test]
fn two_transfers_share_the_group_and_one_takes_over_when_the_other_dies() {
    let mut setup = TransferSetup::new("xfer-pair");
    setup.max_docs = 20;
    setup.max_wait_ms = 50;
    create_topic(&setup.topic);
    let (_dir, config) = setup.write();
    let first = Transfer::start(&config, "first");
    let second = Transfer::start(&config, "second");

    let total: u64 = 2000;
    let stop = Arc::new(AtomicBool::new(false));
    let topic = setup.topic.clone();
    let producing = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let producer = producer();
            for chunk in 0..20u64 {
                let lines: Vec<Produce> = (chunk * 100..(chunk + 1) * 100)
                    .map(|n| line("web-04", &format!("s{}", n % 8), n))
                    .collect();
                produce(&producer, &topic, &lines);
                if !stop.load(Ordering::SeqCst) {
                    std::thread::sleep(Duration::from_millis(150));
                }
            }
        })
    };
    // Both must own partitions before one dies.
    let shared = common::wait_for(Duration::from_secs(30), || {
        let both = [&first, &second]
            .iter()
            .all(|t| t.assigned_partitions().is_some_and(|n| n > 0));
        (both && count(&setup.index) > 200).then_some(())
    });
    assert!(
        shared.is_some(),
        "not both transfers got partitions:\n{}\n-----\n{}",
        first.log(),
        second.log()
    );
    // One config file, so one default static membership name: Kafka fenced the first, which
    // said so and went on as a dynamic member.
    assert!(
        [&first, &second]
            .iter()
            .any(|t| t.log().contains("Kafka fenced this one")),
        "neither transfer said it was fenced:\n{}\n-----\n{}",
        first.log(),
        second.log()
    );
    first.kill9();
    stop.store(true, Ordering::SeqCst);
    producing.join().expect("producer thread");
    wait_for_count(&setup.index, total, Duration::from_secs(90), &[&second]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), total as usize);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    assert!(second.terminate(EXIT).success());
}

/// The group scaled 1 → 3 → 1 under steady writes, one of the three SIGKILLed and one stopped:
/// every line is indexed exactly once and the last transfer ends up owning every partition.
/// The longest time the whole index did not grow while lines were written is printed (with
/// incremental rebalancing no rebalance stops the whole group; docs/deploy.md), not asserted:
/// it is a measurement.
#[test]
fn scaling_the_group_one_to_three_to_one_under_steady_writes_loses_and_doubles_nothing() {
    let mut setup = TransferSetup::new("xfer-scale");
    setup.max_docs = 50;
    setup.max_wait_ms = 50;
    create_topic(&setup.topic);
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let producing = {
        let (stop, written, topic) = (stop.clone(), written.clone(), setup.topic.clone());
        std::thread::spawn(move || {
            let producer = producer();
            let mut n = 0u64;
            // 50 lines every 100 ms, at most 9,000 (what one search can list back).
            while !stop.load(Ordering::SeqCst) && n < 9000 {
                let lines: Vec<Produce> = (n..n + 50)
                    .map(|i| line("web-05", &format!("s{}", i % 8), i))
                    .collect();
                produce(&producer, &topic, &lines);
                n += 50;
                written.store(n, Ordering::SeqCst);
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let owns = |transfer: &Transfer, partitions: usize| {
        common::wait_for(Duration::from_secs(30), || {
            (transfer.assigned_partitions() == Some(partitions)).then_some(())
        })
        .is_some()
    };
    // Each transfer its own config file: its own static membership name.
    let (_d1, c1) = setup.write();
    let (_d2, c2) = setup.write();
    let (_d3, c3) = setup.write();
    let first = Transfer::start(&c1, "first");
    assert!(owns(&first, PARTITIONS as usize), "{}", first.log());
    // The index's growth from now on, sampled: (seconds, documents).
    let samples = Arc::new(std::sync::Mutex::new(Vec::<(f64, u64)>::new()));
    let sampling = {
        let (stop, samples, index) = (stop.clone(), samples.clone(), setup.index.clone());
        std::thread::spawn(move || {
            let start = std::time::Instant::now();
            while !stop.load(Ordering::SeqCst) {
                let documents = count(&index);
                samples
                    .lock()
                    .unwrap()
                    .push((start.elapsed().as_secs_f64(), documents));
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(2));
    let second = Transfer::start(&c2, "second");
    let third = Transfer::start(&c3, "third");
    let spread = common::wait_for(Duration::from_secs(30), || {
        [&first, &second, &third]
            .iter()
            .all(|t| t.assigned_partitions().is_some_and(|n| n > 0))
            .then_some(())
    });
    assert!(
        spread.is_some(),
        "the three did not share the partitions:\n{}\n-----\n{}\n-----\n{}",
        first.log(),
        second.log(),
        third.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    second.kill9();
    assert!(third.terminate(EXIT).success());
    // The stopped member left; the killed one's partitions come back after its session (6 s).
    assert!(owns(&first, PARTITIONS as usize), "{}", first.log());
    std::thread::sleep(Duration::from_secs(2));
    stop.store(true, Ordering::SeqCst);
    producing.join().expect("producer thread");
    sampling.join().expect("sampling thread");
    let total = written.load(Ordering::SeqCst);
    wait_for_count(&setup.index, total, INDEXED, &[&first]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), total as usize);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    assert!(first.terminate(EXIT).success());
    let samples = samples.lock().unwrap();
    let mut longest = 0.0f64;
    let mut since = None;
    for &(at, documents) in samples.iter() {
        match since {
            Some((t0, n0)) if documents == n0 => longest = longest.max(at - t0),
            _ => since = Some((at, documents)),
        }
    }
    eprintln!(
        "scaling 1 -> 3 -> 1 ({total} lines): the index did not grow for at most {longest:.1} s \
         at a time (refreshed and counted every 0.2 s)"
    );
}

/// A multiline event with static fields, as the agent writes it, is one document: its `message`
/// keeps the newlines, `lines` is indexed as a number (the data template maps it), and the
/// static fields are top-level fields a field query finds.
#[test]
fn a_joined_event_with_static_fields_is_one_searchable_document() {
    let setup = TransferSetup::new("xfer-event");
    create_topic(&setup.topic);
    let message =
        "2026-12-01 ERROR boom\njava.lang.IllegalStateException: boom\n\tat a.B.c(B.java:1)";
    let mut record = logship::record::LineRecord {
        fields: Default::default(),
        lines: 3,
        id: logship::record::line_id("web-01", "s1", 0).into(),
        host: "web-01".into(),
        file: "/var/log/app.log".into(),
        file_id: "s1".into(),
        offset: 0,
        message: message.into(),
        timestamp: "2026-01-02T03:04:05.678Z".into(),
        invalid_utf8: false,
        split: false,
        partial: false,
    };
    record.fields.insert("service".into(), "checkout".into());
    let plain = line("web-01", "s2", 1);
    produce(
        &producer(),
        &setup.topic,
        &[
            Produce {
                key: Some("s1".into()),
                value: serde_json::to_vec(&record).unwrap(),
                timestamp: None,
            },
            plain,
        ],
    );
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 2, INDEXED, &[&transfer]);
    let found = es(
        "POST",
        &format!("{}/_search", setup.index),
        Some(
            r#"{"query":{"bool":{"filter":[{"query_string":{"query":"service:checkout"}},{"range":{"lines":{"gte":2}}}]}}}"#,
        ),
    );
    let hits = found["hits"]["hits"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    assert_eq!(hits.len(), 1, "{found}");
    assert_eq!(hits[0]["_source"]["message"], message);
    assert_eq!(hits[0]["_source"]["lines"], 3);
    let mapping = es(
        "GET",
        &format!("{}/_mapping/field/lines", setup.index),
        None,
    );
    assert!(
        mapping.to_string().contains(r#""type":"integer""#),
        "{mapping}"
    );
    assert!(transfer.terminate(EXIT).success());
}
