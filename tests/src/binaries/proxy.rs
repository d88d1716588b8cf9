//! A `quota-proxy` process: modelled distance between two processes.

use std::collections::BTreeMap;
use std::path::Path;

use crate::paths::{bin_path, free_port, reserve_name};
use crate::probe::http_ok;
use crate::process::{Proc, READY_TIMEOUT};
use crate::spawn::CmdSpec;

/// A `quota-proxy` process: TCP links with a modelled one-way latency (and faults), used to
/// put distance between a region and etcd, or between buyers and a central counter.
pub struct Proxy {
    /// Control API base URL (`GET /links`, `PUT /links/{id}`).
    pub control_url: String,
    /// Link id → the `127.0.0.1:port` it listens on.
    pub listen: BTreeMap<String, String>,
    /// The process.
    pub proc: Proc,
}

impl Proxy {
    /// Starts one proxy with a link per `(id, upstream host:port, one-way latency ms)`; jitter
    /// is a tenth of the latency.
    pub async fn start(dir: &Path, links: &[(String, String, u64)]) -> Proxy {
        let (name, log) = reserve_name(dir, "proxy");
        let control_port = free_port();
        let mut args = vec!["--control".to_string(), format!("127.0.0.1:{control_port}")];
        let mut listen = BTreeMap::new();
        for (id, upstream, ms) in links {
            let port = free_port();
            args.push("--link".into());
            args.push(format!(
                "id={id},listen=127.0.0.1:{port},upstream={upstream},latency_ms={ms},jitter_ms={}",
                ms / 10
            ));
            listen.insert(id.clone(), format!("127.0.0.1:{port}"));
        }
        let spec = CmdSpec::new(bin_path("quota-proxy")).args(args);
        let mut proxy = Proxy {
            control_url: format!("http://127.0.0.1:{control_port}"),
            listen,
            proc: Proc::spawn(&name, spec, log),
        };
        let url = format!("{}/healthz", proxy.control_url);
        proxy
            .proc
            .wait_until("/healthz 200", READY_TIMEOUT, || http_ok(&url))
            .await;
        proxy
    }
}
