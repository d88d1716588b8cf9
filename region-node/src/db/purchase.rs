//! The purchase statements: the one-statement conditional update behind the Redis gate
//! (`quota_purchase`, also the group-commit fallback), and the two Redis-less benchmark
//! baselines (pessimistic row lock, optimistic version column).
//!
//! All of them are safe by the same argument: `sold` only grows through an update that
//! re-checks `granted − released − sold + returned` under the row lock (or the version compare), backed by
//! the CHECK constraint; `UNIQUE(user_id, product_id)` bounds buyers.

use rust_decimal::Decimal;

use super::error::DbError;
use super::orders::{insert_order, Inserted, NewOrder, Order, PurchaseOutcome};
use super::pool::Db;

impl Db {
    /// The purchase transaction of the Redis-gated paths (see
    /// `migrations/0002_purchase_fn.sql`): one statement, one round trip.
    pub(crate) async fn purchase_one_statement(
        &self,
        new: &NewOrder,
    ) -> Result<PurchaseOutcome, DbError> {
        let c = self.conn().await?;
        let stmt = c
            .prepare_cached(
                "SELECT outcome, order_id, quantity, price, status, created_at
                   FROM quota_purchase($1, $2, $3, $4, $5)",
            )
            .await?;
        let row = c
            .query_opt(
                &stmt,
                &[
                    &new.order_id,
                    &new.product_id,
                    &new.user_id,
                    &new.quantity,
                    &new.region,
                ],
            )
            .await?
            .ok_or_else(|| DbError::Other("quota_purchase returned no row".into()))?;
        let outcome: &str = row.get(0);
        Ok(match outcome {
            "created" => PurchaseOutcome::Created(Order::committed(
                new,
                row.get(1),
                row.get(2),
                row.get(3),
                row.get(4),
                row.get(5),
            )),
            "already_purchased" => PurchaseOutcome::AlreadyPurchased(row.get(1)),
            "not_active" => PurchaseOutcome::NotActive,
            other => return Err(DbError::Other(format!("unknown outcome {other:?}"))),
        })
    }

    /// Pessimistic: `SELECT … FOR UPDATE`, insert, update, commit. Every request holds the hot
    /// row lock for three round trips.
    pub(crate) async fn purchase_pessimistic(
        &self,
        new: &NewOrder,
    ) -> Result<PurchaseOutcome, DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT q.granted - q.released - q.sold + q.returned, p.price,
                        NOT p.ended AND now() >= p.start_time AND now() < p.end_time
                   FROM region_quota q JOIN products p USING (product_id)
                  WHERE q.product_id = $1 FOR UPDATE OF q",
                &[&new.product_id],
            )
            .await?
        else {
            return Ok(PurchaseOutcome::NotActive);
        };
        let (available, price, active): (i64, Decimal, bool) = (row.get(0), row.get(1), row.get(2));
        if !active {
            return Ok(PurchaseOutcome::NotActive);
        }
        if available < i64::from(new.quantity) {
            return Err(DbError::SoldOut);
        }
        let order = match self.insert_or_existing(&tx, new, price).await? {
            Ok(order) => order,
            Err(known) => return Ok(known),
        };
        tx.execute(
            "UPDATE region_quota SET sold = sold + $2, version = version + 1, updated_at = now()
              WHERE product_id = $1",
            &[&new.product_id, &i64::from(new.quantity)],
        )
        .await?;
        tx.commit().await?;
        Ok(PurchaseOutcome::Created(order))
    }

    /// Optimistic: unlocked read, then insert + `UPDATE … WHERE version = $v`. A lost race is
    /// `Retryable` (the caller's bounded backoff retries it).
    pub(crate) async fn purchase_optimistic(
        &self,
        new: &NewOrder,
    ) -> Result<PurchaseOutcome, DbError> {
        let mut c = self.conn().await?;
        let Some(row) = c
            .query_opt(
                "SELECT q.granted - q.released - q.sold + q.returned, q.version, p.price,
                        NOT p.ended AND now() >= p.start_time AND now() < p.end_time
                   FROM region_quota q JOIN products p USING (product_id)
                  WHERE q.product_id = $1",
                &[&new.product_id],
            )
            .await?
        else {
            return Ok(PurchaseOutcome::NotActive);
        };
        let (available, version, price, active): (i64, i64, Decimal, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !active {
            return Ok(PurchaseOutcome::NotActive);
        }
        if available < i64::from(new.quantity) {
            return Err(DbError::SoldOut);
        }
        let tx = c.transaction().await?;
        let order = match self.insert_or_existing(&tx, new, price).await? {
            Ok(order) => order,
            Err(known) => return Ok(known),
        };
        let n = tx
            .execute(
                "UPDATE region_quota SET sold = sold + $3, version = version + 1, updated_at = now()
                  WHERE product_id = $1 AND version = $2
                    AND granted - released - sold + returned >= $3",
                &[&new.product_id, &version, &i64::from(new.quantity)],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(DbError::Retryable("optimistic version conflict".into()));
        }
        tx.commit().await?;
        Ok(PurchaseOutcome::Created(order))
    }

    /// Inserts the order row; `Err` carries the final answer when this user already has an
    /// order (our own from an earlier attempt counts as created).
    async fn insert_or_existing(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        new: &NewOrder,
        price: Decimal,
    ) -> Result<Result<Order, PurchaseOutcome>, DbError> {
        Ok(match insert_order(tx, new, price).await? {
            Inserted::New(order) => Ok(order),
            Inserted::Existing(existing) if existing == new.order_id => {
                Err(self.own_earlier_order(existing).await?)
            }
            Inserted::Existing(existing) => Err(PurchaseOutcome::AlreadyPurchased(existing)),
        })
    }
}
