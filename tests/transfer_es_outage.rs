//! The transfer while Elasticsearch is stopped and started again under load. Alone in its file
//! (its own test binary) because it stops a shared server.

mod common;
mod transfer_support;

use std::time::Duration;

use common::Outage;
use transfer_support::*;

#[test]
fn elasticsearch_stopped_and_restarted_under_load_loses_nothing() {
    let mut setup = TransferSetup::new("xfer-esdown");
    setup.max_docs = 50;
    setup.max_wait_ms = 50;
    create_topic(&setup.topic);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "t1");

    let chunks = 24u64;
    let topic = setup.topic.clone();
    let producing = std::thread::spawn(move || {
        let producer = producer();
        for chunk in 0..chunks {
            let lines: Vec<Produce> = (chunk * 100..(chunk + 1) * 100)
                .map(|n| line("web-05", &format!("s{}", n % 6), n))
                .collect();
            produce(&producer, &topic, &lines);
            std::thread::sleep(Duration::from_millis(500));
        }
    });

    let indexing = common::wait_for(Duration::from_secs(30), || {
        (count(&setup.index) >= 200).then_some(())
    });
    assert!(
        indexing.is_some(),
        "nothing indexed before the outage:\n{}",
        transfer.log()
    );
    let outage = Outage::begin("elasticsearch");
    // Records keep arriving while Elasticsearch is away; the bulk slots fill up and, after 2 s
    // of that, the transfer pauses its partitions (and keeps polling).
    std::thread::sleep(Duration::from_secs(8));
    assert!(
        transfer.running(),
        "the transfer died during the outage:\n{}",
        transfer.log()
    );
    outage.end();

    producing.join().expect("producer thread");
    let total = chunks * 100;
    wait_for_count(&setup.index, total, Duration::from_secs(120), &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), total as usize);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(20));
    let log = transfer.log();
    assert!(
        log.contains("retrying"),
        "the outage was not noticed:\n{log}"
    );
    let status = transfer.terminate(Duration::from_secs(20));
    assert!(status.success(), "exit status {status:?}");
}
