//! Purchase strategies, selectable with `--strategy`, so benchmarks compare designs on the real
//! service path (same HTTP, validation, rate limits, catalog). The strategy is parsed once at
//! start-up into a [`Purchaser`]; the purchase path dispatches on it in one place
//! (`crate::purchase`) and nothing else asks which strategy runs.
//!
//! * `pessimistic` (`v1`) — one transaction, `SELECT … FOR UPDATE` on the quota row, order
//!   insert, update. No Redis. Every request holds the hot row lock for three round trips.
//! * `optimistic` (`v2`) — read the row and its `version` without a lock, then insert the order
//!   and `UPDATE … WHERE version = $v`; a lost race is retried (≤ 3, exponential backoff with
//!   jitter). No Redis.
//! * `redis-gate` (`v3`, default) — Redis pre-decrement (fast fail) + the one-statement
//!   conditional update (`quota_purchase`).
//! * `group-commit` (`v4`) — redis-gate plus **group commit**: Redis winners queue per product
//!   (bounded by `--group-commit-queue`; a full queue answers 503 at once) and one transaction
//!   inserts a whole batch of orders with `UNNEST` and moves `sold` once; a batch that rolled
//!   back is bisected, one that found no connection or lost it is answered at once
//!   ([`crate::batch`]).
//!
//! All four are safe by the same argument: `sold` only grows through an update that re-checks
//! `granted − released − sold` under the row lock (or the version compare), backed by the CHECK
//! constraint; `UNIQUE(user_id, product_id)` bounds buyers. `--isolation` sets the transaction
//! isolation level of every connection (read-committed, repeatable-read, serializable).

use std::sync::Arc;

use clap::ValueEnum;

use crate::batch::Batcher;
use crate::db::{Db, DbError, NewOrder, PurchaseOutcome};

/// Which purchase path the node runs (`--strategy`; `v1`…`v4` are kept as aliases).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum PurchaseStrategy {
    /// Pessimistic row lock, no Redis.
    #[value(alias = "v1")]
    Pessimistic,
    /// Optimistic version column, no Redis.
    #[value(alias = "v2")]
    Optimistic,
    /// Redis pre-decrement + conditional update (default).
    #[default]
    #[value(alias = "v3")]
    RedisGate,
    /// redis-gate + group commit of winners.
    #[value(alias = "v4")]
    GroupCommit,
}

/// The purchaser the node runs, built once at start-up from [`PurchaseStrategy`] (shared with
/// the task each purchase runs in, so a disconnecting client cannot cancel it halfway).
pub(crate) enum Purchaser {
    /// `pessimistic` / `optimistic`: straight to Postgres, no Redis (benchmark baselines).
    Direct(Arc<DirectSql>),
    /// `redis-gate` / `group-commit`: Redis admits first; Postgres commits the winners.
    Gated(Arc<WinnerSql>),
}

/// How a Redis-less purchase commits.
pub(crate) enum DirectSql {
    /// `SELECT … FOR UPDATE`, insert, update.
    Pessimistic(Db),
    /// Unlocked read, insert, `UPDATE … WHERE version = $v`.
    Optimistic(Db),
}

/// How a purchase Redis admitted commits.
pub(crate) enum WinnerSql {
    /// The one-statement conditional update.
    OneStatement(Db),
    /// Queued and committed in batches (a rolled-back batch is bisected down to the one
    /// statement).
    GroupCommit(Batcher),
}

impl Purchaser {
    /// The purchaser of `strategy`, writing to `db` for `region`; `group_commit_queue` bounds
    /// each product's queue under `group-commit` (`--group-commit-queue`).
    pub(crate) fn new(
        strategy: PurchaseStrategy,
        db: Db,
        region: String,
        group_commit_queue: usize,
    ) -> Purchaser {
        match strategy {
            PurchaseStrategy::Pessimistic => {
                Purchaser::Direct(Arc::new(DirectSql::Pessimistic(db)))
            }
            PurchaseStrategy::Optimistic => Purchaser::Direct(Arc::new(DirectSql::Optimistic(db))),
            PurchaseStrategy::RedisGate => Purchaser::Gated(Arc::new(WinnerSql::OneStatement(db))),
            PurchaseStrategy::GroupCommit => Purchaser::Gated(Arc::new(WinnerSql::GroupCommit(
                Batcher::new(db, region, group_commit_queue),
            ))),
        }
    }
}

impl DirectSql {
    /// One attempt at the purchase transaction.
    pub(crate) async fn commit(&self, order: &NewOrder) -> Result<PurchaseOutcome, DbError> {
        match self {
            DirectSql::Pessimistic(db) => db.purchase_pessimistic(order).await,
            DirectSql::Optimistic(db) => db.purchase_optimistic(order).await,
        }
    }
}

impl WinnerSql {
    /// One attempt at committing an admitted purchase.
    pub(crate) async fn commit(&self, order: &NewOrder) -> Result<PurchaseOutcome, DbError> {
        match self {
            WinnerSql::OneStatement(db) => db.purchase_one_statement(order).await,
            WinnerSql::GroupCommit(batcher) => batcher.purchase(order.clone()).await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every spelling scripts, tests and benchmarks pass still parses, to the same strategy.
    #[test]
    fn old_and_new_names_parse() {
        let cases = [
            ("v1", PurchaseStrategy::Pessimistic),
            ("v2", PurchaseStrategy::Optimistic),
            ("v3", PurchaseStrategy::RedisGate),
            ("v4", PurchaseStrategy::GroupCommit),
            ("pessimistic", PurchaseStrategy::Pessimistic),
            ("optimistic", PurchaseStrategy::Optimistic),
            ("redis-gate", PurchaseStrategy::RedisGate),
            ("group-commit", PurchaseStrategy::GroupCommit),
        ];
        for (text, want) in cases {
            assert_eq!(PurchaseStrategy::from_str(text, false), Ok(want), "{text}");
        }
    }
}
