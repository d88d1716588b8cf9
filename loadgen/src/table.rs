//! The report as a plain-text table for people (stdout). Pure.

use std::fmt::Write;

use crate::quality::Quality;
use crate::report::Report;

fn opt<T: std::fmt::Display>(v: Option<T>) -> String {
    v.map_or_else(|| "n/a".to_string(), |v| v.to_string())
}

/// Renders `r` as the summary, the sale-quality block and the per-region tables.
pub fn render(r: &Report) -> String {
    let mut s = String::new();
    let w = &mut s;
    let _ = writeln!(w, "product {}: {:.2} s", r.product, r.duration_s);
    let _ = writeln!(
        w,
        "  attempts {:>9}  ({:.1}/s)   buyers {}   dropped by client {}",
        r.attempts, r.attempts_per_sec, r.buyers, r.dropped_by_client
    );
    let _ = writeln!(w, "  orders   {:>9}  ({:.1}/s)", r.orders, r.orders_per_sec);
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
    quality(w, &r.quality);
    let _ = writeln!(w);
    let _ = writeln!(
        w,
        "{:<10} {:>9} {:>7} {:>9} {:>9} {:>9}  requests by status (latency from intended send)",
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

/// The sale-quality block: one line per shared measure, then buyer latency per region.
fn quality(w: &mut String, q: &Quality) {
    let m = &q.measures;
    let sellout = match (m.sellout_s, q.stranded()) {
        (Some(t), _) => format!("{t:.2} s"),
        (None, Some(_)) => "not reached".to_string(),
        (None, None) => "n/a (no books)".to_string(),
    };
    let _ = writeln!(w);
    let _ = writeln!(w, "sale quality");
    let _ = writeln!(w, "  time to sell-out        {sellout}");
    let _ = writeln!(
        w,
        "  FCFS inversions         {} ({:.2} % of {} buyers)",
        m.fcfs_inversions, m.fcfs_inversion_pct, m.buyers
    );
    let _ = writeln!(w, "  stranded units          {}", opt(q.stranded()));
    let _ = writeln!(
        w,
        "  false 410s              {} ({:.2} % of answers)",
        m.false_sold_outs, m.false_sold_out_pct
    );
    let _ = writeln!(
        w,
        "  503 awaiting_stock      {} ({:.2} per order)",
        m.awaiting_answers, m.awaiting_per_order
    );
    let _ = writeln!(w, "  units moved             {}", opt(q.units_moved()));
    let writes = q.ledger_writes_per_s().map_or_else(
        || "n/a (no coordinator samples)".to_string(),
        |x| format!("{x:.1}"),
    );
    let _ = writeln!(w, "  ledger writes/s         {writes}");
    let _ = writeln!(
        w,
        "  {:<10} {:>8} {:>8} {:>10} {:>10}  buyer-perceived: arrival → final answer",
        "region", "buyers", "orders", "p50 ms", "p99 ms"
    );
    for x in &m.regions {
        let _ = writeln!(
            w,
            "  {:<10} {:>8} {:>8} {:>10.1} {:>10.1}",
            x.region, x.buyers, x.orders, x.p50_ms, x.p99_ms
        );
    }
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
        // A default report measured nothing: every measure without a source says so.
        assert!(t.contains("time to sell-out        n/a (no books)"), "{t}");
        assert!(t.contains("stranded units          n/a"));
        assert!(t.contains("units moved             n/a"));
        assert!(t.contains("FCFS inversions         0 (0.00 % of 0 buyers)"));
        assert!(t.contains("ledger writes/s         n/a"));
    }
}
