//! `[kafka.tls]` and `[kafka.sasl]` as librdkafka properties, the password read when a client is
//! created (so a restarted client picks up a rotated file).

use rdkafka::config::ClientConfig;

use crate::config::kafka_security::{KafkaSasl, KafkaTls};
use crate::config::secret::SecretError;

/// Sets `security.protocol` and the TLS and SASL properties of `tls` and `sasl` (nothing when
/// both are absent: plaintext). The password is read now; the error names its file or
/// variable.
pub fn apply(
    client: &mut ClientConfig,
    tls: Option<&KafkaTls>,
    sasl: Option<&KafkaSasl>,
) -> Result<(), SecretError> {
    let protocol = match (tls.is_some(), sasl.is_some()) {
        (false, false) => return Ok(()),
        (true, false) => "SSL",
        (false, true) => "SASL_PLAINTEXT",
        (true, true) => "SASL_SSL",
    };
    client.set("security.protocol", protocol);
    if let Some(tls) = tls {
        let files = [
            ("ssl.ca.location", &tls.ca_file),
            ("ssl.certificate.location", &tls.cert_file),
            ("ssl.key.location", &tls.key_file),
        ];
        for (key, file) in files {
            if let Some(file) = file {
                client.set(key, file.display().to_string());
            }
        }
    }
    if let Some(sasl) = sasl {
        let (username, password) = sasl.credentials().map_err(SecretError::Invalid)?;
        let password = password.read()?;
        client
            .set("sasl.mechanisms", sasl.mechanism.name())
            .set("sasl.username", username)
            .set("sasl.password", password.expose());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::kafka_security::SaslMechanism;

    #[test]
    fn tls_and_sasl_become_librdkafka_properties() {
        let dir = tempfile::tempdir().unwrap();
        let password = dir.path().join("pw");
        std::fs::write(&password, "hunter2\n").unwrap();
        let tls = KafkaTls {
            ca_file: Some("/pki/ca.crt".into()),
            cert_file: Some("/pki/client.crt".into()),
            key_file: Some("/pki/client.key".into()),
        };
        let sasl = KafkaSasl::new(SaslMechanism::ScramSha512, "agent", Some(password));
        let mut client = ClientConfig::new();
        apply(&mut client, Some(&tls), Some(&sasl)).unwrap();
        assert_eq!(client.get("security.protocol"), Some("SASL_SSL"));
        assert_eq!(client.get("ssl.ca.location"), Some("/pki/ca.crt"));
        assert_eq!(client.get("ssl.key.location"), Some("/pki/client.key"));
        assert_eq!(client.get("sasl.mechanisms"), Some("SCRAM-SHA-512"));
        assert_eq!(client.get("sasl.password"), Some("hunter2"));

        let mut plain = ClientConfig::new();
        apply(&mut plain, None, None).unwrap();
        assert_eq!(plain.get("security.protocol"), None);
        let mut tls_only = ClientConfig::new();
        apply(&mut tls_only, Some(&tls), None).unwrap();
        assert_eq!(tls_only.get("security.protocol"), Some("SSL"));
    }
}
