//! Security against real servers: the transfer reaching Elasticsearch through the TLS + auth
//! front of `scripts/services.sh` secure mode (`LOGSHIP_SECURE=1`: nginx on
//! https://127.0.0.1:9243 with the test CA of `.services/pki`, basic auth and an API key).
//!
//! What is proven: every line arrives exactly once over TLS with a password file or an API key
//! file; the front really refuses plaintext, anonymous and wrongly authenticated clients; a wrong
//! password or an unknown CA is one clear error naming the endpoint, `/health` answers 503 with
//! it, nothing is indexed or committed, and fixing the file + SIGHUP delivers every line once;
//! no test secret appears in any log the transfer wrote. The same against the secure InfluxDB
//! (https://127.0.0.1:8087, authentication on): the transfer's points, as a user without admin
//! rights, after an unknown CA and a wrong password fixed by SIGHUP, written once; the console's
//! charts over TLS with a password file.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;
mod transfer_support;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::ops::{free_addr, http_get};
use common::{repo_root, wait_for};
use transfer_support::*;

const INDEXED: Duration = Duration::from_secs(90);

/// The secure front of Elasticsearch.
fn secure_url() -> String {
    std::env::var("LOGSHIP_ES_SECURE").unwrap_or_else(|_| "https://127.0.0.1:9243".into())
}

/// A file of the test PKI (`.services/pki`, made by `scripts/services.sh` in secure mode).
fn pki(name: &str) -> PathBuf {
    let path = repo_root().join(".services/pki").join(name);
    assert!(
        path.exists(),
        "{} is missing: start the services with LOGSHIP_SECURE=1 scripts/services.sh up",
        path.display()
    );
    path
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap().trim().to_string()
}

/// `curl` status code for `url` with `args` (`0` when no HTTP answer, e.g. a TLS failure).
fn curl_status(url: &str, args: &[&str]) -> u16 {
    let output = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-m", "10", "-w", "%{http_code}"])
        .args(args)
        .arg(url)
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .unwrap_or(0)
}

/// A setup whose transfer reaches the secure front with the `[elasticsearch]` lines `access`
/// and serves `/health` on `health`.
fn secure_setup(name: &str, access: &str, health: std::net::SocketAddr) -> TransferSetup {
    let mut setup = TransferSetup::new(name);
    setup.top_level = format!("metrics_addr = \"{health}\"\nhealth_grace_ms = 500\n");
    setup.es_url = secure_url();
    setup.es_extra = access.to_string();
    setup
}

fn produce_lines(topic: &str, n: u64) {
    create_topic(topic);
    let lines: Vec<Produce> = (0..n).map(|i| line("sec-01", "s1", i)).collect();
    produce(&producer(), topic, &lines);
}

/// Asserts that no log of `transfer` holds any of the test secrets.
fn assert_no_secret_in(log: &str) {
    for secret in [read(&pki("es-password")), read(&pki("es-api-key"))] {
        assert!(
            !log.contains(&secret),
            "a secret appears in the log:\n{log}"
        );
    }
}

#[test]
fn the_secure_front_refuses_plaintext_anonymous_and_wrong_clients() {
    let url = secure_url();
    let ca = pki("ca.crt");
    let ca = ca.to_str().unwrap();
    let password = format!("logship:{}", read(&pki("es-password")));
    let api_key = format!("Authorization: ApiKey {}", read(&pki("es-api-key")));
    assert_eq!(curl_status(&url, &["--cacert", ca, "-u", &password]), 200);
    assert_eq!(curl_status(&url, &["--cacert", ca, "-H", &api_key]), 200);
    assert_eq!(curl_status(&url, &["--cacert", ca]), 401, "anonymous");
    assert_eq!(
        curl_status(&url, &["--cacert", ca, "-u", "logship:wrong"]),
        401
    );
    assert_eq!(
        curl_status(
            &url,
            &["--cacert", ca, "-H", "Authorization: ApiKey d3Jvbmc="]
        ),
        401
    );
    let other = pki("other-ca.crt");
    assert_eq!(
        curl_status(
            &url,
            &["--cacert", other.to_str().unwrap(), "-u", &password]
        ),
        0,
        "a certificate from another CA is not trusted"
    );
    let plaintext = url.replacen("https://", "http://", 1);
    assert_eq!(
        curl_status(&plaintext, &["-u", &password]),
        400,
        "plain HTTP"
    );
}

#[test]
fn the_transfer_indexes_over_tls_with_a_password_file_or_an_api_key_exactly_once() {
    let dir = tempfile::tempdir().unwrap();
    let ca = pki("ca.crt");
    for (name, access) in [
        (
            "sec-basic",
            format!(
                "ca_file = \"{}\"\nusername = \"logship\"\npassword_file = \"{}\"\n",
                ca.display(),
                pki("es-password").display()
            ),
        ),
        (
            "sec-apikey",
            format!(
                "ca_file = \"{}\"\napi_key_file = \"{}\"\n",
                ca.display(),
                pki("es-api-key").display()
            ),
        ),
    ] {
        let setup = secure_setup(name, &access, free_addr());
        produce_lines(&setup.topic, 300);
        let (_config_dir, config) = setup.write();
        let transfer = Transfer::start(&config, name);
        wait_for_count(&setup.index, 300, INDEXED, &[&transfer]);
        assert_eq!(assert_no_duplicate_messages(&setup.index), 300);
        wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(30));
        let log = transfer.log();
        let status = transfer.terminate(Duration::from_secs(20));
        assert!(status.success(), "{name}: exit {status:?}\n{log}");
        assert_no_secret_in(&log);

        // The console searches the same cluster through the same front, with the same keys.
        let console =
            common::console::Console::start_with(dir.path(), &secure_url(), &setup.index, &access);
        let range = "from=2026-01-01T00:00:00Z&to=2026-01-03T00:00:00Z";
        let (code, found) = console.get(&format!("/api/search?q=line&{range}"));
        assert_eq!(code, 200, "{name}: {found}\n{}", console.log());
        assert_eq!(found["total"], 300, "{name}: {found}");
        assert_no_secret_in(&console.log());
    }
    drop(dir);
}

/// Starts a transfer whose `[elasticsearch]` access is wrong in `file` (a copy of `wrong`),
/// checks the clear error (`expected` in the log, the endpoint named, `/health` 503, nothing
/// indexed or committed), then puts `right` in the file, sends SIGHUP, and checks that every
/// line arrives once.
fn wrong_then_fixed(
    name: &str,
    access: impl Fn(&Path) -> String,
    wrong: &Path,
    right: &Path,
    expected: &str,
) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("secret");
    std::fs::copy(wrong, &file).unwrap();
    let health = free_addr();
    let setup = secure_setup(name, &access(&file), health);
    produce_lines(&setup.topic, 200);
    let (_config_dir, config) = setup.write();
    let transfer = Transfer::start(&config, name);

    let unhealthy = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health").filter(|(status, _)| *status == 503)
    });
    let (_, body) =
        unhealthy.unwrap_or_else(|| panic!("/health never said 503\n{}", transfer.log()));
    assert!(body.contains("elasticsearch"), "{body}");
    let log = wait_for(Duration::from_secs(30), || {
        let log = transfer.log();
        log.contains(expected).then_some(log)
    })
    .unwrap_or_else(|| panic!("no {expected:?} in the log:\n{}", transfer.log()));
    assert!(log.contains(&secure_url()), "the endpoint is named:\n{log}");
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(count(&setup.index), 0);
    assert!(committed(&setup.group, &setup.topic)
        .iter()
        .all(Option::is_none));

    std::fs::copy(right, &file).unwrap();
    transfer.hangup();
    wait_for_count(&setup.index, 200, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 200);
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(30));
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(30));
    assert!(healthy.is_some(), "/health did not recover");
    let log = transfer.log();
    assert!(log.contains("SIGHUP"), "{log}");
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    assert_no_secret_in(&log);
}

#[test]
fn a_wrong_password_is_a_clear_error_and_the_fixed_file_plus_sighup_delivers_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong-password");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let ca = pki("ca.crt");
    wrong_then_fixed(
        "sec-wrongpw",
        |file| {
            format!(
                "ca_file = \"{}\"\nusername = \"logship\"\npassword_file = \"{}\"\n",
                ca.display(),
                file.display()
            )
        },
        &wrong,
        &pki("es-password"),
        "401",
    );
}

#[test]
fn an_unknown_ca_is_a_clear_error_and_the_right_ca_plus_sighup_delivers_everything_once() {
    let password = pki("es-password");
    wrong_then_fixed(
        "sec-wrongca",
        |file| {
            format!(
                "ca_file = \"{}\"\nusername = \"logship\"\npassword_file = \"{}\"\n",
                file.display(),
                password.display()
            )
        },
        &pki("other-ca.crt"),
        &pki("ca.crt"),
        "certificate verify failed",
    );
}

/// The agent's config: `logs/*.log` of `dir` into `topic` through `brokers` with the `[kafka.*]`
/// tables `kafka_tables`, `/health` on `health`.
fn secure_agent_config(
    dir: &Path,
    brokers: &str,
    kafka_tables: &str,
    topic: &str,
    health: std::net::SocketAddr,
) -> PathBuf {
    let config = dir.join("agent.toml");
    std::fs::create_dir_all(dir.join("logs")).unwrap();
    let text = format!(
        "host = \"sec-host\"\ndata_dir = \"{data}\"\nmetrics_addr = \"{health}\"\nhealth_grace_ms = 500\n\
         rescan_interval_ms = 200\n[kafka]\nbrokers = \"{brokers}\"\n{kafka_tables}\n\
         [[collect]]\npath = \"{logs}/*.log\"\ntopic = \"{topic}\"\n",
        data = dir.join("data").display(),
        logs = dir.join("logs").display(),
    );
    std::fs::write(&config, text).unwrap();
    config
}

fn write_lines(dir: &Path, name: &str, range: std::ops::Range<u64>) {
    use std::io::Write as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("logs").join(name))
        .unwrap();
    for n in range {
        writeln!(file, "secured line {n:06} of {name}").unwrap();
    }
}

/// `[kafka.tls]` + `[kafka.sasl]` for the SASL_SSL listener with `password_file`.
fn sasl_tables(password_file: &Path) -> String {
    format!(
        "[kafka.tls]\nca_file = \"{}\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
         username = \"logship\"\npassword_file = \"{}\"\n",
        pki("ca.crt").display(),
        password_file.display()
    )
}

#[test]
fn the_whole_pipeline_runs_secured_and_every_line_arrives_once() {
    // etcd over mutual TLS with a user → agent → Kafka SASL_SSL (SCRAM-SHA-512) → transfer
    // over mutual TLS (client certificate) → Elasticsearch behind TLS with an API key → the
    // console over HTTPS with a signed-in user, searching through the same front with the
    // same key.
    let dir = tempfile::tempdir().unwrap();
    let mut setup = secure_setup(
        "sec-pipe",
        &format!(
            "ca_file = \"{}\"\napi_key_file = \"{}\"\n",
            pki("ca.crt").display(),
            pki("es-api-key").display()
        ),
        free_addr(),
    );
    setup.brokers = "127.0.0.1:9095".into();
    setup.kafka_extra = format!(
        "[kafka.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki("ca.crt").display(),
        pki("client.crt").display(),
        pki("client.key").display()
    );
    create_topic(&setup.topic);
    // What the agent collects comes from etcd over mutual TLS with an etcd user.
    let host = common::unique("sec-pipe-host");
    set_secure_entries(dir.path(), &host, &setup.topic);
    let agent_config = etcd_agent_config(
        dir.path(),
        &host,
        "",
        &format!(
            "brokers = \"127.0.0.1:9094\"\n{}",
            sasl_tables(&pki("kafka-password"))
        ),
        &pki("ca.crt"),
        "root",
        &pki("etcd-root-password"),
    );
    write_lines(dir.path(), "app.log", 0..400);
    let agent = common::agent::AgentProcess::start(&agent_config);
    let (_transfer_dir, transfer_config) = setup.write();
    let transfer = Transfer::start(&transfer_config, "sec-pipe");
    write_lines(dir.path(), "app.log", 400..1000);
    wait_for_count(&setup.index, 1000, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 1000);
    // And people search them in the console over HTTPS, signed in, the console reaching
    // Elasticsearch the same way.
    let password = "pipeline-Secret-7310";
    let hash = common::console::hash_password(password);
    let console = common::console::Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex_pattern = \"{}\"\n{}\n",
            pki("server.crt").display(),
            pki("server.key").display(),
            secure_url(),
            setup.index,
            setup.es_extra,
        )
    });
    let base = format!("https://{}", console.addr);
    let jar = dir.path().join("cookies");
    let curl = |args: &[&str]| {
        let output = Command::new("curl")
            .args(["-s", "-m", "20", "--cacert"])
            .arg(pki("ca.crt"))
            .arg("-b")
            .arg(&jar)
            .arg("-c")
            .arg(&jar)
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&output.stdout).to_string()
    };
    curl(&[
        "--data",
        &format!("name=ann&password={password}"),
        &format!("{base}/login"),
    ]);
    let found: serde_json::Value = serde_json::from_str(&curl(&[&format!(
        "{base}/api/search?q={}&from=now-1h&to=now",
        common::console::query("\"secured line 000999\"")
    )]))
    .unwrap_or_else(|e| panic!("not JSON ({e})\n{}", console.log()));
    assert_eq!(found["total"], 1, "{found}");
    let logs = format!("{}\n{}\n{}", agent.log(), transfer.log(), console.log());
    assert!(agent.terminate(), "agent did not stop cleanly");
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    assert_no_secret_in(&logs);
    let kafka_password = read(&pki("kafka-password"));
    assert!(
        !logs.contains(&kafka_password),
        "the Kafka password is in a log"
    );
}

/// `kcat -L` against `broker` with `args`: whether it got the metadata.
fn kcat_metadata(broker: &str, args: &[&str]) -> bool {
    let mut command = Command::new("timeout");
    command.args(["20", "kcat", "-b", broker, "-L", "-m", "5"]);
    for arg in args {
        command.args(["-X", arg]);
    }
    let output = command.output().expect("run kcat");
    output.status.success() && String::from_utf8_lossy(&output.stdout).contains("broker")
}

#[test]
fn the_secure_kafka_listeners_refuse_plaintext_and_unauthenticated_clients() {
    let ca = format!("ssl.ca.location={}", pki("ca.crt").display());
    let password = format!("sasl.password={}", read(&pki("kafka-password")));
    let sasl = [
        "security.protocol=SASL_SSL",
        "sasl.mechanisms=PLAIN",
        "sasl.username=logship",
    ];
    let right: Vec<&str> = sasl
        .iter()
        .copied()
        .chain([ca.as_str(), password.as_str()])
        .collect();
    assert!(
        kcat_metadata("127.0.0.1:9094", &right),
        "the right password is accepted"
    );
    let wrong: Vec<&str> = sasl
        .iter()
        .copied()
        .chain([ca.as_str(), "sasl.password=wrong"])
        .collect();
    assert!(
        !kcat_metadata("127.0.0.1:9094", &wrong),
        "a wrong password is refused"
    );
    assert!(
        !kcat_metadata("127.0.0.1:9094", &[]),
        "plaintext is refused"
    );
    let cert = format!("ssl.certificate.location={}", pki("client.crt").display());
    let key = format!("ssl.key.location={}", pki("client.key").display());
    assert!(kcat_metadata(
        "127.0.0.1:9095",
        &["security.protocol=SSL", &ca, &cert, &key]
    ));
    assert!(
        !kcat_metadata("127.0.0.1:9095", &["security.protocol=SSL", &ca]),
        "TLS without a client certificate is refused"
    );
}

#[test]
fn a_wrong_kafka_password_is_a_clear_error_and_the_fixed_file_ships_everything_once() {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "not-the-password\n").unwrap();
    let health = free_addr();
    let setup = TransferSetup::new("sec-kafkapw");
    create_topic(&setup.topic);
    let agent_config = secure_agent_config(
        dir.path(),
        "127.0.0.1:9094",
        &sasl_tables(&password),
        &setup.topic,
        health,
    );
    write_lines(dir.path(), "app.log", 0..300);
    let agent = common::agent::AgentProcess::start(&agent_config);
    let unhealthy = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health").filter(|(status, _)| *status == 503)
    });
    let (_, body) = unhealthy.unwrap_or_else(|| panic!("/health never said 503\n{}", agent.log()));
    assert!(body.contains("kafka"), "{body}");
    assert!(
        agent.wait_for_log("Authentication failed", Duration::from_secs(30)),
        "no clear error:\n{}",
        agent.log()
    );
    assert!(
        agent.log().contains("127.0.0.1:9094"),
        "the endpoint is named"
    );
    // The agent keeps reading into its WAL meanwhile.
    write_lines(dir.path(), "app.log", 300..500);
    let read_lines = || {
        http_get(health, "/metrics")
            .and_then(|(_, m)| common::ops::sample(&m, "logship_agent_read_lines_total", None))
    };
    let read_on = wait_for(Duration::from_secs(30), || {
        read_lines().filter(|n| *n >= 500.0)
    });
    assert!(
        read_on.is_some(),
        "every line is read into the WAL: {:?}",
        read_lines()
    );

    // The fixed file is seen (no restart, no signal): a new producer sends what waited.
    std::fs::copy(pki("kafka-password"), &password).unwrap();
    let (_transfer_dir, transfer_config) = setup.write();
    let transfer = Transfer::start(&transfer_config, "sec-kafkapw");
    wait_for_count(&setup.index, 500, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 500);
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(30));
    assert!(
        healthy.is_some(),
        "/health is 200 again
{}",
        agent.log()
    );
    let log = agent.log();
    assert!(log.contains("reload: Kafka credentials"), "{log}");
    assert!(agent.terminate());
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    assert!(!log.contains(&read(&pki("kafka-password"))));
}

#[test]
fn a_transfer_with_a_wrong_kafka_password_says_so_commits_nothing_and_the_fixed_file_indexes_everything_once(
) {
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("kafka-password");
    std::fs::write(&password, "not-the-password\n").unwrap();
    let health = free_addr();
    let mut setup = TransferSetup::new("sec-transfer-kafkapw");
    setup.top_level = format!("metrics_addr = \"{health}\"\nhealth_grace_ms = 500\n");
    setup.brokers = "127.0.0.1:9094".to_string();
    setup.kafka_extra = sasl_tables(&password);
    produce_lines(&setup.topic, 300);
    let (_transfer_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "sec-transfer-kafkapw");
    let unhealthy = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health")
            .filter(|(status, body)| *status == 503 && body.contains("kafka"))
    });
    let (_, body) =
        unhealthy.unwrap_or_else(|| panic!("/health never said 503 for kafka\n{}", transfer.log()));
    assert!(
        body.contains("Authentication failed"),
        "the cause is shown: {body}"
    );
    assert_eq!(count(&setup.index), 0, "nothing indexed");
    assert!(
        committed(&setup.group, &setup.topic)
            .iter()
            .all(Option::is_none),
        "nothing committed"
    );

    // The fixed file is seen (no restart, no signal): a new consumer indexes everything once.
    std::fs::copy(pki("kafka-password"), &password).unwrap();
    wait_for_count(&setup.index, 300, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 300);
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(30));
    assert!(
        healthy.is_some(),
        "/health is 200 again\n{}",
        transfer.log()
    );
    let log = transfer.log();
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    assert!(!log.contains(&read(&pki("kafka-password"))));
}

/// The SHA-256 fingerprint of the certificate in `pem`, as `openssl x509 -fingerprint` writes it
/// (`AB:CD:…`).
fn fingerprint(pem: &Path) -> String {
    let output = Command::new("openssl")
        .args(["x509", "-noout", "-fingerprint", "-sha256", "-in"])
        .arg(pem)
        .output()
        .expect("run openssl");
    let text = String::from_utf8_lossy(&output.stdout);
    text.trim()
        .split_once('=')
        .map(|(_, hex)| hex.to_string())
        .unwrap_or_else(|| panic!("no fingerprint in {text:?}"))
}

#[test]
fn a_pinned_ca_fingerprint_is_trusted_and_a_wrong_pin_is_a_clear_error() {
    let password = pki("es-password");
    let access = |pin: &str| {
        format!(
            "ca_fingerprint = \"{pin}\"\nusername = \"logship\"\npassword_file = \"{}\"\n",
            password.display()
        )
    };
    let setup = secure_setup(
        "sec-pin",
        &access(&fingerprint(&pki("ca.crt"))),
        free_addr(),
    );
    produce_lines(&setup.topic, 100);
    let (_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "sec-pin");
    wait_for_count(&setup.index, 100, INDEXED, &[&transfer]);
    assert!(transfer.terminate(Duration::from_secs(20)).success());

    let health = free_addr();
    let wrong = secure_setup(
        "sec-pin-wrong",
        &access(&fingerprint(&pki("other-ca.crt"))),
        health,
    );
    produce_lines(&wrong.topic, 10);
    let (_dir2, config) = wrong.write();
    let transfer = Transfer::start(&config, "sec-pin-wrong");
    let unhealthy = wait_for(Duration::from_secs(60), || {
        http_get(health, "/health").filter(|(status, _)| *status == 503)
    });
    assert!(
        unhealthy.is_some(),
        "/health never said 503\n{}",
        transfer.log()
    );
    let log = transfer.log();
    assert!(
        log.contains("no certificate presented by 127.0.0.1:9243"),
        "{log}"
    );
    assert_eq!(count(&wrong.index), 0);
    let _ = transfer.terminate(Duration::from_secs(20));
}

/// The secure etcd of `scripts/services.sh` secure mode.
fn secure_etcd() -> String {
    std::env::var("LOGSHIP_ETCD_SECURE").unwrap_or_else(|_| "https://127.0.0.1:2381".into())
}

/// `logship ctl` against the secure etcd as `user` (password file of the test PKI unless
/// `password_file` is given), with the test client certificate; prefix `/logship-sec`.
fn secure_ctl(user: &str, password_file: Option<&Path>, args: &[&str]) -> std::process::Output {
    let password = password_file
        .map(Path::to_path_buf)
        .unwrap_or_else(|| pki(&format!("etcd-{user}-password")));
    Command::new(common::logship_bin())
        .args(["ctl", "--etcd", &secure_etcd(), "--prefix", "/logship-sec"])
        .arg("--etcd-ca")
        .arg(pki("ca.crt"))
        .arg("--etcd-cert")
        .arg(pki("client.crt"))
        .arg("--etcd-key")
        .arg(pki("client.key"))
        .args(["--etcd-user", user, "--etcd-password-file"])
        .arg(password)
        .args(args)
        .output()
        .expect("run logship ctl")
}

/// Makes `logs/*.log` → `topic` the collect entries of `host` in the secure etcd (as root).
fn set_secure_entries(dir: &Path, host: &str, topic: &str) {
    let logs = dir.join("logs");
    std::fs::create_dir_all(&logs).unwrap();
    let entries = dir.join("entries.json");
    std::fs::write(
        &entries,
        format!(
            r#"[{{"path": "{}/*.log", "topic": "{topic}"}}]"#,
            logs.display()
        ),
    )
    .unwrap();
    let output = secure_ctl(
        "root",
        None,
        &[
            "collect",
            "set",
            "--host",
            host,
            "--file",
            entries.to_str().unwrap(),
        ],
    );
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// An agent config for `host` whose entries come from the secure etcd (client certificate of
/// the test PKI, CA `ca`, etcd `user` with `password`), `kafka` being its `[kafka]` lines and
/// tables, `top` extra top-level keys. Collects under `dir/logs`.
fn etcd_agent_config(
    dir: &Path,
    host: &str,
    top: &str,
    kafka: &str,
    ca: &Path,
    user: &str,
    password: &Path,
) -> PathBuf {
    let config = dir.join("agent.toml");
    std::fs::write(
        &config,
        format!(
            "host = \"{host}\"\ndata_dir = \"{data}\"\nrescan_interval_ms = 200\n{top}\n\
             [kafka]\n{kafka}\n[etcd]\nendpoints = [\"{etcd}\"]\nprefix = \"/logship-sec\"\n\
             allowed_paths = [\"{logs}\"]\nca_file = \"{ca}\"\ncert_file = \"{cert}\"\n\
             key_file = \"{key}\"\nusername = \"{user}\"\npassword_file = \"{password}\"\n",
            data = dir.join("data").display(),
            etcd = secure_etcd(),
            logs = dir.join("logs").display(),
            ca = ca.display(),
            cert = pki("client.crt").display(),
            key = pki("client.key").display(),
            password = password.display(),
        ),
    )
    .unwrap();
    config
}

#[test]
fn an_agent_with_only_its_etcd_role_follows_its_entries_over_tls() {
    // The agent's etcd user may read its own collect key and write its own registry key, and
    // nothing else (scripts/services/etcd.sh); TLS with a client certificate.
    let dir = tempfile::tempdir().unwrap();
    let setup = TransferSetup::new("sec-etcd");
    create_topic(&setup.topic);
    set_secure_entries(dir.path(), "sec-host", &setup.topic);
    let config = etcd_agent_config(
        dir.path(),
        "sec-host",
        "",
        &format!("brokers = \"{}\"", common::kafka_brokers()),
        &pki("ca.crt"),
        "logship-agent",
        &pki("etcd-logship-agent-password"),
    );
    write_lines(dir.path(), "app.log", 0..200);
    let agent = common::agent::AgentProcess::start(&config);
    let (_transfer_dir, transfer_config) = setup.write();
    let transfer = Transfer::start(&transfer_config, "sec-etcd");
    wait_for_count(&setup.index, 200, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 200);

    // Its registry key is there (read as root: the agent's user may not list the registry).
    let listed = wait_for(Duration::from_secs(30), || {
        let output = secure_ctl("root", None, &["agents"]);
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        text.contains("sec-host").then_some(text)
    });
    assert!(
        listed.is_some(),
        "sec-host is not in the registry\n{}",
        agent.log()
    );
    // Its user cannot read another host's entries.
    let other = secure_ctl(
        "logship-agent",
        None,
        &["collect", "get", "--host", "another-host"],
    );
    assert!(!other.status.success());
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("permission denied"),
        "{}",
        String::from_utf8_lossy(&other.stderr)
    );
    let log = agent.log();
    assert!(agent.terminate());
    assert!(transfer.terminate(Duration::from_secs(20)).success());
    for user in ["root", "logship-agent"] {
        let secret = read(&pki(&format!("etcd-{user}-password")));
        assert!(
            !log.contains(&secret),
            "an etcd password is in the agent's log"
        );
    }
}

#[test]
fn the_secure_etcd_refuses_wrong_passwords_and_clients_without_a_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let wrong = dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let output = secure_ctl(
        "root",
        Some(&wrong),
        &["collect", "get", "--host", "sec-host"],
    );
    assert!(!output.status.success());
    let error = String::from_utf8_lossy(&output.stderr);
    assert!(error.contains("authentication failed"), "{error}");
    assert!(!error.contains("not-the-password"), "{error}");
    // No client certificate: the TLS handshake is refused.
    let output = Command::new(common::logship_bin())
        .args(["ctl", "--etcd", &secure_etcd(), "--prefix", "/logship-sec"])
        .arg("--etcd-ca")
        .arg(pki("ca.crt"))
        .args(["--etcd-user", "root", "--etcd-password-file"])
        .arg(pki("etcd-root-password"))
        .args(["collect", "get", "--host", "sec-host"])
        .output()
        .unwrap();
    assert!(
        !output.status.success(),
        "a client without a certificate got in"
    );
    // Plaintext to the TLS port.
    let plaintext = secure_etcd().replacen("https://", "http://", 1);
    let output = Command::new(common::logship_bin())
        .args([
            "ctl",
            "--etcd",
            &plaintext,
            "--prefix",
            "/logship-sec",
            "agents",
        ])
        .output()
        .unwrap();
    assert!(!output.status.success(), "plaintext got in");
}

/// Runs `openssl args`, which must succeed.
fn openssl(args: &[&str]) {
    let output = Command::new("openssl").args(args).output().unwrap();
    assert!(
        output.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&output.stderr)
    );
}

/// Issues a certificate for `cn` (and IP 127.0.0.1) signed by the test PKI's `ca` (`ca` or
/// `other-ca`), writing `cert` and `key`.
fn issue_certificate(dir: &Path, ca: &str, cn: &str, cert: &Path, key: &Path) {
    let ext = dir.join("san.ext");
    std::fs::write(&ext, "subjectAltName=IP:127.0.0.1\n").unwrap();
    let csr = dir.join(format!("{cn}.csr"));
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let subject = format!("/CN={cn}");
    openssl(&[
        "req",
        "-new",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-keyout",
        &path(key),
        "-subj",
        &subject,
        "-out",
        &path(&csr),
    ]);
    let (ca_cert, ca_key) = (pki(&format!("{ca}.crt")), pki(&format!("{ca}.key")));
    openssl(&[
        "x509",
        "-req",
        "-in",
        &path(&csr),
        "-CA",
        &path(&ca_cert),
        "-CAkey",
        &path(&ca_key),
        "-CAcreateserial",
        "-CAserial",
        &format!("{}.srl", path(&csr)),
        "-days",
        "2",
        "-extfile",
        &path(&ext),
        "-out",
        &path(cert),
    ]);
}

/// A certificate for 127.0.0.1 signed by the test PKI's other CA, written to `cert` and `key`.
fn certificate_from_the_other_ca(dir: &Path, cert: &Path, key: &Path) {
    issue_certificate(dir, "other-ca", "127.0.0.1", cert, key);
}

#[test]
fn the_console_serves_https_with_secure_cookies_and_rotates_its_certificate_on_sighup() {
    let dir = tempfile::tempdir().unwrap();
    let (cert, key) = (
        dir.path().join("console.crt"),
        dir.path().join("console.key"),
    );
    std::fs::copy(pki("server.crt"), &cert).unwrap();
    std::fs::copy(pki("server.key"), &key).unwrap();
    let password = "console-Secret-5519";
    let hash = common::console::hash_password(password);
    let console = common::console::Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n[tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n\
             [[users]]\nname = \"ann\"\npassword_hash = \"{hash}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex_pattern = \"logship-tls-console-*\"\n",
            cert.display(),
            key.display(),
            common::es_url(),
        )
    });
    let url = format!("https://{}/", console.addr);
    let ca = pki("ca.crt");
    let ca = ca.to_str().unwrap();
    assert_eq!(
        curl_status(&url, &["--cacert", ca]),
        303,
        "HTTPS, to sign in"
    );
    assert_eq!(
        curl_status(&format!("http://{}/", console.addr), &[]),
        0,
        "no plaintext on the TLS port"
    );
    let other = pki("other-ca.crt");
    let other = other.to_str().unwrap();
    assert_eq!(
        curl_status(&url, &["--cacert", other]),
        0,
        "the CA is checked"
    );

    // Signing in: the session cookie is Secure, HttpOnly, SameSite.
    let output = Command::new("curl")
        .args(["-s", "-i", "-m", "20", "--cacert", ca, "--data"])
        .arg(format!("name=ann&password={password}&next=/"))
        .arg(format!("{url}login"))
        .output()
        .unwrap();
    let answer = String::from_utf8_lossy(&output.stdout);
    let cookie = answer
        .lines()
        .find(|l| l.to_ascii_lowercase().starts_with("set-cookie:"))
        .unwrap_or_else(|| panic!("no cookie: {answer}"));
    for part in ["logship_session=", "HttpOnly", "SameSite=Lax", "Secure"] {
        assert!(cookie.contains(part), "{cookie}");
    }

    // Rotation: a certificate from another CA, then SIGHUP; new connections get it.
    certificate_from_the_other_ca(dir.path(), &cert, &key);
    let hup = Command::new("kill")
        .args(["-HUP", &console.pid().to_string()])
        .status()
        .unwrap();
    assert!(hup.success());
    let rotated = wait_for(Duration::from_secs(10), || {
        (curl_status(&url, &["--cacert", other]) == 303).then_some(())
    });
    assert!(
        rotated.is_some(),
        "the rotated certificate is served:\n{}",
        console.log()
    );
    assert_eq!(
        curl_status(&url, &["--cacert", ca]),
        0,
        "the old one is gone"
    );
    assert!(console.log().contains("TLS certificate and key re-read"));
    assert!(!console.log().contains(password));
}

/// A new client certificate and key signed by the test CA, moved over `cert` and `key` by
/// rename (as a careful rotation does).
fn rotate_client_certificate(dir: &Path, cert: &Path, key: &Path) {
    let (fresh_cert, fresh_key) = (dir.join("fresh.crt"), dir.join("fresh.key"));
    issue_certificate(dir, "ca", "logship-rotated", &fresh_cert, &fresh_key);
    std::fs::rename(&fresh_key, key).unwrap();
    std::fs::rename(&fresh_cert, cert).unwrap();
}

#[test]
fn client_certificates_rotated_with_sighup_while_shipping_lose_and_double_nothing() {
    // Agent and transfer both reach Kafka's mutual-TLS listener with their own copies of the
    // client certificate; halfway through a steady stream of lines each gets a new certificate
    // and a SIGHUP: the agent switches producers, the transfer rejoins its group.
    let dir = tempfile::tempdir().unwrap();
    let copy = |name: &str, to: &str| {
        let path = dir.path().join(to);
        std::fs::copy(pki(name), &path).unwrap();
        path
    };
    let (agent_cert, agent_key) = (
        copy("client.crt", "agent.crt"),
        copy("client.key", "agent.key"),
    );
    let (transfer_cert, transfer_key) = (
        copy("client.crt", "transfer.crt"),
        copy("client.key", "transfer.key"),
    );
    let tls = |cert: &Path, key: &Path| {
        format!(
            "[kafka.tls]\nca_file = \"{}\"\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
            pki("ca.crt").display(),
            cert.display(),
            key.display()
        )
    };
    let mut setup = TransferSetup::new("sec-rotate");
    setup.brokers = "127.0.0.1:9095".into();
    setup.kafka_extra = tls(&transfer_cert, &transfer_key);
    create_topic(&setup.topic);
    let agent_dir = dir.path().join("agent");
    let agent_config = secure_agent_config(
        &agent_dir,
        "127.0.0.1:9095",
        &tls(&agent_cert, &agent_key),
        &setup.topic,
        free_addr(),
    );
    let agent = common::agent::AgentProcess::start(&agent_config);
    let (_transfer_dir, transfer_config) = setup.write();
    let transfer = Transfer::start(&transfer_config, "sec-rotate");

    const TOTAL: u64 = 3000;
    let writer_dir = agent_dir.clone();
    let writer = std::thread::spawn(move || {
        for batch in 0..30 {
            write_lines(&writer_dir, "app.log", batch * 100..(batch + 1) * 100);
            std::thread::sleep(Duration::from_millis(150));
        }
    });
    let flowing = wait_for(INDEXED, || (count(&setup.index) >= 600).then_some(()));
    assert!(flowing.is_some(), "{}", transfer.log());
    rotate_client_certificate(dir.path(), &agent_cert, &agent_key);
    rotate_client_certificate(dir.path(), &transfer_cert, &transfer_key);
    agent.hangup();
    transfer.hangup();
    writer.join().unwrap();
    wait_for_count(&setup.index, TOTAL, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index) as u64, TOTAL);
    let (agent_log, transfer_log) = (agent.log(), transfer.log());
    assert!(
        agent_log.contains("reload: Kafka credentials"),
        "{agent_log}"
    );
    assert!(
        transfer_log.contains("reload: joining the group again"),
        "{transfer_log}"
    );
    assert!(agent.terminate(), "agent did not stop cleanly");
    assert!(transfer.terminate(Duration::from_secs(20)).success());
}

#[test]
fn the_agents_endpoint_serves_https_and_logship_status_asks_it_there() {
    let dir = tempfile::tempdir().unwrap();
    let health = free_addr();
    let topic = common::unique("sec-metrics");
    let config = secure_agent_config(dir.path(), &common::kafka_brokers(), "", &topic, health);
    let mut text = std::fs::read_to_string(&config).unwrap();
    text.push_str(&format!(
        "[metrics_tls]\ncert_file = \"{}\"\nkey_file = \"{}\"\n",
        pki("server.crt").display(),
        pki("server.key").display()
    ));
    std::fs::write(&config, text).unwrap();
    write_lines(dir.path(), "app.log", 0..10);
    let agent = common::agent::AgentProcess::start(&config);
    let ca = pki("ca.crt");
    let ca = ca.to_str().unwrap();
    let url = format!("https://{health}/metrics");
    let up = wait_for(Duration::from_secs(30), || {
        (curl_status(&url, &["--cacert", ca]) == 200).then_some(())
    });
    assert!(up.is_some(), "/metrics over HTTPS\n{}", agent.log());
    assert_eq!(
        curl_status(&format!("http://{health}/metrics"), &[]),
        0,
        "no plaintext on the TLS endpoint"
    );
    let other = pki("other-ca.crt");
    assert_eq!(
        curl_status(&url, &["--cacert", other.to_str().unwrap()]),
        0,
        "the certificate is checked"
    );
    // /status answers once the agent's WAL is open.
    let status_url = format!("https://{health}/status");
    let ready = wait_for(Duration::from_secs(30), || {
        (curl_status(&status_url, &["--cacert", ca]) == 200).then_some(())
    });
    assert!(ready.is_some(), "/status over HTTPS\n{}", agent.log());
    let status = Command::new(common::logship_bin())
        .args(["status", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let out = String::from_utf8_lossy(&status.stdout);
    assert!(
        status.status.success() && out.contains("app.log"),
        "{out}\n{}",
        String::from_utf8_lossy(&status.stderr)
    );
    assert!(agent.terminate());
}

#[test]
fn etcd_refusing_the_agents_ca_or_password_is_a_503_until_the_files_are_fixed() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, password) = (dir.path().join("ca.crt"), dir.path().join("etcd-password"));
    std::fs::copy(pki("other-ca.crt"), &ca).unwrap();
    std::fs::write(&password, "not-the-password\n").unwrap();
    let health = free_addr();
    let config = etcd_agent_config(
        dir.path(),
        "sec-host",
        &format!("metrics_addr = \"{health}\"\nhealth_grace_ms = 500"),
        &format!("brokers = \"{}\"", common::kafka_brokers()),
        &ca,
        "logship-agent",
        &password,
    );
    let agent = common::agent::AgentProcess::start(&config);
    let unhealthy_with = |needle: &str| {
        wait_for(Duration::from_secs(60), || {
            http_get(health, "/health")
                .filter(|(status, body)| *status == 503 && body.contains(needle))
        })
    };
    // An unknown CA: the TLS handshake fails; /health names etcd's endpoint.
    let (_, body) = unhealthy_with("etcd at https://127.0.0.1:2381")
        .unwrap_or_else(|| panic!("/health never said 503 for etcd\n{}", agent.log()));
    assert!(body.to_ascii_lowercase().contains("certificate"), "{body}");
    // The CA fixed: now the password is what etcd refuses.
    std::fs::copy(pki("ca.crt"), &ca).unwrap();
    let refused = unhealthy_with("authentication failed");
    assert!(refused.is_some(), "no password refusal\n{}", agent.log());
    // The password fixed: read again at the next reconnection, healthy again.
    std::fs::copy(pki("etcd-logship-agent-password"), &password).unwrap();
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(60));
    assert!(healthy.is_some(), "/health stays 503\n{}", agent.log());
    let log = agent.log();
    assert!(agent.terminate());
    assert!(!log.contains(&read(&pki("etcd-logship-agent-password"))));
}

#[test]
fn an_unknown_kafka_ca_is_a_503_saying_so_for_agent_and_transfer_and_the_fixed_file_delivers_once()
{
    let dir = tempfile::tempdir().unwrap();
    // Each side trusts the other CA at first.
    let (agent_ca, transfer_ca) = (
        dir.path().join("agent-ca.crt"),
        dir.path().join("transfer-ca.crt"),
    );
    std::fs::copy(pki("other-ca.crt"), &agent_ca).unwrap();
    std::fs::copy(pki("other-ca.crt"), &transfer_ca).unwrap();
    let sasl = |ca: &Path| {
        format!(
            "[kafka.tls]\nca_file = \"{}\"\n[kafka.sasl]\nmechanism = \"SCRAM-SHA-512\"\n\
             username = \"logship\"\npassword_file = \"{}\"\n",
            ca.display(),
            pki("kafka-password").display()
        )
    };
    let (agent_health, transfer_health) = (free_addr(), free_addr());
    let mut setup = TransferSetup::new("sec-kafkaca");
    setup.brokers = "127.0.0.1:9094".into();
    setup.kafka_extra = sasl(&transfer_ca);
    setup.top_level = format!("metrics_addr = \"{transfer_health}\"\nhealth_grace_ms = 500\n");
    create_topic(&setup.topic);
    let agent_config = secure_agent_config(
        &dir.path().join("agent"),
        "127.0.0.1:9094",
        &sasl(&agent_ca),
        &setup.topic,
        agent_health,
    );
    write_lines(&dir.path().join("agent"), "app.log", 0..300);
    let agent = common::agent::AgentProcess::start(&agent_config);
    let (_transfer_dir, transfer_config) = setup.write();
    let transfer = Transfer::start(&transfer_config, "sec-kafkaca");
    for (who, health) in [("agent", agent_health), ("transfer", transfer_health)] {
        let refused = wait_for(Duration::from_secs(60), || {
            http_get(health, "/health").filter(|(status, body)| {
                *status == 503 && body.contains("127.0.0.1:9094") && body.contains("certificate")
            })
        });
        assert!(
            refused.is_some(),
            "the {who}'s /health never named the certificate problem: {:?}\n{}\n{}",
            http_get(health, "/health"),
            agent.log(),
            transfer.log()
        );
    }
    assert_eq!(count(&setup.index), 0);
    // The right CA, written over the files: both notice, reconnect, and deliver every line once.
    std::fs::copy(pki("ca.crt"), &agent_ca).unwrap();
    std::fs::copy(pki("ca.crt"), &transfer_ca).unwrap();
    write_lines(&dir.path().join("agent"), "app.log", 300..400);
    wait_for_count(&setup.index, 400, INDEXED, &[&transfer]);
    assert_eq!(assert_no_duplicate_messages(&setup.index), 400);
    assert!(agent.terminate());
    assert!(transfer.terminate(Duration::from_secs(20)).success());
}

/// The secure InfluxDB of `scripts/services.sh` secure mode (TLS, authentication on).
fn secure_influxdb() -> String {
    std::env::var("LOGSHIP_INFLUXDB_SECURE").unwrap_or_else(|_| "https://127.0.0.1:8087".into())
}

/// How many values of `field` measurement `measurement` of database `logship_sec` holds, read
/// by the secure InfluxDB's admin.
fn secure_influx_count(measurement: &str, field: &str) -> u64 {
    let query = format!("q=SELECT count({field}) FROM \"{measurement}\"");
    let output = secure_influx_admin(
        "query",
        &[
            "-G",
            "--data-urlencode",
            "db=logship_sec",
            "--data-urlencode",
            &query,
        ],
    );
    let answer: serde_json::Value =
        serde_json::from_str(&output).unwrap_or_else(|e| panic!("{e}: {output}"));
    answer["results"][0]["series"][0]["values"][0][1]
        .as_u64()
        .unwrap_or(0)
}

/// `curl` as the secure InfluxDB's admin on `endpoint` (`query`, `write?...`) with `args`:
/// what it printed.
fn secure_influx_admin(endpoint: &str, args: &[&str]) -> String {
    let output = Command::new("curl")
        .args(["-s", "-m", "10", "--cacert"])
        .arg(pki("ca.crt"))
        .arg("-u")
        .arg(format!("root:{}", read(&pki("influxdb-root-password"))))
        .args(args)
        .arg(format!("{}/{endpoint}", secure_influxdb()))
        .output()
        .expect("run curl");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

#[test]
fn metrics_reach_influxdb_over_tls_as_a_user_without_admin_rights_after_the_ca_and_password_are_fixed(
) {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.crt");
    let password = dir.path().join("password");
    // First an unknown CA, then the right CA with a wrong password, then both right.
    std::fs::copy(pki("other-ca.crt"), &ca).unwrap();
    std::fs::copy(pki("influxdb-logship-password"), &password).unwrap();
    let measurement = common::unique("sec_probe").replace('-', "_");
    let health = free_addr();
    let mut setup = secure_setup("sec-influx", "", health);
    setup.es_url = common::es_url();
    setup.tables = format!(
        "[influxdb]\nurl = \"{}\"\ndatabase = \"logship_sec\"\nusername = \"logship\"\n\
         password_file = \"{}\"\nca_file = \"{}\"\n",
        secure_influxdb(),
        password.display(),
        ca.display()
    );
    create_topic(&setup.topic);
    produce_probe_records(&producer(), &setup.topic, &measurement, 3);
    let (_config_dir, config) = setup.write();
    let transfer = Transfer::start(&config, "sec-influx");

    let says = |phase: &str, needle: &str| {
        let (_, body) = wait_for(Duration::from_secs(60), || {
            http_get(health, "/health")
                .filter(|(status, body)| *status == 503 && body.contains(needle))
        })
        .unwrap_or_else(|| {
            panic!(
                "{phase}: /health never said 503 with {needle:?}\n{}",
                transfer.log()
            )
        });
        assert!(body.contains("influxdb"), "{phase}: {body}");
        assert!(
            body.contains(&secure_influxdb()),
            "{phase}: the endpoint is named: {body}"
        );
        std::thread::sleep(Duration::from_secs(2));
        assert_eq!(secure_influx_count(&measurement, "value"), 0, "{phase}");
        // The topic is new: its records start at offset 0, and a commit at 0 says none is done.
        let offsets = committed(&setup.group, &setup.topic);
        assert!(
            offsets.iter().all(|offset| offset.unwrap_or(0) == 0),
            "{phase}: nothing committed past an unwritten point: {offsets:?}\n{}",
            transfer.log()
        );
    };
    says("unknown CA", "certificate");
    std::fs::copy(pki("ca.crt"), &ca).unwrap();
    std::fs::write(&password, "not-the-password\n").unwrap();
    transfer.hangup();
    says("wrong password", "401");

    std::fs::copy(pki("influxdb-logship-password"), &password).unwrap();
    transfer.hangup();
    let written = wait_for(INDEXED, || {
        (secure_influx_count(&measurement, "value") == 6).then_some(())
    });
    assert!(
        written.is_some(),
        "6 points not written\n{}",
        transfer.log()
    );
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(30));
    let healthy = common::ops::wait_200(health, "/health", Duration::from_secs(30));
    assert!(
        healthy.is_some(),
        "/health did not recover\n{}",
        transfer.log()
    );
    assert_eq!(secure_influx_count(&measurement, "value"), 6);
    let log = transfer.log();
    assert!(transfer.terminate(Duration::from_secs(20)).success());

    // The whole topic again, by a new group with the right files from the start: `logship`
    // may not CREATE DATABASE (403, said once, writing goes on), and the points land on the
    // same series and times: still 6.
    setup.group = common::unique("sec-influx-replay");
    let (_replay_dir, replay_config) = setup.write();
    let replay = Transfer::start(&replay_config, "sec-influx-replay");
    wait_for_commits_at_end(&setup.group, &setup.topic, Duration::from_secs(60));
    let replay_log = replay.log();
    assert!(
        replay_log.contains("cannot create the InfluxDB database") && replay_log.contains("403"),
        "{replay_log}"
    );
    assert_eq!(secure_influx_count(&measurement, "value"), 6);
    assert!(replay.terminate(Duration::from_secs(20)).success());
    for secret in [
        read(&pki("influxdb-logship-password")),
        read(&pki("influxdb-root-password")),
    ] {
        for log in [&log, &replay_log] {
            assert!(
                !log.contains(&secret),
                "a secret appears in the log:\n{log}"
            );
        }
    }
}

/// Writes line protocol `points` into `logship_sec` of the secure InfluxDB as its admin.
fn secure_influx_write(points: &str) {
    let status = secure_influx_admin(
        "write?db=logship_sec&precision=s",
        &[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            "--data-binary",
            points,
        ],
    );
    assert_eq!(status, "204");
}

#[test]
fn the_console_charts_a_host_from_influxdb_over_tls_with_a_password_file() {
    let host = common::unique("sec-chart");
    secure_influx_write(&common::influx::chart_points(&host, false));
    let dir = tempfile::tempdir().unwrap();
    let password = dir.path().join("influx-password");
    std::fs::copy(pki("influxdb-logship-password"), &password).unwrap();
    let influx = |password: &Path| {
        format!(
            "[influxdb]\nurl = \"{}\"\ndatabase = \"logship_sec\"\nusername = \"logship\"\n\
             password_file = \"{}\"\nca_file = \"{}\"\n",
            secure_influxdb(),
            password.display(),
            pki("ca.crt").display()
        )
    };
    let launch = |dir: &Path, password: &Path| {
        common::console::Console::launch(dir, |addr| {
            format!(
                "listen = \"{addr}\"\n[elasticsearch]\nurl = \"{}\"\nindex_pattern = \"logs-none-*\"\n{}",
                common::es_url(),
                influx(password)
            )
        })
    };
    let console = launch(dir.path(), &password);
    common::influx::assert_charts_cpu(&console, &host);
    let (code, fleet) = console.get("/api/fleet");
    assert_eq!(code, 200, "{fleet}");
    assert!(fleet["problems"]["influxdb"].is_null(), "{fleet}");

    // A console with a wrong password names InfluxDB's refusal instead of charting nothing.
    let wrong_dir = tempfile::tempdir().unwrap();
    let wrong = wrong_dir.path().join("wrong");
    std::fs::write(&wrong, "not-the-password\n").unwrap();
    let refused = launch(wrong_dir.path(), &wrong);
    common::influx::assert_chart_refused(&refused, &host);
    for log in [console.log(), refused.log()] {
        assert!(
            !log.contains(&read(&pki("influxdb-logship-password"))),
            "a secret appears in the log:\n{log}"
        );
    }
}
