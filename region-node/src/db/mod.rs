//! Postgres: the region's truth. A connection pool, and every SQL statement the node runs,
//! grouped by what it touches:
//!
//! | module | statements |
//! |---|---|
//! | [`pool`] | none: the pool, its timeouts and isolation level ([`Db`], [`Isolation`]) |
//! | [`error`] | none: classifies every failure once ([`DbError`]) |
//! | [`migrate`] | the embedded migrations and `schema_migrations` |
//! | [`products`] | `products` (load at start, upsert from etcd) |
//! | [`orders`] | `orders`: the new and the stored order, reads, the order-row insert |
//! | [`quota`] | the one `region_quota` row → [`QuotaRow`] mapping, `g := max(g, G)`, the row lock |
//! | [`purchase`] | the purchase statements of the pessimistic, optimistic and one-statement paths |
//! | [`batch`] | the group-commit batch transaction |
//! | [`reconcile`] | what a reconciliation pass reads under the row lock |
//! | [`release`] | the exactly-once release bookkeeping |
//! | [`lifecycle`] | an order's changes after the click: pay, cancel, expire |
//! | [`audit`] | the locked read behind the region's audit endpoint |
//! | [`events`] | `order_events` (the outbox) as the buyer's feed reads it: [`OrderEvent`] |
//! | [`outbox`] | webhook delivery bookkeeping: claim due events, record each attempt |

mod audit;
mod batch;
mod error;
mod events;
mod lifecycle;
mod migrate;
mod orders;
mod outbox;
mod pool;
mod products;
mod purchase;
mod quota;
mod reconcile;
mod release;

pub use error::DbError;
pub(crate) use events::OrderEvent;
pub(crate) use lifecycle::{CancelOutcome, Closer, PayOutcome};
pub(crate) use orders::{NewOrder, Order, PurchaseOutcome};
pub(crate) use outbox::Claimed;
pub use pool::Isolation;
pub(crate) use pool::{bounded, Db};
pub(crate) use quota::{CumulativeGrant, LockedQuota, QuotaRow};
