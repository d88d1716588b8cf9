//! The purchase path after validation: catalog → availability → Redis admission → Postgres.
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

use std::sync::Arc;

use chrono::Utc;
use quota_shared::admission::{home_region, precheck, AdmitOutcome, PurchaseRequest};
use quota_shared::availability::{Ask, Availability, AvailabilityState};
use quota_shared::model::ProductSpec;
use quota_shared::reconcile::Ticket;
use uuid::Uuid;

use crate::attempts::with_retries;
use crate::catalog::ProductEntry;
use crate::db::{DbError, NewOrder, Order, PurchaseOutcome};
use crate::error::ApiError;
use crate::state::AppState;
use crate::strategy::{DirectSql, Purchaser, WinnerSql};

/// Runs one purchase to its answer.
pub(crate) async fn purchase(
    st: &Arc<AppState>,
    product_id: i64,
    req: PurchaseRequest,
) -> Result<Order, ApiError> {
    let entry = st
        .catalog
        .get(product_id)
        .ok_or(ApiError::UnknownProduct(product_id))?;
    // Home regions are part of the sale (one list every node follows, fixed for its life). A
    // buyer sent elsewhere is not this region's demand: counting them would pull units here
    // that they cannot buy.
    if let Some(home) = home_region(req.user_id, &entry.spec().home_regions) {
        if home != st.region {
            return Err(ApiError::WrongRegion(home.to_string()));
        }
    }
    entry.count_attempt();
    // The one place the strategy is dispatched on.
    match &st.purchaser {
        Purchaser::Direct(sql) => direct(st, entry, Arc::clone(sql), product_id, &req).await,
        Purchaser::Gated(sql) => gated(st, entry, Arc::clone(sql), product_id, &req).await,
    }
}

/// The checks that need only the spec and the clock, then the order to write. `gate` is what
/// the availability rule said before admission ([`Availability::Open`] when nothing gates).
fn checked_order(
    st: &AppState,
    spec: &ProductSpec,
    product_id: i64,
    req: &PurchaseRequest,
    gate: Availability,
) -> Result<NewOrder, ApiError> {
    precheck(spec, Utc::now(), req, gate != Availability::Open).map_err(|r| match r {
        quota_shared::admission::Rejection::SoldOut => ApiError::out_of_stock(gate),
        other => other.into(),
    })?;
    // precheck bounded it by `per_user_limit`, an i32.
    let quantity = i32::try_from(req.quantity)
        .map_err(|_| ApiError::InvalidRequest("quantity is out of range".into()))?;
    Ok(NewOrder {
        order_id: Uuid::now_v7(),
        product_id,
        user_id: req.user_id,
        quantity,
        region: st.region.clone(),
    })
}

/// `pessimistic` / `optimistic` (benchmark baselines): straight to Postgres, in a task for
/// cancel-safety. No Redis, so nothing gates before the database.
async fn direct(
    st: &Arc<AppState>,
    entry: Arc<ProductEntry>,
    sql: Arc<DirectSql>,
    product_id: i64,
    req: &PurchaseRequest,
) -> Result<Order, ApiError> {
    let order = checked_order(st, &entry.spec(), product_id, req, Availability::Open)?;
    let st2 = Arc::clone(st);
    let task = tokio::spawn(async move {
        let r = with_retries(st2.failpoint.as_ref(), st2.db.op_timeout(), || {
            sql.commit(&order)
        })
        .await;
        answer(&st2, &entry, r).1
    });
    task.await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("purchase task failed: {e}"))))
}

/// Most buyers one product's wait room holds; more are answered 503 at once.
const WAIT_ROOM_CAPACITY: usize = 10_000;

/// `redis-gate` / `group-commit`: the availability gate, Redis admission, then Postgres. A
/// buyer who finds the region out of stock *for now* waits in line for it (when
/// `--await-stock-ms` allows; [`crate::waitroom`]) instead of hearing 503 at once.
async fn gated(
    st: &Arc<AppState>,
    entry: Arc<ProductEntry>,
    sql: Arc<WinnerSql>,
    product_id: i64,
    req: &PurchaseRequest,
) -> Result<Order, ApiError> {
    let spec = entry.spec();
    let gate = entry.answer(Ask::BeforeAdmission, now_ms(), &st.region);
    let may_wait = !st.await_stock.is_zero();
    // Out of stock here for now, or others already waiting: join the line behind them.
    let order =
        if may_wait && (gate == Availability::AwaitingStock || entry.waitroom().waiting() > 0) {
            wait_and_admit(st, &entry, &spec, product_id, req).await?
        } else {
            let order = checked_order(st, &spec, product_id, req, gate)?;
            match admit(st, &entry, &spec, &order, req).await {
                Ok(()) => order,
                // Redis just ran out here: wait for what is on its way.
                Err(ApiError::AwaitingStock) if may_wait => {
                    wait_and_admit(st, &entry, &spec, product_id, req).await?
                }
                Err(refused) => return Err(refused),
            }
        };
    let ticket = ticket_of(&order, req);
    // Admitted: the rest must run to completion even if the client goes away.
    entry.add_in_flight(ticket.quantity);
    let st2 = Arc::clone(st);
    let task = tokio::spawn(async move {
        let r = commit(&st2, &entry, &sql, &order, &ticket).await;
        entry.add_in_flight(-ticket.quantity);
        r
    });
    task.await
        .unwrap_or_else(|e| Err(ApiError::Internal(format!("purchase task failed: {e}"))))
}

/// Waits in the product's line until this buyer is admitted, refused for good, or its
/// deadline passes (then 503 awaiting_stock, as without waiting).
async fn wait_and_admit(
    st: &AppState,
    entry: &ProductEntry,
    spec: &ProductSpec,
    product_id: i64,
    req: &PurchaseRequest,
) -> Result<NewOrder, ApiError> {
    let deadline = tokio::time::Instant::now() + st.await_stock;
    let Some(turn) = entry.waitroom().enter(deadline, WAIT_ROOM_CAPACITY).await else {
        return Err(ApiError::AwaitingStock);
    };
    loop {
        let gate = entry.answer(Ask::BeforeAdmission, now_ms(), &st.region);
        if gate != Availability::AwaitingStock {
            let order = checked_order(st, spec, product_id, req, gate)?;
            match admit(st, entry, spec, &order, req).await {
                Ok(()) => return Ok(order),
                Err(ApiError::AwaitingStock) => {}
                Err(refused) => return Err(refused),
            }
        }
        if !turn.wait_for_stock(deadline).await {
            return Err(ApiError::AwaitingStock);
        }
    }
}

/// The Redis ticket of `order`.
fn ticket_of(order: &NewOrder, req: &PurchaseRequest) -> Ticket {
    Ticket {
        id: order.order_id.to_string(),
        user_id: order.user_id,
        quantity: req.quantity,
    }
}

/// Redis admission of `order`: `Ok` when its units are taken (a ticket is in flight), else
/// the refusal (`AwaitingStock` when out of stock here for now).
async fn admit(
    st: &AppState,
    entry: &ProductEntry,
    spec: &ProductSpec,
    order: &NewOrder,
    req: &PurchaseRequest,
) -> Result<(), ApiError> {
    let product_id = order.product_id;
    match st
        .stock
        .admit(product_id, &ticket_of(order, req), spec.per_user_limit)
        .await
    {
        Err(e) => {
            tracing::warn!(error = %e, "admission failed");
            Err(ApiError::Unavailable(
                "the admission store (Redis) is unavailable; retry shortly".into(),
            ))
        }
        Ok(AdmitOutcome::NotReady) => {
            st.reconcile_now.notify_one();
            Err(ApiError::Unavailable(
                "admission state is being rebuilt from the database; retry shortly".into(),
            ))
        }
        Ok(AdmitOutcome::OverUserLimit { .. }) => {
            let existing = st
                .db
                .bounded(st.db.order_of(req.user_id, product_id))
                .await
                .ok()
                .flatten();
            Err(ApiError::AlreadyPurchased { order_id: existing })
        }
        Ok(AdmitOutcome::Insufficient { remaining }) => Err(short_here(st, entry, |a| {
            if remaining <= 0 {
                a.redis_empty();
            }
        })),
        Ok(AdmitOutcome::Admitted { remaining }) => {
            if remaining <= 0 {
                entry.update(AvailabilityState::redis_empty);
            }
            Ok(())
        }
    }
}

/// Wall-clock milliseconds (the clock the leader stamps movable stock with).
fn now_ms() -> i64 {
    Utc::now().timestamp_millis()
}

/// The answer for "nothing left here for this buyer" (after `event` updates the availability
/// state): 410 only when nothing could still come here either; otherwise 503 awaiting_stock
/// (the buyer retries and the rebalancer brings units), so no buyer is told "sold out" while
/// the sale still has stock elsewhere.
fn short_here(
    st: &AppState,
    entry: &ProductEntry,
    event: impl FnOnce(&mut AvailabilityState),
) -> ApiError {
    ApiError::out_of_stock(entry.answer_after(event, Ask::ShortHere, now_ms(), &st.region))
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

/// The Postgres step of an admitted purchase with bounded retries, then the Redis bookkeeping.
async fn commit(
    st: &Arc<AppState>,
    entry: &Arc<ProductEntry>,
    sql: &WinnerSql,
    order: &NewOrder,
    ticket: &Ticket,
) -> Result<Order, ApiError> {
    let result = with_retries(st.failpoint.as_ref(), st.db.op_timeout(), || {
        sql.commit(order)
    })
    .await;
    let (settle, answer) = answer(st, entry, result);
    let product_id = order.product_id;
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
            Ok(Some(stock)) => entry.update(|a| a.stock_observed(stock)),
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "give-back failed; ticket will expire"),
        },
        Settle::Unknown => {}
    }
    answer
}

/// Maps what Postgres said to how the ticket ends and what the buyer hears.
fn answer(
    st: &AppState,
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
            // pessimistic/optimistic row check said so: the same sold-out-or-awaiting-stock
            // rule as everywhere.
            st.reconcile_now.notify_one();
            (Settle::GiveBack, Err(short_here(st, entry, |_| {})))
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
                    "the database connection was lost and the order may have been placed; \
                     retry shortly (a retry never buys twice)"
                        .into(),
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
