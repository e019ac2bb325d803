//! The Alertmanager `scripts/services.sh` runs for the alert tests (issue 30): its v2 API
//! takes an alert, and its one route delivers it to the webhook on 127.0.0.1:9194, firing and
//! then resolved. The alert tests rely on exactly this; if the harness changes, this says so
//! first.
// Test code: a failed expectation is the test failing (the workspace lints deny these elsewhere).
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod common;

use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// Accepts webhook POSTs on 127.0.0.1:9194 and hands each JSON body to the returned channel.
fn webhook() -> mpsc::Receiver<Value> {
    let (_, received) = common::webhook::listen("127.0.0.1:9194");
    let (sender, receiver) = mpsc::channel();
    std::thread::spawn(move || {
        for r in received {
            if sender.send(r.body).is_err() {
                return;
            }
        }
    });
    receiver
}

fn post_alert(alert: &Value) {
    let output = std::process::Command::new("curl")
        .args([
            "-s",
            "-w",
            "%{http_code}",
            "-o",
            "/dev/null",
            "-H",
            "Content-Type: application/json",
        ])
        .args(["--data-binary", &json!([alert]).to_string()])
        .arg(format!("{}/api/v2/alerts", common::alertmanager_url()))
        .output()
        .unwrap();
    assert_eq!(String::from_utf8_lossy(&output.stdout), "200");
}

/// The next notification about `name`, skipping others (a previous run's, being resolved).
fn next_about(receiver: &mpsc::Receiver<Value>, name: &str) -> Value {
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let left = deadline.saturating_duration_since(std::time::Instant::now());
        let notification = receiver
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("no notification about {name} within 30 s"));
        if notification["commonLabels"]["alertname"] == name {
            return notification;
        }
    }
}

#[test]
fn an_alert_posted_to_alertmanager_reaches_the_test_webhook_firing_then_resolved() {
    let receiver = webhook();
    let name = common::unique("harness");
    let mut alert = json!({
        "labels": {"alertname": name, "host": "web-01"},
        "annotations": {"summary": "12 errors on web-01"},
        "generatorURL": "http://127.0.0.1:9700/?q=ERROR",
    });
    post_alert(&alert);
    let firing = next_about(&receiver, &name);
    assert_eq!(firing["status"], "firing", "{firing}");
    assert_eq!(
        firing["alerts"][0]["annotations"]["summary"],
        "12 errors on web-01"
    );
    assert_eq!(firing["alerts"][0]["labels"]["host"], "web-01");

    // Resolved: the same labels with an end in the past.
    alert["endsAt"] = json!("2020-01-01T00:00:00Z");
    post_alert(&alert);
    let resolved = next_about(&receiver, &name);
    assert_eq!(resolved["status"], "resolved", "{resolved}");
}
