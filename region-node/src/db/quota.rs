//! The `region_quota` row: the escrow vocabulary of ARCHITECTURE.md in Postgres.
//!
//! | name here | ARCHITECTURE.md | column |
//! |---|---|---|
//! | [`CumulativeGrant`] | `G`, the cumulative grant in etcd | (none: `grants/{r}/{p}`) |
//! | [`QuotaRow::applied_grant`] | `g`, the grant applied here | `granted` |
//! | [`QuotaRow::released_locally`] | `rel`, units released here | `released` |
//! | [`QuotaRow::sold`] | `sold` | `sold` |
//! | [`QuotaRow::returned`] | `returned` | `returned` |
//!
//! `R` (the release *published* to etcd) is [`quota_shared::model::ReleasePublished`]; it
//! trails `rel` (see [`super::release`]).

use deadpool_postgres::{Object, Transaction};
use tokio_postgres::Row;

use super::error::DbError;
use super::pool::Db;

/// The region's quota row for one product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct QuotaRow {
    /// `g`: the grant applied here (cumulative; column `granted`). Never the etcd value `G`,
    /// which may be ahead of it ("grant in transit").
    pub(crate) applied_grant: i64,
    /// `rel`: units released back to the pool here (cumulative; column `released`). Not the
    /// published `R`, which may trail it ("release in transit").
    pub(crate) released_locally: i64,
    /// Units ever ordered here (cumulative, whatever became of the orders).
    pub(crate) sold: i64,
    /// Units of cancelled and expired orders given back to this region's stock (cumulative;
    /// raised by the database in the transaction that closes the order).
    pub(crate) returned: i64,
}

impl QuotaRow {
    /// The one mapping of `SELECT granted, released, sold, returned …` (in that order) to a
    /// row.
    fn from_row(r: &Row) -> QuotaRow {
        QuotaRow {
            applied_grant: r.get(0),
            released_locally: r.get(1),
            sold: r.get(2),
            returned: r.get(3),
        }
    }

    /// `g − rel − sold + returned`.
    pub(crate) fn available(&self) -> i64 {
        quota_shared::reconcile::pg_available(
            self.applied_grant,
            self.released_locally,
            self.sold - self.returned,
        )
    }

    /// `g − rel`: what the region holds (in live orders or available).
    pub(crate) fn holding(&self) -> i64 {
        self.applied_grant - self.released_locally
    }
}

/// The quota row read by the audit, the reconciler and the release handler.
const SELECT_QUOTA: &str =
    "SELECT granted, released, sold, returned FROM region_quota WHERE product_id = $1";

/// The same row, locked until the transaction ends.
const LOCK_QUOTA: &str =
    "SELECT granted, released, sold, returned FROM region_quota WHERE product_id = $1 FOR UPDATE";

/// `G`: a cumulative grant as the coordinator wrote it to etcd. Its own type because applying
/// it is `g := max(g, G)`, and passing `g` (or an increment) where `G` is meant would silently
/// lose or invent units.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct CumulativeGrant(i64);

impl CumulativeGrant {
    /// Parses a `grants/{r}/{p}` value (a non-negative decimal).
    pub(crate) fn parse(value: &[u8]) -> Option<CumulativeGrant> {
        std::str::from_utf8(value)
            .ok()
            .and_then(|v| v.trim().parse::<i64>().ok())
            .filter(|g| *g >= 0)
            .map(CumulativeGrant)
    }

    /// The number of units.
    pub(crate) fn units(self) -> i64 {
        self.0
    }
}

/// What `g := max(g, G)` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct GrantApplied {
    /// `g` before.
    pub(crate) before: i64,
    /// `g` after.
    pub(crate) after: i64,
}

impl Db {
    /// The region's quota row for a product.
    pub(crate) async fn quota(&self, product_id: i64) -> Result<Option<QuotaRow>, DbError> {
        let c = self.conn().await?;
        let row = c.query_opt(SELECT_QUOTA, &[&product_id]).await?;
        Ok(row.as_ref().map(QuotaRow::from_row))
    }

    /// `g := max(g, G)`. Idempotent and order-insensitive.
    pub(crate) async fn apply_grant(
        &self,
        product_id: i64,
        grant: CumulativeGrant,
    ) -> Result<GrantApplied, DbError> {
        let c = self.conn().await?;
        let row = c
            .query_opt(
                "WITH old AS (SELECT granted FROM region_quota WHERE product_id = $1 FOR UPDATE)
                 UPDATE region_quota q SET granted = GREATEST(q.granted, $2), updated_at = now()
                   FROM old WHERE q.product_id = $1
                 RETURNING old.granted, q.granted",
                &[&product_id, &grant.units()],
            )
            .await?;
        row.map(|r| GrantApplied {
            before: r.get(0),
            after: r.get(1),
        })
        .ok_or_else(|| DbError::Other(format!("no quota row for product {product_id}")))
    }

    /// A connection to hold the quota row lock on (see [`QuotaConn::lock`]).
    pub(crate) async fn quota_conn(&self) -> Result<QuotaConn, DbError> {
        Ok(QuotaConn(self.conn().await?))
    }
}

/// A pooled connection a [`LockedQuota`] transaction runs on.
pub(crate) struct QuotaConn(Object);

impl QuotaConn {
    /// Begins a transaction and takes the quota row's lock (`SELECT … FOR UPDATE`): no purchase
    /// of the product commits, and no other pass or release runs on it, until the returned
    /// transaction ends. `None` when the product has no quota row (nothing to lock).
    pub(crate) async fn lock(
        &mut self,
        product_id: i64,
    ) -> Result<Option<LockedQuota<'_>>, DbError> {
        let tx = self.0.transaction().await?;
        let Some(row) = tx.query_opt(LOCK_QUOTA, &[&product_id]).await? else {
            return Ok(None);
        };
        let row = QuotaRow::from_row(&row);
        Ok(Some(LockedQuota {
            tx,
            product_id,
            row,
        }))
    }
}

/// A transaction holding one product's quota row lock; dropping it without
/// [`LockedQuota::commit`] rolls back. Its statements live with their concern
/// ([`super::reconcile`], [`super::release`]).
pub(crate) struct LockedQuota<'a> {
    pub(super) tx: Transaction<'a>,
    pub(super) product_id: i64,
    row: QuotaRow,
}

impl LockedQuota<'_> {
    /// The row as read under the lock (exact until the transaction ends).
    pub(crate) fn row(&self) -> QuotaRow {
        self.row
    }

    /// The product whose row is locked.
    pub(crate) fn product_id(&self) -> i64 {
        self.product_id
    }

    /// Commits (releasing the lock).
    pub(crate) async fn commit(self) -> Result<(), DbError> {
        Ok(self.tx.commit().await?)
    }
}
