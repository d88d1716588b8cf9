//! The admin API's OpenAPI document, derived from the handlers' `#[utoipa::path]` and the
//! [`quota_shared::wire`] types, served at `GET /openapi.json` (no token: outside
//! `/v1/admin/`, see `api::required_scope`). What one rule decides for every route —
//! `Retry-After` on each 503, `WWW-Authenticate` on 401/403, `Idempotent-Replayed` on the
//! success of every change, the error envelope with every [`CoordError`] code, the admin
//! bearer scheme — is added here. The unit tests below hold the document to the code.

use std::sync::LazyLock;

use axum::Json;
use quota_shared::openapi as common;
use utoipa::openapi::header::Header;
use utoipa::openapi::RefOr;
use utoipa::{Modify, OpenApi};

#[cfg(test)]
use crate::error::CoordError;
pub(crate) use types::{ErrorBody, Health, Readiness};

mod types;

/// The document's description: who may call what, and how errors look.
const ABOUT: &str = "The coordinator's admin API (what quotactl calls). Every request under \
    /v1/admin/ carries Authorization: Bearer <token>: a GET needs the auditor or the operator \
    token, anything else the operator token (the scope each operation's security requirement \
    names). Every error is {\"error\": {\"code\", \"message\", …}}: branch on `code`. Any \
    instance answers; a standby forwards changes to the leader.";

#[derive(OpenApi)]
#[openapi(
    info(title = "quota coordinator admin API", version = "1", description = ABOUT),
    paths(
        crate::api::create_product,
        crate::api::list_products,
        crate::api::show_product,
        crate::api::sale_report,
        crate::api::show_order,
        crate::api::cancel_order,
        crate::api::set_quota,
        crate::api::set_policy,
        crate::api::restock,
        crate::api::end,
        crate::api::rebalance,
        crate::api::list_regions,
        crate::api::drain,
        crate::api::show_home_regions,
        crate::api::set_home_regions,
        crate::api::status,
        crate::api::audit,
        healthz,
        crate::api::readyz,
        crate::api::metrics,
        crate::page::sale_page,
        openapi_json,
    ),
    components(schemas(ErrorBody)),
    modifiers(&ByRule),
)]
struct AdminApi;

/// What every route gets by rule (see the module doc).
struct ByRule;

impl Modify for ByRule {
    fn modify(&self, doc: &mut utoipa::openapi::OpenApi) {
        common::components(doc).add_security_scheme(
            "adminToken",
            common::bearer(
                "An admin token; the requirement names the scope it needs: operator (every \
                 request; --admin-token-file) or auditor (reads only; --auditor-token-file)",
                None,
            ),
        );
        common::add_status_headers(doc);
        let replayed: Header = serde_json::from_value(serde_json::json!({
            "schema": {"type": "string", "enum": ["true"]},
            "description": "Present when a call with this Idempotency-Key was applied before: \
                            this answer changed nothing",
        }))
        .expect("a valid OpenAPI header");
        for item in doc.paths.paths.values_mut() {
            for op in [&mut item.post, &mut item.put].into_iter().flatten() {
                for (status, resp) in &mut op.responses.responses {
                    if let (true, RefOr::T(resp)) = (status.starts_with('2'), resp) {
                        resp.headers
                            .insert("Idempotent-Replayed".into(), RefOr::T(replayed.clone()));
                    }
                }
            }
        }
    }
}

/// The document as served (built once).
pub(crate) fn document() -> &'static serde_json::Value {
    static DOC: LazyLock<serde_json::Value> =
        LazyLock::new(|| common::to_json(&AdminApi::openapi()));
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
pub(crate) async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// `GET /openapi.json`: this document (no token).
#[utoipa::path(
    get,
    path = "/openapi.json",
    operation_id = "openapi",
    summary = "This document (OpenAPI 3.1)",
    responses((status = 200, description = "The document", body = Object)),
)]
pub(crate) async fn openapi_json() -> Json<&'static serde_json::Value> {
    Json(document())
}

#[cfg(test)]
mod tests {
    use axum::http::Method;
    use axum::response::IntoResponse;
    use quota_shared::admin_auth::Scope;
    use serde_json::{json, Value};

    use super::*;
    use crate::api::required_scope;

    /// One of every [`CoordError`] variant.
    fn every_error() -> Vec<CoordError> {
        vec![
            CoordError::Invalid(String::new()),
            CoordError::Unauthorized,
            CoordError::Forbidden {
                held: Scope::Auditor,
                needed: Scope::Operator,
            },
            CoordError::UnknownProduct(1),
            CoordError::UnknownOrder(uuid::Uuid::nil()),
            CoordError::NotFound,
            CoordError::MethodNotAllowed,
            CoordError::Conflict(String::new()),
            CoordError::KeyReused(String::new()),
            CoordError::Unavailable(String::new()),
            CoordError::NotLeader,
            CoordError::Internal(String::new()),
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
        let answered: Vec<&str> = every_error().iter().map(|e| e.status_code().1).collect();
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

    /// `Retry-After` on every 503 and `WWW-Authenticate` on every 401 (and 403): what the
    /// answers send is what the document declares.
    #[test]
    fn status_headers_are_what_the_answers_send() {
        for e in every_error() {
            let status = e.status_code().0.as_u16();
            let resp = e.into_response();
            let has = |h: &str| resp.headers().contains_key(h);
            assert_eq!(has("retry-after"), status == 503, "{status}");
            assert_eq!(
                has("www-authenticate"),
                matches!(status, 401 | 403),
                "{status}"
            );
        }
        for (path, method, op) in operations(document()) {
            for (status, resp) in op["responses"].as_object().unwrap() {
                let wants = |h: &str| resp["headers"][h]["required"] == json!(true);
                let what = format!("{method} {path} {status}");
                assert_eq!(wants("Retry-After"), status == "503", "{what}");
                assert_eq!(wants("WWW-Authenticate"), status == "401", "{what}");
            }
        }
    }

    /// Every operation's security requirement names the scope `required_scope` checks (none
    /// outside `/v1/admin/`, where `/openapi.json` is), and every admin operation documents
    /// the 401 and 403 the check answers.
    #[test]
    fn security_requirements_are_the_scopes_checked() {
        let doc = document();
        assert_eq!(
            doc["components"]["securitySchemes"]["adminToken"]["scheme"],
            "bearer"
        );
        let mut admin_ops = 0;
        for (path, method, op) in operations(doc) {
            let concrete = path
                .replace("{id}", "1001")
                .replace("{region}", "east")
                .replace("{order_id}", "0190a000-0000-7000-8000-000000000000");
            let m = Method::from_bytes(method.to_uppercase().as_bytes()).unwrap();
            let declared = &op["security"];
            match required_scope(&m, &concrete) {
                None => assert!(declared.is_null(), "{method} {path}: {declared}"),
                Some(scope) => {
                    admin_ops += 1;
                    assert_eq!(
                        declared,
                        &json!([{"adminToken": [scope.name()]}]),
                        "{method} {path}"
                    );
                    for status in ["401", "403"] {
                        assert!(
                            op["responses"].get(status).is_some(),
                            "{method} {path} {status}"
                        );
                    }
                }
            }
        }
        assert_eq!(admin_ops, 17, "every admin route is documented");
        assert_eq!(required_scope(&Method::GET, "/openapi.json"), None);
    }

    /// Every change documents the Idempotency-Key the operation middleware parses, with the
    /// rule `IdempotencyKey::parse` applies.
    #[test]
    fn every_change_documents_its_idempotency_key() {
        use quota_shared::wire::IdempotencyKey;
        for (path, method, op) in operations(document()) {
            if method == "get" || !path.starts_with("/v1/admin/") {
                continue;
            }
            let key = op["parameters"]
                .as_array()
                .and_then(|ps| ps.iter().find(|p| p["name"] == "Idempotency-Key"))
                .unwrap_or_else(|| panic!("{method} {path}: no Idempotency-Key"));
            assert_eq!(key["schema"]["maxLength"], json!(IdempotencyKey::MAX_LEN));
        }
        assert!(IdempotencyKey::parse("op:1.a_b-C").is_ok());
    }

    /// Every (path, method, operation) of the document.
    fn operations(doc: &Value) -> Vec<(String, String, Value)> {
        let mut out = Vec::new();
        for (path, item) in doc["paths"].as_object().unwrap() {
            for (method, op) in item.as_object().unwrap() {
                out.push((path.clone(), method.clone(), op.clone()));
            }
        }
        out
    }
}
