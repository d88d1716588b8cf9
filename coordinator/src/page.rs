//! `GET /page/products/{id}`: the live sale page, a read-only view of one product for a
//! browser (`page.html`: inline CSS and script, nothing fetched from elsewhere).
//!
//! The page is a shell without data, served with no token: a browser cannot add an
//! `Authorization` header to a navigation, and a token in the URL's path or query would reach
//! the server, its request log and any proxy's. So the operator opens
//! `/page/products/1001#token=…`: the fragment never leaves the browser, the page's script
//! keeps the token in the tab's `sessionStorage`, removes it from the address bar, and reads
//! `GET /v1/admin/status?product=ID` (every 250 ms) and `GET /v1/admin/audit?product=ID`
//! (every 2 s: the audit reads every region) with it as a bearer token — the auditor's scope,
//! through the same check as every admin read. Without a valid token the page shows how to
//! open it and no number.
//!
//! The script runs only with this response's nonce (a fresh one per answer in the
//! `Content-Security-Policy`), may connect only to this origin, and writes API values with
//! `textContent`, never as HTML.

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::error::CoordError;

/// The page, with `{{NONCE}}` where each answer's script and style nonce goes.
const PAGE: &str = include_str!("page.html");

/// The page for product `raw` (a positive integer; whether it exists is the data's business,
/// which needs the token, so an unknown product's page says so only once a token reads it).
#[utoipa::path(
    get,
    path = "/page/products/{id}",
    operation_id = "salePage",
    summary = "The live sale page (HTML, no data: it reads the API with the token after '#')",
    params(("id" = i64, Path, minimum = 1, description = "The product")),
    responses(
        (status = 200, description = "The page", body = String, content_type = "text/html"),
        (status = 400, description = "invalid_request: a bad product id", body = crate::openapi::ErrorBody),
    ),
)]
pub(crate) async fn sale_page(Path(raw): Path<String>) -> Result<Response, CoordError> {
    if !raw.parse::<i64>().is_ok_and(|v| v > 0) {
        return Err(CoordError::Invalid(
            "product id must be a positive integer".into(),
        ));
    }
    let nonce = uuid::Uuid::new_v4().simple().to_string();
    Ok((
        [
            (header::CONTENT_TYPE, "text/html; charset=utf-8".to_owned()),
            (header::CACHE_CONTROL, "no-store".to_owned()),
            (header::CONTENT_SECURITY_POLICY, policy(&nonce)),
            (header::REFERRER_POLICY, "no-referrer".to_owned()),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff".to_owned()),
        ],
        render(&nonce),
    )
        .into_response())
}

/// The page with this answer's nonce.
fn render(nonce: &str) -> String {
    PAGE.replace("{{NONCE}}", nonce)
}

/// Nothing but this answer's own script and style, requests to this origin only, and no
/// framing (the page shows a live sale; nobody else's page should wrap it).
fn policy(nonce: &str) -> String {
    format!(
        "default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; \
         connect-src 'self'; img-src 'self'; base-uri 'none'; form-action 'none'; \
         frame-ancestors 'none'"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The shell carries no data and no token, and every script and style it has runs only
    /// with the answer's nonce.
    #[test]
    fn the_page_is_a_shell_whose_script_needs_the_nonce() {
        let page = render("n0nce");
        assert!(!page.contains("{{NONCE}}"));
        assert_eq!(page.matches("<script").count(), 1);
        assert_eq!(page.matches("<script nonce=\"n0nce\">").count(), 1);
        assert_eq!(page.matches("<style").count(), 1);
        assert_eq!(page.matches("<style nonce=\"n0nce\">").count(), 1);
        // Nothing fetched from elsewhere (no internet where it may run, and no third party).
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("/v1/admin/status?product="));
        let csp = policy("n0nce");
        assert!(csp.contains("script-src 'nonce-n0nce'"));
        assert!(!csp.contains("unsafe"));
    }
}
