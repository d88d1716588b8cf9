//! `GET /v1/admin/status`: every product's ledger next to what each region last reported,
//! from etcd alone (no region is asked), so it answers even while regions are down.

use std::collections::BTreeMap;

use chrono::Utc;
use quota_shared::wire::{ProductStatus, RegionStatus, StatusView};

use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::snapshot::LedgerSnapshot;

/// One region's status line for a product: `G` and `R` from the ledger, `g`, sold and
/// available from the region's report (None while it does not report).
fn region_status(snap: &LedgerSnapshot, r: &str) -> RegionStatus {
    let g_total = snap.grant(r);
    let released = snap.published_release(r);
    let rep = snap.reports.get(r);
    RegionStatus {
        granted: g_total,
        applied: rep.map(|x| x.granted),
        released,
        sold: rep.map(|x| x.sold),
        available: rep.map(|x| x.available),
        in_transit: rep.map(|x| (g_total - x.granted) + (x.released - released)),
        demand: rep.map_or(0.0, |x| x.demand),
        alive: snap.alive.contains(r),
        draining: snap.draining.contains(r),
    }
}

/// One product's status.
fn product_status(snap: &LedgerSnapshot) -> ProductStatus {
    let regions: BTreeMap<String, RegionStatus> = snap
        .regions()
        .into_iter()
        .map(|r| {
            let line = region_status(snap, &r);
            (r, line)
        })
        .collect();
    ProductStatus {
        product_id: snap.spec.product_id,
        name: snap.spec.name.clone(),
        total: snap.ledger.total,
        pool: snap.pool(),
        policy: snap.ledger.policy,
        active: snap.spec.is_active(Utc::now()),
        coordinator_writes: snap.coordinator_writes,
        regions,
    }
}

impl Escrow {
    /// Status of every product (or just `only`).
    pub(crate) async fn status(&self, only: Option<i64>) -> Result<StatusView, CoordError> {
        let mut products = Vec::new();
        for id in self.product_ids(only).await? {
            products.push(product_status(&self.store.read(id).await?));
        }
        Ok(StatusView {
            leader: self.store.leader_id().await?,
            products,
        })
    }
}
