//! The transfer while Elasticsearch is stopped and started again under load; its `/health`
//! says so meanwhile, and a console over the same index answers 503 saying so, then searches
//! again without a restart. Alone in its file (its own test binary) because it stops a shared
//! server.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::Duration;

use common::console::Console;
use common::ops::{free_addr, http_get};
use common::{es_url, wait_for, Outage};
use transfer_support::*;

/// Waits for `/health` to answer `code`; returns the body.
fn health_turns(addr: std::net::SocketAddr, code: u16, timeout: Duration) -> Option<String> {
    wait_for(timeout, || {
        http_get(addr, "/health").and_then(|(got, body)| (got == code).then_some(body))
    })
}

#[test]
fn elasticsearch_stopped_and_restarted_under_load_loses_nothing() {
    let mut setup = TransferSetup::new("xfer-esdown");
    setup.max_docs = 50;
    setup.max_wait_ms = 50;
    setup.top_level = "health_grace_ms = 2000".into();
    create_topic(&setup.topic);
    let (_dir, config) = setup.write();
    // The endpoint from the command line only: the config file has no `metrics_addr`.
    let addr = free_addr();
    let transfer = Transfer::start_with_args(&config, "t1", &["--metrics-addr", &addr.to_string()]);

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
    assert!(
        health_turns(addr, 200, Duration::from_secs(30)).is_some(),
        "/health (from --metrics-addr) not 200 while indexing:\n{}",
        transfer.log()
    );
    let console_dir = tempfile::tempdir().unwrap();
    let console = Console::start(console_dir.path(), &es_url(), &setup.index);
    // The test records are stamped 2026-01-02.
    let search = "/api/search?q=line&from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z&size=1";
    let (code, answer) = console.get(search);
    assert_eq!(code, 200, "{answer}");
    let outage = Outage::begin("elasticsearch");
    let outage_started = std::time::Instant::now();
    // The console: 503 saying Elasticsearch is unreachable, for the API; the page still loads.
    let (code, answer) = console.get(search);
    assert_eq!(code, 503, "{answer}");
    assert!(
        answer["error"]
            .as_str()
            .unwrap_or("")
            .contains("unreachable"),
        "{answer}"
    );
    assert_eq!(http_get(console.addr, "/").map(|(code, _)| code), Some(200));
    // Records keep arriving while Elasticsearch is away; the bulk slots fill up and, after 2 s
    // of that, the transfer pauses its partitions (and keeps polling). Failing bulks for longer
    // than the 2 s grace turn `/health` to 503.
    let unhealthy = health_turns(addr, 503, Duration::from_secs(60)).unwrap_or_else(|| {
        panic!(
            "/health stayed 200 with Elasticsearch down:\n{}",
            transfer.log()
        )
    });
    assert!(unhealthy.contains("elasticsearch"), "{unhealthy}");
    if let Some(rest) = Duration::from_secs(8).checked_sub(outage_started.elapsed()) {
        std::thread::sleep(rest);
    }
    assert!(
        transfer.running(),
        "the transfer died during the outage:\n{}",
        transfer.log()
    );
    outage.end();
    assert!(
        health_turns(addr, 200, Duration::from_secs(120)).is_some(),
        "/health still failing after Elasticsearch came back:\n{}",
        transfer.log()
    );

    // The console searches again, without a restart.
    let (code, answer) = console.get(search);
    assert_eq!(code, 200, "{answer}\n{}", console.log());
    assert!(answer["total"].as_u64().unwrap_or(0) > 0, "{answer}");

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
