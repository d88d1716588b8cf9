//! The one-snapshot read behind the region's audit endpoint.

use super::error::DbError;
use super::pool::Db;
use super::quota::{read_in, QuotaRow};

/// A region's Postgres truth about one product, read in one snapshot.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AuditSnapshot {
    /// The quota row.
    pub(crate) quota: QuotaRow,
    /// Every buyer and the units they hold, by user id.
    pub(crate) buyers: Vec<(i64, i64)>,
}

impl Db {
    /// Reads the quota row and the orders in one REPEATABLE READ snapshot, so `sold` and the
    /// order totals are comparable. `None` when the product has no quota row.
    pub(crate) async fn audit(&self, product_id: i64) -> Result<Option<AuditSnapshot>, DbError> {
        let mut c = self.conn().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(quota) = read_in(&tx, product_id).await? else {
            return Ok(None);
        };
        let buyers: Vec<(i64, i64)> = tx
            .query(
                "SELECT user_id, quantity::BIGINT FROM orders WHERE product_id = $1 ORDER BY user_id",
                &[&product_id],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tx.commit().await?;
        Ok(Some(AuditSnapshot { quota, buyers }))
    }
}
