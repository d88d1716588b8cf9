//! What the region node's and the coordinator's OpenAPI documents share: the JSON error
//! envelope's schema, built from each service's list of error codes; the response headers both
//! send by one rule (`Retry-After` on every 429 and 503, `WWW-Authenticate` on every 401); and
//! bearer security schemes. Each service derives the rest of its document from its own handlers
//! and types (`utoipa`), so the contract cannot drift from the code the way a hand-written file
//! did.

use utoipa::openapi::header::Header;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::openapi::{Components, OpenApi, RefOr, Schema};

use crate::admin_auth::{Scope, REQUIRED_SCOPE_FIELD};

/// A schema from its JSON form (the way the OpenAPI specification writes them, which reads
/// better than builder chains for a hand-made schema).
///
/// # Panics
/// When `json` is not a schema: a programming error caught by every service's unit tests.
pub fn schema(json: serde_json::Value) -> Schema {
    serde_json::from_value(json).expect("a valid OpenAPI schema")
}

/// The error envelope `{"error": {"code", "message", …}}` with `code` one of `codes` (the
/// service's every error code) and the optional fields some answers add (`order_id`,
/// `home_region`, `product_id`, `required_scope`).
pub fn error_schema(codes: &[&str], service: &str) -> Schema {
    let scopes: Vec<&str> = Scope::ALL.iter().map(|s| s.name()).collect();
    schema(serde_json::json!({
        "type": "object",
        "description": format!(
            "Every error the {service} answers with: branch on `code` (stable), show `message` \
             (for humans; may change)."
        ),
        "required": ["error"],
        "properties": {
            "error": {
                "type": "object",
                "required": ["code", "message"],
                "properties": {
                    "code": {"type": "string", "enum": codes},
                    "message": {"type": "string"},
                    "order_id": {
                        "type": ["string", "null"],
                        "format": "uuid",
                        "description": "already_purchased: the buyer's existing order (null while \
                                        their other purchase is in flight)"
                    },
                    "home_region": {
                        "type": "string",
                        "description": "wrong_region: the only region that sells this buyer this \
                                        product"
                    },
                    "product_id": {
                        "type": "integer",
                        "format": "int64",
                        "description": "unknown_product: the product asked for"
                    },
                    REQUIRED_SCOPE_FIELD: {
                        "type": "string",
                        "enum": scopes,
                        "description": "forbidden_scope: the scope the request needs"
                    }
                }
            }
        }
    }))
}

/// A bearer-token security scheme.
pub fn bearer(description: &str, format: Option<&str>) -> SecurityScheme {
    let mut http = HttpBuilder::new()
        .scheme(HttpAuthScheme::Bearer)
        .description(Some(description));
    if let Some(f) = format {
        http = http.bearer_format(f);
    }
    SecurityScheme::Http(http.build())
}

/// The extension [`required_header`] marks a header with, which [`to_json`] turns into the
/// Header Object's `required` (utoipa's `Header` has no such field).
const REQUIRED_MARK: &str = "x-quota-required";

/// A response header the service always sends with that response.
pub fn required_header(schema_json: serde_json::Value, description: &str) -> Header {
    serde_json::from_value(serde_json::json!({
        "schema": schema_json,
        "description": description,
        REQUIRED_MARK: true,
    }))
    .expect("a valid OpenAPI header")
}

/// The document as served: its JSON, with every header [`required_header`] made marked
/// `"required": true`.
pub fn to_json(doc: &OpenApi) -> serde_json::Value {
    let mut json = serde_json::to_value(doc).expect("an OpenAPI document serialises");
    mark_required(&mut json);
    json
}

fn mark_required(v: &mut serde_json::Value) {
    match v {
        serde_json::Value::Object(map) => {
            if map.remove(REQUIRED_MARK).is_some() {
                map.insert("required".into(), true.into());
            }
            map.values_mut().for_each(mark_required);
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(mark_required),
        _ => {}
    }
}

/// Adds the headers every service sends by status, to every response of `doc` with that
/// status: `Retry-After` (seconds, at least 1) on 429 and 503, `WWW-Authenticate` on 401 — and
/// on a 403 `forbidden_scope` (with `error="insufficient_scope"`), so it may come with any 403.
pub fn add_status_headers(doc: &mut OpenApi) {
    let retry_after = required_header(
        serde_json::json!({"type": "string", "pattern": "^[1-9][0-9]*$"}),
        "Seconds to wait before retrying (at least 1).",
    );
    let challenge = required_header(
        serde_json::json!({"type": "string", "pattern": "^Bearer "}),
        "The scheme to authenticate with (RFC 9110 §11.6.1); a refused token adds \
         error=\"invalid_token\"",
    );
    let insufficient: Header = serde_json::from_value(serde_json::json!({
        "schema": {"type": "string", "pattern": "^Bearer "},
        "description": "With forbidden_scope only: error=\"insufficient_scope\" and the scope \
                        needed (RFC 6750 §3.1)",
    }))
    .expect("a valid OpenAPI header");
    for item in doc.paths.paths.values_mut() {
        for op in operations(item) {
            for (status, resp) in &mut op.responses.responses {
                let RefOr::T(resp) = resp else { continue };
                let header = match status.as_str() {
                    "429" | "503" => ("Retry-After", &retry_after),
                    "401" => ("WWW-Authenticate", &challenge),
                    "403" => ("WWW-Authenticate", &insufficient),
                    _ => continue,
                };
                resp.headers
                    .insert(header.0.to_string(), RefOr::T(header.1.clone()));
            }
        }
    }
}

/// Every operation of a path item.
pub fn operations(
    item: &mut utoipa::openapi::path::PathItem,
) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
    [
        &mut item.get,
        &mut item.put,
        &mut item.post,
        &mut item.delete,
        &mut item.options,
        &mut item.head,
        &mut item.patch,
        &mut item.trace,
    ]
    .into_iter()
    .filter_map(Option::as_mut)
}

/// The components of `doc`, created when it has none.
pub fn components(doc: &mut OpenApi) -> &mut Components {
    doc.components.get_or_insert_with(Components::new)
}

/// Adds schema `name` to `doc`'s components.
pub fn add_schema(doc: &mut OpenApi, name: &str, s: Schema) {
    components(doc)
        .schemas
        .insert(name.to_string(), RefOr::T(s));
}
