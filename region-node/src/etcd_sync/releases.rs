//! Release requests received from the coordinator and not yet handled. Each is handled exactly
//! once ([`crate::release::handle`]) and the resulting `rel` published as `R`; a request that
//! fails (Redis being rebuilt, Postgres down) stays pending and is retried on the next tick.

use std::collections::HashMap;

use etcd_client::{Client, KeyValue};
use quota_shared::model::ReleaseRequest;

use super::error::SyncError;
use crate::release;
use crate::state::AppState;

/// The latest unhandled request per product.
#[derive(Debug, Default)]
pub(super) struct Pending(HashMap<i64, ReleaseRequest>);

impl Pending {
    /// Queues a `release-requests/{r}/{p}` value (an unreadable one is logged and ignored).
    pub(super) fn received(&mut self, product_id: i64, kv: &KeyValue) {
        match serde_json::from_slice::<ReleaseRequest>(kv.value()) {
            Ok(r) if !r.request_id.is_empty() && r.amount >= 0 => {
                self.0.insert(product_id, r);
            }
            _ => {
                let key = String::from_utf8_lossy(kv.key());
                tracing::error!(key = %key, "unreadable release request, ignored");
            }
        }
    }

    /// Units asked of `product_id` and not yet released (reported as `release_in_flight`).
    pub(super) fn amount(&self, product_id: i64) -> i64 {
        self.0.get(&product_id).map_or(0, |r| r.amount)
    }
}

/// Handles every pending release request it can, publishing `R` after each.
pub(super) async fn handle_releases(
    st: &AppState,
    client: &mut Client,
    pending: &mut Pending,
) -> Result<(), SyncError> {
    let ids: Vec<i64> = pending.0.keys().copied().collect();
    for product_id in ids {
        let req = pending.0[&product_id].clone();
        let handled = st.db.bounded(release::handle(st, product_id, &req)).await;
        match handled {
            Ok(_) => {
                release::publish_released_locally(st, client, product_id).await?;
                if pending.0.get(&product_id) == Some(&req) {
                    pending.0.remove(&product_id);
                }
            }
            Err(e) => tracing::warn!(product_id, error = %e, "release postponed"),
        }
    }
    Ok(())
}
