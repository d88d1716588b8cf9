//! The HTTP API: routing, extraction with JSON errors for every rejection, request metrics.
//!
//! | file | routes |
//! |---|---|
//! | this one | the router and the OpenAPI document |
//! | [`extract`] | the body limit and path parsing the handlers share |
//! | [`buyer`] | who the buyer is: buyer-token (JWT) verification into a `Buyer` |
//! | [`public`] | purchase, product, order, a user's orders |
//! | [`admin`] | the audit (region-admin token), `/readyz`, `/metrics` |

mod admin;
mod buyer;
mod extract;
mod public;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::http::header;
use axum::routing::{get, post};
use axum::{Extension, Json, Router};

use crate::error::ApiError;
use crate::state::AppState;
pub(crate) use admin::{admin_tokens, describe_admin_tokens};
pub(crate) use buyer::BuyerAuth;
use extract::MAX_BODY_BYTES;

/// The OpenAPI 3 document of this API.
const OPENAPI: &str = include_str!("../../openapi.json");

/// Every route of the service. `buyers` checks the buyer tokens of the routes that act for a
/// user (it lives with the routes rather than in [`AppState`], the floor below `http`).
pub(crate) fn router(st: Arc<AppState>, buyers: BuyerAuth) -> Router {
    Router::new()
        .route(
            "/v1/products/{product_id}/purchase",
            post(public::purchase_handler),
        )
        .route("/v1/products/{product_id}", get(public::product_handler))
        .route("/v1/orders/{order_id}", get(public::order_handler))
        .route(
            "/v1/users/{user_id}/orders",
            get(public::user_orders_handler),
        )
        .route(
            "/v1/admin/products/{product_id}/audit",
            get(admin::audit_handler),
        )
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(admin::readyz_handler))
        .route("/metrics", get(admin::metrics_handler))
        .route(
            "/openapi.json",
            get(|| async { ([(header::CONTENT_TYPE, "application/json")], OPENAPI) }),
        )
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(buyers))
        .layer(axum::middleware::from_fn(crate::metrics::request_log))
        .with_state(st)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every code the API can answer with is documented in the OpenAPI document.
    #[test]
    fn every_error_code_is_documented() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let codes = &doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["code"]["enum"];
        let all = [
            ApiError::InvalidRequest(String::new()),
            ApiError::PayloadTooLarge(1),
            ApiError::UnknownProduct(1),
            ApiError::UnknownOrder(uuid::Uuid::nil()),
            ApiError::NotFound,
            ApiError::MethodNotAllowed,
            ApiError::SaleNotActive(String::new()),
            ApiError::AlreadyPurchased { order_id: None },
            ApiError::SoldOut,
            ApiError::AwaitingStock,
            ApiError::WrongRegion(String::new()),
            ApiError::Unauthorized,
            ApiError::ForbiddenScope {
                held: quota_shared::admin_auth::Scope::Operator,
                needed: quota_shared::admin_auth::Scope::RegionAdmin,
            },
            ApiError::TokenMissing,
            ApiError::TokenExpired,
            ApiError::TokenInvalid(String::new()),
            ApiError::UserMismatch,
            ApiError::RateLimited { retry_after_s: 1 },
            ApiError::Unavailable(String::new()),
            ApiError::Internal(String::new()),
        ];
        for e in all {
            assert!(
                codes.as_array().unwrap().iter().any(|c| c == e.code()),
                "{} is not in openapi.json",
                e.code()
            );
        }
    }

    /// Every route that checks a token names its security scheme and documents its 401 (and
    /// the 403 it can answer), and both schemes are defined.
    #[test]
    fn token_routes_document_their_scheme_and_refusals() {
        let doc: serde_json::Value = serde_json::from_str(OPENAPI).unwrap();
        let routes = [
            (
                "/v1/products/{product_id}/purchase",
                "post",
                "buyerToken",
                true,
            ),
            ("/v1/orders/{order_id}", "get", "buyerToken", false),
            ("/v1/users/{user_id}/orders", "get", "buyerToken", true),
            (
                "/v1/admin/products/{product_id}/audit",
                "get",
                "adminToken",
                true,
            ),
        ];
        for (path, method, scheme, forbids) in routes {
            let op = &doc["paths"][path][method];
            assert!(
                op["security"][0].get(scheme).is_some(),
                "{path}: security {scheme}"
            );
            assert!(op["responses"].get("401").is_some(), "{path}: 401");
            assert_eq!(op["responses"].get("403").is_some(), forbids, "{path}: 403");
            assert!(
                doc["components"]["securitySchemes"][scheme]["scheme"] == "bearer",
                "{scheme} is defined"
            );
        }
        // With buyer tokens off the order routes need nothing: the empty requirement.
        let purchase = &doc["paths"]["/v1/products/{product_id}/purchase"]["post"];
        assert_eq!(purchase["security"][1], serde_json::json!({}));
    }
}
