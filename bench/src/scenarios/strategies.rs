//! `strategies`: the purchase strategies v1–v4 and isolation levels on one region, each at its
//! own capacity (found by [`crate::capacity`], not the generator's offered load), with the CPU
//! each attempt costs the node next to what it costs a bare axum endpoint — a ratio that means
//! something on any machine — and the generator's own CPU, so generator saturation is never
//! mistaken for the node's capacity.

use quota_loadgen::{Config, RegionTarget, Report};
use quota_tests::Cluster;
use serde_json::{json, Value};

use super::{cell, region_procs, worst_region, NO_LIMITS};
use crate::bare::BareServer;
use crate::capacity::{search, Capacity, Plan, Step};
use crate::cpu::{per_1000, CpuUse, Meter};
use crate::sale;

/// Units per attempt offered in each step: a flash sale where one buyer in 50 gets a unit, the
/// same mix at every rate (so steps and variants compare).
const WINNER_SHARE: f64 = 0.02;

/// How hard and how long the search pushes.
struct Knobs {
    plan: Plan,
    /// Seconds of arrivals per step.
    secs: f64,
}

fn knobs(quick: bool) -> Knobs {
    if quick {
        Knobs {
            plan: Plan {
                start: 400.0,
                max_steps: 2,
                bisections: 0,
            },
            secs: 1.0,
        }
    } else {
        Knobs {
            plan: Plan {
                start: 1000.0,
                max_steps: 10,
                bisections: 2,
            },
            secs: 3.0,
        }
    }
}

/// An open-loop step at `rate`: no retries, at most 256 in flight (arrivals beyond are
/// dropped and counted), so completed answers per second measure what the target sustains.
fn step_config(cfg: &mut Config, rate: f64, secs: f64, user_base: i64) {
    cfg.rate = rate;
    cfg.spike_rate = rate;
    cfg.spike_secs = 0.0;
    cfg.duration_secs = secs;
    cfg.concurrency_cap = 256;
    cfg.retries = 0;
    cfg.stop_on_sellout = false;
    cfg.user_base = user_base;
}

/// One step's measures. `server` is the process prefix whose CPU is the served side (`node`
/// or `bare`); the region's whole stack is every process but the generator.
fn step_of(offered: f64, r: &Report, cpu: &CpuUse, server: &str, stock: i64) -> Step {
    let server_s = cpu.seconds_of(server);
    let stack_s = cpu.seconds.values().sum::<f64>() - cpu.seconds_of("loadgen");
    let cores = cpu.cores();
    Step {
        offered,
        attempts_per_sec: r.attempts_per_sec,
        detail: json!({
            "offered_per_sec": offered, "attempts_per_sec": r.attempts_per_sec.round(),
            "attempts": r.attempts, "orders": r.orders, "stock": stock,
            "orders_per_sec": r.orders_per_sec.round(),
            "p50_ms": worst_region(r, false), "p99_ms": worst_region(r, true),
            "dropped_by_client": r.dropped_by_client,
            "server_cpu_s_per_1000": per_1000(server_s, r.attempts),
            "stack_cpu_s_per_1000": per_1000(stack_s, r.attempts),
            "loadgen_cpu_s_per_1000": per_1000(cpu.seconds_of("loadgen"), r.attempts),
            "loadgen_cores": cores.get("loadgen"), "cpu_cores": cores, "busiest": cpu.busiest(),
            "oversold": r.oversold, "lost_orders": r.lost_orders, "audit": r.audit,
        }),
    }
}

/// What a search found, as one row: capacity, the best step's cost and bound, and the safety
/// verdicts of every step (oversold: the worst; lost orders: the sum; audit: the first not ok).
fn row(name: &str, cap: &Capacity, bare_cpu: Option<f64>) -> Value {
    let best = &cap.best().detail;
    let steps: Vec<&Value> = cap.steps.iter().map(|s| &s.detail).collect();
    let all = |k: &str| -> Option<Vec<i64>> { steps.iter().map(|s| s[k].as_i64()).collect() };
    let audit = steps
        .iter()
        .map(|s| s["audit"].as_str().unwrap_or("missing"))
        .find(|a| *a != "ok" && *a != "skipped")
        .unwrap_or("ok");
    let server = best["server_cpu_s_per_1000"].as_f64();
    json!({
        "name": name,
        "capacity": cap.to_json(),
        "attempts_per_sec": best["attempts_per_sec"], "orders_per_sec": best["orders_per_sec"],
        "saturated": cap.saturated, "p99_ms": best["p99_ms"],
        "server_cpu_s_per_1000": server, "stack_cpu_s_per_1000": best["stack_cpu_s_per_1000"],
        "over_bare_cpu": server
            .zip(bare_cpu.filter(|b| *b > 0.0))
            .map(|(n, b)| (n / b * 100.0).round() / 100.0),
        "loadgen_cores": best["loadgen_cores"], "bound_by": best["busiest"],
        "oversold": all("oversold").map(|v| v.into_iter().max().unwrap_or(0)),
        "lost_orders": all("lost_orders").map(|v| v.into_iter().sum::<i64>()),
        "audit": audit,
    })
}

/// The bare endpoint's capacity and CPU per attempt.
async fn bare(k: &Knobs) -> anyhow::Result<Capacity> {
    let server = BareServer::start().await?;
    let procs = [("bare".to_string(), server.pid)];
    let (url, procs) = (&server.url, &procs);
    search(&k.plan, move |i, rate| async move {
        let target = RegionTarget {
            name: "east".into(),
            url: url.clone(),
        };
        let mut cfg = Config::new(1, vec![target]);
        step_config(&mut cfg, rate, k.secs, 1 + i as i64 * 10_000_000);
        let meter = Meter::start(procs);
        let r = sale::play(cfg).await?;
        Ok(step_of(rate, &r, &meter.stop(), "bare", 0))
    })
    .await
}

/// The node's sold-out rejection path (the path almost every flash-sale request takes).
async fn sold_out(k: &Knobs) -> anyhow::Result<Capacity> {
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
    let procs = region_procs(&c);
    let (c, procs) = (&c, &procs);
    search(&k.plan, move |i, rate| async move {
        let mut cfg = sale::config(c, 2000, None);
        step_config(&mut cfg, rate, k.secs, 10 + i as i64 * 10_000_000);
        let meter = Meter::start(procs);
        let r = sale::play(cfg).await?;
        Ok(step_of(rate, &r, &meter.stop(), "node", 0))
    })
    .await
}

/// One strategy's capacity: a fresh product of `offered × secs × WINNER_SHARE` units per step.
/// `secure`: TLS and passwords to etcd, Postgres and Redis (as every deployment and test);
/// `false` only for the baseline that measures their cost.
async fn variant(k: &Knobs, index: usize, args: &[&str], secure: bool) -> anyhow::Result<Capacity> {
    let builder = Cluster::builder(&["east"])
        .node_args(args)
        .node_args(&NO_LIMITS);
    let builder = if secure { builder } else { builder.insecure() };
    let c = builder.start().await;
    let procs = region_procs(&c);
    let (c, procs) = (&c, &procs);
    search(&k.plan, move |i, rate| async move {
        let product = 1000 + (index * 100 + i) as i64;
        let stock = ((rate * k.secs * WINNER_SHARE).round() as i64).max(10);
        sale::create(c, product, stock, &format!("east={stock}"), "static").await;
        let mut cfg = sale::config(c, product, None);
        step_config(&mut cfg, rate, k.secs, 1 + i as i64 * 10_000_000);
        let meter = Meter::start(procs);
        let r = sale::play(cfg).await?;
        Ok(step_of(rate, &r, &meter.stop(), "node", stock))
    })
    .await
}

/// Runs the scenario and prints its table.
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
    let k = knobs(quick);

    eprintln!("  bare axum endpoint (own process):");
    let bare_cap = bare(&k).await?;
    let bare_row = row("bare-axum", &bare_cap, None);
    let bare_cpu = bare_row["server_cpu_s_per_1000"].as_f64();
    eprintln!("  region node, sold-out product:");
    let sold_out_row = row("node-sold-out", &sold_out(&k).await?, bare_cpu);
    let mut rows = Vec::new();
    for (i, (name, strategy, isolation)) in variants.iter().enumerate() {
        eprintln!("  {name}:");
        let cap = variant(
            &k,
            i,
            &["--strategy", strategy, "--isolation", isolation],
            true,
        )
        .await?;
        let mut r = row(name, &cap, bare_cpu);
        r["strategy"] = json!(strategy);
        r["isolation"] = json!(isolation);
        rows.push(r);
    }
    // The cost of security on the hot path: the default strategy with Postgres and Redis in
    // plain text and no passwords, beside the same strategy secured (the rows above).
    eprintln!("  v3-redis without TLS (baseline):");
    let plain = variant(&k, variants.len(), &["--strategy", "v3"], false).await?;
    let mut r = row("v3-redis-plaintext", &plain, bare_cpu);
    r["strategy"] = json!("v3");
    r["tls"] = json!(false);
    rows.push(r);
    print_table(&rows, &sold_out_row, &bare_row);
    Ok(json!({
        "scenario": "strategies",
        "winner_share": WINNER_SHARE,
        "step_secs": k.secs,
        "variants": rows,
        "rejection_path": { "region_node_sold_out": sold_out_row, "bare_axum": bare_row },
    }))
}

fn print_table(rows: &[Value], sold_out: &Value, bare: &Value) {
    let base = rows[0]["attempts_per_sec"].as_f64().unwrap_or(1.0).max(1.0);
    println!(
        "\nstrategies — one region, 1 unit per {:.0} attempts, capacity found by raising the offered rate",
        1.0 / WINNER_SHARE
    );
    println!(
        "{:<30} {:>10} {:>6} {:>4} {:>8} {:>8} {:>11} {:>7} {:>9}  busiest at capacity",
        "variant",
        "attempts/s",
        "× v1",
        "sat",
        "orders/s",
        "p99 ms",
        "node CPU-s",
        "× bare",
        "generator"
    );
    println!(
        "{:<30} {:>10} {:>6} {:>4} {:>8} {:>8} {:>11} {:>7} {:>9}",
        "", "", "", "", "", "", "per 1,000", "", "cores"
    );
    for r in rows.iter().chain([sold_out, bare]) {
        let a = r["attempts_per_sec"].as_f64().unwrap_or(0.0);
        println!(
            "{:<30} {:>10.0} {:>5.1}× {:>4} {:>8} {:>8.1} {:>11} {:>7} {:>9}  {}",
            r["name"].as_str().unwrap_or(""),
            a,
            a / base,
            if r["saturated"].as_bool() == Some(true) {
                "yes"
            } else {
                "NO"
            },
            cell(r["orders_per_sec"].as_f64(), 0),
            r["p99_ms"].as_f64().unwrap_or(0.0),
            cell(r["server_cpu_s_per_1000"].as_f64(), 4),
            cell(r["over_bare_cpu"].as_f64(), 2),
            cell(r["loadgen_cores"].as_f64(), 2),
            r["bound_by"].as_str().unwrap_or("")
        );
    }
    println!(
        "sat NO: the search ended before the target stopped keeping up — a lower bound; if the\n\
         generator is the busiest process, it (not the node) was the limit."
    );
}
