//! Reading and editing the hosts' collect entries in etcd from the console (`[etcd]`).
//!
//! A write is validated exactly as `logship ctl collect set` validates a file
//! ([`crate::etcd::entries::parse_entries`]) and refused with the same reason; it is stored
//! normalized, as `ctl` stores it. Only editors may write ([`super::auth::require_editor`]).
//! Each request opens its own connection, reading the credentials files then, so a rotated
//! etcd password or certificate is used from the next request on.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::Extension;
use etcd_client::GetOptions;
use serde_json::{json, Value};

use super::auth::{require_editor, Caller, Refusal};
use super::Console;
use crate::config::etcd_access::EtcdAccess;
use crate::etcd::entries::parse_entries;
use crate::etcd::registry::Registration;
use crate::etcd::{
    collect_key, get_retried, put_retried, registry_prefix, retried, within, EtcdError,
    CONSOLE_PATIENCE,
};

/// Where the console finds the central configuration.
#[derive(Debug, Clone)]
pub struct CentralStore {
    /// Endpoints and credentials.
    pub access: EtcdAccess,
    /// The agents' key prefix.
    pub prefix: String,
}

fn answer(status: StatusCode, body: Value) -> Response {
    super::json_response(status, &body)
}

/// The console's etcd, or 404 saying that without `[etcd]` `what` (e.g. "searches cannot be
/// saved here").
pub(crate) fn central<'a>(console: &'a Console, what: &str) -> Result<&'a CentralStore, Refusal> {
    console.central.as_deref().ok_or_else(|| {
        Refusal(
            StatusCode::NOT_FOUND,
            format!("this console has no [etcd] table: {what}"),
        )
    })
}

/// 503 naming etcd's error.
pub(crate) fn unavailable(error: EtcdError) -> Response {
    answer(
        StatusCode::SERVICE_UNAVAILABLE,
        json!({ "error": format!("etcd cannot answer: {error}") }),
    )
}

fn store(console: &Console) -> Result<&CentralStore, Refusal> {
    central(console, "collect entries cannot be edited here")
}

fn checked_host(host: &str) -> Result<(), Refusal> {
    if host.is_empty() || host.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("{host:?} is not a host name"),
        ));
    }
    Ok(())
}

/// `GET /api/hosts`: the agents in the registry (host, version, started, heartbeat, files).
pub async fn hosts(State(console): State<Console>) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let key = registry_prefix(&store.prefix);
    let result = retried(&store.access, CONSOLE_PATIENCE, |mut client| {
        let key = key.as_str();
        async move {
            within(
                "get",
                client.get(key, Some(GetOptions::new().with_prefix())),
            )
            .await
        }
    })
    .await;
    let response = match result {
        Ok(response) => response,
        Err(error) => return unavailable(error),
    };
    let hosts: Vec<Value> = response
        .kvs()
        .iter()
        .map(|kv| {
            let host = String::from_utf8_lossy(kv.key());
            let host = host.strip_prefix(&key).unwrap_or(&host).to_string();
            match serde_json::from_slice::<Registration>(kv.value()) {
                Ok(r) => json!({
                    "host": host, "version": r.version, "started_at": r.started_at,
                    "heartbeat_at": r.heartbeat_at, "files": r.files,
                }),
                Err(error) => json!({ "host": host, "error": error.to_string() }),
            }
        })
        .collect();
    super::json_response(StatusCode::OK, &json!({ "hosts": hosts }))
}

/// `GET /api/collect/{host}`: the host's entries (`[]` when it has none) and the revision.
pub async fn get_entries(State(console): State<Console>, Path(host): Path<String>) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = checked_host(&host) {
        return refusal.into_response();
    }
    let key = collect_key(&store.prefix, &host);
    let result = get_retried(&store.access, &key, None).await;
    let response = match result {
        Ok(response) => response,
        Err(error) => return unavailable(error),
    };
    let Some(kv) = response.kvs().first() else {
        return super::json_response(
            StatusCode::OK,
            &json!({ "host": host, "key": key, "entries": [], "revision": 0 }),
        );
    };
    match parse_entries(kv.value()) {
        Ok(entries) => super::json_response(
            StatusCode::OK,
            &json!({
                "host": host, "key": key, "entries": entries, "revision": kv.mod_revision(),
            }),
        ),
        // Show what is there, so an editor can repair it.
        Err(error) => super::json_response(
            StatusCode::OK,
            &json!({
                "host": host, "key": key,
                "raw": String::from_utf8_lossy(kv.value()),
                "invalid": error.to_string(),
                "revision": kv.mod_revision(),
            }),
        ),
    }
}

/// `POST /api/collect/{host}` (editors): validates the JSON array in the body as `ctl` does and
/// makes it the host's entries; 400 with the reason when refused.
pub async fn set_entries(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(host): Path<String>,
    body: axum::body::Bytes,
) -> Response {
    if let Err(refusal) = require_editor(&caller) {
        return refusal.into_response();
    }
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    if let Err(refusal) = checked_host(&host) {
        return refusal.into_response();
    }
    let entries = match parse_entries(&body) {
        Ok(entries) => entries,
        Err(error) => {
            return answer(
                StatusCode::BAD_REQUEST,
                json!({ "error": format!("refused: {error}") }),
            )
        }
    };
    let value = match serde_json::to_vec(&entries) {
        Ok(value) => value,
        Err(error) => {
            return answer(
                StatusCode::INTERNAL_SERVER_ERROR,
                json!({ "error": format!("cannot encode the entries: {error}") }),
            )
        }
    };
    let key = collect_key(&store.prefix, &host);
    let result = put_retried(&store.access, &key, &value).await;
    match result {
        Ok(response) => {
            let revision = response.header().map(|h| h.revision()).unwrap_or(0);
            tracing::info!(
                user = caller.user.as_deref().unwrap_or("(open console)"),
                %key, revision, entries = entries.len(),
                "collect entries changed from the console"
            );
            super::json_response(
                StatusCode::OK,
                &json!({ "key": key, "revision": revision, "entries": entries }),
            )
        }
        Err(error) => unavailable(error),
    }
}
