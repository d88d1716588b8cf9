//! `scale`: one region (v3 and v4), offered load doubling each step; per step the CPU of each
//! process shows where the bottleneck is.

use quota_tests::Cluster;
use serde_json::{json, Value};

use super::{region_procs, NO_LIMITS};
use crate::cpu::Meter;
use crate::sale;

/// Runs the scenario and prints its table.
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
            let r = sale::play(cfg).await?;
            let cpu = meter.stop();
            let east = &r.regions["east"];
            rows.push(json!({
                "strategy": strategy, "offered_per_sec": rate, "attempts_per_sec": r.attempts_per_sec.round(),
                "orders": r.orders, "p50_ms": east.p50_ms, "p99_ms": east.p99_ms, "p999_ms": east.p999_ms,
                "dropped_by_client": r.dropped_by_client, "oversold": r.oversold, "cpu_cores": cpu.cores(),
                "bottleneck": cpu.busiest(),
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
