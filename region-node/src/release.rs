//! Releases: giving unsold quota back to the pool, exactly once per request.
//!
//! Steps for a request `(id, amount)` on product `p`, in one Postgres transaction:
//!
//! 1. lock the quota row (`FOR UPDATE`): no purchase of `p` commits and no reconciliation runs
//!    until step 4;
//! 2. if `quota_releases` already has `id`, stop (already handled: exactly once);
//! 3. take up to `amount` tokens out of Redis (so no new buyer is admitted against them);
//! 4. record `id` and `rel += taken`, commit.
//!
//! Then publish `R := rel` to etcd ([`publish`], a compare-and-swap that never lowers `R`).
//!
//! Safety: Redis holds at most `available − uncommitted in-flight` tokens (reconciler
//! invariant), and `taken ≤` those tokens, so after step 4 every purchase already admitted can
//! still commit (`g − rel − sold ≥` what is in flight) and the CHECK constraint holds. A crash
//! after 3 but before 4 loses only Redis tokens, which the next reconciliation restores
//! (`available` did not change); the request is retried and handled then. A crash after 4 but
//! before the publish leaves `rel − R` units "in transit" — counted by the audit, never granted
//! twice — and every etcd session starts by re-publishing `R` from Postgres.

use etcd_client::{Client, Compare, CompareOp, Txn, TxnOp};
use quota_shared::keys;
use quota_shared::model::{ReleasePublished, ReleaseRequest};
use quota_shared::region_steps::{release_step, release_taken, ReleaseStep};

use crate::db::DbError;
use crate::failpoint::Failpoint;
use crate::state::AppState;
use crate::stock::StockError;

/// A release could not be handled now; it is retried.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReleaseError {
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed or is being rebuilt.
    #[error(transparent)]
    Stock(#[from] StockError),
    /// etcd failed while publishing.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
}

/// Handles one request (steps 1–4). Returns the units released locally now (`rel` grew by
/// that; 0 when already handled).
pub(crate) async fn handle(
    st: &AppState,
    product_id: i64,
    req: &ReleaseRequest,
) -> Result<i64, ReleaseError> {
    let mut conn = st.db.quota_conn().await?;
    let Some(locked) = conn.lock(product_id).await? else {
        return Ok(0);
    };
    if let Some(Failpoint::StallInRelease(pause)) = &st.failpoint {
        tracing::error!(?pause, "failpoint stall_in_release: holding the row lock");
        tokio::time::sleep(*pause).await;
    }
    let available = locked.row().available();
    let handled = locked.release_handled(&req.request_id).await?;
    let want = match release_step(handled, req.amount, available) {
        ReleaseStep::AlreadyHandled => {
            locked.commit().await?;
            return Ok(0);
        }
        ReleaseStep::Take(want) => want,
    };
    // Redis takes `min(want, its tokens)` atomically: the shared `release_taken` step.
    let taken = if want > 0 {
        release_taken(want, st.stock.take(product_id, want).await?)
    } else {
        0
    };
    locked
        .record_release(&req.request_id, req.amount.max(0), taken)
        .await?;
    locked.commit().await?;
    tracing::info!(product_id, request = %req.request_id, asked = req.amount, taken, "released");
    if matches!(st.failpoint, Some(Failpoint::CrashAfterReleaseCommit)) {
        tracing::error!("failpoint crash_after_release_commit: aborting");
        std::process::abort();
    }
    Ok(taken)
}

/// Publishes `R` (`value`, read from `rel` in Postgres) to etcd unless etcd already has it or
/// a newer snapshot ([`ReleasePublished::supersedes`]): a compare-and-swap on the key's
/// revision, so neither `R` nor the last request handled ever goes backwards, however
/// publishers race.
pub(crate) async fn publish(
    client: &mut Client,
    region: &str,
    product_id: i64,
    value: &ReleasePublished,
) -> Result<bool, ReleaseError> {
    let key = keys::region_release(region, product_id);
    for _ in 0..5 {
        let resp = client.get(key.clone(), None).await?;
        let (current, rev) = match resp.kvs().first() {
            Some(kv) => (
                serde_json::from_slice::<ReleasePublished>(kv.value()).unwrap_or_default(),
                kv.mod_revision(),
            ),
            None => (ReleasePublished::default(), 0),
        };
        if !value.supersedes(&current) {
            return Ok(false);
        }
        let cmp = if rev == 0 {
            Compare::create_revision(key.clone(), CompareOp::Equal, 0)
        } else {
            Compare::mod_revision(key.clone(), CompareOp::Equal, rev)
        };
        let json = serde_json::to_string(value).expect("serialisable");
        let txn = Txn::new()
            .when(vec![cmp])
            .and_then(vec![TxnOp::put(key.clone(), json, None)]);
        if client.txn(txn).await?.succeeded() {
            return Ok(true);
        }
    }
    Ok(false)
}

/// Re-reads `rel` from Postgres and publishes it as `R` (after a release, and at the start of
/// every etcd session: a crash may have left it unpublished).
pub(crate) async fn publish_released_locally(
    st: &AppState,
    client: &mut Client,
    product_id: i64,
) -> Result<bool, ReleaseError> {
    // Bounded: a read whose bytes a partition dropped would otherwise wait for ever, and with
    // it the whole etcd session (found by the nemesis: 115 units left "release in transit").
    let rel = st.db.bounded(st.db.released_locally(product_id)).await?;
    publish(client, &st.region, product_id, &rel).await
}
