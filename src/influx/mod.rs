//! A thin InfluxDB 1.x client: `/write` for the transfer, `/query` (InfluxQL) for the console.
//!
//! It reports what happened and decides nothing: a transport failure and a non-2xx status are
//! returned as such, and the caller applies its rules (the transfer retries, splits or
//! dead-letters; the console shows the error). No call here retries on its own.
//!
//! Points are written with `precision=ns`: the agent stamps each sample in nanoseconds, and a
//! coarser precision would let two samples of one series fall on the same timestamp and the
//! later overwrite the earlier. A point is identified by measurement, tag set and timestamp, so
//! writing the same point again overwrites it with itself: replays never double a point.

use std::path::Path;
use std::sync::{Arc, PoisonError, RwLock};

use crate::config::influx::InfluxAccess;
use crate::config::secret::Secret;

/// Largest part of an error answer kept for messages.
const MAX_ERROR_BODY: usize = 2048;

/// Why a call to InfluxDB did not produce a usable answer.
#[derive(Debug, thiserror::Error)]
pub enum InfluxError {
    /// The client could not be built (CA file, password file).
    #[error("invalid InfluxDB client settings: {0}")]
    Setup(String),
    /// No answer: connection refused or reset, timeout, DNS.
    #[error("cannot reach InfluxDB at {url}: {message}")]
    Transport {
        /// The base URL.
        url: String,
        /// The transport's message with its causes.
        message: String,
    },
    /// InfluxDB answered with a status that is not success.
    #[error("InfluxDB at {url} answered {status} to {what}: {body}")]
    Status {
        /// The base URL.
        url: String,
        /// What was asked.
        what: &'static str,
        /// HTTP status.
        status: u16,
        /// The start of the answer body.
        body: String,
    },
    /// A query answered 200 with an error in its results, or with something unreadable.
    #[error("InfluxDB at {url} refused the query: {message}")]
    Query {
        /// The base URL.
        url: String,
        /// InfluxDB's message.
        message: String,
    },
}

impl InfluxError {
    /// The HTTP status, when InfluxDB answered.
    pub fn status(&self) -> Option<u16> {
        match self {
            InfluxError::Status { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// An InfluxDB client for one database (and retention policy). Cheap to clone.
#[derive(Clone, Debug)]
pub struct InfluxClient {
    http: reqwest::Client,
    url: String,
    database: String,
    retention_policy: Option<String>,
    credentials: Option<(String, Secret)>,
}

impl InfluxClient {
    /// Builds a client for `access`, reading its CA file and password file now.
    pub fn new(access: &InfluxAccess) -> Result<InfluxClient, InfluxError> {
        let credentials = match &access.credentials {
            Some((user, source)) => Some((
                user.clone(),
                source
                    .read()
                    .map_err(|e| InfluxError::Setup(e.to_string()))?,
            )),
            None => None,
        };
        let http = reqwest::Client::builder()
            .timeout(access.timeout)
            .use_preconfigured_tls(tls_config(access.ca_file.as_deref())?)
            .build()
            .map_err(|e| InfluxError::Setup(crate::errors::with_causes(&e)))?;
        Ok(InfluxClient {
            http,
            url: access.url.clone(),
            database: access.database.clone(),
            retention_policy: access.retention_policy.clone(),
            credentials,
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The database.
    pub fn database(&self) -> &str {
        &self.database
    }

    /// Writes `body` (line protocol, one point per line, timestamps in nanoseconds). `Ok` once
    /// InfluxDB answered 2xx (1.x answers 204 after the points are in its WAL).
    pub async fn write(&self, body: Vec<u8>) -> Result<(), InfluxError> {
        let mut query = vec![("db", self.database.as_str()), ("precision", "ns")];
        if let Some(policy) = &self.retention_policy {
            query.push(("rp", policy));
        }
        let request = self
            .authorized(self.http.post(format!("{}/write", self.url)))
            .query(&query)
            .body(body);
        self.send(request, "a write").await.map(|_| ())
    }

    /// Runs InfluxQL `q` against the database and returns the answer's `results`; an error
    /// in any statement's result is an [`InfluxError::Query`].
    pub async fn query(&self, q: &str) -> Result<serde_json::Value, InfluxError> {
        let mut form = vec![("db", self.database.as_str()), ("q", q), ("epoch", "ms")];
        if let Some(policy) = &self.retention_policy {
            // The policy unqualified measurements are read from.
            form.push(("rp", policy));
        }
        let request = self
            .authorized(self.http.post(format!("{}/query", self.url)))
            .form(&form);
        let body = self.send(request, "a query").await?;
        let answer: serde_json::Value =
            serde_json::from_slice(&body).map_err(|e| InfluxError::Query {
                url: self.url.clone(),
                message: format!("unreadable answer: {e}"),
            })?;
        let results = answer
            .get("results")
            .cloned()
            .unwrap_or(serde_json::Value::Array(Vec::new()));
        let error = results
            .as_array()
            .into_iter()
            .flatten()
            .find_map(|result| result.get("error").and_then(|e| e.as_str()));
        if let Some(message) = error.or_else(|| answer.get("error").and_then(|e| e.as_str())) {
            return Err(InfluxError::Query {
                url: self.url.clone(),
                message: message.to_string(),
            });
        }
        Ok(results)
    }

    /// Creates the client's retention policy if missing and sets its duration (`None`:
    /// infinite), without making it the database's default. The database must exist.
    pub async fn ensure_retention_policy(
        &self,
        duration: Option<std::time::Duration>,
    ) -> Result<(), InfluxError> {
        let Some(policy) = &self.retention_policy else {
            return Ok(());
        };
        let duration = match duration {
            Some(duration) => format!("{}s", duration.as_secs()),
            None => "INF".to_string(),
        };
        let (policy, database) = (quote_identifier(policy), quote_identifier(&self.database));
        // CREATE fails when the policy exists with another duration: ALTER sets it then.
        let create = format!(
            "CREATE RETENTION POLICY {policy} ON {database} DURATION {duration} REPLICATION 1"
        );
        if let Err(error) = self.query(&create).await {
            if !matches!(&error, InfluxError::Query { message, .. } if message.contains("already exists"))
            {
                return Err(error);
            }
        }
        let alter = format!("ALTER RETENTION POLICY {policy} ON {database} DURATION {duration}");
        self.query(&alter).await.map(|_| ())
    }

    /// `CREATE DATABASE` (a no-op when it exists).
    pub async fn create_database(&self) -> Result<(), InfluxError> {
        let statement = format!("CREATE DATABASE {}", quote_identifier(&self.database));
        self.query(&statement).await.map(|_| ())
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.credentials {
            Some((user, password)) => request.basic_auth(user, Some(password.expose())),
            None => request,
        }
    }

    async fn send(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<Vec<u8>, InfluxError> {
        let transport = |e: reqwest::Error| InfluxError::Transport {
            url: self.url.clone(),
            message: crate::errors::with_causes(&e),
        };
        let response = request.send().await.map_err(transport)?;
        let status = response.status();
        let body = response.bytes().await.map_err(transport)?;
        if !status.is_success() {
            let end = body.len().min(MAX_ERROR_BODY);
            return Err(InfluxError::Status {
                url: self.url.clone(),
                what,
                status: status.as_u16(),
                body: String::from_utf8_lossy(&body[..end]).trim().to_string(),
            });
        }
        Ok(body.to_vec())
    }
}

/// `name` as an InfluxQL identifier: double-quoted, `"` and `\` escaped.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('\\', "\\\\").replace('"', "\\\""))
}

/// `value` as an InfluxQL string literal: single-quoted, `'` and `\` escaped.
pub fn quote_string(value: &str) -> String {
    format!("'{}'", value.replace('\\', "\\\\").replace('\'', "\\'"))
}

/// A rustls client configuration trusting the CAs in `ca_file` (none: no `https://` server is
/// trusted; the configuration check requires a CA file for `https://`).
fn tls_config(ca_file: Option<&Path>) -> Result<rustls::ClientConfig, InfluxError> {
    let mut roots = rustls::RootCertStore::empty();
    if let Some(path) = ca_file {
        let setup =
            |e: &dyn std::fmt::Display| InfluxError::Setup(format!("influxdb.ca_file: {e}"));
        for cert in crate::listener::read_certs(path).map_err(|e| setup(&e))? {
            roots.add(cert).map_err(|e| setup(&e))?;
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| InfluxError::Setup(e.to_string()))?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

/// An [`InfluxClient`] that can be replaced while in use (password or CA rotated): each call
/// takes the current client; requests under way finish with the one they began with.
#[derive(Clone, Debug)]
pub struct SharedInflux(Arc<RwLock<InfluxClient>>);

impl SharedInflux {
    /// Shares `client`.
    pub fn new(client: InfluxClient) -> SharedInflux {
        SharedInflux(Arc::new(RwLock::new(client)))
    }

    /// The current client.
    pub fn get(&self) -> InfluxClient {
        self.0
            .read()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// On every reload (SIGHUP, a changed file), builds a client from `access`'s files read
    /// again and makes it current; if they cannot be read, keeps the current client and logs
    /// why. Needs a tokio runtime; the task ends with it.
    pub fn follow(&self, access: InfluxAccess, reload: &crate::reload::Reload) {
        let mut changes = reload.subscribe();
        let shared = self.clone();
        tokio::spawn(async move {
            while changes.changed().await.is_ok() {
                match InfluxClient::new(&access) {
                    Ok(client) => {
                        *shared.0.write().unwrap_or_else(PoisonError::into_inner) = client;
                        tracing::info!(
                            url = %access.url,
                            "reload: InfluxDB CA and password read again; new requests use them"
                        );
                    }
                    Err(error) => tracing::error!(
                        url = %access.url,
                        %error,
                        "reload: cannot read the InfluxDB CA or password; keeping the ones in use"
                    ),
                }
            }
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn identifiers_and_strings_are_quoted_for_influxql() {
        assert_eq!(quote_identifier("my \"db\""), "\"my \\\"db\\\"\"");
        assert_eq!(quote_string("it's"), "'it\\'s'");
        assert_eq!(quote_string("a\\b"), "'a\\\\b'");
    }
}
