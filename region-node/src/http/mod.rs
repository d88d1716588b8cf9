//! The HTTP API: routing, extraction with JSON errors for every rejection, request metrics.
//!
//! | file | routes |
//! |---|---|
//! | this one | the router |
//! | [`openapi`] | the OpenAPI document, derived from the handlers and types; `/healthz` |
//! | [`docs`] | types for the document only: the error envelope, the purchase body |
//! | [`extract`] | the body limit and path parsing the handlers share |
//! | [`buyer`] | who the buyer is: buyer-token (JWT) verification into a `Buyer` |
//! | [`public`] | purchase, product, order, a user's orders |
//! | [`events`] | a user's order events (the buyer's feed of the outbox) |
//! | [`admin`] | the audit (region-admin token), `/readyz`, `/metrics` |
//! | [`events_admin`] | the retry of dead-lettered order events (region-admin token) |
//! | [`orders`] | an order after the click: pay (payments token), cancel (buyer or operator) |

mod admin;
mod buyer;
mod docs;
mod events;
mod events_admin;
mod extract;
mod openapi;
mod orders;
mod public;

use std::sync::Arc;

use axum::extract::DefaultBodyLimit;
use axum::routing::{get, post};
use axum::{Extension, Router};

use crate::error::ApiError;
use crate::state::AppState;
pub(crate) use admin::{admin_tokens, describe_admin_tokens};
pub(crate) use buyer::BuyerAuth;
use extract::MAX_BODY_BYTES;

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
        .route("/v1/orders/{order_id}/pay", post(orders::pay_handler))
        .route("/v1/orders/{order_id}/cancel", post(orders::cancel_handler))
        .route(
            "/v1/admin/orders/{order_id}",
            get(orders::admin_order_handler),
        )
        .route(
            "/v1/admin/orders/{order_id}/cancel",
            post(orders::admin_cancel_handler),
        )
        .route(
            "/v1/admin/products/{product_id}/report",
            get(orders::report_handler),
        )
        .route(
            "/v1/users/{user_id}/events",
            get(events::user_events_handler),
        )
        .route(
            "/v1/admin/products/{product_id}/audit",
            get(admin::audit_handler),
        )
        .route(
            "/v1/admin/events/retry",
            post(events_admin::retry_dead_events_handler),
        )
        .route("/healthz", get(openapi::healthz))
        .route("/readyz", get(admin::readyz_handler))
        .route("/metrics", get(admin::metrics_handler))
        .route("/openapi.json", get(openapi::openapi_json))
        .fallback(|| async { ApiError::NotFound })
        .method_not_allowed_fallback(|| async { ApiError::MethodNotAllowed })
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .layer(Extension(buyers))
        .layer(axum::middleware::from_fn(crate::metrics::request_log))
        .with_state(st)
}
