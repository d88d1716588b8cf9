//! The three benchmark scenarios. Each builds its clusters with the test harness (real etcd,
//! Redis, Postgres and release binaries on free loopback ports), plays the load generator,
//! prints one table with ratios, and returns the JSON document.

mod regions;
mod scale;
mod strategies;

pub(crate) use regions::regions;
pub(crate) use scale::scale;
pub(crate) use strategies::strategies;

use quota_loadgen::Report;
use quota_tests::Cluster;

/// Flags that take rate limiting out of a benchmark (every request comes from one IP and the
/// generator's users are all distinct; we measure the purchase path, not the limiter).
const NO_LIMITS: [&str; 6] = [
    "--user-rate-limit",
    "0",
    "--global-rate-limit",
    "0",
    "--pg-pool-size",
    "32",
];

/// Every server process of `c`, named for the CPU table (`node-east`, `redis-east`, …).
fn region_procs(c: &Cluster) -> Vec<(String, u32)> {
    let mut v = Vec::new();
    for r in &c.regions {
        for (what, p) in [
            ("node", &r.node.proc),
            ("redis", &r.redis.proc),
            ("postgres", &r.pg.proc),
        ] {
            if let Some(pid) = p.pid() {
                v.push((format!("{what}-{}", r.name), pid));
            }
        }
    }
    for pid in c.etcd.pids() {
        v.push(("etcd".into(), pid));
    }
    for co in &c.coordinators {
        if let Some(pid) = co.proc.pid() {
            v.push((co.id.clone(), pid));
        }
    }
    v
}

/// The highest per-region request latency percentile (`p50` or `p99`) of a run, ms.
fn worst_region(r: &Report, p99: bool) -> f64 {
    r.regions
        .values()
        .map(|x| if p99 { x.p99_ms } else { x.p50_ms })
        .fold(0.0, f64::max)
}

/// `v` with `digits` decimals, or `-` when missing.
fn cell(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}
