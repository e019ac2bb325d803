//! How the agent and `logship ctl` reach etcd: endpoints, TLS (the CA, a client certificate)
//! and etcd user authentication. Files are read at every (re)connection, so a rotated
//! certificate or password is used from the next connection on. docs/security.md lists what
//! an agent's etcd user may do.

use std::path::{Path, PathBuf};

use super::secret::SecretSource;

/// The environment variable the etcd password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_ETCD_PASSWORD";

/// Checks `etcd.endpoints` (at least one, none empty) and `etcd.prefix` (starts with `/`, does
/// not end with one); the error names the key.
pub fn check_endpoints_and_prefix(endpoints: &[String], prefix: &str) -> Result<(), String> {
    if endpoints.is_empty() || endpoints.iter().any(|e| e.trim().is_empty()) {
        return Err("etcd.endpoints must list at least one non-empty endpoint".into());
    }
    if !prefix.starts_with('/') || prefix.ends_with('/') {
        return Err(format!(
            "etcd.prefix {prefix:?} must start with '/' and not end with one"
        ));
    }
    Ok(())
}

/// Endpoints and credentials for etcd.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EtcdAccess {
    /// Endpoints (`https://host:2379` with TLS).
    pub endpoints: Vec<String>,
    /// PEM of the CA(s) that sign the servers' certificates.
    pub ca_file: Option<PathBuf>,
    /// PEM of the client certificate (with `key_file`).
    pub cert_file: Option<PathBuf>,
    /// PEM of its key.
    pub key_file: Option<PathBuf>,
    /// etcd user and where its password is.
    pub user: Option<(String, SecretSource)>,
}

impl EtcdAccess {
    /// Checks the combination; `key` names the configuration keys or flags in errors
    /// (`etcd.` or `--etcd-`).
    pub fn new(
        endpoints: Vec<String>,
        ca_file: Option<&Path>,
        cert_file: Option<&Path>,
        key_file: Option<&Path>,
        username: Option<&str>,
        password_file: Option<&Path>,
    ) -> Result<EtcdAccess, String> {
        if cert_file.is_some() != key_file.is_some() {
            return Err("the etcd client certificate and its key go together".into());
        }
        let tls = ca_file.is_some() || cert_file.is_some();
        if tls && endpoints.iter().any(|e| !e.starts_with("https://")) {
            return Err(
                "with an etcd CA or client certificate, every endpoint must be https://".into(),
            );
        }
        let user = match username {
            Some(name) => {
                let password =
                    SecretSource::choose(password_file, PASSWORD_ENV, None).ok_or_else(|| {
                        format!("an etcd user needs a password file (or ${PASSWORD_ENV})")
                    })?;
                Some((name.to_string(), password))
            }
            None if password_file.is_some() => {
                return Err("an etcd password file needs a user name".into())
            }
            None => None,
        };
        Ok(EtcdAccess {
            endpoints,
            ca_file: ca_file.map(Path::to_path_buf),
            cert_file: cert_file.map(Path::to_path_buf),
            key_file: key_file.map(Path::to_path_buf),
            user,
        })
    }

    /// Plain endpoints, no TLS, no user.
    pub fn plain(endpoints: Vec<String>) -> EtcdAccess {
        EtcdAccess {
            endpoints,
            ca_file: None,
            cert_file: None,
            key_file: None,
            user: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn combinations_are_checked() {
        let https = vec!["https://e:2379".to_string()];
        let f = Some(Path::new("/f"));
        assert!(EtcdAccess::new(https.clone(), f, f, None, None, None)
            .unwrap_err()
            .contains("go together"));
        assert!(
            EtcdAccess::new(vec!["http://e".into()], f, None, None, None, None)
                .unwrap_err()
                .contains("https://")
        );
        assert!(EtcdAccess::new(https.clone(), None, None, None, None, f)
            .unwrap_err()
            .contains("needs a user"));
        let access = EtcdAccess::new(https, f, f, f, Some("agent"), f).unwrap();
        assert_eq!(
            access.user,
            Some(("agent".into(), SecretSource::File("/f".into())))
        );
    }
}
