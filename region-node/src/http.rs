//! The HTTP API: routing, extraction with JSON errors for every rejection, request metrics.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, DefaultBodyLimit, Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use quota_shared::admission::parse_purchase;
use quota_shared::model::ProductSpec;
use serde::Serialize;
use tracing::Instrument;
use uuid::Uuid;

use crate::error::ApiError;
use crate::purchase;
use crate::server::AppState;

/// Largest purchase body accepted (a valid one is under 60 bytes).
pub const MAX_BODY_BYTES: usize = 4096;

/// The OpenAPI 3 document of this API.
pub const OPENAPI: &str = include_str!("../openapi.json");

/// Every route of the service.
pub fn router(st: Arc<AppState>) -> Router {
    Router::new()
        .route("/v1/products/{product_id}/purchase", post(purchase_handler))
        .route("/v1/products/{product_id}", get(product_handler))
        .route("/v1/orders/{order_id}", get(order_handler))
        .route("/v1/users/{user_id}/orders", get(user_orders_handler))
        .route("/v1/admin/products/{product_id}/audit", get(audit_handler))
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz_handler))
        .route("/metrics", get(metrics_handler))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(st)
}

/// Parses a positive integer path segment.
fn positive_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::InvalidRequest(format!("{what} must be a positive integer")))
}

fn request_id(headers: &HeaderMap) -> String {
    headers
        .get("x-request-id")
        .and_then(|v| v.to_str().ok())
        .filter(|v| !v.is_empty() && v.len() <= 64)
        .map(str::to_string)
        .unwrap_or_else(|| Uuid::new_v4().to_string())
}

async fn purchase_handler(
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
struct ProductView {
    #[serde(flatten)]
    spec: ProductSpec,
    region: String,
    sold: i64,
    available: i64,
    active: bool,
}

async fn product_handler(
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

async fn order_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
) -> Result<Json<crate::db::Order>, ApiError> {
    let order_id = Uuid::parse_str(&raw_id)
        .map_err(|_| ApiError::InvalidRequest("order id must be a UUID".into()))?;
    st.db
        .order(order_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .map(Json)
        .ok_or(ApiError::UnknownOrder(order_id))
}

async fn user_orders_handler(
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

/// `GET /v1/admin/products/{id}/audit` (bearer token): this region's truth for the
/// coordinator's conservation audit — the quota row and orders in one snapshot, plus Redis.
async fn audit_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<serde_json::Value>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&st.admin_token, presented) {
        (Some(t), Some(p)) if quota_shared::api::constant_time_eq(t.as_bytes(), p.as_bytes()) => {}
        _ => return Err(ApiError::Unauthorized),
    }
    let product_id = positive_id("product id", &raw_id)?;
    let row = st
        .db
        .audit(product_id)
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?
        .ok_or(ApiError::UnknownProduct(product_id))?;
    let redis_stock = st.stock.peek(product_id).await.ok().flatten();
    let in_flight = match st.stock.snapshot(product_id).await {
        Ok(Some(t)) => Some(t.iter().map(|t| t.quantity).sum::<i64>()),
        _ => None,
    };
    let mut v = serde_json::to_value(&row).expect("serialisable");
    v["region"] = st.region.clone().into();
    v["product_id"] = product_id.into();
    v["redis_stock"] = redis_stock.into();
    v["redis_in_flight"] = in_flight.into();
    Ok(Json(v))
}

/// 200 when Postgres (with current migrations) and Redis answer; etcd is reported but not
/// required: a region cut off from etcd still sells what it holds.
async fn readyz_handler(State(st): State<Arc<AppState>>) -> Response {
    let pg = match st.db.ready().await {
        Ok(true) => "ok".to_string(),
        Ok(false) => "migrations pending".to_string(),
        Err(e) => e.to_string(),
    };
    let redis = match st.stock.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let etcd = if st.etcd_connected.load(std::sync::atomic::Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    let ready = pg == "ok" && redis == "ok";
    let body = serde_json::json!({
        "status": if ready { "ready" } else { "not_ready" },
        "region": st.region, "postgres": pg, "redis": redis, "etcd": etcd,
    });
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

async fn metrics_handler(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let s = st.db.pool_status();
    metrics::gauge!("quota_pg_pool_connections", "state" => "size").set(s.size as f64);
    metrics::gauge!("quota_pg_pool_connections", "state" => "idle").set(s.available as f64);
    metrics::gauge!("quota_pg_pool_connections", "state" => "max").set(s.max_size as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}
