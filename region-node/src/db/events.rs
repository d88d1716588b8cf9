//! The `order_events` outbox (migration 0006), as the buyer's feed reads it: [`OrderEvent`] —
//! one change of one order, the very document a webhook receives — and the read by user.
//! Delivery bookkeeping is in [`super::outbox`].

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::DbError;
use super::pool::Db;

/// One change of an order, written by the `orders_after_change` trigger in the transaction that
/// made the change. Delivered to the webhook as this JSON, and listed by
/// `GET /v1/users/{user_id}/events`.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub(crate) struct OrderEvent {
    /// This event's id: a redelivery carries the same one, so a receiver deduplicates on it.
    pub(crate) event_id: Uuid,
    /// Its place in this region's outbox: increasing in the order the events were written, so
    /// one order's events are in seq order.
    #[schema(minimum = 1)]
    pub(crate) seq: i64,
    /// What happened: created, paid, cancelled or expired.
    #[schema(pattern = "^(created|paid|cancelled|expired)$", example = "created")]
    pub(crate) kind: String,
    /// The order.
    pub(crate) order_id: Uuid,
    /// The product.
    pub(crate) product_id: i64,
    /// The buyer.
    pub(crate) user_id: i64,
    /// The region that sold the order.
    pub(crate) region: String,
    /// Units of the order.
    #[schema(minimum = 1)]
    pub(crate) quantity: i32,
    /// Unit price, as a decimal string (e.g. "99.00").
    #[schema(value_type = String, pattern = r"^[0-9]{1,8}\.[0-9]{2}$", example = "99.00")]
    pub(crate) price: Decimal,
    /// When the change was made (the changing transaction's time, database clock).
    pub(crate) at: DateTime<Utc>,
}

/// The columns [`OrderEvent::from_row`] reads.
pub(super) const EVENT_COLS: &str =
    "event_id, seq, kind, order_id, product_id, user_id, region, quantity, price, at";

impl OrderEvent {
    /// An event from a row with [`EVENT_COLS`].
    pub(super) fn from_row(r: &Row) -> OrderEvent {
        OrderEvent {
            event_id: r.get("event_id"),
            seq: r.get("seq"),
            kind: r.get("kind"),
            order_id: r.get("order_id"),
            product_id: r.get("product_id"),
            user_id: r.get("user_id"),
            region: r.get("region"),
            quantity: r.get("quantity"),
            price: r.get("price"),
            at: r.get("at"),
        }
    }
}

impl Db {
    /// A user's events in this region with `seq > after`, in seq order, at most `limit`.
    pub(crate) async fn user_events(
        &self,
        user_id: i64,
        after: i64,
        limit: i64,
    ) -> Result<Vec<OrderEvent>, DbError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {EVENT_COLS} FROM order_events
                      WHERE user_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
                ),
                &[&user_id, &after, &limit],
            )
            .await?;
        Ok(rows.iter().map(OrderEvent::from_row).collect())
    }
}
