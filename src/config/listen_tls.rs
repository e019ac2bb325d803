//! `[tls]` of a listener (the console; the agent's and transfer's endpoints under
//! `[metrics_tls]`): a certificate chain and its key, PEM files re-read on SIGHUP.

use std::path::PathBuf;

use serde::Deserialize;

/// A listener's certificate and key.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ListenTls {
    /// PEM: the server certificate first, then any intermediates.
    pub cert_file: PathBuf,
    /// PEM: its private key (PKCS#8, PKCS#1 or SEC1).
    pub key_file: PathBuf,
}

impl ListenTls {
    /// The certificate and key files (watched for changes).
    pub fn files(&self) -> Vec<PathBuf> {
        vec![self.cert_file.clone(), self.key_file.clone()]
    }
}
