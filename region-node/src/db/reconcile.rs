//! What a reconciliation pass reads while it holds the quota row lock (the pass itself is
//! `crate::reconcile`).

use std::collections::HashSet;

use quota_shared::reconcile::Ticket;
use uuid::Uuid;

use super::error::DbError;
use super::quota::LockedQuota;

impl LockedQuota<'_> {
    /// The tickets whose order row exists (committed purchases not yet forgotten by Redis).
    pub(crate) async fn committed_tickets(
        &self,
        tickets: &[Ticket],
    ) -> Result<Vec<Ticket>, DbError> {
        let ids: Vec<Uuid> = tickets
            .iter()
            .filter_map(|t| Uuid::parse_str(&t.id).ok())
            .collect();
        let found: HashSet<Uuid> = self
            .tx
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

    /// Every buyer of the product and the units they hold (to rebuild Redis's buyer set).
    pub(crate) async fn buyers(&self) -> Result<Vec<(i64, i64)>, DbError> {
        Ok(self
            .tx
            .query(
                "SELECT user_id, quantity::BIGINT FROM orders WHERE product_id = $1",
                &[&self.product_id],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect())
    }
}
