//! The region's link to the global ledger in etcd.
//!
//! One session: connect → register (`regions/{r}/info`) → leased heartbeat
//! (`regions/{r}/alive`) → full read of every product spec and of this region's grants →
//! watch both prefixes from the revision after the read. Any error (etcd down, watch cancelled
//! or compacted, lease lost) ends the session; the next one starts with a full re-read, so an
//! event missed while disconnected is never lost. Applying is idempotent (`g := max(g, G)`,
//! spec upsert), so reading the same event twice is harmless.
//!
//! While etcd is unreachable the region keeps selling what its Postgres says it holds; it just
//! receives no new quota.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use etcd_client::{
    Client, ConnectOptions, EventType, GetOptions, KeyValue, PutOptions, WatchOptions,
};
use quota_shared::keys;
use quota_shared::model::{ProductSpec, RegionInfo, RegionReport, ReleaseRequest};
use quota_shared::reconcile::grant_increment;
use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::release;
use crate::server::AppState;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub enum SyncError {
    /// etcd failed or is unreachable.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// Postgres failed while applying.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A watch ended (cancelled, compacted, stream closed): re-read everything.
    #[error("watch ended: {0}")]
    WatchEnded(String),
    /// The heartbeat lease expired.
    #[error("heartbeat lease lost")]
    LeaseLost,
    /// Publishing a release failed.
    #[error(transparent)]
    Release(#[from] release::ReleaseError),
}

/// How often the region reports to the coordinator and retries pending releases.
const REPORT_EVERY: Duration = Duration::from_millis(100);
/// Time constant of the demand EWMA: short enough to follow a demand shift within a second.
const DEMAND_TAU_S: f64 = 0.5;

/// Per-product demand estimate (purchase attempts per second, exponentially weighted).
struct Demand {
    last_attempts: u64,
    last_at: Instant,
    rate: f64,
}

/// The background task keeping the region in sync with etcd.
pub struct EtcdSync {
    st: Arc<AppState>,
    endpoints: Vec<String>,
    lease_ttl_s: i64,
    public_url: String,
}

impl EtcdSync {
    /// A syncer for the node's region.
    pub fn new(
        st: Arc<AppState>,
        endpoints: Vec<String>,
        lease_ttl_s: i64,
        public_url: String,
    ) -> Self {
        EtcdSync {
            st,
            endpoints,
            lease_ttl_s: lease_ttl_s.max(1),
            public_url,
        }
    }

    /// Runs sessions until shutdown, backing off between failed ones (0.2 s doubling to 3 s).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = self.session(&shutdown) => r,
            };
            self.st.etcd_connected.store(false, Ordering::Relaxed);
            match result {
                Ok(()) => return,
                Err(e) => {
                    metrics::counter!("quota_dependency_errors_total", "dependency" => "etcd")
                        .increment(1);
                    tracing::warn!(error = %e, retry_in = ?backoff, "etcd session ended");
                }
            }
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SyncError> {
        let region = self.st.region.clone();
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3))
            .with_keep_alive(Duration::from_secs(2), Duration::from_secs(2));
        let mut client = Client::connect(&self.endpoints, Some(opts)).await?;

        let info = RegionInfo {
            region: region.clone(),
            url: self.public_url.clone(),
        };
        let info_json = serde_json::to_string(&info).expect("serialisable");
        client
            .put(keys::region_info(&region), info_json, None)
            .await?;
        let lease = client.lease_grant(self.lease_ttl_s, None).await?.id();
        client
            .put(
                keys::region_alive(&region),
                self.public_url.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        let (mut keeper, mut keep_alive) = client.lease_keep_alive(lease).await?;

        // Full read, then watch from just after it.
        let specs = client
            .get(
                keys::products_prefix(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let specs_rev = specs.header().map(|h| h.revision()).unwrap_or(0);
        for kv in specs.kvs() {
            self.apply_spec_kv(kv).await?;
        }
        let grants = client
            .get(
                keys::grants_prefix(&region),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let grants_rev = grants.header().map(|h| h.revision()).unwrap_or(0);
        for kv in grants.kvs() {
            self.apply_grant_kv(&mut client, kv).await?;
        }
        // Releases: re-publish R from Postgres (a crash may have left it unpublished), then
        // pick up every outstanding request.
        for product_id in self.st.catalog.ids() {
            let v = release::released_in_pg(&self.st, product_id).await?;
            release::publish(&mut client, &region, product_id, &v).await?;
        }
        let mut pending: HashMap<i64, ReleaseRequest> = HashMap::new();
        let reqs = client
            .get(
                keys::release_requests_prefix(&region),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let reqs_rev = reqs.header().map(|h| h.revision()).unwrap_or(0);
        for kv in reqs.kvs() {
            if let Some((p, r)) = parse_release_request(kv) {
                pending.insert(p, r);
            }
        }
        let mut release_watch = client
            .watch(
                keys::release_requests_prefix(&region),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(reqs_rev + 1),
                ),
            )
            .await?;
        let mut spec_watch = client
            .watch(
                keys::products_prefix(),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(specs_rev + 1),
                ),
            )
            .await?;
        let mut grant_watch = client
            .watch(
                keys::grants_prefix(&region),
                Some(
                    WatchOptions::new()
                        .with_prefix()
                        .with_start_revision(grants_rev + 1),
                ),
            )
            .await?;
        self.st.etcd_connected.store(true, Ordering::Relaxed);
        tracing::info!(region, lease, "connected to etcd");

        let mut heartbeat =
            tokio::time::interval(Duration::from_millis((self.lease_ttl_s * 1000 / 3) as u64));
        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut demand: HashMap<i64, Demand> = HashMap::new();
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    // Tell the coordinator at once that this region is going away.
                    let _ = client.lease_revoke(lease).await;
                    return Ok(());
                }
                _ = heartbeat.tick() => {
                    keeper.keep_alive().await?;
                    match keep_alive.message().await? {
                        Some(r) if r.ttl() > 0 => {}
                        _ => return Err(SyncError::LeaseLost),
                    }
                }
                m = spec_watch.message() => {
                    let resp = m?.ok_or_else(|| SyncError::WatchEnded("spec stream closed".into()))?;
                    if resp.canceled() || resp.compact_revision() > 0 {
                        return Err(SyncError::WatchEnded(format!(
                            "spec watch cancelled: {}", resp.cancel_reason())));
                    }
                    for ev in resp.events() {
                        if let (EventType::Put, Some(kv)) = (ev.event_type(), ev.kv()) {
                            self.apply_spec_kv(kv).await?;
                        }
                    }
                }
                m = release_watch.message() => {
                    let resp = m?.ok_or_else(|| SyncError::WatchEnded("release stream closed".into()))?;
                    if resp.canceled() || resp.compact_revision() > 0 {
                        return Err(SyncError::WatchEnded(format!(
                            "release watch cancelled: {}", resp.cancel_reason())));
                    }
                    for ev in resp.events() {
                        if let (EventType::Put, Some(kv)) = (ev.event_type(), ev.kv()) {
                            if let Some((p, r)) = parse_release_request(kv) {
                                pending.insert(p, r);
                            }
                        }
                    }
                    self.handle_releases(&mut client, &mut pending).await?;
                }
                _ = tick.tick() => {
                    self.handle_releases(&mut client, &mut pending).await?;
                    self.report(&mut client, lease, &pending, &mut demand).await?;
                }
                m = grant_watch.message() => {
                    let resp = m?.ok_or_else(|| SyncError::WatchEnded("grant stream closed".into()))?;
                    if resp.canceled() || resp.compact_revision() > 0 {
                        return Err(SyncError::WatchEnded(format!(
                            "grant watch cancelled: {}", resp.cancel_reason())));
                    }
                    for ev in resp.events() {
                        if let (EventType::Put, Some(kv)) = (ev.event_type(), ev.kv()) {
                            self.apply_grant_kv(&mut client, kv).await?;
                        }
                    }
                }
            }
        }
    }

    /// Handles every pending release request it can; a request that fails (Redis being rebuilt,
    /// Postgres down) stays pending and is retried on the next tick.
    async fn handle_releases(
        &self,
        client: &mut Client,
        pending: &mut HashMap<i64, ReleaseRequest>,
    ) -> Result<(), SyncError> {
        let region = self.st.region.clone();
        let ids: Vec<i64> = pending.keys().copied().collect();
        for product_id in ids {
            let req = pending[&product_id].clone();
            match release::handle(&self.st, product_id, &req).await {
                Ok(_) => {
                    let v = release::released_in_pg(&self.st, product_id).await?;
                    release::publish(client, &region, product_id, &v).await?;
                    if pending.get(&product_id) == Some(&req) {
                        pending.remove(&product_id);
                    }
                }
                Err(e) => tracing::warn!(product_id, error = %e, "release postponed"),
            }
        }
        Ok(())
    }

    /// Publishes one report per product on the heartbeat lease (so a dead region's reports
    /// vanish with it).
    async fn report(
        &self,
        client: &mut Client,
        lease: i64,
        pending: &HashMap<i64, ReleaseRequest>,
        demand: &mut HashMap<i64, Demand>,
    ) -> Result<(), SyncError> {
        let now = Instant::now();
        let at_ms = chrono::Utc::now().timestamp_millis();
        for product_id in self.st.catalog.ids() {
            let Some(entry) = self.st.catalog.get(product_id) else {
                continue;
            };
            let Some(q) = entry.quota() else { continue };
            let attempts = entry.attempts.load(Ordering::Relaxed);
            let d = demand.entry(product_id).or_insert(Demand {
                last_attempts: attempts,
                last_at: now,
                rate: 0.0,
            });
            let dt = now.duration_since(d.last_at).as_secs_f64();
            if dt > 0.0 {
                let rate = (attempts - d.last_attempts) as f64 / dt;
                let alpha = 1.0 - (-dt / DEMAND_TAU_S).exp();
                d.rate += alpha * (rate - d.rate);
                d.last_attempts = attempts;
                d.last_at = now;
            }
            metrics::gauge!("quota_demand_per_second", "product" => product_id.to_string())
                .set(d.rate);
            let report = RegionReport {
                granted: q.granted,
                released: q.released,
                sold: q.sold,
                available: q.available(),
                demand: d.rate,
                release_in_flight: pending.get(&product_id).map(|r| r.amount).unwrap_or(0),
                at_ms,
            };
            client
                .put(
                    keys::region_report(&self.st.region, product_id),
                    serde_json::to_string(&report).expect("serialisable"),
                    Some(PutOptions::new().with_lease(lease)),
                )
                .await?;
        }
        Ok(())
    }

    /// Applies a `products/{p}/spec` value (other keys under the prefix are ignored).
    async fn apply_spec_kv(&self, kv: &KeyValue) -> Result<(), SyncError> {
        let key = String::from_utf8_lossy(kv.key());
        if key.ends_with("/movable") {
            if let (Some(p), Ok(m)) = (
                keys::product_id_from_key(&key),
                serde_json::from_slice::<quota_shared::model::Movable>(kv.value()),
            ) {
                if let Some(entry) = self.st.catalog.get(p) {
                    *entry.movable.lock().expect("catalog lock poisoned") = Some(m);
                }
            }
            return Ok(());
        }
        if !key.ends_with("/spec") {
            return Ok(());
        }
        match serde_json::from_slice::<ProductSpec>(kv.value()) {
            Ok(spec) if spec.validate().is_ok() => self.apply_spec(spec).await,
            Ok(spec) => {
                tracing::error!(key = %key, error = %spec.validate().unwrap_err(), "invalid spec in etcd, ignored");
                Ok(())
            }
            Err(e) => {
                tracing::error!(key = %key, error = %e, "unreadable spec in etcd, ignored");
                Ok(())
            }
        }
    }

    async fn apply_spec(&self, spec: ProductSpec) -> Result<(), SyncError> {
        self.st.db.upsert_product(&spec).await?;
        tracing::info!(product_id = spec.product_id, name = %spec.name, "product spec applied");
        self.st.catalog.upsert(spec);
        Ok(())
    }

    /// Applies a `grants/{r}/{p}` value: `g := max(g, G)`, then pokes the reconciler so Redis
    /// admits the new units within milliseconds.
    async fn apply_grant_kv(&self, client: &mut Client, kv: &KeyValue) -> Result<(), SyncError> {
        let key = String::from_utf8_lossy(kv.key()).into_owned();
        let Some(product_id) = keys::product_id_from_key(&key) else {
            return Ok(());
        };
        let Some(cumulative) = std::str::from_utf8(kv.value())
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|g| *g >= 0)
        else {
            tracing::error!(key, "unreadable grant in etcd, ignored");
            return Ok(());
        };
        if self.st.catalog.get(product_id).is_none() {
            // The grant outran its spec (different watch streams): fetch the spec first.
            let resp = client.get(keys::product_spec(product_id), None).await?;
            match resp.kvs().first() {
                Some(spec_kv) => self.apply_spec_kv(spec_kv).await?,
                None => {
                    tracing::error!(product_id, "grant for a product with no spec, ignored");
                    return Ok(());
                }
            }
            if self.st.catalog.get(product_id).is_none() {
                return Ok(());
            }
        }
        if let Some(e) = self.st.catalog.get(product_id) {
            let reconciled = e.quota().map(|q| q.granted).unwrap_or(0);
            if cumulative > reconciled {
                // Set before the commit; cleared by the first reconciliation that reads it.
                e.restock_target.fetch_max(cumulative, Ordering::Relaxed);
            }
        }
        let (before, after) = self.st.db.apply_grant(product_id, cumulative).await?;
        let added = grant_increment(before, cumulative);
        if added > 0 {
            debug_assert_eq!(after, before + added);
            metrics::counter!("quota_grants_applied_total").increment(1);
            tracing::info!(product_id, before, after, "grant applied");
            self.st.reconcile_now.notify_one();
        }
        Ok(())
    }
}

/// Parses a `release-requests/{r}/{p}` value.
fn parse_release_request(kv: &KeyValue) -> Option<(i64, ReleaseRequest)> {
    let key = String::from_utf8_lossy(kv.key());
    let product_id = keys::product_id_from_key(&key)?;
    match serde_json::from_slice::<ReleaseRequest>(kv.value()) {
        Ok(r) if !r.request_id.is_empty() && r.amount >= 0 => Some((product_id, r)),
        _ => {
            tracing::error!(key = %key, "unreadable release request, ignored");
            None
        }
    }
}
