//! The console: people search their logs in a browser (`logship console`).
//!
//! One HTTP server (axum) serves the page and its assets, compiled into the binary (nothing
//! from a CDN: it works on an air-gapped host), and the JSON API the page and scripts use:
//!
//! - `GET /api/search?q=&from=&to=&size=&after=`: one page of hits, newest first, with the
//!   exact total, facets (hosts, files) on the first page, and a cursor to the next page
//!   (`search_after`, so paging goes past 10,000 hits);
//! - `GET /api/context/{id}?before=&after=`: the lines around a hit from the same file stream,
//!   in file order (offset), across rename rotations (a stream keeps its id when renamed);
//! - `GET /api/context/{id}/streams`: the streams that held the hit's path before and after its
//!   own (copytruncate, a new file at the old name);
//! - `GET /api/histogram?q=&from=&to=`: matches over time;
//! - `GET /api/export?q=&from=&to=&fields=&format=csv|ndjson`: every hit, oldest first,
//!   streamed through a point in time ([`export`]);
//! - `GET /api/tail?q=`: new matching lines as they are indexed (server-sent events, see
//!   [`tail`]).
//!
//! - `GET /api/hosts`, `GET /api/collect/{host}`, `POST /api/collect/{host}`: the registered
//!   agents and their collect entries in etcd, when the console has an `[etcd]` table
//!   ([`collect`]; writing needs the editor role);
//! - `GET /api/fleet`, `GET /api/hosts/{host}/metrics?range=`, `GET /api/pipeline`: the fleet
//!   pages `/hosts` and `/pipeline` ([`fleet`]), from etcd, InfluxDB (`[influxdb]`), Kafka
//!   (`[kafka]`) and Elasticsearch;
//! - `GET /api/searches`, `POST /api/searches`, `GET /api/searches/shared/{name}`,
//!   `DELETE /api/searches/{scope}/{name}`: saved searches in etcd ([`searches`]); the page
//!   `/s/{name}` opens a shared one;
//! - `GET /api/fields`: the fields of the searched indices' mapping, for columns;
//! - `GET /api/storage`: each index's size and the day retention deletes it, each node's disk
//!   against the watermarks: the page `/storage` ([`storage`]);
//! - `GET /login`, `POST /login`, `POST /logout`, `GET /api/me`: signing in ([`auth`]).
//!
//! Searching asks only Elasticsearch, over the indices of `index_pattern`. A user's
//! mistake is answered 400 with Elasticsearch's reason, an unreachable cluster 503, an unknown id
//! 404, each as `{"error": "..."}` (docs/console.md). With `[[users]]`, everything but the
//! sign-in page needs a session, and every write a CSRF token ([`auth`]); with `[tls]` the
//! console serves HTTPS ([`crate::listener`]).

pub(crate) mod alerts;
pub mod assets;
pub mod auth;
pub(crate) mod collect;
pub(crate) mod export;
pub(crate) mod fleet;
pub(crate) mod query;
pub(crate) mod searches;
pub(crate) mod storage;
pub(crate) mod tail;

use std::convert::Infallible;
use std::sync::Arc;

use anyhow::Context as _;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use serde::Deserialize;
use serde_json::{json, Value};
use time::OffsetDateTime;
use tokio::sync::broadcast::error::RecvError;

use crate::backoff::BackoffPolicy;
use crate::config::ConsoleConfig;
use crate::es::client::{EsClient, EsError, EsSettings, SharedEs};
use crate::shutdown::Shutdown;
use query::{BadRequest, Filter};

/// Pacing of the wait for an Elasticsearch a `ca_fingerprint` pin needs.
const CA_PIN_RETRY: BackoffPolicy = BackoffPolicy::new(
    std::time::Duration::from_millis(500),
    std::time::Duration::from_secs(5),
);

/// What the handlers share.
#[derive(Clone)]
pub(crate) struct Console {
    es: SharedEs,
    indices: Arc<Vec<String>>,
    /// Keeps the dead-letter index out unless named ([`query::data_guard`]).
    guard: Arc<Value>,
    tails: Arc<tail::Tails>,
    auth: Arc<auth::Auth>,
    /// The central configuration, with `[etcd]`.
    central: Option<Arc<collect::CentralStore>>,
    /// InfluxDB and Kafka for the fleet pages.
    fleet: Arc<fleet::Fleet>,
}

impl axum::extract::FromRef<Console> for Arc<auth::Auth> {
    fn from_ref(console: &Console) -> Self {
        console.auth.clone()
    }
}

/// Runs the console until `shutdown`. Binds before returning the first time, so a taken port is
/// a startup error.
/// On every `reload` (SIGHUP, a changed CA, password, API key, certificate or key file) the
/// Elasticsearch client and the TLS listener read their files again.
pub async fn run(
    config: ConsoleConfig,
    shutdown: Shutdown,
    reload: crate::reload::Reload,
) -> anyhow::Result<()> {
    let es = &config.elasticsearch;
    let access = es
        .access()
        .map_err(|message| anyhow::anyhow!("{message}"))?;
    if let Some(warning) = access.deprecation() {
        tracing::warn!("{warning}");
    }
    // Reading the settings needs the server only for a `ca_fingerprint` pin: wait for it then,
    // paced like every other retry (0.5 s doubling to 5 s, with jitter).
    let mut delays = CA_PIN_RETRY.start();
    let settings = loop {
        match EsSettings::read(&access) {
            Ok(settings) => break settings,
            Err(error @ EsError::Transport { .. }) => {
                let delay = delays.next_delay();
                tracing::warn!(
                    %error,
                    "cannot read the CA pin from Elasticsearch yet; retrying in {:.1} s",
                    delay.as_secs_f64()
                );
                tokio::select! {
                    _ = shutdown.wait() => return Ok(()),
                    _ = tokio::time::sleep(delay) => {}
                }
            }
            Err(error) => return Err(error.into()),
        }
    };
    let client =
        SharedEs::new(EsClient::new(&settings).context("cannot set up the Elasticsearch client")?);
    let mut files = access.files();
    files.extend(config.tls.iter().flat_map(|tls| tls.files()));
    let influx = match &config.influxdb {
        Some(influx) => {
            let access = influx
                .access()
                .map_err(|message| anyhow::anyhow!("[influxdb]: {message}"))?;
            let client = crate::influx::SharedInflux::new(
                crate::influx::InfluxClient::new(&access)
                    .context("cannot set up the InfluxDB client")?,
            );
            files.extend(access.files());
            client.follow(access, &reload);
            Some(client)
        }
        None => None,
    };
    if let Some(kafka) = &config.kafka {
        files.extend(crate::config::kafka_security::files(
            kafka.tls.as_ref(),
            kafka.sasl.as_ref(),
        ));
    }
    let _watch = reload.watch_files(files);
    client.follow(access, &reload);
    let indices: Arc<Vec<String>> = Arc::new(
        es.search
            .index_pattern
            .split(',')
            .map(|p| p.trim().to_string())
            .collect(),
    );
    let guard = Arc::new(query::data_guard(&indices));
    let bound = crate::listener::Bound::bind(config.listen, config.tls.as_ref()).await?;
    let auth = Arc::new(auth::Auth::new(&config.users, bound.is_tls())?);
    if auth.is_open() && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "the console has no [[users]]: anyone who reaches it may search and edit");
    }
    if !bound.is_tls() && !auth.is_open() && !config.listen.ip().is_loopback() {
        tracing::warn!(listen = %config.listen, "passwords and sessions cross the network in clear: add [tls]");
    }
    let central = match &config.etcd {
        Some(etcd) => Some(Arc::new(collect::CentralStore {
            access: etcd
                .connection
                .access()
                .map_err(|message| anyhow::anyhow!("{message}"))?,
            prefix: etcd.connection.prefix.clone(),
        })),
        None => None,
    };
    let app = router(Console {
        tails: Arc::new(tail::Tails::new(
            client.clone(),
            indices.clone(),
            guard.clone(),
        )),
        es: client,
        indices,
        guard,
        auth,
        central,
        fleet: Arc::new(fleet::Fleet::new(influx, config.kafka.clone())),
    });
    tracing::info!(
        url = %bound.url(),
        elasticsearch = %es.connection.url,
        index_pattern = %es.search.index_pattern,
        users = config.users.len(),
        "console listening"
    );
    bound
        .serve(app, shutdown, &reload)
        .await
        .context("the console's HTTP server failed")
}

fn router(console: Console) -> Router {
    let auth = console.auth.clone();
    Router::new()
        .route("/", get(assets::page))
        .route("/context/{id}", get(assets::page))
        .route("/tail", get(assets::page))
        .route("/collect", get(assets::page))
        .route("/hosts", get(assets::page))
        .route("/pipeline", get(assets::page))
        .route("/storage", get(assets::page))
        .route("/alerts", get(assets::page))
        .route("/api/alerts", get(alerts::list))
        .route(
            "/api/alerts/{name}",
            axum::routing::post(alerts::set).delete(alerts::delete),
        )
        .route("/api/storage", get(storage::storage))
        .route("/s/{name}", get(assets::page))
        .route(
            "/api/searches",
            get(searches::list_searches).post(searches::save),
        )
        .route(
            "/api/searches/shared/{name}",
            get(searches::get_shared).delete(searches::delete_shared),
        )
        .route(
            "/api/searches/{scope}/{name}",
            axum::routing::delete(searches::delete),
        )
        .route("/api/fields", get(api_fields))
        .route("/api/fleet", get(fleet::fleet))
        .route("/api/hosts/{host}/metrics", get(fleet::host_metrics))
        .route("/api/pipeline", get(fleet::pipeline))
        .route("/login", get(auth::login_get).post(auth::login_post))
        .route("/logout", axum::routing::post(auth::logout))
        .route("/api/me", get(auth::me))
        .route("/api/hosts", get(collect::hosts))
        .route(
            "/api/collect/{host}",
            get(collect::get_entries).post(collect::set_entries),
        )
        .route("/api/tail", get(api_tail))
        .route("/assets/{name}", get(assets::asset))
        .route(
            assets::CSP_REPORT_PATH,
            axum::routing::post(assets::csp_report),
        )
        .route("/api/search", get(api_search))
        .route("/api/context/{id}", get(api_context))
        .route("/api/context/{id}/streams", get(api_streams))
        .route("/api/histogram", get(api_histogram))
        .route("/api/export", get(export::export))
        .fallback(not_found)
        .layer(axum::middleware::from_fn_with_state(auth, auth::guard))
        .layer(axum::middleware::from_fn(assets::security_headers))
        .with_state(console)
}

async fn not_found() -> Response {
    ApiError::NotFound("no such page".into()).into_response()
}

/// An answer other than success, with its status.
#[derive(Debug)]
enum ApiError {
    /// The request is wrong (a bad query, parameter or cursor): 400.
    Bad(String),
    /// Nothing has that id, or no such page: 404.
    NotFound(String),
    /// Elasticsearch cannot answer now (unreachable, overloaded): 503.
    Unavailable(String),
    /// Elasticsearch answered something the console cannot use (refused credentials): 502.
    Upstream(String),
}

impl From<BadRequest> for ApiError {
    fn from(error: BadRequest) -> Self {
        ApiError::Bad(error.0)
    }
}

impl From<EsError> for ApiError {
    fn from(error: EsError) -> Self {
        match &error {
            EsError::Transport { url, message } => {
                ApiError::Unavailable(format!("Elasticsearch at {url} is unreachable: {message}"))
            }
            EsError::Status { status, body, .. } => {
                let reason = query::es_reason(body);
                match status {
                    400 => ApiError::Bad(reason),
                    404 => ApiError::NotFound(reason),
                    429 | 500..=599 => ApiError::Unavailable(format!(
                        "Elasticsearch cannot answer now ({status}): {reason}"
                    )),
                    _ => ApiError::Upstream(format!("Elasticsearch answered {status}: {reason}")),
                }
            }
            EsError::Setup(_) | EsError::Malformed { .. } | EsError::Unreadable { .. } => {
                ApiError::Upstream(error.to_string())
            }
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, message) = match self {
            ApiError::Bad(m) => (StatusCode::BAD_REQUEST, m),
            ApiError::NotFound(m) => (StatusCode::NOT_FOUND, m),
            ApiError::Unavailable(m) => (StatusCode::SERVICE_UNAVAILABLE, m),
            ApiError::Upstream(m) => (StatusCode::BAD_GATEWAY, m),
        };
        json_response(status, &json!({ "error": message }))
    }
}

pub(crate) fn json_response(status: StatusCode, value: &Value) -> Response {
    (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        value.to_string(),
    )
        .into_response()
}

/// Parameters of `/api/search` and `/api/histogram` (numbers as text, so a bad one gets our
/// own 400 message).
#[derive(Debug, Default, Deserialize)]
struct SearchParams {
    q: Option<String>,
    from: Option<String>,
    to: Option<String>,
    size: Option<String>,
    after: Option<String>,
    order: Option<String>,
}

fn number(name: &str, value: Option<&str>) -> Result<Option<usize>, ApiError> {
    match value.map(str::trim).filter(|v| !v.is_empty()) {
        None => Ok(None),
        Some(v) => v
            .parse()
            .map(Some)
            .map_err(|_| ApiError::Bad(format!("{name}: {v:?} is not a whole number"))),
    }
}

impl Console {
    fn indices(&self) -> Vec<&str> {
        self.indices.iter().map(String::as_str).collect()
    }

    async fn search(&self, body: &Value) -> Result<Value, ApiError> {
        let body = query::guarded(body, &self.guard);
        let answer = self.es.get().search(&self.indices(), &body).await?;
        if let Some(failure) = answer["_shards"]["failures"].get(0) {
            // A query that fails on every shard is an error; on some, the answer is partial.
            if answer["_shards"]["successful"].as_u64() == Some(0) {
                let reason = query::es_reason(&json!({ "error": failure["reason"] }).to_string());
                return Err(ApiError::Bad(reason));
            }
        }
        Ok(answer)
    }
}

impl Console {
    /// The line with id `id` (the API's hit JSON), or 404.
    async fn hit(&self, id: &str) -> Result<Value, ApiError> {
        let found = self.search(&query::by_id_body(id)).await?;
        match found["hits"]["hits"].get(0) {
            Some(hit) => Ok(query::hit_json(hit)),
            None => Err(ApiError::NotFound(format!("no line has the id {id:?}"))),
        }
    }

    /// The `n` lines of `stream` before `offset`, nearest first: asked in a window below the
    /// offset, widened until it holds `n` lines or reaches the stream's start
    /// ([`query::older_floor`]).
    async fn older_lines(&self, stream: &str, offset: u64, n: usize) -> Result<Value, ApiError> {
        let mut round = 0;
        loop {
            let floor = query::older_floor(offset, n, round);
            let answer = self
                .search(&query::older_body(stream, offset, n, floor))
                .await?;
            let got = answer["hits"]["hits"].as_array().map_or(0, Vec::len);
            if got >= n || floor == 0 {
                return Ok(answer);
            }
            round += 1;
        }
    }
}

async fn api_search(
    State(console): State<Console>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let size = query::page_size(number("size", params.size.as_deref())?)?;
    let after = match params.after.as_deref().filter(|a| !a.is_empty()) {
        Some(cursor) => Some(query::decode_cursor(cursor)?),
        None => None,
    };
    let order = query::Order::parse(params.order.as_deref())?;
    let filter = Filter::new(params.q, params.from, params.to, OffsetDateTime::now_utc())?;
    let answer = console
        .search(&query::search_body_in(&filter, size, after.as_ref(), order))
        .await?;
    Ok(json_response(
        StatusCode::OK,
        &query::search_answer(&answer, size),
    ))
}

/// `GET /api/fields`: `{"fields": [{"name", "type"}]}` of the searched indices' mapping.
async fn api_fields(State(console): State<Console>) -> Result<Response, ApiError> {
    let es = console.es.get();
    let path = format!("/{}/_mapping", console.indices.join(","));
    let (status, mapping) = es
        .call(
            elasticsearch::http::Method::Get,
            &path,
            &[("ignore_unavailable", "true"), ("allow_no_indices", "true")],
            None,
            es.control_timeout(),
            true,
        )
        .await?;
    let fields = if status == 404 {
        Vec::new()
    } else {
        query::mapped_fields(&mapping)
    };
    Ok(json_response(StatusCode::OK, &json!({ "fields": fields })))
}

async fn api_histogram(
    State(console): State<Console>,
    Query(params): Query<SearchParams>,
) -> Result<Response, ApiError> {
    let filter = Filter::new(params.q, params.from, params.to, OffsetDateTime::now_utc())?;
    let answer = console.search(&query::histogram_body(&filter)).await?;
    Ok(json_response(
        StatusCode::OK,
        &query::histogram_answer(&filter, &answer),
    ))
}

/// Parameters of `/api/context/{id}`.
#[derive(Debug, Default, Deserialize)]
struct ContextParams {
    before: Option<String>,
    after: Option<String>,
}

async fn api_context(
    State(console): State<Console>,
    Path(id): Path<String>,
    Query(params): Query<ContextParams>,
) -> Result<Response, ApiError> {
    let side = |name: &str, value: Option<&str>| -> Result<usize, ApiError> {
        let n = number(name, value)?.unwrap_or(50);
        if n > query::MAX_CONTEXT {
            return Err(ApiError::Bad(format!(
                "{name} must be at most {}",
                query::MAX_CONTEXT
            )));
        }
        Ok(n)
    };
    let before = side("before", params.before.as_deref())?;
    let after = side("after", params.after.as_deref())?;
    let hit = console.hit(&id).await?;
    let (Some(stream), Some(offset)) = (hit["file_id"].as_str(), hit["offset"].as_u64()) else {
        // Not a line of a file (a plain Kafka record): it is its own context.
        return Ok(json_response(
            StatusCode::OK,
            &json!({"lines": [hit], "hit": 0, "stream": null}),
        ));
    };
    let newer_body = query::newer_body(stream, offset, after);
    let (older, newer) = tokio::try_join!(
        console.older_lines(stream, offset, before),
        console.search(&newer_body),
    )?;
    let lines_of = |answer: &Value| -> Vec<Value> {
        answer["hits"]["hits"]
            .as_array()
            .map(|hits| hits.iter().map(query::hit_json).collect())
            .unwrap_or_default()
    };
    let mut lines = lines_of(&older);
    lines.reverse();
    let position = lines.len();
    let stream = stream.to_string();
    lines.push(hit);
    lines.extend(lines_of(&newer));
    Ok(json_response(
        StatusCode::OK,
        &json!({"lines": lines, "hit": position, "stream": stream}),
    ))
}

/// `GET /api/context/{id}/streams`: the streams that held the hit's path just before and just
/// after the hit's own stream (a copytruncate, or a new file created at the old name), each as
/// the line of it nearest to the hit's stream (`previous`: its last line read at that path;
/// `next`: its first), or null.
async fn api_streams(
    State(console): State<Console>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let hit = console.hit(&id).await?;
    let none = json!({"file": hit["file"], "previous": null, "next": null});
    let (Some(stream), Some(file)) = (hit["file_id"].as_str(), hit["file"].as_str()) else {
        return Ok(json_response(StatusCode::OK, &none));
    };
    let span = console
        .search(&query::stream_span_body(stream, file))
        .await?;
    let Some((first, last)) = query::stream_span(&span) else {
        return Ok(json_response(StatusCode::OK, &none));
    };
    let earlier = query::neighbour_stream_body(stream, file, &first, true);
    let later = query::neighbour_stream_body(stream, file, &last, false);
    let (previous, next) = tokio::try_join!(console.search(&earlier), console.search(&later))?;
    let nearest = |answer: &Value| {
        answer["hits"]["hits"]
            .get(0)
            .map(query::hit_json)
            .unwrap_or(Value::Null)
    };
    Ok(json_response(
        StatusCode::OK,
        &json!({"file": file, "previous": nearest(&previous), "next": nearest(&next)}),
    ))
}

/// Parameters of `/api/tail`.
#[derive(Debug, Default, Deserialize)]
struct TailParams {
    q: Option<String>,
}

/// `GET /api/tail?q=`: server-sent events, `line` (a hit's JSON) for each new matching line,
/// `overflow`, `error` (Elasticsearch could not be asked; the tail goes on) and, last, `dropped`
/// when the client fell [`tail::CLIENT_BUFFER`] events behind. A bad query is refused with 400
/// before the stream starts.
async fn api_tail(
    State(console): State<Console>,
    Query(params): Query<TailParams>,
) -> Result<Response, ApiError> {
    let q = params.q.unwrap_or_default();
    // Checked once, so that a bad query is a 400, not a stream of errors.
    let mut probe = tail::Tails::poll_body(&q, 0);
    probe["size"] = json!(0);
    probe["track_total_hits"] = json!(false);
    console.search(&probe).await?;
    let receiver = console.tails.subscribe(&q);
    let events = futures::stream::unfold(Some(receiver), |state| async move {
        let mut receiver = state?;
        let event = match receiver.recv().await {
            Ok(tail::TailEvent::Line(line)) => {
                Event::default().event("line").data(line.to_string())
            }
            Ok(tail::TailEvent::Overflow { matching }) => Event::default()
                .event("overflow")
                .data(json!({ "matching": matching }).to_string()),
            Ok(tail::TailEvent::Error(message)) => Event::default()
                .event("error")
                .data(json!({ "error": message }).to_string()),
            Err(RecvError::Lagged(missed)) => {
                let event = Event::default()
                    .event("dropped")
                    .data(json!({ "missed": missed }).to_string());
                return Some((Ok::<_, Infallible>(event), None));
            }
            Err(RecvError::Closed) => return None,
        };
        Some((Ok(event), Some(receiver)))
    });
    Ok(Sse::new(events)
        .keep_alive(KeepAlive::default())
        .into_response())
}
