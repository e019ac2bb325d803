//! Secrets (passwords, API keys): where they come from, and a type that never prints them.
//!
//! A secret is configured as a file (`password_file = "/etc/logship/es-password"`, the whole
//! file without its trailing newline) or taken from an environment variable named in the
//! documentation of its key (`LOGSHIP_ES_PASSWORD`). Inline values in the configuration are
//! accepted only where an earlier release took them, with a deprecation warning. A [`Secret`]
//! has no `Display`, its `Debug` is `<hidden>`, and errors about a secret name its file or
//! variable, never its content: no secret reaches a log line, `Debug` output or an error
//! message through this module.

use std::fmt;
use std::path::{Path, PathBuf};

/// A secret value. `Debug` prints `<hidden>`; the value is only reachable through
/// [`Secret::expose`], at the place it is handed to a client library.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps `value`.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, for the client library that sends it.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<hidden>")
    }
}

/// Where a secret is read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// A file holding the secret (a trailing newline is not part of it).
    File(PathBuf),
    /// An environment variable.
    Env(String),
    /// Written in the configuration file (deprecated where accepted).
    Inline(Secret),
}

impl SecretSource {
    /// The file, when the secret comes from one.
    pub fn file(&self) -> Option<&std::path::Path> {
        match self {
            SecretSource::File(path) => Some(path),
            _ => None,
        }
    }
}

/// Why a secret could not be read. Names the file or variable, never the content.
#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    /// The file cannot be read.
    #[error("cannot read the secret file {path}: {source}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file or variable is empty.
    #[error("the secret in {0} is empty")]
    Empty(String),
    /// The variable is not set or not UTF-8.
    #[error("the environment variable {0} is not set (or not UTF-8)")]
    Env(String),
    /// The keys naming the secret do not fit together (the message names them).
    #[error("{0}")]
    Invalid(String),
}

impl SecretSource {
    /// `file` if given, else the environment variable `env` if it is set, else `inline` if
    /// given; `None` when none is.
    pub fn choose(file: Option<&Path>, env: &str, inline: Option<&str>) -> Option<SecretSource> {
        if let Some(file) = file {
            return Some(SecretSource::File(file.to_path_buf()));
        }
        if std::env::var_os(env).is_some() {
            return Some(SecretSource::Env(env.to_string()));
        }
        inline.map(|value| SecretSource::Inline(Secret::new(value)))
    }

    /// Reads the secret now (files are read again on every call: that is how a rotated secret
    /// is picked up).
    pub fn read(&self) -> Result<Secret, SecretError> {
        let (value, origin) = match self {
            SecretSource::File(path) => {
                let text = std::fs::read_to_string(path).map_err(|source| SecretError::File {
                    path: path.clone(),
                    source,
                })?;
                (text, path.display().to_string())
            }
            SecretSource::Env(name) => (
                std::env::var(name).map_err(|_| SecretError::Env(name.clone()))?,
                format!("${name}"),
            ),
            SecretSource::Inline(secret) => (secret.expose().to_string(), "the config".into()),
        };
        let value = value.strip_suffix('\n').unwrap_or(&value);
        let value = value.strip_suffix('\r').unwrap_or(value);
        if value.is_empty() {
            return Err(SecretError::Empty(origin));
        }
        Ok(Secret::new(value))
    }

    /// Where it comes from, for messages (`file /etc/x`, `$LOGSHIP_ES_PASSWORD`, `the config`).
    pub fn origin(&self) -> String {
        match self {
            SecretSource::File(path) => format!("file {}", path.display()),
            SecretSource::Env(name) => format!("${name}"),
            SecretSource::Inline(_) => "the config".to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_never_print_and_files_lose_their_newline() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("pw");
        std::fs::write(&path, "s3cr3t-value\n").unwrap();
        let source = SecretSource::File(path.clone());
        let secret = source.read().unwrap();
        assert_eq!(secret.expose(), "s3cr3t-value");
        assert_eq!(format!("{secret:?}"), "<hidden>");
        assert!(!format!("{:?}", SecretSource::Inline(secret)).contains("s3cr3t"));

        std::fs::write(&path, "\n").unwrap();
        let error = source.read().unwrap_err().to_string();
        assert!(
            error.contains("is empty") && error.contains("pw"),
            "{error}"
        );
        let missing = SecretSource::File(dir.path().join("nope"))
            .read()
            .unwrap_err();
        assert!(missing.to_string().contains("nope"));
    }

    #[test]
    fn a_file_wins_over_the_environment_which_wins_over_the_config() {
        let file = Path::new("/run/secret");
        assert_eq!(
            SecretSource::choose(Some(file), "LOGSHIP_TEST_UNSET_VAR", Some("x")),
            Some(SecretSource::File(file.into()))
        );
        assert_eq!(
            SecretSource::choose(None, "PATH", Some("x")),
            Some(SecretSource::Env("PATH".into()))
        );
        assert_eq!(
            SecretSource::choose(None, "LOGSHIP_TEST_UNSET_VAR", Some("x")),
            Some(SecretSource::Inline(Secret::new("x")))
        );
        assert_eq!(
            SecretSource::choose(None, "LOGSHIP_TEST_UNSET_VAR", None),
            None
        );
        let error = SecretSource::Env("LOGSHIP_TEST_UNSET_VAR".into())
            .read()
            .unwrap_err();
        assert!(error.to_string().contains("LOGSHIP_TEST_UNSET_VAR"));
    }
}
