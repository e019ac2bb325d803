//! Kafka stopped under load: the agent keeps reading into its WAL, waits, and ships everything
//! once the broker is back; its `/health` says so meanwhile. (Alone in its own test binary: it
//! stops the shared broker.)
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::time::Duration;

use common::agent::*;
use common::ops::{free_addr, http_get};
use common::{unique, wait_for, Outage};

/// Waits for `/health` to answer `code`; returns the body.
fn health_turns(addr: std::net::SocketAddr, code: u16, timeout: Duration) -> Option<String> {
    wait_for(timeout, || {
        http_get(addr, "/health").and_then(|(got, body)| (got == code).then_some(body))
    })
}

#[test]
fn kafka_down_for_a_while_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    let topic = unique("agent-outage");
    // A small WAL, so the outage fills it and the reader must stop (backpressure), not drop.
    let addr = free_addr();
    let config = write_config(
        dir.path(),
        &format!("{}/*.log", logs.display()),
        &topic,
        &format!("wal_max_bytes = 65536\nmetrics_addr = \"{addr}\"\nhealth_grace_ms = 2000"),
    );
    let path = logs.join("busy.log");
    let mut expected = lines("before", 0, 1000);
    append_lines(&path, &expected);
    let agent = AgentProcess::start(&config);
    let mut reader = TopicReader::new(&topic);
    assert!(
        reader
            .wait_for_messages(&expected, Duration::from_secs(300))
            .is_empty(),
        "{}",
        agent.log()
    );

    assert!(
        health_turns(addr, 200, Duration::from_secs(60)).is_some(),
        "{}",
        agent.log()
    );

    let outage = Outage::begin("kafka");
    for round in 0..20 {
        let batch = lines("during", round * 500, 500);
        append_lines(&path, &batch);
        expected.extend(batch);
        std::thread::sleep(Duration::from_millis(250));
    }
    // Rotate during the outage too: the renamed file must be drained from the WAL, not lost.
    std::fs::rename(&path, logs.join("busy.log.1")).unwrap();
    let batch = lines("after-rotate", 0, 500);
    append_lines(&path, &batch);
    expected.extend(batch);
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        agent.log().contains("WAL full"),
        "the reader never paused on a full WAL:\n{}",
        agent.log()
    );
    let unhealthy = health_turns(addr, 503, Duration::from_secs(60))
        .unwrap_or_else(|| panic!("/health stayed 200 with Kafka down:\n{}", agent.log()));
    assert!(unhealthy.contains("kafka"), "{unhealthy}");
    assert!(unhealthy.contains("WAL full"), "{unhealthy}");
    outage.end();

    let mut reader = TopicReader::new(&topic);
    let missing = reader.wait_for_messages(&expected, Duration::from_secs(300));
    assert!(
        missing.is_empty(),
        "{} lines missing, e.g. {:?}\n{}",
        missing.len(),
        missing.first(),
        agent.log()
    );
    assert_duplicates_share_ids(&reader.records);
    let healthy = health_turns(addr, 200, Duration::from_secs(60));
    assert!(healthy.is_some(), "/health still failing:\n{}", agent.log());
}
