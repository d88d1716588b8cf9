//! The etcd flags every quota process takes, defined once.

use std::path::PathBuf;

use crate::members::{Credentials, EtcdOptions};
use quota_shared::secret::{Secret, SecretError};

/// Where etcd is and who this process is to it.
#[derive(Debug, Clone, clap::Args)]
pub struct EtcdArgs {
    /// etcd endpoints (every member's client URL), comma-separated; the process talks to one
    /// member of a quorum at a time and moves on when it fails.
    #[arg(
        long = "etcd-endpoints",
        env = "QUOTA_ETCD_ENDPOINTS",
        value_delimiter = ',',
        required = true
    )]
    pub endpoints: Vec<String>,
    /// etcd user, when etcd has authentication on (`coordinator setup-etcd-auth` creates one
    /// per region and one for the coordinators).
    #[arg(long, env = "QUOTA_ETCD_USER", requires = "etcd_password_file")]
    pub etcd_user: Option<String>,
    /// File holding that user's password (its first line; never passed as a flag value so it
    /// stays out of process listings and logs).
    #[arg(long, env = "QUOTA_ETCD_PASSWORD_FILE", requires = "etcd_user")]
    pub etcd_password_file: Option<PathBuf>,
    /// CA certificate (PEM) that signed the etcd members' server certificates; use it with
    /// `https://` endpoints (the password then never crosses the network in clear).
    #[arg(long, env = "QUOTA_ETCD_CA_FILE")]
    pub etcd_ca_file: Option<PathBuf>,
}

impl EtcdArgs {
    /// `base` with these endpoints' credentials and CA read from their files.
    pub fn options(&self, base: EtcdOptions) -> Result<EtcdOptions, SecretError> {
        let ca_pem = match &self.etcd_ca_file {
            Some(path) => Some(std::fs::read(path).map_err(|e| SecretError::Read {
                path: path.display().to_string(),
                source: e,
            })?),
            None => None,
        };
        let credentials = match (&self.etcd_user, &self.etcd_password_file) {
            (Some(user), Some(file)) => Some(Credentials {
                user: user.clone(),
                password: Secret::from_file(file)?,
            }),
            _ => None,
        };
        Ok(EtcdOptions {
            credentials,
            ca_pem,
            ..base
        })
    }
}
