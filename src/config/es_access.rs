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

use super::secret::SecretSource;

/// The environment variable a basic-auth password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_ES_PASSWORD";
/// The environment variable an API key may come from.
pub const API_KEY_ENV: &str = "LOGSHIP_ES_API_KEY";

/// The access keys of an `[elasticsearch]` table, as written.
#[derive(Debug, Clone, Copy)]
pub struct EsAccessKeys<'a> {
    /// `url`.
    pub url: &'a str,
    /// `username`.
    pub username: Option<&'a str>,
    /// `password` (deprecated inline value).
    pub password: Option<&'a str>,
    /// `password_file`.
    pub password_file: Option<&'a Path>,
    /// `api_key_file`.
    pub api_key_file: Option<&'a Path>,
    /// `ca_file`.
    pub ca_file: Option<&'a Path>,
    /// `ca_fingerprint`.
    pub ca_fingerprint: Option<&'a str>,
    /// `request_timeout_ms`.
    pub request_timeout: Duration,
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
    /// Base URL.
    pub url: String,
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
    pub fn new(keys: EsAccessKeys<'_>) -> Result<EsAccess, String> {
        if (keys.ca_file.is_some() || keys.ca_fingerprint.is_some())
            && !keys.url.starts_with("https://")
        {
            return Err(format!(
                "elasticsearch.ca_file / ca_fingerprint is set but elasticsearch.url {:?} is not \
                 https://",
                keys.url
            ));
        }
        if keys.ca_file.is_some() && keys.ca_fingerprint.is_some() {
            return Err("elasticsearch.ca_file and elasticsearch.ca_fingerprint: set one".into());
        }
        let ca_fingerprint = keys.ca_fingerprint.map(normalize_fingerprint).transpose()?;
        if keys.password.is_some() && keys.password_file.is_some() {
            return Err(
                "elasticsearch.password and elasticsearch.password_file: set one (the file)".into(),
            );
        }
        let auth =
            match (keys.username, keys.api_key_file) {
                (Some(_), Some(_)) => return Err(
                    "elasticsearch.username and elasticsearch.api_key_file: choose basic auth or \
                     an API key"
                        .into(),
                ),
                (Some(username), None) => {
                    let password =
                        SecretSource::choose(keys.password_file, PASSWORD_ENV, keys.password)
                            .ok_or_else(|| {
                                format!(
                                    "elasticsearch.username needs elasticsearch.password_file (or \
                                 ${PASSWORD_ENV})"
                                )
                            })?;
                    EsAuthSource::Basic {
                        username: username.to_string(),
                        password,
                    }
                }
                (None, api_key_file) => {
                    if keys.password.is_some() || keys.password_file.is_some() {
                        return Err(
                        "elasticsearch.password_file (or password) needs elasticsearch.username"
                            .into(),
                    );
                    }
                    match SecretSource::choose(api_key_file, API_KEY_ENV, None) {
                        Some(key) => EsAuthSource::ApiKey(key),
                        None => EsAuthSource::None,
                    }
                }
            };
        Ok(EsAccess {
            url: keys.url.to_string(),
            ca_file: keys.ca_file.map(Path::to_path_buf),
            ca_fingerprint,
            auth,
            request_timeout: keys.request_timeout,
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

    fn keys(url: &str) -> EsAccessKeys<'_> {
        EsAccessKeys {
            url,
            username: None,
            password: None,
            password_file: None,
            api_key_file: None,
            ca_file: None,
            ca_fingerprint: None,
            request_timeout: Duration::from_secs(1),
        }
    }

    #[test]
    fn basic_auth_api_key_or_nothing() {
        let file = Path::new("/run/pw");
        let basic = EsAccess::new(EsAccessKeys {
            username: Some("logship"),
            password_file: Some(file),
            ca_file: Some(Path::new("/ca.pem")),
            ..keys("https://es:9243")
        })
        .unwrap();
        assert_eq!(
            basic.auth,
            EsAuthSource::Basic {
                username: "logship".into(),
                password: SecretSource::File(file.into())
            }
        );
        assert!(basic.deprecation().is_none());
        let key = EsAccess::new(EsAccessKeys {
            api_key_file: Some(file),
            ..keys("https://es:9243")
        })
        .unwrap();
        assert_eq!(
            key.auth,
            EsAuthSource::ApiKey(SecretSource::File(file.into()))
        );
        let inline = EsAccess::new(EsAccessKeys {
            username: Some("u"),
            password: Some("p"),
            ..keys("http://es:9200")
        })
        .unwrap();
        assert!(inline.deprecation().unwrap().contains("password_file"));
        assert!(!format!("{inline:?}").contains("\"p\""));
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
                EsAccessKeys {
                    ca_file: Some(file),
                    ..keys("http://es:9200")
                },
                "not https://",
            ),
            (
                EsAccessKeys {
                    username: Some("u"),
                    api_key_file: Some(file),
                    password_file: Some(file),
                    ..keys("https://es")
                },
                "choose basic auth or an API key",
            ),
            (
                EsAccessKeys {
                    password_file: Some(file),
                    ..keys("https://es")
                },
                "needs elasticsearch.username",
            ),
            (
                EsAccessKeys {
                    username: Some("u"),
                    password: Some("p"),
                    password_file: Some(file),
                    ..keys("https://es")
                },
                "set one",
            ),
        ] {
            let error = EsAccess::new(keys).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
    }
}
