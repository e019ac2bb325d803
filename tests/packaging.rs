//! The sample configurations in `packaging/` load as they are, and list every key the
//! configuration accepts (so a new key cannot be added without documenting it there).
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeSet;
use std::path::PathBuf;

use logship::config::{AgentConfig, TransferConfig};

fn packaging(file: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("packaging")
        .join(file)
}

/// The keys serde accepts at the place where `probe` inserts an unknown key: its refusal lists
/// them ("unknown field `zz_probe`, expected one of `a`, `b`").
fn accepted_keys(error: String) -> BTreeSet<String> {
    let list = error
        .split_once("expected one of")
        .or_else(|| error.split_once("expected"))
        .unwrap_or_else(|| panic!("no key list in {error}"))
        .1;
    list.split('`')
        .skip(1)
        .step_by(2)
        .map(str::to_string)
        .collect()
}

fn keys_missing_from(sample: &str, keys: &BTreeSet<String>) -> Vec<String> {
    keys.iter()
        .filter(|key| {
            !sample.lines().any(|line| {
                let line = line.trim_start_matches(['#', ' ']);
                line.starts_with(&format!("{key} ="))
                    || line.starts_with(&format!("[{key}]"))
                    || line.starts_with(&format!("[[{key}]]"))
            })
        })
        .cloned()
        .collect()
}

const AGENT_BASE: &str = "data_dir = \"/tmp/x\"\n";

#[test]
fn agent_sample_loads_and_lists_every_key() {
    let path = packaging("agent.toml");
    AgentConfig::load(&path).expect("packaging/agent.toml loads");
    let sample = std::fs::read_to_string(&path).unwrap();
    let probes = [
        format!("{AGENT_BASE}zz_probe = 1\n[kafka]\nbrokers = \"b\"\n"),
        format!("{AGENT_BASE}[kafka]\nbrokers = \"b\"\nzz_probe = 1\n"),
        format!("{AGENT_BASE}[kafka]\nbrokers = \"b\"\n[[collect]]\npath = \"/a\"\ntopic = \"t\"\nzz_probe = 1\n"),
        format!("{AGENT_BASE}[kafka]\nbrokers = \"b\"\n[etcd]\nendpoints = [\"http://e\"]\nzz_probe = 1\n"),
    ];
    for probe in probes {
        let error = AgentConfig::from_toml(&probe).expect_err("the probe key is refused");
        let keys = accepted_keys(error.to_string());
        assert!(keys.len() >= 2, "{keys:?}");
        let missing = keys_missing_from(&sample, &keys);
        assert!(missing.is_empty(), "packaging/agent.toml lacks {missing:?}");
    }
}

#[test]
fn the_secure_agent_sample_loads() {
    let config = AgentConfig::load(&packaging("agent-secure.toml"))
        .expect("packaging/agent-secure.toml loads");
    assert!(config.kafka.tls.is_some() && config.kafka.sasl.is_some());
}

#[test]
fn the_secure_transfer_sample_loads() {
    let config = TransferConfig::load(&packaging("transfer-secure.toml"))
        .expect("packaging/transfer-secure.toml loads");
    let access = config
        .elasticsearch
        .as_ref()
        .expect("the sample has [elasticsearch]")
        .access()
        .expect("its access keys fit together");
    assert!(access.url.starts_with("https://") && access.ca_file.is_some());
    assert!(access.deprecation().is_none());
}

#[test]
fn the_secure_console_sample_loads() {
    let config = logship::config::ConsoleConfig::load(&packaging("console-secure.toml"))
        .expect("packaging/console-secure.toml loads");
    assert!(config.tls.is_some() && config.users.len() == 2 && config.etcd.is_some());
    assert!(config.influxdb.is_some() && config.kafka.is_some());
    let access = config.elasticsearch.access().expect("its access keys fit");
    assert!(access.url.starts_with("https://") && access.ca_file.is_some());
}

#[test]
fn transfer_sample_loads_and_lists_every_key() {
    let path = packaging("transfer.toml");
    TransferConfig::load(&path).expect("packaging/transfer.toml loads");
    let sample = std::fs::read_to_string(&path).unwrap();
    let base = "[kafka]\nbrokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\n\
                [elasticsearch]\nurl = \"http://e\"\nindex = \"{topic}\"\n";
    let probes = [
        format!("zz_probe = 1\n{base}"),
        format!("{base}zz_probe = 1\n"),
        base.replace("topics = [\"t\"]\n", "topics = [\"t\"]\nzz_probe = 1\n"),
        format!("{base}[batch]\nzz_probe = 1\n"),
        format!("{base}[retry]\nzz_probe = 1\n"),
        format!("{base}[influxdb]\nurl = \"http://i\"\ndatabase = \"d\"\nzz_probe = 1\n"),
        format!("{base}[[parse]]\ntopics = [\"t\"]\nformat = \"json\"\nzz_probe = 1\n"),
        format!(
            "{base}[[parse]]\ntopics = [\"t\"]\nformat = \"json\"\n\
             timestamp = {{ field = \"f\", format = \"unix\", zz_probe = 1 }}\n"
        ),
    ];
    for probe in probes {
        let error = TransferConfig::from_toml(&probe).expect_err("the probe key is refused");
        let keys = accepted_keys(error.to_string());
        assert!(keys.len() >= 2, "{keys:?}");
        let missing = keys_missing_from(&sample, &keys);
        assert!(
            missing.is_empty(),
            "packaging/transfer.toml lacks {missing:?}"
        );
    }
}

#[test]
fn the_influxdb2_transfer_sample_loads_with_the_v2_api() {
    let config = TransferConfig::load(&packaging("transfer-influxdb2.toml"))
        .expect("packaging/transfer-influxdb2.toml loads");
    let influx = config.influxdb.expect("it has [influxdb]");
    let access = influx.access().expect("its keys fit");
    assert_eq!(
        access.target,
        logship::config::influx::InfluxTarget::V2 {
            org: "ops".into(),
            bucket: "telegraf".into()
        }
    );
    assert_eq!(
        access.files(),
        vec![std::path::PathBuf::from("/etc/logship/influxdb-token")]
    );
}

#[test]
fn the_alert_sample_loads() {
    let config = logship::config::AlertConfig::load(&packaging("alert.toml"))
        .expect("packaging/alert.toml loads");
    assert_eq!(config.receivers(), vec!["alertmanager".to_string()]);
}

#[test]
fn systemd_units_run_the_roles_with_their_sample_paths_and_restart_on_failure() {
    for (unit, role) in [
        ("logship-agent.service", "agent"),
        ("logship-transfer.service", "transfer"),
        ("logship-alert.service", "alert"),
    ] {
        let text = std::fs::read_to_string(packaging("systemd").join(unit)).unwrap();
        assert!(
            text.contains(&format!(
                "ExecStart=/usr/bin/logship {role} --config /etc/logship/{role}.toml"
            )),
            "{unit}"
        );
        for needed in [
            "Restart=on-failure",
            "NoNewPrivileges=yes",
            "ProtectSystem=strict",
            "[Install]",
        ] {
            assert!(text.contains(needed), "{unit} lacks {needed}");
        }
    }
}

/// The top-level `# key = <number>` lines of `sample` before its first table: the defaults it
/// documents.
fn documented_numeric_defaults(sample: &str) -> Vec<String> {
    sample
        .lines()
        .take_while(|line| !line.starts_with('['))
        .filter_map(|line| line.strip_prefix("# "))
        .filter(|line| {
            line.split_once(" = ")
                .is_some_and(|(key, value)| !key.contains(' ') && value.parse::<u64>().is_ok())
        })
        .map(str::to_string)
        .collect()
}

/// Checks that setting each numeric default `sample` documents yields the config `parse` gives
/// without it: `parse(extra)` loads a config with the `extra` top-level lines.
fn assert_documented_defaults_apply<C: std::fmt::Debug, E: std::fmt::Display>(
    sample: &str,
    parse: impl Fn(&str) -> Result<C, E>,
) -> usize {
    let default = parse("").unwrap_or_else(|e| panic!("{sample}: {e}"));
    let text = std::fs::read_to_string(packaging(sample)).unwrap();
    let documented = documented_numeric_defaults(&text);
    for line in &documented {
        let set = parse(&format!("{line}\n")).unwrap_or_else(|e| panic!("{line}: {e}"));
        assert_eq!(
            format!("{set:?}"),
            format!("{default:?}"),
            "packaging/{sample} documents `{line}`, but the default differs"
        );
    }
    documented.len()
}

/// Each default a sample documents is the default the code applies: the config with the line
/// set is the config without it.
#[test]
fn the_defaults_the_samples_document_are_the_defaults_applied() {
    let agent = std::fs::read_to_string(packaging("agent.toml")).unwrap();
    assert!(
        documented_numeric_defaults(&agent)
            .iter()
            .any(|l| l.starts_with("wal_max_bytes = ")),
        "packaging/agent.toml documents no wal_max_bytes"
    );
    let checked = assert_documented_defaults_apply("agent.toml", |extra| {
        AgentConfig::from_toml(&format!("{AGENT_BASE}{extra}[kafka]\nbrokers = \"b\"\n"))
    });
    assert!(checked >= 5, "only {checked} agent defaults documented");
    let checked = assert_documented_defaults_apply("transfer.toml", |extra| {
        TransferConfig::from_toml(&format!(
            "{extra}[kafka]\nbrokers = \"b\"\ngroup = \"g\"\ntopics = [\"t\"]\n\
             [elasticsearch]\nurl = \"http://e\"\nindex = \"{{topic}}\"\n"
        ))
    });
    assert!(checked >= 2, "only {checked} transfer defaults documented");
}
