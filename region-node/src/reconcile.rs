//! The reconciler: re-derives each product's Redis state from Postgres every period (default
//! 100 ms), and at once when poked (a grant was applied, Redis said "not ready", Postgres
//! refused what Redis admitted).
//!
//! One pass for product `p`, inside one Postgres transaction:
//!
//! 1. `SELECT granted, released, sold … FOR UPDATE` — takes the quota row lock, so no purchase
//!    of `p` can commit until the pass ends (they queue for a millisecond or two);
//! 2. read Redis's in-flight tickets; ask Postgres which of them already have an order
//!    (committed, so already in `sold`);
//! 3. one Redis script: drop the committed tickets, expire abandoned ones, and set
//!    `stock := max(0, available − Σ uncommitted in-flight)`.
//!
//! Because nothing can commit between 1 and 3, `available` is exact at the moment of the write,
//! and every ticket Redis still holds is either in `sold` (dropped in 3) or not yet committed
//! (subtracted): Redis never admits more than Postgres can accept. If Redis lost its state, the
//! pass rebuilds it instead: buyers from the orders table, stock minus this process's own
//! in-flight units (which a flushed Redis no longer knows).

use std::sync::Arc;
use std::time::Duration;

use quota_shared::reconcile::target_stock;
use tokio_util::sync::CancellationToken;

use crate::catalog::ProductEntry;
use crate::db::{DbError, LockedQuota, QuotaRow};
use crate::state::AppState;
use crate::stock::{StockError, SyncResult};

/// A pass failed; the next one retries from scratch (every pass is idempotent).
#[derive(Debug, thiserror::Error)]
pub(crate) enum ReconcileError {
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Stock(#[from] StockError),
}

/// The background task.
pub(crate) struct Reconciler {
    st: Arc<AppState>,
    every: Duration,
    ticket_expiry: Duration,
}

impl Reconciler {
    /// A reconciler for every product in the node's catalog.
    pub(crate) fn new(st: Arc<AppState>, every: Duration, ticket_expiry: Duration) -> Self {
        Reconciler {
            st,
            every,
            ticket_expiry,
        }
    }

    /// Runs passes until shutdown.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
                () = self.st.reconcile_now.notified() => {}
            }
            let mut ok = true;
            for product_id in self.st.catalog.ids() {
                let result = self.st.db.bounded(self.pass(product_id)).await;
                if let Err(e) = result {
                    ok = false;
                    if !failing {
                        tracing::warn!(product_id, error = %e, "reconciliation failed");
                    }
                }
            }
            if ok && failing {
                tracing::info!("reconciliation recovered");
            }
            failing = !ok;
        }
    }

    /// One pass for one product (see the module docs).
    pub(crate) async fn pass(&self, product_id: i64) -> Result<(), ReconcileError> {
        let Some(entry) = self.st.catalog.get(product_id) else {
            return Ok(());
        };
        let mut conn = self.st.db.quota_conn().await?;
        let Some(locked) = conn.lock(product_id).await? else {
            return Ok(());
        };
        let q = locked.row();
        entry.quota_read(q);
        crate::metrics::stock(product_id, q.available(), q.sold, q.applied_grant);

        match self.st.stock.snapshot(product_id).await? {
            None => self.rebuild(&entry, &locked, q).await?,
            Some(tickets) => {
                let committed = if tickets.is_empty() {
                    Vec::new()
                } else {
                    locked.committed_tickets(&tickets).await?
                };
                if let SyncResult::Synced {
                    old, new, expired, ..
                } = self
                    .st
                    .stock
                    .sync(product_id, q.available(), self.ticket_expiry, &committed)
                    .await?
                {
                    let quota_moved = entry.holding_changed(q.holding());
                    if old != new && !quota_moved {
                        tracing::debug!(product_id, old, new, "corrected Redis stock");
                        metrics::counter!("quota_reconcile_repairs_total", "kind" => "drift")
                            .increment(1);
                    }
                    if expired > 0 {
                        tracing::warn!(product_id, expired, "expired abandoned tickets");
                        metrics::counter!("quota_reconcile_expired_tickets_total")
                            .increment(expired.unsigned_abs());
                    }
                    // Redis now reflects every grant this pass read.
                    entry.update(|a| a.reconciled(q.applied_grant, new));
                    crate::metrics::redis_stock(product_id, new);
                }
            }
        }
        locked.commit().await?;
        Ok(())
    }

    /// Redis lost its state: rebuild it from Postgres (buyers from the orders table, stock
    /// minus this process's own in-flight units, which a flushed Redis no longer knows).
    async fn rebuild(
        &self,
        entry: &ProductEntry,
        locked: &LockedQuota<'_>,
        q: QuotaRow,
    ) -> Result<(), ReconcileError> {
        let buyers = locked.buyers().await?;
        let local = entry.in_flight().max(0);
        let stock = target_stock(q.available(), local);
        let product_id = locked.product_id();
        if self.st.stock.rebuild(product_id, stock, &buyers).await? {
            tracing::info!(
                product_id,
                stock,
                buyers = buyers.len(),
                "rebuilt Redis state"
            );
            metrics::counter!("quota_reconcile_repairs_total", "kind" => "rebuild").increment(1);
            entry.update(|a| a.reconciled(q.applied_grant, stock));
            entry.holding_changed(q.holding());
            crate::metrics::redis_stock(product_id, stock);
        }
        Ok(())
    }
}
