//! A single-node etcd: the coordination store of a test cluster.

use std::path::{Path, PathBuf};

use crate::paths::{free_port, reserve_name};
use crate::probe::http_client;
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;

/// Single-node etcd on free loopback ports.
pub struct Etcd {
    /// Client URL, `http://127.0.0.1:P`.
    pub endpoint: String,
    /// Client port.
    pub port: u16,
    /// Peer port (kept so a restart reuses it).
    pub peer_port: u16,
    /// Data directory: survives [`Etcd::kill9`] and [`Etcd::start_again`].
    pub data_dir: PathBuf,
    /// The process.
    pub proc: Proc,
}

impl Etcd {
    /// Start etcd with its data under `dir` and wait until /health is true.
    pub async fn start(dir: &Path) -> Etcd {
        Self::start_named(dir, "etcd").await
    }

    /// Like [`Etcd::start`] with a given process/log name.
    pub async fn start_named(dir: &Path, name: &str) -> Etcd {
        let (name, log) = reserve_name(dir, name);
        let (port, peer_port) = (free_port(), free_port());
        let data_dir = dir.join(&name);
        let endpoint = format!("http://127.0.0.1:{port}");
        let peer = format!("http://127.0.0.1:{peer_port}");
        let spec = CmdSpec::new("etcd").args([
            "--name".into(),
            "n1".into(),
            "--data-dir".into(),
            data_dir.display().to_string(),
            "--listen-client-urls".into(),
            endpoint.clone(),
            "--advertise-client-urls".into(),
            endpoint.clone(),
            "--listen-peer-urls".into(),
            peer.clone(),
            "--initial-advertise-peer-urls".into(),
            peer.clone(),
            "--initial-cluster".into(),
            format!("n1={peer}"),
            "--logger".into(),
            "zap".into(),
            "--log-level".into(),
            "warn".into(),
        ]);
        let mut etcd = Etcd {
            endpoint,
            port,
            peer_port,
            data_dir,
            proc: Proc::spawn(&name, spec, log),
        };
        etcd.wait_ready().await;
        etcd
    }

    async fn wait_ready(&mut self) {
        let ep = self.endpoint.clone();
        self.proc
            .wait_until("healthy", READY_TIMEOUT, || healthy(&ep))
            .await;
    }

    /// A connected etcd-client.
    pub async fn client(&self) -> etcd_client::Client {
        etcd_client::Client::connect([self.endpoint.as_str()], None)
            .await
            .expect("connect to etcd")
    }
}

lifecycle!(Etcd);

/// etcd's own `/health` says `"health": "true"`.
async fn healthy(endpoint: &str) -> bool {
    let Ok(resp) = http_client().get(format!("{endpoint}/health")).send().await else {
        return false;
    };
    let Ok(body) = resp.json::<serde_json::Value>().await else {
        return false;
    };
    body.get("health").and_then(|h| h.as_str()) == Some("true")
}
