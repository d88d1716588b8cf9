//! The report as a plain-text table for people (stdout). Pure.

use std::fmt::Write;

use crate::report::Report;

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| v.to_string())
}

/// Renders `r` as the summary and per-region tables.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "product {}: {:.2} s", r.product, r.duration_s);
    let _ = writeln!(
        w,
        "  attempts {:>9}  ({:.1}/s)   buyers {}   dropped by client {}",
        r.attempts, r.attempts_per_sec, r.buyers, r.dropped_by_client
    );
    let _ = writeln!(
        w,
        "  orders   {:>9}  ({:.1}/s)   sell-out {}",
        r.orders,
        r.orders_per_sec,
        r.sellout_s
            .map_or_else(|| "not reached".to_string(), |t| format!("at {t:.2} s"))
    );
    let pct = r
        .false_sold_out_pct
        .map_or_else(String::new, |p| format!(" ({p:.2} % of answers)"));
    let _ = writeln!(
        w,
        "  stranded {}   false sold-outs {}{}",
        opt(r.stranded),
        opt(r.false_sold_outs),
        pct
    );
    let _ = writeln!(
        w,
        "  oversold {} (must be 0)   lost orders {} (must be 0)   audit: {}",
        opt(r.oversold),
        opt(r.lost_orders),
        r.audit
    );
    if r.unreadable_acks > 0 {
        let _ = writeln!(
            w,
            "  201s without a readable order id: {}",
            r.unreadable_acks
        );
    }
    for p in &r.problems {
        let _ = writeln!(w, "  problem: {p}");
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{:<10} {:>9} {:>7} {:>9} {:>9} {:>9}  requests by status",
        "region", "attempts", "orders", "p50 ms", "p99 ms", "p99.9 ms"
    );
    for (name, x) in &r.regions {
        let statuses: Vec<String> = x
            .statuses
            .iter()
            .map(|(k, v)| format!("{k}:{}", v.count))
            .collect();
        let _ = writeln!(
            w,
            "{:<10} {:>9} {:>7} {:>9.2} {:>9.2} {:>9.2}  {}",
            name,
            x.attempts,
            x.orders,
            x.p50_ms,
            x.p99_ms,
            x.p999_ms,
            statuses.join(" ")
        );
    }
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{:<10} {:<8} {:>9} {:>9} {:>9} {:>9}  (buyers by final answer, from arrival)",
        "region", "outcome", "buyers", "p50 ms", "p99 ms", "p99.9 ms"
    );
    for (name, x) in &r.regions {
        for (status, l) in &x.outcomes {
            let _ = writeln!(
                w,
                "{:<10} {:<8} {:>9} {:>9.2} {:>9.2} {:>9.2}",
                name, status, l.count, l.p50_ms, l.p99_ms, l.p999_ms
            );
        }
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::report::{Latency, RegionReport};

    #[test]
    fn renders_every_region_and_the_verdicts() {
        let mut r = Report {
            product: 3,
            attempts: 10,
            orders: 4,
            audit: "ok".into(),
            lost_orders: Some(0),
            ..Report::default()
        };
        let mut east = RegionReport {
            attempts: 10,
            orders: 4,
            ..RegionReport::default()
        };
        east.statuses.insert(
            "201".into(),
            Latency {
                count: 4,
                ..Latency::default()
            },
        );
        east.outcomes.insert("410".into(), Latency::default());
        r.regions.insert("east".into(), east);
        let t = render(&r);
        assert!(t.contains("product 3"));
        assert!(t.contains("audit: ok"));
        assert!(t.contains("lost orders 0"));
        assert!(t.contains("oversold n/a"));
        assert!(t.contains("201:4"));
        assert!(t
            .lines()
            .any(|l| l.starts_with("east") && l.contains("410")));
    }
}
