//! Retention and disks, through the real binary against real Kafka and Elasticsearch: the
//! transfer deletes its own expired indices and nothing else, keeps everything with
//! `"forever"` (and without templates of its own unless told), and warns in `/health` above
//! the high disk watermark.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::Duration;

use common::ops::{free_addr, http_get, sample};
use common::wait_for;
use transfer_support::*;

const INDEXED: Duration = Duration::from_secs(60);

fn create_index(name: &str) {
    let answer = es("PUT", name, Some("{}"));
    assert_eq!(answer["acknowledged"], true, "creating {name}: {answer}");
}

fn exists(name: &str) -> bool {
    let answer = es("GET", &format!("_cat/indices/{name}?format=json"), None);
    answer.as_array().is_some_and(|rows| !rows.is_empty())
}

/// Today's date as the daily template writes it.
fn today() -> String {
    let output = std::process::Command::new("date")
        .args(["-u", "+%Y.%m.%d"])
        .output()
        .expect("date");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

/// The indices a transfer with `{topic}-%Y.%m.%d` and a monthly dead-letter index may and may
/// not delete; returns (must go, must stay).
fn old_and_kept(setup: &TransferSetup, dlq_prefix: &str) -> (Vec<String>, Vec<String>) {
    let topic = &setup.topic;
    let gone = vec![
        format!("{topic}-2019.01.01"),
        format!("{topic}-2024.02.29"),
        format!("{dlq_prefix}-2019.01"),
    ];
    let kept = vec![
        // Today's and another pattern with an old date, a rollover-style name, a date that is
        // no date.
        format!("{topic}-{}", today()),
        format!("keep-{topic}-2019.01.01"),
        format!("{topic}-2019.01.01-000001"),
        format!("{topic}-2019.13.01"),
        format!("{dlq_prefix}-x-2019.01"),
    ];
    for name in gone.iter().chain(&kept) {
        create_index(name);
    }
    (gone, kept)
}

#[test]
fn expired_indices_of_the_transfers_own_pattern_are_deleted_at_start_and_nothing_else() {
    let mut setup = TransferSetup::new("retention");
    setup.index = "{topic}-%Y.%m.%d".into();
    let dlq_prefix = format!("dlq-{}", setup.topic);
    setup.dlq = format!("{dlq_prefix}-%Y.%m");
    setup.es_extra = "retention = \"30d\"\nretention_check_ms = 1000".into();
    create_topic(&setup.topic);
    let (gone, kept) = old_and_kept(&setup, &dlq_prefix);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    let producer = producer();
    let lines: Vec<Produce> = (0..20).map(|n| line_now("web-01", "s", n)).collect();
    produce(&producer, &setup.topic, &lines);
    let today_index = format!("{}-{}", setup.topic, today());
    wait_for_count(&today_index, 20, INDEXED, &[&transfer]);

    let deleted = wait_for(Duration::from_secs(30), || {
        gone.iter().all(|name| !exists(name)).then_some(())
    });
    assert!(
        deleted.is_some(),
        "expired indices still there: {:?}\n{}",
        gone.iter().filter(|n| exists(n)).collect::<Vec<_>>(),
        transfer.log()
    );
    // Several sweeps have passed (one a second): still there.
    std::thread::sleep(Duration::from_secs(3));
    for name in &kept {
        assert!(exists(name), "{name} was deleted:\n{}", transfer.log());
    }
    let log = transfer.log();
    assert!(log.contains("index deleted"), "{log}");
    // A search over the whole range, deleted days included, still answers.
    let hits = es(
        "GET",
        &format!("{}-*/_search?ignore_unavailable=true", setup.topic),
        Some(
            r#"{"query": {"range": {"@timestamp": {"gte": "2019-01-01", "lte": "now+1d"}}},
                "track_total_hits": true, "size": 0}"#,
        ),
    );
    assert_eq!(hits["hits"]["total"]["value"], 20, "{hits}");
    // The template says what retention its indices have (the console reads it).
    let templates = es("GET", "_index_template/logship-data-*", None);
    let ours = templates["index_templates"]
        .as_array()
        .unwrap()
        .iter()
        .find(|t| {
            t["index_template"]["_meta"]["topics"]
                .as_array()
                .is_some_and(|topics| topics.iter().any(|x| x == setup.topic.as_str()))
        })
        .expect("the transfer's data template");
    assert_eq!(ours["index_template"]["_meta"]["retention"], "30days");
    // The console's storage view says when today's index goes: the day after today, plus 30.
    let console_dir = tempfile::tempdir().unwrap();
    let console = common::console::Console::start(
        console_dir.path(),
        &common::es_url(),
        &format!("{}-*", setup.topic),
    );
    let (code, storage) = console.get("/api/storage");
    assert_eq!(code, 200, "{storage}");
    let row = storage["indices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["index"] == today_index.as_str())
        .unwrap_or_else(|| panic!("{today_index} not listed: {storage}"));
    let expected = time::OffsetDateTime::now_utc()
        .date()
        .midnight()
        .assume_utc()
        + time::Duration::days(31);
    let expected = expected
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    assert_eq!(row["delete_at"], expected.as_str(), "{row}");
    assert_eq!(row["docs"], 20, "{row}");
    let other = storage["indices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|row| row["index"] == format!("keep-{}-2019.01.01", setup.topic).as_str());
    assert!(
        other.is_none(),
        "another pattern is not the console's either: {storage}"
    );
    assert!(
        !storage["nodes"].as_array().unwrap().is_empty(),
        "{storage}"
    );
    for name in &kept {
        es("DELETE", name, None);
    }
}

#[test]
fn forever_keeps_everything_and_so_does_a_transfer_without_its_own_templates() {
    for (name, extra) in [
        (
            "forever",
            "retention = \"forever\"\ndlq_retention = \"forever\"\nretention_check_ms = 500",
        ),
        (
            "unmanaged",
            "manage_templates = false\nretention_check_ms = 500",
        ),
    ] {
        let mut setup = TransferSetup::new(name);
        setup.index = "{topic}-%Y.%m.%d".into();
        let dlq_prefix = format!("dlq-{}", setup.topic);
        setup.dlq = format!("{dlq_prefix}-%Y.%m");
        setup.es_extra = extra.into();
        create_topic(&setup.topic);
        let (gone, kept) = old_and_kept(&setup, &dlq_prefix);
        let (_dir, config) = setup.write();
        let transfer = Transfer::start(&config, name);
        produce(&producer(), &setup.topic, &[line_now("web-01", "s", 0)]);
        wait_for_count(
            &format!("{}-{}", setup.topic, today()),
            1,
            INDEXED,
            &[&transfer],
        );
        std::thread::sleep(Duration::from_secs(3));
        for index in gone.iter().chain(&kept) {
            assert!(
                exists(index),
                "{name}: {index} was deleted:\n{}",
                transfer.log()
            );
        }
        assert!(
            transfer.log().contains("no index is ever deleted"),
            "{name}: no warning that the disk will fill:\n{}",
            transfer.log()
        );
        drop(transfer);
        for index in gone.iter().chain(&kept) {
            es("DELETE", index, None);
        }
    }
}

/// Puts the cluster's disk watermarks back to their defaults when dropped.
struct Watermarks;

impl Watermarks {
    fn set(low: &str, high: &str) -> Watermarks {
        let body = format!(
            r#"{{"persistent": {{"cluster.routing.allocation.disk.watermark.low": "{low}",
                "cluster.routing.allocation.disk.watermark.high": "{high}"}}}}"#
        );
        let answer = es("PUT", "_cluster/settings", Some(&body));
        assert_eq!(answer["acknowledged"], true, "{answer}");
        Watermarks
    }
}

impl Drop for Watermarks {
    fn drop(&mut self) {
        es(
            "PUT",
            "_cluster/settings",
            Some(
                r#"{"persistent": {"cluster.routing.allocation.disk.watermark.low": null,
                    "cluster.routing.allocation.disk.watermark.high": null}}"#,
            ),
        );
    }
}

/// Above the high watermark the transfer warns (200, a reason, a gauge) before Elasticsearch
/// would refuse writes. The test servers do not enforce watermarks
/// (`threshold_enabled: false`), so lowering them is safe for every other test.
#[test]
fn above_the_high_watermark_health_warns_and_stays_200() {
    let _marks = Watermarks::set("1%", "2%");
    let mut setup = TransferSetup::new("disk");
    create_topic(&setup.topic);
    let addr = free_addr();
    setup.top_level = format!("metrics_addr = \"{addr}\"");
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    let body = wait_for(Duration::from_secs(30), || {
        http_get(addr, "/health").filter(|(_, body)| body.contains("elasticsearch_disk"))
    });
    let (code, body) = body.unwrap_or_else(|| panic!("no disk warning:\n{}", transfer.log()));
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("above the high watermark"), "{body}");
    assert!(body.contains("\"status\":\"ok\""), "{body}");
    let (_, metrics) = http_get(addr, "/metrics").unwrap();
    assert_eq!(
        sample(
            &metrics,
            "logship_transfer_es_disk_above_high_watermark",
            Some("")
        ),
        Some(1.0),
        "{metrics}"
    );
    let used = sample(&metrics, "logship_transfer_es_disk_used_ratio", Some("")).unwrap();
    assert!(used > 0.02 && used <= 1.0, "{used}");
}

/// A topic Kafka keeps longer (7 days, the broker default) than the indices (1 hour) is named
/// at start: a replay from its oldest records would recreate deleted indices.
#[test]
fn a_topic_kept_longer_than_its_indices_is_warned_about_at_start() {
    let mut setup = TransferSetup::new("outlives");
    setup.es_extra = "retention = \"1h\"".into();
    create_topic(&setup.topic);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");
    let warned = wait_for(Duration::from_secs(30), || {
        transfer
            .log()
            .contains("Kafka keeps this topic's records longer")
            .then_some(())
    });
    assert!(warned.is_some(), "{}", transfer.log());
    assert!(
        transfer.log().contains("kafka_retention=7days"),
        "{}",
        transfer.log()
    );
}

/// A transfer serving hundreds of topics: its template's `_meta` names every one, and the
/// storage view must still answer (listing them all in one `_cat/indices/…` path passed
/// Elasticsearch's 4 KB request line), and list the one index of them that exists with the date
/// it goes.
#[test]
fn the_storage_view_answers_for_a_transfer_with_hundreds_of_topics() {
    let prefix = common::unique("many").to_lowercase();
    let topics: Vec<String> = (0..300)
        .map(|n| format!("{prefix}-service-number-{n:03}-application-log"))
        .collect();
    let template = format!("logship-data-{prefix}");
    let body = serde_json::json!({
        "index_patterns": [format!("{prefix}-service-number-*")],
        "priority": 201,
        "_meta": { "index": "{topic}-%Y.%m.%d", "topics": topics, "retention": "30d" },
    });
    let put = es(
        "PUT",
        &format!("_index_template/{template}"),
        Some(&body.to_string()),
    );
    assert_eq!(put["acknowledged"], true, "{put}");
    let index = format!("{}-{}", topics[7], today());
    create_index(&index);
    let console_dir = tempfile::tempdir().unwrap();
    let console = common::console::Console::start(
        console_dir.path(),
        &common::es_url(),
        &format!("{prefix}-*"),
    );
    let (code, storage) = console.get("/api/storage");
    es("DELETE", &format!("_index_template/{template}"), None);
    es("DELETE", &index, None);
    assert_eq!(code, 200, "{storage}\n{}", console.log());
    let rows: Vec<&serde_json::Value> = storage["indices"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|row| {
            row["index"]
                .as_str()
                .is_some_and(|name| name.starts_with(&prefix))
        })
        .collect();
    assert_eq!(rows.len(), 1, "{storage}");
    assert_eq!(rows[0]["index"], index.as_str());
    assert!(
        rows[0]["delete_at"].is_string(),
        "the template's retention applies: {}",
        rows[0]
    );
}
