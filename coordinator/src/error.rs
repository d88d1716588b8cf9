//! The coordinator's error type and its one mapping to HTTP.

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::admin_auth::{Denied, Scope, FORBIDDEN_SCOPE, REQUIRED_SCOPE_FIELD};
use quota_shared::api::ErrorEnvelope;

/// Everything an admin request (or a leader's round) can fail with; each variant maps to one
/// HTTP status and stable error code.
#[derive(Debug, thiserror::Error)]
pub enum CoordError {
    /// 400: the request is malformed or would break an invariant (nothing was changed).
    #[error("{0}")]
    Invalid(String),
    /// 401: missing or wrong bearer token.
    #[error("missing or invalid admin token (send 'Authorization: Bearer <token>')")]
    Unauthorized,
    /// 403: a valid admin token whose scope does not allow the request (an auditor token on
    /// a change, the region-admin token on anything); nothing was changed.
    #[error("{}", Denied::Forbidden { held: *held, needed: *needed })]
    Forbidden {
        /// The scope of the presented token.
        held: Scope,
        /// The scope the request needs.
        needed: Scope,
    },
    /// 404: no such product.
    #[error("unknown product {0}")]
    UnknownProduct(i64),
    /// 404: no region holds this order.
    #[error("unknown order {0}")]
    UnknownOrder(uuid::Uuid),
    /// 404: no such route.
    #[error("no such endpoint")]
    NotFound,
    /// 405.
    #[error("method not allowed")]
    MethodNotAllowed,
    /// 409: the product already exists.
    #[error("{0}")]
    Conflict(String),
    /// 422: the idempotency key was already used for a different call (nothing was changed).
    #[error("{0}")]
    KeyReused(String),
    /// 503: etcd unreachable, or the ledger kept changing under us.
    #[error("{0}")]
    Unavailable(String),
    /// 503: this instance does not lead (and the request could not be forwarded).
    #[error("this coordinator does not lead and no leader is known yet; retry")]
    NotLeader,
    /// 500: unreadable data in etcd.
    #[error("{0}")]
    Internal(String),
}

impl From<etcd_client::Error> for CoordError {
    fn from(e: etcd_client::Error) -> Self {
        crate::metrics::etcd_error();
        CoordError::Unavailable(format!("etcd: {e}"))
    }
}

impl From<quota_shared::Invalid> for CoordError {
    fn from(e: quota_shared::Invalid) -> Self {
        CoordError::Invalid(e.0)
    }
}

impl CoordError {
    /// Every code [`CoordError::status_code`] can answer with, for the OpenAPI document's
    /// error schema (a unit test of `openapi` holds the two together).
    pub(crate) const CODES: [&'static str; 12] = [
        "invalid_request",
        "unauthorized",
        FORBIDDEN_SCOPE,
        "unknown_product",
        "unknown_order",
        "not_found",
        "method_not_allowed",
        "conflict",
        "idempotency_key_reused",
        "unavailable",
        "not_leader",
        "internal",
    ];

    /// HTTP status and stable code.
    pub(crate) fn status_code(&self) -> (StatusCode, &'static str) {
        match self {
            CoordError::Invalid(_) => (StatusCode::BAD_REQUEST, "invalid_request"),
            CoordError::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            CoordError::Forbidden { .. } => (StatusCode::FORBIDDEN, FORBIDDEN_SCOPE),
            CoordError::UnknownProduct(_) => (StatusCode::NOT_FOUND, "unknown_product"),
            CoordError::UnknownOrder(_) => (StatusCode::NOT_FOUND, "unknown_order"),
            CoordError::NotFound => (StatusCode::NOT_FOUND, "not_found"),
            CoordError::MethodNotAllowed => (StatusCode::METHOD_NOT_ALLOWED, "method_not_allowed"),
            CoordError::Conflict(_) => (StatusCode::CONFLICT, "conflict"),
            CoordError::KeyReused(_) => {
                (StatusCode::UNPROCESSABLE_ENTITY, "idempotency_key_reused")
            }
            CoordError::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            CoordError::NotLeader => (StatusCode::SERVICE_UNAVAILABLE, "not_leader"),
            CoordError::Internal(_) => (StatusCode::INTERNAL_SERVER_ERROR, "internal"),
        }
    }
}

impl IntoResponse for CoordError {
    fn into_response(self) -> Response {
        let (status, code) = self.status_code();
        if status.is_server_error() {
            tracing::warn!(error = %self, "admin request failed");
        }
        let mut body = ErrorEnvelope::new(code, self.to_string());
        if let CoordError::Forbidden { needed, .. } = &self {
            body = body.with(REQUIRED_SCOPE_FIELD, needed.name());
        }
        let mut resp = (status, Json(body)).into_response();
        // A 401 names the scheme to use (RFC 9110 §11.6.1), a 403 the scope that would do
        // (RFC 6750 §3.1).
        let challenge = match &self {
            CoordError::Unauthorized => Some("Bearer realm=\"quota-admin\"".to_string()),
            CoordError::Forbidden { needed, .. } => Some(format!(
                "Bearer realm=\"quota-admin\", error=\"insufficient_scope\", scope=\"{needed}\""
            )),
            _ => None,
        };
        if let Some(v) = challenge.and_then(|c| HeaderValue::from_str(&c).ok()) {
            resp.headers_mut().insert(header::WWW_AUTHENTICATE, v);
        }
        // Between leaders or cut off from etcd: a client (quotactl does) tries again shortly,
        // or another instance.
        if status == StatusCode::SERVICE_UNAVAILABLE {
            resp.headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        resp
    }
}

impl From<Denied> for CoordError {
    fn from(d: Denied) -> Self {
        match d {
            Denied::NoToken | Denied::UnknownToken => CoordError::Unauthorized,
            Denied::Forbidden { held, needed } => CoordError::Forbidden { held, needed },
        }
    }
}
