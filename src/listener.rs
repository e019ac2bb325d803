//! HTTP listeners for the console and the agent's and transfer's endpoints: plain TCP, or TLS
//! (rustls) with a certificate and key read from PEM files.
//!
//! The certificate and key are read at start (a missing or unreadable file is a startup error
//! naming it) and again on every reload ([`crate::reload`]: SIGHUP, a changed file): new connections then use the new pair, open ones keep
//! theirs. A pair that cannot be read at reload is logged and the old one stays in use, so a
//! half-written rotation never takes the listener down.
//!
//! Handlers see the peer address ([`axum::extract::ConnectInfo`]) on both kinds.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum_server::tls_rustls::RustlsConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::ListenTls;
use crate::shutdown::Shutdown;

/// How long open connections may finish after shutdown under TLS.
const DRAIN: Duration = Duration::from_secs(10);

/// Why a listener cannot start.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The address cannot be bound.
    #[error("cannot listen on {addr}: {error}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// Why.
        error: std::io::Error,
    },
    /// The certificate or key cannot be used.
    #[error("TLS listener: {0}")]
    Tls(String),
}

/// A bound listener, not yet serving.
pub struct Bound {
    listener: std::net::TcpListener,
    local: SocketAddr,
    tls: Option<(RustlsConfig, ListenTls)>,
}

impl Bound {
    /// Binds `addr` (port 0 picks one) and, with `tls`, reads the certificate and key.
    pub async fn bind(addr: SocketAddr, tls: Option<&ListenTls>) -> Result<Bound, ListenError> {
        let tls = match tls {
            Some(files) => Some((
                RustlsConfig::from_config(server_config(files)?),
                files.clone(),
            )),
            None => None,
        };
        let bind_error = |error| ListenError::Bind { addr, error };
        let listener = std::net::TcpListener::bind(addr).map_err(bind_error)?;
        listener.set_nonblocking(true).map_err(bind_error)?;
        let local = listener.local_addr().map_err(bind_error)?;
        Ok(Bound {
            listener,
            local,
            tls,
        })
    }

    /// The bound address.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// Whether connections are TLS.
    pub fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// `http://addr/` or `https://addr/`.
    pub fn url(&self) -> String {
        let scheme = if self.is_tls() { "https" } else { "http" };
        format!("{scheme}://{}/", self.local)
    }

    /// Serves `app` until `shutdown`; under TLS, re-reads the certificate and key on every
    /// `reload`.
    pub async fn serve(
        self,
        app: Router,
        shutdown: Shutdown,
        reload: &crate::reload::Reload,
    ) -> Result<(), ListenError> {
        let service = app.into_make_service_with_connect_info::<SocketAddr>();
        let Some((config, files)) = self.tls else {
            let listener = tokio::net::TcpListener::from_std(self.listener).map_err(|error| {
                ListenError::Bind {
                    addr: self.local,
                    error,
                }
            })?;
            return axum::serve(listener, service)
                .with_graceful_shutdown(async move { shutdown.wait().await })
                .await
                .map_err(|error| ListenError::Bind {
                    addr: self.local,
                    error,
                });
        };
        let mut changes = reload.subscribe();
        let reload = config.clone();
        let reload_shutdown = shutdown.clone();
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = reload_shutdown.wait() => return,
                    got = changes.changed() => if got.is_err() { return },
                }
                match server_config(&files) {
                    Ok(fresh) => {
                        reload.reload_from_config(fresh);
                        tracing::info!(cert = %files.cert_file.display(), "reload: TLS certificate and key re-read");
                    }
                    Err(error) => {
                        tracing::error!(%error, "reload: keeping the previous TLS certificate")
                    }
                }
            }
        });
        let handle = axum_server::Handle::new();
        let stopper = handle.clone();
        tokio::spawn(async move {
            shutdown.wait().await;
            stopper.graceful_shutdown(Some(DRAIN));
        });
        axum_server::from_tcp_rustls(self.listener, config)
            .handle(handle)
            .serve(service)
            .await
            .map_err(|error| ListenError::Bind {
                addr: self.local,
                error,
            })
    }
}

/// A TLS client configuration that trusts exactly the certificate `tls` serves (the first one
/// in its `cert_file`), whoever signed it: what `logship status` uses to ask an endpoint on the
/// same host, with the same configuration file. Signatures are still checked.
pub fn pinned_client_config(tls: &ListenTls) -> Result<rustls::ClientConfig, ListenError> {
    let expected = read_certs(&tls.cert_file)?
        .into_iter()
        .next()
        .ok_or_else(|| ListenError::Tls("no certificate".into()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(ExactCertificate {
        expected,
        provider: provider.clone(),
    });
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth())
}

/// Accepts the one expected end-entity certificate.
#[derive(Debug)]
struct ExactCertificate {
    expected: CertificateDer<'static>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl rustls::client::danger::ServerCertVerifier for ExactCertificate {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &rustls::pki_types::ServerName<'_>,
        _ocsp_response: &[u8],
        _now: rustls::pki_types::UnixTime,
    ) -> Result<rustls::client::danger::ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.expected.as_ref() {
            Ok(rustls::client::danger::ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the endpoint presents another certificate than its configured cert_file".into(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<rustls::client::danger::HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// Reads the certificate chain and key and builds a server configuration (TLS 1.2 and 1.3,
/// no client certificates).
fn server_config(files: &ListenTls) -> Result<Arc<rustls::ServerConfig>, ListenError> {
    let certs = read_certs(&files.cert_file)?;
    let key = PrivateKeyDer::from_pem_file(&files.key_file).map_err(|e| {
        ListenError::Tls(format!(
            "cannot read a private key from {}: {e}",
            files.key_file.display()
        ))
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| ListenError::Tls(e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            ListenError::Tls(format!(
                "{} and {} do not make a usable pair: {e}",
                files.cert_file.display(),
                files.key_file.display()
            ))
        })?;
    Ok(Arc::new(config))
}

/// The PEM certificates in `path` (at least one).
pub(crate) fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, ListenError> {
    let unreadable = |e: &dyn std::fmt::Display| {
        ListenError::Tls(format!(
            "cannot read certificates from {}: {e}",
            path.display()
        ))
    };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| unreadable(&e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unreadable(&e))?;
    if certs.is_empty() {
        return Err(unreadable(&"no certificate in the file"));
    }
    Ok(certs)
}
