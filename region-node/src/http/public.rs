//! The public routes: purchase, product, order, a user's orders.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use quota_shared::admission::parse_purchase_body;
use quota_shared::model::ProductSpec;
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use super::buyer::BuyerAuth;
use super::extract::{positive_id, MAX_BODY_BYTES};
use crate::db::Order;
use crate::error::ApiError;
use crate::purchase;
use crate::state::AppState;

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map_or_else(|| Uuid::new_v4().to_string(), str::to_string)
}

/// `POST /v1/products/{id}/purchase`. Checks in order, each refusing before anything costlier
/// runs: the buyer token (when on), the global and per-IP rate limits (the IP is the one
/// `--trusted-proxies` vouch for), the body, the token's user against the body's, the per-user
/// limit; then the purchase itself. With a token the body may leave `user_id` out: the
/// token's `sub` buys.
pub(super) async fn purchase_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("purchase", region = %st.region, product_id = %raw_id,
                                   request_id = %request_id(&headers));
    let result = async {
        let buyer = buyers.identify(&headers)?;
        let client = st.trusted_proxies.client_ip(peer.ip(), &headers);
        st.limits.check_request(client)?;
        let body = body.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::InvalidRequest(r.body_text())
            }
        })?;
        let product_id = positive_id("product id", &raw_id)?;
        let req = parse_purchase_body(&body)?.buyer(buyer.map(|b| b.user_id))?;
        st.limits.check_user(req.user_id)?;
        tracing::Span::current().record("user_id", req.user_id);
        purchase::purchase(&st, product_id, req).await
    }
    .instrument(span)
    .await;
    let outcome = match &result {
        Ok(_) => "created",
        Err(e) => e.code(),
    };
    metrics::counter!("quota_purchase_requests_total", "outcome" => outcome).increment(1);
    metrics::histogram!("quota_purchase_duration_seconds", "outcome" => outcome)
        .record(started.elapsed().as_secs_f64());
    match result {
        Ok(order) => (StatusCode::CREATED, Json(order)).into_response(),
        Err(e) => e.into_response(),
    }
}

/// `GET /v1/products/{id}`: the spec plus this region's `sold` and `available`.
#[derive(Serialize)]
pub(super) struct ProductView {
    #[serde(flatten)]
    spec: ProductSpec,
    region: String,
    sold: i64,
    available: i64,
    active: bool,
}

pub(super) async fn product_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
) -> Result<Json<ProductView>, ApiError> {
    let product_id = positive_id("product id", &raw_id)?;
    let entry = st
        .catalog
        .get(product_id)
        .ok_or(ApiError::UnknownProduct(product_id))?;
    let q = st
        .db
        .quota(product_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .unwrap_or_default();
    let spec = (*entry.spec()).clone();
    Ok(Json(ProductView {
        active: spec.is_active(chrono::Utc::now()),
        spec,
        region: st.region.clone(),
        sold: q.sold,
        available: q.available(),
    }))
}

/// `GET /v1/orders/{order_id}`: with buyer tokens on, only an order of the token's own user;
/// anyone else's is answered exactly like one that does not exist (404 `unknown_order`, after
/// the same database read), so a token cannot confirm that another buyer's order id is real.
pub(super) async fn order_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<Order>, ApiError> {
    let buyer = buyers.identify(&headers)?;
    let order_id = Uuid::parse_str(&raw_id)
        .map_err(|_| ApiError::InvalidRequest("order id must be a UUID".into()))?;
    st.db
        .order(order_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .filter(|o| buyer.is_none_or(|b| b.user_id == o.user_id))
        .map(Json)
        .ok_or(ApiError::UnknownOrder(order_id))
}

/// `GET /v1/users/{user_id}/orders`: with buyer tokens on, only the token's own user.
pub(super) async fn user_orders_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let buyer = buyers.identify(&headers)?;
    let user_id = positive_id("user id", &raw_id)?;
    if let Some(buyer) = buyer {
        buyer.must_be(user_id)?;
    }
    let orders = st
        .db
        .user_orders(user_id, 100)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "user_id": user_id, "orders": orders }),
    ))
}
