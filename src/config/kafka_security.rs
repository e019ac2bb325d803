//! `[kafka.tls]` and `[kafka.sasl]`: how the agent and the transfer reach a secured Kafka.
//!
//! ```toml
//! [kafka.tls]
//! ca_file = "/etc/logship/kafka-ca.pem"       # the CA that signs the brokers' certificates
//! cert_file = "/etc/logship/agent.pem"        # with key_file: a client certificate (mutual TLS)
//! key_file = "/etc/logship/agent.key"
//!
//! [kafka.sasl]
//! mechanism = "SCRAM-SHA-512"                 # PLAIN | SCRAM-SHA-256 | SCRAM-SHA-512
//! username = "logship-agent"
//! password_file = "/etc/logship/kafka-password" # or $LOGSHIP_KAFKA_PASSWORD
//! ```
//!
//! The password is a [`SecretSource`], read when the client is created. Secrets and security
//! settings given through `kafka.options` are refused with a pointer to these tables, so a
//! secret never sits in the options (which are logged when refused) and the two ways cannot
//! disagree.

use std::path::PathBuf;

use serde::Deserialize;

use super::credentials::{ClientCertificates, Inline, Refuse, TableKeys, TlsFiles, UserSecret};
use super::secret::SecretSource;

/// The environment variable the SASL password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_KAFKA_PASSWORD";

/// `[kafka.tls]`: `ca_file` (default: the system's CAs), and `cert_file` with `key_file` for
/// brokers that require a client certificate (mutual TLS).
pub type KafkaTls = TlsFiles;

/// A SASL mechanism logship supports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
pub enum SaslMechanism {
    /// The password itself, sent to the broker: only over TLS.
    #[serde(rename = "PLAIN")]
    Plain,
    /// SCRAM with SHA-256.
    #[serde(rename = "SCRAM-SHA-256")]
    ScramSha256,
    /// SCRAM with SHA-512.
    #[serde(rename = "SCRAM-SHA-512")]
    ScramSha512,
}

impl SaslMechanism {
    /// The name librdkafka and Kafka use.
    pub fn name(self) -> &'static str {
        match self {
            SaslMechanism::Plain => "PLAIN",
            SaslMechanism::ScramSha256 => "SCRAM-SHA-256",
            SaslMechanism::ScramSha512 => "SCRAM-SHA-512",
        }
    }
}

/// `[kafka.sasl]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
// Unknown keys: refused by the `Refuse` part (serde's deny_unknown_fields does not
// see through flattened parts).
pub struct KafkaSasl {
    /// Any other key is refused by name (first: before a missing key is reported, so that
    /// a misspelt required key is named as such).
    #[serde(flatten)]
    _refuse: Refuse<KafkaSasl>,
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// `username` (required) with `password_file` (default: `$LOGSHIP_KAFKA_PASSWORD`).
    #[serde(flatten)]
    pub user: UserSecret,
}

impl TableKeys for KafkaSasl {
    fn keys() -> Vec<&'static str> {
        let mut keys = vec!["mechanism"];
        keys.extend(UserSecret::KEYS);
        keys
    }
}

impl KafkaSasl {
    /// A mechanism, a user and its password file (tests build tables without TOML).
    #[cfg(test)]
    pub(crate) fn new(
        mechanism: SaslMechanism,
        username: &str,
        password_file: Option<PathBuf>,
    ) -> Self {
        KafkaSasl {
            mechanism,
            user: UserSecret::with_file(Some(username.to_string()), password_file),
            _refuse: Refuse::default(),
        }
    }

    /// The user and where its password is; the error names the keys.
    pub fn credentials(&self) -> Result<(String, SecretSource), String> {
        self.user
            .user("kafka.sasl", PASSWORD_ENV, Inline::Refused)?
            .ok_or_else(|| "kafka.sasl.username is required".to_string())
    }
}

/// The files `[kafka.tls]` and `[kafka.sasl]` read: a change to one is a reason to reload.
pub fn files(tls: Option<&KafkaTls>, sasl: Option<&KafkaSasl>) -> Vec<PathBuf> {
    let mut files = tls.map(TlsFiles::files).unwrap_or_default();
    files.extend(sasl.and_then(|s| s.user.file()).map(PathBuf::from));
    files
}

/// librdkafka properties `kafka.options` may not set: secrets and security settings, which go
/// in `[kafka.tls]` / `[kafka.sasl]`.
pub fn refused_option(key: &str) -> Option<String> {
    let security = key == "security.protocol"
        || key.starts_with("sasl.")
        || key.starts_with("ssl.")
        || key.starts_with("ssl_");
    security.then(|| {
        format!(
            "kafka.options.{key:?} cannot be set: TLS and SASL settings and their secrets go in \
             [kafka.tls] and [kafka.sasl] (passwords in files, docs/security.md)"
        )
    })
}

/// Checks `[kafka.tls]` and `[kafka.sasl]` together; the error names the keys.
pub fn check(tls: Option<&KafkaTls>, sasl: Option<&KafkaSasl>) -> Result<(), String> {
    if let Some(tls) = tls {
        tls.check("kafka.tls", ClientCertificates::Accepted)?;
    }
    if let Some(sasl) = sasl {
        sasl.credentials()?;
        if sasl.mechanism == SaslMechanism::Plain && tls.is_none() {
            return Err(
                "kafka.sasl.mechanism PLAIN sends the password as it is: it needs [kafka.tls]"
                    .into(),
            );
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_and_security_settings_stay_out_of_options() {
        for key in [
            "sasl.password",
            "sasl.jaas.config",
            "ssl.key.password",
            "security.protocol",
        ] {
            assert!(
                refused_option(key).unwrap().contains("[kafka.sasl]"),
                "{key}"
            );
        }
        assert!(refused_option("session.timeout.ms").is_none());
    }

    #[test]
    fn combinations_are_checked() {
        let tls = KafkaTls {
            ca_file: Some("/ca.pem".into()),
            cert_file: Some("/c.pem".into()),
            key_file: None,
        };
        assert!(check(Some(&tls), None).unwrap_err().contains("go together"));
        let sasl = KafkaSasl::new(SaslMechanism::Plain, "u", Some("/pw".into()));
        assert!(check(None, Some(&sasl))
            .unwrap_err()
            .contains("needs [kafka.tls]"));
        let scram = KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            ..sasl.clone()
        };
        let no_password = KafkaSasl::new(SaslMechanism::ScramSha512, "u", None);
        let error = check(None, Some(&no_password)).unwrap_err();
        assert!(error.contains("kafka.sasl.password_file"), "{error}");
        let text = "mechanism = \"PLAIN\"\npassword_file = \"/pw\"\n";
        let no_user: KafkaSasl = toml::from_str(text).unwrap();
        assert!(check(None, Some(&no_user))
            .unwrap_err()
            .contains("username"));
        crate::config::credentials::assert_keys_taken::<KafkaSasl, KafkaSasl>(
            "mechanism = \"PLAIN\"\n",
        );
        assert!(check(None, Some(&scram)).is_ok());
        let tls = KafkaTls {
            key_file: Some("/k.pem".into()),
            ..tls
        };
        assert!(check(Some(&tls), Some(&sasl)).is_ok());
    }
}
