//! The transfer while Kafka is stopped and started again. Alone in its file (its own test
//! binary) because it stops a shared server.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::{Duration, Instant};

use common::Outage;
use transfer_support::*;

#[test]
fn kafka_outage_the_transfer_waits_resumes_and_can_still_stop() {
    let waiting = TransferSetup::new("xfer-kdown");
    // A second transfer (own group and index) on the same topic, stopped during the outage.
    let mut stopping = TransferSetup::new("xfer-kdown-stop");
    stopping.topic = waiting.topic.clone();
    create_topic(&waiting.topic);
    let (_dir_a, config_a) = waiting.write();
    let (_dir_b, config_b) = stopping.write();
    let a = Transfer::start(&config_a, "waiting");
    let b = Transfer::start(&config_b, "stopping");

    let producer = producer();
    let first: Vec<Produce> = (0..500)
        .map(|n| line("web-06", &format!("s{}", n % 4), n))
        .collect();
    produce(&producer, &waiting.topic, &first);
    wait_for_count(&waiting.index, 500, Duration::from_secs(60), &[&a]);
    wait_for_count(&stopping.index, 500, Duration::from_secs(60), &[&b]);
    wait_for_commits_at_end(&waiting.group, &waiting.topic, Duration::from_secs(20));
    drop(producer);

    let outage = Outage::begin("kafka");
    std::thread::sleep(Duration::from_secs(3));
    // SIGTERM while Kafka is away: the final commit cannot land, the exit must still come.
    let asked = Instant::now();
    let status = b.terminate(Duration::from_secs(40));
    assert!(status.success(), "exit status {status:?}");
    assert!(asked.elapsed() < Duration::from_secs(30));
    assert!(
        a.running(),
        "the transfer died while Kafka was down:\n{}",
        a.log()
    );
    outage.end();

    let producer = transfer_support::producer();
    let second: Vec<Produce> = (500..1000)
        .map(|n| line("web-06", &format!("s{}", n % 4), n))
        .collect();
    produce(&producer, &waiting.topic, &second);
    wait_for_count(&waiting.index, 1000, Duration::from_secs(120), &[&a]);
    assert_eq!(assert_no_duplicate_messages(&waiting.index), 1000);
    wait_for_commits_at_end(&waiting.group, &waiting.topic, Duration::from_secs(30));
    assert!(a.terminate(Duration::from_secs(20)).success());
}
