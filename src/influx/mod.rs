//! A thin InfluxDB client: `/write` (1.x) or `/api/v2/write` (2.x, 3.x) for the transfer,
//! `/query` (InfluxQL; with `v2` the v1 compatibility endpoint) for the console, and the
//! database or bucket created at start.
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

use crate::config::influx::{InfluxAccess, InfluxCredentials, InfluxTarget};
use crate::config::retention::Retention;
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

/// How requests authenticate, the secret read. A token is kept as its header value, marked
/// sensitive (its `Debug` prints no secret, and HTTP/2 never indexes it).
#[derive(Clone, Debug)]
enum Auth {
    Basic(String, Secret),
    Token(reqwest::header::HeaderValue),
}

/// `Token <token>` as a header value; a token that cannot be one (a control character, a line
/// break inside) is an error naming where it came from, never the token.
fn token_header(
    token: &Secret,
    source: &crate::config::secret::SecretSource,
) -> Result<reqwest::header::HeaderValue, InfluxError> {
    let mut value =
        reqwest::header::HeaderValue::from_str(&format!("Token {}", token.expose().trim()))
            .map_err(|_| {
                InfluxError::Setup(format!(
                    "the InfluxDB token in {} holds characters an HTTP header cannot carry \
                     (write the token alone, on one line)",
                    source.origin()
                ))
            })?;
    value.set_sensitive(true);
    Ok(value)
}

/// An InfluxDB client for one database (and retention policy) or bucket. Cheap to clone.
#[derive(Clone, Debug)]
pub struct InfluxClient {
    http: reqwest::Client,
    url: String,
    target: InfluxTarget,
    database: String,
    retention_policy: Option<String>,
    auth: Option<Auth>,
}

impl InfluxClient {
    /// Builds a client for `access`, reading its CA file and password or token file now.
    pub fn new(access: &InfluxAccess) -> Result<InfluxClient, InfluxError> {
        let read = |source: &crate::config::secret::SecretSource| {
            source.read().map_err(|e| InfluxError::Setup(e.to_string()))
        };
        let auth = match &access.credentials {
            Some(InfluxCredentials::Password(user, source)) => {
                Some(Auth::Basic(user.clone(), read(source)?))
            }
            Some(InfluxCredentials::Token(source)) => {
                Some(Auth::Token(token_header(&read(source)?, source)?))
            }
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
            target: access.target.clone(),
            database: access.database.clone(),
            retention_policy: access.retention_policy.clone(),
            auth,
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Where points are written (the API and its names).
    pub fn target(&self) -> &InfluxTarget {
        &self.target
    }

    /// What points are written to, for messages: `database "m"` or `bucket "b" of
    /// organisation "o"`.
    pub fn destination(&self) -> String {
        match &self.target {
            InfluxTarget::V1 => format!("database {:?}", self.database),
            InfluxTarget::V2 { org, bucket } => {
                format!("bucket {bucket:?} of organisation {org:?}")
            }
        }
    }

    /// Writes `body` (line protocol, one point per line, timestamps in nanoseconds). `Ok` once
    /// InfluxDB answered 2xx (1.x answers 204 after the points are in its WAL; 2.x after they
    /// are in its WAL and queryable; 3.x, unless asked for `no_sync`, which logship never asks,
    /// after the write-ahead log holding them is persisted, flushed about every second).
    pub async fn write(&self, body: Vec<u8>) -> Result<(), InfluxError> {
        let request = match &self.target {
            InfluxTarget::V1 => {
                let mut query = vec![("db", self.database.as_str()), ("precision", "ns")];
                if let Some(policy) = &self.retention_policy {
                    query.push(("rp", policy));
                }
                self.http.post(format!("{}/write", self.url)).query(&query)
            }
            InfluxTarget::V2 { org, bucket } => self
                .http
                .post(format!("{}/api/v2/write", self.url))
                .query(&[
                    ("org", org.as_str()),
                    ("bucket", bucket.as_str()),
                    ("precision", "ns"),
                ]),
        };
        let request = self
            .authorized(request)
            .header(reqwest::header::CONTENT_TYPE, "text/plain; charset=utf-8")
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

    /// Makes where points are written, keeping them for `retention` (the configuration's;
    /// `None`: not managed): `v1`: `CREATE DATABASE` (a no-op when it exists) and, with a
    /// retention, the retention policy ([`InfluxClient::ensure_retention_policy`]); `v2`: the
    /// bucket when it is missing, with the retention as its rule (an existing bucket is left as
    /// it is).
    pub async fn create_database(&self, retention: Option<Retention>) -> Result<(), InfluxError> {
        match &self.target {
            InfluxTarget::V1 => {
                let statement = format!("CREATE DATABASE {}", quote_identifier(&self.database));
                self.query(&statement).await?;
                match retention {
                    Some(retention) => self.ensure_retention_policy(retention.duration()).await,
                    None => Ok(()),
                }
            }
            InfluxTarget::V2 { org, bucket } => {
                self.ensure_bucket(org, bucket, retention.and_then(Retention::duration))
                    .await
            }
        }
    }

    /// The bucket `bucket` of `org`, made with `retention` if missing (buckets API: look it up
    /// by name, find the organisation's ID, create). InfluxDB 2.x answers a lookup of a missing
    /// bucket or organisation with a 404 whose JSON says `"code": "not found"`; a 404 without it
    /// is a server without the buckets API (InfluxDB 1.8), an error naming that.
    async fn ensure_bucket(
        &self,
        org: &str,
        bucket: &str,
        retention: Option<std::time::Duration>,
    ) -> Result<(), InfluxError> {
        let list = self.authorized(
            self.http
                .get(format!("{}/api/v2/buckets", self.url))
                .query(&[("org", org), ("name", bucket)]),
        );
        if let Some(answer) = self.lookup(list, "a bucket lookup").await? {
            if buckets::named(&answer, bucket) {
                return Ok(());
            }
        }
        let orgs = self.authorized(
            self.http
                .get(format!("{}/api/v2/orgs", self.url))
                .query(&[("org", org)]),
        );
        let answer = self.lookup(orgs, "an organisation lookup").await?;
        let org_id = answer
            .and_then(|answer| buckets::org_id(&answer, org))
            .ok_or_else(|| InfluxError::Query {
                url: self.url.clone(),
                message: format!(
                    "no organisation named {org:?} is visible to the token (a token that may \
                     only write cannot look it up: create the bucket yourself and set \
                     influxdb.create_database = false)"
                ),
            })?;
        let create = self.authorized(
            self.http
                .post(format!("{}/api/v2/buckets", self.url))
                .json(&buckets::new_bucket(&org_id, bucket, retention)),
        );
        match self.send(create, "a bucket creation").await {
            Ok(_) => Ok(()),
            // Made by someone else between the lookup and here (2.x: 422, Cloud: 409).
            Err(InfluxError::Status {
                status: 409 | 422,
                body,
                ..
            }) if body.contains("already exists") => Ok(()),
            Err(error) => Err(error),
        }
    }

    /// Sends a lookup of the buckets API: its JSON answer, `None` when InfluxDB says the thing
    /// looked up is not found, an error naming the missing API when the server has none.
    async fn lookup(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<Option<serde_json::Value>, InfluxError> {
        match self.json(request, what).await {
            Ok(answer) => Ok(Some(answer)),
            Err(InfluxError::Status {
                status: 404, body, ..
            }) => match buckets::not_found(&body) {
                true => Ok(None),
                false => Err(InfluxError::Query {
                    url: self.url.clone(),
                    message: format!(
                        "no buckets API (404 to {what}: {body:?}); a server older than \
                         InfluxDB 2, such as 1.8, has none: create the database yourself"
                    ),
                }),
            },
            Err(error) => Err(error),
        }
    }

    /// Sends `request` and reads its answer as JSON.
    async fn json(
        &self,
        request: reqwest::RequestBuilder,
        what: &'static str,
    ) -> Result<serde_json::Value, InfluxError> {
        let body = self.send(request, what).await?;
        serde_json::from_slice(&body).map_err(|e| InfluxError::Query {
            url: self.url.clone(),
            message: format!("unreadable answer to {what}: {e}"),
        })
    }

    fn authorized(&self, request: reqwest::RequestBuilder) -> reqwest::RequestBuilder {
        match &self.auth {
            Some(Auth::Basic(user, password)) => request.basic_auth(user, Some(password.expose())),
            Some(Auth::Token(header)) => {
                request.header(reqwest::header::AUTHORIZATION, header.clone())
            }
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

/// The buckets API's JSON, read and written (InfluxDB 2.x `/api/v2/buckets`, `/api/v2/orgs`).
mod buckets {
    use serde_json::{json, Value};

    /// Whether a 404's body is the buckets API saying the bucket or organisation looked up
    /// does not exist (`{"code": "not found", ...}`), rather than a server without that API.
    pub fn not_found(body: &str) -> bool {
        serde_json::from_str::<Value>(body).is_ok_and(|answer| answer["code"] == "not found")
    }

    /// Whether a bucket list names `bucket`.
    pub fn named(answer: &Value, bucket: &str) -> bool {
        answer["buckets"]
            .as_array()
            .is_some_and(|list| list.iter().any(|b| b["name"] == bucket))
    }

    /// The ID of organisation `org` in an organisation list.
    pub fn org_id(answer: &Value, org: &str) -> Option<String> {
        answer["orgs"]
            .as_array()?
            .iter()
            .find(|o| o["name"] == org)?["id"]
            .as_str()
            .map(str::to_string)
    }

    /// The body creating `bucket` in organisation `org_id`, its points kept for `retention`
    /// (`None`: forever, no retention rule).
    pub fn new_bucket(org_id: &str, bucket: &str, retention: Option<std::time::Duration>) -> Value {
        let rules: Vec<Value> = retention
            .map(|kept| json!({ "type": "expire", "everySeconds": kept.as_secs() }))
            .into_iter()
            .collect();
        json!({ "orgID": org_id, "name": bucket, "retentionRules": rules })
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
                            "reload: InfluxDB CA and password or token read again; new requests use them"
                        );
                    }
                    Err(error) => tracing::error!(
                        url = %access.url,
                        %error,
                        "reload: cannot read the InfluxDB CA, password or token; keeping the ones in use"
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
    fn bucket_api_answers_are_read_and_its_requests_written() {
        use serde_json::json;
        let list = json!({ "buckets": [{ "name": "other" }, { "name": "metrics" }] });
        assert!(buckets::named(&list, "metrics"));
        assert!(!buckets::named(&list, "metric"));
        assert!(!buckets::named(&json!({ "code": "not found" }), "metrics"));
        // 2.x: a missing bucket or organisation; 1.8: no such API.
        assert!(buckets::not_found(
            r#"{"code":"not found","message":"bucket \"metrics\" not found"}"#
        ));
        assert!(!buckets::not_found("404 page not found"));
        assert!(!buckets::not_found(r#"{"code":"unauthorized"}"#));
        let orgs =
            json!({ "orgs": [{ "id": "a1", "name": "ops" }, { "id": "b2", "name": "dev" }] });
        assert_eq!(buckets::org_id(&orgs, "dev").as_deref(), Some("b2"));
        assert_eq!(buckets::org_id(&orgs, "qa"), None);
        let kept = buckets::new_bucket(
            "b2",
            "metrics",
            Some(std::time::Duration::from_secs(86_400)),
        );
        assert_eq!(
            kept,
            json!({ "orgID": "b2", "name": "metrics",
                    "retentionRules": [{ "type": "expire", "everySeconds": 86_400 }] })
        );
        assert_eq!(
            buckets::new_bucket("b2", "m", None)["retentionRules"],
            json!([])
        );
    }

    #[test]
    fn a_token_becomes_a_sensitive_header_or_an_error_naming_its_file() {
        use crate::config::secret::SecretSource;
        let source = SecretSource::File("/run/token".into());
        let header = token_header(&Secret::new("abc:def \n"), &source).unwrap();
        assert_eq!(header.to_str().unwrap(), "Token abc:def");
        assert!(header.is_sensitive());
        assert!(!format!("{:?}", Auth::Token(header)).contains("abc"));
        let error = token_header(&Secret::new("abc\ndef"), &source).unwrap_err();
        let message = error.to_string();
        assert!(
            message.contains("/run/token") && !message.contains("abc"),
            "{message}"
        );
    }

    #[test]
    fn identifiers_and_strings_are_quoted_for_influxql() {
        assert_eq!(quote_identifier("my \"db\""), "\"my \\\"db\\\"\"");
        assert_eq!(quote_string("it's"), "'it\\'s'");
        assert_eq!(quote_string("a\\b"), "'a\\\\b'");
    }
}
