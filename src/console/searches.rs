//! Saved searches, kept in etcd under the console's prefix (`[etcd]`).
//!
//! A saved search is a name, a query, a time range (relative, `now-24h` … `now`, or absolute
//! RFC 3339 times), the columns shown and the order. Everyone signed in has personal ones
//! (`{prefix}/console/searches/personal/{user}/{name}`); editors make shared ones
//! (`{prefix}/console/searches/shared/{name}`), which everyone sees and which open by a stable
//! URL, `/s/{name}`. The value is versioned JSON ([`SAVED_SEARCH_VERSION`]); a value that does
//! not read is listed as unreadable, never guessed at.
//!
//! - `GET /api/searches`: `{"personal": [...], "shared": [...]}`, sorted by name;
//! - `GET /api/searches/shared/{name}`: one shared search (404 when there is none);
//! - `POST /api/searches` with `{"scope": "personal"|"shared", "name", "q", "from", "to",
//!   "columns", "order"}`: saves (replaces one of the same name); a viewer's shared one is 403;
//! - `DELETE /api/searches/{scope}/{name}`: a personal one of the caller's, or (editors) a
//!   shared one.

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse as _, Response};
use axum::Extension;
use etcd_client::GetOptions;
use serde::{Deserialize, Serialize};
use serde_json::{json, Value};
use time::OffsetDateTime;

use super::auth::{Caller, Refusal};
use super::collect::{unavailable, CentralStore};
use super::Console;
use crate::config::Role;
use crate::etcd::{delete_retried, get_retried, put_retried, EtcdError};

/// The version of the stored value; another version is listed as unreadable.
pub const SAVED_SEARCH_VERSION: u32 = 1;
/// The longest name.
const MAX_NAME: usize = 100;
/// The longest query.
const MAX_QUERY: usize = 10_000;
/// The most columns.
const MAX_COLUMNS: usize = 50;

/// One saved search as stored and as the API gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SavedSearch {
    /// [`SAVED_SEARCH_VERSION`].
    pub version: u32,
    /// Its name (unique within its scope).
    pub name: String,
    /// The `query_string` query.
    #[serde(default)]
    pub q: String,
    /// Start of the range: `now-…` or an RFC 3339 time.
    pub from: String,
    /// End of the range: `now`, `now-…` or an RFC 3339 time.
    pub to: String,
    /// Fields shown as columns of the hits.
    #[serde(default)]
    pub columns: Vec<String>,
    /// `desc` (newest first) or `asc`.
    #[serde(default = "default_order")]
    pub order: String,
    /// Who saved it last.
    #[serde(default)]
    pub owner: String,
    /// When (RFC 3339).
    #[serde(default)]
    pub saved_at: String,
}

fn default_order() -> String {
    "desc".into()
}

/// What a client sends to save a search.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SaveRequest {
    /// `personal` or `shared`.
    scope: String,
    name: String,
    #[serde(default)]
    q: String,
    from: String,
    to: String,
    #[serde(default)]
    columns: Vec<String>,
    #[serde(default = "default_order")]
    order: String,
    /// Ignored (present in exported JSON, so an export imports as it is).
    #[serde(default)]
    #[allow(dead_code)]
    version: Option<u32>,
    #[serde(default)]
    #[allow(dead_code)]
    owner: Option<String>,
    #[serde(default)]
    #[allow(dead_code)]
    saved_at: Option<String>,
}

/// Why a search cannot be saved as given.
fn check(request: &SaveRequest) -> Result<(), String> {
    let name = request.name.trim();
    if name.is_empty() || name.chars().count() > MAX_NAME {
        return Err(format!("name: 1 to {MAX_NAME} characters"));
    }
    if name.contains('/') || name.chars().any(char::is_control) {
        return Err("name: no / or control characters".into());
    }
    if request.q.len() > MAX_QUERY {
        return Err(format!("q: at most {MAX_QUERY} bytes"));
    }
    let now = OffsetDateTime::now_utc();
    let from = super::query::resolve_time("from", &request.from, now).map_err(|e| e.0)?;
    let to = super::query::resolve_time("to", &request.to, now).map_err(|e| e.0)?;
    if from > to {
        return Err(format!(
            "from ({}) is after to ({})",
            request.from, request.to
        ));
    }
    if request.columns.len() > MAX_COLUMNS
        || request
            .columns
            .iter()
            .any(|c| c.trim().is_empty() || c.len() > 256)
    {
        return Err(format!(
            "columns: at most {MAX_COLUMNS} field names, none empty"
        ));
    }
    if request.order != "desc" && request.order != "asc" {
        return Err("order: desc or asc".into());
    }
    Ok(())
}

/// The key prefix of a scope: `shared/`, or `personal/{user}/`.
fn scope_prefix(prefix: &str, scope: &str, caller: &Caller) -> Result<String, Refusal> {
    let base = format!("{}/console/searches", prefix.trim_end_matches('/'));
    match scope {
        "shared" => Ok(format!("{base}/shared/")),
        "personal" => Ok(format!("{base}/personal/{}/", user_of(caller))),
        other => Err(Refusal(
            StatusCode::BAD_REQUEST,
            format!("scope: {other:?} is not personal or shared"),
        )),
    }
}

/// The user personal searches are kept under (`anonymous` on a console without users).
fn user_of(caller: &Caller) -> String {
    caller
        .user
        .as_deref()
        .unwrap_or("anonymous")
        .replace('/', "%2F")
}

fn store(console: &Console) -> Result<&CentralStore, Refusal> {
    super::collect::central(console, "searches cannot be saved here")
}

/// A stored value as the API lists it: the search, or its name and why it does not read.
fn listed(key: &[u8], value: &[u8]) -> Value {
    match serde_json::from_slice::<SavedSearch>(value) {
        Ok(search) if search.version == SAVED_SEARCH_VERSION => json!(search),
        Ok(search) => {
            json!({"name": search.name, "unreadable": format!("version {} (this console reads {SAVED_SEARCH_VERSION})", search.version)})
        }
        Err(error) => {
            let key = String::from_utf8_lossy(key);
            let name = key.rsplit('/').next().unwrap_or_default().to_string();
            json!({"name": name, "unreadable": error.to_string()})
        }
    }
}

async fn list(store: &CentralStore, prefix: &str) -> Result<Vec<Value>, EtcdError> {
    let response =
        get_retried(&store.access, prefix, Some(GetOptions::new().with_prefix())).await?;
    let mut searches: Vec<Value> = response
        .kvs()
        .iter()
        .map(|kv| listed(kv.key(), kv.value()))
        .collect();
    searches.sort_by(|a, b| a["name"].as_str().cmp(&b["name"].as_str()));
    Ok(searches)
}

/// `GET /api/searches`.
pub async fn list_searches(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let (Ok(personal), Ok(shared)) = (
        scope_prefix(&store.prefix, "personal", &caller),
        scope_prefix(&store.prefix, "shared", &caller),
    ) else {
        return Refusal(StatusCode::INTERNAL_SERVER_ERROR, "no scope".into()).into_response();
    };
    match tokio::try_join!(list(store, &personal), list(store, &shared)) {
        Ok((personal, shared)) => super::json_response(
            StatusCode::OK,
            &json!({"personal": personal, "shared": shared, "can_share": caller.role == Role::Editor}),
        ),
        Err(error) => unavailable(error),
    }
}

/// `GET /api/searches/shared/{name}`.
pub async fn get_shared(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let key = match scope_prefix(&store.prefix, "shared", &caller) {
        Ok(prefix) => format!("{prefix}{name}"),
        Err(refusal) => return refusal.into_response(),
    };
    let result = get_retried(&store.access, &key, None).await;
    match result {
        Ok(response) => match response.kvs().first() {
            Some(kv) => super::json_response(StatusCode::OK, &listed(kv.key(), kv.value())),
            None => Refusal(
                StatusCode::NOT_FOUND,
                format!("no shared search is named {name:?}"),
            )
            .into_response(),
        },
        Err(error) => unavailable(error),
    }
}

/// `POST /api/searches`.
pub async fn save(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    body: axum::body::Bytes,
) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    let request: SaveRequest = match serde_json::from_slice(&body) {
        Ok(request) => request,
        Err(error) => {
            return Refusal(StatusCode::BAD_REQUEST, format!("refused: {error}")).into_response()
        }
    };
    if request.scope == "shared" && caller.role != Role::Editor {
        return Refusal(
            StatusCode::FORBIDDEN,
            "viewers cannot save shared searches (this needs the editor role); save it as a \
             personal one"
                .into(),
        )
        .into_response();
    }
    if let Err(reason) = check(&request) {
        return Refusal(StatusCode::BAD_REQUEST, format!("refused: {reason}")).into_response();
    }
    let prefix = match scope_prefix(&store.prefix, &request.scope, &caller) {
        Ok(prefix) => prefix,
        Err(refusal) => return refusal.into_response(),
    };
    let search = SavedSearch {
        version: SAVED_SEARCH_VERSION,
        name: request.name.trim().to_string(),
        q: request.q,
        from: request.from,
        to: request.to,
        columns: request
            .columns
            .iter()
            .map(|c| c.trim().to_string())
            .collect(),
        order: request.order,
        owner: caller.user.clone().unwrap_or_default(),
        saved_at: OffsetDateTime::now_utc()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap_or_default(),
    };
    let value = match serde_json::to_vec(&search) {
        Ok(value) => value,
        Err(error) => {
            return Refusal(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot encode the search: {error}"),
            )
            .into_response()
        }
    };
    let key = format!("{prefix}{}", search.name);
    let result = put_retried(&store.access, &key, &value).await;
    match result {
        Ok(_) => {
            tracing::info!(
                user = caller.user.as_deref().unwrap_or("(open console)"),
                scope = %request.scope, name = %search.name, "search saved"
            );
            super::json_response(StatusCode::CREATED, &json!(search))
        }
        Err(error) => unavailable(error),
    }
}

/// `DELETE /api/searches/shared/{name}` (the route of `GET` one shared search).
pub async fn delete_shared(
    console: State<Console>,
    caller: Extension<Caller>,
    Path(name): Path<String>,
) -> Response {
    remove(console, caller, "shared".into(), name).await
}

/// `DELETE /api/searches/{scope}/{name}`.
pub async fn delete(
    console: State<Console>,
    caller: Extension<Caller>,
    Path((scope, name)): Path<(String, String)>,
) -> Response {
    remove(console, caller, scope, name).await
}

async fn remove(
    State(console): State<Console>,
    Extension(caller): Extension<Caller>,
    scope: String,
    name: String,
) -> Response {
    let store = match store(&console) {
        Ok(store) => store,
        Err(refusal) => return refusal.into_response(),
    };
    if scope == "shared" && caller.role != Role::Editor {
        return Refusal(
            StatusCode::FORBIDDEN,
            "viewers cannot delete shared searches (this needs the editor role)".into(),
        )
        .into_response();
    }
    let key = match scope_prefix(&store.prefix, &scope, &caller) {
        Ok(prefix) => format!("{prefix}{name}"),
        Err(refusal) => return refusal.into_response(),
    };
    let result = delete_retried(&store.access, &key).await;
    match result {
        Ok(response) if response.deleted() > 0 => {
            super::json_response(StatusCode::OK, &json!({"deleted": name}))
        }
        Ok(_) => Refusal(
            StatusCode::NOT_FOUND,
            format!("no {scope} search is named {name:?}"),
        )
        .into_response(),
        Err(error) => unavailable(error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn request(name: &str, from: &str, order: &str) -> SaveRequest {
        serde_json::from_value(json!({
            "scope": "personal", "name": name, "q": "level:error", "from": from, "to": "now",
            "columns": ["host"], "order": order
        }))
        .unwrap()
    }

    #[test]
    fn names_ranges_and_orders_are_checked() {
        assert!(check(&request("errors", "now-24h", "desc")).is_ok());
        assert!(check(&request("errors", "2026-01-01T00:00:00Z", "asc")).is_ok());
        assert!(check(&request("", "now-24h", "desc"))
            .unwrap_err()
            .contains("name"));
        assert!(check(&request("a/b", "now-24h", "desc"))
            .unwrap_err()
            .contains("/"));
        assert!(check(&request("x", "yesterday", "desc"))
            .unwrap_err()
            .contains("from"));
        assert!(check(&request("x", "now-1h", "up"))
            .unwrap_err()
            .contains("order"));
    }

    #[test]
    fn a_value_of_another_version_or_shape_is_listed_as_unreadable() {
        let good = json!({"version": 1, "name": "a", "q": "", "from": "now-1h", "to": "now"});
        assert_eq!(listed(b"/p/a", good.to_string().as_bytes())["name"], "a");
        let later = json!({"version": 2, "name": "b", "from": "now-1h", "to": "now"});
        assert!(listed(b"/p/b", later.to_string().as_bytes())["unreadable"]
            .as_str()
            .unwrap()
            .contains("version 2"));
        assert_eq!(listed(b"/p/c", b"{").get("name").unwrap(), "c");
    }
}
