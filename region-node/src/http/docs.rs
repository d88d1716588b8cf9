//! Types that exist for the OpenAPI document only: the error envelope (its `code` enum is
//! [`ApiError::CODES`]), the purchase body as [`parse_purchase_body`] reads it, and the health
//! answers. Each is tied to the code that produces or reads it by a unit test in
//! [`super::openapi`].
//!
//! [`parse_purchase_body`]: quota_shared::admission::parse_purchase_body

use serde::Serialize;
use utoipa::openapi::{RefOr, Schema};
use utoipa::{PartialSchema, ToSchema};

use crate::error::ApiError;

/// The JSON error envelope every refusal of this API has.
pub(super) struct ErrorBody;

impl PartialSchema for ErrorBody {
    fn schema() -> RefOr<Schema> {
        quota_shared::openapi::error_schema(&ApiError::CODES, "region node").into()
    }
}

impl ToSchema for ErrorBody {
    fn name() -> std::borrow::Cow<'static, str> {
        "Error".into()
    }
}

/// A purchase body, as `quota_shared::admission::parse_purchase_body` reads it (it parses by
/// hand, to answer each mistake in words, so this type documents it).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[allow(dead_code)] // read by the document only
pub(super) struct PurchaseBody {
    /// The buyer. Required while buyer tokens are off; with them on it may be left out (the
    /// token's `sub` buys) and, if given, must be the token's `sub` (403 `user_mismatch`).
    #[schema(minimum = 1, maximum = 9_007_199_254_740_991_i64)]
    user_id: Option<i64>,
    /// Units, at most the product's `per_user_limit` (see `GET /v1/products/{product_id}`),
    /// which is never above 100.
    #[schema(minimum = 1, maximum = 100, default = 1)]
    quantity: Option<i64>,
}

/// `GET /healthz`: the process is alive.
#[derive(Serialize, ToSchema)]
pub(super) struct Health {
    /// Always `ok`.
    #[schema(pattern = "^ok$")]
    pub(super) status: &'static str,
}

/// `GET /readyz`: whether the node can sell, and why not.
#[derive(Serialize, ToSchema)]
pub(super) struct Readiness {
    /// `ready` or `not_ready`.
    #[schema(pattern = "^(ready|not_ready)$")]
    pub(super) status: &'static str,
    /// This node's region.
    pub(super) region: String,
    /// `ok`, `migrations pending`, or the error.
    pub(super) postgres: String,
    /// `ok` or the error.
    pub(super) redis: String,
    /// `connected` or `disconnected` (not required for readiness).
    #[schema(pattern = "^(connected|disconnected)$")]
    pub(super) etcd: &'static str,
}
