//! A whole quota deployment in one temp dir: etcd, coordinators, and per region its Redis,
//! Postgres and region node. Built with [`Cluster::builder`].

mod builder;

use std::process::{Command, Output, Stdio};
use std::sync::Mutex;

use tempfile::TempDir;

pub use self::builder::ClusterBuilder;
use crate::binaries::{Coordinator, Node, NodeBackends, Proxy};
use crate::paths::bin_path;
use crate::services::{Etcd, Postgres, Redis};
use crate::spawn::pid_alive;

/// One region's own Redis, Postgres and region node.
pub struct RegionStack {
    /// Region name (`east`, …).
    pub name: String,
    /// Its admission store.
    pub redis: Redis,
    /// Its system of record.
    pub pg: Postgres,
    /// Its purchase endpoint.
    pub node: Node,
}

/// etcd + coordinators + a full stack per region, in one temp dir.
///
/// Field order matters: Rust drops fields in declaration order, so all
/// processes are killed before `dir` (logs, data) is removed.
pub struct Cluster {
    /// One stack per region, in the order the builder named them.
    pub regions: Vec<RegionStack>,
    /// The latency proxy between regions and etcd, when one was asked for.
    pub proxy: Option<Proxy>,
    /// Coordinator instances (`coordinator-1…`); one of them leads.
    pub coordinators: Vec<Coordinator>,
    /// The admin token every coordinator and region node shares.
    pub admin_token: String,
    /// The coordinator `quotactl` talks to, when a test chose one.
    coordinator_url: Mutex<Option<String>>,
    /// The coordination store.
    pub etcd: Etcd,
    /// Scratch directory holding every data dir and `logs/`.
    pub dir: TempDir,
}

impl Cluster {
    /// Starts describing a cluster with these regions (at least one); see [`ClusterBuilder`]
    /// for the options and [`ClusterBuilder::start`] for what starts in which order.
    pub fn builder(regions: &[&str]) -> ClusterBuilder {
        ClusterBuilder::new(regions)
    }

    /// The stack of region `name`; panics if there is none.
    pub fn region(&self, name: &str) -> &RegionStack {
        self.regions
            .iter()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name:?} in this cluster"))
    }

    /// Mutable access, for killing/restarting a region's processes.
    pub fn region_mut(&mut self, name: &str) -> &mut RegionStack {
        self.regions
            .iter_mut()
            .find(|r| r.name == name)
            .unwrap_or_else(|| panic!("no region {name:?} in this cluster"))
    }

    /// The first coordinator instance still running (any instance answers; writes are
    /// forwarded to the leader).
    pub fn coordinator(&self) -> &Coordinator {
        self.coordinators
            .iter()
            .find(|c| c.proc.pid().is_some_and(pid_alive))
            .unwrap_or(&self.coordinators[0])
    }

    /// Run `quotactl <args>` against one particular coordinator instance.
    pub fn quotactl_via(&self, coordinator_url: &str, args: &[&str]) -> Output {
        Command::new(bin_path("quotactl"))
            .args(args)
            .args(self.cacert_args(coordinator_url))
            .env("COORDINATOR_URL", coordinator_url)
            .env("ADMIN_TOKEN", &self.admin_token)
            // Nor a developer's quotactl contexts.
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env_remove("QUOTACTL_CONFIG")
            .env_remove("QUOTACTL_CONTEXT")
            .env_remove("QUOTACTL_URLS")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .expect("run quotactl")
    }

    /// `--cacert` of the cluster's CA when `url` is HTTPS.
    fn cacert_args(&self, url: &str) -> Vec<String> {
        match &self.etcd.ca {
            Some(ca) if url.starts_with("https://") => {
                vec!["--cacert".into(), ca.cert.display().to_string()]
            }
            _ => Vec::new(),
        }
    }

    /// Starts `quotactl <args>` against this cluster's coordinator without waiting for it
    /// (e.g. `audit --watch` alongside a sale); its output is piped.
    pub fn quotactl_spawn(&self, args: &[&str]) -> std::process::Child {
        Command::new(bin_path("quotactl"))
            .args(args)
            .args(self.cacert_args(&self.coordinator().url))
            .env("COORDINATOR_URL", self.coordinator().url.clone())
            .env("ADMIN_TOKEN", &self.admin_token)
            .env("XDG_CONFIG_HOME", self.dir.path())
            .env_remove("QUOTACTL_CONFIG")
            .env_remove("QUOTACTL_CONTEXT")
            .env_remove("QUOTACTL_URLS")
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("run quotactl")
    }

    /// Run `quotactl <args>` against this cluster's coordinator.
    ///
    /// Runs in the temp dir so a developer's `target/cluster/cluster.env` (or quotactl
    /// config file) can never be picked up by accident.
    pub fn quotactl(&self, args: &[&str]) -> Output {
        let url = self.coordinator_url.lock().unwrap().clone();
        let url = url.unwrap_or_else(|| self.coordinator().url.clone());
        self.quotactl_via(&url, args)
    }

    /// Points `quotactl` at one coordinator (e.g. away from one a test has paused);
    /// `None` restores the default (the first one running).
    pub fn use_coordinator(&self, url: Option<&str>) {
        *self.coordinator_url.lock().unwrap() = url.map(str::to_string);
    }

    /// A Postgres client on region `region`'s `quota` database.
    pub async fn pg_client(&self, region: &str) -> tokio_postgres::Client {
        self.region(region).pg.client().await
    }

    /// A Redis connection to region `region`'s Redis.
    pub async fn redis_conn(&self, region: &str) -> redis::aio::MultiplexedConnection {
        self.region(region).redis.conn().await
    }

    /// A connected etcd client.
    pub async fn etcd_client(&self) -> etcd_client::Client {
        self.etcd.client().await
    }

    /// Sets the mode (`pass`, `blackhole`, `reset`) of one of the proxy's links: a region's or
    /// coordinator's link to etcd (`east`, `coordinator-1`: with several etcd members, its
    /// link to every member), a node's to Postgres (`pg-east`).
    pub async fn set_link(&self, id: &str, mode: &str) -> Result<(), String> {
        let proxy = self.proxy.as_ref().ok_or("this cluster has no proxy")?;
        let per_member = format!("{id}.m");
        let ids: Vec<&String> = proxy
            .listen
            .keys()
            .filter(|k| *k == id || k.starts_with(&per_member))
            .collect();
        if ids.is_empty() {
            return Err(format!("the proxy has no link {id}"));
        }
        for link in ids {
            reqwest::Client::new()
                .put(format!("{}/links/{link}", proxy.control_url))
                .json(&serde_json::json!({ "mode": mode }))
                .send()
                .await
                .and_then(reqwest::Response::error_for_status)
                .map_err(|e| e.to_string())?;
        }
        Ok(())
    }

    /// Starts one more node process for `region` — several processes per region, as a real
    /// deployment runs them — on the region's own Redis and Postgres and on etcd directly,
    /// with the cluster's admin token and `extra_args`; returns once it has registered.
    pub async fn start_extra_node(&self, region: &str, extra_args: &[&str]) -> Node {
        let stack = self.region(region);
        let endpoints = self.etcd.endpoints_arg();
        let backends = NodeBackends {
            etcd_endpoints: &endpoints,
            redis_url: &stack.redis.url,
            pg_url: &stack.pg.url,
        };
        let mut user = self.etcd.user_args(&quota_etcd::rbac::region_user(region));
        user.extend(stack.redis.node_args());
        user.extend(stack.pg.node_args());
        let mut args = vec!["--admin-token", self.admin_token.as_str()];
        args.extend(user.iter().map(String::as_str));
        args.extend_from_slice(extra_args);
        let mut node = Node::start(self.dir.path(), region, &backends, &args).await;
        node.wait_registered().await;
        node
    }
}
