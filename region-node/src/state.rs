//! [`AppState`]: what the handlers and the background tasks share. The bottom floor of the
//! crate's wiring: it names the parts and is imported by every task, and imports none of them
//! back (the node is wired in `crate::server`).

use std::sync::atomic::AtomicBool;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;

use crate::catalog::Catalog;
use crate::db::Db;
use crate::ratelimit::Limits;
use crate::stock::Stock;
use crate::strategy::Purchaser;

/// State shared by the handlers and the background tasks.
pub(crate) struct AppState {
    /// This region's name.
    pub(crate) region: String,
    /// Products this region sells.
    pub(crate) catalog: Catalog,
    /// Redis admission filter.
    pub(crate) stock: Stock,
    /// Postgres truth.
    pub(crate) db: Db,
    /// Rate limits.
    pub(crate) limits: Limits,
    /// Renders `/metrics`.
    pub(crate) metrics: PrometheusHandle,
    /// Pokes the reconciler to run a pass now.
    pub(crate) reconcile_now: Notify,
    /// Whether the etcd session is up (reported by `/readyz`).
    pub(crate) etcd_connected: AtomicBool,
    /// Fault injection for tests (`QUOTA_FAILPOINT`, see [`crate::failpoint`]). Unset in
    /// production.
    pub(crate) failpoint: Option<crate::failpoint::Failpoint>,
    /// The admin tokens of the region's admin endpoints (audit), each with its scope; empty
    /// disables them. See `crate::http::admin_tokens`.
    pub(crate) admin_tokens: quota_shared::admin_auth::AdminTokens,
    /// The purchase path, built once from `--strategy` (see [`crate::strategy`]).
    pub(crate) purchaser: Purchaser,
    /// Longest a buyer waits in line for stock on its way before hearing 503 awaiting_stock
    /// (zero: answer at once). See [`crate::waitroom`].
    pub(crate) await_stock: std::time::Duration,
    /// The proxies (`--trusted-proxies`) whose `X-Forwarded-For` names the client the per-IP
    /// rate limit keys on.
    pub(crate) trusted_proxies: crate::ratelimit::TrustedProxies,
    /// Seconds a buyer has to pay, unless the sale says (`--payment-window-s`).
    pub(crate) payment_window_s: i32,
}
