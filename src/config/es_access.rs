//! How a component reaches Elasticsearch: URL, the CA that signs its certificate, and the
//! credentials — the `[elasticsearch]` keys the transfer and the console share.
//!
//! Credentials are [`SecretSource`]s, read when a client is built (at start and on SIGHUP), so
//! a rotated password file is picked up without a restart. Keys (docs/config.md, docs/security.md):
//!
//! - `ca_file`: PEM of the CA(s) to trust for an `https://` URL (without it, the system's); or
//!   `ca_fingerprint`: the SHA-256 of the CA certificate to trust among those the server presents.
//! - `username` + `password_file` (or `$LOGSHIP_ES_PASSWORD`): basic auth. An inline
//!   `password` still works for this release, with a deprecation warning.
//! - `api_key_file` (or `$LOGSHIP_ES_API_KEY`): an API key, either as Elasticsearch's `encoded`
//!   form or as `id:api_key`.

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;

use super::credentials::{ClientCertificates, Inline, TableKeys, TlsFiles, UserSecret};
use super::secret::SecretSource;
use super::Millis;

/// The environment variable a basic-auth password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_ES_PASSWORD";
/// The environment variable an API key may come from.
pub const API_KEY_ENV: &str = "LOGSHIP_ES_API_KEY";

/// The connection keys of an `[elasticsearch]` table, the same for the transfer and the
/// console (each flattens it into its table beside its own keys). `Debug` hides an inline
/// password.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EsConnection {
    /// The nodes: one base URL (`http://host:port` or `https://host:port`), several
    /// comma-separated in one string, or a TOML array of them.
    pub url: EsUrls,
    /// `ca_file` (`https://` only); client certificates are not taken.
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// SHA-256 fingerprint of the CA certificate to trust among those the cluster presents
    /// (instead of `ca_file`; `AB:CD:…` or plain hex).
    #[serde(default)]
    pub ca_fingerprint: Option<String>,
    /// `username` with `password_file` (or `$LOGSHIP_ES_PASSWORD`; the inline `password` is
    /// deprecated): basic auth.
    #[serde(flatten)]
    pub user: UserSecret,
    /// File holding an API key (`encoded` form or `id:api_key`; read at start and on SIGHUP).
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    /// Timeout of one request (absent: the role's default).
    #[serde(default)]
    pub request_timeout_ms: Option<Millis>,
}

/// The `url` key: the base URLs of one or more nodes of one cluster, in the order written.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsUrls(Vec<String>);

impl EsUrls {
    /// One node (tests build connections without TOML).
    #[cfg(test)]
    pub(crate) fn one(url: &str) -> EsUrls {
        EsUrls(vec![url.to_string()])
    }

    /// The nodes, in the order written.
    pub fn nodes(&self) -> &[String] {
        &self.0
    }
}

impl std::fmt::Display for EsUrls {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0.join(","))
    }
}

impl<'de> Deserialize<'de> for EsUrls {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        #[serde(untagged)]
        enum Written {
            One(String),
            Many(Vec<String>),
        }
        let nodes = match Written::deserialize(deserializer)? {
            Written::One(text) => text.split(',').map(|url| url.trim().to_string()).collect(),
            Written::Many(list) => list.into_iter().map(|url| url.trim().to_string()).collect(),
        };
        Ok(EsUrls(nodes))
    }
}

impl EsConnection {
    /// The keys, as written.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = vec![
            "url",
            "ca_fingerprint",
            "api_key_file",
            "request_timeout_ms",
        ];
        keys.extend(TlsFiles::CA_ONLY);
        keys.extend(UserSecret::KEYS_WITH_INLINE);
        keys
    }

    /// The URL, CA and credentials, checked together (see [`EsAccess::new`]);
    /// `default_timeout` when `request_timeout_ms` is absent.
    pub fn access(&self, default_timeout: Duration) -> Result<EsAccess, String> {
        EsAccess::new(self, default_timeout)
    }
}

impl TableKeys for EsConnection {
    fn keys() -> Vec<&'static str> {
        EsConnection::keys()
    }
}

/// How to authenticate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EsAuthSource {
    /// No credentials.
    None,
    /// Basic auth.
    Basic {
        /// User name.
        username: String,
        /// Where the password is.
        password: SecretSource,
    },
    /// An API key (`Authorization: ApiKey ...`).
    ApiKey(SecretSource),
}

/// Everything needed to build an Elasticsearch client, secrets as sources.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EsAccess {
    /// The nodes as written, comma-separated (for messages).
    pub url: String,
    /// The nodes' base URLs, in the order written (at least one).
    pub nodes: Vec<String>,
    /// PEM file of the CA(s) to trust.
    pub ca_file: Option<PathBuf>,
    /// SHA-256 of the CA certificate to trust among those the server presents (64 lowercase
    /// hex digits).
    pub ca_fingerprint: Option<String>,
    /// Credentials.
    pub auth: EsAuthSource,
    /// Timeout of one request.
    pub request_timeout: Duration,
}

impl EsAccess {
    /// The files this access reads (CA, password or API key): a change to one is a reason to
    /// reload.
    pub fn files(&self) -> Vec<PathBuf> {
        let secret = match &self.auth {
            EsAuthSource::None => None,
            EsAuthSource::Basic { password, .. } => password.file(),
            EsAuthSource::ApiKey(key) => key.file(),
        };
        self.ca_file
            .iter()
            .cloned()
            .chain(secret.map(Path::to_path_buf))
            .collect()
    }

    /// Checks the combination of keys; the error names the keys (`elasticsearch.` prefixed).
    pub fn new(keys: &EsConnection, default_timeout: Duration) -> Result<EsAccess, String> {
        let table = "elasticsearch";
        let nodes = keys.url.nodes();
        if nodes.is_empty() || nodes.iter().any(|url| url.is_empty()) {
            return Err(format!(
                "elasticsearch.url {:?} must name at least one node, with no empty item",
                keys.url.to_string()
            ));
        }
        for url in nodes {
            if !(url.starts_with("http://") || url.starts_with("https://")) {
                return Err(format!(
                    "elasticsearch.url {url:?} must start with http:// or https://"
                ));
            }
            elasticsearch::http::Url::parse(url)
                .map_err(|e| format!("elasticsearch.url {url:?}: {e}"))?;
        }
        let https = nodes
            .iter()
            .filter(|url| url.starts_with("https://"))
            .count();
        if https != 0 && https != nodes.len() {
            return Err(
                "elasticsearch.url mixes http:// and https:// nodes: use one scheme".into(),
            );
        }
        let request_timeout = keys
            .request_timeout_ms
            .map_or(default_timeout, |timeout| timeout.get());
        if request_timeout < Duration::from_millis(100) {
            return Err("elasticsearch.request_timeout_ms must be at least 100".into());
        }
        keys.tls.check(table, ClientCertificates::Refused)?;
        let ca_file = keys.tls.ca_file.as_deref();
        if (ca_file.is_some() || keys.ca_fingerprint.is_some()) && https == 0 {
            return Err(format!(
                "elasticsearch.ca_file / ca_fingerprint is set but elasticsearch.url {:?} is not \
                 https://",
                keys.url.to_string()
            ));
        }
        if ca_file.is_some() && keys.ca_fingerprint.is_some() {
            return Err("elasticsearch.ca_file and elasticsearch.ca_fingerprint: set one".into());
        }
        let ca_fingerprint = keys
            .ca_fingerprint
            .as_deref()
            .map(normalize_fingerprint)
            .transpose()?;
        let user = keys.user.user(table, PASSWORD_ENV, Inline::Deprecated)?;
        let auth = match (user, &keys.api_key_file) {
            (Some(_), Some(_)) => {
                return Err(
                    "elasticsearch.username and elasticsearch.api_key_file: choose basic \
                            auth or an API key"
                        .into(),
                )
            }
            (Some((username, password)), None) => EsAuthSource::Basic { username, password },
            (None, api_key_file) => {
                match SecretSource::choose(api_key_file.as_deref(), API_KEY_ENV, None) {
                    Some(key) => EsAuthSource::ApiKey(key),
                    None => EsAuthSource::None,
                }
            }
        };
        Ok(EsAccess {
            url: keys.url.to_string(),
            nodes: nodes.to_vec(),
            ca_file: ca_file.map(Path::to_path_buf),
            ca_fingerprint,
            auth,
            request_timeout,
        })
    }

    /// A warning to log at start, if the configuration uses something deprecated.
    pub fn deprecation(&self) -> Option<&'static str> {
        match &self.auth {
            EsAuthSource::Basic {
                password: SecretSource::Inline(_),
                ..
            } => Some(
                "elasticsearch.password in the configuration file is deprecated and will be \
                 refused in the next release: put the password in a file named by \
                 elasticsearch.password_file (or in $LOGSHIP_ES_PASSWORD)",
            ),
            _ => None,
        }
    }
}

/// Normalizes a written fingerprint (`AB:CD:…` or `abcd…`) to 64 lowercase hex digits.
pub fn normalize_fingerprint(fingerprint: &str) -> Result<String, String> {
    let hex: String = fingerprint
        .chars()
        .filter(|c| *c != ':')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    if hex.len() != 64 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err(format!(
            "elasticsearch.ca_fingerprint {fingerprint:?} is not a SHA-256 fingerprint (64 hex \
             digits, colons allowed)"
        ));
    }
    Ok(hex)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(url: &str) -> EsConnection {
        EsConnection {
            url: EsUrls::one(url),
            tls: TlsFiles::default(),
            ca_fingerprint: None,
            user: UserSecret::default(),
            api_key_file: None,
            request_timeout_ms: None,
        }
    }

    fn user(username: Option<&str>, file: Option<&Path>, inline: Option<&str>) -> UserSecret {
        UserSecret {
            username: username.map(str::to_string),
            password_file: file.map(Path::to_path_buf),
            password: inline.map(str::to_string),
        }
    }

    fn ca(file: &Path) -> TlsFiles {
        TlsFiles {
            ca_file: Some(file.to_path_buf()),
            ..TlsFiles::default()
        }
    }

    #[test]
    fn basic_auth_api_key_or_nothing() {
        let file = Path::new("/run/pw");
        let basic = EsAccess::new(
            &EsConnection {
                user: user(Some("logship"), Some(file), None),
                tls: ca(Path::new("/ca.pem")),
                ..keys("https://es:9243")
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            basic.auth,
            EsAuthSource::Basic {
                username: "logship".into(),
                password: SecretSource::File(file.into())
            }
        );
        assert!(basic.deprecation().is_none());
        let key = EsAccess::new(
            &EsConnection {
                api_key_file: Some(file.to_path_buf()),
                ..keys("https://es:9243")
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert_eq!(
            key.auth,
            EsAuthSource::ApiKey(SecretSource::File(file.into()))
        );
        let inline = EsAccess::new(
            &EsConnection {
                user: user(Some("u"), None, Some("p")),
                ..keys("http://es:9200")
            },
            Duration::from_secs(1),
        )
        .unwrap();
        assert!(inline.deprecation().unwrap().contains("password_file"));
        assert!(!format!("{inline:?}").contains("\"p\""));
    }

    #[test]
    fn several_nodes_as_a_list_or_comma_separated() {
        let one: EsConnection = toml::from_str("url = \"http://a:9200\"").unwrap();
        assert_eq!(one.url.nodes(), ["http://a:9200"]);
        let comma: EsConnection =
            toml::from_str("url = \"http://a:9200, http://b:9200,http://c:9200\"").unwrap();
        let array: EsConnection =
            toml::from_str("url = [\"http://a:9200\", \"http://b:9200\", \"http://c:9200\"]")
                .unwrap();
        assert_eq!(comma.url, array.url);
        let access = array.access(Duration::from_secs(1)).unwrap();
        assert_eq!(access.nodes.len(), 3);
        assert_eq!(access.url, "http://a:9200,http://b:9200,http://c:9200");
        for (text, expected) in [
            ("url = []", "at least one node"),
            ("url = \"http://a:9200,\"", "no empty item"),
            ("url = [\"http://a:9200\", \"https://b:9200\"]", "mixes"),
            (
                "url = [\"http://a:9200\", \"ftp://b\"]",
                "\"ftp://b\" must start",
            ),
        ] {
            let connection: EsConnection = toml::from_str(text).unwrap();
            let error = connection.access(Duration::from_secs(1)).unwrap_err();
            assert!(error.contains(expected), "{text}: {error}");
        }
    }

    #[test]
    fn fingerprints_are_normalized_or_refused() {
        let colons = "AB:".repeat(31) + "AB";
        assert_eq!(normalize_fingerprint(&colons).unwrap(), "ab".repeat(32));
        assert!(normalize_fingerprint("abc").unwrap_err().contains("64 hex"));
        assert!(normalize_fingerprint(&"zz".repeat(32)).is_err());
    }

    #[test]
    fn contradictions_are_refused_naming_the_keys() {
        let file = Path::new("/run/pw");
        for (keys, expected) in [
            (
                EsConnection {
                    tls: ca(file),
                    ..keys("http://es:9200")
                },
                "not https://",
            ),
            (
                EsConnection {
                    user: user(Some("u"), Some(file), None),
                    api_key_file: Some(file.to_path_buf()),
                    ..keys("https://es")
                },
                "choose basic auth or an API key",
            ),
            (
                EsConnection {
                    user: user(None, Some(file), None),
                    ..keys("https://es")
                },
                "needs elasticsearch.username",
            ),
            (
                EsConnection {
                    user: user(Some("u"), Some(file), Some("p")),
                    ..keys("https://es")
                },
                "set one",
            ),
            (
                EsConnection {
                    tls: TlsFiles {
                        cert_file: Some(file.to_path_buf()),
                        key_file: Some(file.to_path_buf()),
                        ..ca(file)
                    },
                    ..keys("https://es")
                },
                "elasticsearch.cert_file",
            ),
        ] {
            let error = EsAccess::new(&keys, Duration::from_secs(1)).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
