//! The region API's OpenAPI document, derived from the handlers' `#[utoipa::path]` and the
//! types they take and answer with, and served at `GET /openapi.json`. What one rule decides
//! for every route — `Retry-After` on each 429 and 503, `WWW-Authenticate` on each 401, the
//! security schemes, the error envelope with every [`ApiError`] code — is added here, so no
//! route can forget it. The unit tests below hold the document to the code.

use std::sync::LazyLock;

use axum::Json;
use quota_shared::openapi::{self as common, required_header};
use quota_shared::wire::RegionTruth;
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

use super::docs::{ErrorBody, Health};
use super::public::MAX_REQUEST_ID;
#[cfg(test)]
use crate::error::ApiError;

/// The request-id header as the document spells it (`REQUEST_ID` is its lowercase wire name).
const REQUEST_ID_HEADER: &str = "X-Request-Id";

/// The document's description: how to read every answer.
const ABOUT: &str = "One region's flash-sale API. Every error is \
    {\"error\": {\"code\", \"message\", …}}: branch on `code`. With buyer tokens on (the node has \
    a buyer-token key) a purchase and the order reads carry a buyer token (security scheme \
    buyerToken); without, they carry nothing (the empty security requirement). The admin \
    endpoints (the audit, the retry of dead-lettered order events) take the region-admin token \
    (adminToken).";

#[derive(OpenApi)]
#[openapi(
    info(title = "quota region node", version = "1", description = ABOUT),
    paths(
        super::public::purchase_handler,
        super::public::product_handler,
        super::public::order_handler,
        super::public::user_orders_handler,
        super::events::user_events_handler,
        super::orders::pay_handler,
        super::orders::cancel_handler,
        super::orders::admin_cancel_handler,
        super::orders::report_handler,
        super::orders::admin_order_handler,
        super::admin::audit_handler,
        super::events_admin::retry_dead_events_handler,
        healthz,
        super::admin::readyz_handler,
        super::admin::metrics_handler,
        openapi_json,
    ),
    components(schemas(ErrorBody, RegionTruth)),
    modifiers(&ByRule),
)]
struct RegionApi;

/// What every route gets by rule (see the module doc).
struct ByRule;

impl Modify for ByRule {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        let c = common::components(doc);
        c.add_security_scheme(
            "buyerToken",
            common::bearer(
                "A buyer token from the shop's login service: a JWT signed with the node's one \
                 configured algorithm (HS256, RS256 or ES256), with exp, iss, aud and sub = the \
                 buyer's user id in decimal",
                Some("JWT"),
            ),
        );
        c.add_security_scheme(
            "adminToken",
            common::bearer(
                "The region-admin token (--region-admin-token-file on the node and the \
                 coordinators), or without one the shared --admin-token; the requirement names \
                 the scope it needs",
                None,
            ),
        );
        common::add_status_headers(doc);
        // Every purchase answer carries the request id it was logged under.
        let echo = required_header(
            serde_json::json!({"type": "string", "minLength": 1, "maxLength": MAX_REQUEST_ID}),
            "The request's X-Request-Id, or the one the node made up: quote it when asking \
             about this purchase",
        );
        let purchase = doc
            .paths
            .paths
            .get_mut("/v1/products/{product_id}/purchase")
            .and_then(|p| p.post.as_mut());
        for resp in purchase
            .into_iter()
            .flat_map(|op| op.responses.responses.values_mut())
        {
            if let RefOr::T(resp) = resp {
                resp.headers
                    .insert(REQUEST_ID_HEADER.into(), RefOr::T(echo.clone()));
            }
        }
    }
}

/// The document as served (built once).
pub(super) fn document() -> &'static serde_json::Value {
    static DOC: LazyLock<serde_json::Value> =
        LazyLock::new(|| common::to_json(&RegionApi::openapi()));
    &DOC
}

/// `GET /healthz`.
#[utoipa::path(
    get,
    path = "/healthz",
    operation_id = "healthz",
    summary = "The process is alive",
    responses((status = 200, description = "Alive", body = Health)),
)]
pub(super) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /openapi.json`: this document.
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The document", body = Object)),
)]
pub(super) async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use axum::response::IntoResponse;
    use serde_json::{json, Value};

    use super::super::public::REQUEST_ID;
    use super::*;

    /// One of every [`ApiError`] variant.
    fn every_error() -> Vec<ApiError> {
        vec![
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
            ApiError::OrderNotPending(quota_shared::order::OrderStatus::Paid),
            ApiError::PaymentRefUsed,
            ApiError::AmountMismatch {
                due: rust_decimal::Decimal::ONE,
            },
            ApiError::Internal(String::new()),
        ]
    }

    /// Every code the API can answer with is in the document's error schema, and nothing else.
    #[test]
    fn every_error_code_is_documented() {
        let doc = document();
        let codes = doc["components"]["schemas"]["Error"]["properties"]["error"]["properties"]
            ["code"]["enum"]
            .as_array()
            .expect("the error code enum");
        let answered: Vec<&str> = every_error().iter().map(ApiError::code).collect();
        for code in &answered {
            assert!(codes.iter().any(|c| c == code), "{code} is not documented");
        }
        for c in codes {
            assert!(
                answered.iter().any(|a| c == a),
                "{c} is documented but never answered"
            );
        }
    }

    /// The headers the document declares by status are the ones the error answers carry:
    /// `Retry-After` on every 429 and 503, `WWW-Authenticate` on every 401 (and on a 403
    /// `forbidden_scope`, where the document declares it optional).
    #[test]
    fn status_headers_are_what_the_answers_send() {
        for e in every_error() {
            let status = e.status().as_u16();
            let scope_code = e.code();
            let resp = e.into_response();
            let has = |h: &str| resp.headers().contains_key(h);
            assert_eq!(has("retry-after"), matches!(status, 429 | 503), "{status}");
            let scope = scope_code == "forbidden_scope";
            assert_eq!(has("www-authenticate"), status == 401 || scope, "{status}");
        }
        let doc = document();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                for (status, resp) in op["responses"].as_object().unwrap() {
                    let wants = |h: &str| resp["headers"][h]["required"] == json!(true);
                    let what = format!("{method} {path} {status}");
                    assert_eq!(
                        wants("Retry-After"),
                        matches!(status.as_str(), "429" | "503"),
                        "{what}"
                    );
                    assert_eq!(wants("WWW-Authenticate"), status == "401", "{what}");
                }
            }
        }
    }

    /// Every route that checks a token names its security scheme and documents its 401 (and
    /// the 403 it can answer), and both schemes are defined.
    #[test]
    fn token_routes_document_their_scheme_and_refusals() {
        let doc = document();
        let routes = [
            (
                "/v1/products/{product_id}/purchase",
                "post",
                "buyerToken",
                true,
            ),
            ("/v1/orders/{order_id}", "get", "buyerToken", false),
            ("/v1/users/{user_id}/orders", "get", "buyerToken", true),
            ("/v1/users/{user_id}/events", "get", "buyerToken", true),
            (
                "/v1/admin/products/{product_id}/audit",
                "get",
                "adminToken",
                true,
            ),
            ("/v1/admin/events/retry", "post", "adminToken", true),
            ("/v1/orders/{order_id}/pay", "post", "adminToken", true),
            ("/v1/orders/{order_id}/cancel", "post", "buyerToken", true),
            (
                "/v1/admin/orders/{order_id}/cancel",
                "post",
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
            assert_eq!(
                doc["components"]["securitySchemes"][scheme]["scheme"], "bearer",
                "{scheme} is defined"
            );
        }
        // With buyer tokens off the order routes need nothing: the empty requirement.
        let purchase = &doc["paths"]["/v1/products/{product_id}/purchase"]["post"];
        assert_eq!(purchase["security"][1], json!({}));
        let audit = &doc["paths"]["/v1/admin/products/{product_id}/audit"]["get"];
        assert_eq!(audit["security"][0]["adminToken"], json!(["region-admin"]));
        let pay = &doc["paths"]["/v1/orders/{order_id}/pay"]["post"];
        assert_eq!(pay["security"][0]["adminToken"], json!(["payments"]));
    }

    /// The purchase body's schema says what `parse_purchase_body` accepts: its properties, no
    /// others, and the ranges it checks.
    #[test]
    fn the_purchase_body_schema_is_what_the_parser_takes() {
        use quota_shared::admission::{parse_purchase_body, MAX_USER_ID};
        let doc = document();
        let body = &doc["components"]["schemas"]["PurchaseBody"];
        assert_eq!(body["additionalProperties"], json!(false));
        assert_eq!(body["properties"]["user_id"]["minimum"], json!(1));
        assert_eq!(body["properties"]["user_id"]["maximum"], json!(MAX_USER_ID));
        assert_eq!(
            body["properties"]["quantity"]["maximum"],
            json!(quota_shared::model::MAX_PER_USER_LIMIT)
        );
        let ok = |v: Value| parse_purchase_body(v.to_string().as_bytes()).is_ok();
        assert!(ok(json!({"user_id": MAX_USER_ID, "quantity": 1})));
        assert!(ok(json!({"user_id": null, "quantity": null})));
        assert!(ok(json!({})));
        assert!(!ok(json!({"user_id": MAX_USER_ID + 1})));
        assert!(!ok(json!({"user_id": 0})));
        assert!(!ok(json!({"quantity": 0})));
        assert!(!ok(json!({"other": 1})));
    }

    /// The purchase documents the request id it takes and echoes, with the length it checks.
    #[test]
    fn the_request_id_is_documented_as_checked() {
        let doc = document();
        let op = &doc["paths"]["/v1/products/{product_id}/purchase"]["post"];
        let param = op["parameters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == REQUEST_ID_HEADER)
            .expect("X-Request-Id documented");
        assert_eq!(param["in"], "header");
        assert_eq!(param["schema"]["maxLength"], json!(MAX_REQUEST_ID));
        for (status, resp) in op["responses"].as_object().unwrap() {
            assert_eq!(
                resp["headers"][REQUEST_ID_HEADER]["required"],
                json!(true),
                "{status}"
            );
        }
        assert!(REQUEST_ID_HEADER.eq_ignore_ascii_case(REQUEST_ID));
    }
}
