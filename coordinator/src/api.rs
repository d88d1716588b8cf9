//! The admin HTTP API (`/v1/admin/…`, bearer-token authenticated) plus health endpoints.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Request, State};
use axum::http::{header, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, put};
use axum::{Json, Router};
use chrono::{Duration, Utc};
use quota_shared::model::ProductSpec;
use serde::de::DeserializeOwned;

use crate::error::CoordError;
use crate::store::Store;
use crate::view::{CreateProduct, ProductView, SetSplit};

/// Shared by the handlers.
pub struct ApiState {
    /// This instance's id.
    pub id: String,
    /// The ledger.
    pub store: Store,
    /// Expected bearer token.
    pub admin_token: String,
}

/// Every route.
pub fn router(st: Arc<ApiState>) -> Router {
    let admin = Router::new()
        .route(
            "/v1/admin/products",
            get(list_products).post(create_product),
        )
        .route("/v1/admin/products/{id}", get(show_product))
        .route("/v1/admin/products/{id}/quota", put(set_quota))
        .route("/v1/admin/regions", get(list_regions))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&st),
            require_token,
        ));
    Router::new()
        .merge(admin)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .fallback(|| async { CoordError::NotFound })
        .method_not_allowed_fallback(|| async { CoordError::MethodNotAllowed })
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        .with_state(st)
}

/// Constant-time comparison, so the token cannot be guessed byte by byte from timings.
fn same(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(st): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, CoordError> {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !same(presented.as_bytes(), st.admin_token.as_bytes()) {
        return Err(CoordError::Unauthorized);
    }
    Ok(next.run(req).await)
}

fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, CoordError> {
    serde_json::from_slice(body).map_err(|e| CoordError::Invalid(format!("invalid JSON body: {e}")))
}

fn product_id(raw: &str) -> Result<i64, CoordError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| CoordError::Invalid("product id must be a positive integer".into()))
}

async fn create_product(
    State(st): State<Arc<ApiState>>,
    body: Bytes,
) -> Result<(StatusCode, Json<ProductView>), CoordError> {
    let req: CreateProduct = json_body(&body)?;
    let start = req.start_time.unwrap_or_else(Utc::now);
    let spec = ProductSpec {
        product_id: req.product_id,
        name: req.name,
        total: req.total,
        price: req.price,
        original_price: req.original_price.unwrap_or(req.price),
        start_time: start,
        end_time: req.end_time.unwrap_or(start + Duration::hours(1)),
        per_user_limit: req.per_user_limit.unwrap_or(1),
    };
    let read = st.store.create(spec, req.split).await?;
    Ok((StatusCode::CREATED, Json(read.view())))
}

async fn list_products(
    State(st): State<Arc<ApiState>>,
) -> Result<Json<Vec<ProductView>>, CoordError> {
    let mut out = Vec::new();
    for id in st.store.product_ids().await? {
        out.push(st.store.read(id).await?.view());
    }
    Ok(Json(out))
}

async fn show_product(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<Json<ProductView>, CoordError> {
    Ok(Json(st.store.read(product_id(&raw)?).await?.view()))
}

async fn set_quota(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    body: Bytes,
) -> Result<Json<ProductView>, CoordError> {
    let id = product_id(&raw)?;
    let req: SetSplit = json_body(&body)?;
    if req.split.is_empty() {
        return Err(CoordError::Invalid(
            "split must name at least one region".into(),
        ));
    }
    Ok(Json(st.store.set_split(id, &req.split).await?.view()))
}

async fn list_regions(State(st): State<Arc<ApiState>>) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.store.regions().await?))
}

async fn readyz(State(st): State<Arc<ApiState>>) -> Response {
    match st.store.ping().await {
        Ok(()) => Json(serde_json::json!({"status": "ready", "id": st.id})).into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(serde_json::json!({"status": "not_ready", "id": st.id, "etcd": e.to_string()})),
        )
            .into_response(),
    }
}
