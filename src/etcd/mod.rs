//! Central configuration in etcd: collect entries per host, and a registry of live agents.
//!
//! Keys (all under the configured `prefix`):
//! - `{prefix}/agents/{host}/collect`: a JSON array of collect entries ([`entries`]), added to
//!   the ones in the agent's file. Read by the agent's [`watcher`], written by
//!   `logship ctl collect set` ([`ctl`]).
//! - `{prefix}/alerts/rules/{name}`: an alert rule's JSON ([`alert_rules`]: what a rule is and
//!   what makes one refused; issue 30's first step, the evaluator comes next).
//! - `{prefix}/registry/{host}`: `{version, started_at, heartbeat_at, files, progress}` on a
//!   10 s lease kept alive by the agent ([`registry`]); it disappears when the agent dies.
//!
//! etcd is never on the data path: when it is away the agent keeps collecting with the last
//! entries it accepted, which the agent also keeps in its WAL state so a restart without etcd
//! uses them too (`docs/design.md`, "Central configuration (etcd)"). This module knows nothing
//! of the agent: it publishes accepted entries into a [`CentralEntries`] the agent reads.

pub mod alert_rules;
pub mod ctl;
pub mod entries;
pub mod registry;
pub(crate) mod watcher;

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::Duration;

use etcd_client::{Certificate, Client, ConnectOptions, Identity, TlsOptions};

use crate::config::etcd_access::EtcdAccess;
use crate::config::EtcdConfig;
use crate::shutdown::Shutdown;
use entries::CentralEntries;
use registry::Registry;
use watcher::{CollectWatcher, WatchStats};

/// What can go wrong talking to etcd.
#[derive(Debug, thiserror::Error)]
pub enum EtcdError {
    /// The client failed (connection, request, stream).
    #[error("etcd: {0}")]
    Client(#[from] etcd_client::Error),
    /// A request took too long.
    #[error("etcd: {what} timed out after {after:?}")]
    Timeout {
        /// The request.
        what: &'static str,
        /// The limit.
        after: Duration,
    },
    /// A CA, certificate, key or password file could not be read.
    #[error("etcd credentials: {0}")]
    Credentials(String),
    /// A value could not be used.
    #[error("etcd key {key}: {reason}")]
    Value {
        /// The key.
        key: String,
        /// Why.
        reason: String,
    },
    /// No endpoint answered; `last` is what the last one tried said.
    #[error("etcd: none of {endpoints} answered; the last said: {last}")]
    NoEndpoint {
        /// The endpoints tried, comma-separated.
        endpoints: String,
        /// The last endpoint's error.
        last: Box<EtcdError>,
    },
}

impl EtcdError {
    /// Whether etcd refused who we are (wrong password or user, missing rights, a certificate
    /// or CA it or we do not accept, an unreadable credentials file): something a person must
    /// fix, unlike an outage, which the agent rides out on its cached entries.
    pub fn is_refusal(&self) -> bool {
        match self {
            EtcdError::Credentials(_) => true,
            EtcdError::Client(error) => {
                // gRPC codes: 7 PERMISSION_DENIED, 16 UNAUTHENTICATED.
                if let etcd_client::Error::GRpcStatus(status) = error {
                    if matches!(status.code() as i32, 7 | 16) {
                        return true;
                    }
                }
                // TLS failures come as transport errors or as UNAVAILABLE with the reason.
                let text = with_causes(error).to_ascii_lowercase();
                [
                    "certificate",
                    "handshake",
                    "tls",
                    "unknownissuer",
                    "unknown ca",
                    "authentication failed",
                    "permission denied",
                ]
                .iter()
                .any(|needle| text.contains(needle))
            }
            EtcdError::Timeout { .. } | EtcdError::Value { .. } => false,
            EtcdError::NoEndpoint { last, .. } => last.is_refusal(),
        }
    }
}

use crate::errors::with_causes;

/// What the agent's etcd side (watcher and registry) tells its owner: the connection (the agent
/// turns a refusal into `/health` 503), the collect values accepted or refused, the watch and
/// the registration lost. This module logs nothing and records no metric itself.
pub trait EtcdEvents: Send + Sync {
    /// etcd refused our credentials or TLS; `reason` names the endpoints and the cause.
    fn etcd_refused(&self, reason: &str);
    /// A session reached etcd and read the key (ends a refusal).
    fn etcd_reached(&self);
    /// etcd cannot be reached and never was since start: the agent runs on the collect entries
    /// it kept (`cached` of them).
    fn etcd_unreachable(&self, key: &str, error: &str, cached: usize);
    /// The watch of `key` failed after it had worked; it is set up again after a backoff.
    fn watch_lost(&self, key: &str, error: &str);
    /// The watch of `key` ended (canceled, compacted past, closed): the key is read again.
    fn watch_restarted(&self, key: &str, why: &str);
    /// A collect value was accepted (`entries` of them, at `revision`) and published.
    fn collect_accepted(&self, key: &str, revision: i64, entries: usize);
    /// A collect value was refused as a whole (the previous entries stay); `rejected` counts
    /// the refusals since start.
    fn collect_refused(&self, key: &str, revision: i64, rejected: u64, reason: &str);
    /// The agent's registration (its lease) was lost; it registers again after a backoff.
    fn registration_lost(&self, key: &str, error: &str);
}

/// Starts the agent's etcd side on its own thread (with its own small runtime, so the agent's
/// blocking threads are not involved): the [`watcher::CollectWatcher`] publishing into `remote`
/// and the [`registry::Registry`] reporting `files` and `progress`. The thread ends after `shutdown`.
pub fn start_agent_side(
    config: &EtcdConfig,
    host: &str,
    remote: CentralEntries,
    files: Arc<AtomicU64>,
    progress: Arc<dyn registry::ProgressSource>,
    events: Arc<dyn EtcdEvents>,
    shutdown: Shutdown,
) -> std::io::Result<JoinHandle<()>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let reconnect = config.retry.policy(crate::config::ETCD_RECONNECT);
    let access = config
        .access()
        .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
    let watcher = CollectWatcher {
        access: access.clone(),
        key: collect_key(&config.connection.prefix, host),
        allowed_roots: config.allowed_paths.clone(),
        remote,
        stats: Arc::new(WatchStats::default()),
        reconnect,
        events: events.clone(),
    };
    let registry = Registry {
        access,
        key: registry_key(&config.connection.prefix, host),
        files,
        progress,
        reconnect,
        events,
    };
    std::thread::Builder::new()
        .name("logship-etcd".into())
        .spawn(move || {
            runtime.block_on(async move {
                tokio::join!(watcher.run(shutdown.clone()), registry.run(shutdown));
            })
        })
}

/// How long one etcd request (not a watch) may take.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The key holding `host`'s collect entries.
pub fn collect_key(prefix: &str, host: &str) -> String {
    format!("{prefix}/agents/{host}/collect")
}

/// The registry key of `host`.
pub fn registry_key(prefix: &str, host: &str) -> String {
    format!("{prefix}/registry/{host}")
}

/// The prefix of all registry keys.
pub fn registry_prefix(prefix: &str) -> String {
    format!("{prefix}/registry/")
}

/// The endpoint (index into the configured list) that answered last: connections try it first.
static ANSWERED_LAST: AtomicUsize = AtomicUsize::new(0);

/// Connects to one of `access.endpoints` that answers: the one that answered last first, then
/// the others in order. Each is tried alone and asked for its status before it is used:
/// etcd-client's own balancing over several endpoints fails a request whenever it picks one that
/// is down (etcd-client issue 39), so with a member of a cluster dead every other request
/// would fail. A client thus talks to one member; when that member dies, its watch or lease
/// fails and the caller's reconnection lands on another. Short connect timeouts and HTTP/2
/// keep-alives make a watch on a dead connection fail instead of hanging; `require_leader`
/// makes a member cut off from its cluster's leader refuse instead of serving stale data.
///
/// A refusal (credentials, TLS) is returned at once: another member would refuse the same.
/// The CA, the client certificate and key, and the password of `access` are read now, at every
/// connection: a rotated file is used from the next reconnection on.
pub async fn connect(access: &EtcdAccess) -> Result<Client, EtcdError> {
    let endpoints = &access.endpoints;
    let first = ANSWERED_LAST.load(Ordering::Relaxed);
    let mut last = None;
    for i in 0..endpoints.len() {
        let at = (first + i) % endpoints.len();
        match connect_one(access, &endpoints[at]).await {
            Ok(client) => {
                ANSWERED_LAST.store(at, Ordering::Relaxed);
                return Ok(client);
            }
            Err(error) if error.is_refusal() => return Err(error),
            Err(error) => last = Some(error),
        }
    }
    let last = last.unwrap_or_else(|| EtcdError::Value {
        key: "endpoints".into(),
        reason: "no endpoint configured".into(),
    });
    if endpoints.len() == 1 {
        return Err(last);
    }
    Err(EtcdError::NoEndpoint {
        endpoints: endpoints.join(", "),
        last: Box::new(last),
    })
}

/// Makes the next [`connect`] try the endpoint after the one that answered last first: that one
/// answered, but a request to it then failed (a member dying, or cut off during an election).
pub fn avoid_last_endpoint() {
    ANSWERED_LAST.fetch_add(1, Ordering::Relaxed);
}

/// How long the console's requests keep asking other members while etcd does not answer (a
/// leader election takes about a second; a dead member's connection timeout three).
pub const CONSOLE_PATIENCE: Duration = Duration::from_secs(10);

/// Runs `attempt` on a fresh connection, again on another endpoint after a backoff while it
/// fails for anything but a refusal, for up to `patience`: what a person's one-off request
/// (`logship ctl`, a change made in the console) needs to ride through a member dying or a
/// leader election (a request caught in one times out). Only for requests that may be repeated:
/// a put whose answer was lost is made again with the same value.
pub async fn retried<T, F, Fut>(
    access: &EtcdAccess,
    patience: Duration,
    mut attempt: F,
) -> Result<T, EtcdError>
where
    F: FnMut(Client) -> Fut,
    Fut: std::future::Future<Output = Result<T, EtcdError>>,
{
    let deadline = tokio::time::Instant::now() + patience;
    let mut backoff = crate::config::ETCD_RECONNECT.start();
    loop {
        let result = match connect(access).await {
            Ok(client) => attempt(client).await,
            Err(error) => Err(error),
        };
        match result {
            Ok(value) => return Ok(value),
            Err(error) if error.is_refusal() => return Err(error),
            Err(error) => {
                let delay = backoff.next_delay();
                if tokio::time::Instant::now() + delay >= deadline {
                    return Err(error);
                }
                avoid_last_endpoint();
                tokio::time::sleep(delay).await;
            }
        }
    }
}

/// `get` of `key` (with `options`), asked of other members for up to [`CONSOLE_PATIENCE`]
/// while etcd does not answer ([`retried`]).
pub async fn get_retried(
    access: &EtcdAccess,
    key: &str,
    options: Option<etcd_client::GetOptions>,
) -> Result<etcd_client::GetResponse, EtcdError> {
    retried(access, CONSOLE_PATIENCE, |mut client| {
        let options = options.clone();
        async move { within("get", client.get(key, options)).await }
    })
    .await
}

/// `put` of `value` at `key`, made again on other members for up to [`CONSOLE_PATIENCE`]
/// (a put whose answer was lost is repeated with the same value).
pub async fn put_retried(
    access: &EtcdAccess,
    key: &str,
    value: &[u8],
) -> Result<etcd_client::PutResponse, EtcdError> {
    retried(access, CONSOLE_PATIENCE, |mut client| async move {
        within("put", client.put(key, value.to_vec(), None)).await
    })
    .await
}

/// `delete` of `key`, made again on other members for up to [`CONSOLE_PATIENCE`].
pub async fn delete_retried(
    access: &EtcdAccess,
    key: &str,
) -> Result<etcd_client::DeleteResponse, EtcdError> {
    retried(access, CONSOLE_PATIENCE, |mut client| async move {
        within("delete", client.delete(key, None)).await
    })
    .await
}

/// Every key under `prefix` with its value, asked of other members for up to
/// [`CONSOLE_PATIENCE`] while etcd does not answer ([`retried`]).
pub async fn get_prefix(
    access: &EtcdAccess,
    prefix: &str,
) -> Result<Vec<(String, Vec<u8>)>, EtcdError> {
    let response = get_retried(
        access,
        prefix,
        Some(etcd_client::GetOptions::new().with_prefix()),
    )
    .await?;
    Ok(response
        .kvs()
        .iter()
        .map(|kv| {
            (
                String::from_utf8_lossy(kv.key()).into_owned(),
                kv.value().to_vec(),
            )
        })
        .collect())
}

/// Connects to `endpoint` alone and asks for its status.
async fn connect_one(access: &EtcdAccess, endpoint: &str) -> Result<Client, EtcdError> {
    let mut options = ConnectOptions::new()
        .with_connect_timeout(Duration::from_secs(3))
        .with_keep_alive(Duration::from_secs(5), Duration::from_secs(5))
        .with_require_leader(true);
    let read = |path: &std::path::Path| {
        std::fs::read(path)
            .map_err(|e| EtcdError::Credentials(format!("cannot read {}: {e}", path.display())))
    };
    if access.tls.any() {
        let mut tls = TlsOptions::new();
        if let Some(ca) = &access.tls.ca_file {
            tls = tls.ca_certificate(Certificate::from_pem(read(ca)?));
        }
        if let (Some(cert), Some(key)) = (&access.tls.cert_file, &access.tls.key_file) {
            tls = tls.identity(Identity::from_pem(read(cert)?, read(key)?));
        }
        options = options.with_tls(tls);
    }
    if let Some((user, password)) = &access.user {
        let password = password
            .read()
            .map_err(|e| EtcdError::Credentials(e.to_string()))?;
        options = options.with_user(user.clone(), password.expose());
    }
    let mut client = within("connect", Client::connect([endpoint], Some(options))).await?;
    within("status", client.status()).await?;
    Ok(client)
}

/// Runs `request` with [`REQUEST_TIMEOUT`].
pub async fn within<T>(
    what: &'static str,
    request: impl std::future::Future<Output = Result<T, etcd_client::Error>>,
) -> Result<T, EtcdError> {
    match tokio::time::timeout(REQUEST_TIMEOUT, request).await {
        Ok(result) => Ok(result?),
        Err(_) => Err(EtcdError::Timeout {
            what,
            after: REQUEST_TIMEOUT,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_and_backoff() {
        assert_eq!(collect_key("/p", "h"), "/p/agents/h/collect");
        assert_eq!(registry_key("/p", "h"), "/p/registry/h");
        let mut backoff = crate::config::ETCD_RECONNECT.start();
        let delays: Vec<u128> = (0..7).map(|_| backoff.next_delay().as_millis()).collect();
        for (delay, nominal) in delays.iter().zip([200, 400, 800, 1600, 3200, 5000, 5000]) {
            assert!(*delay >= nominal / 2 && *delay <= nominal, "{delays:?}");
        }
        backoff.reset();
        assert!(backoff.next_delay() <= Duration::from_millis(200));
    }
}
