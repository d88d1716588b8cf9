//! How every quota HTTP service listens, and how its HTTP clients trust a private CA.
//!
//! The coordinator's admin API and the region node's API (with its admin audit endpoint) serve
//! plain HTTP by default — behind a TLS-terminating ingress — or HTTPS themselves when given a
//! certificate and key ([`TlsArgs`]): admin tokens then never cross the network in clear.
//! Clients that call them (`quotactl`, a coordinator forwarding to the leader or reading a
//! region's audit) trust the system's roots plus, with `--cacert`, a private CA
//! ([`client_with_ca`]). One implementation for every binary, so HTTPS behaves the same
//! everywhere: rustls with the ring provider (no C toolchain beyond ring's).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

/// `--tls-cert-file` / `--tls-key-file`: serve HTTPS instead of HTTP.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct TlsArgs {
    /// Serve HTTPS with this certificate chain (PEM); needs --tls-key-file.
    #[arg(long, env = "QUOTA_TLS_CERT_FILE", requires = "tls_key_file")]
    pub tls_cert_file: Option<PathBuf>,
    /// The private key (PEM) of --tls-cert-file.
    #[arg(long, env = "QUOTA_TLS_KEY_FILE", requires = "tls_cert_file")]
    pub tls_key_file: Option<PathBuf>,
}

/// Why a certificate, key or CA file cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The file could not be read or parsed.
    #[error("{path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The certificate and key do not make a usable server configuration.
    #[error("TLS configuration: {0}")]
    Config(String),
}

fn file_error(path: &Path, reason: impl std::fmt::Display) -> TlsError {
    TlsError::File {
        path: path.display().to_string(),
        reason: reason.to_string(),
    }
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

impl TlsArgs {
    /// `https` when a certificate is given, else `http`: the scheme of this service's URL.
    pub fn scheme(&self) -> &'static str {
        if self.tls_cert_file.is_some() {
            "https"
        } else {
            "http"
        }
    }

    /// The server configuration, read once at start (`None`: plain HTTP).
    pub fn server_config(&self) -> Result<Option<Arc<rustls::ServerConfig>>, TlsError> {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, PrivateKeyDer};
        let (Some(cert), Some(key)) = (&self.tls_cert_file, &self.tls_key_file) else {
            return Ok(None);
        };
        let chain = CertificateDer::pem_file_iter(cert)
            .map_err(|e| file_error(cert, e))?
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| file_error(cert, e))?;
        if chain.is_empty() {
            return Err(file_error(cert, "no certificate in it"));
        }
        let key = PrivateKeyDer::from_pem_file(key).map_err(|e| file_error(key, e))?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, key)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        Ok(Some(Arc::new(config)))
    }
}

/// Serves `app` on `listener` (HTTPS with `tls`, else HTTP) until `shutdown`, then lets
/// requests in flight finish. Handlers see the peer address (`ConnectInfo<SocketAddr>`).
pub async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    tls: Option<Arc<rustls::ServerConfig>>,
    shutdown: CancellationToken,
) -> std::io::Result<()> {
    let make = app.into_make_service_with_connect_info::<SocketAddr>();
    let Some(tls) = tls else {
        return axum::serve(listener, make)
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await;
    };
    let handle = axum_server::Handle::new();
    let stopper = handle.clone();
    tokio::spawn(async move {
        shutdown.cancelled().await;
        stopper.graceful_shutdown(Some(Duration::from_secs(10)));
    });
    let config = axum_server::tls_rustls::RustlsConfig::from_config(tls);
    axum_server::from_tcp_rustls(listener.into_std()?, config)
        .handle(handle)
        .serve(make)
        .await
}

/// An HTTP client builder trusting the system's roots and, if given, the CA in `ca_file`.
pub fn client_with_ca(ca_file: Option<&Path>) -> Result<reqwest::ClientBuilder, TlsError> {
    let builder = reqwest::Client::builder();
    let Some(path) = ca_file else {
        return Ok(builder);
    };
    let pem = std::fs::read(path).map_err(|e| file_error(path, e))?;
    let certs = reqwest::Certificate::from_pem_bundle(&pem).map_err(|e| file_error(path, e))?;
    if certs.is_empty() {
        return Err(file_error(path, "no certificate in it"));
    }
    Ok(certs
        .into_iter()
        .fold(builder, reqwest::ClientBuilder::add_root_certificate))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn no_certificate_means_plain_http() {
        let args = TlsArgs::default();
        assert_eq!(args.scheme(), "http");
        assert!(args.server_config().unwrap().is_none());
    }

    #[test]
    fn unreadable_files_are_named() {
        let args = TlsArgs {
            tls_cert_file: Some("/nonexistent/cert.pem".into()),
            tls_key_file: Some("/nonexistent/key.pem".into()),
        };
        assert_eq!(args.scheme(), "https");
        let err = args.server_config().unwrap_err().to_string();
        assert!(err.contains("/nonexistent/cert.pem"), "{err}");
        let err = client_with_ca(Some(Path::new("/nonexistent/ca.pem")))
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("/nonexistent/ca.pem"), "{err}");
    }
}
