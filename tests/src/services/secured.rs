//! What makes a backend secure in a test cluster, as in a deployment: TLS with a certificate
//! from the cluster's CA, and a password kept in a file (mode 0600) that clients read.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use crate::tls::{ServerCert, TestCa};

/// A backend's TLS certificate and password.
#[derive(Debug, Clone)]
pub struct Secured {
    /// The CA clients trust.
    pub ca_cert: PathBuf,
    /// The server's certificate and key.
    pub server: ServerCert,
    /// The password (clients read it from `password_file`).
    pub password: String,
    /// The file holding the password.
    pub password_file: PathBuf,
}

impl Secured {
    /// A certificate from `ca` and a fresh random password in `dir/{name}.password`.
    pub fn new(ca: &TestCa, dir: &Path, name: &str) -> Secured {
        let password = uuid::Uuid::new_v4().simple().to_string();
        let password_file = dir.join(format!("{name}.password"));
        std::fs::write(&password_file, format!("{password}\n")).expect("password file");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&password_file, std::fs::Permissions::from_mode(0o600))
                .expect("password file mode");
        }
        Secured {
            ca_cert: ca.cert.clone(),
            server: ca.server(name),
            password,
            password_file,
        }
    }

    /// A rustls client configuration trusting only the CA.
    pub fn client_tls(&self) -> rustls::ClientConfig {
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::CertificateDer;
        let mut roots = rustls::RootCertStore::empty();
        for cert in CertificateDer::pem_file_iter(&self.ca_cert).expect("CA file") {
            roots
                .add(cert.expect("CA certificate"))
                .expect("CA certificate");
        }
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("TLS versions")
            .with_root_certificates(roots)
            .with_no_client_auth()
    }

    /// The CA certificate's PEM bytes.
    pub fn ca_pem(&self) -> Vec<u8> {
        std::fs::read(&self.ca_cert).expect("CA file")
    }
}
