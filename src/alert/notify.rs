//! Sending notifications: to Prometheus Alertmanager (`POST /api/v2/alerts`) and to plain
//! webhooks (one POST of the [`Notification`] as JSON, with `Idempotency-Key`). A send either
//! succeeds (2xx) or is an error with the receiver's answer; the caller keeps the notification
//! in the stored outbox and sends it again until it succeeds.

use std::collections::BTreeMap;
use std::time::Duration;

use serde_json::json;

use super::episodes::{Notification, State};
use crate::config::alert::{AlertConfig, ALERTMANAGER};
use crate::config::secret::SecretSource;

/// How long one send may take.
pub const SEND_TIMEOUT: Duration = Duration::from_secs(10);
/// A firing alert tells Alertmanager it ends this long after each (re-)send, unless sent again:
/// Alertmanager's client contract (re-send while firing; the evaluator re-sends every
/// [`ALERTMANAGER_RESEND`]).
pub const ALERTMANAGER_ENDS_AFTER: Duration = Duration::from_secs(300);
/// How often firing alerts are sent to Alertmanager again.
pub const ALERTMANAGER_RESEND: Duration = Duration::from_secs(60);

/// Why a send failed.
#[derive(Debug, thiserror::Error)]
pub enum SendError {
    /// No such receiver in alert.toml.
    #[error("no receiver {0:?} in alert.toml")]
    Unknown(String),
    /// The token file cannot be read.
    #[error("webhook {name:?}: {error}")]
    Token {
        /// The webhook.
        name: String,
        /// Why.
        error: String,
    },
    /// The request failed or was answered with something other than 2xx.
    #[error("{receiver}: {error}")]
    Failed {
        /// The receiver.
        receiver: String,
        /// What happened.
        error: String,
    },
}

/// The receivers of alert.toml.
pub struct Receivers {
    client: reqwest::Client,
    alertmanager: Option<String>,
    webhooks: BTreeMap<String, (String, Option<SecretSource>)>,
}

impl Receivers {
    /// The receivers `config` names.
    pub fn new(config: &AlertConfig) -> anyhow::Result<Receivers> {
        let client = reqwest::Client::builder()
            .timeout(SEND_TIMEOUT)
            .build()
            .map_err(|e| anyhow::anyhow!("cannot build an HTTP client: {e}"))?;
        Ok(Receivers {
            client,
            alertmanager: config
                .alertmanager
                .as_ref()
                .map(|a| format!("{}/api/v2/alerts", a.url.trim_end_matches('/'))),
            webhooks: config
                .webhook
                .iter()
                .map(|w| {
                    (
                        w.name.clone(),
                        (w.url.clone(), w.token_file.clone().map(SecretSource::File)),
                    )
                })
                .collect(),
        })
    }

    /// Sends `notification` to `receiver`.
    pub async fn send(&self, receiver: &str, notification: &Notification) -> Result<(), SendError> {
        let failed = |error: String| SendError::Failed {
            receiver: receiver.to_string(),
            error,
        };
        let request = if receiver == ALERTMANAGER {
            let url = self
                .alertmanager
                .as_ref()
                .ok_or_else(|| SendError::Unknown(receiver.into()))?;
            self.client.post(url).json(&alertmanager_alerts(
                notification,
                time::OffsetDateTime::now_utc(),
            ))
        } else {
            let (url, token) = self
                .webhooks
                .get(receiver)
                .ok_or_else(|| SendError::Unknown(receiver.into()))?;
            let mut request = self
                .client
                .post(url)
                .header("Idempotency-Key", notification.idempotency_key())
                .json(&webhook_body(notification));
            if let Some(token) = token {
                let token = token.read().map_err(|e| SendError::Token {
                    name: receiver.into(),
                    error: e.to_string(),
                })?;
                request = request.bearer_auth(token.expose());
            }
            request
        };
        let response = request.send().await.map_err(|e| failed(e.to_string()))?;
        let status = response.status();
        if status.is_success() {
            return Ok(());
        }
        let body = response.text().await.unwrap_or_default();
        Err(failed(format!(
            "answered {status}: {}",
            body.chars().take(300).collect::<String>()
        )))
    }
}

/// The webhook body (docs/alerts.md): the notification without the receivers' bookkeeping.
pub fn webhook_body(n: &Notification) -> serde_json::Value {
    json!({
        "key": n.key,
        "rule": n.rule,
        "group": n.group,
        "state": n.state,
        "window": n.window,
        "count": n.count,
        "value": n.value,
        "samples": n.samples,
        "incomplete_hosts": n.incomplete_hosts,
        "url": n.url,
        "summary": n.summary,
        "labels": n.labels,
    })
}

/// The Alertmanager alert of `n` at `now`: labels `alertname` + the group + the rule's labels;
/// firing: ends [`ALERTMANAGER_ENDS_AFTER`] from now; resolved: ends now.
pub fn alertmanager_alerts(n: &Notification, now: time::OffsetDateTime) -> serde_json::Value {
    let mut labels = n.labels.clone();
    labels.extend(n.group.clone());
    labels.insert("alertname".into(), n.rule.clone());
    let ends = match n.state {
        State::Firing => now + ALERTMANAGER_ENDS_AFTER,
        State::Resolved => now,
    };
    let rfc = |t: time::OffsetDateTime| {
        t.format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default()
    };
    let starts = n.key.rsplit('/').next().unwrap_or_default();
    json!([{
        "labels": labels,
        "annotations": {
            "summary": n.summary,
            "samples": n.samples.join("\n"),
            "window": format!("{} – {}", n.window.from, n.window.to),
            "count": n.count.to_string(),
            "incomplete_hosts": n.incomplete_hosts.join(","),
            "key": n.key,
        },
        "startsAt": starts,
        "endsAt": rfc(ends),
        "generatorURL": n.url,
    }])
}
