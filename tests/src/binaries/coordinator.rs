//! A `coordinator serve` process: the ledger keeper (one of them leads).

use std::path::Path;

use crate::paths::{bin_path, free_port, reserve_name};
use crate::probe::http_ok;
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;

/// A `coordinator serve` process.
pub struct Coordinator {
    /// `http://127.0.0.1:P`
    pub url: String,
    /// Its `--id` (`coordinator-1`, …), as `quotactl status` names the leader.
    pub id: String,
    /// The admin bearer token it accepts.
    pub admin_token: String,
    /// Its HTTP port (kept across restarts).
    pub port: u16,
    /// The process.
    pub proc: Proc,
}

impl Coordinator {
    /// Spawn `coordinator serve --id <id>` and wait until /readyz is 200.
    pub async fn start(
        dir: &Path,
        id: &str,
        etcd_endpoints: &str,
        admin_token: &str,
        extra_args: &[&str],
    ) -> Coordinator {
        let (name, log) = reserve_name(dir, id);
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let spec = CmdSpec::new(bin_path("coordinator"))
            .args([
                "serve",
                "--id",
                id,
                "--listen",
                &listen,
                "--etcd-endpoints",
                etcd_endpoints,
                "--admin-token",
                admin_token,
            ])
            .args(extra_args.iter().copied());
        let mut c = Coordinator {
            url: format!("{}://{listen}", scheme(extra_args)),
            id: id.to_string(),
            admin_token: admin_token.to_string(),
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        c.wait_ready().await;
        c
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.url);
        self.proc
            .wait_until("ready (/readyz 200)", READY_TIMEOUT, || http_ok(&url))
            .await;
    }
}

lifecycle!(Coordinator);

/// `https` when the process was given a certificate (`--tls-cert-file`), else `http`.
pub(crate) fn scheme(args: &[&str]) -> &'static str {
    if args.contains(&"--tls-cert-file") {
        "https"
    } else {
        "http"
    }
}
