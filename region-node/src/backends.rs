//! How the node reaches its own Postgres and Redis: URL, password from a file, TLS verified
//! against a CA file. Passwords never appear in a URL, a flag value or a log line.

use std::path::{Path, PathBuf};
use std::sync::Arc;

/// Where this region's Postgres is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct PgArgs {
    /// Postgres URL of this region's database (the truth), without a password.
    #[arg(long, env = "QUOTA_PG_URL")]
    pub pg_url: String,
    /// File holding the Postgres password (first line).
    #[arg(long, env = "QUOTA_PG_PASSWORD_FILE")]
    pub pg_password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the Postgres server's certificate: TLS is then required
    /// (`sslmode=require` whatever the URL says) and the server's certificate and name are
    /// verified against it.
    #[arg(long, env = "QUOTA_PG_CA_FILE")]
    pub pg_ca_file: Option<PathBuf>,
}

/// Where this region's Redis is and how to reach it.
#[derive(Debug, Clone, clap::Args)]
pub struct RedisArgs {
    /// Redis URL of this region's admission filter (`rediss://` for TLS), without a password.
    #[arg(long, env = "QUOTA_REDIS_URL")]
    pub redis_url: String,
    /// File holding the Redis password (`requirepass`; first line).
    #[arg(long, env = "QUOTA_REDIS_PASSWORD_FILE")]
    pub redis_password_file: Option<PathBuf>,
    /// CA certificate (PEM) of the Redis server's certificate (with a `rediss://` URL).
    #[arg(long, env = "QUOTA_REDIS_CA_FILE")]
    pub redis_ca_file: Option<PathBuf>,
}

impl PgArgs {
    /// Reads the password and CA files once, so a missing or unreadable one stops the node at
    /// start instead of failing every connection.
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        if let Some(f) = &self.pg_password_file {
            read_secret(f)?;
        }
        if let Some(f) = &self.pg_ca_file {
            client_tls(f)?;
        }
        Ok(())
    }
}

impl RedisArgs {
    /// As [`PgArgs::check`].
    pub(crate) fn check(&self) -> Result<(), BackendError> {
        if let Some(f) = &self.redis_password_file {
            read_secret(f)?;
        }
        if let Some(f) = &self.redis_ca_file {
            client_tls(f)?;
        }
        Ok(())
    }
}

/// Why a backend setting cannot be used.
#[derive(Debug, thiserror::Error)]
pub(crate) enum BackendError {
    /// A password or CA file could not be read.
    #[error("cannot read {path}: {reason}")]
    File {
        /// The file.
        path: String,
        /// Why.
        reason: String,
    },
    /// The CA file holds no usable certificate.
    #[error("no CA certificate in {0}")]
    NoCertificate(String),
}

/// Reads a password file (its first line; an empty one is an error).
pub(crate) fn read_secret(path: &Path) -> Result<String, BackendError> {
    quota_shared::secret::Secret::from_file(path)
        .map(|s| s.expose().to_string())
        .map_err(|e| BackendError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })
}

/// Reads a PEM file.
pub(crate) fn read_pem(path: &Path) -> Result<Vec<u8>, BackendError> {
    std::fs::read(path).map_err(|e| BackendError::File {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

/// A rustls client configuration trusting only the certificates in `ca_file` (ring provider).
pub(crate) fn client_tls(ca_file: &Path) -> Result<rustls::ClientConfig, BackendError> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let pem = read_pem(ca_file)?;
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(&pem) {
        let cert = cert.map_err(|e| BackendError::File {
            path: ca_file.display().to_string(),
            reason: e.to_string(),
        })?;
        roots.add(cert).map_err(|e| BackendError::File {
            path: ca_file.display().to_string(),
            reason: e.to_string(),
        })?;
    }
    if roots.is_empty() {
        return Err(BackendError::NoCertificate(ca_file.display().to_string()));
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| BackendError::File {
            path: ca_file.display().to_string(),
            reason: e.to_string(),
        })?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_secret_is_its_first_line_and_never_empty() {
        let dir = std::env::temp_dir().join(format!("quota-backends-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let f = dir.join("pw");
        std::fs::write(&f, "s3cret\n").unwrap();
        assert_eq!(read_secret(&f).unwrap(), "s3cret");
        std::fs::write(&f, "\n").unwrap();
        assert!(read_secret(&f).is_err());
        std::fs::write(&f, "not a certificate").unwrap();
        assert!(matches!(
            client_tls(&f),
            Err(BackendError::NoCertificate(_))
        ));
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
