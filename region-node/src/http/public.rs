//! The public routes: purchase, product, order, a user's orders.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, Path, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::{Extension, Json};
use quota_shared::admission::parse_purchase_body;
use quota_shared::model::ProductSpec;
use serde::Serialize;
use tracing::Instrument;
use utoipa::ToSchema;
use uuid::Uuid;

use super::buyer::BuyerAuth;
use super::docs::{ErrorBody, PurchaseBody};
use super::extract::{positive_id, MAX_BODY_BYTES};
use crate::db::Order;
use crate::error::ApiError;
use crate::purchase;
use crate::state::AppState;

/// The purchase's request id: the client's `X-Request-Id` (1–64 visible ASCII characters, as
/// the OpenAPI document says; anything else is refused with 400 rather than silently replaced),
/// or a fresh one. Logged with the purchase and sent back in the answer's `X-Request-Id`.
fn request_id(headers: &HeaderMap) -> Result<String, ApiError> {
    let Some(v) = headers.get(REQUEST_ID) else {
        return Ok(Uuid::new_v4().to_string());
    };
    let ok =
        (1..=MAX_REQUEST_ID).contains(&v.len()) && v.as_bytes().iter().all(u8::is_ascii_graphic);
    if ok {
        Ok(String::from_utf8_lossy(v.as_bytes()).into_owned())
    } else {
        Err(ApiError::InvalidRequest(format!(
            "X-Request-Id must be 1-{MAX_REQUEST_ID} visible ASCII characters"
        )))
    }
}

/// The request-id header a purchase takes and answers with.
pub(super) const REQUEST_ID: &str = "x-request-id";
/// Longest `X-Request-Id` accepted.
pub(super) const MAX_REQUEST_ID: usize = 64;

/// `POST /v1/products/{id}/purchase`. Checks in order, each refusing before anything costlier
/// runs: the buyer token (when on), the global and per-IP rate limits (the IP is the one
/// `--trusted-proxies` vouch for), the body, the token's user against the body's, the per-user
/// limit; then the purchase itself. With a token the body may leave `user_id` out: the
/// token's `sub` buys.
#[utoipa::path(
    post,
    path = "/v1/products/{product_id}/purchase",
    operation_id = "purchase",
    summary = "Buy a product in this region",
    description = "A retry of a purchase never buys twice (one order per user and product). \
                   With buyer tokens on, the token's `sub` buys; `user_id` may be left out.",
    params(
        ("product_id" = i64, Path, minimum = 1, description = "The product"),
        ("X-Request-Id" = Option<String>, Header, min_length = 1, max_length = 64,
         pattern = "^[!-~]+$",
         description = "The client's id for this request, logged with it and sent back; \
                        without one the node makes one up"),
    ),
    request_body(content = PurchaseBody, content_type = "application/json"),
    security(("buyerToken" = []), ()),
    responses(
        (status = 201, description = "Order created", body = Order,
         links(
             ("GetOrder" = (operation_id = "getOrder",
                 parameters(("order_id" = "$response.body#/order_id")))),
             ("ListUserOrders" = (operation_id = "listUserOrders",
                 parameters(("user_id" = "$response.body#/user_id")))),
             ("ListUserEvents" = (operation_id = "listUserEvents",
                 parameters(("user_id" = "$response.body#/user_id")))),
         )),
        (status = 400, description = "invalid_request: malformed JSON, an unknown field, a \
            non-positive or non-integer user_id (or none while buyer tokens are off), a quantity \
            outside 1..the product's per_user_limit, a bad path id or X-Request-Id", body = ErrorBody),
        (status = 401, description = "token_missing, token_expired, token_invalid (buyer \
            tokens on): nothing was changed", body = ErrorBody),
        (status = 403, description = "sale_not_active: before start or after end; \
            user_mismatch: user_id is not the buyer token's sub", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 409, description = "already_purchased: the user holds an order for this \
            product, its order_id included (null while their other purchase is in flight): \
            show it, do not retry", body = ErrorBody,
         links(("GetExistingOrder" = (operation_id = "getOrder",
             parameters(("order_id" = "$response.body#/error/order_id")))))),
        (status = 410, description = "sold_out: nothing left here and nothing can come here", body = ErrorBody),
        (status = 413, description = "payload_too_large: body over 4096 bytes", body = ErrorBody),
        (status = 421, description = "wrong_region: the sale has home regions and this buyer's \
            is home_region: buy there", body = ErrorBody),
        (status = 429, description = "rate_limited: retry after Retry-After seconds", body = ErrorBody),
        (status = 503, description = "awaiting_stock: out of stock here for now, units can \
            still move here — retry after Retry-After with backoff; unavailable: Redis or \
            Postgres down or being rebuilt — retry likewise. A retry never buys twice", body = ErrorBody),
    ),
)]
pub(super) async fn purchase_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Response {
    let started = Instant::now();
    let request_id = request_id(&headers);
    let shown_id = request_id
        .as_ref()
        .map_or_else(|_| Uuid::new_v4().to_string(), Clone::clone);
    let span = tracing::info_span!("purchase", region = %st.region, product_id = %raw_id,
                                   request_id = %shown_id);
    let result = async {
        request_id?;
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
    let mut resp = match result {
        Ok(order) => (StatusCode::CREATED, Json(order)).into_response(),
        Err(e) => e.into_response(),
    };
    if let Ok(v) = HeaderValue::from_str(&shown_id) {
        resp.headers_mut().insert(REQUEST_ID, v);
    }
    resp
}

/// `GET /v1/products/{id}`: the spec plus this region's `sold` and `available`.
#[derive(Serialize, ToSchema)]
pub(super) struct ProductView {
    /// The sale as every region sees it.
    #[serde(flatten)]
    spec: ProductSpec,
    /// The region answering.
    region: String,
    /// Units this region sold.
    sold: i64,
    /// Units this region can still sell now.
    available: i64,
    /// Whether purchases are accepted now (in the window, not ended).
    active: bool,
}

/// `GET /v1/users/{user_id}/orders`: a user's orders in this region.
#[derive(Serialize, ToSchema)]
pub(super) struct UserOrders {
    /// The user.
    user_id: i64,
    /// Newest first, at most 100.
    orders: Vec<Order>,
}

#[utoipa::path(
    get,
    path = "/v1/products/{product_id}",
    operation_id = "getProduct",
    summary = "A product's spec plus this region's sold and available units",
    params(("product_id" = i64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The product", body = ProductView),
        (status = 400, description = "invalid_request: a bad product id", body = ErrorBody),
        (status = 404, description = "unknown_product", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/v1/orders/{order_id}",
    operation_id = "getOrder",
    summary = "One order sold by this region (with buyer tokens on: only one of the token's user)",
    params(("order_id" = uuid::Uuid, Path, description = "The order")),
    security(("buyerToken" = []), ()),
    responses(
        (status = 200, description = "The order", body = Order),
        (status = 400, description = "invalid_request: the order id is not a UUID", body = ErrorBody),
        (status = 401, description = "token_missing, token_expired, token_invalid (buyer tokens on)", body = ErrorBody),
        (status = 404, description = "unknown_order: no such order here, or (buyer tokens on) \
            another user's — answered alike", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
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
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/orders",
    operation_id = "listUserOrders",
    summary = "A user's orders in this region, newest first (at most 100)",
    params(("user_id" = i64, Path, minimum = 1, description = "The user")),
    security(("buyerToken" = []), ()),
    responses(
        (status = 200, description = "The orders", body = UserOrders),
        (status = 400, description = "invalid_request: a bad user id", body = ErrorBody),
        (status = 401, description = "token_missing, token_expired, token_invalid (buyer tokens on)", body = ErrorBody),
        (status = 403, description = "user_mismatch: another user than the buyer token's", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn user_orders_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<UserOrders>, ApiError> {
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
    Ok(Json(UserOrders { user_id, orders }))
}
