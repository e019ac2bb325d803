//! Helpers for the operations tests: free ports, HTTP GETs (through `curl`, an independent
//! client), a real Prometheus server and `promtool`.
#![allow(dead_code)]

use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use super::wait_for;

/// A loopback address with a port that was free a moment ago.
pub fn free_addr() -> SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind an ephemeral port");
    listener.local_addr().expect("local addr")
}

/// Waits up to `timeout` for `GET path` on `addr` to answer 200; its body, or `None`.
pub fn wait_200(addr: SocketAddr, path: &str, timeout: Duration) -> Option<String> {
    super::wait_for(timeout, || {
        http_get(addr, path).and_then(|(status, body)| (status == 200).then_some(body))
    })
}

/// `GET http://{addr}{path}`: status code and body (`None` if nothing answered).
pub fn http_get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let output = Command::new("curl")
        .args(["-s", "-m", "10", "-w", "\n%{http_code}"])
        .arg(format!("http://{addr}{path}"))
        .output()
        .expect("run curl");
    if !output.status.success() {
        return None;
    }
    let text = String::from_utf8_lossy(&output.stdout).to_string();
    let (body, code) = text.rsplit_once('\n')?;
    Some((code.trim().parse().ok()?, body.to_string()))
}

/// The value of the sample `name{labels}` in Prometheus text `metrics` (exact label text, or
/// `""` for a sample without labels); the sum over all label sets with `None`.
pub fn sample(metrics: &str, name: &str, labels: Option<&str>) -> Option<f64> {
    let mut found = None;
    for line in metrics.lines().filter(|l| !l.starts_with('#')) {
        let Some((series, value)) = line.rsplit_once(' ') else {
            continue;
        };
        let (series_name, series_labels) = match series.split_once('{') {
            Some((n, rest)) => (n, rest.trim_end_matches('}')),
            None => (series, ""),
        };
        if series_name != name || labels.is_some_and(|l| l != series_labels) {
            continue;
        }
        let value: f64 = value.parse().ok()?;
        found = Some(found.unwrap_or(0.0) + value);
    }
    found
}

/// Runs `promtool check metrics` on `metrics`; `Err(output)` when it complains.
pub fn promtool_check(metrics: &str) -> Result<(), String> {
    use std::io::Write as _;
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian package prometheus; scripts/deps.sh installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(metrics.as_bytes())
        .expect("feed promtool");
    let output = child.wait_with_output().expect("promtool output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    if output.status.success() && text.trim().is_empty() {
        Ok(())
    } else {
        Err(format!("promtool ({}): {text}", output.status))
    }
}

/// A private Prometheus server scraping the given targets every second; killed on drop.
pub struct Prometheus {
    child: Child,
    /// Where its HTTP API listens.
    pub addr: SocketAddr,
    log: PathBuf,
}

impl Prometheus {
    /// Starts Prometheus in `dir` with one job per `(job, target)`.
    pub fn start(dir: &Path, targets: &[(&str, SocketAddr)]) -> Prometheus {
        let mut config =
            String::from("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\nscrape_configs:\n");
        for (job, target) in targets {
            config.push_str(&format!(
                "  - job_name: {job}\n    static_configs:\n      - targets: ['{target}']\n"
            ));
        }
        let config_path = dir.join("prometheus.yml");
        std::fs::write(&config_path, config).expect("write prometheus.yml");
        let addr = free_addr();
        let log = dir.join("prometheus.log");
        let child = Command::new("prometheus")
            .arg(format!("--config.file={}", config_path.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}"))
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("prometheus log"))
            .spawn()
            .expect("start prometheus (Debian package prometheus; scripts/deps.sh installs it)");
        let prometheus = Prometheus { child, addr, log };
        let ready = wait_for(Duration::from_secs(60), || {
            http_get(addr, "/-/ready").filter(|(code, _)| *code == 200)
        });
        assert!(
            ready.is_some(),
            "prometheus not ready:\n{}",
            prometheus.log()
        );
        prometheus
    }

    /// Its log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The value of the instant query `expr` (its first series), if any.
    pub fn query(&self, expr: &str) -> Option<f64> {
        let output = Command::new("curl")
            .args(["-s", "-m", "10", "--data-urlencode"])
            .arg(format!("query={expr}"))
            .arg(format!("http://{}/api/v1/query", self.addr))
            .output()
            .expect("run curl");
        let answer: serde_json::Value = serde_json::from_slice(&output.stdout).ok()?;
        let value = answer["data"]["result"].get(0)?["value"].get(1)?.as_str()?;
        value.parse().ok()
    }
}

impl Drop for Prometheus {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
