//! The operational routes: the region's audit (bearer token), `/readyz`, `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::wire::RegionTruth;

use super::extract::positive_id;
use crate::db::DbError;
use crate::error::ApiError;
use crate::state::AppState;

/// `GET /v1/admin/products/{id}/audit` (bearer token): this region's truth for the
/// coordinator's conservation audit — the quota row, the orders, and Redis's stock and tickets
/// (read in one atomic step), all while holding the quota row lock: nothing commits between
/// the reads, so `sold` = order units and `stock + uncommitted in flight = available` hold
/// exactly, and any difference is a real fault, not a race. A product this region never
/// learned of has no row: its truth is all zeros.
pub(super) async fn audit_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RegionTruth>, ApiError> {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "));
    match (&st.admin_token, presented) {
        (Some(t), Some(p)) if quota_shared::api::constant_time_eq(t.as_bytes(), p.as_bytes()) => {}
        _ => return Err(ApiError::Unauthorized),
    }
    let product_id = positive_id("product id", &raw_id)?;
    let truth = st.db.bounded(region_truth(&st, product_id)).await;
    truth
        .map(Json)
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// The locked read behind [`audit_handler`] (bounded by the caller).
async fn region_truth(st: &AppState, product_id: i64) -> Result<RegionTruth, DbError> {
    let mut conn = st.db.quota_conn().await?;
    let Some(locked) = conn.lock(product_id).await? else {
        return Ok(RegionTruth {
            region: st.region.clone(),
            product_id,
            ..RegionTruth::default()
        });
    };
    let snap = locked.audit().await?;
    let (redis_stock, redis_in_flight) = match st.stock.peek_all(product_id).await {
        Ok(Some((stock, tickets))) => {
            let in_flight = locked.uncommitted_units(&tickets).await?;
            (Some(stock), Some(in_flight))
        }
        _ => (None, None),
    };
    locked.commit().await?;
    let q = snap.quota;
    Ok(RegionTruth {
        region: st.region.clone(),
        product_id,
        granted: q.applied_grant,
        released: q.released_locally,
        sold: q.sold,
        available: q.available(),
        order_count: i64::try_from(snap.buyers.len()).unwrap_or(i64::MAX),
        order_units: snap.buyers.iter().map(|b| b.1).sum(),
        buyers: snap.buyers,
        redis_stock,
        redis_in_flight,
    })
}

/// 200 when Postgres (with current migrations) and Redis answer; etcd is reported but not
/// required: a region cut off from etcd still sells what it holds.
pub(super) async fn readyz_handler(State(st): State<Arc<AppState>>) -> Response {
    let pg = match st.db.bounded(st.db.ready()).await {
        Ok(true) => "ok".to_string(),
        Ok(false) => "migrations pending".to_string(),
        Err(e) => e.to_string(),
    };
    let redis = match st.stock.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let etcd = if st.etcd_connected.load(Ordering::Relaxed) {
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

pub(super) async fn metrics_handler(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let s = st.db.pool_status();
    metrics::gauge!("quota_pg_pool_connections", "state" => "size").set(s.size as f64);
    metrics::gauge!("quota_pg_pool_connections", "state" => "idle").set(s.available as f64);
    metrics::gauge!("quota_pg_pool_connections", "state" => "max").set(s.max_size as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}
