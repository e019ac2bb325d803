//! A thin Elasticsearch client: `_bulk` and index templates for the transfer, `_search` for the
//! console.
//!
//! It reports what happened and decides nothing: a transport failure, a non-2xx status and a
//! processed bulk are returned as such, and the caller ([`crate::transfer`]) applies the rules of
//! [`super::outcome`]. No call here retries on its own.

use std::time::Duration;

use elasticsearch::auth::Credentials;
use elasticsearch::http::transport::{SingleNodeConnectionPool, TransportBuilder};
use elasticsearch::http::Url;
use elasticsearch::indices::IndicesPutIndexTemplateParts;
use elasticsearch::{BulkParts, Elasticsearch, SearchParts};

use super::bulk::{parse_answer, BulkItemResult, BulkParseError};

/// Largest part of an error answer kept for logs.
const MAX_ERROR_BODY: usize = 2048;

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
    #[error("Elasticsearch answered {status} to {what}: {body}")]
    Status {
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

/// Connection settings.
#[derive(Debug, Clone)]
pub struct EsSettings {
    /// Base URL.
    pub url: String,
    /// Basic-auth user and password.
    pub basic_auth: Option<(String, String)>,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

/// A cheap-to-clone handle on one Elasticsearch cluster.
#[derive(Clone, Debug)]
pub struct EsClient {
    client: Elasticsearch,
    url: String,
}

impl EsClient {
    /// Builds a client (no request is made).
    pub fn new(settings: &EsSettings) -> Result<EsClient, EsError> {
        let url = Url::parse(&settings.url)
            .map_err(|e| EsError::Setup(format!("url {:?}: {e}", settings.url)))?;
        let mut builder = TransportBuilder::new(SingleNodeConnectionPool::new(url))
            .timeout(settings.request_timeout)
            .disable_proxy();
        if let Some((user, password)) = &settings.basic_auth {
            builder = builder.auth(Credentials::Basic(user.clone(), password.clone()));
        }
        let transport = builder.build().map_err(|e| EsError::Setup(e.to_string()))?;
        Ok(EsClient {
            client: Elasticsearch::new(transport),
            url: settings.url.clone(),
        })
    }

    /// Sends one `_bulk` request of `docs` documents (`body` as written by
    /// [`super::bulk::write_create`]) and returns the per-item answers in request order.
    pub async fn bulk(&self, body: Vec<u8>, docs: usize) -> Result<Vec<BulkItemResult>, EsError> {
        let what = format!("_bulk of {docs} documents");
        let response = self
            .client
            .bulk(BulkParts::None)
            .filter_path(&["items.*.status", "items.*.error"])
            .body(vec![body])
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status_code().as_u16();
        let bytes = response.bytes().await.map_err(|e| EsError::Transport {
            url: self.url.clone(),
            message: format!("reading the answer: {e}"),
        })?;
        if !(200..300).contains(&status) {
            return Err(EsError::Status {
                what,
                status,
                body: truncated(&bytes),
            });
        }
        parse_answer(&bytes, docs).map_err(|error| EsError::Malformed { what, error })
    }

    /// Creates or replaces the composable index template `name`.
    pub async fn put_index_template(
        &self,
        name: &str,
        template: &serde_json::Value,
    ) -> Result<(), EsError> {
        let response = self
            .client
            .indices()
            .put_index_template(IndicesPutIndexTemplateParts::Name(name))
            .body(template)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
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
            what: format!("PUT _index_template/{name}"),
            status,
            body,
        })
    }

    /// Runs `_search` with `body` over `indices` (names or patterns). Patterns matching nothing
    /// give an empty answer, not an error. Returns the answer as JSON.
    pub async fn search(
        &self,
        indices: &[&str],
        body: &serde_json::Value,
    ) -> Result<serde_json::Value, EsError> {
        let response = self
            .client
            .search(SearchParts::Index(indices))
            .allow_no_indices(true)
            .ignore_unavailable(true)
            .body(body)
            .send()
            .await
            .map_err(|e| self.transport_error(e))?;
        let status = response.status_code().as_u16();
        let bytes = response.bytes().await.map_err(|e| EsError::Transport {
            url: self.url.clone(),
            message: format!("reading the answer: {e}"),
        })?;
        if !(200..300).contains(&status) {
            return Err(EsError::Status {
                what: "_search".into(),
                status,
                body: truncated(&bytes),
            });
        }
        serde_json::from_slice(&bytes).map_err(|e| EsError::Status {
            what: "_search (unreadable answer)".into(),
            status,
            body: e.to_string(),
        })
    }

    /// The base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    fn transport_error(&self, error: elasticsearch::Error) -> EsError {
        match error.status_code() {
            Some(status) => EsError::Status {
                what: "a request".into(),
                status: status.as_u16(),
                body: error.to_string(),
            },
            None => EsError::Transport {
                url: self.url.clone(),
                message: error.to_string(),
            },
        }
    }
}

fn truncated(bytes: &[u8]) -> String {
    let end = bytes.len().min(MAX_ERROR_BODY);
    String::from_utf8_lossy(&bytes[..end]).into_owned()
}
