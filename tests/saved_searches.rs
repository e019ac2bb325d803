//! Saved searches through the console's API, against real etcd and Elasticsearch: a viewer
//! saves and reopens a personal one, may not save (or delete) a shared one, and an editor's
//! shared one opens for another user by its name with its columns.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use common::console::{hash_password, Console};
use common::es_url;

/// A signed-in user: a cookie jar and the CSRF token.
struct Session {
    jar: PathBuf,
    csrf: String,
    base: String,
}

impl Session {
    fn sign_in(console: &Console, dir: &Path, name: &str, password: &str) -> Session {
        let jar = dir.join(format!("{name}.cookies"));
        let base = console.url();
        let login = Command::new("curl")
            .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-c"])
            .arg(&jar)
            .args(["-H", &format!("Origin: {base}")])
            .args(["--data", &format!("name={name}&password={password}&next=/")])
            .arg(format!("{base}/login"))
            .output()
            .unwrap();
        assert_eq!(
            String::from_utf8_lossy(&login.stdout),
            "303",
            "signing in {name}"
        );
        let mut session = Session {
            jar,
            csrf: String::new(),
            base,
        };
        let (_, me) = session.call("GET", "/api/me", None);
        session.csrf = me["csrf"].as_str().unwrap().to_string();
        session
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> (u16, Value) {
        let mut command = Command::new("curl");
        command
            .args(["-s", "-w", "\n%{http_code}", "-X", method, "-b"])
            .arg(&self.jar)
            .args(["-H", &format!("Origin: {}", self.base)])
            .args(["-H", &format!("X-CSRF-Token: {}", self.csrf)]);
        if let Some(body) = body {
            command
                .args(["-H", "Content-Type: application/json", "--data-binary"])
                .arg(body.to_string());
        }
        let output = command
            .arg(format!("{}{path}", self.base))
            .output()
            .unwrap();
        let text = String::from_utf8_lossy(&output.stdout).to_string();
        let (body, code) = text.rsplit_once('\n').unwrap();
        (
            code.trim().parse().unwrap(),
            serde_json::from_str(body).unwrap_or(Value::Null),
        )
    }
}

#[test]
fn personal_searches_for_everyone_shared_ones_by_editors_opened_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("/{}", common::unique("saved"));
    let (ed, vi, other) = (
        hash_password("ed-pw"),
        hash_password("vi-pw"),
        hash_password("ot-pw"),
    );
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [[users]]\nname = \"ed\"\npassword_hash = \"{ed}\"\nrole = \"editor\"\n\
             [[users]]\nname = \"vi\"\npassword_hash = \"{vi}\"\nrole = \"viewer\"\n\
             [[users]]\nname = \"ot\"\npassword_hash = \"{other}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex_pattern = \"saved-none-*\"\n\
             [etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n",
            es_url(),
            common::etcd_endpoint()
        )
    });
    let viewer = Session::sign_in(&console, dir.path(), "vi", "vi-pw");
    let editor = Session::sign_in(&console, dir.path(), "ed", "ed-pw");
    let another = Session::sign_in(&console, dir.path(), "ot", "ot-pw");
    let search = |scope: &str, name: &str| {
        json!({"scope": scope, "name": name, "q": "level:error AND host:\"web-01\"",
               "from": "now-24h", "to": "now", "columns": ["host", "level"], "order": "asc"})
    };

    // A viewer saves a personal search and finds it again; nobody else sees it.
    let (code, saved) = viewer.call(
        "POST",
        "/api/searches",
        Some(&search("personal", "my errors")),
    );
    assert_eq!(code, 201, "{saved}");
    let (_, list) = viewer.call("GET", "/api/searches", None);
    assert_eq!(list["personal"][0]["name"], "my errors", "{list}");
    assert_eq!(list["personal"][0]["columns"], json!(["host", "level"]));
    assert_eq!(list["personal"][0]["order"], "asc");
    assert_eq!(list["can_share"], false);
    let (_, theirs) = another.call("GET", "/api/searches", None);
    assert_eq!(theirs["personal"], json!([]), "{theirs}");

    // A viewer may not share, nor delete what is shared.
    let (code, refused) = viewer.call("POST", "/api/searches", Some(&search("shared", "team")));
    assert_eq!(code, 403, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("editor"),
        "{refused}"
    );

    // An editor's shared search opens for another user by name, columns and all.
    let (code, shared) = editor.call(
        "POST",
        "/api/searches",
        Some(&search("shared", "team errors")),
    );
    assert_eq!(code, 201, "{shared}");
    let (code, opened) = another.call("GET", "/api/searches/shared/team%20errors", None);
    assert_eq!(code, 200, "{opened}");
    assert_eq!(opened["columns"], json!(["host", "level"]));
    assert_eq!(opened["q"], "level:error AND host:\"web-01\"");
    assert_eq!(opened["owner"], "ed");
    let (_, list) = another.call("GET", "/api/searches", None);
    assert_eq!(list["shared"][0]["name"], "team errors", "{list}");
    let (code, _) = viewer.call("DELETE", "/api/searches/shared/team%20errors", None);
    assert_eq!(code, 403);

    // Bad searches are refused with the reason; a missing one is 404.
    let mut bad = search("personal", "bad");
    bad["from"] = json!("yesterday");
    let (code, refused) = viewer.call("POST", "/api/searches", Some(&bad));
    assert_eq!(code, 400, "{refused}");
    assert!(
        refused["error"].as_str().unwrap().contains("from"),
        "{refused}"
    );
    let (code, _) = another.call("GET", "/api/searches/shared/nothing", None);
    assert_eq!(code, 404);

    // Deleting: one's own personal one, and (editors) a shared one.
    let (code, _) = viewer.call("DELETE", "/api/searches/personal/my%20errors", None);
    assert_eq!(code, 200);
    let (code, _) = editor.call("DELETE", "/api/searches/shared/team%20errors", None);
    assert_eq!(code, 200);
    let (_, list) = viewer.call("GET", "/api/searches", None);
    assert_eq!(list["personal"], json!([]));
    assert_eq!(list["shared"], json!([]));
}

/// The console's alert rules (`/api/alerts`): editors create, replace and delete them, checked
/// by the contract `logship ctl alert` uses (refused with the reason); viewers only read.
#[test]
fn alert_rules_from_the_console_are_checked_as_ctl_checks_them_and_only_editors_change_them() {
    let dir = tempfile::tempdir().unwrap();
    let prefix = format!("/{}", common::unique("alerts-console"));
    let (ed, vi) = (hash_password("ed-pw"), hash_password("vi-pw"));
    let console = Console::launch(dir.path(), |addr| {
        format!(
            "listen = \"{addr}\"\n\
             [[users]]\nname = \"ed\"\npassword_hash = \"{ed}\"\nrole = \"editor\"\n\
             [[users]]\nname = \"vi\"\npassword_hash = \"{vi}\"\nrole = \"viewer\"\n\
             [elasticsearch]\nurl = \"{}\"\nindex_pattern = \"alerts-none-*\"\n\
             [etcd]\nendpoints = [\"{}\"]\nprefix = \"{prefix}\"\n",
            es_url(),
            common::etcd_endpoint()
        )
    });
    let viewer = Session::sign_in(&console, dir.path(), "vi", "vi-pw");
    let editor = Session::sign_in(&console, dir.path(), "ed", "ed-pw");
    let rule = json!({"kind": "logs", "query": "ERROR", "window": "1m", "condition": "count > 10",
                      "group_by": ["host"]});
    let (code, refused) = viewer.call("POST", "/api/alerts/shop-errors", Some(&rule));
    assert_eq!(code, 403, "{refused}");
    let (code, saved) = editor.call("POST", "/api/alerts/shop-errors", Some(&rule));
    assert_eq!(code, 200, "{saved}");
    assert_eq!(
        saved["rule"]["max_delay"], "5m",
        "stored normalized: {saved}"
    );
    for (bad, reason) in [
        (
            json!({"kind": "logs", "window": "0s", "condition": "count > 1"}),
            "window",
        ),
        (json!({"kind": "nope"}), "nope"),
        (
            json!({"kind": "logs", "window": "1m", "condition": "count > 1", "group_by": ["a", "b", "c"]}),
            "group_by",
        ),
    ] {
        let (code, answer) = editor.call("POST", "/api/alerts/bad", Some(&bad));
        assert_eq!(code, 400, "{bad} → {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }
    // What needs servers: Elasticsearch's word on the query and group_by, the evaluator's
    // receivers.
    let index = common::unique("console-alert-checks");
    let created = Command::new("curl")
        .args(["-s", "-o", "/dev/null", "-w", "%{http_code}", "-X", "PUT"])
        .args(["-H", "Content-Type: application/json", "--data"])
        .arg(r#"{"mappings": {"properties": {"message": {"type": "text"}, "host": {"type": "keyword"}}}}"#)
        .arg(format!("{}/{index}", es_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&created.stdout), "200");
    let put_receivers = Command::new("etcdctl")
        .env("ETCDCTL_API", "3")
        .args(["--endpoints", &common::etcd_endpoint(), "put"])
        .arg(format!("{prefix}/alerts/receivers"))
        .arg(r#"["ops"]"#)
        .output()
        .unwrap();
    assert!(put_receivers.status.success());
    for (bad, reason) in [
        (
            json!({"kind": "logs", "index": index, "query": "status:[200 TO", "window": "1m", "condition": "count > 1"}),
            "Elasticsearch refuses it",
        ),
        (
            json!({"kind": "logs", "index": index, "window": "1m", "condition": "count > 1", "group_by": ["message"]}),
            "is a text field",
        ),
        (
            json!({"kind": "agent_down", "receivers": ["pager"]}),
            "\"pager\" is not a receiver",
        ),
    ] {
        let (code, answer) = editor.call("POST", "/api/alerts/bad", Some(&bad));
        assert_eq!(code, 400, "{bad} → {answer}");
        assert!(
            answer["error"].as_str().unwrap().contains(reason),
            "{answer}"
        );
    }
    let (code, listed) = viewer.call("GET", "/api/alerts", None);
    assert_eq!(code, 200);
    let names: Vec<&str> = listed["rules"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap())
        .collect();
    assert_eq!(
        names,
        vec!["shop-errors"],
        "the refused ones were not stored: {listed}"
    );
    assert_eq!(listed["rules"][0]["kind"], "logs");
    let (code, _) = viewer.call("DELETE", "/api/alerts/shop-errors", None);
    assert_eq!(code, 403);
    let (code, _) = editor.call("DELETE", "/api/alerts/shop-errors", None);
    assert_eq!(code, 200);
    let (code, _) = editor.call("DELETE", "/api/alerts/shop-errors", None);
    assert_eq!(code, 404);
}
