//! Prometheus metrics: the recorder, and the names every module records under.
//!
//! * `quota_purchase_requests_total{outcome}` — every purchase answer, by error code or `created`;
//! * `quota_purchase_duration_seconds{outcome}` — latency histogram;
//! * `quota_stock{product,kind}` — `available` (Postgres), `redis`, `sold`, `granted`;
//! * `quota_dependency_errors_total{dependency}` — Redis / Postgres / etcd failures;
//! * `quota_pg_pool_connections{state}` — pool size and idle connections;
//! * `quota_reconcile_repairs_total{kind}` — Redis corrections (`drift`, `rebuild`, `expired`);
//! * `quota_grants_applied_total`, `quota_rate_limited_total`.

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

/// Installs the global recorder (once per process) and returns the handle `/metrics` renders.
pub fn install() -> PrometheusHandle {
    PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Suffix("duration_seconds".into()),
            &[
                0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0,
            ],
        )
        .expect("static buckets are valid")
        .install_recorder()
        .expect("metrics recorder installed twice")
}
