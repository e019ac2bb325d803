//! The credentials every connection table shares, written once: [`TlsFiles`] (a CA, a client
//! certificate and its key) and [`UserSecret`] (a user and where its password is). A table
//! takes them with `#[serde(flatten)]`, so users write the same keys as before
//! (`ca_file = …`, `username = …`, `password_file = …` directly in `[elasticsearch]`,
//! `[influxdb]`, `[etcd]`, `[kafka.tls]`, `[kafka.sasl]`), and checks them with the table's
//! name, so every message names the key as written (`influxdb.password_file needs
//! influxdb.username`).
//!
//! A table made of flattened parts ends with [`Refuse`], which turns a key no part took into
//! "unknown field `x`, expected one of …" — the message a plain table's `deny_unknown_fields`
//! gives, which a flattened table would otherwise lose.

use std::fmt;
use std::marker::PhantomData;
use std::path::{Path, PathBuf};

use serde::de::{Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::Deserialize;

use super::secret::SecretSource;

/// `ca_file`, `cert_file`, `key_file`: PEM files for TLS to a server. Files are read when a
/// client is built (at start, on reload or reconnection), never kept in the configuration.
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsFiles {
    /// PEM of the CA(s) that sign the server's certificate (default: the system's, where the
    /// client has one).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM of a client certificate, for servers that require one (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM of the client certificate's private key (unencrypted; keep it mode 600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

/// Whether a server takes client certificates from logship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientCertificates {
    /// `cert_file` and `key_file` may be given (together).
    Accepted,
    /// `cert_file` and `key_file` are refused (the client cannot present one).
    Refused,
}

impl TlsFiles {
    /// The keys, as written.
    pub const KEYS: &'static [&'static str] = &["ca_file", "cert_file", "key_file"];
    /// The keys of a table that takes only a CA.
    pub const CA_ONLY: &'static [&'static str] = &["ca_file"];

    /// Checks the combination; `table` names the table in messages (`etcd`, `kafka.tls`).
    pub fn check(&self, table: &str, client: ClientCertificates) -> Result<(), String> {
        let certificate = self.cert_file.is_some() || self.key_file.is_some();
        if client == ClientCertificates::Refused && certificate {
            return Err(format!(
                "{table}.cert_file / {table}.key_file: logship does not present a client \
                 certificate to this server (use its user or key settings)"
            ));
        }
        if self.cert_file.is_some() != self.key_file.is_some() {
            return Err(format!(
                "{table}.cert_file and {table}.key_file go together"
            ));
        }
        Ok(())
    }

    /// Whether any file is given (TLS is asked for).
    pub fn any(&self) -> bool {
        self.ca_file.is_some() || self.cert_file.is_some() || self.key_file.is_some()
    }

    /// The files, for watching: a change to one is a reason to reload.
    pub fn files(&self) -> Vec<PathBuf> {
        [&self.ca_file, &self.cert_file, &self.key_file]
            .into_iter()
            .flatten()
            .cloned()
            .collect()
    }
}

/// `username`, `password_file` and, where an earlier release took it, the deprecated inline
/// `password`. The password itself is read when a client is built ([`SecretSource::read`]),
/// from the file, else from the table's environment variable. `Debug` hides an inline password.
#[derive(Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UserSecret {
    /// The user.
    #[serde(default)]
    pub username: Option<String>,
    /// File holding the user's password (read at start, on reload or reconnection).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
    /// The password written in the configuration (deprecated; accepted only where an earlier
    /// release took it, see [`Inline`]).
    #[serde(default)]
    pub password: Option<String>,
}

impl fmt::Debug for UserSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("UserSecret")
            .field("username", &self.username)
            .field("password_file", &self.password_file)
            .field("password", &self.password.as_ref().map(|_| "<hidden>"))
            .finish()
    }
}

/// Whether a table accepts the inline `password` key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inline {
    /// Accepted with a deprecation warning (`[elasticsearch]`, for this release).
    Deprecated,
    /// Refused: the password goes in a file or the environment.
    Refused,
}

impl UserSecret {
    /// The keys of a table that takes a user and a password file.
    pub const KEYS: &'static [&'static str] = &["username", "password_file"];
    /// The keys of a table that also takes the deprecated inline password.
    pub const KEYS_WITH_INLINE: &'static [&'static str] =
        &["username", "password_file", "password"];

    /// The user and where its password is (the file, else `$env`, else the inline value where
    /// accepted); `None` without a user. `table` names the table in messages.
    pub fn user(
        &self,
        table: &str,
        env: &str,
        inline: Inline,
    ) -> Result<Option<(String, SecretSource)>, String> {
        if self.password.is_some() {
            if inline == Inline::Refused {
                return Err(format!(
                    "{table}.password: write the password in a file named by \
                     {table}.password_file (or in ${env})"
                ));
            }
            if self.password_file.is_some() {
                return Err(format!(
                    "{table}.password and {table}.password_file: set one (the file)"
                ));
            }
        }
        match &self.username {
            Some(name) if name.is_empty() => Err(format!("{table}.username must not be empty")),
            Some(name) => {
                let source = SecretSource::choose(
                    self.password_file.as_deref(),
                    env,
                    self.password.as_deref(),
                )
                .ok_or_else(|| {
                    format!("{table}.username needs {table}.password_file (or ${env})")
                })?;
                Ok(Some((name.clone(), source)))
            }
            None if self.password_file.is_some() || self.password.is_some() => Err(format!(
                "{table}.password_file (or password) needs {table}.username"
            )),
            None => Ok(None),
        }
    }

    /// The password file, for watching.
    pub fn file(&self) -> Option<&Path> {
        self.password_file.as_deref()
    }

    /// A user given in code (command-line flags), the password from a file.
    pub fn with_file(username: Option<String>, password_file: Option<PathBuf>) -> UserSecret {
        UserSecret {
            username,
            password_file,
            password: None,
        }
    }
}

/// The keys a table made of flattened parts accepts, for the message of [`Refuse`].
pub trait TableKeys {
    /// Every key, as written.
    fn keys() -> Vec<&'static str>;
}

/// The last, flattened field of a table made of parts: sees the table's keys (serde hands a
/// flattened field every key a part deserialized as a map left in place) and refuses the first
/// one the table does not list, by name, listing the keys the table accepts.
pub struct Refuse<K>(PhantomData<K>);

impl<K> Default for Refuse<K> {
    fn default() -> Self {
        Refuse(PhantomData)
    }
}

impl<K> Clone for Refuse<K> {
    fn clone(&self) -> Self {
        Refuse(PhantomData)
    }
}

impl<K> PartialEq for Refuse<K> {
    fn eq(&self, _: &Self) -> bool {
        true
    }
}

impl<K> Eq for Refuse<K> {}

impl<K> fmt::Debug for Refuse<K> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Refuse")
    }
}

impl<'de, K: TableKeys> Deserialize<'de> for Refuse<K> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Leftover<K>(PhantomData<K>);
        impl<'de, K: TableKeys> Visitor<'de> for Leftover<K> {
            type Value = Refuse<K>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("the keys no part of the table took")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Refuse<K>, A::Error> {
                let keys = K::keys();
                while let Some((key, IgnoredAny)) = map.next_entry::<String, IgnoredAny>()? {
                    if keys.contains(&key.as_str()) {
                        continue;
                    }
                    let expected: Vec<String> = keys.iter().map(|k| format!("`{k}`")).collect();
                    return Err(serde::de::Error::custom(format!(
                        "unknown field `{key}`, expected one of {}",
                        expected.join(", ")
                    )));
                }
                Ok(Refuse(PhantomData))
            }
        }
        deserializer.deserialize_map(Leftover(PhantomData))
    }
}

/// Test support: every key a table lists is read by one of its parts (a value no key takes —
/// an inline table with an unknown key — is refused by that part, not passed over), and a key
/// it does not list is refused with the list.
#[cfg(test)]
pub(crate) fn assert_keys_taken<K: TableKeys, T: serde::de::DeserializeOwned>(base: &str) {
    for key in K::keys() {
        let text = format!("{base}{key} = {{ zz_inner = 1 }}\n");
        match toml::from_str::<T>(&text) {
            Ok(_) => panic!("{key} is listed but no part of the table reads it"),
            Err(error) => assert!(
                !error
                    .to_string()
                    .contains(&format!("unknown field `{key}`")),
                "{key} is listed but refused: {error}"
            ),
        }
    }
    let error = toml::from_str::<T>(&format!("{base}zz_probe = 1\n"))
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        error.contains("unknown field `zz_probe`, expected one of"),
        "{error}"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_user_and_its_password_are_checked_with_the_table_named() {
        let user = |username: Option<&str>, file: Option<&str>, inline: Option<&str>| UserSecret {
            username: username.map(str::to_string),
            password_file: file.map(PathBuf::from),
            password: inline.map(str::to_string),
        };
        let unset = "LOGSHIP_TEST_UNSET_VAR";
        let ok = user(Some("u"), Some("/pw"), None)
            .user("influxdb", unset, Inline::Refused)
            .unwrap();
        assert_eq!(ok, Some(("u".into(), SecretSource::File("/pw".into()))));
        for (secret, inline, expected) in [
            (
                user(Some("u"), None, None),
                Inline::Refused,
                "influxdb.username needs influxdb.password_file (or $LOGSHIP_TEST_UNSET_VAR)",
            ),
            (
                user(None, Some("/pw"), None),
                Inline::Refused,
                "needs influxdb.username",
            ),
            (
                user(Some("u"), None, Some("p")),
                Inline::Refused,
                "influxdb.password: write the password in a file",
            ),
            (
                user(Some("u"), Some("/pw"), Some("p")),
                Inline::Deprecated,
                "set one",
            ),
            (
                user(Some(""), Some("/pw"), None),
                Inline::Refused,
                "must not be empty",
            ),
        ] {
            let error = secret.user("influxdb", unset, inline).unwrap_err();
            assert!(error.contains(expected), "{error}");
        }
        let inline = user(Some("u"), None, Some("p"))
            .user("elasticsearch", unset, Inline::Deprecated)
            .unwrap()
            .unwrap();
        assert!(matches!(inline.1, SecretSource::Inline(_)));
        assert!(!format!("{:?}", user(Some("u"), None, Some("s3cr3t"))).contains("s3cr3t"));
    }

    #[test]
    fn client_certificates_go_in_pairs_and_only_where_taken() {
        let files = |cert: bool, key: bool| TlsFiles {
            ca_file: Some("/ca".into()),
            cert_file: cert.then(|| "/c".into()),
            key_file: key.then(|| "/k".into()),
        };
        assert!(files(true, false)
            .check("etcd", ClientCertificates::Accepted)
            .unwrap_err()
            .contains("etcd.cert_file and etcd.key_file go together"));
        assert!(files(true, true)
            .check("influxdb", ClientCertificates::Refused)
            .unwrap_err()
            .contains("influxdb.cert_file"));
        assert!(files(true, true)
            .check("kafka.tls", ClientCertificates::Accepted)
            .is_ok());
        assert_eq!(files(true, true).files().len(), 3);
    }
}
