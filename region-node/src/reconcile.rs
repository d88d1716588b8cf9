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

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use quota_shared::reconcile::{target_stock, Ticket};
use tokio_util::sync::CancellationToken;
use uuid::Uuid;

use crate::db::{DbError, QuotaRow};
use crate::server::AppState;
use crate::stock::{StockError, SyncResult};

/// A pass failed; the next one retries from scratch (every pass is idempotent).
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// Postgres failed.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed.
    #[error(transparent)]
    Stock(#[from] StockError),
}

impl From<tokio_postgres::Error> for ReconcileError {
    fn from(e: tokio_postgres::Error) -> Self {
        ReconcileError::Db(e.into())
    }
}

impl From<deadpool_postgres::PoolError> for ReconcileError {
    fn from(e: deadpool_postgres::PoolError) -> Self {
        ReconcileError::Db(e.into())
    }
}

/// The background task.
pub struct Reconciler {
    st: Arc<AppState>,
    every: Duration,
    ticket_expiry: Duration,
}

impl Reconciler {
    /// A reconciler for every product in the node's catalog.
    pub fn new(st: Arc<AppState>, every: Duration, ticket_expiry: Duration) -> Self {
        Reconciler {
            st,
            every,
            ticket_expiry,
        }
    }

    /// Runs passes until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(self.every) => {}
                _ = self.st.reconcile_now.notified() => {}
            }
            let mut ok = true;
            for product_id in self.st.catalog.ids() {
                if let Err(e) = self.pass(product_id).await {
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
    pub async fn pass(&self, product_id: i64) -> Result<(), ReconcileError> {
        let Some(entry) = self.st.catalog.get(product_id) else {
            return Ok(());
        };
        let mut conn = self.st.db.pool().get().await?;
        let tx = conn.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT granted, released, sold FROM region_quota WHERE product_id = $1 FOR UPDATE",
                &[&product_id],
            )
            .await?
        else {
            return Ok(());
        };
        let q = QuotaRow {
            granted: row.get(0),
            released: row.get(1),
            sold: row.get(2),
        };
        let available = q.available();
        *entry.last_quota.lock().expect("catalog lock poisoned") = Some(q);
        let p = product_id.to_string();
        metrics::gauge!("quota_stock", "product" => p.clone(), "kind" => "available")
            .set(available as f64);
        metrics::gauge!("quota_stock", "product" => p.clone(), "kind" => "sold").set(q.sold as f64);
        metrics::gauge!("quota_stock", "product" => p.clone(), "kind" => "granted")
            .set(q.granted as f64);

        match self.st.stock.snapshot(product_id).await? {
            None => {
                let buyers: Vec<(i64, i64)> = tx
                    .query(
                        "SELECT user_id, quantity::BIGINT FROM orders WHERE product_id = $1",
                        &[&product_id],
                    )
                    .await?
                    .iter()
                    .map(|r| (r.get(0), r.get(1)))
                    .collect();
                let local = entry.in_flight.load(Ordering::Relaxed).max(0);
                let stock = target_stock(available, local);
                if self.st.stock.rebuild(product_id, stock, &buyers).await? {
                    tracing::info!(
                        product_id,
                        stock,
                        buyers = buyers.len(),
                        "rebuilt Redis state"
                    );
                    metrics::counter!("quota_reconcile_repairs_total", "kind" => "rebuild")
                        .increment(1);
                    entry.observe_stock(stock);
                    entry.restocked_up_to(q.granted);
                    entry
                        .holding_seen
                        .store(q.granted - q.released, Ordering::Relaxed);
                    metrics::gauge!("quota_stock", "product" => p, "kind" => "redis")
                        .set(stock as f64);
                }
            }
            Some(tickets) => {
                let committed = if tickets.is_empty() {
                    Vec::new()
                } else {
                    committed_tickets(&tx, &tickets).await?
                };
                if let SyncResult::Synced {
                    old, new, expired, ..
                } = self
                    .st
                    .stock
                    .sync(product_id, available, self.ticket_expiry, &committed)
                    .await?
                {
                    let holding = q.granted - q.released;
                    let quota_moved =
                        entry.holding_seen.swap(holding, Ordering::Relaxed) != holding;
                    if old != new && !quota_moved {
                        tracing::debug!(product_id, old, new, "corrected Redis stock");
                        metrics::counter!("quota_reconcile_repairs_total", "kind" => "drift")
                            .increment(1);
                    }
                    if expired > 0 {
                        tracing::warn!(product_id, expired, "expired abandoned tickets");
                        metrics::counter!("quota_reconcile_repairs_total", "kind" => "expired")
                            .increment(expired as u64);
                    }
                    entry.observe_stock(new);
                    // Redis now reflects every grant this pass read.
                    entry.restocked_up_to(q.granted);
                    metrics::gauge!("quota_stock", "product" => p, "kind" => "redis")
                        .set(new as f64);
                }
            }
        }
        tx.commit().await?;
        Ok(())
    }
}

/// The tickets whose order row exists (committed purchases not yet forgotten by Redis).
async fn committed_tickets(
    tx: &deadpool_postgres::Transaction<'_>,
    tickets: &[Ticket],
) -> Result<Vec<Ticket>, ReconcileError> {
    let ids: Vec<Uuid> = tickets
        .iter()
        .filter_map(|t| Uuid::parse_str(&t.id).ok())
        .collect();
    let found: HashSet<Uuid> = tx
        .query(
            "SELECT order_id FROM orders WHERE order_id = ANY($1)",
            &[&ids],
        )
        .await?
        .iter()
        .map(|r| r.get(0))
        .collect();
    Ok(tickets
        .iter()
        .filter(|t| Uuid::parse_str(&t.id).is_ok_and(|u| found.contains(&u)))
        .cloned()
        .collect())
}
