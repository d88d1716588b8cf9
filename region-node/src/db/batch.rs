//! The group-commit batch transaction (the worker that forms batches, and what it does when a
//! batch fails, is `crate::batch`).
//!
//! Insert every order (`ON CONFLICT (user_id, product_id) DO NOTHING`), then
//! `UPDATE … SET sold = sold + Σ inserted WHERE granted − released − sold + returned ≥ Σ
//! inserted`. If that finds too little (Redis was ahead of Postgres), the transaction rolls back and nothing is
//! committed — so a batch can never sell more than the row allows.
//!
//! Every answer is decided *inside* the transaction, before `COMMIT` (the conflicting buyers'
//! orders are read there too), so nothing can fail after the commit: an `Err` means the
//! transaction did not commit — except [`DbError::ConnectionLost`], which means its outcome is
//! unknown (the connection died, perhaps with the `COMMIT`'s answer on its way back).

use std::collections::HashMap;

use rust_decimal::Decimal;
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::DbError;
use super::orders::{NewOrder, Order, PurchaseOutcome};
use super::pool::Db;

impl Db {
    /// Commits `orders` (all of `product_id`, sold by `region`) in one transaction; one outcome
    /// per order, in order. `Err` means nothing was committed, except `ConnectionLost` (unknown).
    /// [`DbError::Unavailable`] from the pool means nothing was even sent.
    pub(crate) async fn commit_batch(
        &self,
        product_id: i64,
        region: &str,
        orders: &[NewOrder],
    ) -> Result<Vec<PurchaseOutcome>, DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(p) = tx
            .query_opt(
                "SELECT price, NOT ended AND now() >= start_time AND now() < end_time FROM products
                  WHERE product_id = $1",
                &[&product_id],
            )
            .await?
        else {
            return Ok(orders.iter().map(|_| PurchaseOutcome::NotActive).collect());
        };
        let (price, active): (Decimal, bool) = (p.get(0), p.get(1));
        if !active {
            return Ok(orders.iter().map(|_| PurchaseOutcome::NotActive).collect());
        }
        let ids: Vec<Uuid> = orders.iter().map(|o| o.order_id).collect();
        let users: Vec<i64> = orders.iter().map(|o| o.user_id).collect();
        let qtys: Vec<i32> = orders.iter().map(|o| o.quantity).collect();
        let inserted = tx
            .query(
                "INSERT INTO orders (order_id, product_id, user_id, region, quantity, price, status)
                 SELECT o, $1, u, $2, q, $3, 'pending'
                   FROM UNNEST($4::uuid[], $5::bigint[], $6::int[]) AS t(o, u, q)
                 ON CONFLICT ON CONSTRAINT orders_one_per_user DO NOTHING
                 RETURNING order_id, quantity, status, created_at",
                &[&product_id, &region, &price, &ids, &users, &qtys],
            )
            .await?;
        let units: i64 = inserted.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum();
        if units > 0 {
            let n = tx
                .execute(
                    "UPDATE region_quota SET sold = sold + $2, updated_at = now()
                      WHERE product_id = $1 AND granted - released - sold + returned >= $2",
                    &[&product_id, &units],
                )
                .await?;
            if n == 0 {
                // Nothing of this transaction can commit now, whatever ROLLBACK answers (a lost
                // connection rolls it back too), so the answer is "sold out", never "unknown".
                let _ = tx.rollback().await;
                return Err(DbError::SoldOut);
            }
        }
        let mut created: HashMap<Uuid, Order> = HashMap::new();
        for r in &inserted {
            let order_id: Uuid = r.get(0);
            let new = orders
                .iter()
                .find(|o| o.order_id == order_id)
                .expect("inserted one of ours");
            created.insert(
                order_id,
                Order::committed(new, order_id, r.get(1), price, r.get(2), r.get(3)),
            );
        }
        // Conflicting buyers: their existing order (our own, from an earlier attempt whose
        // answer was lost, or another), read before COMMIT so that nothing fails after it.
        let losers: Vec<i64> = orders
            .iter()
            .filter(|o| !created.contains_key(&o.order_id))
            .map(|o| o.user_id)
            .collect();
        let existing: Vec<Row> = if losers.is_empty() {
            Vec::new()
        } else {
            tx.query(
                "SELECT user_id, order_id, quantity, price, status, created_at FROM orders
                  WHERE product_id = $1 AND user_id = ANY($2)",
                &[&product_id, &losers],
            )
            .await?
        };
        let existing: HashMap<i64, &Row> = existing.iter().map(|r| (r.get(0), r)).collect();
        let mut out = Vec::with_capacity(orders.len());
        for o in orders {
            if let Some(order) = created.remove(&o.order_id) {
                out.push(PurchaseOutcome::Created(order));
                continue;
            }
            let Some(r) = existing.get(&o.user_id) else {
                // Dropping `tx` rolls the batch back.
                return Err(DbError::Other("conflict without an existing order".into()));
            };
            let id: Uuid = r.get(1);
            out.push(if id == o.order_id {
                // Our own order, committed by an earlier attempt: a retry of it counts as created.
                PurchaseOutcome::Created(Order::committed(
                    o,
                    id,
                    r.get(2),
                    r.get(3),
                    r.get(4),
                    r.get(5),
                ))
            } else {
                PurchaseOutcome::AlreadyPurchased(id)
            });
        }
        tx.commit().await?;
        Ok(out)
    }
}
