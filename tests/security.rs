//! Security against real servers: the transfer reaching Elasticsearch through the TLS + auth
//! front of `scripts/services.sh` secure mode (`LOGSHIP_SECURE=1`: nginx on
//! https://127.0.0.1:9243 with the test CA of `.services/pki`, basic auth and an API key).
//!
//! What is proven: every line arrives exactly once over TLS with a password file or an API key
//! file; the front really refuses plaintext, anonymous and wrongly authenticated clients; a wrong
//! password or an unknown CA is one clear error naming the endpoint, `/health` answers 503 with
//! it, nothing is indexed or committed, and fixing the file + SIGHUP delivers every line once;
//! no test secret appears in any log the transfer wrote.

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
    let healthy = wait_for(Duration::from_secs(30), || {
        http_get(health, "/health").filter(|(status, _)| *status == 200)
    });
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
