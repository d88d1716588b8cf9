//! Integration-test harness for quota.
//!
//! Tests run against the real thing: etcd, Redis and Postgres binaries plus the
//! project's own `region-node` / `coordinator` binaries, each spawned as a child
//! process on a free loopback port, waited on until it is really ready, and
//! killed when its handle is dropped. This is the same mechanism as
//! `deploy/local/cluster.sh`, just owned by a test instead of a shell.
//!
//! What each piece is for:
//! * **Where things are** — [`free_port`], [`port_is_closed`], [`bin_path`],
//!   [`workspace_root`], [`test_dir`] (a scratch dir Postgres can traverse).
//! * **Processes** — [`CmdSpec`] (a re-spawnable command line) and [`Proc`] (a child with
//!   its log: `kill9`, `stop`, `restart`, `log_tail`), plus [`child_pids`] / [`pid_alive`].
//!   Children get `PR_SET_PDEATHSIG=SIGKILL` from one never-exiting spawner thread, so
//!   they die with the test binary instead of leaking ports.
//! * **Services** — [`Etcd`], [`Redis`], [`Postgres`]: each `start`s on free ports and
//!   shares one lifecycle (`kill9`, `stop`, `start_again`, `restart`).
//! * **Project processes** — [`Node`] (a region node), [`Coordinator`], [`Proxy`] (modelled
//!   latency between processes).
//! * **The cluster** — [`Cluster::builder`] starts etcd, coordinators and one
//!   [`RegionStack`] (Redis, Postgres, node) per region; [`Cluster`] has the accessors and
//!   runs `quotactl`.
//! * **Sales** — [`Sale`] creates a product and waits until every region sells it; [`buy`],
//!   [`buy_all`], [`drain`] send buyers; [`truth`] / [`assert_safe`] read and check each
//!   region's books; [`fault_mid_sale`] is the crash/stop/flush-in-the-middle scenario.
//!
//! * **Chaos** — [`run_nemesis`]: a seeded 3-region sale under faults (kills, pauses,
//!   partitions, flushes) and the checks every interleaving must pass ([`NemesisReport`]).
//!
//! Every wait is bounded and panics with the process's log tail.

mod binaries;
mod cluster;
pub mod jwt;
mod nemesis;
mod paths;
mod probe;
mod process;
mod sale;
mod services;
mod spawn;
mod tls;
mod wait;

pub use tempfile::TempDir;

pub use crate::binaries::{Coordinator, Node, NodeBackends, Proxy};
pub use crate::cluster::{Cluster, ClusterBuilder, RegionStack};
pub use crate::nemesis::{
    run as run_nemesis, schedule as nemesis_schedule, Fault, NemesisConfig, NemesisReport, Planned,
};
pub use crate::paths::{bin_path, free_port, port_is_closed, test_dir, workspace_root};
pub use crate::probe::http_ok;
pub use crate::process::{Proc, READY_TIMEOUT, STOP_TIMEOUT};
pub use crate::sale::{
    assert_safe, audit_ok, buy, buy_all, by_status, drain, fault_mid_sale, http, quotactl_json,
    redis_stock, total_sold, truth, wait_for_redis_stock, FaultAt, FaultRun, MidSale, Outcome,
    Sale, Truth,
};
pub use crate::services::{Etcd, EtcdMember, Postgres, Redis, Secured};
pub use crate::spawn::{child_pids, pid_alive, refused_to_start, CmdSpec};
pub use crate::tls::{ServerCert, TestCa};
pub use crate::wait::wait_for;
