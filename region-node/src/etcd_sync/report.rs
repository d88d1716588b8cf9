//! The region's report to the coordinator: per product, the quota row as last reconciled, the
//! demand estimate ([`quota_shared::demand`]) and the release asked but not yet handled,
//! published under this process's name on its heartbeat lease (so a dead process's reports
//! vanish with it, and several processes of one region never overwrite each other).

use std::collections::HashMap;
use std::time::Instant;

use etcd_client::{Client, PutOptions};
use quota_shared::demand::{with_waiting, DemandEstimate};
use quota_shared::keys;
use quota_shared::model::RegionReport;

use super::error::SyncError;
use super::releases::Pending;
use crate::state::AppState;

/// Who reports: this process, on its heartbeat lease.
pub(super) struct Reporter<'a> {
    /// The heartbeat lease (a dead process's reports vanish with it).
    pub(super) lease: i64,
    /// The process's name: each process of a region reports under its own key and the
    /// coordinator merges them (demand is the sum).
    pub(super) process: &'a str,
}

/// Publishes one report per product.
pub(super) async fn report(
    st: &AppState,
    client: &mut Client,
    to: &Reporter<'_>,
    pending: &Pending,
    demand: &mut HashMap<i64, DemandEstimate>,
) -> Result<(), SyncError> {
    let now = Instant::now();
    let at_ms = chrono::Utc::now().timestamp_millis();
    for product_id in st.catalog.ids() {
        let Some(entry) = st.catalog.get(product_id) else {
            continue;
        };
        let Some(q) = entry.quota() else { continue };
        let attempts = entry.attempts();
        let attempts_rate = demand
            .entry(product_id)
            .or_insert_with(|| DemandEstimate::new(attempts, now))
            .observe(attempts, now);
        let rate = with_waiting(attempts_rate, entry.waitroom().waiting());
        metrics::gauge!("quota_demand_per_second", "product_id" => product_id.to_string())
            .set(rate);
        let report = RegionReport {
            granted: q.applied_grant,
            released: q.released_locally,
            sold: q.sold,
            returned: q.returned,
            available: q.available(),
            demand: rate,
            release_in_flight: pending.amount(product_id),
            at_ms,
        };
        client
            .put(
                keys::region_report(&st.region, product_id, to.process),
                serde_json::to_string(&report).expect("serialisable"),
                Some(PutOptions::new().with_lease(to.lease)),
            )
            .await?;
    }
    Ok(())
}
