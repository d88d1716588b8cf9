//! An order's life after the click: a payment (the payment system, with the payments token), a
//! cancellation by the buyer, and one by an operator (the coordinator, on an operator's behalf,
//! with the region-admin token). Each is one transaction in Postgres (`crate::db`'s
//! `lifecycle`): a change an order's status does not allow is a 409 naming that status, and the
//! units of a cancelled order are back on sale within one reconcile pass.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderName, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use quota_shared::admin_auth::Scope;
use quota_shared::wire::RegionSaleReport;
use rust_decimal::Decimal;
use serde::Deserialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::buyer::BuyerAuth;
use super::docs::ErrorBody;
use super::extract::MAX_BODY_BYTES;
use crate::db::{CancelOutcome, Closer, Order, PayOutcome};
use crate::error::ApiError;
use crate::failpoint::Failpoint;
use crate::state::AppState;

/// Longest payment reference (the payment system's id of the payment).
const MAX_PAYMENT_REF: usize = 128;

/// The answer header of a payment that was already recorded (nothing changed).
const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// `POST /v1/orders/{order_id}/pay`: what the payment system reports.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct PaymentBody {
    /// The payment system's id of this payment: one reference pays one order, and the same
    /// reference sent again is the same payment (answered 200 with `Idempotent-Replayed`).
    #[schema(min_length = 1, max_length = 128, pattern = "^[!-~]+$")]
    payment_ref: String,
    /// The amount paid: the order's unit price × quantity, as a decimal string.
    #[serde(deserialize_with = "quota_shared::price::deserialize")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$")]
    amount: Decimal,
}

/// `POST /v1/orders/{order_id}/cancel`: the buyer (a body only while buyer tokens are off).
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(super) struct CancelBody {
    /// The buyer: required while buyer tokens are off; with them on it may be left out (the
    /// token's `sub`) and, if given, must be the token's.
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    user_id: Option<i64>,
}

/// The order id of a path.
fn order_id(raw: &str) -> Result<Uuid, ApiError> {
    Uuid::parse_str(raw).map_err(|_| ApiError::InvalidRequest("order id must be a UUID".into()))
}

/// A JSON body of type `T` (an empty body is `T::default()` when `empty_ok`).
fn body<T: serde::de::DeserializeOwned + Default>(
    raw: Result<Bytes, BytesRejection>,
    empty_ok: bool,
) -> Result<T, ApiError> {
    let raw = raw.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::PayloadTooLarge(MAX_BODY_BYTES)
        } else {
            ApiError::InvalidRequest(r.body_text())
        }
    })?;
    if raw.iter().all(u8::is_ascii_whitespace) {
        return if empty_ok {
            Ok(T::default())
        } else {
            Err(ApiError::InvalidRequest("a JSON body is required".into()))
        };
    }
    serde_json::from_slice(&raw).map_err(|e| ApiError::InvalidRequest(format!("body: {e}")))
}

impl Default for PaymentBody {
    fn default() -> Self {
        PaymentBody {
            payment_ref: String::new(),
            amount: Decimal::ZERO,
        }
    }
}

/// The one admin check of these routes: the bearer token must hold `scope`.
fn authorize(st: &AppState, headers: &HeaderMap, scope: Scope) -> Result<(), ApiError> {
    st.admin_tokens
        .authorize(
            headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
            scope,
        )
        .map(drop)
        .map_err(ApiError::from)
}

/// Records a payment.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/pay",
    operation_id = "payOrder",
    summary = "Record the payment of a pending order (the payment system)",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    request_body = PaymentBody,
    security(("adminToken" = ["payments"])),
    responses(
        (status = 200, description = "The order, paid. `Idempotent-Replayed: true` when this \
            payment reference had paid it before (nothing changed)", body = Order),
        (status = 400, description = "invalid_request: a bad order id or body", body = ErrorBody),
        (status = 401, description = "unauthorized: no or an unknown token", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token without the payments scope", body = ErrorBody),
        (status = 404, description = "unknown_order: no such order here", body = ErrorBody),
        (status = 409, description = "order_not_pending (with `status`: paid with another \
            reference, cancelled, or expired — also when its payment window passed just now), \
            or payment_ref_used: the reference paid another order", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 422, description = "amount_mismatch: not what the order costs (`amount_due`)", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down; send the same payment again", body = ErrorBody),
    ),
)]
pub(super) async fn pay_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorize(&st, &headers, Scope::Payments)?;
    let order_id = order_id(&raw_id)?;
    let p: PaymentBody = body(raw, false)?;
    if p.payment_ref.is_empty()
        || p.payment_ref.len() > MAX_PAYMENT_REF
        || !p.payment_ref.bytes().all(|b| b.is_ascii_graphic())
    {
        return Err(ApiError::InvalidRequest(format!(
            "payment_ref must be 1-{MAX_PAYMENT_REF} visible ASCII characters"
        )));
    }
    let outcome = st
        .db
        .bounded(
            st.db
                .pay(order_id, &p.payment_ref, p.amount, st.payment_window_s),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    match outcome {
        PayOutcome::Paid(order) => {
            crate::metrics::order_closed(order.product_id, "paid", i64::from(order.quantity));
            Ok(Json(order).into_response())
        }
        PayOutcome::Replayed(order) => {
            let mut resp = Json(order).into_response();
            resp.headers_mut()
                .insert(REPLAYED, HeaderValue::from_static("true"));
            Ok(resp)
        }
        PayOutcome::UnknownOrder => Err(ApiError::UnknownOrder(order_id)),
        PayOutcome::NotPending(status) => Err(ApiError::OrderNotPending(status)),
        PayOutcome::WrongAmount { due } => Err(ApiError::AmountMismatch { due }),
        PayOutcome::RefUsed => Err(ApiError::PaymentRefUsed),
    }
}

/// The answer to a cancellation.
fn cancelled(
    st: &AppState,
    order_id: Uuid,
    outcome: CancelOutcome,
) -> Result<Json<Order>, ApiError> {
    match outcome {
        CancelOutcome::Cancelled(order) => {
            if matches!(st.failpoint, Some(Failpoint::CrashAfterCancelCommit)) {
                tracing::error!("failpoint crash_after_cancel_commit: aborting");
                std::process::abort();
            }
            crate::metrics::order_closed(order.product_id, "cancelled", i64::from(order.quantity));
            st.reconcile_now.notify_one();
            Ok(Json(order))
        }
        CancelOutcome::UnknownOrder => Err(ApiError::UnknownOrder(order_id)),
        CancelOutcome::NotPending(status) => Err(ApiError::OrderNotPending(status)),
    }
}

/// The buyer cancels their pending order.
#[utoipa::path(
    post,
    path = "/v1/orders/{order_id}/cancel",
    operation_id = "cancelOrder",
    summary = "Cancel a pending order (its buyer); its units go back on sale",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    request_body(content = CancelBody, description = "The buyer, while buyer tokens are off"),
    security(("buyerToken" = []), ()),
    responses(
        (status = 200, description = "The order, cancelled", body = Order),
        (status = 400, description = "invalid_request: a bad order id or body", body = ErrorBody),
        (status = 401, description = "token_missing, token_expired, token_invalid (buyer tokens on)", body = ErrorBody),
        (status = 403, description = "user_mismatch: the body names another user than the token", body = ErrorBody),
        (status = 404, description = "unknown_order: no such order here, or another user's — answered alike", body = ErrorBody),
        (status = 409, description = "order_not_pending (with `status`)", body = ErrorBody),
        (status = 413, description = "payload_too_large", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down; send it again", body = ErrorBody),
    ),
)]
pub(super) async fn cancel_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Json<Order>, ApiError> {
    let buyer = buyers.identify(&headers)?;
    let order_id = order_id(&raw_id)?;
    let b: CancelBody = body(raw, true)?;
    let user_id = match (buyer, b.user_id) {
        (Some(buyer), Some(u)) => {
            buyer.must_be(u)?;
            u
        }
        (Some(buyer), None) => buyer.user_id,
        (None, Some(u)) if u >= 1 => u,
        (None, _) => {
            return Err(ApiError::InvalidRequest(
                "user_id (a positive integer) is required".into(),
            ))
        }
    };
    let outcome = st
        .db
        .bounded(
            st.db
                .cancel(order_id, Closer::Buyer(user_id), st.payment_window_s),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    cancelled(&st, order_id, outcome)
}

/// One order, for an operator (the coordinator's `order show`, region-admin token): the same
/// answer as `GET /v1/orders/{order_id}`, whoever the buyer.
#[utoipa::path(
    get,
    path = "/v1/admin/orders/{order_id}",
    operation_id = "showOrderAsOperator",
    summary = "One order, whoever its buyer (an operator, through the coordinator)",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    security(("adminToken" = ["region-admin"])),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "invalid_request: a bad order id", body = ErrorBody),
        (status = 401, description = "unauthorized: no or an unknown token", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token without the region-admin scope", body = ErrorBody),
        (status = 404, description = "unknown_order: no such order here", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn admin_order_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Order>, ApiError> {
    authorize(&st, &headers, Scope::RegionAdmin)?;
    let order_id = order_id(&raw_id)?;
    st.db
        .order(order_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map(Json)
        .ok_or(ApiError::UnknownOrder(order_id))
}

/// What became of a sale's units here (the coordinator's `report`, region-admin token).
#[utoipa::path(
    get,
    path = "/v1/admin/products/{product_id}/report",
    operation_id = "regionSaleReport",
    summary = "What became of the units this region sold: units per order status, revenue",
    params(("product_id" = i64, Path, minimum = 1, description = "The product")),
    security(("adminToken" = ["region-admin"])),
    responses(
        (status = 200, description = "The region's report (all zeros for a product it never \
            knew)", body = RegionSaleReport),
        (status = 400, description = "invalid_request: a bad product id", body = ErrorBody),
        (status = 401, description = "unauthorized: no or an unknown token", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token without the region-admin scope", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn report_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RegionSaleReport>, ApiError> {
    authorize(&st, &headers, Scope::RegionAdmin)?;
    let product_id = super::extract::positive_id("product id", &raw_id)?;
    let report = st
        .db
        .bounded(st.db.sale_report(product_id, &st.region))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(report.unwrap_or_else(|| RegionSaleReport {
        region: st.region.clone(),
        ..RegionSaleReport::default()
    })))
}

/// An operator cancels any pending order (through the coordinator, with the region-admin
/// token).
#[utoipa::path(
    post,
    path = "/v1/admin/orders/{order_id}/cancel",
    operation_id = "cancelOrderAsOperator",
    summary = "Cancel any pending order (an operator, through the coordinator)",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    security(("adminToken" = ["region-admin"])),
    responses(
        (status = 200, description = "The order, cancelled", body = Order),
        (status = 400, description = "invalid_request: a bad order id", body = ErrorBody),
        (status = 401, description = "unauthorized: no or an unknown token", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token without the region-admin scope", body = ErrorBody),
        (status = 404, description = "unknown_order: no such order here", body = ErrorBody),
        (status = 409, description = "order_not_pending (with `status`)", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down; send it again", body = ErrorBody),
    ),
)]
pub(super) async fn admin_cancel_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Order>, ApiError> {
    authorize(&st, &headers, Scope::RegionAdmin)?;
    let order_id = order_id(&raw_id)?;
    let outcome = st
        .db
        .bounded(
            st.db
                .cancel(order_id, Closer::Operator, st.payment_window_s),
        )
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    cancelled(&st, order_id, outcome)
}
