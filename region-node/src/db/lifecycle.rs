//! An order's changes after the click — pay, cancel, expire — each one transaction that locks
//! the order row first. The database does the rest in the same transaction (migration 0006):
//! its trigger refuses any change but `pending → paid | cancelled | expired`, gives the units of
//! a cancelled or expired order back (`region_quota.returned`) and writes the event to the
//! outbox. So a unit comes back exactly once however the changes race (two sweepers, a cancel
//! during a sweep, a payment at the deadline): whichever commits first moves the order out of
//! `pending`, and every other finds it no longer pending, under the same row lock.
//!
//! A pending order whose payment window has passed is expired by whichever of them meets it
//! first — the sweep, or a payment or cancel arriving late — so a late payment is refused with
//! the order's true status even when the sweep has not run yet.

use quota_shared::order::{check_amount, OrderStatus};
use quota_shared::wire::RegionSaleReport;
use rust_decimal::Decimal;
use tokio_postgres::error::SqlState;
use uuid::Uuid;

use super::error::DbError;
use super::orders::{Order, ORDER_COLS};
use super::pool::Db;

/// Who closes an order (recorded in `orders.closed_by`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Closer {
    /// The buyer, who may close only their own order.
    Buyer(i64),
    /// An operator (or the coordinator on one's behalf), who may close any.
    Operator,
}

impl Closer {
    fn column(self) -> &'static str {
        match self {
            Closer::Buyer(_) => "buyer",
            Closer::Operator => "operator",
        }
    }
}

/// What a payment did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum PayOutcome {
    /// The order is paid now.
    Paid(Order),
    /// This payment reference paid this order before: nothing changed (a payment system's
    /// retry).
    Replayed(Order),
    /// No such order here.
    UnknownOrder,
    /// The order is not pending (paid with another reference, cancelled, or expired — maybe
    /// just now, its payment window having passed).
    NotPending(OrderStatus),
    /// The amount is not what the order costs (`due`).
    WrongAmount {
        /// Unit price × quantity.
        due: Decimal,
    },
    /// The payment reference already paid another order.
    RefUsed,
}

/// What a cancellation did.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum CancelOutcome {
    /// The order is cancelled and its units are back on sale.
    Cancelled(Order),
    /// No such order here (or, for a buyer, not theirs: the same answer, so that an order id
    /// cannot be probed).
    UnknownOrder,
    /// The order is not pending.
    NotPending(OrderStatus),
}

/// The order row's state, read under its lock.
struct Locked {
    status: OrderStatus,
    user_id: i64,
    payment_ref: Option<String>,
    due: Decimal,
    overdue: bool,
}

/// Locks the order row; `None` when there is none. `overdue`: its payment window has passed
/// (the sale's, else `default_window_s`), by the database's clock.
const LOCK_ORDER: &str = "SELECT o.status, o.user_id, o.payment_ref, o.price * o.quantity,
        o.created_at
            + make_interval(secs => COALESCE(p.payment_window_s, $2::INTEGER)::FLOAT8) <= now()
   FROM orders o JOIN products p USING (product_id)
  WHERE o.order_id = $1
    FOR UPDATE OF o";

async fn lock(
    tx: &deadpool_postgres::Transaction<'_>,
    order_id: Uuid,
    default_window_s: i32,
) -> Result<Option<Locked>, DbError> {
    let Some(r) = tx
        .query_opt(LOCK_ORDER, &[&order_id, &default_window_s])
        .await?
    else {
        return Ok(None);
    };
    let status: &str = r.get(0);
    Ok(Some(Locked {
        status: status.parse().map_err(DbError::Other)?,
        user_id: r.get(1),
        payment_ref: r.get(2),
        due: r.get(3),
        overdue: r.get(4),
    }))
}

/// Expires the locked order (its window passed): the trigger gives its units back.
async fn expire_locked(
    tx: &deadpool_postgres::Transaction<'_>,
    order_id: Uuid,
) -> Result<(), DbError> {
    tx.execute(
        "UPDATE orders SET status = 'expired', closed_at = now(), closed_by = 'expiry',
                updated_at = now()
          WHERE order_id = $1 AND status = 'pending'",
        &[&order_id],
    )
    .await?;
    Ok(())
}

/// `UPDATE … RETURNING` the order's columns.
fn returning() -> String {
    format!("RETURNING {ORDER_COLS}")
}

impl Db {
    /// Records a payment of `amount` under `payment_ref` for `order_id`.
    pub(crate) async fn pay(
        &self,
        order_id: Uuid,
        payment_ref: &str,
        amount: Decimal,
        default_window_s: i32,
    ) -> Result<PayOutcome, DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(o) = lock(&tx, order_id, default_window_s).await? else {
            return Ok(PayOutcome::UnknownOrder);
        };
        if o.status == OrderStatus::Paid && o.payment_ref.as_deref() == Some(payment_ref) {
            let order = self.order_in(&tx, order_id).await?;
            tx.commit().await?;
            return Ok(PayOutcome::Replayed(order));
        }
        if o.status != OrderStatus::Pending {
            return Ok(PayOutcome::NotPending(o.status));
        }
        if o.overdue {
            expire_locked(&tx, order_id).await?;
            tx.commit().await?;
            return Ok(PayOutcome::NotPending(OrderStatus::Expired));
        }
        if let Err(due) = check_amount(o.due, amount) {
            return Ok(PayOutcome::WrongAmount { due });
        }
        let paid = tx
            .query_one(
                &format!(
                    "UPDATE orders SET status = 'paid', payment_ref = $2, paid_amount = $3,
                            closed_at = now(), closed_by = 'payment', updated_at = now()
                      WHERE order_id = $1 {}",
                    returning()
                ),
                &[&order_id, &payment_ref, &amount],
            )
            .await;
        match paid {
            Ok(row) => {
                tx.commit().await?;
                Ok(PayOutcome::Paid(Order::from_row(&row)))
            }
            Err(e) if e.code() == Some(&SqlState::UNIQUE_VIOLATION) => Ok(PayOutcome::RefUsed),
            Err(e) => Err(e.into()),
        }
    }

    /// Cancels `order_id` for `by`; its units go back on sale in the same transaction.
    pub(crate) async fn cancel(
        &self,
        order_id: Uuid,
        by: Closer,
        default_window_s: i32,
    ) -> Result<CancelOutcome, DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let Some(o) = lock(&tx, order_id, default_window_s).await? else {
            return Ok(CancelOutcome::UnknownOrder);
        };
        if matches!(by, Closer::Buyer(u) if u != o.user_id) {
            return Ok(CancelOutcome::UnknownOrder);
        }
        if o.status != OrderStatus::Pending {
            return Ok(CancelOutcome::NotPending(o.status));
        }
        if o.overdue {
            expire_locked(&tx, order_id).await?;
            tx.commit().await?;
            return Ok(CancelOutcome::NotPending(OrderStatus::Expired));
        }
        let row = tx
            .query_one(
                &format!(
                    "UPDATE orders SET status = 'cancelled', closed_at = now(), closed_by = $2,
                            updated_at = now()
                      WHERE order_id = $1 {}",
                    returning()
                ),
                &[&order_id, &by.column()],
            )
            .await?;
        tx.commit().await?;
        Ok(CancelOutcome::Cancelled(Order::from_row(&row)))
    }

    /// Expires up to `limit` pending orders of `product_id` older than `window_s` (the sale's
    /// payment window), oldest first, skipping rows another transaction holds (a payment, a
    /// cancel, another node process's sweep): returns the units of every order expired now.
    /// One index range per product (`orders_pending_idx`), which ends at the first order still
    /// inside its window.
    pub(crate) async fn expire_due(
        &self,
        product_id: i64,
        window_s: i32,
        limit: i64,
    ) -> Result<Vec<i64>, DbError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                "WITH due AS (
                     SELECT order_id FROM orders
                      WHERE product_id = $1 AND status = 'pending'
                        AND created_at <= now() - make_interval(secs => $2::INTEGER::FLOAT8)
                      ORDER BY created_at
                      LIMIT $3
                        FOR UPDATE SKIP LOCKED)
                 UPDATE orders o
                    SET status = 'expired', closed_at = now(), closed_by = 'expiry',
                        updated_at = now()
                   FROM due
                  WHERE o.order_id = due.order_id AND o.status = 'pending'
              RETURNING o.quantity::BIGINT",
                &[&product_id, &window_s, &limit],
            )
            .await?;
        Ok(rows.iter().map(|r| r.get(0)).collect())
    }

    /// What became of the units of `product_id` sold here, read in one snapshot: units per
    /// order status, revenue, and the quota row (`None` when the region never knew the
    /// product).
    pub(crate) async fn sale_report(
        &self,
        product_id: i64,
        region: &str,
    ) -> Result<Option<RegionSaleReport>, DbError> {
        let mut c = self.conn().await?;
        // One snapshot for both reads, so the statuses and the counters agree.
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(q) = tx
            .query_opt(
                "SELECT granted, released, sold, returned FROM region_quota WHERE product_id = $1",
                &[&product_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let (granted, released, sold, returned): (i64, i64, i64, i64) =
            (q.get(0), q.get(1), q.get(2), q.get(3));
        let mut report = RegionSaleReport {
            region: region.to_string(),
            sold,
            returned,
            resold: (sold - (granted - released)).max(0),
            available: granted - released - sold + returned,
            ..RegionSaleReport::default()
        };
        for r in tx
            .query(
                "SELECT status, COALESCE(SUM(quantity), 0)::BIGINT,
                        COALESCE(SUM(paid_amount), 0)::NUMERIC(14,2)
                   FROM orders WHERE product_id = $1 GROUP BY status",
                &[&product_id],
            )
            .await?
        {
            let status: &str = r.get(0);
            let units: i64 = r.get(1);
            match status.parse::<OrderStatus>().map_err(DbError::Other)? {
                OrderStatus::Pending => report.pending = units,
                OrderStatus::Paid => {
                    report.paid = units;
                    report.revenue = r.get(2);
                }
                OrderStatus::Cancelled => report.cancelled = units,
                OrderStatus::Expired => report.expired = units,
            }
        }
        tx.commit().await?;
        Ok(Some(report))
    }

    /// The order's row inside `tx`.
    async fn order_in(
        &self,
        tx: &deadpool_postgres::Transaction<'_>,
        order_id: Uuid,
    ) -> Result<Order, DbError> {
        let row = tx
            .query_one(
                &format!("SELECT {ORDER_COLS} FROM orders WHERE order_id = $1"),
                &[&order_id],
            )
            .await?;
        Ok(Order::from_row(&row))
    }
}
