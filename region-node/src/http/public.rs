//! The public routes: purchase, product, order, a user's orders.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::admission::parse_purchase;
use quota_shared::model::ProductSpec;
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

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

pub(super) async fn purchase_handler(
    State(st): State<Arc<AppState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let span = tracing::info_span!("purchase", region = %st.region, product_id = %raw_id,
                                   request_id = %request_id(&headers));
    let result = async {
        st.limits.check_request(peer.ip())?;
        let body = body.map_err(|r| {
            if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
                ApiError::PayloadTooLarge(MAX_BODY_BYTES)
            } else {
                ApiError::InvalidRequest(r.body_text())
            }
        })?;
        let product_id = positive_id("product id", &raw_id)?;
        let req = parse_purchase(&body)?;
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

pub(super) async fn order_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
) -> Result<Json<Order>, ApiError> {
    let order_id = Uuid::parse_str(&raw_id)
        .map_err(|_| ApiError::InvalidRequest("order id must be a UUID".into()))?;
    st.db
        .order(order_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map(Json)
        .ok_or(ApiError::UnknownOrder(order_id))
}

pub(super) async fn user_orders_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let user_id = positive_id("user id", &raw_id)?;
    let orders = st
        .db
        .user_orders(user_id, 100)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    Ok(Json(
        serde_json::json!({ "user_id": user_id, "orders": orders }),
    ))
}
