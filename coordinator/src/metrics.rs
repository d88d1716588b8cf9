//! The coordinator's Prometheus metrics, served at `GET /metrics` (no token, like `/readyz`:
//! counts and ledger numbers, nothing secret). Every name is one quantity, in base units
//! (seconds, units of stock), counters end in `_total`, and every metric has `# HELP` text
//! ([`CATALOG`], the one list of names and their help).
//!
//! Three sources:
//! * this process: leadership (`quota_coordinator_leader`, `_term`), the leader's rounds
//!   (duration, count, moves and units moved by direction), etcd errors
//!   (`quota_dependency_errors_total{dependency="etcd"}`), the last audit it ran per product;
//! * the ledger in etcd, read when scraped (so every instance, leader or standby, exports the
//!   same numbers, and `quotactl product show` agrees with them): per product the total, pool,
//!   sale window; per product and region `G`, `R` and the region's last report (`g`, `rel`,
//!   sold, available);
//! * the regions' registrations: alive, live processes, age of the latest report.
//!
//! Series of the last two are labelled `product_id` and `region`; a region that stops
//! reporting keeps its last reported values (and `quota_region_alive` 0 says why).

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use chrono::Utc;
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use quota_shared::policy::Move;

use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::snapshot::LedgerSnapshot;

/// What kind of metric a name is (how it is described).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// 1 while this instance leads.
pub(crate) const LEADER: &str = "quota_coordinator_leader";
/// The fence revision of the current term.
pub(crate) const TERM: &str = "quota_coordinator_term";
/// Rebalance round duration.
pub(crate) const ROUND_DURATION: &str = "quota_coordinator_round_duration_seconds";
/// Rebalance rounds run.
pub(crate) const ROUNDS: &str = "quota_coordinator_rounds_total";
/// Moves written.
pub(crate) const MOVES: &str = "quota_coordinator_moves_total";
/// Units those moves concern.
pub(crate) const UNITS_MOVED: &str = "quota_coordinator_units_moved_total";
/// Dependency errors (the region node exports the same name for Redis, Postgres and etcd).
pub(crate) const DEPENDENCY_ERRORS: &str = "quota_dependency_errors_total";
/// Last audit verdict per product.
pub(crate) const AUDIT_OK: &str = "quota_audit_last_ok";
/// When the last audit of a product completed.
pub(crate) const AUDIT_AT: &str = "quota_audit_last_timestamp_seconds";
/// Build info.
pub(crate) const BUILD_INFO: &str = "quota_build_info";
const TOTAL: &str = "quota_ledger_total_units";
const POOL: &str = "quota_ledger_pool_units";
const GRANTED: &str = "quota_ledger_granted_units";
const RELEASED: &str = "quota_ledger_released_units";
const REPORTED_APPLIED: &str = "quota_reported_applied_grant_units";
const REPORTED_RELEASED: &str = "quota_reported_released_units";
const REPORTED_SOLD: &str = "quota_reported_sold_units";
const REPORTED_AVAILABLE: &str = "quota_reported_available_units";
const SALE_START: &str = "quota_sale_start_timestamp_seconds";
const SALE_END: &str = "quota_sale_end_timestamp_seconds";
const SALE_ACTIVE: &str = "quota_sale_active";
const REGION_ALIVE: &str = "quota_region_alive";
const REGION_PROCESSES: &str = "quota_region_live_processes";
const REGION_REPORT_AGE: &str = "quota_region_report_age_seconds";
const REGION_DRAINING: &str = "quota_region_draining";

/// Every metric the coordinator exports, its kind and its `# HELP` text.
pub(crate) const CATALOG: &[(&str, Kind, &str)] = &[
    (BUILD_INFO, Kind::Gauge, "Always 1; labels name the version (and commit) of this binary."),
    (LEADER, Kind::Gauge, "1 while this instance leads (holds the election fence), else 0."),
    (TERM, Kind::Gauge, "The fence revision (etcd create revision of the election key) of the term this instance leads; 0 while it does not lead."),
    (ROUND_DURATION, Kind::Histogram, "Duration of the leader's rebalance rounds, one per product per period, in seconds."),
    (ROUNDS, Kind::Counter, "Rebalance rounds the leader ran, by outcome (ok, error)."),
    (MOVES, Kind::Counter, "Moves written by rebalance rounds, by direction (grant: pool to region; release: region asked to give units back)."),
    (UNITS_MOVED, Kind::Counter, "Units of stock those moves granted or asked back, by direction."),
    (DEPENDENCY_ERRORS, Kind::Counter, "Failed requests to a dependency (etcd for the coordinator), by dependency."),
    (AUDIT_OK, Kind::Gauge, "1 when the last conservation audit of the product this instance completed found no violation and read every region, else 0."),
    (AUDIT_AT, Kind::Gauge, "Unix time in seconds when this instance last completed an audit of the product (time() minus it is the audit's age)."),
    (TOTAL, Kind::Gauge, "Units the product sells in all (the ledger's total)."),
    (POOL, Kind::Gauge, "Units in the pool: total minus what every region holds (sum of G - R)."),
    (GRANTED, Kind::Gauge, "G: cumulative units the coordinator granted to the region (etcd)."),
    (RELEASED, Kind::Gauge, "R: cumulative units the region released and published back (etcd)."),
    (REPORTED_APPLIED, Kind::Gauge, "g: cumulative grants the region has applied, as it last reported (G - g is in transit to it)."),
    (REPORTED_RELEASED, Kind::Gauge, "rel: cumulative units the region released locally, as it last reported (rel - R is in transit to the pool)."),
    (REPORTED_SOLD, Kind::Gauge, "Units the region has sold, as it last reported."),
    (REPORTED_AVAILABLE, Kind::Gauge, "Units the region can still sell, as it last reported."),
    (SALE_START, Kind::Gauge, "Unix time in seconds when the product's sale window opens."),
    (SALE_END, Kind::Gauge, "Unix time in seconds when the product's sale window closes (moved to the end when the operator ends it early)."),
    (SALE_ACTIVE, Kind::Gauge, "1 while the sale window is open and the sale was not ended, else 0."),
    (REGION_ALIVE, Kind::Gauge, "1 while any node process of the region holds its heartbeat lease in etcd, else 0."),
    (REGION_PROCESSES, Kind::Gauge, "Node processes of the region whose heartbeat lease is alive."),
    (REGION_REPORT_AGE, Kind::Gauge, "Age in seconds of the region's latest report (any product)."),
    (REGION_DRAINING, Kind::Gauge, "1 while the operator drains the region (its units go back to the pool), else 0."),
];

/// Buckets of the round duration: a round is a few etcd round trips (milliseconds) and is
/// slow when etcd is.
const ROUND_BUCKETS: &[f64] = &[
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
];

/// How long a scrape waits for the ledger read before it answers with what it has.
const SCRAPE_READ: Duration = Duration::from_secs(3);

/// Installs the global recorder (once per process), describes every metric and sets the ones
/// that exist from the start; returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(Matcher::Full(ROUND_DURATION.into()), ROUND_BUCKETS)
        .expect("static buckets are valid")
        .install_recorder()
        .expect("metrics recorder installed twice");
    register();
    handle
}

/// Describes every metric of [`CATALOG`] and sets what exists before anything happens: build
/// info, leadership 0, and every counter at 0 for each label value it can take (so a rate is
/// defined, and alerts and dashboards find the series, before the first event).
fn register() {
    for (name, kind, help) in CATALOG {
        match kind {
            Kind::Counter => metrics::describe_counter!(*name, *help),
            Kind::Gauge => metrics::describe_gauge!(*name, *help),
            Kind::Histogram => metrics::describe_histogram!(*name, *help),
        }
    }
    let version = env!("CARGO_PKG_VERSION");
    match option_env!("QUOTA_GIT_COMMIT") {
        Some(commit) => {
            metrics::gauge!(BUILD_INFO, "version" => version, "commit" => commit).set(1.0);
        }
        None => metrics::gauge!(BUILD_INFO, "version" => version).set(1.0),
    }
    leading(None);
    for outcome in ["ok", "error"] {
        metrics::counter!(ROUNDS, "outcome" => outcome).absolute(0);
    }
    for direction in ["grant", "release"] {
        metrics::counter!(MOVES, "direction" => direction).absolute(0);
        metrics::counter!(UNITS_MOVED, "direction" => direction).absolute(0);
    }
    metrics::counter!(DEPENDENCY_ERRORS, "dependency" => "etcd").absolute(0);
}

/// The fence revision of the term this instance won last (0: none), kept for the scrape.
static TERM_WON: AtomicI64 = AtomicI64::new(0);

/// This instance won a term (`Some(fence revision)`) or does not lead (`None`).
pub(crate) fn leading(term: Option<i64>) {
    TERM_WON.store(term.unwrap_or(0), Ordering::Relaxed);
    set_leadership(term);
}

fn set_leadership(term: Option<i64>) {
    metrics::gauge!(LEADER).set(flag(term.is_some()));
    metrics::gauge!(TERM).set(term.unwrap_or(0) as f64);
}

/// One rebalance round ran for `took`.
pub(crate) fn round(took: Duration, ok: bool) {
    metrics::histogram!(ROUND_DURATION).record(took.as_secs_f64());
    let outcome = if ok { "ok" } else { "error" };
    metrics::counter!(ROUNDS, "outcome" => outcome).increment(1);
}

/// A round wrote these moves.
pub(crate) fn moved(moves: &[Move]) {
    for m in moves {
        let (direction, units) = match m {
            Move::Grant { units, .. } => ("grant", *units),
            Move::Release { units, .. } => ("release", *units),
        };
        metrics::counter!(MOVES, "direction" => direction).increment(1);
        metrics::counter!(UNITS_MOVED, "direction" => direction).increment(units.unsigned_abs());
    }
}

/// A request to etcd failed.
pub(crate) fn etcd_error() {
    metrics::counter!(DEPENDENCY_ERRORS, "dependency" => "etcd").increment(1);
}

/// This instance completed an audit of `product_id`: `ok` is its verdict.
pub(crate) fn audited(product_id: i64, ok: bool) {
    let p = product_id.to_string();
    metrics::gauge!(AUDIT_OK, "product_id" => p.clone()).set(if ok { 1.0 } else { 0.0 });
    metrics::gauge!(AUDIT_AT, "product_id" => p).set(unix_seconds(Utc::now()));
}

fn unix_seconds(t: chrono::DateTime<Utc>) -> f64 {
    t.timestamp_millis() as f64 / 1000.0
}

fn flag(b: bool) -> f64 {
    if b {
        1.0
    } else {
        0.0
    }
}

/// The text `/metrics` answers: leadership as the store says now, the ledger and regions read
/// from etcd (bounded by [`SCRAPE_READ`]; on failure the last values stay and the failure is
/// logged), then everything rendered.
pub(crate) async fn render(escrow: &Escrow, handle: &PrometheusHandle) -> String {
    // Whether this instance leads is the store's to say (it also drops the fence itself when
    // a write finds it lost), at every scrape; the term is the one it won last.
    let leads = escrow.store.is_leader();
    set_leadership(leads.then(|| TERM_WON.load(Ordering::Relaxed)));
    match tokio::time::timeout(SCRAPE_READ, read_ledger(escrow)).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(error = %e, "metrics: reading the ledger failed"),
        Err(_) => tracing::warn!("metrics: reading the ledger timed out"),
    }
    handle.render()
}

/// Sets the ledger and region gauges from etcd.
async fn read_ledger(escrow: &Escrow) -> Result<(), CoordError> {
    let now = Utc::now();
    let mut draining = std::collections::BTreeSet::new();
    for id in escrow.store.product_ids().await? {
        let snap = escrow.store.read(id).await?;
        ledger_gauges(&snap, now);
        draining.extend(snap.draining.iter().cloned());
    }
    for r in escrow.store.regions().await? {
        let region = [("region", r.region.clone())];
        metrics::gauge!(REGION_ALIVE, &region).set(flag(r.alive));
        metrics::gauge!(REGION_PROCESSES, &region).set(r.processes as f64);
        if let Some(age_ms) = r.last_report_ms {
            metrics::gauge!(REGION_REPORT_AGE, &region).set(age_ms as f64 / 1000.0);
        }
        metrics::gauge!(REGION_DRAINING, &region).set(flag(draining.contains(&r.region)));
    }
    Ok(())
}

/// One product's gauges from a snapshot.
fn ledger_gauges(snap: &LedgerSnapshot, now: chrono::DateTime<Utc>) {
    let p = snap.spec.product_id.to_string();
    let product = [("product_id", p.clone())];
    metrics::gauge!(TOTAL, &product).set(snap.ledger.total as f64);
    metrics::gauge!(POOL, &product).set(snap.pool() as f64);
    metrics::gauge!(SALE_START, &product).set(unix_seconds(snap.spec.start_time));
    metrics::gauge!(SALE_END, &product).set(unix_seconds(snap.spec.end_time));
    metrics::gauge!(SALE_ACTIVE, &product).set(flag(snap.spec.is_active(now)));
    for r in snap.regions() {
        let labels = [("product_id", p.clone()), ("region", r.clone())];
        metrics::gauge!(GRANTED, &labels).set(snap.grant(&r) as f64);
        metrics::gauge!(RELEASED, &labels).set(snap.published_release(&r) as f64);
        if let Some(rep) = snap.reports.get(&r) {
            metrics::gauge!(REPORTED_APPLIED, &labels).set(rep.granted as f64);
            metrics::gauge!(REPORTED_RELEASED, &labels).set(rep.released as f64);
            metrics::gauge!(REPORTED_SOLD, &labels).set(rep.sold as f64);
            metrics::gauge!(REPORTED_AVAILABLE, &labels).set(rep.available as f64);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus naming: `quota_` prefix, snake case, counters and only counters end in
    /// `_total`, no millisecond units, and every name listed once with help text.
    #[test]
    fn every_name_follows_the_naming_rules() {
        let mut seen = std::collections::BTreeSet::new();
        for (name, kind, help) in CATALOG {
            assert!(seen.insert(*name), "{name} listed twice");
            assert!(name.starts_with("quota_"), "{name}");
            assert!(
                name.chars()
                    .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_'),
                "{name}"
            );
            assert_eq!(*kind == Kind::Counter, name.ends_with("_total"), "{name}");
            assert!(!name.contains("_ms") && !name.contains("milli"), "{name}");
            if *kind == Kind::Histogram {
                assert!(name.ends_with("_seconds"), "{name}");
            }
            assert!(help.len() > 10, "{name} needs help text");
        }
    }

    /// What the exporter renders: help and type for every metric, the counters at 0 before any
    /// event, the moves by direction.
    #[test]
    fn the_rendered_text_has_help_and_the_counters_from_the_start() {
        let recorder = PrometheusBuilder::new()
            .set_buckets_for_metric(Matcher::Full(ROUND_DURATION.into()), ROUND_BUCKETS)
            .unwrap()
            .build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            register();
            leading(Some(42));
            round(Duration::from_millis(3), true);
            moved(&[
                Move::Grant {
                    region: "east".into(),
                    units: 5,
                },
                Move::Release {
                    region: "south".into(),
                    units: 2,
                },
                Move::Grant {
                    region: "south".into(),
                    units: 1,
                },
            ]);
            audited(1001, false);
        });
        let text = handle.render();
        for needle in [
            "# HELP quota_coordinator_leader ",
            "# TYPE quota_coordinator_rounds_total counter",
            "quota_coordinator_leader 1",
            "quota_coordinator_term 42",
            "quota_coordinator_moves_total{direction=\"grant\"} 2",
            "quota_coordinator_units_moved_total{direction=\"grant\"} 6",
            "quota_coordinator_units_moved_total{direction=\"release\"} 2",
            "quota_coordinator_rounds_total{outcome=\"error\"} 0",
            "quota_dependency_errors_total{dependency=\"etcd\"} 0",
            "quota_coordinator_round_duration_seconds_bucket{le=\"0.005\"} 1",
            "quota_audit_last_ok{product_id=\"1001\"} 0",
            "quota_build_info{version=\"",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
    }
}
