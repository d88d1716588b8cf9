//! [`ClusterBuilder`]: the one way to start a [`Cluster`].

use std::sync::Mutex;

use futures::future::join_all;

use super::{Cluster, RegionStack};
use crate::binaries::{Coordinator, Node, NodeBackends, Proxy};
use crate::paths::test_dir;
use crate::services::{Etcd, Postgres, Redis};
use crate::tls::TestCa;

/// What to start: regions, extra flags for the nodes and coordinators, how many coordinators,
/// and which regions sit at a distance from etcd. Every option has the default a plain
/// `Cluster::builder(&regions).start()` wants: default flags, one coordinator, no proxy.
///
/// ```no_run
/// # async fn f() {
/// let c = quota_tests::Cluster::builder(&["east", "south"])
///     .node_args(&["--ticket-expiry-ms", "1500"])
///     .coordinators(2)
///     .etcd_latency(&[("south", 40)])
///     .start()
///     .await;
/// # }
/// ```
#[must_use = "a builder starts nothing until `.start().await`"]
pub struct ClusterBuilder {
    regions: Vec<String>,
    node_args: Vec<String>,
    coordinators: usize,
    coordinator_args: Vec<String>,
    etcd_latency_ms: Vec<(String, u64)>,
    fault_links: bool,
    etcd_members: usize,
    https: bool,
    insecure: bool,
}

impl ClusterBuilder {
    pub(super) fn new(regions: &[&str]) -> Self {
        ClusterBuilder {
            regions: to_strings(regions),
            node_args: Vec::new(),
            coordinators: 1,
            coordinator_args: Vec::new(),
            etcd_latency_ms: Vec::new(),
            fault_links: false,
            etcd_members: 1,
            https: false,
            insecure: false,
        }
    }

    /// Everything in plain text and without passwords or etcd authentication — only as the
    /// baseline that measures what security costs (`bench.sh strategies`); every test runs
    /// secure.
    pub fn insecure(mut self) -> Self {
        self.insecure = true;
        self
    }

    /// Coordinators and region nodes serve HTTPS (a certificate from the cluster's CA);
    /// coordinators trust that CA when they call the nodes, `quotactl` gets `--cacert`.
    pub fn https(mut self) -> Self {
        self.https = true;
        self
    }

    /// How many etcd members (default 1; a real deployment runs 3, so one can die). With
    /// several, every link to etcd is one proxy link per member (`{id}.m1`, `{id}.m2`, …) and
    /// [`Cluster::set_link`] on `{id}` sets them all.
    pub fn etcd_members(mut self, n: usize) -> Self {
        self.etcd_members = n.max(1);
        self
    }

    /// Routes every link a fault may cut through the [`Proxy`] (no added latency): each
    /// region's node to etcd (link `{region}`) and to its Postgres (link `pg-{region}`), each
    /// coordinator to etcd (link `coordinator-{i}`). The nemesis partitions them at will.
    pub fn fault_links(mut self) -> Self {
        self.fault_links = true;
        self
    }

    /// Appends flags passed to every region node (after `--admin-token`); may be called
    /// several times, the flags accumulate in order.
    pub fn node_args(mut self, args: &[&str]) -> Self {
        self.node_args.extend(to_strings(args));
        self
    }

    /// How many coordinator instances (`coordinator-1…`); at least one is always started.
    pub fn coordinators(mut self, n: usize) -> Self {
        self.coordinators = n;
        self
    }

    /// Appends flags passed to every coordinator instance.
    pub fn coordinator_args(mut self, args: &[&str]) -> Self {
        self.coordinator_args.extend(to_strings(args));
        self
    }

    /// Each region named here reaches etcd through a [`Proxy`] link with that one-way delay
    /// in milliseconds (the modelled distance); the others talk to etcd directly.
    pub fn etcd_latency(mut self, latency_ms: &[(&str, u64)]) -> Self {
        self.etcd_latency_ms
            .extend(latency_ms.iter().map(|(r, ms)| ((*r).to_string(), *ms)));
        self
    }

    /// Starts the cluster, in this order: etcd and each region's Redis/Postgres concurrently
    /// (initdb is the slow part); then the proxy, if any link needs one; then the coordinators
    /// one after another; then all region nodes concurrently; finally it waits until every node
    /// has registered its region in etcd, so a sale created right away can name every region.
    pub async fn start(self) -> Cluster {
        assert!(
            !self.regions.is_empty(),
            "a cluster needs at least one region"
        );
        let dir = test_dir();
        let d = dir.path();

        // Secure by default, as a deployment: a throwaway CA; etcd, every Redis and every
        // Postgres serve TLS only and want a password; every process is its own etcd user,
        // with only its role's rights.
        let ca = TestCa::new(&d.join("tls"));
        let secure = (!self.insecure).then_some(&ca);
        let stores = join_all(self.regions.iter().map(|r| async move {
            let (redis_name, pg_name) = (format!("redis-{r}"), format!("pg-{r}"));
            match secure {
                Some(ca) => tokio::join!(
                    Redis::start_secured(d, &redis_name, ca),
                    Postgres::start_secured(d, &pg_name, ca)
                ),
                None => tokio::join!(
                    Redis::start_named(d, &redis_name),
                    Postgres::start_named(d, &pg_name)
                ),
            }
        }));
        let (mut etcd, stores) = tokio::join!(
            Etcd::start_members(d, "etcd", self.etcd_members, secure),
            stores
        );
        let region_names: Vec<&str> = self.regions.iter().map(String::as_str).collect();
        if !self.insecure {
            etcd.enable_auth(&d.join("etcd-credentials"), &region_names);
        }
        let etcd = etcd;

        let admin_token = uuid::Uuid::new_v4().simple().to_string();
        let coordinator_ids: Vec<String> = (1..=self.coordinators.max(1))
            .map(|i| format!("coordinator-{i}"))
            .collect();
        // Who reaches etcd through the proxy, and with what one-way delay.
        let mut to_etcd: Vec<(String, u64)> = self.etcd_latency_ms.clone();
        let mut links: Vec<(String, String, u64)> = Vec::new();
        if self.fault_links {
            for (r, (_, pg)) in self.regions.iter().zip(&stores) {
                if !to_etcd.iter().any(|(id, _)| id == r) {
                    to_etcd.push((r.clone(), 0));
                }
                links.push((format!("pg-{r}"), format!("127.0.0.1:{}", pg.port), 0));
            }
            to_etcd.extend(coordinator_ids.iter().map(|id| (id.clone(), 0)));
        }
        let members: Vec<String> = etcd
            .members
            .iter()
            .map(|m| format!("127.0.0.1:{}", m.port))
            .collect();
        let member_link = |id: &str, k: usize| {
            if members.len() == 1 {
                id.to_string()
            } else {
                format!("{id}.m{}", k + 1)
            }
        };
        for (id, ms) in &to_etcd {
            for (k, upstream) in members.iter().enumerate() {
                links.push((member_link(id, k), upstream.clone(), *ms));
            }
        }
        let proxy = if links.is_empty() {
            None
        } else {
            Some(Proxy::start(d, &links).await)
        };
        let via = |id: &str| proxy.as_ref().and_then(|p| p.listen.get(id)).cloned();
        // `--etcd-endpoints` for `id`: its proxy links to every member, or the members.
        let etcd_for = |id: &str| -> String {
            if via(&member_link(id, 0)).is_none() {
                return etcd.endpoints_arg();
            }
            let scheme = if etcd.ca.is_some() { "https" } else { "http" };
            (0..members.len())
                .filter_map(|k| via(&member_link(id, k)))
                .map(|l| format!("{scheme}://{l}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        let etcd_for = &etcd_for;

        let https_args: Vec<String> = if self.https {
            let cert = ca.server("https");
            vec![
                "--tls-cert-file".into(),
                cert.cert.display().to_string(),
                "--tls-key-file".into(),
                cert.key.display().to_string(),
            ]
        } else {
            Vec::new()
        };
        let mut coordinator_args = etcd.user_args(quota_etcd::rbac::COORDINATOR_USER);
        coordinator_args.extend(https_args.iter().cloned());
        if self.https {
            coordinator_args.extend(["--tls-ca-file".into(), ca.cert.display().to_string()]);
        }
        coordinator_args.extend(self.coordinator_args.iter().cloned());
        let coordinator_args = as_strs(&coordinator_args);
        let mut coordinators = Vec::new();
        for id in &coordinator_ids {
            let endpoint = etcd_for(id);
            coordinators
                .push(Coordinator::start(d, id, &endpoint, &admin_token, &coordinator_args).await);
        }
        let mut node_args: Vec<&str> = vec!["--admin-token", &admin_token];
        node_args.extend(as_strs(&https_args));
        node_args.extend(as_strs(&self.node_args));
        let node_args = &node_args;

        let nodes = join_all(self.regions.iter().zip(&stores).map(|(r, (redis, pg))| {
            let endpoint = etcd_for(r);
            let pg_url = via(&format!("pg-{r}")).map_or_else(
                || pg.url.clone(),
                |l| pg.url.replacen(&format!("127.0.0.1:{}", pg.port), &l, 1),
            );
            let etcd = &etcd;
            async move {
                let backends = NodeBackends {
                    etcd_endpoints: &endpoint,
                    redis_url: &redis.url,
                    pg_url: &pg_url,
                };
                let mut secrets = etcd.user_args(&quota_etcd::rbac::region_user(r));
                secrets.extend(redis.node_args());
                secrets.extend(pg.node_args());
                let mut args = node_args.clone();
                args.extend(as_strs(&secrets));
                Node::start(d, r, &backends, &args).await
            }
        }))
        .await;

        let mut regions: Vec<RegionStack> = self
            .regions
            .iter()
            .zip(stores)
            .zip(nodes)
            .map(|((r, (redis, pg)), node)| RegionStack {
                name: r.clone(),
                redis,
                pg,
                node,
            })
            .collect();
        for r in &mut regions {
            r.node.wait_registered().await;
        }
        Cluster {
            regions,
            proxy,
            coordinators,
            admin_token,
            coordinator_url: Mutex::new(None),
            etcd,
            dir,
        }
    }
}

fn to_strings(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| (*s).to_string()).collect()
}

fn as_strs(items: &[String]) -> Vec<&str> {
    items.iter().map(String::as_str).collect()
}
