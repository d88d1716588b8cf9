//! A `region-node serve` process: one region's purchase endpoint.

use std::path::Path;

use crate::paths::{bin_path, free_port, reserve_name};
use crate::probe::http_ok;
use crate::process::{lifecycle, Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;

/// A `region-node serve` process.
pub struct Node {
    /// `http://127.0.0.1:P`
    pub url: String,
    /// The region it serves.
    pub region: String,
    /// Its HTTP port (kept across restarts).
    pub port: u16,
    /// The process; a test may edit `proc.spec` (e.g. arm a failpoint) before a restart.
    pub proc: Proc,
}

/// Where a region node finds the services it runs on.
pub struct NodeBackends<'a> {
    /// etcd client URL(s), comma-separated (possibly through a latency [`crate::Proxy`]).
    pub etcd_endpoints: &'a str,
    /// The region's Redis.
    pub redis_url: &'a str,
    /// The region's Postgres.
    pub pg_url: &'a str,
}

impl Node {
    /// Spawn `region-node serve` for `region` (per-IP limit disabled, since
    /// all test traffic comes from 127.0.0.1), logging as `node-<region>`, and wait until
    /// /readyz is 200.
    pub async fn start(
        dir: &Path,
        region: &str,
        backends: &NodeBackends<'_>,
        extra_args: &[&str],
    ) -> Node {
        let (name, log) = reserve_name(dir, &format!("node-{region}"));
        let port = free_port();
        let listen = format!("127.0.0.1:{port}");
        let spec = CmdSpec::new(bin_path("region-node"))
            .args([
                "serve",
                "--region",
                region,
                "--listen",
                &listen,
                "--redis-url",
                backends.redis_url,
                "--pg-url",
                backends.pg_url,
                "--etcd-endpoints",
                backends.etcd_endpoints,
                "--ip-rate-limit",
                "0",
            ])
            .args(extra_args.iter().copied());
        let mut node = Node {
            url: format!("{}://{listen}", super::coordinator::scheme(extra_args)),
            region: region.to_string(),
            port,
            proc: Proc::spawn(&name, spec, log),
        };
        node.wait_ready().await;
        node
    }

    async fn wait_ready(&mut self) {
        let url = format!("{}/readyz", self.url);
        self.proc
            .wait_until("ready (/readyz 200)", READY_TIMEOUT, || http_ok(&url))
            .await;
    }

    /// Waits until `/readyz` says the etcd session is up: a node is ready before its session
    /// has registered the region, and a sale created right away must be able to name it.
    pub(crate) async fn wait_registered(&mut self) {
        let url = format!("{}/readyz", self.url);
        self.proc
            .wait_until("registered in etcd", READY_TIMEOUT, || etcd_connected(&url))
            .await;
    }
}

lifecycle!(Node);

/// Whether a node's `/readyz` says its etcd session is up.
async fn etcd_connected(url: &str) -> bool {
    match crate::probe::http_client().get(url).send().await {
        Ok(r) => r
            .json::<serde_json::Value>()
            .await
            .is_ok_and(|v| v["etcd"] == "connected"),
        Err(_) => false,
    }
}
