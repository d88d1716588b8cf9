//! Purchase strategies, selectable with `--strategy`, so benchmarks compare designs on the real
//! service path (same HTTP, validation, rate limits, catalog):
//!
//! * `v1` — pessimistic: one transaction, `SELECT … FOR UPDATE` on the quota row, order insert,
//!   update. No Redis. Every request holds the hot row lock for three round trips.
//! * `v2` — optimistic: read the row and its `version` without a lock, then insert the order
//!   and `UPDATE … WHERE version = $v`; a lost race is retried (≤ 3, exponential backoff with
//!   jitter). No Redis.
//! * `v3` (default) — Redis pre-decrement (fast fail) + the one-statement conditional update
//!   (`quota_purchase`).
//! * `v4` — v3 plus **group commit**: Redis winners queue per product and one transaction
//!   inserts a whole batch of orders with `UNNEST` and moves `sold` once ([`crate::batch`]).
//!
//! All four are safe by the same argument: `sold` only grows through an update that re-checks
//! `granted − released − sold` under the row lock (or the version compare), backed by the CHECK
//! constraint; `UNIQUE(user_id, product_id)` bounds buyers. `--isolation` sets the transaction
//! isolation level of every connection (read-committed, repeatable-read, serializable).

use std::str::FromStr;

use clap::ValueEnum;

use crate::db::{Db, DbError, Order, PurchaseOutcome};

/// Which purchase path the node runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Strategy {
    /// Pessimistic row lock, no Redis.
    V1,
    /// Optimistic version column, no Redis.
    V2,
    /// Redis pre-decrement + conditional update (default).
    #[default]
    V3,
    /// v3 + group commit of winners.
    V4,
}

impl Strategy {
    /// Whether the Redis admission filter is on the path.
    pub fn uses_redis(self) -> bool {
        matches!(self, Strategy::V3 | Strategy::V4)
    }
}

/// Transaction isolation for every connection of the pool.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// Postgres's default; what the purchase path is designed for.
    #[default]
    ReadCommitted,
    /// Concurrent updates of the quota row fail with a serialization error (retried).
    RepeatableRead,
    /// As repeatable read, plus predicate locking.
    Serializable,
}

impl Isolation {
    /// The value of `default_transaction_isolation`.
    pub fn pg_name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Isolation as ValueEnum>::from_str(s, true)
    }
}

/// The order row as inserted, or the existing order of this user (a retry of our own
/// committed insert counts as created).
async fn insert_order(
    tx: &deadpool_postgres::Transaction<'_>,
    order_id: uuid::Uuid,
    product_id: i64,
    user_id: i64,
    quantity: i32,
    region: &str,
    price: rust_decimal::Decimal,
) -> Result<Result<Order, uuid::Uuid>, DbError> {
    let row = tx
        .query_opt(
            "INSERT INTO orders (order_id, product_id, user_id, region, quantity, price, status)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending')
             ON CONFLICT ON CONSTRAINT orders_one_per_user DO NOTHING
             RETURNING status, created_at",
            &[&order_id, &product_id, &user_id, &region, &quantity, &price],
        )
        .await?;
    if let Some(r) = row {
        return Ok(Ok(Order {
            order_id,
            product_id,
            user_id,
            region: region.to_string(),
            quantity,
            price,
            status: r.get(0),
            created_at: r.get(1),
        }));
    }
    let existing: uuid::Uuid = tx
        .query_one(
            "SELECT order_id FROM orders WHERE user_id = $1 AND product_id = $2",
            &[&user_id, &product_id],
        )
        .await?
        .get(0);
    Ok(Err(existing))
}

impl Db {
    /// The purchase transaction of `strategy` (v4 batches winners first: [`crate::batch`]; a
    /// batch that cannot commit falls back to the v3 statement, which this also runs).
    pub async fn purchase_as(
        &self,
        strategy: Strategy,
        order_id: uuid::Uuid,
        product_id: i64,
        user_id: i64,
        quantity: i32,
        region: &str,
    ) -> Result<PurchaseOutcome, DbError> {
        match strategy {
            Strategy::V1 => {
                self.purchase_pessimistic(order_id, product_id, user_id, quantity, region)
                    .await
            }
            Strategy::V2 => {
                self.purchase_optimistic(order_id, product_id, user_id, quantity, region)
                    .await
            }
            Strategy::V3 | Strategy::V4 => {
                self.purchase(order_id, product_id, user_id, quantity, region)
                    .await
            }
        }
    }

    /// V1: `SELECT … FOR UPDATE`, insert, update, commit.
    pub async fn purchase_pessimistic(
        &self,
        order_id: uuid::Uuid,
        product_id: i64,
        user_id: i64,
        quantity: i32,
        region: &str,
    ) -> Result<PurchaseOutcome, DbError> {
        let mut c = self.pool().get().await?;
        let tx = c.transaction().await?;
        let Some(row) = tx
            .query_opt(
                "SELECT q.granted - q.released - q.sold, p.price,
                        now() >= p.start_time AND now() < p.end_time
                   FROM region_quota q JOIN products p USING (product_id)
                  WHERE q.product_id = $1 FOR UPDATE OF q",
                &[&product_id],
            )
            .await?
        else {
            return Ok(PurchaseOutcome::NotActive);
        };
        let (available, price, active): (i64, rust_decimal::Decimal, bool) =
            (row.get(0), row.get(1), row.get(2));
        if !active {
            return Ok(PurchaseOutcome::NotActive);
        }
        if available < i64::from(quantity) {
            return Err(DbError::SoldOut);
        }
        let order = match insert_order(&tx, order_id, product_id, user_id, quantity, region, price)
            .await?
        {
            Ok(o) => o,
            Err(existing) if existing == order_id => return self.existing(existing).await,
            Err(existing) => return Ok(PurchaseOutcome::AlreadyPurchased(existing)),
        };
        tx.execute(
            "UPDATE region_quota SET sold = sold + $2, version = version + 1, updated_at = now()
              WHERE product_id = $1",
            &[&product_id, &i64::from(quantity)],
        )
        .await?;
        tx.commit().await?;
        Ok(PurchaseOutcome::Created(order))
    }

    /// V2: unlocked read, then insert + `UPDATE … WHERE version = $v`. A lost race is
    /// `Retryable` (the caller's bounded backoff retries it).
    pub async fn purchase_optimistic(
        &self,
        order_id: uuid::Uuid,
        product_id: i64,
        user_id: i64,
        quantity: i32,
        region: &str,
    ) -> Result<PurchaseOutcome, DbError> {
        let mut c = self.pool().get().await?;
        let Some(row) = c
            .query_opt(
                "SELECT q.granted - q.released - q.sold, q.version, p.price,
                        now() >= p.start_time AND now() < p.end_time
                   FROM region_quota q JOIN products p USING (product_id)
                  WHERE q.product_id = $1",
                &[&product_id],
            )
            .await?
        else {
            return Ok(PurchaseOutcome::NotActive);
        };
        let (available, version, price, active): (i64, i64, rust_decimal::Decimal, bool) =
            (row.get(0), row.get(1), row.get(2), row.get(3));
        if !active {
            return Ok(PurchaseOutcome::NotActive);
        }
        if available < i64::from(quantity) {
            return Err(DbError::SoldOut);
        }
        let tx = c.transaction().await?;
        let order = match insert_order(&tx, order_id, product_id, user_id, quantity, region, price)
            .await?
        {
            Ok(o) => o,
            Err(existing) if existing == order_id => return self.existing(existing).await,
            Err(existing) => return Ok(PurchaseOutcome::AlreadyPurchased(existing)),
        };
        let n = tx
            .execute(
                "UPDATE region_quota SET sold = sold + $3, version = version + 1, updated_at = now()
                  WHERE product_id = $1 AND version = $2 AND granted - released - sold >= $3",
                &[&product_id, &version, &i64::from(quantity)],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(DbError::Retryable("optimistic version conflict".into()));
        }
        tx.commit().await?;
        Ok(PurchaseOutcome::Created(order))
    }

    /// Our own order committed by an earlier attempt.
    async fn existing(&self, order_id: uuid::Uuid) -> Result<PurchaseOutcome, DbError> {
        self.order(order_id)
            .await?
            .map(PurchaseOutcome::Created)
            .ok_or_else(|| DbError::Other("order vanished".into()))
    }
}
