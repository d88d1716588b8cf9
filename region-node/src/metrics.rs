//! Prometheus metrics: the recorder, and the names every module records under ([`CATALOG`],
//! each with its `# HELP` text). Every series carries the node's `region` label. One quantity
//! per name, base units (seconds, units of stock), counters end in `_total`:
//!
//! * `quota_purchase_requests_total{outcome}` — every purchase answer, by error code or `created`;
//! * `quota_purchase_duration_seconds{outcome}` — latency histogram;
//! * `quota_stock_available_units`, `quota_stock_sold_units`, `quota_stock_applied_grant_units`
//!   (Postgres: `g − rel − sold`, `sold`, `g`) and `quota_stock_redis_units` (Redis' admission
//!   stock), each `{product_id}`, as the reconciler last read them (they were one `quota_stock`
//!   with a `kind` label, which summed different quantities);
//! * `quota_demand_per_second{product_id}` — the demand estimate the node reports;
//! * `quota_dependency_errors_total{dependency}` — Redis / Postgres / etcd failures;
//! * `quota_pg_pool_connections`, `quota_pg_pool_idle_connections`,
//!   `quota_pg_pool_max_connections` — the Postgres pool (was one gauge with a `state` label);
//! * `quota_reconcile_repairs_total{kind}` — Redis corrections (`drift`, `rebuild`) and
//!   `quota_reconcile_expired_tickets_total` (tickets expired: a count of tickets, not of
//!   repairs, so it has its own name);
//! * `quota_grants_applied_total`, `quota_rate_limited_total`, the group-commit metrics
//!   (`quota_group_commit_batch_size`, `_bisections_total`, `_queue_full_total`) and
//!   `quota_build_info{version, commit}`;
//! * the webhook outbox (`crate::outbox`): `quota_outbox_delivered_total`,
//!   `quota_outbox_failed_attempts_total`, `quota_outbox_dead_total` (this process's), and the
//!   region's backlog `quota_outbox_backlog_events` and
//!   `quota_outbox_oldest_undelivered_age_seconds`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// What kind of metric a name is (how it is described).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Counter,
    Gauge,
    Histogram,
}

/// Every metric the node exports, its kind and its `# HELP` text.
pub(crate) const CATALOG: &[(&str, Kind, &str)] = &[
    ("quota_build_info", Kind::Gauge, "Always 1; labels name the version (and commit) of this binary."),
    ("quota_purchase_requests_total", Kind::Counter, "Purchase requests answered, by outcome (created, or the error code answered)."),
    ("quota_purchase_duration_seconds", Kind::Histogram, "Time to answer a purchase request, in seconds, by outcome."),
    ("quota_stock_available_units", Kind::Gauge, "Units the region can still sell per Postgres (g - rel - sold), as the reconciler last read them."),
    ("quota_stock_sold_units", Kind::Gauge, "Units the region has sold per Postgres, as the reconciler last read them."),
    ("quota_stock_applied_grant_units", Kind::Gauge, "g: cumulative grants the region has applied per Postgres, as the reconciler last read them."),
    ("quota_stock_redis_units", Kind::Gauge, "Units Redis admits buyers against (the admission stock), as the reconciler last set or read it."),
    ("quota_demand_per_second", Kind::Gauge, "Purchase attempts per second this process sees (EWMA, waiting buyers included), as it reports them to the coordinator."),
    ("quota_dependency_errors_total", Kind::Counter, "Failed requests to a dependency, by dependency (redis, postgres, etcd: an etcd session that ended)."),
    ("quota_pg_pool_connections", Kind::Gauge, "Open connections in the Postgres pool."),
    ("quota_pg_pool_idle_connections", Kind::Gauge, "Idle connections in the Postgres pool."),
    ("quota_pg_pool_max_connections", Kind::Gauge, "Most connections the Postgres pool may open."),
    ("quota_reconcile_repairs_total", Kind::Counter, "Corrections the reconciler made to Redis, by kind (drift: stock differed from Postgres; rebuild: Redis had lost its state)."),
    ("quota_reconcile_expired_tickets_total", Kind::Counter, "In-flight purchase tickets the reconciler expired (their purchase never committed)."),
    ("quota_grants_applied_total", Kind::Counter, "Grants from the coordinator this process applied to Postgres."),
    ("quota_rate_limited_total", Kind::Counter, "Purchase requests refused by a rate limit (429)."),
    ("quota_group_commit_batch_size", Kind::Histogram, "Purchases per group-commit batch."),
    ("quota_group_commit_bisections_total", Kind::Counter, "Group-commit batches that rolled back and were split in two."),
    ("quota_group_commit_queue_full_total", Kind::Counter, "Purchases refused (503) because the product's group-commit queue was full."),
    ("quota_outbox_delivered_total", Kind::Counter, "Order events this process delivered to the webhook (a 2xx answer)."),
    ("quota_outbox_failed_attempts_total", Kind::Counter, "Webhook delivery attempts of this process that failed (an error, a timeout or a non-2xx answer)."),
    ("quota_outbox_dead_total", Kind::Counter, "Order events this process dead-lettered: out of attempts, or behind a dead event of the same order."),
    ("quota_outbox_backlog_events", Kind::Gauge, "Order events of the region neither delivered nor dead (the webhook backlog), as this process last read it."),
    ("quota_outbox_oldest_undelivered_age_seconds", Kind::Gauge, "Age of the oldest order event of the region neither delivered nor dead, in seconds (0 with none)."),
    ("quota_orders_closed_total", Kind::Counter, "Orders this process paid, cancelled or expired, by status (paid, cancelled, expired)."),
    ("quota_units_returned_total", Kind::Counter, "Units of cancelled and expired orders this process gave back to the region's stock."),
];

/// Latency buckets, seconds.
const DURATION_BUCKETS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
];

/// Batch-size buckets, purchases.
const BATCH_BUCKETS: &[f64] = &[
    1.0, 2.0, 4.0, 8.0, 16.0, 32.0, 64.0, 128.0, 256.0, 512.0, 1024.0,
];

fn builder(region: &str) -> PrometheusBuilder {
    PrometheusBuilder::new()
        .add_global_label("region", region)
        .set_buckets_for_metric(Matcher::Suffix("duration_seconds".into()), DURATION_BUCKETS)
        .expect("static buckets are valid")
        .set_buckets_for_metric(
            Matcher::Full("quota_group_commit_batch_size".into()),
            BATCH_BUCKETS,
        )
        .expect("static buckets are valid")
}

/// Installs the global recorder (once per process), every series labelled `region`, and
/// returns the handle `/metrics` renders.
pub fn install(region: &str) -> PrometheusHandle {
    let handle = builder(region)
        .install_recorder()
        .expect("metrics recorder installed twice");
    register();
    handle
}

/// Describes every metric of [`CATALOG`] and sets what exists before anything happens: build
/// info, and the counters alerts and dashboards watch at 0 for each label value they can take
/// (so a rate is defined, and the series are found, before the first event).
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
            metrics::gauge!("quota_build_info", "version" => version, "commit" => commit).set(1.0);
        }
        None => metrics::gauge!("quota_build_info", "version" => version).set(1.0),
    }
    for dependency in ["redis", "postgres", "etcd"] {
        metrics::counter!("quota_dependency_errors_total", "dependency" => dependency).absolute(0);
    }
    for kind in ["drift", "rebuild"] {
        metrics::counter!("quota_reconcile_repairs_total", "kind" => kind).absolute(0);
    }
    for name in [
        "quota_reconcile_expired_tickets_total",
        "quota_grants_applied_total",
        "quota_rate_limited_total",
        "quota_group_commit_bisections_total",
        "quota_group_commit_queue_full_total",
        "quota_outbox_delivered_total",
        "quota_outbox_failed_attempts_total",
        "quota_outbox_dead_total",
    ] {
        metrics::counter!(name).absolute(0);
    }
}

/// The request log: one line per answered request, method, path without its query, status and
/// latency ([`quota_shared::telemetry::log_request`]; no header is logged).
pub(crate) async fn request_log(
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    quota_shared::telemetry::log_request(
        method.as_str(),
        &path,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// The reconciler's view of one product's stock, each quantity under its own name.
pub(crate) fn stock(product_id: i64, available: i64, sold: i64, applied_grant: i64) {
    let p = [("product_id", product_id.to_string())];
    metrics::gauge!("quota_stock_available_units", &p).set(available as f64);
    metrics::gauge!("quota_stock_sold_units", &p).set(sold as f64);
    metrics::gauge!("quota_stock_applied_grant_units", &p).set(applied_grant as f64);
}

/// An order this process closed: counted by its new status; a cancelled or expired order's
/// units also count as returned.
pub(crate) fn order_closed(product_id: i64, status: &'static str, units: i64) {
    let p = product_id.to_string();
    metrics::counter!("quota_orders_closed_total", "product_id" => p.clone(), "status" => status)
        .increment(1);
    if status != "paid" {
        metrics::counter!("quota_units_returned_total", "product_id" => p)
            .increment(u64::try_from(units).unwrap_or(0));
    }
}

/// The units Redis admits against for one product.
pub(crate) fn redis_stock(product_id: i64, units: i64) {
    metrics::gauge!("quota_stock_redis_units", "product_id" => product_id.to_string())
        .set(units as f64);
}

/// One order event delivered.
pub(crate) fn outbox_delivered() {
    metrics::counter!("quota_outbox_delivered_total").increment(1);
}

/// One failed delivery attempt.
pub(crate) fn outbox_failed_attempt() {
    metrics::counter!("quota_outbox_failed_attempts_total").increment(1);
}

/// `events` order events dead-lettered.
pub(crate) fn outbox_dead(events: u64) {
    metrics::counter!("quota_outbox_dead_total").increment(events);
}

/// The region's webhook backlog: pending events and the oldest one's age.
pub(crate) fn outbox_backlog(pending: i64, oldest_age_s: f64) {
    metrics::gauge!("quota_outbox_backlog_events").set(pending as f64);
    metrics::gauge!("quota_outbox_oldest_undelivered_age_seconds").set(oldest_age_s);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Prometheus naming: `quota_` prefix, snake case, counters and only counters end in
    /// `_total`, no millisecond units, every name listed once with help text.
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
            assert!(help.len() > 10, "{name} needs help text");
        }
    }

    /// What the exporter renders: help, the region label on every series, each stock quantity
    /// under its own name, the counters at 0 before any event.
    #[test]
    fn the_rendered_text_has_help_region_and_one_quantity_per_name() {
        let recorder = builder("east").build_recorder();
        let handle = recorder.handle();
        metrics::with_local_recorder(&recorder, || {
            register();
            stock(1001, 7, 3, 10);
            redis_stock(1001, 6);
            metrics::histogram!("quota_group_commit_batch_size").record(3.0);
        });
        let text = handle.render();
        for needle in [
            "# HELP quota_stock_available_units ",
            "# TYPE quota_reconcile_repairs_total counter",
            "quota_stock_available_units{region=\"east\",product_id=\"1001\"} 7",
            "quota_stock_sold_units{region=\"east\",product_id=\"1001\"} 3",
            "quota_stock_applied_grant_units{region=\"east\",product_id=\"1001\"} 10",
            "quota_stock_redis_units{region=\"east\",product_id=\"1001\"} 6",
            "quota_dependency_errors_total{region=\"east\",dependency=\"redis\"} 0",
            "quota_group_commit_batch_size_bucket{region=\"east\",le=\"4\"} 1",
            "quota_build_info{region=\"east\",version=\"",
        ] {
            assert!(text.contains(needle), "{needle} missing from:\n{text}");
        }
        assert!(!text.contains("quota_stock{"), "{text}");
    }
}
