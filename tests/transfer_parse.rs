//! `[[parse]]` against real Kafka and Elasticsearch, through the real binary: JSON lines become
//! fields a query can use, nothing is lost to parsing, and the event's own time never moves a
//! document.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::Duration;

use serde_json::Value;
use transfer_support::*;

const INDEXED: Duration = Duration::from_secs(60);
const EXIT: Duration = Duration::from_secs(20);

/// The `_id`s of the documents of `index` that `query` (query string syntax) finds.
fn ids_found(index: &str, query: &str) -> Vec<String> {
    es("POST", &format!("{index}/_refresh"), None);
    let body = serde_json::json!({
        "size": 1000,
        "query": {"query_string": {"query": query}}
    })
    .to_string();
    let found = es("POST", &format!("{index}/_search"), Some(&body));
    let mut ids: Vec<String> = found["hits"]["hits"]
        .as_array()
        .map(|hits| {
            hits.iter()
                .filter_map(|h| h["_id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default();
    ids.sort();
    ids
}

fn record(stream: &str, offset: u64, message: &str) -> Produce {
    Produce {
        key: Some(stream.to_string()),
        value: line_json("web-07", stream, offset, message),
        timestamp: None,
    }
}

fn id(stream: &str, offset: u64) -> String {
    logship::record::line_id("web-07", stream, offset)
}

#[test]
fn json_lines_are_searchable_by_field_and_nothing_is_lost_to_parsing() {
    let mut setup = TransferSetup::new("xfer-json");
    setup.tables = format!(
        "[[parse]]\ntopics = [\"{}\"]\nformat = \"json\"\n",
        setup.topic
    );
    create_topic(&setup.topic);
    let producer = producer();
    let mut records = Vec::new();
    let mut errors = Vec::new();
    for n in 0..30u64 {
        let level = if n % 3 == 0 { "error" } else { "info" };
        if level == "error" {
            errors.push(id("api", n));
        }
        let line = format!(
            r#"{{"level":"{level}","user_id":{n},"code":{n},"msg":"request {n}","host":"spoofed"}}"#
        );
        records.push(record("api", n, &line));
    }
    records.push(record("api", 100, "not JSON at all: upstream timed out"));
    produce(&producer, &setup.topic, &records);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 31, INDEXED, &[&transfer]);

    // A field query finds exactly the error lines; a numeric range works on a parsed number.
    errors.sort();
    assert_eq!(ids_found(&setup.index, "level:error"), errors);
    assert_eq!(ids_found(&setup.index, "user_id:[10 TO 12]").len(), 3);
    // logship's own host was kept; the line's own is under parsed.
    assert_eq!(ids_found(&setup.index, "host:web-07").len(), 31);
    assert_eq!(ids_found(&setup.index, "parsed.host:spoofed").len(), 30);

    // The line that is not JSON is indexed as it is, searchable, and says why.
    let failed = ids_found(&setup.index, "upstream AND timed");
    assert_eq!(failed, [id("api", 100)]);
    assert_eq!(ids_found(&setup.index, "_exists_:parse_error"), failed);

    // `code` is a number in this index now: an object there conflicts with the mapping. The
    // line is indexed with its parsed fields as one string, flagged, and stays searchable.
    let conflicting = r#"{"level":"error","code":{"reason":"quota"},"msg":"quota exceeded"}"#;
    produce(&producer, &setup.topic, &[record("api", 200, conflicting)]);
    wait_for_count(&setup.index, 32, INDEXED, &[&transfer]);
    let conflict = [id("api", 200)];
    assert_eq!(
        ids_found(&setup.index, "_exists_:mapping_conflict"),
        conflict
    );
    assert_eq!(ids_found(&setup.index, "quota AND exceeded"), conflict);
    assert_eq!(ids_found(&setup.index, "parsed_raw:quota"), conflict);
    let docs = documents(&setup.index);
    let (_, doc) = docs
        .iter()
        .find(|(id, _)| id == &conflict[0])
        .expect("the conflicting line is indexed");
    assert_eq!(doc["message"], conflicting);
    let raw: Value = serde_json::from_str(doc["parsed_raw"].as_str().unwrap()).unwrap();
    assert_eq!(raw["code"]["reason"], "quota");
    assert!(doc.get("code").is_none());
    assert_eq!(count(&setup.dlq), 0, "nothing was dead-lettered");

    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    let status = transfer.terminate(EXIT);
    assert!(status.success(), "exit status {status:?}");
}

#[test]
fn the_event_time_is_the_timestamp_the_read_day_chooses_the_index_and_replays_stay_single() {
    let mut setup = TransferSetup::new("xfer-time");
    setup.index = format!("{}-%Y.%m.%d", setup.topic);
    // Read on 2026-01-02: the default retention (30 days) would delete the index at the
    // second transfer's start.
    setup.es_extra = "retention = \"forever\"".into();
    setup.tables = format!(
        "[[parse]]\ntopics = [\"{}\"]\nformat = \"json\"\n\
         timestamp = {{ field = \"ts\", format = \"rfc3339\" }}\n",
        setup.topic
    );
    create_topic(&setup.topic);
    // Every record was read at 2026-01-02T03:04:05.678Z (line_json).
    let lines = [
        // The evening before, in another time zone: trusted.
        (
            0,
            r#"{"ts":"2026-01-01T23:00:00+01:00","msg":"late night"}"#,
        ),
        // Five months before: beyond max_skew_ms (7 days), not trusted.
        (
            1,
            r#"{"ts":"2025-08-01T00:00:00Z","msg":"from a replayed backup"}"#,
        ),
        (2, r#"{"msg":"no time at all"}"#),
    ];
    let records: Vec<Produce> = lines
        .iter()
        .map(|(n, line)| record("times", *n, line))
        .collect();
    let producer = producer();
    produce(&producer, &setup.topic, &records);
    let (_dir, config) = setup.write();
    let read_day = format!("{}-2026.01.02", setup.topic);
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&read_day, 3, INDEXED, &[&transfer]);

    let docs = documents(&read_day);
    let doc = |n: u64| {
        docs.iter()
            .find(|(found, _)| found == &id("times", n))
            .map(|(_, doc)| doc.clone())
            .expect("document present")
    };
    assert_eq!(doc(0)["@timestamp"], "2026-01-01T22:00:00Z");
    assert_eq!(doc(0)["event"]["ingested"], "2026-01-02T03:04:05.678Z");
    assert!(doc(0).get("timestamp_error").is_none());
    for n in [1, 2] {
        assert_eq!(doc(n)["@timestamp"], "2026-01-02T03:04:05.678Z");
        assert!(doc(n)["timestamp_error"]
            .as_str()
            .unwrap()
            .starts_with("ts: "));
    }
    // What the console and Kibana filter on: the event's own day.
    let on_new_year = es(
        "POST",
        &format!("{}-*/_count", setup.topic),
        Some(r#"{"query":{"range":{"@timestamp":{"gte":"2026-01-01","lt":"2026-01-02"}}}}"#),
    );
    assert_eq!(on_new_year["count"], 1, "{on_new_year}");
    assert_eq!(
        es(
            "GET",
            &format!("{}-2026.01.01/_count?ignore_unavailable=true", setup.topic),
            None
        )["count"]
            .as_u64()
            .unwrap_or(0),
        0,
        "the event's own day holds no index of its own: the read day chose it"
    );

    // A replay: the same records again (an agent resending) and the whole topic consumed again
    // by a new group (another transfer, new parse rules or not): still one document each.
    produce(&producer, &setup.topic, &records);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(30));
    assert!(transfer.terminate(EXIT).success());
    let mut replay = TransferSetup::new("xfer-time-replay");
    replay.topic = setup.topic.clone();
    replay.index = setup.index.clone();
    replay.dlq = setup.dlq.clone();
    replay.tables = setup.tables.clone();
    let (_dir2, config2) = replay.write();
    let again = Transfer::start(&config2, "replay");
    wait_for_commits_at_end(&replay.group, &replay.topic, Duration::from_secs(60));
    assert_eq!(count(&format!("{}-*", setup.topic)), 3);
    assert!(again.terminate(EXIT).success());
}

#[test]
fn stack_traces_go_from_file_to_elasticsearch_as_one_parsed_document_each() {
    // The whole pipe: the agent joins Java stack traces (`multiline = "java"`), the transfer
    // parses each event's first line with a regex. A search for the cause finds the event with
    // its log line; a field query on the parsed level finds exactly the errors.
    let mut setup = TransferSetup::new("pipe-java");
    setup.tables = format!(
        "[[parse]]\ntopics = [\"{}\"]\n\
         format = {{ regex = '^(?P<ts>\\d{{4}}-\\d\\d-\\d\\d \\d\\d:\\d\\d:\\d\\d\\.\\d{{3}}) (?P<level>[A-Z]+)\\s+\\[(?P<thread>[^\\]]+)\\] (?P<logger>\\S+) - ' }}\n\
         timestamp = {{ field = \"ts\", format = \"%Y-%m-%d %H:%M:%S.%3f\", max_skew_ms = 315360000000 }}\n",
        setup.topic
    );
    create_topic(&setup.topic);
    let shipping = Shipping::start_with(setup, "multiline = \"java\"");
    let text = common::fixture("java.log");
    let expected = common::expected_events(&text);
    std::fs::write(shipping.logs.join("app.log"), &text).unwrap();
    shipping.wait_indexed(expected.len() as u64, INDEXED);
    let index = shipping.setup.index.clone();

    let docs = documents(&index);
    assert_eq!(docs.len(), expected.len());
    for (offset, event, lines) in &expected {
        let (_, doc) = docs
            .iter()
            .find(|(_, doc)| doc["offset"] == *offset)
            .unwrap_or_else(|| panic!("no document at offset {offset}"));
        assert_eq!(doc["message"].as_str(), Some(event.as_str()));
        assert_eq!(doc["lines"].as_u64().unwrap_or(1), *lines as u64);
        assert!(doc.get("parse_error").is_none(), "{doc}");
        assert!(doc.get("timestamp_error").is_none(), "{doc}");
    }
    let with_cause = ids_found(&index, "\"orders_pkey\"");
    assert_eq!(with_cause.len(), 1);
    let (_, doc) = docs.iter().find(|(id, _)| id == &with_cause[0]).unwrap();
    assert!(doc["message"]
        .as_str()
        .unwrap()
        .starts_with("2026-12-01 10:00:06.500 ERROR [scheduler-1]"));
    assert_eq!(doc["level"], "ERROR");
    assert_eq!(doc["@timestamp"], "2026-12-01T10:00:06.5Z");
    let errors = expected
        .iter()
        .filter(|(_, event, _)| event.get(24..29) == Some("ERROR"))
        .count();
    assert!(errors >= 2);
    assert_eq!(ids_found(&index, "level:ERROR").len(), errors);
    shipping.stop();
}

/// What the transfer copies from a JSON line as it is written reaches Elasticsearch as fields:
/// a key the line repeats (Elasticsearch refuses a document holding one twice) is indexed once
/// with its last value, and an object written over several lines (a joined event) is indexed
/// as an object, not as a fallback string.
#[test]
fn repeated_keys_and_multi_line_objects_are_indexed_as_fields() {
    let mut setup = TransferSetup::new("xfer-json-raw");
    setup.tables = format!(
        "[[parse]]\ntopics = [\"{}\"]\nformat = \"json\"\n",
        setup.topic
    );
    create_topic(&setup.topic);
    let records = [
        record("raw", 0, r#"{"level":"info","code":1,"level":"error"}"#),
        record(
            "raw",
            1,
            "{\"ctx\": {\n  \"user\": \"ann\",\n  \"ids\": [1,\n 2]\n},\n \"code\": 2}",
        ),
    ];
    produce(&producer(), &setup.topic, &records);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    wait_for_count(&setup.index, 2, INDEXED, &[&transfer]);
    assert_eq!(ids_found(&setup.index, "level:error"), vec![id("raw", 0)]);
    assert_eq!(ids_found(&setup.index, "ctx.user:ann"), vec![id("raw", 1)]);
    assert_eq!(ids_found(&setup.index, "ctx.ids:2"), vec![id("raw", 1)]);
    let docs = documents(&setup.index);
    assert!(
        docs.iter()
            .all(|(_, doc)| doc.get("mapping_conflict").is_none()
                && doc.get("parse_error").is_none()),
        "{docs:?}"
    );
    assert_eq!(count(&setup.dlq), 0);
    assert!(transfer.terminate(EXIT).success());
}
