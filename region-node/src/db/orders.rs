//! The `orders` table: the order to write ([`NewOrder`]), the order an API answer shows
//! ([`Order`]), what a purchase statement decided ([`PurchaseOutcome`]), the reads by id and by
//! user, and the order-row insert of the pessimistic and optimistic paths.

use chrono::{DateTime, Utc};
use deadpool_postgres::Transaction;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::Row;
use uuid::Uuid;

use super::error::DbError;
use super::pool::Db;

/// One purchase as the database will record it, minted once per request (the order id is the
/// Redis ticket id too, and every retry reuses it, so a retry can never buy twice).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct NewOrder {
    /// The order id (UUIDv7).
    pub(crate) order_id: Uuid,
    /// The product.
    pub(crate) product_id: i64,
    /// The buyer.
    pub(crate) user_id: i64,
    /// Units (`1 ≤ quantity ≤ per_user_limit`, so it fits the `INTEGER` column).
    pub(crate) quantity: i32,
    /// The selling region.
    pub(crate) region: String,
}

/// What a purchase statement decided.
#[derive(Debug, Clone)]
pub(crate) enum PurchaseOutcome {
    /// The order is committed.
    Created(Order),
    /// The user already has an order for this product.
    AlreadyPurchased(Uuid),
    /// The database says the product is unknown or outside its sale window.
    NotActive,
}

/// An order as stored and as returned by the API.
#[derive(Debug, Clone, Serialize, PartialEq, utoipa::ToSchema)]
pub(crate) struct Order {
    /// Globally unique (UUIDv7: time-ordered, minted by the node before Redis admission).
    pub(crate) order_id: Uuid,
    /// The product.
    pub(crate) product_id: i64,
    /// The buyer.
    pub(crate) user_id: i64,
    /// The region that sold it.
    pub(crate) region: String,
    /// Units.
    #[schema(minimum = 1)]
    pub(crate) quantity: i32,
    /// Unit price, as a decimal string (e.g. "99.00").
    #[schema(value_type = String, pattern = r"^[0-9]{1,8}\.[0-9]{2}$", example = "99.00")]
    pub(crate) price: Decimal,
    /// pending | paid | cancelled | expired.
    #[schema(example = "pending")]
    pub(crate) status: String,
    /// Commit time (database clock).
    pub(crate) created_at: DateTime<Utc>,
}

impl Order {
    pub(super) fn from_row(r: &Row) -> Order {
        Order {
            order_id: r.get("order_id"),
            product_id: r.get("product_id"),
            user_id: r.get("user_id"),
            region: r.get("region"),
            quantity: r.get("quantity"),
            price: r.get("price"),
            status: r.get("status"),
            created_at: r.get("created_at"),
        }
    }

    /// The order `new` became, with what the database decided (`order_id` and `quantity` as
    /// the database returned them).
    pub(super) fn committed(
        new: &NewOrder,
        order_id: Uuid,
        quantity: i32,
        price: Decimal,
        status: String,
        created_at: DateTime<Utc>,
    ) -> Order {
        Order {
            order_id,
            product_id: new.product_id,
            user_id: new.user_id,
            region: new.region.clone(),
            quantity,
            price,
            status,
            created_at,
        }
    }
}

pub(super) const ORDER_COLS: &str =
    "order_id, product_id, user_id, region, quantity, price, status, created_at";

impl Db {
    /// The order a user holds for a product, if committed.
    pub(crate) async fn order_of(
        &self,
        user_id: i64,
        product_id: i64,
    ) -> Result<Option<Uuid>, DbError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "SELECT order_id FROM orders WHERE user_id = $1 AND product_id = $2",
                &[&user_id, &product_id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// One order by id.
    pub(crate) async fn order(&self, order_id: Uuid) -> Result<Option<Order>, DbError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                &format!("SELECT {ORDER_COLS} FROM orders WHERE order_id = $1"),
                &[&order_id],
            )
            .await?;
        Ok(row.as_ref().map(Order::from_row))
    }

    /// A user's orders in this region, newest first (at most `limit`).
    pub(crate) async fn user_orders(
        &self,
        user_id: i64,
        limit: i64,
    ) -> Result<Vec<Order>, DbError> {
        let c = self.conn().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ORDER_COLS} FROM orders WHERE user_id = $1
                     ORDER BY created_at DESC, order_id DESC LIMIT $2"
                ),
                &[&user_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(Order::from_row).collect())
    }

    /// Our own order, committed by an earlier attempt (a retry of our own committed insert
    /// counts as created).
    pub(super) async fn own_earlier_order(
        &self,
        order_id: Uuid,
    ) -> Result<PurchaseOutcome, DbError> {
        self.order(order_id)
            .await?
            .map(PurchaseOutcome::Created)
            .ok_or_else(|| DbError::Other("order vanished".into()))
    }
}

/// What inserting an order row found.
pub(super) enum Inserted {
    /// The row is in (not committed yet: the caller's transaction decides).
    New(Order),
    /// This user already holds an order for the product (maybe our own, from an earlier
    /// attempt).
    Existing(Uuid),
}

/// Inserts the order row of `new` at `price`, or finds the existing order of this user.
pub(super) async fn insert_order(
    tx: &Transaction<'_>,
    new: &NewOrder,
    price: Decimal,
) -> Result<Inserted, DbError> {
    let row = tx
        .query_opt(
            "INSERT INTO orders (order_id, product_id, user_id, region, quantity, price, status)
             VALUES ($1, $2, $3, $4, $5, $6, 'pending')
             ON CONFLICT ON CONSTRAINT orders_one_per_user DO NOTHING
             RETURNING status, created_at",
            &[
                &new.order_id,
                &new.product_id,
                &new.user_id,
                &new.region,
                &new.quantity,
                &price,
            ],
        )
        .await?;
    if let Some(r) = row {
        return Ok(Inserted::New(Order::committed(
            new,
            new.order_id,
            new.quantity,
            price,
            r.get(0),
            r.get(1),
        )));
    }
    let existing: Uuid = tx
        .query_one(
            "SELECT order_id FROM orders WHERE user_id = $1 AND product_id = $2",
            &[&new.user_id, &new.product_id],
        )
        .await?
        .get(0);
    Ok(Inserted::Existing(existing))
}
