//! Host metrics exactly once through crashes and an InfluxDB outage: the agent and the
//! transfer are killed with SIGKILL while sampling and writing, InfluxDB is stopped for
//! 30 s, and afterwards every series holds every sample the agent committed, none twice.
//!
//! Both APIs: InfluxDB 1.x's `/write` and the v2 API (`/api/v2/write` with a token, served by
//! InfluxDB 1.8 as `influxdb2`); each test stops its own server.
//!
//! Its own test binary: it stops the shared InfluxDB servers, which other tests use.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::time::Duration;

use common::agent::AgentProcess;
use common::influx::*;
use common::{ops, wait_for, Outage};
use transfer_support::{create_topic, end_offsets, Transfer};

fn agent_config(dir: &Path, name: &str, host: &str, topic: &str, sampling: bool) -> PathBuf {
    let path = dir.join(format!("{name}.toml"));
    let metrics = if sampling {
        format!("[host_metrics]\ninterval_ms = 500\ntopic = \"{topic}\"\n")
    } else {
        String::new()
    };
    std::fs::write(
        &path,
        format!(
            "host = \"{host}\"\ndata_dir = \"{}\"\nmetrics_addr = \"{}\"\n\
             [kafka]\nbrokers = \"{}\"\n{metrics}",
            dir.join("data").display(),
            ops::free_addr(),
            common::kafka_brokers()
        ),
    )
    .unwrap();
    path
}

fn metrics_addr(config: &Path) -> std::net::SocketAddr {
    let text = std::fs::read_to_string(config).unwrap();
    text.lines()
        .find_map(|l| l.strip_prefix("metrics_addr = \""))
        .and_then(|rest| rest.strip_suffix('"'))
        .unwrap()
        .parse()
        .unwrap()
}

/// The agent's `name` metric, if its endpoint answers.
fn agent_metric(config: &Path, name: &str) -> Option<f64> {
    let (_, text) = ops::http_get(metrics_addr(config), "/metrics")?;
    ops::sample(&text, name, None)
}

/// Timestamps (ns) of the `mem` points of `host` in `lines` of line protocol.
fn mem_times(payload: &str, host: &str) -> Vec<i64> {
    let prefix = format!("mem,host={host} ");
    payload
        .lines()
        .filter(|l| l.starts_with(&prefix))
        .filter_map(|l| l.rsplit(' ').next()?.parse().ok())
        .collect()
}

#[test]
fn sigkill_and_an_influxdb_outage_neither_lose_nor_double_a_sample() {
    survives_sigkill_and_an_outage(&Server::v1());
}

/// The same through the v2 API: `/api/v2/write?org=&bucket=` with a token from a file.
/// InfluxDB 1.8 has no buckets API: the transfer says once that it cannot create the bucket
/// (404) and writes into the database the test made.
#[test]
fn sigkill_and_an_influxdb_outage_through_the_v2_api_neither_lose_nor_double_a_sample() {
    survives_sigkill_and_an_outage(&Server::v2());
}

fn survives_sigkill_and_an_outage(server: &Server) {
    let dir = tempfile::tempdir().unwrap();
    let host = common::unique("crash-host");
    let topic = common::unique("crash-metrics");
    let group = common::unique("crash-group");
    let db = common::unique("crash_db").replace('-', "_");
    create_topic(&topic);
    let v2 = server.token.is_some();
    if v2 {
        server.create_database(&db);
    }
    let transfer_config = dir.path().join("transfer.toml");
    std::fs::write(
        &transfer_config,
        format!(
            "[kafka]\nbrokers = \"{}\"\ngroup = \"{group}\"\ntopics = [\"{topic}\"]\n\
             commit_interval_ms = 200\n[batch]\nmax_wait_ms = 200\n\
             [retry]\ninitial_backoff_ms = 100\nmax_backoff_ms = 1000\n{}",
            common::kafka_brokers(),
            server.table(&db, dir.path())
        ),
    )
    .unwrap();
    let count = |measurement: &str, field: &str, extra: &str| -> f64 {
        let answer = server.query(
            &db,
            &format!("SELECT count({field}) FROM {measurement} WHERE host = '{host}'{extra}"),
        );
        answer["results"][0]["series"][0]["values"][0][1]
            .as_f64()
            .unwrap_or(0.0)
    };

    let first_agent = agent_config(dir.path(), "agent1", &host, &topic, true);
    let agent = AgentProcess::start(&first_agent);
    let transfer = Transfer::start(&transfer_config, "transfer1");
    let written = wait_for(Duration::from_secs(60), || {
        (count("mem", "total", "") >= 3.0).then_some(())
    });
    assert!(written.is_some(), "no points\n{}", transfer.log());

    // InfluxDB goes away for 30 s while the transfer writes and the agent samples.
    let outage = Outage::begin(server.service);
    let away = std::time::Instant::now();
    std::thread::sleep(Duration::from_secs(3));
    let first_committed = agent_metric(&first_agent, "logship_agent_metrics_samples_total")
        .expect("the first agent counts its samples");
    agent.kill9();
    let second_agent = agent_config(dir.path(), "agent2", &host, &topic, true);
    let agent = AgentProcess::start(&second_agent);
    std::thread::sleep(Duration::from_secs(3));
    let retried = transfer.log();
    transfer.kill9();
    // A new transfer starts while InfluxDB is still away: it waits, then goes on.
    let transfer = Transfer::start(&transfer_config, "transfer2");
    std::thread::sleep(Duration::from_secs(30).saturating_sub(away.elapsed()));
    outage.end();
    std::thread::sleep(Duration::from_secs(3));
    let second_committed = agent_metric(&second_agent, "logship_agent_metrics_samples_total")
        .expect("the second agent counts its samples");
    transfer.kill9();
    let transfer = Transfer::start(&transfer_config, "transfer3");
    std::thread::sleep(Duration::from_secs(2));
    assert!(agent.terminate(), "the second agent stops cleanly");

    // A last agent without sampling ships what is left in the WAL.
    let drain = agent_config(dir.path(), "agent3", &host, &topic, false);
    let agent = AgentProcess::start(&drain);
    let drained = wait_for(Duration::from_secs(60), || {
        (agent_metric(&drain, "logship_wal_pending_records")? == 0.0).then_some(())
    });
    assert!(drained.is_some(), "WAL not drained\n{}", agent.log());

    // Every round in Kafka (the agent's WAL delivers each at least once; a replay after
    // SIGKILL may have sent some twice), by its sampling time.
    let total: i64 = end_offsets(&topic).iter().sum();
    let records = read_topic(&topic, |records| records.len() as i64 >= total);
    assert_eq!(records.len() as i64, total);
    let sent: Vec<i64> = records
        .iter()
        .flat_map(|r| mem_times(&r.payload, &host))
        .collect();
    let rounds: BTreeSet<i64> = sent.iter().copied().collect();
    eprintln!(
        "{} rounds, {} records in Kafka ({} resent after SIGKILL); agents counted {first_committed} + {second_committed} before stopping",
        rounds.len(),
        sent.len(),
        sent.len() - rounds.len()
    );
    assert!(
        rounds.len() as f64 >= first_committed + second_committed,
        "every round the agents counted as committed reached Kafka"
    );
    let caught_up = wait_for(Duration::from_secs(120), || {
        (count("mem", "total", "") as usize == rounds.len()).then_some(())
    });
    assert!(
        caught_up.is_some(),
        "InfluxDB holds {} mem points for {} rounds\n{}",
        count("mem", "total", ""),
        rounds.len(),
        transfer.log()
    );
    let times: BTreeSet<i64> =
        rows(&server.query(&db, &format!("SELECT total FROM mem WHERE host = '{host}'")))
            .iter()
            .filter_map(|row| row[0].as_i64())
            .collect();
    assert_eq!(times, rounds, "the same samples, at their sampling times");
    let n = rounds.len() as f64;
    for (measurement, field, extra) in [
        ("system", "load1", ""),
        ("processes", "total", ""),
        ("swap", "total", ""),
        ("disk", "total", " AND path = '/'"),
    ] {
        assert_eq!(
            count(measurement, field, extra),
            n,
            "{measurement}.{field}{extra}: one point per round"
        );
    }
    assert!(
        retried.contains("points not accepted by InfluxDB yet"),
        "the first transfer retried during the outage:\n{retried}"
    );
    if v2 {
        let written = format!("POST /api/v2/write?org=logship&bucket={db}%2Fautogen&precision=ns ");
        assert!(
            server.access_log().contains(&written),
            "the points went to the v2 endpoint: no {written:?} in the server's access log"
        );
        let said = retried
            .matches("cannot create the InfluxDB database or bucket")
            .count();
        assert_eq!(said, 1, "the missing buckets API is said once:\n{retried}");
        assert!(retried.contains("no buckets API (404"), "{retried}");
    }
    assert!(agent.terminate());
    transfer.terminate(Duration::from_secs(30));
    server.drop_database(&db);
}
