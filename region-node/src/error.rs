//! The one error type of the HTTP API and its mapping to status codes.
//!
//! Every expected condition has its own variant and status; only a broken invariant is a 500.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::admin_auth::{Denied, Scope, FORBIDDEN_SCOPE, REQUIRED_SCOPE_FIELD};
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
    /// 403: a known admin token whose scope does not allow the request (on a node: any token
    /// but the region-admin one, when one is configured); names the scope needed.
    #[error("{}", Denied::Forbidden { held: *held, needed: *needed })]
    ForbiddenScope {
        /// The scope of the presented token.
        held: Scope,
        /// The scope the request needs.
        needed: Scope,
    },
    /// 401: buyer tokens are required here and the request carries none (no `Authorization:
    /// Bearer …` header).
    #[error("a buyer token is required: send Authorization: Bearer <token>")]
    TokenMissing,
    /// 401: the buyer token's `exp` (plus the leeway) has passed.
    #[error("the buyer token has expired")]
    TokenExpired,
    /// 401: the buyer token is not acceptable (signature, algorithm, issuer, audience, claims);
    /// the reason is for the client's developer.
    #[error("invalid buyer token: {0}")]
    TokenInvalid(String),
    /// 403: the request names another user than its buyer token's `sub`.
    #[error("the user id in the request is not the buyer token's")]
    UserMismatch,
    /// 409: the order is not pending, so it cannot be paid or cancelled (names its status).
    #[error("the order is {0}, not pending")]
    OrderNotPending(quota_shared::order::OrderStatus),
    /// 409: the payment reference already paid another order.
    #[error("this payment reference already paid another order")]
    PaymentRefUsed,
    /// 422: the amount paid is not what the order costs.
    #[error("the amount paid is not what the order costs ({due})")]
    AmountMismatch {
        /// Unit price × quantity.
        due: rust_decimal::Decimal,
    },
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
            Rejection::UserMismatch => ApiError::UserMismatch,
            // `precheck` refuses for stock only when handed the availability gate's refusal;
            // the purchase path maps that with the gate's own answer (`out_of_stock`).
            Rejection::SoldOut => ApiError::out_of_stock(Availability::SoldOut),
        }
    }
}

impl From<Denied> for ApiError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NoToken | Denied::UnknownToken => ApiError::Unauthorized,
            Denied::Forbidden { held, needed } => ApiError::ForbiddenScope { held, needed },
        }
    }
}

impl ApiError {
    /// Every code [`ApiError::code`] can answer with, for the OpenAPI document's error schema
    /// (a unit test of `http::openapi` holds the two together).
    pub(crate) const CODES: [&'static str; 23] = [
        "invalid_request",
        "payload_too_large",
        "unknown_product",
        "unknown_order",
        "not_found",
        "method_not_allowed",
        "sale_not_active",
        "already_purchased",
        "sold_out",
        "wrong_region",
        "unauthorized",
        FORBIDDEN_SCOPE,
        "token_missing",
        "token_expired",
        "token_invalid",
        "user_mismatch",
        "rate_limited",
        "unavailable",
        "awaiting_stock",
        "order_not_pending",
        "payment_ref_used",
        "amount_mismatch",
        "internal",
    ];

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
            ApiError::SaleNotActive(_)
            | ApiError::UserMismatch
            | ApiError::ForbiddenScope { .. } => StatusCode::FORBIDDEN,
            ApiError::AlreadyPurchased { .. }
            | ApiError::OrderNotPending(_)
            | ApiError::PaymentRefUsed => StatusCode::CONFLICT,
            ApiError::AmountMismatch { .. } => StatusCode::UNPROCESSABLE_ENTITY,
            ApiError::SoldOut => StatusCode::GONE,
            ApiError::WrongRegion(_) => StatusCode::MISDIRECTED_REQUEST,
            ApiError::Unauthorized
            | ApiError::TokenMissing
            | ApiError::TokenExpired
            | ApiError::TokenInvalid(_) => StatusCode::UNAUTHORIZED,
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
            ApiError::ForbiddenScope { .. } => FORBIDDEN_SCOPE,
            ApiError::TokenMissing => "token_missing",
            ApiError::TokenExpired => "token_expired",
            ApiError::TokenInvalid(_) => "token_invalid",
            ApiError::UserMismatch => "user_mismatch",
            ApiError::RateLimited { .. } => "rate_limited",
            ApiError::Unavailable(_) => "unavailable",
            ApiError::AwaitingStock => "awaiting_stock",
            ApiError::OrderNotPending(_) => "order_not_pending",
            ApiError::PaymentRefUsed => "payment_ref_used",
            ApiError::AmountMismatch { .. } => "amount_mismatch",
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
            ApiError::OrderNotPending(s) => body = body.with("status", s.as_str()),
            ApiError::AmountMismatch { due } => body = body.with("amount_due", due.to_string()),
            ApiError::ForbiddenScope { needed, .. } => {
                body = body.with(REQUIRED_SCOPE_FIELD, needed.name());
            }
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
        // Every 401 names the scheme to use (RFC 9110 §11.6.1); a presented but refused
        // buyer token is `invalid_token` (RFC 6750 §3.1).
        let challenge = match &self {
            ApiError::Unauthorized | ApiError::TokenMissing => Some("Bearer realm=\"quota\""),
            ApiError::TokenExpired | ApiError::TokenInvalid(_) => {
                Some("Bearer realm=\"quota\", error=\"invalid_token\"")
            }
            _ => None,
        };
        if let Some(c) = challenge {
            resp.headers_mut()
                .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(c));
        }
        // A 403 for a token without the scope names the one needed (RFC 6750 §3.1).
        if let ApiError::ForbiddenScope { needed, .. } = &self {
            let c =
                format!("Bearer realm=\"quota\", error=\"insufficient_scope\", scope=\"{needed}\"");
            if let Ok(v) = HeaderValue::from_str(&c) {
                resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
            }
        }
        resp
    }
}
