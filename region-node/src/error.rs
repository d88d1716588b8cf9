//! The one error type of the HTTP API and its mapping to status codes.
//!
//! Every expected condition has its own variant and status; only a broken invariant is a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::admission::Rejection;
use quota_shared::api::ErrorEnvelope;
use quota_shared::availability::Availability;
use uuid::Uuid;

/// An answer other than success, as the client will see it.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ApiError {
    /// 400: malformed body, path or field.
    #[error("{0}")]
    InvalidRequest(String),
    /// 413: body over the limit.
    #[error("request body is larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// 404: the product id is not on sale in this system.
    #[error("unknown product {0}")]
    UnknownProduct(i64),
    /// 404: no such order in this region.
    #[error("unknown order {0}")]
    UnknownOrder(Uuid),
    /// 404: no such route.
    #[error("no such endpoint")]
    NotFound,
    /// 405: route exists, method does not.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 403: before start or after end.
    #[error("{0}")]
    SaleNotActive(String),
    /// 409: the user already bought this product (or a purchase of theirs is in flight).
    #[error("user already purchased this product")]
    AlreadyPurchased {
        /// The existing order, when it is committed.
        order_id: Option<Uuid>,
    },
    /// 503: out of stock here for now, but units elsewhere can still move here.
    #[error("this region is out of stock for now; the sale is not over and more units can still arrive — retry shortly")]
    AwaitingStock,
    /// 421: the user's home region is another one (global per-user limit).
    #[error("this user buys in region {0}")]
    WrongRegion(String),
    /// 401: missing or wrong admin token.
    #[error("missing or invalid admin token")]
    Unauthorized,
    /// 410: nothing left in this region.
    #[error("sold out in this region")]
    SoldOut,
    /// 429: a rate limit; retry after the given seconds.
    #[error("too many requests")]
    RateLimited {
        /// Seconds until a token is available.
        retry_after_s: u64,
    },
    /// 503: Redis, Postgres or the node itself is not able to answer safely right now.
    #[error("{0}")]
    Unavailable(String),
    /// 500: an invariant broke; logged with context.
    #[error("{0}")]
    Internal(String),
}

impl From<Rejection> for ApiError {
    fn from(r: Rejection) -> Self {
        match r {
            Rejection::InvalidRequest(m) => ApiError::InvalidRequest(m),
            Rejection::SaleNotActive(m) => ApiError::SaleNotActive(m),
            // `precheck` refuses for stock only when handed the availability gate's refusal;
            // the purchase path maps that with the gate's own answer (`out_of_stock`).
            Rejection::SoldOut => ApiError::out_of_stock(Availability::SoldOut),
        }
    }
}

impl ApiError {
    /// The refusal for a buyer the availability rule turned away: 503 awaiting_stock or 410
    /// sold_out. Every such answer is built here, from [`Availability`]. (`Open` is never what
    /// a refused buyer's rule says; it maps to sold out only to keep the match total.)
    pub(crate) fn out_of_stock(availability: Availability) -> ApiError {
        match availability {
            Availability::AwaitingStock => ApiError::AwaitingStock,
            Availability::SoldOut | Availability::Open => ApiError::SoldOut,
        }
    }

    /// HTTP status.
    pub(crate) fn status(&self) -> StatusCode {
        match self {
            ApiError::InvalidRequest(_) => StatusCode::BAD_REQUEST,
            ApiError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            ApiError::UnknownProduct(_) | ApiError::UnknownOrder(_) | ApiError::NotFound => {
                StatusCode::NOT_FOUND
            }
            ApiError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ApiError::SaleNotActive(_) => StatusCode::FORBIDDEN,
            ApiError::AlreadyPurchased { .. } => StatusCode::CONFLICT,
            ApiError::SoldOut => StatusCode::GONE,
            ApiError::WrongRegion(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unauthorized => StatusCode::UNAUTHORIZED,
            ApiError::RateLimited { .. } => StatusCode::TOO_MANY_REQUESTS,
            ApiError::Unavailable(_) | ApiError::AwaitingStock => StatusCode::SERVICE_UNAVAILABLE,
            ApiError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// Stable machine-readable code (also the `outcome` label of the request metrics).
    pub(crate) fn code(&self) -> &'static str {
        match self {
            ApiError::InvalidRequest(_) => "invalid_request",
            ApiError::PayloadTooLarge(_) => "payload_too_large",
            ApiError::UnknownProduct(_) => "unknown_product",
            ApiError::UnknownOrder(_) => "unknown_order",
            ApiError::NotFound => "not_found",
            ApiError::MethodNotAllowed => "method_not_allowed",
            ApiError::SaleNotActive(_) => "sale_not_active",
            ApiError::AlreadyPurchased { .. } => "already_purchased",
            ApiError::SoldOut => "sold_out",
            ApiError::WrongRegion(_) => "wrong_region",
            ApiError::Unauthorized => "unauthorized",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::AwaitingStock => "awaiting_stock",
            ApiError::Internal(_) => "internal",
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut body = ErrorEnvelope::new(self.code(), self.to_string());
        match &self {
            ApiError::AlreadyPurchased { order_id } => {
                body = body.with("order_id", order_id.map(|o| o.to_string()));
                if order_id.is_none() {
                    body.error.message =
                        "a purchase by this user for this product is already in progress".into();
                }
            }
            ApiError::UnknownProduct(p) => body = body.with("product_id", *p),
            ApiError::WrongRegion(r) => body = body.with("home_region", r.as_str()),
            ApiError::Internal(m) => tracing::error!(error = %m, "internal error"),
            _ => {}
        }
        let mut resp = (self.status(), Json(body)).into_response();
        let retry_after = match &self {
            ApiError::RateLimited { retry_after_s } => Some((*retry_after_s).max(1)),
            ApiError::Unavailable(_) | ApiError::AwaitingStock => Some(1),
            _ => None,
        };
        if let Some(s) = retry_after {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(s));
        }
        resp
    }
}
