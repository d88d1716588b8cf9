//! The purchase path after validation: catalog → sold-out flag → Redis admission → Postgres.
//!
//! Safety argument (details in ARCHITECTURE.md): Redis only *refuses* early; the Postgres
//! statement re-checks `g − rel − sold ≥ quantity` under the quota row lock and a CHECK
//! constraint backs it, so no interleaving of Redis answers can oversell. The order row's
//! `UNIQUE(user_id, product_id)` makes a second order for a buyer impossible.
//!
//! Liveness argument: every admitted ticket ends exactly one way — committed (forgotten),
//! definitely not committed (tokens given back), or unknown (left for the reconciler, which
//! asks Postgres whether the order exists and otherwise expires the ticket). The
//! post-admission work runs in its own task, so a client that disconnects mid-purchase cannot
//! cancel it halfway.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::Utc;
use quota_shared::admission::{home_region, precheck, AdmitOutcome, PurchaseRequest};
use quota_shared::reconcile::Ticket;
use uuid::Uuid;

use crate::catalog::ProductEntry;
use crate::db::{DbError, Order, PurchaseOutcome};
use crate::error::ApiError;
use crate::server::AppState;
use crate::strategy::Strategy;

/// Runs one purchase to its answer.
pub async fn purchase(
    st: &Arc<AppState>,
    product_id: i64,
    req: PurchaseRequest,
) -> Result<Order, ApiError> {
    let entry = st
        .catalog
        .get(product_id)
        .ok_or(ApiError::UnknownProduct(product_id))?;
    entry.attempts.fetch_add(1, Ordering::Relaxed);
    if let Some(home) = home_region(req.user_id, &st.home_regions) {
        if home != st.region {
            return Err(ApiError::WrongRegion(home.to_string()));
        }
    }
    let spec = entry.spec();
    let redis = st.strategy.uses_redis();
    precheck(&spec, Utc::now(), &req, redis && entry.is_sold_out()).map_err(|r| match r {
        quota_shared::admission::Rejection::SoldOut => sold_out(st, &entry),
        other => other.into(),
    })?;

    let order_id = Uuid::now_v7();
    if !redis {
        // v1/v2 (benchmark baselines): straight to Postgres, in a task for cancel-safety.
        let st2 = Arc::clone(st);
        let entry2 = Arc::clone(&entry);
        let task = tokio::spawn(async move {
            let qty = req.quantity as i32;
            let r = with_retries(|| {
                st2.db.purchase_as(
                    st2.strategy,
                    order_id,
                    product_id,
                    req.user_id,
                    qty,
                    &st2.region,
                )
            })
            .await;
            answer(&st2, &entry2, r).1
        });
        return task
            .await
            .unwrap_or_else(|e| Err(ApiError::Internal(format!("purchase task failed: {e}"))));
    }
    let ticket = Ticket {
        id: order_id.to_string(),
        user_id: req.user_id,
        quantity: req.quantity,
    };
    match st
        .stock
        .admit(product_id, &ticket, spec.per_user_limit)
        .await
    {
        Err(e) => {
            tracing::warn!(error = %e, "admission failed");
            return Err(ApiError::Unavailable(
                "the admission store (Redis) is unavailable; retry shortly".into(),
            ));
        }
        Ok(AdmitOutcome::NotReady) => {
            st.reconcile_now.notify_one();
            return Err(ApiError::Unavailable(
                "admission state is being rebuilt from the database; retry shortly".into(),
            ));
        }
        Ok(AdmitOutcome::OverUserLimit { .. }) => {
            let existing = st.db.order_of(req.user_id, product_id).await.ok().flatten();
            return Err(ApiError::AlreadyPurchased { order_id: existing });
        }
        Ok(AdmitOutcome::Insufficient { remaining }) => {
            if remaining <= 0 {
                entry.observe_stock(0);
            }
            return Err(sold_out(st, &entry));
        }
        Ok(AdmitOutcome::Admitted { remaining }) => {
            if remaining <= 0 {
                entry.observe_stock(0);
            }
        }
    }

    // Admitted: the rest must run to completion even if the client goes away.
    entry.in_flight.fetch_add(req.quantity, Ordering::Relaxed);
    let st2 = Arc::clone(st);
    let task = tokio::spawn(async move {
        let r = commit(&st2, &entry, product_id, order_id, &ticket).await;
        entry
            .in_flight
            .fetch_sub(ticket.quantity, Ordering::Relaxed);
        r
    });
    task.await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("purchase task failed: {e}"))))
}

/// How old the leader's "movable stock" may be and still be believed (it is republished
/// every second).
const MOVABLE_MAX_AGE_MS: i64 = 5_000;

/// The answer for "nothing left here": 410 only when nothing could still come here either;
/// otherwise 503 awaiting_stock (the buyer retries and the rebalancer brings units), so no
/// buyer is told "sold out" while the sale still has stock elsewhere.
fn sold_out(st: &AppState, entry: &ProductEntry) -> ApiError {
    let now_ms = Utc::now().timestamp_millis();
    if entry.stock_elsewhere(&st.region, now_ms, MOVABLE_MAX_AGE_MS) {
        ApiError::AwaitingStock
    } else {
        ApiError::SoldOut
    }
}

/// How a ticket ends, decided by what Postgres said.
enum Settle {
    /// The order is committed: forget the ticket.
    Committed,
    /// Definitely not committed: give the tokens back.
    GiveBack,
    /// Unknown (connection lost mid-statement): leave the ticket to the reconciler.
    Unknown,
}

/// Runs a database step, retrying only retryable errors: at most 3 retries, exponential
/// backoff from 10 ms with jitter (every purchase write is idempotent per order id).
async fn with_retries<F, Fut>(attempt: F) -> Result<PurchaseOutcome, DbError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<PurchaseOutcome, DbError>>,
{
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(10))
                .with_max_delay(Duration::from_millis(200))
                .with_max_times(3)
                .with_jitter(),
        )
        .when(DbError::is_retryable)
        .notify(|e, d| tracing::debug!(error = %e, delay = ?d, "retrying purchase"))
        .await
}

/// The Postgres step with bounded retries, then the Redis bookkeeping.
async fn commit(
    st: &Arc<AppState>,
    entry: &Arc<ProductEntry>,
    product_id: i64,
    order_id: Uuid,
    ticket: &Ticket,
) -> Result<Order, ApiError> {
    let qty = ticket.quantity as i32;
    let result = with_retries(|| async {
        if st.strategy == Strategy::V4 {
            st.batcher
                .purchase(order_id, product_id, ticket.user_id, qty)
                .await
        } else {
            st.db
                .purchase_as(
                    st.strategy,
                    order_id,
                    product_id,
                    ticket.user_id,
                    qty,
                    &st.region,
                )
                .await
        }
    })
    .await;
    let (settle, answer) = answer(st, entry, result);
    match settle {
        Settle::Committed => {
            // Off the response path: the reconciler also forgets committed tickets.
            let st = Arc::clone(st);
            let ticket = ticket.clone();
            tokio::spawn(async move {
                if let Err(e) = st.stock.finish(product_id, &ticket, true).await {
                    tracing::debug!(error = %e, "finish(committed) failed; reconciler will");
                }
            });
        }
        Settle::GiveBack => match st.stock.finish(product_id, ticket, false).await {
            Ok(Some(stock)) => entry.observe_stock(stock),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "give-back failed; ticket will expire"),
        },
        Settle::Unknown => {}
    }
    answer
}

/// Maps what Postgres said to how the ticket ends and what the buyer hears.
fn answer(
    st: &Arc<AppState>,
    entry: &ProductEntry,
    result: Result<PurchaseOutcome, DbError>,
) -> (Settle, Result<Order, ApiError>) {
    match result {
        Ok(PurchaseOutcome::Created(order)) => (Settle::Committed, Ok(order)),
        Ok(PurchaseOutcome::AlreadyPurchased(existing)) => (
            Settle::GiveBack,
            Err(ApiError::AlreadyPurchased {
                order_id: Some(existing),
            }),
        ),
        Ok(PurchaseOutcome::NotActive) => (
            Settle::GiveBack,
            Err(ApiError::SaleNotActive("the sale is not active".into())),
        ),
        Err(DbError::SoldOut) => {
            // Redis admitted what Postgres cannot sell (Redis was ahead; correct it now), or a
            // v1/v2 row check said so: the same sold-out-or-awaiting-stock rule as everywhere.
            st.reconcile_now.notify_one();
            (Settle::GiveBack, Err(sold_out(st, entry)))
        }
        Err(DbError::Retryable(m)) => {
            tracing::warn!(error = %m, "purchase failed after retries; nothing committed");
            (
                Settle::GiveBack,
                Err(ApiError::Unavailable(
                    "the database is contended; retry shortly".into(),
                )),
            )
        }
        Err(DbError::ConnectionLost(m)) => {
            tracing::warn!(error = %m, "purchase failed after retries; outcome unknown");
            (
                Settle::Unknown,
                Err(ApiError::Unavailable(
                    "the database is unavailable or contended; retry shortly (a retry never buys twice)".into(),
                )),
            )
        }
        Err(DbError::Unavailable(m)) => {
            tracing::warn!(error = %m, "database unavailable");
            (
                Settle::GiveBack,
                Err(ApiError::Unavailable(
                    "the database is unavailable; retry shortly".into(),
                )),
            )
        }
        Err(DbError::Other(m)) => (Settle::GiveBack, Err(ApiError::Internal(m))),
    }
}
