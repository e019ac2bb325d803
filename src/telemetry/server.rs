//! The HTTP endpoint on `metrics_addr`: `/metrics` (Prometheus text format), `/health`
//! (200 or 503 with the failing conditions, JSON) and `/status` (JSON, for roles that have one:
//! the agent's files and WAL, read by `logship status`).
//!
//! The recorder is process-wide and installed once; the endpoint binds before the role starts,
//! so a taken port is a startup error rather than a silent lack of metrics. With
//! `metrics_tls` it serves HTTPS ([`crate::listener`]), its certificate re-read on reload.

use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use super::health::Health;
use super::names;
use crate::shutdown::Shutdown;

/// Upper bounds of the latency histograms' buckets, in seconds.
const LATENCY_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0,
];

/// How often histogram samples are folded into the rendered state.
const UPKEEP_INTERVAL: Duration = Duration::from_secs(5);

static RECORDER: OnceLock<PrometheusHandle> = OnceLock::new();

/// Why the endpoint could not start.
#[derive(Debug, thiserror::Error)]
pub enum EndpointError {
    /// The recorder could not be built.
    #[error("cannot set up the Prometheus recorder: {0}")]
    Recorder(String),
    /// The address could not be bound.
    #[error("cannot listen on metrics_addr {addr}: {error}")]
    Bind {
        /// The configured address.
        addr: SocketAddr,
        /// The bind error (in the message, so not repeated as a source).
        error: std::io::Error,
    },
    /// The listener could not start (the TLS certificate or key).
    #[error("metrics endpoint: {0}")]
    Listen(#[from] crate::listener::ListenError),
}

/// Something that can describe the running role as JSON for `/status`.
pub trait StatusSource: Send + Sync + 'static {
    /// The status document, or why it is not available (yet).
    fn status_json(&self) -> Result<String, String>;
}

/// What the endpoint serves.
#[derive(Clone)]
pub struct Endpoint {
    handle: PrometheusHandle,
    health: Arc<Health>,
    status: Option<Arc<dyn StatusSource>>,
}

impl Endpoint {
    /// Installs the process-wide metrics recorder (once) and returns an endpoint rendering it
    /// and answering `/health` from `health`.
    pub fn install(health: Arc<Health>) -> Result<Endpoint, EndpointError> {
        if let Some(handle) = RECORDER.get() {
            return Ok(Endpoint {
                handle: handle.clone(),
                health,
                status: None,
            });
        }
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Suffix("_seconds".to_string()), LATENCY_BUCKETS)
            .map_err(|e| EndpointError::Recorder(e.to_string()))?
            .build_recorder();
        let handle = recorder.handle();
        // A recorder installed by someone else (only possible in tests) wins; ours then
        // renders nothing, which is acceptable there.
        let _ = metrics::set_global_recorder(recorder);
        let handle = RECORDER.get_or_init(|| handle).clone();
        names::describe_all();
        metrics::gauge!(names::BUILD_INFO, "version" => env!("CARGO_PKG_VERSION")).set(1.0);
        Ok(Endpoint {
            handle,
            health,
            status: None,
        })
    }

    /// Serves `/status` from `source`.
    pub fn with_status(mut self, source: Arc<dyn StatusSource>) -> Endpoint {
        self.status = Some(source);
        self
    }

    /// The metrics as Prometheus text.
    pub fn render(&self) -> String {
        self.handle.render()
    }
}

/// Binds `addr` (with `tls`, HTTPS) and serves `endpoint` until `shutdown`. Returns once
/// listening.
pub async fn serve(
    addr: SocketAddr,
    tls: Option<&crate::config::ListenTls>,
    endpoint: Endpoint,
    shutdown: Shutdown,
    reload: &crate::reload::Reload,
) -> Result<SocketAddr, EndpointError> {
    let listener = match crate::listener::Bound::bind(addr, tls).await {
        Ok(listener) => listener,
        Err(crate::listener::ListenError::Bind { error, .. }) => {
            return Err(EndpointError::Bind { addr, error })
        }
        Err(other) => return Err(other.into()),
    };
    let local = listener.local_addr();
    let url = listener.url();
    let upkeep = endpoint.handle.clone();
    let upkeep_shutdown = shutdown.clone();
    tokio::spawn(async move {
        let mut tick = tokio::time::interval(UPKEEP_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => upkeep.run_upkeep(),
                _ = upkeep_shutdown.wait() => return,
            }
        }
    });
    let app = Router::new()
        .route("/metrics", get(metrics))
        .route("/health", get(health))
        .route("/status", get(status))
        .with_state(Arc::new(endpoint));
    let reload = reload.clone();
    tokio::spawn(async move {
        if let Err(error) = listener.serve(app, shutdown, &reload).await {
            tracing::error!(%error, "metrics endpoint stopped");
        }
    });
    tracing::info!(addr = %local, %url, "metrics endpoint listening (/metrics, /health, /status)");
    Ok(local)
}

async fn metrics(State(endpoint): State<Arc<Endpoint>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        endpoint.render(),
    )
        .into_response()
}

async fn health(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let report = endpoint.health.report();
    let code = if report.is_healthy() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    let body = serde_json::to_string(&report).unwrap_or_else(|_| "{}".to_string());
    (code, [(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn status(State(endpoint): State<Arc<Endpoint>>) -> Response {
    let Some(source) = endpoint.status.clone() else {
        return (StatusCode::NOT_FOUND, "this role has no /status\n").into_response();
    };
    match tokio::task::spawn_blocking(move || source.status_json()).await {
        Ok(Ok(body)) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
        Ok(Err(reason)) => (StatusCode::SERVICE_UNAVAILABLE, format!("{reason}\n")).into_response(),
        Err(error) => (StatusCode::INTERNAL_SERVER_ERROR, format!("{error}\n")).into_response(),
    }
}
