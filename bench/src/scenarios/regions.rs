//! `regions`: escrow + demand rebalancing vs a static split vs one central counter, each design
//! played several times on fresh clusters, reported as median and worst of every sale-quality
//! measure ([`quota_shared::quality`], through the generator's report).

use std::collections::BTreeMap;
use std::time::Duration;

use quota_loadgen::{Config, RegionTarget, Report, WeightShift};
use quota_tests::{Cluster, Proxy};
use serde_json::{json, Value};

use super::{cell, NO_LIMITS};
use crate::sale;
use crate::summary::{summarise, Measures};

const REGIONS: [&str; 3] = ["east", "south", "north"];
const DISTANCE_MS: [u64; 3] = [5, 40, 80];

/// The designs compared: (name, coordinator policy); `central` has no policy of its own.
const DESIGNS: [(&str, &str); 3] = [
    ("escrow", "demand"),
    ("static", "static"),
    ("central", "static"),
];

/// The shared workload: 70/20/10 demand that shifts to 10/20/70 mid-sale.
fn workload(cfg: &mut Config, quick: bool) {
    cfg.rate = if quick { 400.0 } else { 1200.0 };
    cfg.spike_rate = cfg.rate * 2.0;
    cfg.spike_secs = 1.0;
    cfg.duration_secs = if quick { 8.0 } else { 30.0 };
    cfg.retries = 2;
    cfg.retry_backoff = Duration::from_millis(100);
    cfg.stop_on_sellout = true;
    cfg.concurrency_cap = 4000;
    let weights = |w: [u32; 3]| REGIONS.iter().map(ToString::to_string).zip(w).collect();
    cfg.weights = weights([70, 20, 10]);
    cfg.shift = Some(WeightShift {
        at_secs: if quick { 1.5 } else { 3.0 },
        weights: weights([10, 20, 70]),
    });
}

/// The measures compared across runs (all "lower is better").
fn measures(r: &Report) -> Measures {
    let q = &r.quality;
    let m = &q.measures;
    let mut out: Measures = [
        ("sellout_s", m.sellout_s),
        ("fcfs_inversion_pct", Some(m.fcfs_inversion_pct)),
        ("stranded", q.stranded().map(|s| s as f64)),
        ("false_410_pct", Some(m.false_sold_out_pct)),
        ("awaiting_per_order", Some(m.awaiting_per_order)),
        ("units_moved", q.units_moved().map(|u| u as f64)),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect();
    for x in &m.regions {
        out.insert(format!("p99_{}_ms", x.region), Some(x.p99_ms));
    }
    out
}

/// One run of one design on a fresh cluster.
async fn play(design: &str, policy: &str, total: i64, quick: bool) -> anyhow::Result<Report> {
    if design == "central" {
        return play_central(total, quick).await;
    }
    let share = total / 3;
    let split = format!("east={share},south={share},north={}", total - 2 * share);
    let latency: Vec<(&str, u64)> = REGIONS.iter().copied().zip(DISTANCE_MS).collect();
    let c = Cluster::builder(&REGIONS)
        .node_args(&NO_LIMITS)
        .etcd_latency(&latency)
        .start()
        .await;
    sale::create(&c, 1, total, &split, policy).await;
    let mut cfg = sale::config(&c, 1, None);
    workload(&mut cfg, quick);
    sale::play(cfg).await
}

/// Central: one counter; each region's buyers reach it across their distance (a delay proxy).
async fn play_central(total: i64, quick: bool) -> anyhow::Result<Report> {
    let c = Cluster::builder(&["central"])
        .node_args(&NO_LIMITS)
        .start()
        .await;
    sale::create(&c, 1, total, &format!("central={total}"), "static").await;
    let node = c
        .region("central")
        .node
        .url
        .trim_start_matches("http://")
        .to_string();
    let links: Vec<(String, String, u64)> = REGIONS
        .iter()
        .zip(DISTANCE_MS)
        .map(|(r, ms)| (r.to_string(), node.clone(), ms))
        .collect();
    let proxy = Proxy::start(c.dir.path(), &links).await;
    let targets = REGIONS
        .iter()
        .map(|r| RegionTarget {
            name: r.to_string(),
            url: format!("http://{}", proxy.listen[*r]),
        })
        .collect();
    let mut cfg = sale::config(&c, 1, Some(targets));
    // The generator's regions are east/south/north, all served by the one central database:
    // its per-region Postgres check does not apply (the books come from the coordinator's
    // samples; the audit still checks the central books).
    cfg.pg.clear();
    cfg.pg_auth = quota_loadgen::PgAuth::default();
    workload(&mut cfg, quick);
    sale::play(cfg).await
}

/// Runs every design `runs` times and prints median and worst side by side.
pub(crate) async fn regions(quick: bool, runs: usize) -> anyhow::Result<Value> {
    let total: i64 = if quick { 300 } else { 3000 };
    let mut designs = Vec::new();
    for (name, policy) in DESIGNS {
        let mut rows = Vec::new();
        let mut all = Vec::new();
        for run in 0..runs {
            let r = play(name, policy, total, quick).await?;
            let m = measures(&r);
            eprintln!(
                "  {name} run {}: sold {} of {total}, sell-out {} s, FCFS inversions {:.2} %",
                run + 1,
                r.orders,
                cell(r.quality.measures.sellout_s, 2),
                r.quality.measures.fcfs_inversion_pct
            );
            rows.push(json!({
                "run": run + 1, "measures": m, "quality": r.quality,
                "oversold": r.oversold, "lost_orders": r.lost_orders, "audit": r.audit,
                "orders": r.orders, "attempts": r.attempts, "problems": r.problems,
            }));
            all.push(m);
        }
        let summary = summarise(&all);
        let pick = |i: usize| -> BTreeMap<&String, Option<f64>> {
            summary
                .iter()
                .map(|(k, v)| (k, if i == 0 { v.0 } else { v.1 }))
                .collect()
        };
        designs.push(json!({
            "name": name, "runs": rows, "median": pick(0), "worst": pick(1),
        }));
    }
    print_table(&designs, total, runs);
    Ok(json!({
        "scenario": "regions", "total": total, "distance_ms": DISTANCE_MS, "runs": runs,
        "designs": designs,
    }))
}

fn print_table(designs: &[Value], total: i64, runs: usize) {
    let central = designs
        .iter()
        .find(|d| d["name"] == "central")
        .and_then(|d| d["median"]["sellout_s"].as_f64());
    println!(
        "\nregions — 3 regions at 5/40/80 ms, {total} units, demand 70/20/10 shifting to 10/20/70; \
         {runs} run(s) per design on fresh clusters; each cell: median / worst"
    );
    let cols = [
        ("sellout_s", "sell-out s", 2),
        ("fcfs_inversion_pct", "FCFS inv %", 2),
        ("stranded", "stranded", 0),
        ("false_410_pct", "false 410 %", 2),
        ("awaiting_per_order", "503/order", 2),
        ("p99_east_ms", "p99 east", 0),
        ("p99_south_ms", "p99 south", 0),
        ("p99_north_ms", "p99 north", 0),
    ];
    let mut head = format!("{:<8} {:>9}", "design", "× central");
    for (_, title, _) in cols {
        head.push_str(&format!(" {title:>15}"));
    }
    println!("{head}");
    for d in designs {
        let ratio = d["median"]["sellout_s"]
            .as_f64()
            .zip(central)
            .filter(|(_, c)| *c > 0.0)
            .map(|(s, c)| s / c);
        let mut line = format!(
            "{:<8} {:>9}",
            d["name"].as_str().unwrap_or(""),
            cell(ratio, 2)
        );
        for (key, _, digits) in cols {
            let both = format!(
                "{} / {}",
                cell(d["median"][key].as_f64(), digits),
                cell(d["worst"][key].as_f64(), digits)
            );
            line.push_str(&format!(" {both:>15}"));
        }
        println!("{line}");
    }
    println!("(p99: buyer-perceived, arrival → final answer, retries included; sell-out `-`: not sold out)");
}
