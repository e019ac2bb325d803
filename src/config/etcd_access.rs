//! How the agent and `logship ctl` reach etcd: endpoints, TLS (the CA, a client certificate)
//! and etcd user authentication. Files are read at every (re)connection, so a rotated
//! certificate or password is used from the next connection on. docs/security.md lists what
//! an agent's etcd user may do.

use serde::Deserialize;

use super::credentials::{ClientCertificates, Inline, Refuse, TableKeys, TlsFiles, UserSecret};
use super::secret::SecretSource;

/// The environment variable the etcd password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_ETCD_PASSWORD";

/// The connection keys of an `[etcd]` table, the same for the agent and the console:
/// endpoints, the key prefix, TLS files and an etcd user.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct EtcdConnection {
    /// etcd endpoints (`http://host:2379`, or `https://` with TLS).
    pub endpoints: Vec<String>,
    /// Key prefix: entries live at `{prefix}/agents/{host}/collect`, the registry at
    /// `{prefix}/registry/{host}`.
    #[serde(default = "default_prefix")]
    pub prefix: String,
    /// `ca_file`, and `cert_file` with `key_file` for servers that require a client
    /// certificate (every endpoint `https://` then).
    #[serde(flatten)]
    pub tls: TlsFiles,
    /// `username` (auth enabled on the server) with `password_file` or
    /// `$LOGSHIP_ETCD_PASSWORD` (read at every connection).
    #[serde(flatten)]
    pub user: UserSecret,
}

fn default_prefix() -> String {
    "/logship".to_string()
}

impl EtcdConnection {
    /// The keys, as written.
    pub fn keys() -> Vec<&'static str> {
        let mut keys = vec!["endpoints", "prefix"];
        keys.extend(TlsFiles::KEYS);
        keys.extend(UserSecret::KEYS);
        keys
    }

    /// Endpoints and credentials, checked together, and the prefix; the error names the key.
    pub fn access(&self) -> Result<EtcdAccess, String> {
        let access = EtcdAccess::new(self.endpoints.clone(), &self.tls, &self.user, "etcd")?;
        check_endpoints_and_prefix(&self.endpoints, &self.prefix)?;
        Ok(access)
    }
}

/// The console's `[etcd]` table: the connection and nothing else.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct EtcdTable {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<EtcdTable>,
    /// Endpoints, prefix and credentials.
    #[serde(flatten)]
    pub connection: EtcdConnection,
}

impl TableKeys for EtcdTable {
    fn keys() -> Vec<&'static str> {
        EtcdConnection::keys()
    }
}

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
    /// The CA, and a client certificate with its key.
    pub tls: TlsFiles,
    /// etcd user and where its password is.
    pub user: Option<(String, SecretSource)>,
}

impl EtcdAccess {
    /// Checks the combination; `table` names the keys in errors (`etcd` for a configuration
    /// table; the command line's flags map to the same keys).
    pub fn new(
        endpoints: Vec<String>,
        tls: &TlsFiles,
        user: &UserSecret,
        table: &str,
    ) -> Result<EtcdAccess, String> {
        tls.check(table, ClientCertificates::Accepted)?;
        if tls.any() && endpoints.iter().any(|e| !e.starts_with("https://")) {
            return Err(format!(
                "with {table}.ca_file or a client certificate, every endpoint must be https://"
            ));
        }
        let user = user.user(table, PASSWORD_ENV, Inline::Refused)?;
        Ok(EtcdAccess {
            endpoints,
            tls: tls.clone(),
            user,
        })
    }

    /// Plain endpoints, no TLS, no user.
    pub fn plain(endpoints: Vec<String>) -> EtcdAccess {
        EtcdAccess {
            endpoints,
            tls: TlsFiles::default(),
            user: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::path::{Path, PathBuf};

    #[test]
    fn combinations_are_checked() {
        let https = vec!["https://e:2379".to_string()];
        let f = Some(PathBuf::from("/f"));
        let tls = |ca: bool, cert: bool, key: bool| TlsFiles {
            ca_file: f.clone().filter(|_| ca),
            cert_file: f.clone().filter(|_| cert),
            key_file: f.clone().filter(|_| key),
        };
        let none = UserSecret::default();
        assert!(
            EtcdAccess::new(https.clone(), &tls(true, true, false), &none, "etcd")
                .unwrap_err()
                .contains("go together")
        );
        assert!(EtcdAccess::new(
            vec!["http://e".into()],
            &tls(true, false, false),
            &none,
            "etcd"
        )
        .unwrap_err()
        .contains("https://"));
        let no_user = UserSecret::with_file(None, f.clone());
        assert!(
            EtcdAccess::new(https.clone(), &tls(false, false, false), &no_user, "etcd")
                .unwrap_err()
                .contains("needs etcd.username")
        );
        let agent = UserSecret::with_file(Some("agent".into()), f.clone());
        let access = EtcdAccess::new(https, &tls(true, true, true), &agent, "etcd").unwrap();
        assert_eq!(
            access.user,
            Some(("agent".into(), SecretSource::File(Path::new("/f").into())))
        );
    }

    #[test]
    fn the_table_lists_its_keys() {
        crate::config::credentials::assert_keys_taken::<EtcdTable, EtcdTable>(
            "endpoints = [\"http://e\"]\n",
        );
    }
}
