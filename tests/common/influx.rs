//! InfluxDB and metrics-topic helpers for the host metrics tests: InfluxQL over `curl`
//! against the real InfluxDB servers of `scripts/services.sh` (`influxdb`, 1.x without
//! authentication; `influxdb2`, 1.8 serving the v2 API with a token), and a reader of a metrics
//! topic.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// InfluxDB's URL (`LOGSHIP_INFLUXDB`, default http://127.0.0.1:8086).
pub fn influxdb() -> String {
    std::env::var("LOGSHIP_INFLUXDB").unwrap_or_else(|_| "http://127.0.0.1:8086".into())
}

/// The v2 API server's URL (`LOGSHIP_INFLUXDB2`, default http://127.0.0.1:8096).
pub fn influxdb2() -> String {
    std::env::var("LOGSHIP_INFLUXDB2").unwrap_or_else(|_| "http://127.0.0.1:8096".into())
}

/// The v2 server's admin token (`user:password`), from `.services/influxdb2/token`.
pub fn influxdb2_token() -> String {
    let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".services/influxdb2/token");
    std::fs::read_to_string(&file)
        .unwrap_or_else(|e| panic!("{}: {e} (scripts/services.sh up influxdb2)", file.display()))
        .trim()
        .to_string()
}

/// One of the test InfluxDB servers, as its admin sees it.
#[derive(Debug, Clone)]
pub struct Server {
    /// Base URL.
    pub url: String,
    /// The admin token (`None`: no authentication).
    pub token: Option<String>,
    /// The name `scripts/services.sh` knows it by.
    pub service: &'static str,
}

impl Server {
    /// The 1.x server without authentication (`api = "v1"`).
    pub fn v1() -> Server {
        Server {
            url: influxdb(),
            token: None,
            service: "influxdb",
        }
    }

    /// InfluxDB 1.8 serving the v2 API, authentication on (`api = "v2"`).
    pub fn v2() -> Server {
        Server {
            url: influxdb2(),
            token: Some(influxdb2_token()),
            service: "influxdb2",
        }
    }

    fn auth(&self) -> Vec<String> {
        match &self.token {
            Some(token) => vec!["-H".into(), format!("Authorization: Token {token}")],
            None => Vec::new(),
        }
    }

    fn curl(&self, args: &[&str]) -> (u16, String) {
        let mut all: Vec<String> = self.auth();
        all.extend(args.iter().map(|a| a.to_string()));
        let refs: Vec<&str> = all.iter().map(String::as_str).collect();
        curl(&refs)
    }

    /// Runs InfluxQL `q` in `db` (timestamps in nanoseconds) and panics unless it answers 200.
    pub fn query(&self, db: &str, q: &str) -> Value {
        let (code, body) = self.curl(&[
            "-G",
            &format!("{}/query", self.url),
            "--data-urlencode",
            &format!("db={db}"),
            "--data-urlencode",
            &format!("q={q}"),
            "--data-urlencode",
            "epoch=ns",
        ]);
        assert_eq!(code, 200, "{q}: {body}");
        serde_json::from_str(&body).unwrap()
    }

    /// Runs the InfluxQL statement `q` that changes something (a POST), and panics unless it
    /// answers 200.
    pub fn execute(&self, q: &str) {
        let (code, body) = self.curl(&[
            "-XPOST",
            &format!("{}/query", self.url),
            "--data-urlencode",
            &format!("q={q}"),
        ]);
        assert_eq!(code, 200, "{q}: {body}");
    }

    /// Creates database `db`.
    pub fn create_database(&self, db: &str) {
        self.execute(&format!("CREATE DATABASE {db}"));
    }

    /// Drops database `db` (best effort).
    pub fn drop_database(&self, db: &str) {
        self.curl(&[
            "-XPOST",
            &format!("{}/query", self.url),
            "--data-urlencode",
            &format!("q=DROP DATABASE {db}"),
        ]);
    }

    /// Writes line protocol `points` (timestamps in seconds) into `db` as the admin: `/write`
    /// on the 1.x server, `/api/v2/write` on the v2 one.
    pub fn write(&self, db: &str, points: &str) {
        let url = match self.token {
            Some(_) => format!("{}/api/v2/write?bucket={db}/autogen&precision=s", self.url),
            None => format!("{}/write?db={db}&precision=s", self.url),
        };
        let (code, body) = self.curl(&["-XPOST", &url, "--data-binary", points]);
        assert_eq!(code, 204, "{body}");
    }

    /// The `[influxdb]` table of a transfer or console writing to and reading `db` (its
    /// `autogen` policy: the bucket `db/autogen` on the v2 server, with a copy of the admin
    /// token in `dir`).
    pub fn table(&self, db: &str, dir: &Path) -> String {
        match &self.token {
            None => format!("[influxdb]\nurl = \"{}\"\ndatabase = \"{db}\"\n", self.url),
            Some(token) => {
                let file = self.token_file(dir, token);
                format!(
                    "[influxdb]\nurl = \"{}\"\napi = \"v2\"\norg = \"logship\"\n\
                     bucket = \"{db}/autogen\"\ntoken_file = \"{}\"\n",
                    self.url,
                    file.display()
                )
            }
        }
    }

    /// The v2 server's HTTP access log (its log file, `scripts/services/influxdb2.sh`).
    pub fn access_log(&self) -> String {
        let file = Path::new(env!("CARGO_MANIFEST_DIR")).join(".services/influxdb2/influxdb.log");
        std::fs::read_to_string(&file).unwrap_or_default()
    }

    /// Writes `token` to `dir/influx-token` (mode 600) and returns the path.
    pub fn token_file(&self, dir: &Path, token: &str) -> PathBuf {
        let file = dir.join("influx-token");
        std::fs::write(&file, format!("{token}\n")).unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600)).unwrap();
        file
    }
}

/// `curl` against InfluxDB: (status, body).
pub fn curl(args: &[&str]) -> (u16, String) {
    let output = Command::new("curl")
        .args(["-s", "-m", "20", "-w", "\n%{http_code}"])
        .args(args)
        .output()
        .expect("run curl");
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n').unwrap_or(("", "0"));
    (code.trim().parse().unwrap_or(0), body.to_string())
}

/// Runs InfluxQL `q` in `db` of the 1.x server (see [`Server::query`]).
pub fn query(db: &str, q: &str) -> Value {
    Server::v1().query(db, q)
}

/// The single value of a one-row, one-column answer.
pub fn scalar(answer: &Value) -> f64 {
    answer["results"][0]["series"][0]["values"][0][1]
        .as_f64()
        .unwrap_or_else(|| panic!("no value: {answer}"))
}

/// Runs the InfluxQL statement `q` on the 1.x server (see [`Server::execute`]).
pub fn execute(q: &str) {
    Server::v1().execute(q)
}

/// Creates database `db` on the 1.x server.
pub fn create_database(db: &str) {
    Server::v1().create_database(db)
}

/// Drops database `db` of the 1.x server (best effort).
pub fn drop_database(db: &str) {
    Server::v1().drop_database(db)
}

/// Five `cpu` points of `host` a minute apart up to now (timestamps in seconds, `usage_user`
/// 10 to 14), and with `system` as many `system` points (what lists a host with metrics).
pub fn chart_points(host: &str, system: bool) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    (0..5u64)
        .map(|n| {
            let at = now - 60 * (4 - n);
            let mut points = format!(
                "cpu,host={host},cpu=cpu-total usage_user={},usage_system=2,usage_iowait=0.5 {at}\n",
                10 + n
            );
            if system {
                points.push_str(&format!(
                    "system,host={host} load1=0.5,load5=0.4,load15=0.3,n_cpus=2i {at}\n"
                ));
            }
            points
        })
        .collect()
}

/// Asserts that `console` charts the [`chart_points`] of `host`: a CPU chart whose `user`
/// series holds the written `usage_user` values.
pub fn assert_charts_cpu(console: &super::console::Console, host: &str) {
    let (code, answer) = console.get(&format!("/api/hosts/{host}/metrics?range=15m"));
    assert_eq!(code, 200, "{answer}\n{}", console.log());
    let cpu = &answer["charts"][0];
    assert_eq!(cpu["title"], "CPU", "{answer}");
    let user = cpu["series"]
        .as_array()
        .and_then(|series| series.iter().find(|s| s["name"] == "user"))
        .unwrap_or_else(|| panic!("no user series: {answer}"));
    let values: Vec<f64> = user["points"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|point| point[1].as_f64())
        .collect();
    assert!(
        !values.is_empty() && values.iter().all(|v| (10.0..=14.0).contains(v)),
        "the written usage_user values: {values:?}"
    );
}

/// Asserts that `console` (with wrong credentials) answers `host`'s charts with an error
/// status carrying InfluxDB's 401, rather than charting nothing.
pub fn assert_chart_refused(console: &super::console::Console, host: &str) {
    let (code, answer) = console.get(&format!("/api/hosts/{host}/metrics?range=15m"));
    assert!(code >= 500, "{code} {answer}");
    assert!(
        answer["error"].as_str().unwrap_or_default().contains("401"),
        "{answer}"
    );
}

/// The rows of the first series of a one-statement answer (empty when there is none).
pub fn rows(answer: &Value) -> Vec<Vec<Value>> {
    answer["results"][0]["series"][0]["values"]
        .as_array()
        .map(|rows| {
            rows.iter()
                .filter_map(|row| row.as_array().cloned())
                .collect()
        })
        .unwrap_or_default()
}

/// `MemTotal` of /proc/meminfo in bytes.
pub fn mem_total_bytes() -> f64 {
    let meminfo = std::fs::read_to_string("/proc/meminfo").unwrap();
    let kib: f64 = meminfo
        .lines()
        .find_map(|l| l.strip_prefix("MemTotal:"))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap();
    kib * 1024.0
}

/// One record read from a topic.
#[derive(Debug, Clone)]
pub struct TopicRecord {
    /// Key (lossy UTF-8).
    pub key: String,
    /// Headers (lossy UTF-8).
    pub headers: std::collections::BTreeMap<String, String>,
    /// Payload (lossy UTF-8).
    pub payload: String,
}

impl TopicRecord {
    /// The `logship-kind` header.
    pub fn kind(&self) -> Option<&str> {
        self.headers.get("logship-kind").map(String::as_str)
    }
}

/// The records of `topic` from its beginning, read until `until` says enough (or 120 s).
pub fn read_topic(topic: &str, until: impl Fn(&[TopicRecord]) -> bool) -> Vec<TopicRecord> {
    use rdkafka::config::ClientConfig;
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    use rdkafka::message::{Headers as _, Message as _};
    use rdkafka::{Offset, TopicPartitionList};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", super::kafka_brokers())
        .set("group.id", super::unique("metrics-reader"))
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let mut assigned = false;
    let mut records = Vec::new();
    while std::time::Instant::now() < deadline && !until(&records) {
        if !assigned {
            if let Ok(metadata) =
                consumer.fetch_metadata(Some(topic), std::time::Duration::from_secs(5))
            {
                if let Some(t) = metadata.topics().iter().find(|t| {
                    t.name() == topic && t.error().is_none() && !t.partitions().is_empty()
                }) {
                    let mut list = TopicPartitionList::new();
                    for p in t.partitions() {
                        list.add_partition_offset(topic, p.id(), Offset::Beginning)
                            .unwrap();
                    }
                    consumer.assign(&list).unwrap();
                    assigned = true;
                }
            }
            std::thread::sleep(std::time::Duration::from_millis(200));
            continue;
        }
        if let Some(Ok(message)) = consumer.poll(std::time::Duration::from_millis(500)) {
            let headers = message
                .headers()
                .map(|h| {
                    h.iter()
                        .map(|header| {
                            (
                                header.key.to_string(),
                                String::from_utf8_lossy(header.value.unwrap_or_default())
                                    .to_string(),
                            )
                        })
                        .collect()
                })
                .unwrap_or_default();
            records.push(TopicRecord {
                key: String::from_utf8_lossy(message.key().unwrap_or_default()).to_string(),
                headers,
                payload: String::from_utf8_lossy(message.payload().unwrap_or_default()).to_string(),
            });
        }
    }
    records
}
