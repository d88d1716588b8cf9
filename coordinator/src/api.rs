//! The admin HTTP API (`/v1/admin/…`, bearer-token authenticated) plus health endpoints and
//! `/metrics` (Prometheus text, no token: see [`crate::metrics`]). Every answered request is
//! logged once ([`request_log`]: method, path without its query, status, latency).
//!
//! Any instance answers reads. Writes must be made by the leader (its fence guards every ledger
//! write), so a standby forwards them to the leader's advertised URL and relays the answer.
//!
//! Every request passes one check first ([`authorize`]): [`required_scope`] says from its
//! method and path which scope it needs — none for the health endpoints, the auditor's for a
//! read, the operator's for anything else — and the presented token must hold it (401 for no
//! or an unknown token, 403 `forbidden_scope` for a known token of too small a scope).

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Path, Query, Request, State};
use axum::http::{header, Method, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post, put};
use axum::{Extension, Json, Router};
use serde::de::DeserializeOwned;

use quota_shared::admin_auth::{AdminTokens, Scope};
#[allow(unused_imports)] // some are named by the #[utoipa::path] documents only
use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, DrainView, HomeRegions, OrderRecord, ProductView,
    RegionView, Restock, RoundView, SaleReport, SetPolicy, SetSplit, StatusView,
    IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER,
};

use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::openapi::{ErrorBody, Readiness};
use crate::operation::{self, Operation};

/// A keyed call's [`Operation`], if the client sent an `Idempotency-Key`.
type Keyed = Option<Extension<Operation>>;

/// Header marking a request a standby already forwarded (never forwarded twice).
const FORWARDED: &str = "x-quota-forwarded";

/// What every handler needs: who this instance is, the escrow agent, and how to authenticate
/// and forward requests.
pub struct ApiState {
    /// This instance's id.
    pub id: String,
    /// The escrow agent over the ledger.
    pub escrow: Arc<Escrow>,
    /// The admin tokens accepted, each with its scope (see [`required_scope`]).
    pub tokens: AdminTokens,
    /// Client used to forward writes to the leader.
    pub http: reqwest::Client,
    /// The Prometheus recorder's handle `/metrics` renders ([`crate::install_metrics`]).
    pub metrics: metrics_exporter_prometheus::PrometheusHandle,
}

/// Every route of the admin API, health endpoints, and JSON error answers for the rest.
pub fn router(st: Arc<ApiState>) -> Router {
    let admin = Router::new()
        .route(
            "/v1/admin/products",
            get(list_products).post(create_product),
        )
        .route("/v1/admin/products/{id}", get(show_product))
        .route("/v1/admin/products/{id}/report", get(sale_report))
        .route("/v1/admin/orders/{order_id}", get(show_order))
        .route("/v1/admin/orders/{order_id}/cancel", post(cancel_order))
        .route("/v1/admin/products/{id}/quota", put(set_quota))
        .route("/v1/admin/products/{id}/policy", put(set_policy))
        .route("/v1/admin/products/{id}/restock", post(restock))
        .route("/v1/admin/products/{id}/end", post(end))
        .route("/v1/admin/products/{id}/rebalance", post(rebalance))
        .route("/v1/admin/regions", get(list_regions))
        .route("/v1/admin/regions/{region}/drain", post(drain))
        .route(
            "/v1/admin/home-regions",
            get(show_home_regions).put(set_home_regions),
        )
        .route("/v1/admin/status", get(status))
        .route("/v1/admin/audit", get(audit))
        .route_layer(middleware::from_fn(operation::middleware))
        .route_layer(middleware::from_fn_with_state(
            Arc::clone(&st),
            forward_writes,
        ));
    Router::new()
        .merge(admin)
        .route("/healthz", get(crate::openapi::healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        // The admin API's contract; like the health endpoints outside /v1/admin/, so it needs
        // no token (`required_scope`): it holds no data.
        .route("/openapi.json", get(crate::openapi::openapi_json))
        // The live sale page's shell: no data and no token in it (see `crate::page`).
        .route("/page/products/{id}", get(crate::page::sale_page))
        .fallback(|| async { CoordError::NotFound })
        .method_not_allowed_fallback(|| async { CoordError::MethodNotAllowed })
        // Outermost on every route and fallback alike: nothing under /v1/admin/ runs (or is
        // even told apart from a missing route) before the token's scope is checked.
        .layer(middleware::from_fn_with_state(Arc::clone(&st), authorize))
        .layer(axum::extract::DefaultBodyLimit::max(64 * 1024))
        // Outside the token check: refused requests are logged too.
        .layer(middleware::from_fn(request_log))
        .with_state(st)
}

/// The request log: one line per answered request ([`quota_shared::telemetry::log_request`]).
async fn request_log(req: Request, next: Next) -> Response {
    let started = std::time::Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let resp = next.run(req).await;
    quota_shared::telemetry::log_request(
        method.as_str(),
        &path,
        resp.status().as_u16(),
        started.elapsed(),
    );
    resp
}

/// The scope a request needs, from its method and path alone: `None` for everything outside
/// `/v1/admin/` (health endpoints, unknown paths); under it, a read (`GET`, `HEAD`: products,
/// regions, home regions, status, the audit) needs the auditor's scope (which the operator's
/// includes), and everything else — every change, and a rebalance round run now — the
/// operator's. Deciding by method keeps a new read or write on the right side without a list
/// to forget to update: a new `GET` must change nothing.
pub(crate) fn required_scope(method: &Method, path: &str) -> Option<Scope> {
    if path != "/v1/admin" && !path.starts_with("/v1/admin/") {
        return None;
    }
    if method == Method::GET || method == Method::HEAD {
        Some(Scope::Auditor)
    } else {
        Some(Scope::Operator)
    }
}

/// The one check of every request: the scope [`required_scope`] names, held by the request's
/// bearer token (compared with every accepted token in constant time).
async fn authorize(
    State(st): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, CoordError> {
    if let Some(needed) = required_scope(req.method(), req.uri().path()) {
        let presented = req
            .headers()
            .get_all(header::AUTHORIZATION)
            .iter()
            .map(axum::http::HeaderValue::as_bytes);
        st.tokens.authorize(presented, needed)?;
    }
    Ok(next.run(req).await)
}

/// Writes (every non-GET) on a standby go to the leader.
async fn forward_writes(
    State(st): State<Arc<ApiState>>,
    req: Request,
    next: Next,
) -> Result<Response, CoordError> {
    if req.method() == Method::GET || st.escrow.store.is_leader() {
        return Ok(next.run(req).await);
    }
    if req.headers().contains_key(FORWARDED) {
        return Err(CoordError::NotLeader);
    }
    let leader = st
        .escrow
        .store
        .leader_url()
        .await?
        .ok_or(CoordError::NotLeader)?;
    let (parts, body) = req.into_parts();
    let body = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| CoordError::Invalid(format!("unreadable body: {e}")))?;
    let path = parts
        .uri
        .path_and_query()
        .map_or("/", axum::http::uri::PathAndQuery::as_str);
    let mut fwd = st
        .http
        .request(parts.method.clone(), format!("{leader}{path}"))
        .header(FORWARDED, &st.id)
        .body(body);
    for h in [
        header::AUTHORIZATION,
        header::CONTENT_TYPE,
        header::HeaderName::from_static(IDEMPOTENCY_KEY_HEADER),
    ] {
        if let Some(v) = parts.headers.get(&h) {
            fwd = fwd.header(h, v);
        }
    }
    let resp = fwd
        .send()
        .await
        .map_err(|e| CoordError::Unavailable(format!("forwarding to the leader failed: {e}")))?;
    let status = resp.status();
    let replayed = resp.headers().get(IDEMPOTENT_REPLAYED_HEADER).cloned();
    let bytes = resp
        .bytes()
        .await
        .map_err(|e| CoordError::Unavailable(format!("leader answer unreadable: {e}")))?;
    let mut out = Response::builder()
        .status(status)
        .header(header::CONTENT_TYPE, "application/json");
    if let Some(v) = replayed {
        out = out.header(IDEMPOTENT_REPLAYED_HEADER, v);
    }
    Ok(out.body(Body::from(bytes)).expect("valid response"))
}

/// A request body: a JSON object (serde would also fill a struct from an array, which no
/// document of this API describes) of type `T`.
fn json_body<T: DeserializeOwned>(body: &Bytes) -> Result<T, CoordError> {
    let invalid = |e: serde_json::Error| CoordError::Invalid(format!("invalid JSON body: {e}"));
    let value: serde_json::Value = serde_json::from_slice(body).map_err(invalid)?;
    if !value.is_object() {
        return Err(CoordError::Invalid(
            "invalid JSON body: it must be a JSON object".into(),
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

/// An order id from a path: a UUID.
fn order_id(raw: &str) -> Result<uuid::Uuid, CoordError> {
    uuid::Uuid::parse_str(raw).map_err(|_| CoordError::Invalid("order id must be a UUID".into()))
}

#[utoipa::path(
    get,
    path = "/v1/admin/orders/{order_id}",
    operation_id = "showOrder",
    summary = "One order, from whichever region holds it (every region is asked)",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The order", body = OrderRecord),
        (status = 400, description = "invalid_request: not a UUID; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 404, description = "unknown_order: no region has it", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable, or a region that may hold it did not answer", body = ErrorBody),
    ),
)]
pub(crate) async fn show_order(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.order(order_id(&raw)?).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/orders/{order_id}/cancel",
    operation_id = "cancelOrder",
    summary = "Cancel a pending order in its region; its units go back on sale there",
    params(("order_id" = uuid::Uuid, Path, description = "The order"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Accepted like on every change; a cancel is harmless to repeat (a second one answers 409: the order is cancelled)")),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The order, cancelled", body = OrderRecord),
        (status = 400, description = "invalid_request: not a UUID; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope", body = ErrorBody),
        (status = 404, description = "unknown_order: no region has it", body = ErrorBody),
        (status = 409, description = "conflict: the order is not pending (paid, cancelled or expired)", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused", body = ErrorBody),
        (status = 503, description = "unavailable: etcd or the order's region unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn cancel_order(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.cancel_order(order_id(&raw)?).await?))
}

fn product_id(raw: &str) -> Result<i64, CoordError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| CoordError::Invalid("product id must be a positive integer".into()))
}

#[utoipa::path(
    post,
    path = "/v1/admin/products",
    operation_id = "createProduct",
    summary = "Create a sale (an initial split is granted at once)",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = CreateProduct, content_type = "application/json"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 201, description = "The product as the ledger has it", body = ProductView, links(
             ("ShowProduct" = (operation_id = "showProduct", parameters(("id" = "$response.body#/spec/product_id")))),
             ("SetQuota" = (operation_id = "setQuota", parameters(("id" = "$response.body#/spec/product_id")))),
             ("SetPolicy" = (operation_id = "setPolicy", parameters(("id" = "$response.body#/spec/product_id")))),
             ("Restock" = (operation_id = "restock", parameters(("id" = "$response.body#/spec/product_id")))),
             ("Rebalance" = (operation_id = "rebalance", parameters(("id" = "$response.body#/spec/product_id")))),
             ("EndSale" = (operation_id = "endSale", parameters(("id" = "$response.body#/spec/product_id")))),
             ("Status" = (operation_id = "status", parameters(("product" = "$response.body#/spec/product_id")))),
         )),
        (status = 400, description = "invalid_request: malformed body, a field out of range, end not after start, unknown or repeated regions, a split over the total; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 409, description = "conflict: the product already exists", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn create_product(
    State(st): State<Arc<ApiState>>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let req: CreateProduct = json_body(&body)?;
    Ok((
        StatusCode::CREATED,
        Json(st.escrow.create(req, op.as_deref()).await?),
    ))
}

#[utoipa::path(
    get,
    path = "/v1/admin/products",
    operation_id = "listProducts",
    summary = "Every product with its ledger",
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The products", body = Vec<ProductView>),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn list_products(
    State(st): State<Arc<ApiState>>,
) -> Result<impl IntoResponse, CoordError> {
    let mut out = Vec::new();
    for id in st.escrow.store.product_ids().await? {
        out.push(st.escrow.store.read(id).await?.view());
    }
    Ok(Json(out))
}

#[utoipa::path(
    get,
    path = "/v1/admin/products/{id}",
    operation_id = "showProduct",
    summary = "One product with its ledger",
    params(("id" = i64, Path, minimum = 1, description = "The product")),
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn show_product(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.store.read(product_id(&raw)?).await?.view()))
}

#[utoipa::path(
    get,
    path = "/v1/admin/products/{id}/report",
    operation_id = "saleReport",
    summary = "What became of a sale's units: per region sold, pending, paid, cancelled, \
               expired, returned and resold, revenue, and the audit",
    params(("id" = i64, Path, minimum = 1, description = "The product")),
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The report (regions that could not be read are named in \
            `unreadable` and left out of the totals)", body = SaleReport),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable, or no consistent cut for the audit", body = ErrorBody),
    ),
)]
pub(crate) async fn sale_report(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.sale_report(product_id(&raw)?).await?))
}

#[utoipa::path(
    put,
    path = "/v1/admin/products/{id}/quota",
    operation_id = "setQuota",
    summary = "Set a static split (switches the product to the static policy)",
    params(("id" = i64, Path, minimum = 1, description = "The product"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = SetSplit, content_type = "application/json"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The moves made and the product after them", body = RoundView),
        (status = 400, description = "invalid_request: malformed body, unknown regions, a negative share, a split over the total; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn set_quota(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let id = product_id(&raw)?;
    let req: SetSplit = json_body(&body)?;
    let (product, moves) = st.escrow.set_split(id, req.split, op.as_deref()).await?;
    Ok(Json(RoundView { moves, product }))
}

#[utoipa::path(
    put,
    path = "/v1/admin/products/{id}/policy",
    operation_id = "setPolicy",
    summary = "Set how the rebalancer moves quota",
    params(("id" = i64, Path, minimum = 1, description = "The product"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = SetPolicy, content_type = "application/json"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "invalid_request: malformed body; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn set_policy(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let id = product_id(&raw)?;
    let req: SetPolicy = json_body(&body)?;
    Ok(Json(
        st.escrow.set_policy(id, req.policy, op.as_deref()).await?,
    ))
}

#[utoipa::path(
    post,
    path = "/v1/admin/products/{id}/restock",
    operation_id = "restock",
    summary = "Add units to the pool (and the total)",
    params(("id" = i64, Path, minimum = 1, description = "The product"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = Restock, content_type = "application/json"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "invalid_request: malformed body, a total over the maximum; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn restock(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let id = product_id(&raw)?;
    let req: Restock = json_body(&body)?;
    Ok(Json(st.escrow.restock(id, req.units, op.as_deref()).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/products/{id}/end",
    operation_id = "endSale",
    summary = "End the sale now (refused everywhere from then on)",
    params(("id" = i64, Path, minimum = 1, description = "The product"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn end(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
    op: Keyed,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.end(product_id(&raw)?, op.as_deref()).await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/products/{id}/rebalance",
    operation_id = "rebalance",
    summary = "Run one rebalance round now",
    params(("id" = i64, Path, minimum = 1, description = "The product"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The moves made and the product after them", body = RoundView),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn rebalance(
    State(st): State<Arc<ApiState>>,
    Path(raw): Path<String>,
) -> Result<impl IntoResponse, CoordError> {
    let id = product_id(&raw)?;
    let moves = st.escrow.round(id).await?;
    Ok(Json(RoundView {
        moves,
        product: st.escrow.store.read(id).await?.view(),
    }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/regions",
    operation_id = "listRegions",
    summary = "Registered regions, alive or not",
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The regions", body = Vec<RegionView>),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn list_regions(
    State(st): State<Arc<ApiState>>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.store.regions().await?))
}

#[utoipa::path(
    post,
    path = "/v1/admin/regions/{region}/drain",
    operation_id = "drainRegion",
    summary = "Start (or stop) draining a region: its unsold quota returns to the pool",
    params(("region" = String, Path, pattern = "^[a-z][a-z0-9-]{0,31}$", description = "The region"), ("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = Option<Drain>, content_type = "application/json", description = "Empty: start draining"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "Whether the region drains now", body = DrainView),
        (status = 400, description = "invalid_request: malformed body, an unknown region; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn drain(
    State(st): State<Arc<ApiState>>,
    Path(region): Path<String>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let req: Drain = if body.is_empty() {
        Drain { on: true }
    } else {
        json_body(&body)?
    };
    st.escrow.drain(&region, req.on, op.as_deref()).await?;
    Ok(Json(DrainView {
        draining: req.on,
        region,
    }))
}

#[utoipa::path(
    get,
    path = "/v1/admin/home-regions",
    operation_id = "showHomeRegions",
    summary = "The home regions new sales get",
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The list", body = HomeRegions),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn show_home_regions(
    State(st): State<Arc<ApiState>>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.store.home_regions().await?))
}

#[utoipa::path(
    put,
    path = "/v1/admin/home-regions",
    operation_id = "setHomeRegions",
    summary = "Set the home regions new sales get (sales already on keep theirs)",
    params(("Idempotency-Key" = Option<String>, Header, min_length = 1, max_length = 128, pattern = "^[A-Za-z0-9._:-]+$", description = "Names this change: sent again with the same key and body it is applied once (the answer then carries Idempotent-Replayed: true)")),
    request_body(content = HomeRegions, content_type = "application/json"),
    security(("adminToken" = ["operator"])),
    responses(
        (status = 200, description = "The list as stored (sorted)", body = HomeRegions),
        (status = 400, description = "invalid_request: malformed body, unknown or repeated regions; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the operator scope (auditor, region-admin)", body = ErrorBody),
        (status = 422, description = "idempotency_key_reused: the key was used for another call; nothing was changed", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable or the ledger kept changing; not_leader: no leader to forward to. Retry after Retry-After (with the same Idempotency-Key)", body = ErrorBody),
    ),
)]
pub(crate) async fn set_home_regions(
    State(st): State<Arc<ApiState>>,
    op: Keyed,
    body: Bytes,
) -> Result<impl IntoResponse, CoordError> {
    let req: HomeRegions = json_body(&body)?;
    Ok(Json(
        st.escrow
            .set_home_regions(req.regions, op.as_deref())
            .await?,
    ))
}

/// `?product=ID` narrows status and audit to one product (read from a map, which takes any
/// query string, so a malformed one is refused by [`product_id`] as JSON like every error).
fn only(q: &BTreeMap<String, String>) -> Result<Option<i64>, CoordError> {
    q.get("product").map(|p| product_id(p)).transpose()
}

#[utoipa::path(
    get,
    path = "/v1/admin/status",
    operation_id = "status",
    summary = "What etcd says of every product (or one): ledger and region reports",
    params(("product" = Option<i64>, Query, minimum = 1, description = "Only this product")),
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The status", body = StatusView),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn status(
    State(st): State<Arc<ApiState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.status(only(&q)?).await?))
}

#[utoipa::path(
    get,
    path = "/v1/admin/audit",
    operation_id = "audit",
    summary = "The conservation audit of every product (or one), reading every region",
    params(("product" = Option<i64>, Query, minimum = 1, description = "Only this product")),
    security(("adminToken" = ["auditor"])),
    responses(
        (status = 200, description = "The verdict", body = AuditReport),
        (status = 400, description = "invalid_request: a bad product id; nothing was changed", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, a malformed or an unknown one", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a known token without the auditor scope (the region-admin token)", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 503, description = "unavailable: etcd unreachable", body = ErrorBody),
    ),
)]
pub(crate) async fn audit(
    State(st): State<Arc<ApiState>>,
    Query(q): Query<BTreeMap<String, String>>,
) -> Result<impl IntoResponse, CoordError> {
    Ok(Json(st.escrow.audit(only(&q)?).await?))
}

/// `GET /metrics`: Prometheus text, the ledger read from etcd now.
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format 0.0.4), no token",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain")),
)]
pub(crate) async fn metrics(State(st): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        crate::metrics::render(&st.escrow, &st.metrics).await,
    )
}

/// `GET /readyz`: whether this instance reaches etcd (leader or standby alike).
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "Ready: etcd reachable; says whether this instance leads",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready: etcd unreachable", body = Readiness),
    ),
)]
pub(crate) async fn readyz(State(st): State<Arc<ApiState>>) -> Response {
    let leader = st.escrow.store.is_leader();
    match st.escrow.store.ping().await {
        Ok(()) => Json(Readiness {
            status: "ready",
            id: st.id.clone(),
            leader: Some(leader),
            etcd: None,
        })
        .into_response(),
        Err(e) => (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(Readiness {
                status: "not_ready",
                id: st.id.clone(),
                leader: None,
                etcd: Some(e.to_string()),
            }),
        )
            .into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every route of the API, with the scope it needs: reads the auditor's, changes (and a
    /// rebalance round now) the operator's, health endpoints none.
    #[test]
    fn every_route_needs_the_scope_the_table_says() {
        use Scope::{Auditor, Operator};
        let routes: &[(Method, &str, Option<Scope>)] = &[
            (Method::GET, "/v1/admin/products", Some(Auditor)),
            (Method::POST, "/v1/admin/products", Some(Operator)),
            (Method::GET, "/v1/admin/products/1001", Some(Auditor)),
            (Method::HEAD, "/v1/admin/products/1001", Some(Auditor)),
            (Method::PUT, "/v1/admin/products/1001/quota", Some(Operator)),
            (
                Method::PUT,
                "/v1/admin/products/1001/policy",
                Some(Operator),
            ),
            (
                Method::POST,
                "/v1/admin/products/1001/restock",
                Some(Operator),
            ),
            (Method::POST, "/v1/admin/products/1001/end", Some(Operator)),
            (
                Method::POST,
                "/v1/admin/products/1001/rebalance",
                Some(Operator),
            ),
            (Method::GET, "/v1/admin/regions", Some(Auditor)),
            (Method::POST, "/v1/admin/regions/east/drain", Some(Operator)),
            (Method::GET, "/v1/admin/home-regions", Some(Auditor)),
            (Method::PUT, "/v1/admin/home-regions", Some(Operator)),
            (Method::GET, "/v1/admin/status", Some(Auditor)),
            (Method::GET, "/v1/admin/audit", Some(Auditor)),
            // Unknown admin paths and methods are checked too (no route probing).
            (Method::DELETE, "/v1/admin/products/1001", Some(Operator)),
            (Method::PATCH, "/v1/admin/status", Some(Operator)),
            (Method::GET, "/v1/admin/nothing-here", Some(Auditor)),
            (Method::GET, "/v1/admin", Some(Auditor)),
            (Method::GET, "/healthz", None),
            (Method::GET, "/readyz", None),
            (Method::GET, "/metrics", None),
            (Method::GET, "/openapi.json", None),
            (Method::GET, "/page/products/1001", None),
            (Method::GET, "/v1/administrator", None),
            (Method::GET, "/", None),
        ];
        for (method, path, want) in routes {
            assert_eq!(required_scope(method, path), *want, "{method} {path}");
        }
    }

    /// What each kind of token may do, end to end through [`required_scope`] and the shared
    /// check: the table of issue 10 §3.
    #[test]
    fn each_token_may_do_what_its_scope_allows() {
        use quota_shared::admin_auth::{AdminToken, Denied};
        let mut tokens = AdminTokens::default();
        for (scope, t) in [
            (Scope::Operator, "operator-token-0123456789"),
            (Scope::Auditor, "auditor-token-0123456789"),
            (Scope::RegionAdmin, "region-admin-token-0123456789"),
        ] {
            tokens.add(scope, AdminToken::new(t)).unwrap();
        }
        let answer = |token: &str, method: Method, path: &str| {
            let h = format!("Bearer {token}");
            let needed = required_scope(&method, path).unwrap();
            tokens.authorize([h.as_bytes()], needed).map_err(|d| {
                let e = CoordError::from(d);
                e.status_code()
            })
        };
        let write = || (Method::POST, "/v1/admin/products/1/end");
        let read = || (Method::GET, "/v1/admin/audit");
        let (m, p) = write();
        assert!(answer("operator-token-0123456789", m, p).is_ok());
        let (m, p) = read();
        assert!(answer("operator-token-0123456789", m, p).is_ok());
        let (m, p) = read();
        assert!(answer("auditor-token-0123456789", m, p).is_ok());
        let (m, p) = write();
        assert_eq!(
            answer("auditor-token-0123456789", m, p),
            Err((StatusCode::FORBIDDEN, "forbidden_scope"))
        );
        for (m, p) in [read(), write()] {
            assert_eq!(
                answer("region-admin-token-0123456789", m, p),
                Err((StatusCode::FORBIDDEN, "forbidden_scope"))
            );
        }
        let (m, p) = read();
        assert_eq!(
            answer("someone-elses-token-0123", m, p),
            Err((StatusCode::UNAUTHORIZED, "unauthorized"))
        );
        assert_eq!(
            CoordError::from(Denied::NoToken).status_code(),
            (StatusCode::UNAUTHORIZED, "unauthorized")
        );
    }
}
