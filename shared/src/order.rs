//! An order's life after the click, as a pure state machine: which changes are allowed, which
//! of them give the units back, and when a pending order's payment window closes. The region
//! node answers from it (a refused change is a 409 naming the current status); its Postgres
//! enforces the same rules with a trigger (`migrations/0006_order_lifecycle.sql`), so that no
//! code path — nor an operator with `psql` — can take a unit back twice.

use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, Duration, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Where an order is in its life. Only `Pending` can change, and only once.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum OrderStatus {
    /// Placed, awaiting payment; its units are the buyer's until paid, cancelled or expired.
    Pending,
    /// Paid: the sale is final.
    Paid,
    /// Cancelled by the buyer or an operator: its units went back on sale.
    Cancelled,
    /// Not paid within the payment window: its units went back on sale.
    Expired,
}

/// A change someone asks of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Change {
    /// The payment system reports a payment.
    Pay,
    /// The buyer or an operator cancels.
    Cancel,
    /// The payment window passed.
    Expire,
}

/// A change the order's status does not allow (the answer names the status it has).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the order is {status}, not pending")]
pub struct NotPending {
    /// The order's status.
    pub status: OrderStatus,
}

impl OrderStatus {
    /// Every status, for tables and tests.
    pub const ALL: [OrderStatus; 4] = [
        OrderStatus::Pending,
        OrderStatus::Paid,
        OrderStatus::Cancelled,
        OrderStatus::Expired,
    ];

    /// The name in the database and on the wire.
    pub const fn as_str(self) -> &'static str {
        match self {
            OrderStatus::Pending => "pending",
            OrderStatus::Paid => "paid",
            OrderStatus::Cancelled => "cancelled",
            OrderStatus::Expired => "expired",
        }
    }

    /// The status `change` leads to from this one: only a pending order changes.
    pub fn after(self, change: Change) -> Result<OrderStatus, NotPending> {
        match (self, change) {
            (OrderStatus::Pending, Change::Pay) => Ok(OrderStatus::Paid),
            (OrderStatus::Pending, Change::Cancel) => Ok(OrderStatus::Cancelled),
            (OrderStatus::Pending, Change::Expire) => Ok(OrderStatus::Expired),
            (status, _) => Err(NotPending { status }),
        }
    }

    /// Whether reaching this status gives the order's units back to the region's stock.
    pub const fn returns_units(self) -> bool {
        matches!(self, OrderStatus::Cancelled | OrderStatus::Expired)
    }
}

impl fmt::Display for OrderStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for OrderStatus {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        OrderStatus::ALL
            .into_iter()
            .find(|st| st.as_str() == s)
            .ok_or_else(|| format!("unknown order status {s:?}"))
    }
}

/// The payment window when neither the sale nor the node says otherwise: 15 minutes.
pub const DEFAULT_PAYMENT_WINDOW: Duration = Duration::minutes(15);

/// When a pending order created at `created_at` expires: at `created_at + window` it is no
/// longer payable (a payment arriving then is refused, and the order expires on the spot).
pub fn expires_at(created_at: DateTime<Utc>, window: Duration) -> DateTime<Utc> {
    created_at + window
}

/// What an order costs: unit price × quantity (exact decimal arithmetic).
pub fn amount_due(unit_price: Decimal, quantity: i32) -> Decimal {
    unit_price * Decimal::from(quantity)
}

/// A payment of `paid` for an order that costs `due`: accepted only when equal (`99.0` and
/// `99.00` are equal); otherwise the amount the order costs, for the refusal.
pub fn check_amount(due: Decimal, paid: Decimal) -> Result<(), Decimal> {
    if paid == due {
        Ok(())
    } else {
        Err(due)
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn only_a_pending_order_changes_and_only_once() {
        use Change::{Cancel, Expire, Pay};
        use OrderStatus::{Cancelled, Expired, Paid, Pending};
        assert_eq!(Pending.after(Pay), Ok(Paid));
        assert_eq!(Pending.after(Cancel), Ok(Cancelled));
        assert_eq!(Pending.after(Expire), Ok(Expired));
        for from in [Paid, Cancelled, Expired] {
            for change in [Pay, Cancel, Expire] {
                assert_eq!(from.after(change), Err(NotPending { status: from }));
            }
        }
        assert!(!Paid.returns_units() && !Pending.returns_units());
        assert!(Cancelled.returns_units() && Expired.returns_units());
        for s in OrderStatus::ALL {
            assert_eq!(s.as_str().parse::<OrderStatus>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert!("refunded".parse::<OrderStatus>().is_err());
    }

    #[test]
    fn amounts_are_exact_decimals() {
        let price: Decimal = "99.90".parse().unwrap();
        let due = amount_due(price, 3);
        assert_eq!(due, "299.70".parse::<Decimal>().unwrap());
        assert_eq!(check_amount(due, "299.7".parse().unwrap()), Ok(()));
        assert_eq!(check_amount(due, "299.69".parse().unwrap()), Err(due));
        let at = DateTime::UNIX_EPOCH;
        assert_eq!(
            expires_at(at, DEFAULT_PAYMENT_WINDOW),
            at + Duration::seconds(900)
        );
    }

    proptest! {
        /// Whatever changes arrive, in whatever order and however often, an order reaches at
        /// most one final status and gives its units back at most once.
        #[test]
        fn units_come_back_at_most_once(changes in proptest::collection::vec(0u8..3, 0..12)) {
            let mut status = OrderStatus::Pending;
            let mut returned = 0;
            for c in changes {
                let change = [Change::Pay, Change::Cancel, Change::Expire][usize::from(c)];
                if let Ok(next) = status.after(change) {
                    prop_assert_eq!(status, OrderStatus::Pending);
                    if next.returns_units() {
                        returned += 1;
                    }
                    status = next;
                }
            }
            prop_assert!(returned <= 1);
            prop_assert_eq!(returned == 1, status.returns_units());
        }
    }
}
