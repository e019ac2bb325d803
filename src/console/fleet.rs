//! The fleet pages' API: `/api/fleet` (every host, alive or not), `/api/hosts/{host}/metrics`
//! (its charts' series) and `/api/pipeline` (where the lines are: agents' bytes behind and WAL
//! depth, the transfer group's lag, documents per index).
//!
//! Each source is optional and asked on its own: etcd (`[etcd]`: the registry of live agents
//! and the hosts with collect entries), InfluxDB (`[influxdb]`: hosts that sent metrics, their
//! series), Kafka (`[kafka]`: the transfer group's committed offsets against the end offsets;
//! the console never joins the group) and Elasticsearch (documents and size per index). An
//! unconfigured source is named in `missing` with what to configure; one that fails is named
//! in `problems` with its error, and the rest of the answer still comes.
//!
//! Alive means the host's leased registry key exists. A host seen alive by this console and
//! gone since is still listed (dead, with its last registration), as are hosts known only from
//! their collect entries or their metrics.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::Response;
use etcd_client::GetOptions;
use rdkafka::consumer::BaseConsumer;

use serde::Deserialize;
use serde_json::{json, Value};

use super::collect::CentralStore;
use super::Console;
use crate::config::ConsoleKafkaConfig;
use crate::etcd::registry::Registration;
use crate::etcd::{registry_prefix, retried, within, CONSOLE_PATIENCE};
use crate::influx::{quote_string, SharedInflux};
use crate::sync::lock;

/// How long one Kafka metadata or offsets request may take.
const KAFKA_TIMEOUT: Duration = Duration::from_secs(5);

/// What the fleet pages read, besides Elasticsearch and etcd (in [`Console`]).
pub(crate) struct Fleet {
    /// InfluxDB, with `[influxdb]`.
    pub influx: Option<SharedInflux>,
    /// Kafka and the transfer group, with `[kafka]`.
    pub kafka: Option<ConsoleKafkaConfig>,
    /// One Kafka client, made at the first lag request and kept (dropped after a failure so the
    /// next request makes a new one); held by the one lag request under way.
    lag_client: Arc<tokio::sync::Mutex<Option<Arc<BaseConsumer>>>>,
    /// The last registration of every host this console saw alive.
    seen: Mutex<BTreeMap<String, Registration>>,
}

impl Fleet {
    /// Reads `influx` and `kafka` when asked.
    pub fn new(influx: Option<SharedInflux>, kafka: Option<ConsoleKafkaConfig>) -> Fleet {
        Fleet {
            influx,
            kafka,
            lag_client: Arc::new(tokio::sync::Mutex::new(None)),
            seen: Mutex::new(BTreeMap::new()),
        }
    }
}

/// How long one lag request may take in all.
const LAG_DEADLINE: Duration = Duration::from_secs(15);

/// One host as the fleet pages show it.
#[derive(Debug, Default)]
struct Host {
    alive: bool,
    registration: Option<Registration>,
    collect: bool,
    metrics: bool,
}

/// Every known host; `problems` and `missing` say which sources could not be asked.
async fn hosts(
    console: &Console,
    problems: &mut BTreeMap<&'static str, String>,
    missing: &mut BTreeMap<&'static str, &'static str>,
) -> BTreeMap<String, Host> {
    let mut hosts: BTreeMap<String, Host> = BTreeMap::new();
    let (etcd, influx) = tokio::join!(
        async {
            match console.central.as_deref() {
                Some(store) => Some(etcd_hosts(store).await),
                None => None,
            }
        },
        async {
            match &console.fleet.influx {
                Some(influx) => Some(metrics_hosts(influx).await),
                None => None,
            }
        }
    );
    match etcd {
        Some(Ok((registry, collect))) => {
            let mut seen = lock(&console.fleet.seen);
            for (host, registration) in registry {
                seen.insert(host.clone(), registration.clone());
                let entry = hosts.entry(host).or_default();
                entry.alive = true;
                entry.registration = Some(registration);
            }
            for (host, registration) in seen.iter() {
                let entry = hosts.entry(host.clone()).or_default();
                if !entry.alive {
                    entry.registration = Some(registration.clone());
                }
            }
            for host in collect {
                hosts.entry(host).or_default().collect = true;
            }
        }
        Some(Err(error)) => {
            problems.insert("etcd", error);
        }
        None => {
            missing.insert(
                "etcd",
                "add [etcd] (endpoints, prefix) to list the agents and their collect entries",
            );
        }
    }
    match influx {
        Some(Ok(names)) => {
            for host in names {
                hosts.entry(host).or_default().metrics = true;
            }
        }
        Some(Err(error)) => {
            problems.insert("influxdb", error);
        }
        None => {
            missing.insert(
                "influxdb",
                "add [influxdb] (url and database, or api = \"v2\" with org, bucket and token_file) to list the hosts that send metrics and chart them",
            );
        }
    }
    hosts
}

/// The registry (host → registration) and the hosts with collect entries.
async fn etcd_hosts(
    store: &CentralStore,
) -> Result<(BTreeMap<String, Registration>, BTreeSet<String>), String> {
    let registry_key = registry_prefix(&store.prefix);
    let agents_key = format!("{}/agents/", store.prefix);
    // Retried on other members for a while: a page asked during a leader election (about a
    // second) is answered once the new leader serves, not with "no leader".
    let (registry, agents) = retried(&store.access, CONSOLE_PATIENCE, |mut client| {
        let (registry_key, agents_key) = (registry_key.clone(), agents_key.clone());
        async move {
            let registry = within(
                "get",
                client.get(registry_key.as_str(), Some(GetOptions::new().with_prefix())),
            )
            .await?;
            let agents = within(
                "get",
                client.get(
                    agents_key.as_str(),
                    Some(GetOptions::new().with_prefix().with_keys_only()),
                ),
            )
            .await?;
            Ok((registry, agents))
        }
    })
    .await
    .map_err(|e| e.to_string())?;
    let mut alive = BTreeMap::new();
    for kv in registry.kvs() {
        let key = String::from_utf8_lossy(kv.key());
        let Some(host) = key.strip_prefix(&registry_key) else {
            continue;
        };
        // A value this console cannot read still means the host is alive.
        let registration =
            serde_json::from_slice::<Registration>(kv.value()).unwrap_or_else(|_| Registration {
                version: "?".into(),
                started_at: String::new(),
                heartbeat_at: String::new(),
                files: 0,
                progress: None,
            });
        alive.insert(host.to_string(), registration);
    }
    let collect = agents
        .kvs()
        .iter()
        .filter_map(|kv| {
            let key = String::from_utf8_lossy(kv.key());
            let host = key.strip_prefix(&agents_key)?.strip_suffix("/collect")?;
            (!host.is_empty()).then(|| host.to_string())
        })
        .collect();
    Ok((alive, collect))
}

/// The hosts with metrics (the `host` tag of `system`).
async fn metrics_hosts(influx: &SharedInflux) -> Result<Vec<String>, String> {
    let results = influx
        .get()
        .query("SHOW TAG VALUES FROM \"system\" WITH KEY = \"host\"")
        .await
        .map_err(|e| e.to_string())?;
    Ok(rows(&results[0])
        .into_iter()
        .filter_map(|row| row.get(1).and_then(Value::as_str).map(String::from))
        .collect())
}

/// The rows of every series of one statement's result.
fn rows(result: &Value) -> Vec<Vec<Value>> {
    result["series"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|series| series["values"].as_array().cloned().unwrap_or_default())
        .filter_map(|row| row.as_array().cloned())
        .collect()
}

fn host_json(name: &str, host: &Host) -> Value {
    let registration = host.registration.as_ref();
    json!({
        "host": name,
        "alive": host.alive,
        "version": registration.map(|r| r.version.as_str()),
        "started_at": registration.map(|r| r.started_at.as_str()),
        "heartbeat_at": registration.map(|r| r.heartbeat_at.as_str()),
        "files": registration.map(|r| r.files),
        "progress": registration.and_then(|r| r.progress.as_ref()),
        "collect": host.collect,
        "metrics": host.metrics,
    })
}

/// `GET /api/fleet`: every known host.
pub async fn fleet(State(console): State<Console>) -> Response {
    let (mut problems, mut missing) = (BTreeMap::new(), BTreeMap::new());
    let hosts = hosts(&console, &mut problems, &mut missing).await;
    let list: Vec<Value> = hosts.iter().map(|(n, h)| host_json(n, h)).collect();
    super::json_response(
        StatusCode::OK,
        &json!({ "hosts": list, "problems": problems, "missing": missing }),
    )
}

/// Parameters of `/api/hosts/{host}/metrics`.
#[derive(Debug, Deserialize)]
pub struct MetricsParams {
    range: Option<String>,
}

/// The window of a chart, in seconds, from `15m`, `1h`, `6h`, `24h` or `7d`.
fn range_seconds(range: Option<&str>) -> Result<u64, String> {
    Ok(match range.unwrap_or("1h") {
        "15m" => 15 * 60,
        "1h" => 3600,
        "6h" => 6 * 3600,
        "24h" => 24 * 3600,
        "7d" => 7 * 24 * 3600,
        other => return Err(format!("range {other:?}: use 15m, 1h, 6h, 24h or 7d")),
    })
}

/// One chart: its InfluxQL (with `{where}` and `{interval}`), title and unit, and how its
/// series are named.
struct ChartSpec {
    title: &'static str,
    unit: &'static str,
    query: &'static str,
    /// The tag naming each series (`path`, `interface`), if grouped by one.
    tag: Option<&'static str>,
}

const CHARTS: &[ChartSpec] = &[
    ChartSpec {
        title: "CPU",
        unit: "%",
        query: "SELECT mean(usage_user) AS \"user\", mean(usage_system) AS \"system\", \
                mean(usage_iowait) AS \"iowait\" FROM cpu WHERE {where} AND cpu = 'cpu-total' \
                GROUP BY time({interval}) fill(none)",
        tag: None,
    },
    ChartSpec {
        title: "Memory used",
        unit: "%",
        query: "SELECT mean(used_percent) AS \"used\" FROM mem WHERE {where} \
                GROUP BY time({interval}) fill(none)",
        tag: None,
    },
    ChartSpec {
        title: "Disk used",
        unit: "%",
        query: "SELECT max(used_percent) AS \"used\" FROM disk WHERE {where} \
                GROUP BY time({interval}), path fill(none)",
        tag: Some("path"),
    },
    ChartSpec {
        title: "Network",
        unit: "bytes/s",
        query: "SELECT non_negative_derivative(max(bytes_recv), 1s) AS \"recv\", \
                non_negative_derivative(max(bytes_sent), 1s) AS \"sent\" FROM net WHERE {where} \
                GROUP BY time({interval}), interface fill(none)",
        tag: Some("interface"),
    },
    ChartSpec {
        title: "Load",
        unit: "",
        query: "SELECT mean(load1) AS \"1 min\", mean(load5) AS \"5 min\", \
                mean(load15) AS \"15 min\" FROM system WHERE {where} \
                GROUP BY time({interval}) fill(none)",
        tag: None,
    },
];

/// The InfluxQL of every chart for `host` over the last `seconds`, about 120 points each.
fn chart_queries(host: &str, seconds: u64) -> String {
    let interval = (seconds / 120).max(10);
    let filter = format!(
        "host = {} AND time > now() - {seconds}s",
        quote_string(host)
    );
    CHARTS
        .iter()
        .map(|chart| {
            chart
                .query
                .replace("{where}", &filter)
                .replace("{interval}", &format!("{interval}s"))
        })
        .collect::<Vec<_>>()
        .join("; ")
}

/// Turns one statement's result into a chart: a series per column (and per tag value).
fn chart(spec: &ChartSpec, result: &Value) -> Value {
    let mut series = Vec::new();
    for group in result["series"].as_array().into_iter().flatten() {
        let columns: Vec<&str> = group["columns"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(Value::as_str)
            .collect();
        let tag = spec
            .tag
            .and_then(|tag| group["tags"][tag].as_str())
            .map(String::from);
        let values = group["values"].as_array().cloned().unwrap_or_default();
        for (column, name) in columns.iter().enumerate().skip(1) {
            let points: Vec<Value> = values
                .iter()
                .filter_map(|row| {
                    let time = row.get(0)?.as_i64()?;
                    let value = row.get(column)?.as_f64()?;
                    Some(json!([time, value]))
                })
                .collect();
            let name = match &tag {
                Some(tag) => format!("{name} {tag}"),
                None => (*name).to_string(),
            };
            series.push(json!({ "name": name, "points": points }));
        }
    }
    json!({ "title": spec.title, "unit": spec.unit, "series": series })
}

/// `GET /api/hosts/{host}/metrics?range=1h`: the charts of one host.
pub async fn host_metrics(
    State(console): State<Console>,
    Path(host): Path<String>,
    Query(params): Query<MetricsParams>,
) -> Response {
    let Some(influx) = &console.fleet.influx else {
        return super::json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": "this console has no [influxdb] table: add it (url and database, or api = \"v2\" with org, bucket and token_file) to chart host metrics" }),
        );
    };
    let seconds = match range_seconds(params.range.as_deref()) {
        Ok(seconds) => seconds,
        Err(message) => {
            return super::json_response(StatusCode::BAD_REQUEST, &json!({ "error": message }))
        }
    };
    let client = influx.get();
    match client.query(&chart_queries(&host, seconds)).await {
        Ok(results) => {
            let charts: Vec<Value> = CHARTS
                .iter()
                .enumerate()
                .map(|(n, spec)| chart(spec, &results[n]))
                .collect();
            super::json_response(
                StatusCode::OK,
                &json!({ "host": host, "range_seconds": seconds, "charts": charts }),
            )
        }
        Err(error) => super::json_response(
            StatusCode::SERVICE_UNAVAILABLE,
            &json!({ "error": error.to_string() }),
        ),
    }
}

/// One partition's lag: the end offset less the group's committed offset.
#[derive(Debug, serde::Serialize)]
struct PartitionLag {
    topic: String,
    partition: i32,
    committed: i64,
    end: i64,
    lag: i64,
}

/// A Kafka client in the transfer's group that never subscribes (see [`crate::kafka::group`]).
fn lag_client(config: &ConsoleKafkaConfig) -> Result<BaseConsumer, String> {
    crate::kafka::group::offsets_client(
        &config.brokers,
        &config.transfer_group,
        "logship-console",
        config.tls.as_ref(),
        config.sasl.as_ref(),
    )
}

/// The lag, through the kept client (made now if there is none), one request at a time, within
/// [`LAG_DEADLINE`]. A request arriving while one is under way is told so instead of waiting.
async fn lag(fleet: &Fleet, config: ConsoleKafkaConfig) -> Result<Vec<PartitionLag>, String> {
    let Ok(mut slot) = fleet.lag_client.clone().try_lock_owned() else {
        return Err("the previous lag request is still under way (Kafka is slow)".into());
    };
    let work = tokio::task::spawn_blocking(move || {
        let client = match slot.as_ref() {
            Some(client) => client.clone(),
            None => Arc::new(lag_client(&config)?),
        };
        let lag = group_lag(&client);
        // Keep the client only while it works.
        *slot = lag.is_ok().then_some(client);
        lag
    });
    match tokio::time::timeout(LAG_DEADLINE, work).await {
        Ok(Ok(lag)) => lag,
        Ok(Err(error)) => Err(format!("the Kafka request failed: {error}")),
        Err(_) => Err(format!(
            "Kafka did not answer within {} s",
            LAG_DEADLINE.as_secs()
        )),
    }
}

/// The group's lag on every partition it committed an offset for (blocking).
fn group_lag(consumer: &BaseConsumer) -> Result<Vec<PartitionLag>, String> {
    let positions = crate::kafka::group::group_positions(consumer, &[], KAFKA_TIMEOUT)?;
    Ok(positions
        .into_iter()
        .filter_map(|p| {
            let committed = p.committed?;
            Some(PartitionLag {
                lag: (p.end - committed).max(0),
                topic: p.topic,
                partition: p.partition,
                committed,
                end: p.end,
            })
        })
        .collect())
}

/// `GET /api/pipeline`: the agents (alive or not, bytes behind, WAL depth), the transfer
/// group's lag per partition, documents and size per searched index.
pub async fn pipeline(State(console): State<Console>) -> Response {
    let (mut problems, mut missing) = (BTreeMap::new(), BTreeMap::new());
    let indices = console.indices();
    let es = console.es.get();
    let kafka = console.fleet.kafka.clone();
    let fleet = console.fleet.clone();
    let (hosts, stats, lag) = tokio::join!(
        hosts(&console, &mut problems, &mut missing),
        es.index_stats(&indices),
        async move {
            match kafka {
                Some(config) => {
                    let group = config.transfer_group.clone();
                    Some((group, lag(&fleet, config).await))
                }
                None => None,
            }
        }
    );
    let agents: Vec<Value> = hosts
        .iter()
        .filter(|(_, host)| host.registration.is_some() || host.collect)
        .map(|(name, host)| host_json(name, host))
        .collect();
    let indices = match stats {
        Ok(stats) => json!(stats),
        Err(error) => {
            problems.insert("elasticsearch", error.to_string());
            Value::Null
        }
    };
    let lag = match lag {
        Some((group, Ok(partitions))) => {
            let total: i64 = partitions.iter().map(|p| p.lag).sum();
            json!({ "group": group, "partitions": partitions, "total": total })
        }
        Some((group, Err(error))) => {
            problems.insert("kafka", error);
            json!({ "group": group })
        }
        None => {
            missing.insert(
                "kafka",
                "add [kafka] (brokers, transfer_group) to show the transfer's lag",
            );
            Value::Null
        }
    };
    super::json_response(
        StatusCode::OK,
        &json!({
            "agents": agents, "lag": lag, "indices": indices,
            "problems": problems, "missing": missing,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chart_queries_quote_the_host_and_group_about_120_points() {
        let q = chart_queries("web'01", 3600);
        assert!(
            q.contains("host = 'web\\'01' AND time > now() - 3600s"),
            "{q}"
        );
        assert!(q.contains("GROUP BY time(30s)"), "{q}");
        assert_eq!(q.matches("SELECT").count(), CHARTS.len());
        assert!(
            chart_queries("h", 900).contains("time(10s)"),
            "at least the sampling interval"
        );
        assert!(range_seconds(Some("2h")).is_err());
    }

    #[test]
    fn a_result_becomes_one_series_per_column_and_tag() {
        let result = json!({"series": [
            {"name": "net", "tags": {"interface": "eth0"}, "columns": ["time", "recv", "sent"],
             "values": [[1000, 5.0, 6.0], [2000, 7.0, null]]},
            {"name": "net", "tags": {"interface": "lo"}, "columns": ["time", "recv", "sent"],
             "values": [[1000, 1.0, 1.0]]}
        ]});
        let chart = chart(&CHARTS[3], &result);
        let names: Vec<&str> = chart["series"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["recv eth0", "sent eth0", "recv lo", "sent lo"]);
        assert_eq!(
            chart["series"][1]["points"],
            json!([[1000, 6.0]]),
            "nulls skipped"
        );
        assert_eq!(chart["unit"], "bytes/s");
    }
}
