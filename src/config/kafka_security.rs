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

use super::secret::SecretSource;

/// The environment variable the SASL password may come from.
pub const PASSWORD_ENV: &str = "LOGSHIP_KAFKA_PASSWORD";

/// `[kafka.tls]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KafkaTls {
    /// PEM of the CA(s) that sign the brokers' certificates (default: the system's).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    /// PEM of the client certificate, for brokers that require one (with `key_file`).
    #[serde(default)]
    pub cert_file: Option<PathBuf>,
    /// PEM of the client certificate's private key (unencrypted; keep it mode 600).
    #[serde(default)]
    pub key_file: Option<PathBuf>,
}

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
#[serde(deny_unknown_fields)]
pub struct KafkaSasl {
    /// The mechanism.
    pub mechanism: SaslMechanism,
    /// The user.
    pub username: String,
    /// File holding the password (default: `$LOGSHIP_KAFKA_PASSWORD`).
    #[serde(default)]
    pub password_file: Option<PathBuf>,
}

impl KafkaSasl {
    /// Where the password is.
    pub fn password(&self) -> Option<SecretSource> {
        SecretSource::choose(self.password_file.as_deref(), PASSWORD_ENV, None)
    }
}

/// The files `[kafka.tls]` and `[kafka.sasl]` read: a change to one is a reason to reload.
pub fn files(tls: Option<&KafkaTls>, sasl: Option<&KafkaSasl>) -> Vec<PathBuf> {
    let mut files = Vec::new();
    if let Some(tls) = tls {
        files.extend(
            [&tls.ca_file, &tls.cert_file, &tls.key_file]
                .into_iter()
                .flatten()
                .cloned(),
        );
    }
    if let Some(file) = sasl.and_then(|s| s.password_file.clone()) {
        files.push(file);
    }
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
        if tls.cert_file.is_some() != tls.key_file.is_some() {
            return Err("kafka.tls.cert_file and kafka.tls.key_file go together".into());
        }
    }
    if let Some(sasl) = sasl {
        if sasl.username.is_empty() {
            return Err("kafka.sasl.username must not be empty".into());
        }
        if sasl.password().is_none() {
            return Err(format!(
                "kafka.sasl needs password_file (or ${PASSWORD_ENV})"
            ));
        }
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
        let sasl = KafkaSasl {
            mechanism: SaslMechanism::Plain,
            username: "u".into(),
            password_file: Some("/pw".into()),
        };
        assert!(check(None, Some(&sasl))
            .unwrap_err()
            .contains("needs [kafka.tls]"));
        let scram = KafkaSasl {
            mechanism: SaslMechanism::ScramSha512,
            ..sasl.clone()
        };
        assert!(check(None, Some(&scram)).is_ok());
        let tls = KafkaTls {
            key_file: Some("/k.pem".into()),
            ..tls
        };
        assert!(check(Some(&tls), Some(&sasl)).is_ok());
    }
}
