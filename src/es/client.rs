//! A thin Elasticsearch client: `_bulk` and index templates for the transfer, `_search` for the
//! console.
//!
//! It reports what happened and decides nothing: a transport failure, a non-2xx status and a
//! processed bulk are returned as such, and the caller ([`crate::transfer`]) applies the rules of
//! [`super::outcome`]. No call here retries on its own, with one exception: with several nodes
//! (`elasticsearch.url` listing them), a request that gets no answer from one node (refused,
//! reset, timed out) is sent to the next, each node at most once per call; the node is then
//! skipped by the following calls for [`NODE_DOWN_FOR`] (tried again after that, or when every
//! node is skipped). Calls take the nodes in turn (round robin). A bulk resent to another node
//! after a timeout may have been applied by the first: its documents then answer 409 there,
//! which counts as done, so it is indexed once all the same.

use std::future::Future;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use elasticsearch::auth::Credentials;
use elasticsearch::cert::{Certificate, CertificateValidation};
use elasticsearch::http::response::Response;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};

use super::bulk::{parse_answer, BulkItemResult, BulkParseError};
use crate::config::es_access::{EsAccess, EsAuthSource};
use crate::config::secret::{Secret, SecretSource};

/// Largest part of an error answer kept for logs.
const MAX_ERROR_BODY: usize = 2048;
/// How long a node that did not answer is skipped before it is tried again.
pub const NODE_DOWN_FOR: Duration = Duration::from_secs(30);

/// The longest a small control request (an index template, index statistics) waits for a node
/// before the next one is asked (the configured request timeout when shorter): a node that
/// accepts connections but does not answer would otherwise hold a transfer's start for the
/// whole request timeout, which is sized for bulks.
pub const CONTROL_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a call to Elasticsearch did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum EsError {
    /// The client could not be built from the settings.
    #[error("invalid Elasticsearch client settings: {0}")]
    Setup(String),
    /// No answer: connection refused or reset, timeout, DNS.
    #[error("cannot reach Elasticsearch at {url}: {message}")]
    Transport {
        /// The base URL.
        url: String,
        /// The transport's message.
        message: String,
    },
    /// Elasticsearch answered with a status that is not success.
    #[error("Elasticsearch at {url} answered {status} to {what}: {body}")]
    Status {
        /// The base URL.
        url: String,
        /// What was asked.
        what: String,
        /// HTTP status.
        status: u16,
        /// The start of the answer body.
        body: String,
    },
    /// A 2xx answer we cannot read.
    #[error("Elasticsearch answered {what} with something unreadable: {error}")]
    Malformed {
        /// What was asked.
        what: String,
        /// Why it is unreadable (in the message, so not repeated as a source).
        error: BulkParseError,
    },
    /// A 2xx answer (to anything but `_bulk`) without what it should hold.
    #[error("Elasticsearch answered {what} with something unreadable: {message}")]
    Unreadable {
        /// What was asked.
        what: String,
        /// What is missing or wrong.
        message: String,
    },
}

impl EsError {
    /// The HTTP status, if Elasticsearch answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            EsError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// Connection settings, secrets read.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// The nodes' base URLs (at least one).
    pub nodes: Vec<String>,
    /// Credentials.
    pub auth: EsAuth,
    /// PEM of the CA(s) to trust (`https://`; without it, the system's).
    pub ca_pem: Option<Vec<u8>>,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// Credentials, read.
#[derive(Debug, Clone)]
pub enum EsAuth {
    /// None.
    None,
    /// Basic auth.
    Basic {
        /// User name.
        username: String,
        /// Password.
        password: Secret,
    },
    /// An API key: Elasticsearch's `encoded` form, or `id:api_key`.
    ApiKey(Secret),
}

impl EsSettings {
    /// Plain settings: no credentials, no CA of its own.
    pub fn plain(url: &str, request_timeout: Duration) -> EsSettings {
        EsSettings {
            nodes: url.split(',').map(|u| u.trim().to_string()).collect(),
            auth: EsAuth::None,
            ca_pem: None,
            request_timeout,
        }
    }

    /// Reads the CA file and the secrets `access` names, now (at start, and again on SIGHUP
    /// to pick up rotated files). The error names the file or variable, never a secret.
    pub fn read(access: &EsAccess) -> Result<EsSettings, EsError> {
        let ca_pem = match (&access.ca_file, &access.ca_fingerprint) {
            (Some(path), _) => Some(std::fs::read(path).map_err(|e| {
                EsError::Setup(format!(
                    "cannot read elasticsearch.ca_file {}: {e}",
                    path.display()
                ))
            })?),
            (None, Some(fingerprint)) => Some(pinned_ca(access, fingerprint)?),
            (None, None) => None,
        };
        let secret = |source: &SecretSource| {
            source
                .read()
                .map_err(|e| EsError::Setup(format!("Elasticsearch credentials: {e}")))
        };
        let auth = match &access.auth {
            EsAuthSource::None => EsAuth::None,
            EsAuthSource::Basic { username, password } => EsAuth::Basic {
                username: username.clone(),
                password: secret(password)?,
            },
            EsAuthSource::ApiKey(key) => EsAuth::ApiKey(secret(key)?),
        };
        Ok(EsSettings {
            nodes: access.nodes.clone(),
            auth,
            ca_pem,
            request_timeout: access.request_timeout,
        })
    }
}

/// The CA certificate with SHA-256 `fingerprint` among those the nodes present: asked of each
/// node in turn until one answers (the error is the last node's).
fn pinned_ca(access: &EsAccess, fingerprint: &str) -> Result<Vec<u8>, EsError> {
    let timeout = access.request_timeout.min(Duration::from_secs(10));
    let mut last = EsError::Setup("elasticsearch.url names no node".into());
    for node in &access.nodes {
        let url = Url::parse(node).map_err(|e| EsError::Setup(format!("url {node:?}: {e}")))?;
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default().unwrap_or(443);
        match super::pin::fetch_pinned(host, port, fingerprint, timeout) {
            Ok(pem) => return Ok(pem),
            Err(e) => {
                last = EsError::Transport {
                    url: node.clone(),
                    message: format!("elasticsearch.ca_fingerprint: {e}"),
                }
            }
        }
    }
    Err(last)
}

/// The client of the node at `url`, with the settings' credentials, CA and timeout.
fn node_client(url: &str, settings: &EsSettings) -> Result<Elasticsearch, EsError> {
    let parsed = Url::parse(url).map_err(|e| EsError::Setup(format!("url {url:?}: {e}")))?;
    let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(parsed))
        .timeout(settings.request_timeout)
        .disable_proxy();
    match &settings.auth {
        EsAuth::None => {}
        EsAuth::Basic { username, password } => {
            builder = builder.auth(Credentials::Basic(
                username.clone(),
                password.expose().to_string(),
            ));
        }
        EsAuth::ApiKey(key) => {
            let key = key.expose();
            builder = builder.auth(match key.split_once(':') {
                Some((id, secret)) => Credentials::ApiKey(id.to_string(), secret.to_string()),
                None => Credentials::EncodedApiKey(key.to_string()),
            });
        }
    }
    if let Some(pem) = &settings.ca_pem {
        let ca = Certificate::from_pem(pem).map_err(|e| {
            EsError::Setup(format!(
                "elasticsearch.ca_file is not a PEM certificate: {e}"
            ))
        })?;
        builder = builder.cert_validation(CertificateValidation::Full(ca));
    }
    let transport = builder.build().map_err(|e| EsError::Setup(e.to_string()))?;
    Ok(Elasticsearch::new(transport))
}

/// An error of the client library: a status if the node answered one, else a transport error
/// (no answer).
fn transport_error(url: &str, error: elasticsearch::Error) -> EsError {
    match error.status_code() {
        Some(status) => EsError::Status {
            url: url.to_string(),
            what: "a request".into(),
            status: status.as_u16(),
            body: error.to_string(),
        },
        None => EsError::Transport {
            url: url.to_string(),
            message: crate::errors::with_causes(&error),
        },
    }
}

/// One node of the cluster, with its own client.
#[derive(Debug)]
struct Node {
    url: String,
    client: Elasticsearch,
    /// Skipped until then: it did not answer.
    down_until: Mutex<Option<Instant>>,
}

impl Node {
    fn is_down(&self, now: Instant) -> bool {
        self.down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|until| until > now)
    }

    fn mark(&self, down: bool) {
        *self
            .down_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = down.then(|| Instant::now() + NODE_DOWN_FOR);
    }
}

/// A cheap-to-clone handle on one Elasticsearch cluster (one node or several).
#[derive(Clone, Debug)]
pub struct EsClient {
    nodes: Arc<[Node]>,
    /// Where the next call starts (round robin).
    next: Arc<AtomicUsize>,
    /// The nodes, comma-separated, for messages about the cluster.
    url: String,
    /// [`CONTROL_TIMEOUT`], or the request timeout when shorter.
    control_timeout: Duration,
}

impl EsClient {
    /// Builds a client (no request is made).
    pub fn new(settings: &EsSettings) -> Result<EsClient, EsError> {
        let nodes = settings
            .nodes
            .iter()
            .map(|url| {
                Ok(Node {
                    url: url.clone(),
                    client: node_client(url, settings)?,
                    down_until: Mutex::new(None),
                })
            })
            .collect::<Result<Vec<Node>, EsError>>()?;
        if nodes.is_empty() {
            return Err(EsError::Setup("elasticsearch.url names no node".into()));
        }
        Ok(EsClient {
            nodes: nodes.into(),
            next: Arc::new(AtomicUsize::new(0)),
            url: settings.nodes.join(","),
            control_timeout: settings.request_timeout.min(CONTROL_TIMEOUT),
        })
    }

    /// The nodes in the order this call tries them: from the next in turn, those answering
    /// first, then those skipped (a call never gives up before every node was tried once).
    fn order(&self) -> Vec<&Node> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let count = self.nodes.len();
        let now = Instant::now();
        let turn = (0..count).map(|i| &self.nodes[(start + i) % count]);
        let (up, down): (Vec<&Node>, Vec<&Node>) = turn.partition(|node| !node.is_down(now));
        up.into_iter().chain(down).collect()
    }

    /// Sends the request `request` builds on a node's client: on the next node in turn, then,
    /// while nodes do not answer, on the others. Returns the answer and the node that gave it.
    async fn send<F, Fut>(&self, request: F) -> Result<(Response, &Node), EsError>
    where
        F: Fn(Elasticsearch) -> Fut,
        Fut: Future<Output = Result<Response, elasticsearch::Error>>,
    {
        let mut last = None;
        for node in self.order() {
            match request(node.client.clone()).await {
                Ok(response) => {
                    node.mark(false);
                    return Ok((response, node));
                }
                Err(error) => {
                    let error = transport_error(&node.url, error);
                    if !matches!(error, EsError::Transport { .. }) {
                        return Err(error);
                    }
                    node.mark(true);
                    last = Some(error);
                }
            }
        }
        Err(last.unwrap_or_else(|| EsError::Setup("elasticsearch.url names no node".into())))
    }

    /// Sends one `_bulk` request of `docs` documents (`body` as written by
    /// [`super::bulk::write_create`]) and returns the per-item answers in request order.
    pub async fn bulk(&self, body: Vec<u8>, docs: usize) -> Result<Vec<BulkItemResult>, EsError> {
        let what = format!("_bulk of {docs} documents");
        let body = body.as_slice();
        let (response, node) = self
            .send(|client| async move {
                client
                    .bulk(BulkParts::None)
                    .filter_path(&["items.*.status", "items.*.error"])
                    .body(vec![body])
                    .send()
                    .await
            })
            .await?;
        let (_, bytes) = answer(node, response, &what, false).await?;
        parse_answer(&bytes, docs).map_err(|error| EsError::Malformed { what, error })
    }

    /// Creates or replaces the composable index template `name`.
    pub async fn put_index_template(
        &self,
        name: &str,
        template: &serde_json::Value,
    ) -> Result<(), EsError> {
        let timeout = self.control_timeout;
        let (response, node) = self
            .send(|client| async move {
                client
                    .indices()
                    .put_index_template(IndicesPutIndexTemplateParts::Name(name))
                    .request_timeout(timeout)
                    .body(template)
                    .send()
                    .await
            })
            .await?;
        let status = response.status_code().as_u16();
        if (200..300).contains(&status) {
            return Ok(());
        }
        let body = response
            .bytes()
            .await
            .map(|b| truncated(&b))
            .unwrap_or_default();
        Err(EsError::Status {
            url: node.url.clone(),
            what: format!("PUT _index_template/{name}"),
            status,
            body,
        })
    }

    /// Documents and store size (bytes, primaries and replicas) of every index matching
    /// `indices` (names or patterns), by name: `_cat/indices`. Patterns matching nothing give an
    /// empty list.
    pub async fn index_stats(&self, indices: &[&str]) -> Result<Vec<IndexStats>, EsError> {
        let timeout = self.control_timeout;
        let (response, node) = self
            .send(|client| async move {
                client
                    .cat()
                    .indices(elasticsearch::cat::CatIndicesParts::Index(indices))
                    .request_timeout(timeout)
                    .format("json")
                    .bytes(elasticsearch::params::Bytes::B)
                    .h(&["index", "docs.count", "store.size"])
                    .expand_wildcards(&[elasticsearch::params::ExpandWildcards::Open])
                    .send()
                    .await
            })
            .await?;
        let (status, bytes) = answer(node, response, "_cat/indices", true).await?;
        if status == 404 {
            return Ok(Vec::new());
        }
        let rows: Vec<serde_json::Value> =
            serde_json::from_slice(&bytes).map_err(|e| EsError::Status {
                url: node.url.clone(),
                what: "_cat/indices (unreadable answer)".into(),
                status,
                body: e.to_string(),
            })?;
        let number = |row: &serde_json::Value, key: &str| {
            row.get(key)
                .and_then(|v| v.as_str())
                .and_then(|v| v.parse::<u64>().ok())
        };
        let mut stats: Vec<IndexStats> = rows
            .iter()
            .filter_map(|row| {
                Some(IndexStats {
                    index: row.get("index")?.as_str()?.to_string(),
                    docs: number(row, "docs.count"),
                    bytes: number(row, "store.size"),
                })
            })
            .collect();
        stats.sort_by(|a, b| a.index.cmp(&b.index));
        Ok(stats)
    }

    /// Runs `_search` with `body` over `indices` (names or patterns). Patterns matching nothing
    /// give an empty answer, not an error. Returns the answer as JSON.
    pub async fn search(
        &self,
        indices: &[&str],
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, EsError> {
        let (response, node) = self
            .send(|client| async move {
                client
                    .search(SearchParts::Index(indices))
                    .allow_no_indices(true)
                    .ignore_unavailable(true)
                    .body(body)
                    .send()
                    .await
            })
            .await?;
        let (status, bytes) = answer(node, response, "_search", false).await?;
        serde_json::from_slice(&bytes).map_err(|e| EsError::Status {
            url: node.url.clone(),
            what: "_search (unreadable answer)".into(),
            status,
            body: e.to_string(),
        })
    }

    /// Sends a JSON request (`body`, if any) to `path` with `query`, within `timeout`, and
    /// reads a JSON answer: its status and value (`null` for an empty body). A status that is
    /// not success is an error, except 404 when `allow_404`.
    pub async fn call(
        &self,
        method: elasticsearch::http::Method,
        path: &str,
        query: &[(&str, &str)],
        body: Option<&serde_json::Value>,
        timeout: Duration,
        allow_404: bool,
    ) -> Result<(u16, serde_json::Value), EsError> {
        let what = format!("{} {path}", format!("{method:?}").to_uppercase());
        let (response, node) = self
            .send(|client| async move {
                let mut headers = elasticsearch::http::headers::HeaderMap::new();
                if body.is_some() {
                    headers.insert(
                        elasticsearch::http::headers::CONTENT_TYPE,
                        elasticsearch::http::headers::HeaderValue::from_static("application/json"),
                    );
                }
                let body = body.map(|value| value.to_string());
                client
                    .send(method, path, headers, Some(query), body, Some(timeout))
                    .await
            })
            .await?;
        let (status, bytes) = answer(node, response, &what, allow_404).await?;
        if bytes.is_empty() {
            return Ok((status, serde_json::Value::Null));
        }
        let value = serde_json::from_slice(&bytes).map_err(|e| EsError::Status {
            url: node.url.clone(),
            what: format!("{what} (unreadable answer)"),
            status,
            body: e.to_string(),
        })?;
        Ok((status, value))
    }

    /// Deletes index `name`: `Ok(true)` when this call deleted it, `Ok(false)` when it was
    /// already gone (404: another transfer was first).
    pub async fn delete_index(&self, name: &str) -> Result<bool, EsError> {
        let path = format!("/{name}");
        let (status, _) = self
            .call(
                elasticsearch::http::Method::Delete,
                &path,
                &[],
                None,
                self.control_timeout,
                true,
            )
            .await?;
        Ok(status != 404)
    }

    /// The timeout of control requests (templates, listings, deletions).
    pub fn control_timeout(&self) -> Duration {
        self.control_timeout
    }

    /// The nodes, comma-separated.
    pub fn url(&self) -> &str {
        &self.url
    }
}

/// Reads the answer to `what`: its status and body, or [`EsError::Status`] for a status
/// that is not success (404 allowed through when `allow_404`).
async fn answer(
    node: &Node,
    response: elasticsearch::http::response::Response,
    what: &str,
    allow_404: bool,
) -> Result<(u16, Vec<u8>), EsError> {
    let status = response.status_code().as_u16();
    let bytes = response.bytes().await.map_err(|e| EsError::Transport {
        url: node.url.clone(),
        message: format!("reading the answer: {e}"),
    })?;
    if !((200..300).contains(&status) || (allow_404 && status == 404)) {
        return Err(EsError::Status {
            url: node.url.clone(),
            what: what.to_string(),
            status,
            body: truncated(&bytes),
        });
    }
    Ok((status, bytes.to_vec()))
}

/// Size of one index (`_cat/indices`).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct IndexStats {
    /// Index name.
    pub index: String,
    /// Documents (absent while the index is not ready).
    pub docs: Option<u64>,
    /// Store size in bytes, primaries and replicas.
    pub bytes: Option<u64>,
}

/// An [`EsClient`] that can be replaced while in use (credentials or CA rotated on SIGHUP):
/// each call takes the current client; requests under way finish with the one they began with.
#[derive(Clone, Debug)]
pub struct SharedEs(Arc<RwLock<EsClient>>);

impl SharedEs {
    /// Shares `client`.
    pub fn new(client: EsClient) -> SharedEs {
        SharedEs(Arc::new(RwLock::new(client)))
    }

    /// The current client.
    pub fn get(&self) -> EsClient {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Makes `client` the current one.
    pub fn replace(&self, client: EsClient) {
        *self.0.write().unwrap_or_else(PoisonError::into_inner) = client;
    }

    /// Builds the client for `access` (reading its files) and makes it current.
    pub fn reload(&self, access: &EsAccess) -> Result<(), EsError> {
        let client = EsClient::new(&EsSettings::read(access)?)?;
        self.replace(client);
        Ok(())
    }

    /// On every reload (SIGHUP, a changed credentials file), reads `access`'s CA file and
    /// secrets again and switches to a client built from them; if they cannot be read, keeps
    /// the current client and logs why. Needs a tokio runtime; the task ends with it.
    pub fn follow(&self, access: EsAccess, reload: &crate::reload::Reload) {
        let mut changes = reload.subscribe();
        let shared = self.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match shared.reload(&access) {
                    Ok(()) => tracing::info!(
                        url = %access.url,
                        "reload: Elasticsearch CA and credentials read again; new requests use them"
                    ),
                    Err(error) => tracing::error!(
                        url = %access.url,
                        %error,
                        "reload: cannot read the Elasticsearch CA or credentials; keeping the ones in use"
                    ),
                }
            }
        });
    }
}

fn truncated(bytes: &[u8]) -> String {
    let end = bytes.len().min(MAX_ERROR_BODY);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
