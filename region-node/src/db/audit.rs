//! The read behind the region's audit endpoint: the quota row, the orders and Redis, all
//! under the quota row lock, so nothing commits between them and every comparison is exact.

use quota_shared::reconcile::Ticket;

use super::error::DbError;
use super::quota::{LockedQuota, QuotaRow};

/// A region's Postgres truth about one product, read under its quota row lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditSnapshot {
    /// The quota row.
    pub(crate) quota: QuotaRow,
    /// Every buyer and the units they ordered, by user id (every order counts, whatever its
    /// status: a buyer who cancelled may not buy again).
    pub(crate) buyers: Vec<(i64, i64)>,
    /// Σ quantity of the cancelled and expired orders (what `returned` must equal).
    pub(crate) returned_units: i64,
}

impl LockedQuota<'_> {
    /// The quota row and every order, in one transaction holding the row lock: no purchase of
    /// the product commits meanwhile (a purchase inserts its order, then waits for this lock
    /// to move `sold`, and its uncommitted row is invisible here; an order closing waits for
    /// the same lock to raise `returned`), so `sold`, `returned` and the order totals are
    /// comparable.
    pub(crate) async fn audit(&self) -> Result<AuditSnapshot, DbError> {
        let mut buyers = self.buyers().await?;
        buyers.sort_unstable();
        let returned_units: i64 = self
            .tx
            .query_one(
                "SELECT COALESCE(SUM(quantity), 0)::BIGINT FROM orders
                  WHERE product_id = $1 AND status IN ('cancelled', 'expired')",
                &[&self.product_id],
            )
            .await?
            .get(0);
        Ok(AuditSnapshot {
            quota: self.row(),
            buyers,
            returned_units,
        })
    }

    /// Units of `tickets` whose purchase has *not* committed (no order row): what Redis
    /// holds in flight beyond `sold`.
    pub(crate) async fn uncommitted_units(&self, tickets: &[Ticket]) -> Result<i64, DbError> {
        if tickets.is_empty() {
            return Ok(0);
        }
        let committed = self.committed_tickets(tickets).await?;
        let done: i64 = committed.iter().map(|t| t.quantity).sum();
        Ok(tickets.iter().map(|t| t.quantity).sum::<i64>() - done)
    }
}
