//! A throwaway certificate authority for a test cluster, made with the `openssl` CLI (as
//! `cluster.sh` makes the local cluster's): one CA, and server certificates for 127.0.0.1 and
//! `localhost` signed by it.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A CA's certificate and key under a directory.
#[derive(Debug, Clone)]
pub struct TestCa {
    dir: PathBuf,
    /// The CA certificate (PEM): what clients trust.
    pub cert: PathBuf,
    key: PathBuf,
}

/// A server's certificate (PEM, signed by the CA) and private key.
#[derive(Debug, Clone)]
pub struct ServerCert {
    /// Certificate.
    pub cert: PathBuf,
    /// Private key (mode 0600).
    pub key: PathBuf,
}

fn openssl(args: &[&str]) {
    let out = Command::new("openssl")
        .args(args)
        .output()
        .expect("run openssl (apt-get install openssl)");
    assert!(
        out.status.success(),
        "openssl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

impl TestCa {
    /// A new CA (P-256, valid two days) in `dir` (created).
    pub fn new(dir: &Path) -> TestCa {
        std::fs::create_dir_all(dir).expect("tls dir");
        let (cert, key) = (dir.join("ca.pem"), dir.join("ca.key"));
        openssl(&[
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(&cert),
            "-days",
            "2",
            "-subj",
            "/CN=quota test CA",
        ]);
        TestCa {
            dir: dir.to_path_buf(),
            cert,
            key,
        }
    }

    /// A server certificate named `name` for `127.0.0.1` and `localhost`.
    pub fn server(&self, name: &str) -> ServerCert {
        let (cert, key, csr, ext) = (
            self.dir.join(format!("{name}.pem")),
            self.dir.join(format!("{name}.key")),
            self.dir.join(format!("{name}.csr")),
            self.dir.join(format!("{name}.ext")),
        );
        std::fs::write(
            &ext,
            "subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
        .expect("ext file");
        openssl(&[
            "req",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-keyout",
            &s(&key),
            "-out",
            &s(&csr),
            "-subj",
            &format!("/CN={name}"),
        ]);
        openssl(&[
            "x509",
            "-req",
            "-in",
            &s(&csr),
            "-CA",
            &s(&self.cert),
            "-CAkey",
            &s(&self.key),
            "-CAcreateserial",
            "-out",
            &s(&cert),
            "-days",
            "2",
            "-extfile",
            &s(&ext),
        ]);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
                .expect("key mode");
        }
        ServerCert { cert, key }
    }
}
