//! The run's result: computed from what was recorded, sampled and verified. Pure.
//!
//! Serialised as-is to the `--json` file; [`crate::table`] renders it for people and
//! [`crate::svg`] charts its time series. Measures that need a source the run did not have
//! (no coordinator, no `--pg`) are `null`, never a reassuring 0.

use std::collections::BTreeMap;

use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::quality::{self, Quality};
use crate::recorder::Recorded;
use crate::retry::status_label;
use crate::series::{ClientBucket, Sample};
use crate::verify::Findings;

/// Latency percentiles of one group of requests or buyers, in milliseconds.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Latency {
    /// How many were measured.
    pub count: u64,
    /// Median.
    pub p50_ms: f64,
    /// 99th percentile.
    pub p99_ms: f64,
    /// 99.9th percentile.
    pub p999_ms: f64,
}

impl Latency {
    /// Percentiles of a microsecond histogram (all 0 when it is empty).
    pub fn of(h: &Histogram<u64>) -> Latency {
        let ms = |q: f64| {
            if h.is_empty() {
                0.0
            } else {
                h.value_at_quantile(q) as f64 / 1000.0
            }
        };
        Latency {
            count: h.len(),
            p50_ms: ms(0.50),
            p99_ms: ms(0.99),
            p999_ms: ms(0.999),
        }
    }
}

/// One region's share of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionReport {
    /// Requests answered (every try counts).
    pub attempts: u64,
    /// 201 answers.
    pub orders: u64,
    /// Buyers sent here.
    pub buyers: u64,
    /// Request latency, from intended send time to answer.
    pub p50_ms: f64,
    /// See `p50_ms`.
    pub p99_ms: f64,
    /// See `p50_ms`.
    pub p999_ms: f64,
    /// Requests by status (`201`, `410`, …, `error` = no answer): count and latency.
    pub statuses: BTreeMap<String, Latency>,
    /// Buyers by final answer: count and latency from arrival (retries included).
    pub outcomes: BTreeMap<String, Latency>,
}

/// The result of one run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// Product played.
    pub product: i64,
    /// Seconds from start until the last answer.
    pub duration_s: f64,
    /// Requests answered, all regions.
    pub attempts: u64,
    /// `attempts / duration_s`.
    pub attempts_per_sec: f64,
    /// Buyers launched (each a fresh user id).
    pub buyers: u64,
    /// 201 answers.
    pub orders: u64,
    /// `orders / duration_s`.
    pub orders_per_sec: f64,
    /// The sale's quality — sell-out time, FCFS inversions, stranded units, false sold-outs,
    /// awaiting-stock answers per order, buyer-perceived latency per region, units moved —
    /// as the project defines them once ([`quota_shared::quality`]).
    pub quality: Quality,
    /// Units sold beyond the total (must be 0); null with neither Postgres nor coordinator.
    pub oversold: Option<i64>,
    /// Acknowledged orders missing from Postgres (must be 0); null without `--pg`.
    pub lost_orders: Option<u64>,
    /// The coordinator audit: `ok`, what is wrong, or `skipped`.
    pub audit: String,
    /// Arrivals not sent because the concurrency cap was reached.
    pub dropped_by_client: u64,
    /// 201s whose body had no readable order id.
    pub unreadable_acks: u64,
    /// Verification problems in words (overspent region, unreadable Postgres, …).
    pub problems: Vec<String>,
    /// Per region.
    pub regions: BTreeMap<String, RegionReport>,
    /// Coordinator samples, in time order.
    pub series: Vec<Sample>,
    /// What the client saw per region, one entry per second of the run.
    pub client_series: BTreeMap<String, Vec<ClientBucket>>,
}

/// Everything the report is computed from.
#[derive(Debug, Clone)]
pub(crate) struct RunFacts {
    /// Product played.
    pub product: i64,
    /// Region names, in the order `recorded` uses.
    pub names: Vec<String>,
    /// Seconds from start until the last answer.
    pub duration_s: f64,
    /// What buyers saw.
    pub recorded: Recorded,
    /// Coordinator samples, the last one taken after the run.
    pub samples: Vec<Sample>,
    /// Postgres verification.
    pub findings: Findings,
    /// Audit verdict.
    pub audit: String,
}

fn per_sec(n: u64, secs: f64) -> f64 {
    if secs > 0.0 {
        n as f64 / secs
    } else {
        0.0
    }
}

/// Computes the report.
pub(crate) fn build(f: RunFacts) -> Report {
    let r = &f.recorded;
    let mut regions = BTreeMap::new();
    let mut client_series = BTreeMap::new();
    for (i, (name, rec)) in f.names.iter().zip(&r.regions).enumerate() {
        let all = Latency::of(&rec.requests);
        let group = |m: &BTreeMap<u16, Histogram<u64>>| -> BTreeMap<String, Latency> {
            m.iter()
                .map(|(s, h)| (status_label(*s), Latency::of(h)))
                .collect()
        };
        let region = RegionReport {
            attempts: all.count,
            orders: rec.by_status.get(&201).map_or(0, Histogram::len),
            buyers: rec.by_outcome.values().map(Histogram::len).sum(),
            p50_ms: all.p50_ms,
            p99_ms: all.p99_ms,
            p999_ms: all.p999_ms,
            statuses: group(&rec.by_status),
            outcomes: group(&rec.by_outcome),
        };
        regions.insert(name.clone(), region);
        let buckets = r.buckets.iter().map(|second| second[i].clone()).collect();
        client_series.insert(name.clone(), buckets);
    }
    let attempts = regions.values().map(|x| x.attempts).sum();
    let orders = regions.values().map(|x| x.orders).sum();
    let quality = quality::measure(&f.names, r, f.findings.books, &f.samples, f.duration_s);
    Report {
        product: f.product,
        duration_s: f.duration_s,
        attempts,
        attempts_per_sec: per_sec(attempts, f.duration_s),
        buyers: regions.values().map(|x| x.buyers).sum(),
        orders,
        orders_per_sec: per_sec(orders, f.duration_s),
        quality,
        oversold: f.findings.oversold,
        lost_orders: f.findings.lost_orders,
        audit: f.audit,
        dropped_by_client: r.dropped_by_client,
        unreadable_acks: r.regions.iter().map(|x| x.unreadable_acks).sum(),
        problems: f.findings.problems,
        regions,
        series: f.samples,
        client_series,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::recorder::tests::try_at;
    use crate::recorder::Recorder;
    use std::time::Instant;

    #[test]
    fn percentiles_of_a_known_distribution() {
        let mut h = crate::recorder::new_histogram();
        for us in 1..=10_000u64 {
            h.record(us * 100).unwrap(); // 0.1 ms … 1000 ms, uniform
        }
        let l = Latency::of(&h);
        assert_eq!(l.count, 10_000);
        let close = |a: f64, b: f64| (a - b).abs() / b < 0.002;
        assert!(close(l.p50_ms, 500.0), "{}", l.p50_ms);
        assert!(close(l.p99_ms, 990.0), "{}", l.p99_ms);
        assert!(close(l.p999_ms, 999.0), "{}", l.p999_ms);
        assert_eq!(
            Latency::of(&crate::recorder::new_histogram()),
            Latency::default()
        );
    }

    #[test]
    fn builds_totals_rates_and_regions() {
        let t0 = Instant::now();
        let rec = Recorder::new(t0, 2);
        for i in 0..3 {
            let ok = try_at(t0, 0, 201, 2 + 100 * i, 2);
            rec.request(&ok, Some(format!("o{i}")));
            rec.outcome(&ok, ok.sent, 1);
        }
        rec.request(&try_at(t0, 1, 503, 400, 1), None);
        let gone = try_at(t0, 1, 410, 1900, 1);
        rec.request(&gone, None);
        rec.outcome(
            &gone,
            gone.answered - std::time::Duration::from_millis(60),
            2,
        );
        let facts = RunFacts {
            product: 9,
            names: vec!["east".into(), "south".into()],
            duration_s: 2.0,
            recorded: rec.finish(),
            samples: vec![],
            findings: Findings::default(),
            audit: "skipped".into(),
        };
        let r = build(facts);
        assert_eq!(r.attempts, 5);
        assert_eq!(r.orders, 3);
        assert_eq!(r.buyers, 4);
        assert_eq!(r.attempts_per_sec, 2.5);
        assert_eq!(r.orders_per_sec, 1.5);
        assert_eq!(r.quality.measures.sellout_s, None, "no books");
        assert_eq!(r.quality.stranded(), None);
        assert_eq!(
            r.quality.measures.false_sold_outs, 0,
            "the 410 came after the last sale"
        );
        assert_eq!(r.quality.measures.buyers, r.buyers);
        assert_eq!(r.quality.measures.awaiting_answers, 1);
        assert_eq!(r.regions["east"].orders, 3);
        assert_eq!(r.regions["south"].statuses["503"].count, 1);
        assert!((r.regions["south"].outcomes["410"].p50_ms - 60.0).abs() < 0.1);
        assert_eq!(r.client_series["south"].len(), 2);
        let json = serde_json::to_value(&r).unwrap();
        assert!(json["quality"]["stranded"].is_null());
        assert_eq!(json["quality"]["orders"], 3);
        assert_eq!(json["regions"]["east"]["attempts"], 3);
    }
}
