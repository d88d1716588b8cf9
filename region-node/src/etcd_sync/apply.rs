//! What each key the session reads means to this region, dispatched on the typed key
//! ([`Key`]): a product spec (upserted), movable stock (an availability event), a cumulative
//! grant `G` of this region (applied as `g := max(g, G)`), a release request to this region
//! (queued). Every other key is ignored.

use etcd_client::{Client, KeyValue};
use quota_shared::keys::{self, Key};
use quota_shared::model::{Movable, ProductSpec};
use quota_shared::region_steps;

use super::error::SyncError;
use super::releases::Pending;
use crate::db::CumulativeGrant;
use crate::state::AppState;

/// Applies one key read or watched.
pub(super) async fn apply(
    st: &AppState,
    client: &mut Client,
    kv: &KeyValue,
    pending: &mut Pending,
) -> Result<(), SyncError> {
    let mine = |r: &str| r == st.region;
    match Key::parse_bytes(kv.key()) {
        Some(Key::ProductSpec(_)) => apply_spec(st, kv).await,
        Some(Key::ProductMovable(product_id)) => {
            apply_movable(st, product_id, kv);
            Ok(())
        }
        Some(Key::Grant { region, product_id }) if mine(&region) => {
            apply_grant(st, client, product_id, kv).await
        }
        Some(Key::ReleaseRequest { region, product_id }) if mine(&region) => {
            pending.received(product_id, kv);
            Ok(())
        }
        _ => Ok(()),
    }
}

/// Applies a `products/{p}/spec` value.
async fn apply_spec(st: &AppState, kv: &KeyValue) -> Result<(), SyncError> {
    let key = String::from_utf8_lossy(kv.key());
    match serde_json::from_slice::<ProductSpec>(kv.value()) {
        Ok(spec) => match spec.validate() {
            Ok(()) => {
                st.db.upsert_product(&spec).await?;
                tracing::info!(product_id = spec.product_id, name = %spec.name, "product spec applied");
                st.catalog.upsert(spec);
                Ok(())
            }
            Err(e) => {
                tracing::error!(key = %key, error = %e, "invalid spec in etcd, ignored");
                Ok(())
            }
        },
        Err(e) => {
            tracing::error!(key = %key, error = %e, "unreadable spec in etcd, ignored");
            Ok(())
        }
    }
}

/// Applies a `products/{p}/movable` value (unreadable, or an unknown product: ignored).
fn apply_movable(st: &AppState, product_id: i64, kv: &KeyValue) {
    if let Ok(m) = serde_json::from_slice::<Movable>(kv.value()) {
        if let Some(entry) = st.catalog.get(product_id) {
            // Stamped with our own clock on arrival: freshness never compares two machines.
            let now_ms = chrono::Utc::now().timestamp_millis();
            entry.update(|a| a.movable_seen(m, now_ms));
        }
    }
}

/// Applies a `grants/{r}/{p}` value: `g := max(g, G)`, then pokes the reconciler so Redis
/// admits the new units within milliseconds.
async fn apply_grant(
    st: &AppState,
    client: &mut Client,
    product_id: i64,
    kv: &KeyValue,
) -> Result<(), SyncError> {
    let Some(grant) = CumulativeGrant::parse(kv.value()) else {
        let key = String::from_utf8_lossy(kv.key());
        tracing::error!(key = %key, "unreadable grant in etcd, ignored");
        return Ok(());
    };
    if st.catalog.get(product_id).is_none() {
        // The grant outran its spec (different watch streams): fetch the spec first.
        let resp = client.get(keys::product_spec(product_id), None).await?;
        match resp.kvs().first() {
            Some(spec_kv) => apply_spec(st, spec_kv).await?,
            None => {
                tracing::error!(product_id, "grant for a product with no spec, ignored");
                return Ok(());
            }
        }
        if st.catalog.get(product_id).is_none() {
            return Ok(());
        }
    }
    if let Some(e) = st.catalog.get(product_id) {
        // Set before the commit; cleared by the first reconciliation that reads it.
        e.grant_seen(grant);
    }
    let applied = st.db.apply_grant(product_id, grant).await?;
    let (before, after) = (applied.before, applied.after);
    // Postgres ran `g := GREATEST(g, G)`; the shared step is the same arithmetic.
    let step = region_steps::apply_grant(before, grant.units());
    if step.added() > 0 {
        debug_assert_eq!(after, step.after);
        metrics::counter!("quota_grants_applied_total").increment(1);
        tracing::info!(product_id, before, after, "grant applied");
        st.reconcile_now.notify_one();
    }
    Ok(())
}
