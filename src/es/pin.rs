//! `ca_fingerprint`: trusting the CA whose SHA-256 fingerprint is pinned in the configuration,
//! as Elastic's clients do (`ca_trusted_fingerprint`) for clusters with a self-made CA.
//!
//! At client build (start, SIGHUP), one TLS handshake without verification fetches the chain the
//! server presents; the certificate in it whose SHA-256 is the pin becomes the only trusted CA,
//! and every request is then verified against it in full (chain and host name). Nothing is sent
//! over the unverified connection: it is closed right after the handshake.

use std::net::TcpStream;
use std::time::Duration;

use openssl::hash::MessageDigest;
use openssl::ssl::{SslConnector, SslMethod, SslVerifyMode};

/// The PEM of the certificate with SHA-256 `fingerprint` (normalized) among those `host:port`
/// presents. The error says what was presented when none matches.
pub fn fetch_pinned(
    host: &str,
    port: u16,
    fingerprint: &str,
    timeout: Duration,
) -> Result<Vec<u8>, String> {
    let tcp = std::net::ToSocketAddrs::to_socket_addrs(&(host, port))
        .map_err(|e| format!("cannot resolve {host}:{port}: {e}"))?
        .next()
        .ok_or_else(|| format!("{host}:{port} resolves to no address"))
        .and_then(|addr| {
            TcpStream::connect_timeout(&addr, timeout)
                .map_err(|e| format!("cannot connect to {host}:{port}: {e}"))
        })?;
    // Bounds the handshake too.
    let _ = tcp.set_read_timeout(Some(timeout));
    let _ = tcp.set_write_timeout(Some(timeout));
    let mut builder =
        SslConnector::builder(SslMethod::tls_client()).map_err(|e| format!("TLS setup: {e}"))?;
    // Only to read the chain: the pin is checked below, and the real client verifies in full.
    builder.set_verify(SslVerifyMode::NONE);
    let connector = builder.build();
    let stream = connector
        .configure()
        .map_err(|e| format!("TLS setup: {e}"))?
        .verify_hostname(false)
        .connect(host, tcp)
        .map_err(|e| format!("TLS handshake with {host}:{port}: {e}"))?;
    let chain = stream
        .ssl()
        .peer_cert_chain()
        .ok_or_else(|| format!("{host}:{port} presented no certificate"))?;
    let mut seen = Vec::new();
    for cert in chain {
        let digest = cert
            .digest(MessageDigest::sha256())
            .map_err(|e| format!("hashing a certificate: {e}"))?;
        let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
        if hex == fingerprint {
            return cert
                .to_pem()
                .map_err(|e| format!("writing the pinned certificate: {e}"));
        }
        seen.push(hex);
    }
    Err(format!(
        "no certificate presented by {host}:{port} has the SHA-256 fingerprint {fingerprint} \
         (presented: {})",
        seen.join(", ")
    ))
}
