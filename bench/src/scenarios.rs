//! The three benchmark scenarios. Each builds its clusters with the test harness (real etcd,
//! Redis, Postgres and release binaries on free loopback ports), plays the load generator,
//! prints one table with ratios, and returns the JSON document.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quota_loadgen::{RegionTarget, Report, WeightShift};
use quota_tests::{Cluster, Proxy};
use serde_json::{json, Value};

use crate::cpu::Meter;
use crate::sale;

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
    if let Some(pid) = c.etcd.proc.pid() {
        v.push(("etcd".into(), pid));
    }
    for co in &c.coordinators {
        if let Some(pid) = co.proc.pid() {
            v.push((co.id.clone(), pid));
        }
    }
    v
}

fn busiest(cpu: &BTreeMap<String, f64>) -> String {
    cpu.iter()
        .max_by(|a, b| a.1.total_cmp(b.1))
        .map(|(n, c)| format!("{n} ({c:.2} cores)"))
        .unwrap_or_default()
}

fn p(r: &Report, q: &str) -> f64 {
    let vals: Vec<f64> = r
        .regions
        .values()
        .map(|x| if q == "p50" { x.p50_ms } else { x.p99_ms })
        .collect();
    vals.into_iter().fold(0.0, f64::max)
}

/// A saturating run: arrivals far above capacity, capped in-flight requests, so completed
/// answers per second measure capacity. Latency counts from the intended send time.
fn saturating(cfg: &mut quota_loadgen::Config, quick: bool) {
    cfg.rate = if quick { 1500.0 } else { 20_000.0 };
    cfg.spike_rate = cfg.rate;
    cfg.spike_secs = 0.0;
    cfg.duration_secs = if quick { 1.5 } else { 6.0 };
    cfg.concurrency_cap = 256;
    cfg.retries = 0;
    cfg.stop_on_sellout = false;
}

/// `strategies`: v1–v4 and isolation levels on one region, plus the rejection path against a
/// bare axum endpoint.
pub(crate) async fn strategies(quick: bool) -> anyhow::Result<Value> {
    let variants: &[(&str, &str, &str)] = &[
        ("v1-pessimistic", "v1", "read-committed"),
        ("v2-optimistic", "v2", "read-committed"),
        ("v3-redis", "v3", "read-committed"),
        ("v4-group-commit", "v4", "read-committed"),
        ("v2-optimistic-repeatable-read", "v2", "repeatable-read"),
        ("v2-optimistic-serializable", "v2", "serializable"),
        ("v3-redis-repeatable-read", "v3", "repeatable-read"),
        ("v3-redis-serializable", "v3", "serializable"),
    ];
    let variants = if quick { &variants[..4] } else { variants };
    let stock = if quick { 100 } else { 2000 };
    let mut rows = Vec::new();
    for (i, (name, strategy, isolation)) in variants.iter().enumerate() {
        let c = Cluster::builder(&["east"])
            .node_args(&["--strategy", strategy, "--isolation", isolation])
            .node_args(&NO_LIMITS)
            .start()
            .await;
        let product = 1000 + i as i64;
        sale::create(&c, product, stock, &format!("east={stock}"), "static").await;
        let mut cfg = sale::config(&c, product, None);
        saturating(&mut cfg, quick);
        let meter = Meter::start(&region_procs(&c));
        let t = Instant::now();
        let r = sale::play(cfg).await?;
        let cpu = meter.stop(t.elapsed().as_secs_f64());
        eprintln!(
            "  {name}: {:.0} attempts/s, {} orders",
            r.attempts_per_sec, r.orders
        );
        rows.push(json!({
            "name": name, "strategy": strategy, "isolation": isolation,
            "attempts_per_sec": r.attempts_per_sec.round(), "orders_per_sec": r.orders_per_sec.round(),
            "orders": r.orders, "stock": stock,
            "p50_ms": p(&r, "p50"), "p99_ms": p(&r, "p99"),
            "oversold": r.oversold, "lost_orders": r.lost_orders, "audit": r.audit,
            "cpu_cores": cpu,
        }));
    }

    // The rejection path: a sold-out product on the real node vs a bare axum endpoint.
    let (bare_url, _server) = bare_endpoint().await?;
    let c = Cluster::builder(&["east"])
        .node_args(&["--strategy", "v3"])
        .node_args(&NO_LIMITS)
        .start()
        .await;
    sale::create(&c, 2000, 1, "east=1", "static").await;
    let _ = reqwest::Client::new()
        .post(format!(
            "{}/v1/products/2000/purchase",
            c.region("east").node.url
        ))
        .json(&json!({"user_id": 1}))
        .send()
        .await?;
    let mut cfg = sale::config(&c, 2000, None);
    saturating(&mut cfg, quick);
    cfg.user_base = 10;
    let meter = Meter::start(&region_procs(&c));
    let t = Instant::now();
    let sold_out = sale::play(cfg.clone()).await?;
    let sold_out_cpu = meter.stop(t.elapsed().as_secs_f64());
    let mut bare_cfg = cfg.clone();
    bare_cfg.regions = vec![RegionTarget {
        name: "east".into(),
        url: bare_url,
    }];
    bare_cfg.coordinator = None;
    bare_cfg.pg.clear();
    let bare = sale::play(bare_cfg).await?;
    drop(c);

    let base = rows[0]["attempts_per_sec"].as_f64().unwrap_or(1.0).max(1.0);
    println!("\nstrategies — one region, {stock} units, saturating load (256 in flight)");
    println!(
        "{:<32} {:>11} {:>9} {:>8} {:>9} {:>9} {:>8}  busiest process",
        "variant", "attempts/s", "× v1", "orders", "p50 ms", "p99 ms", "oversold"
    );
    for r in &rows {
        let a = r["attempts_per_sec"].as_f64().unwrap_or(0.0);
        let cpu: BTreeMap<String, f64> =
            serde_json::from_value(r["cpu_cores"].clone()).unwrap_or_default();
        println!(
            "{:<32} {:>11.0} {:>8.1}× {:>8} {:>9.1} {:>9.1} {:>8}  {}",
            r["name"].as_str().unwrap_or(""),
            a,
            a / base,
            r["orders"],
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["oversold"],
            busiest(&cpu)
        );
    }
    let ratio = bare.attempts_per_sec / sold_out.attempts_per_sec.max(1.0);
    println!(
        "\nsold-out rejections: region node {:.0}/s (p99 {:.1} ms) vs bare axum {:.0}/s (p99 {:.1} ms): bare is {ratio:.2}× (target ≤ 2×); busiest: {}",
        sold_out.attempts_per_sec, p(&sold_out, "p99"), bare.attempts_per_sec, p(&bare, "p99"), busiest(&sold_out_cpu)
    );
    Ok(json!({
        "scenario": "strategies",
        "variants": rows,
        "rejection_path": {
            "region_node_sold_out": {"attempts_per_sec": sold_out.attempts_per_sec.round(), "p99_ms": p(&sold_out, "p99"), "cpu_cores": sold_out_cpu},
            "bare_axum": {"attempts_per_sec": bare.attempts_per_sec.round(), "p99_ms": p(&bare, "p99")},
            "bare_over_node": (ratio * 100.0).round() / 100.0,
        },
    }))
}

/// An axum endpoint that answers every purchase with a constant 410 — the floor of what any
/// HTTP service can do on this machine.
async fn bare_endpoint() -> anyhow::Result<(String, tokio::task::JoinHandle<()>)> {
    use axum::routing::post;
    let app = axum::Router::new().route(
        "/v1/products/{id}/purchase",
        post(|| async {
            (
                axum::http::StatusCode::GONE,
                axum::Json(json!({"error": {"code": "sold_out", "message": "sold out"}})),
            )
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}", listener.local_addr()?);
    let h = tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok((url, h))
}

const REGIONS: [&str; 3] = ["east", "south", "north"];
const DISTANCE_MS: [u64; 3] = [5, 40, 80];

/// The shared workload of `regions`: 70/20/10 demand that shifts to 10/20/70 mid-sale.
fn regions_workload(cfg: &mut quota_loadgen::Config, quick: bool) {
    cfg.rate = if quick { 400.0 } else { 1200.0 };
    cfg.spike_rate = cfg.rate * 2.0;
    cfg.spike_secs = 1.0;
    cfg.duration_secs = if quick { 8.0 } else { 30.0 };
    cfg.retries = 2;
    cfg.retry_backoff = Duration::from_millis(100);
    cfg.stop_on_sellout = true;
    cfg.concurrency_cap = 4000;
    cfg.weights = [("east", 70u32), ("south", 20), ("north", 10)]
        .iter()
        .map(|(r, w)| (r.to_string(), *w))
        .collect();
    cfg.shift = Some(WeightShift {
        at_secs: if quick { 1.5 } else { 3.0 },
        weights: [("east", 10u32), ("south", 20), ("north", 70)]
            .iter()
            .map(|(r, w)| (r.to_string(), *w))
            .collect(),
    });
}

fn design_row(name: &str, r: &Report) -> Value {
    let p99: BTreeMap<String, f64> = r
        .regions
        .iter()
        .map(|(n, x)| (n.clone(), x.p99_ms))
        .collect();
    json!({
        "name": name, "stranded": r.stranded, "false_sold_out_pct": r.false_sold_out_pct,
        "false_sold_outs": r.false_sold_outs, "sellout_s": r.sellout_s, "p99_ms": p99,
        "oversold": r.oversold, "lost_orders": r.lost_orders, "audit": r.audit,
        "orders": r.orders, "attempts": r.attempts,
    })
}

/// `regions`: escrow + demand rebalancing vs a static split vs one central counter.
pub(crate) async fn regions(quick: bool) -> anyhow::Result<Value> {
    let total: i64 = if quick { 300 } else { 3000 };
    let share = total / 3;
    let split = format!("east={share},south={share},north={}", total - 2 * share);
    let latency: Vec<(&str, u64)> = REGIONS.iter().copied().zip(DISTANCE_MS).collect();
    let mut rows = Vec::new();
    for (name, policy) in [("escrow", "demand"), ("static", "static")] {
        let c = Cluster::builder(&REGIONS)
            .node_args(&NO_LIMITS)
            .etcd_latency(&latency)
            .start()
            .await;
        sale::create(&c, 1, total, &split, policy).await;
        let mut cfg = sale::config(&c, 1, None);
        regions_workload(&mut cfg, quick);
        let r = sale::play(cfg).await?;
        eprintln!("  {name}: sold {} in {:?} s", r.orders, r.sellout_s);
        rows.push(design_row(name, &r));
    }
    // Central: one counter; each region's buyers reach it across their distance.
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
    // its per-region Postgres check does not apply (oversell comes from the coordinator's
    // samples; the audit still checks the central books).
    cfg.pg.clear();
    regions_workload(&mut cfg, quick);
    let r = sale::play(cfg).await?;
    rows.push(design_row("central", &r));
    drop(proxy);
    drop(c);

    let central_sellout = rows[2]["sellout_s"].as_f64();
    println!(
        "\nregions — 3 regions at 5/40/80 ms, {total} units, demand 70/20/10 shifting to 10/20/70"
    );
    println!(
        "{:<8} {:>8} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
        "design",
        "stranded",
        "false 410 %",
        "sellout s",
        "× central",
        "p99 east",
        "p99 south",
        "p99 north",
        "oversold"
    );
    for r in &rows {
        let s = r["sellout_s"].as_f64();
        let ratio = match (s, central_sellout) {
            (Some(a), Some(b)) if b > 0.0 => format!("{:.2}×", a / b),
            _ => "-".into(),
        };
        let p = |reg: &str| {
            r["p99_ms"][reg]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.1}"))
        };
        println!(
            "{:<8} {:>8} {:>11} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8}",
            r["name"].as_str().unwrap_or(""),
            r["stranded"],
            r["false_sold_out_pct"]
                .as_f64()
                .map_or("-".into(), |v| format!("{v:.2}")),
            s.map_or("-".into(), |v| format!("{v:.2}")),
            ratio,
            p("east"),
            p("south"),
            p("north"),
            r["oversold"]
        );
    }
    Ok(json!({"scenario": "regions", "total": total, "distance_ms": DISTANCE_MS, "designs": rows}))
}

/// `scale`: one region (v3 and v4), offered load doubling each step; per step the CPU of each
/// process shows where the bottleneck is.
pub(crate) async fn scale(quick: bool) -> anyhow::Result<Value> {
    let rates: &[f64] = if quick {
        &[200.0, 400.0]
    } else {
        &[500.0, 1000.0, 2000.0, 4000.0, 8000.0, 16000.0]
    };
    let mut rows = Vec::new();
    for strategy in ["v3", "v4"] {
        let c = Cluster::builder(&["east"])
            .node_args(&["--strategy", strategy])
            .node_args(&NO_LIMITS)
            .start()
            .await;
        for (i, rate) in rates.iter().enumerate() {
            let product = 100 + i as i64;
            sale::create(&c, product, 1000, "east=1000", "static").await;
            let mut cfg = sale::config(&c, product, None);
            cfg.rate = *rate;
            cfg.spike_rate = *rate;
            cfg.spike_secs = 0.0;
            cfg.duration_secs = if quick { 1.0 } else { 4.0 };
            cfg.retries = 0;
            cfg.stop_on_sellout = false;
            cfg.concurrency_cap = 4000;
            cfg.user_base = 1 + (i as i64) * 10_000_000;
            let meter = Meter::start(&region_procs(&c));
            let t = Instant::now();
            let r = sale::play(cfg).await?;
            let cpu = meter.stop(t.elapsed().as_secs_f64());
            let east = &r.regions["east"];
            rows.push(json!({
                "strategy": strategy, "offered_per_sec": rate, "attempts_per_sec": r.attempts_per_sec.round(),
                "orders": r.orders, "p50_ms": east.p50_ms, "p99_ms": east.p99_ms, "p999_ms": east.p999_ms,
                "dropped_by_client": r.dropped_by_client, "oversold": r.oversold, "cpu_cores": cpu,
                "bottleneck": busiest(&cpu),
            }));
        }
    }
    println!("\nscale — one region, 1,000 units per step, open-loop offered load");
    println!(
        "{:<4} {:>10} {:>11} {:>7} {:>8} {:>8} {:>9} {:>8}  busiest process",
        "", "offered/s", "attempts/s", "orders", "p50 ms", "p99 ms", "p99.9 ms", "dropped"
    );
    for r in &rows {
        println!(
            "{:<4} {:>10} {:>11} {:>7} {:>8.1} {:>8.1} {:>9.1} {:>8}  {}",
            r["strategy"].as_str().unwrap_or(""),
            r["offered_per_sec"],
            r["attempts_per_sec"],
            r["orders"],
            r["p50_ms"].as_f64().unwrap_or(0.0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            r["p999_ms"].as_f64().unwrap_or(0.0),
            r["dropped_by_client"],
            r["bottleneck"].as_str().unwrap_or("")
        );
    }
    Ok(json!({"scenario": "scale", "steps": rows}))
}
