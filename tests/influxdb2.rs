//! `[influxdb] api = "v2"` against a real server speaking InfluxDB 2's API: `influxdb2` of
//! `scripts/services.sh`, InfluxDB 1.8 with authentication on, which serves `/api/v2/write`
//! (`bucket` = `database/retention_policy`, `Authorization: Token user:password`) and `/query`
//! as 2.x's v1 compatibility endpoint. What this proves and what not: docs/design.md, "Host metrics".
//!
//! The transfer with a wrong token says so on `/health` and commits nothing; the right token
//! written to its file is picked up without a restart and every point lands once; a bucket that
//! does not exist yet is a 404 named there too, retried until it exists. The console
//! charts a host from the same server. (The outage test is in tests/metrics_outage.rs, the
//! dead-letter test in tests/host_metrics.rs, both for either API.)
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::time::Duration;

use common::influx::*;
use common::ops::{free_addr, http_get};
use common::wait_for;
use transfer_support::{
    committed, create_topic, produce_probe_records, producer, wait_for_commits_at_end, Transfer,
};

fn count(server: &Server, db: &str, measurement: &str) -> u64 {
    let answer = server.query(db, &format!("SELECT count(value) FROM \"{measurement}\""));
    answer["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

/// A metrics-only transfer of `group` on `topic` into the table `influxdb`, its `/health` on
/// `health` (a failure said after 500 ms), retrying every second at most.
fn transfer_config(
    dir: &std::path::Path,
    health: std::net::SocketAddr,
    group: &str,
    topic: &str,
    influxdb: &str,
) -> std::path::PathBuf {
    let config = dir.join("transfer.toml");
    std::fs::write(
        &config,
        format!(
            "metrics_addr = \"{health}\"\nhealth_grace_ms = 500\n\
             [kafka]\nbrokers = \"{}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n\
             commit_interval_ms = 200\n[batch]\nmax_wait_ms = 200\n\
             [retry]\ninitial_backoff_ms = 100\nmax_backoff_ms = 1000\n{influxdb}",
            common::kafka_brokers()
        ),
    )
    .unwrap();
    config
}

/// Asserts that `group` committed nothing on `topic` (a new topic: a commit at 0 says none is
/// done).
fn assert_nothing_committed(group: &str, topic: &str, transfer: &Transfer) {
    let offsets = committed(group, topic);
    assert!(
        offsets.iter().all(|offset| offset.unwrap_or(0) == 0),
        "nothing committed past an unwritten point: {offsets:?}\n{}",
        transfer.log()
    );
}

#[test]
fn a_wrong_token_is_named_on_health_and_commits_nothing_until_the_right_one_is_in_its_file() {
    let server = Server::v2();
    let dir = tempfile::tempdir().unwrap();
    let db = common::unique("token_db").replace('-', "_");
    server.create_database(&db);
    let topic = common::unique("token-metrics");
    let group = common::unique("token-group");
    let measurement = common::unique("token_probe").replace('-', "_");
    create_topic(&topic);
    produce_probe_records(&producer(), &topic, &measurement, 3);
    let health = free_addr();
    let table = server.table(&db, dir.path());
    let token_file = server.token_file(dir.path(), "admin:not-the-password");
    let config = transfer_config(dir.path(), health, &group, &topic, &table);
    let transfer = Transfer::start(&config, "v2-token");

    let (_, body) = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health").filter(|(status, body)| *status == 503 && body.contains("401"))
    })
    .unwrap_or_else(|| {
        panic!(
            "/health never said 503 with the 401: {:?}\n{}",
            http_get(health, "/health"),
            transfer.log()
        )
    });
    assert!(body.contains("influxdb"), "{body}");
    assert!(body.contains(&server.url), "the endpoint is named: {body}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&server, &db, &measurement), 0);
    assert_nothing_committed(&group, &topic, &transfer);

    // The right token, written over the file: no signal, no restart.
    std::fs::write(&token_file, format!("{}\n", influxdb2_token())).unwrap();
    let written = wait_for(Duration::from_secs(60), || {
        (count(&server, &db, &measurement) == 6).then_some(())
    });
    assert!(
        written.is_some(),
        "6 points not written\n{}",
        transfer.log()
    );
    wait_for_commits_at_end(&group, &topic, Duration::from_secs(30));
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(30));
    assert!(
        healthy.is_some(),
        "/health did not recover\n{}",
        transfer.log()
    );
    assert_eq!(count(&server, &db, &measurement), 6, "each point once");
    let v2_write = format!("POST /api/v2/write?org=logship&bucket={db}%2Fautogen&precision=ns ");
    let access = server.access_log();
    for status in ["401", "204"] {
        assert!(
            access
                .lines()
                .any(|line| line.contains(&v2_write) && line.contains(&format!("\" {status} "))),
            "no {v2_write:?} answered {status} in the server's access log"
        );
    }
    let log = transfer.log();
    assert!(
        log.contains("InfluxDB CA and password or token read again"),
        "the token file's change was the reload:\n{log}"
    );
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    let secret = influxdb2_token();
    let password = secret.split_once(':').map(|(_, p)| p).unwrap_or(&secret);
    for token in [password, "not-the-password"] {
        assert!(!log.contains(token), "a token appears in the log:\n{log}");
        assert!(!body.contains(token), "a token appears on /health: {body}");
    }
    server.drop_database(&db);
}

#[test]
fn the_console_charts_a_host_from_the_v2_api_server() {
    let server = Server::v2();
    let db = common::unique("chart_db").replace('-', "_");
    server.create_database(&db);
    let host = common::unique("v2-chart");
    server.write(&db, &chart_points(&host, true));
    let launch = |dir: &std::path::Path, token: Option<&str>| {
        let table = server.table(&db, dir);
        if let Some(token) = token {
            server.token_file(dir, token);
        }
        common::console::Console::launch(dir, |addr| {
            format!(
                "listen = \"{addr}\"\n[elasticsearch]\nurl = \"{}\"\nindex_pattern = \"logs-none-*\"\n{table}",
                common::es_url(),
            )
        })
    };
    let dir = tempfile::tempdir().unwrap();
    let console = launch(dir.path(), None);
    assert_charts_cpu(&console, &host);
    let (code, fleet) = console.get("/api/fleet");
    assert_eq!(code, 200, "{fleet}");
    assert!(fleet["problems"]["influxdb"].is_null(), "{fleet}");
    let listed = fleet["hosts"].as_array().is_some_and(|hosts| {
        hosts
            .iter()
            .any(|h| h["host"] == host && h["metrics"] == true)
    });
    assert!(listed, "the host is listed with metrics: {fleet}");

    // A console with a wrong token names InfluxDB's refusal instead of charting nothing.
    let wrong_dir = tempfile::tempdir().unwrap();
    let refused = launch(wrong_dir.path(), Some("admin:not-the-password"));
    assert_chart_refused(&refused, &host);
    server.drop_database(&db);
}

/// A bucket that does not exist yet (404 "database not found" from 1.8's v2 endpoint): the
/// transfer says so on `/health` and retries, commits nothing, and writes every point once the
/// bucket is made, without a restart.
#[test]
fn a_missing_bucket_is_named_on_health_and_retried_until_it_exists() {
    let server = Server::v2();
    let dir = tempfile::tempdir().unwrap();
    let db = common::unique("late_db").replace('-', "_");
    let topic = common::unique("late-metrics");
    let group = common::unique("late-group");
    let measurement = common::unique("late_probe").replace('-', "_");
    create_topic(&topic);
    produce_probe_records(&producer(), &topic, &measurement, 2);
    let health = free_addr();
    let config = transfer_config(
        dir.path(),
        health,
        &group,
        &topic,
        &server.table(&db, dir.path()),
    );
    let transfer = Transfer::start(&config, "v2-late");
    let named = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("404") && body.contains(&db))
    });
    assert!(
        named.is_some(),
        "/health never named the 404: {:?}\n{}",
        http_get(health, "/health"),
        transfer.log()
    );
    assert_nothing_committed(&group, &topic, &transfer);
    server.create_database(&db);
    let written = wait_for(Duration::from_secs(60), || {
        (count(&server, &db, &measurement) == 4).then_some(())
    });
    assert!(
        written.is_some(),
        "4 points not written\n{}",
        transfer.log()
    );
    wait_for_commits_at_end(&group, &topic, Duration::from_secs(30));
    assert!(
        common::ops::wait_200(health, "/health", Duration::from_secs(30)).is_some(),
        "/health did not recover\n{}",
        transfer.log()
    );
    assert_eq!(count(&server, &db, &measurement), 4, "each point once");
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    server.drop_database(&db);
}
