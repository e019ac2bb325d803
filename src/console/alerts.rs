//! The console's alerts (`/alerts`): every rule stored in etcd with the evaluator's state of
//! it — groups firing and since when, the last window evaluated, how far evaluation runs behind
//! now, windows held by hosts — and, for editors, creating, replacing and deleting rules,
//! checked by the same contract as `logship ctl alert` ([`crate::etcd::alert_rules`]). The
//! evaluator's state is read as stored (JSON), not interpreted here.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::Extension;
use serde_json::{json, Value};

use super::auth::{require_editor, Caller, Refusal};
use super::collect::unavailable;
use super::collect::CentralStore;
use super::Console;
use crate::es::rule_checks::check_logs_rule;
use crate::etcd::alert_rules::{check_name, check_receivers, receivers_key, Rule};
use crate::etcd::{delete_retried, get_prefix, put_retried};

fn store(console: &Console) -> Result<&CentralStore, Refusal> {
    super::collect::central(console, "alert rules live in etcd")
}

/// `GET /api/alerts`: every rule (or why it does not read) with its stored state.
pub async fn list(State(console): State<Console>) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let rules_prefix = format!("{}/alerts/rules/", store.prefix);
    let states_prefix = format!("{}/alerts/state/", store.prefix);
    let (rules, states) = match tokio::try_join!(
        get_prefix(&store.access, &rules_prefix),
        get_prefix(&store.access, &states_prefix)
    ) {
        Ok(both) => both,
        Err(error) => return unavailable(error),
    };
    let states: std::collections::BTreeMap<String, Value> = states
        .into_iter()
        .filter_map(|(key, value)| {
            Some((
                key.strip_prefix(&states_prefix)?.to_string(),
                serde_json::from_slice(&value).ok()?,
            ))
        })
        .collect();
    let now_ms = (time::OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000) as i64;
    let rules: Vec<Value> = rules
        .into_iter()
        .filter_map(|(key, value)| {
            let name = key.strip_prefix(&rules_prefix)?.to_string();
            let state = states.get(&name).cloned().unwrap_or(Value::Null);
            let behind_s = state["next_window"]
                .as_i64()
                .filter(|_| state["rule"]["kind"] == "logs")
                .map(|next| ((now_ms - next) / 1000).max(0));
            Some(match Rule::parse(&name, &value) {
                Ok(rule) => json!({
                    "name": name,
                    "kind": rule.kind(),
                    "rule": rule,
                    "state": state,
                    "behind_s": behind_s,
                }),
                Err(refused) => json!({
                    "name": name,
                    "unreadable": refused.reason,
                    "raw": String::from_utf8_lossy(&value),
                    "state": state,
                    "behind_s": behind_s,
                }),
            })
        })
        .collect();
    super::json_response(StatusCode::OK, &json!({ "rules": rules, "now_ms": now_ms }))
}

/// `POST /api/alerts/{name}` (editors): the body is the rule's JSON, checked as `ctl` checks
/// it; stored normalized; 400 with the reason when refused.
pub async fn set(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refusal) = require_editor(&caller) {
        return refusal.into_response();
    }
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let rule = match Rule::parse(&name, &body) {
        Ok(rule) => rule,
        Err(refused) => {
            return super::json_response(
                StatusCode::BAD_REQUEST,
                &json!({ "error": refused.to_string() }),
            )
        }
    };
    // What needs a server: the evaluator's receivers, and Elasticsearch's word on the query and
    // the group_by fields.
    let known = match get_prefix(&store.access, &receivers_key(&store.prefix)).await {
        Ok(found) => found
            .first()
            .and_then(|(_, value)| serde_json::from_slice::<Vec<String>>(value).ok()),
        Err(error) => return unavailable(error),
    };
    let mut checked = match &known {
        Some(known) => check_receivers(&rule, known),
        None => Ok(()),
    };
    if let (Ok(()), Rule::Logs(logs)) = (&checked, &rule) {
        let index = logs
            .index
            .clone()
            .unwrap_or_else(|| console.indices().join(","));
        checked = check_logs_rule(&console.es.get(), &index, &logs.query, &logs.group_by).await;
    }
    if let Err(reason) = checked {
        return super::json_response(
            StatusCode::BAD_REQUEST,
            &json!({ "error": format!("rule {name:?} refused: {reason}") }),
        );
    }
    let value = match serde_json::to_vec(&rule) {
        Ok(value) => value,
        Err(error) => {
            return super::json_response(
                StatusCode::INTERNAL_SERVER_ERROR,
                &json!({ "error": format!("cannot encode the rule: {error}") }),
            )
        }
    };
    let key = format!("{}/alerts/rules/{name}", store.prefix);
    let result = put_retried(&store.access, &key, &value).await;
    match result {
        Ok(_) => {
            tracing::info!(
                user = caller.user.as_deref().unwrap_or("(open console)"),
                %key, "alert rule set from the console"
            );
            super::json_response(StatusCode::OK, &json!({ "name": name, "rule": rule }))
        }
        Err(error) => unavailable(error),
    }
}

/// `DELETE /api/alerts/{name}` (editors).
pub async fn delete(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    if let Err(refusal) = require_editor(&caller) {
        return refusal.into_response();
    }
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(reason) = check_name(&name) {
        return super::json_response(StatusCode::BAD_REQUEST, &json!({ "error": reason }));
    }
    let key = format!("{}/alerts/rules/{name}", store.prefix);
    let result = delete_retried(&store.access, &key).await;
    match result {
        Ok(response) if response.deleted() > 0 => {
            tracing::info!(
                user = caller.user.as_deref().unwrap_or("(open console)"),
                %key, "alert rule deleted from the console"
            );
            super::json_response(StatusCode::OK, &json!({ "deleted": name }))
        }
        Ok(_) => super::json_response(
            StatusCode::NOT_FOUND,
            &json!({ "error": format!("no rule {name:?}") }),
        ),
        Err(error) => unavailable(error),
    }
}
