//! Human output: one table printer per answer, and [`emit`], which prints JSON instead when
//! asked.

use quota_shared::policy::Move;
use quota_shared::wire::{AuditReport, ProductView, RegionView, RoundView, StatusView};

/// A product: spec, window, total and pool, and each region's `G`, `R`, holdings.
pub(crate) fn print_product(p: &ProductView) {
    let s = &p.spec;
    println!(
        "product {}  {:?}  price {} (list {})  limit {}/user  policy {}",
        s.product_id, s.name, s.price, s.original_price, s.per_user_limit, p.policy
    );
    println!(
        "window  {} → {}{}",
        s.start_time.to_rfc3339(),
        s.end_time.to_rfc3339(),
        if s.ended {
            "  (ended by the operator)"
        } else {
            ""
        }
    );
    if !s.home_regions.is_empty() {
        println!(
            "home regions  {}  (each buyer buys only in one of them)",
            s.home_regions.join(", ")
        );
    }
    println!("total {}  pool {}", p.total, p.pool);
    if !p.regions.is_empty() {
        println!(
            "{:<12} {:>10} {:>10} {:>10}",
            "REGION", "GRANTED", "RELEASED", "HOLDS"
        );
        for (r, sh) in &p.regions {
            println!(
                "{r:<12} {:>10} {:>10} {:>10}",
                sh.granted, sh.released, sh.holds
            );
        }
    }
}

/// A round's moves, then the product after it.
pub(crate) fn print_round(r: &RoundView) {
    if r.moves.is_empty() {
        println!("no moves");
    }
    for m in &r.moves {
        match m {
            Move::Grant { region, units } => {
                println!("grant   {units:>8} → {region}");
            }
            Move::Release { region, units } => {
                println!("release {units:>8} ← {region}");
            }
        }
    }
    print_product(&r.product);
}

/// Every region, its liveness and report age.
pub(crate) fn print_regions(rs: &[RegionView]) {
    println!(
        "{:<12} {:<6} {:>9} {:>12}  URL",
        "REGION", "ALIVE", "PROCESSES", "REPORT AGE"
    );
    for r in rs {
        let age = r
            .last_report_ms
            .map_or_else(|| "-".into(), |a| format!("{a} ms"));
        println!(
            "{:<12} {:<6} {:>9} {:>12}  {}",
            r.region,
            if r.alive { "yes" } else { "no" },
            r.processes,
            age,
            r.url
        );
    }
}

/// An optional number, or "-".
fn opt(v: Option<i64>) -> String {
    v.map_or_else(|| "-".into(), |v| v.to_string())
}

/// The leader, then per product and region the ledger next to the region's report.
pub(crate) fn print_status(s: &StatusView) {
    println!(
        "leader: {}",
        s.leader.as_deref().unwrap_or("(none elected)")
    );
    for p in &s.products {
        println!(
            "\nproduct {} {:?}  total {}  pool {}  policy {}  {}",
            p.product_id,
            p.name,
            p.total,
            p.pool,
            p.policy,
            if p.active { "on sale" } else { "not on sale" }
        );
        println!(
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9} {:>6}",
            "REGION",
            "GRANTED",
            "APPLIED",
            "RELEASED",
            "SOLD",
            "AVAILABLE",
            "IN TRANSIT",
            "DEMAND/s",
            "ALIVE"
        );
        for (r, x) in &p.regions {
            println!(
                "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9.1} {:>6}",
                r,
                x.granted,
                opt(x.applied),
                x.released,
                opt(x.sold),
                opt(x.available),
                opt(x.in_transit),
                x.demand,
                if x.draining {
                    "drain"
                } else if x.alive {
                    "yes"
                } else {
                    "no"
                }
            );
        }
    }
}

/// Each product's terms and violations, then the overall verdict.
pub(crate) fn print_audit(a: &AuditReport) {
    for p in &a.products {
        println!(
            "product {}: total {} = pool {} + Σ(sold + available + in transit)  [sold {}]  {}",
            p.product_id,
            p.total,
            p.pool,
            p.sold,
            if p.ok { "OK" } else { "FAILED" }
        );
        println!(
            "  {:<10} {:>6} {:>9} {:>9} {:>10} {:>6} {:>6} {:>7} {:>6}",
            "REGION", "SOLD", "AVAILABLE", "G-g", "rel-R", "ORDERS", "UNITS", "REDIS", "DRIFT"
        );
        for (r, x) in &p.regions {
            println!(
                "  {:<10} {:>6} {:>9} {:>9} {:>10} {:>6} {:>6} {:>7} {:>6}",
                r,
                x.sold,
                x.available,
                x.grant_in_transit,
                x.release_in_transit,
                x.order_count,
                x.order_units,
                opt(x.redis_stock),
                opt(x.redis_drift)
            );
        }
        for v in &p.violations {
            println!("  VIOLATION: {v}");
        }
        for u in &p.unreadable {
            println!("  UNREADABLE: {u}");
        }
    }
    println!(
        "audit: {}",
        if a.ok {
            "ok"
        } else if !a.unreadable.is_empty() {
            "incomplete (a region could not be read)"
        } else {
            "FAILED"
        }
    );
}

/// Prints `v` as pretty JSON with `--json`, else as `human` prints it.
pub(crate) fn emit<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce(&T)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
    } else {
        human(v);
    }
}
