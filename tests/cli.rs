//! The `logship` binary's command line: version, help, and refusing bad configuration with a
//! message that names the problem.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::process::Command;

use common::logship_bin;

#[test]
fn version_and_help_work() {
    let out = Command::new(logship_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.starts_with("logship "), "{text}");
    assert!(text.contains(env!("CARGO_PKG_VERSION")));

    let out = Command::new(logship_bin()).arg("--help").output().unwrap();
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    for subcommand in ["agent", "transfer"] {
        assert!(text.contains(subcommand), "help lists {subcommand}: {text}");
    }
}

fn agent_with_config(text: &str) -> (bool, String) {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("agent.toml");
    std::fs::write(
        &config,
        text.replace("DATA", &dir.path().join("data").display().to_string()),
    )
    .unwrap();
    let out = Command::new(logship_bin())
        .args(["agent", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn agent_refuses_unknown_key_missing_topic_and_unwritable_data_dir() {
    let (ok, err) = agent_with_config(
        "data_dir = \"DATA\"\nmax_line_byte = 10\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n",
    );
    assert!(!ok);
    assert!(err.contains("max_line_byte"), "{err}");

    let (ok, err) = agent_with_config(
        "data_dir = \"DATA\"\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n[[collect]]\npath = \"/var/log/*.log\"\n",
    );
    assert!(!ok);
    assert!(err.contains("topic"), "{err}");

    let (ok, err) = agent_with_config(
        "data_dir = \"/proc/logship-cannot-write-here\"\n[kafka]\nbrokers = \"127.0.0.1:9092\"\n",
    );
    assert!(!ok);
    assert!(err.contains("data_dir"), "{err}");

    let (ok, err) = agent_with_config("data_dir = \"DATA\"\n");
    assert!(!ok);
    assert!(err.contains("kafka"), "{err}");
}

/// A startup error is printed once, its cause once: no repeated line, no cause repeated inside
/// the message.
#[test]
fn a_startup_error_is_printed_once_with_its_cause_once() {
    for role in ["agent", "transfer", "console"] {
        let out = Command::new(logship_bin())
            .args([role, "--config", "/nonexistent/logship.toml"])
            .output()
            .unwrap();
        assert!(!out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(
            err.matches("cannot read config file /nonexistent/logship.toml")
                .count(),
            1,
            "{role}: {err}"
        );
        assert_eq!(
            err.matches("No such file or directory").count(),
            1,
            "{role}: {err}"
        );
    }
}
