//! The operational routes: the region's audit (the region-admin token), `/readyz`, `/metrics`.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::{header, HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use quota_shared::admin_auth::{AdminToken, AdminTokens, Scope};
use quota_shared::wire::RegionTruth;

use super::docs::{ErrorBody, Readiness};
use super::extract::positive_id;
use crate::config::ServeConfig;
use crate::db::DbError;
use crate::error::ApiError;
use crate::state::AppState;

/// The admin tokens this node accepts, read once at start. `--payments-token-file`, if given,
/// is the payment system's (scope payments: payments only). With `--region-admin-token-file`:
/// that token, scope region-admin — the only one the audit endpoint takes — and
/// `--admin-token`, if given, as the operator's, so that it is recognised and refused there
/// with 403 rather than 401. Without the file: `--admin-token` alone, as the region-admin
/// token (one token shared with the coordinators, as before scopes). Neither: the admin
/// endpoints refuse everybody. An error (a sentence naming the flag, never the token) when the
/// file is unusable or both flags hold the same token.
pub(crate) fn admin_tokens(cfg: &ServeConfig) -> Result<AdminTokens, String> {
    let mut tokens = tokens_of(
        cfg.admin_token.clone(),
        cfg.region_admin_token_file.as_deref(),
    )?;
    if let Some(path) = &cfg.payments_token_file {
        let t = AdminToken::from_file("--payments-token-file", path).map_err(|e| e.to_string())?;
        tokens.add(Scope::Payments, t).map_err(|_| {
            "--payments-token-file holds a token another flag gives; the payments token must be \
             its own"
                .to_string()
        })?;
    }
    Ok(tokens)
}

/// [`admin_tokens`] from the two settings: `shared` (`--admin-token`) and `region_admin_file`.
fn tokens_of(
    shared: Option<AdminToken>,
    region_admin_file: Option<&std::path::Path>,
) -> Result<AdminTokens, String> {
    let shared = shared.filter(|t| !t.is_empty());
    let mut tokens = AdminTokens::default();
    let Some(path) = region_admin_file else {
        if let Some(t) = shared {
            tokens
                .add(Scope::RegionAdmin, t)
                .map_err(|e| e.to_string())?;
        }
        return Ok(tokens);
    };
    let region_admin =
        AdminToken::from_file("--region-admin-token-file", path).map_err(|e| e.to_string())?;
    tokens
        .add(Scope::RegionAdmin, region_admin)
        .map_err(|e| e.to_string())?;
    if let Some(t) = shared {
        tokens.add(Scope::Operator, t).map_err(|_| {
            "--admin-token and --region-admin-token-file hold the same token; the region-admin \
             token must be its own"
                .to_string()
        })?;
    }
    Ok(tokens)
}

/// One line for the start-up log: which token the audit endpoint takes (never the token).
pub(crate) fn describe_admin_tokens(cfg: &ServeConfig) -> &'static str {
    match (
        &cfg.region_admin_token_file,
        cfg.admin_token.as_ref().is_some_and(|t| !t.is_empty()),
    ) {
        (Some(_), _) => "audit endpoint: the region-admin token (--region-admin-token-file) only",
        (None, true) => "audit endpoint: the shared --admin-token",
        (None, false) => "audit endpoint: off (no admin token configured)",
    }
}

/// The one admin check of this node: the request's bearer token must hold the region-admin
/// scope (401 for no or an unknown token, 403 for a known one of another scope).
pub(super) fn authorize(st: &AppState, headers: &HeaderMap) -> Result<(), ApiError> {
    st.admin_tokens
        .authorize(
            headers
                .get_all(header::AUTHORIZATION)
                .iter()
                .map(HeaderValue::as_bytes),
            Scope::RegionAdmin,
        )
        .map(drop)
        .map_err(ApiError::from)
}

/// `GET /v1/admin/products/{id}/audit` (region-admin token): this region's truth for the
/// coordinator's conservation audit — the quota row, the orders, and Redis's stock and tickets
/// (read in one atomic step), all while holding the quota row lock: nothing commits between
/// the reads, so `sold` = order units and `stock + uncommitted in flight = available` hold
/// exactly, and any difference is a real fault, not a race. A product this region never
/// learned of has no row: its truth is all zeros.
#[utoipa::path(
    get,
    path = "/v1/admin/products/{product_id}/audit",
    operation_id = "regionAudit",
    summary = "This region's truth for the coordinator's conservation audit",
    description = "Read while holding the quota row lock, so sold = order units exactly. A \
                   product this region never learned of answers all zeros.",
    params(("product_id" = i64, Path, minimum = 1, description = "The product")),
    security(("adminToken" = ["region-admin"])),
    responses(
        (status = 200, description = "The region's books for the product", body = RegionTruth),
        (status = 400, description = "invalid_request: a bad product id", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token this node knows (its \
            --admin-token) without the region-admin scope; required_scope names it", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn audit_handler(
    State(st): State<Arc<AppState>>,
    Path(raw_id): Path<String>,
    headers: HeaderMap,
) -> Result<Json<RegionTruth>, ApiError> {
    authorize(&st, &headers)?;
    let product_id = positive_id("product id", &raw_id)?;
    let truth = st.db.bounded(region_truth(&st, product_id)).await;
    truth
        .map(Json)
        .map_err(|e| ApiError::Unavailable(e.to_string()))
}

/// The locked read behind [`audit_handler`] (bounded by the caller).
async fn region_truth(st: &AppState, product_id: i64) -> Result<RegionTruth, DbError> {
    let mut conn = st.db.quota_conn().await?;
    let Some(locked) = conn.lock(product_id).await? else {
        return Ok(RegionTruth {
            region: st.region.clone(),
            product_id,
            ..RegionTruth::default()
        });
    };
    let snap = locked.audit().await?;
    let (redis_stock, redis_in_flight) = match st.stock.peek_all(product_id).await {
        Ok(Some((stock, tickets))) => {
            let in_flight = locked.uncommitted_units(&tickets).await?;
            (Some(stock), Some(in_flight))
        }
        _ => (None, None),
    };
    locked.commit().await?;
    let q = snap.quota;
    Ok(RegionTruth {
        region: st.region.clone(),
        product_id,
        granted: q.applied_grant,
        released: q.released_locally,
        sold: q.sold,
        returned: q.returned,
        available: q.available(),
        order_count: i64::try_from(snap.buyers.len()).unwrap_or(i64::MAX),
        order_units: snap.buyers.iter().map(|b| b.1).sum(),
        returned_units: snap.returned_units,
        buyers: snap.buyers,
        redis_stock,
        redis_in_flight,
    })
}

/// 200 when Postgres (with current migrations) and Redis answer; etcd is reported but not
/// required: a region cut off from etcd still sells what it holds.
#[utoipa::path(
    get,
    path = "/readyz",
    operation_id = "readyz",
    summary = "Ready to sell: Postgres (migrations current) and Redis reachable",
    responses(
        (status = 200, description = "Ready", body = Readiness),
        (status = 503, description = "Not ready; the body says why", body = Readiness),
    ),
)]
pub(super) async fn readyz_handler(State(st): State<Arc<AppState>>) -> Response {
    let pg = match st.db.bounded(st.db.ready()).await {
        Ok(true) => "ok".to_string(),
        Ok(false) => "migrations pending".to_string(),
        Err(e) => e.to_string(),
    };
    let redis = match st.stock.ping().await {
        Ok(()) => "ok".to_string(),
        Err(e) => e.to_string(),
    };
    let etcd = if st.etcd_connected.load(Ordering::Relaxed) {
        "connected"
    } else {
        "disconnected"
    };
    let ready = pg == "ok" && redis == "ok";
    let body = Readiness {
        status: if ready { "ready" } else { "not_ready" },
        region: st.region.clone(),
        postgres: pg,
        redis,
        etcd,
    };
    let status = if ready {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(body)).into_response()
}

/// `GET /metrics`: Prometheus text (no token).
#[utoipa::path(
    get,
    path = "/metrics",
    operation_id = "metrics",
    summary = "Prometheus metrics (text exposition format 0.0.4)",
    responses((status = 200, description = "The metrics", body = String, content_type = "text/plain")),
)]
pub(super) async fn metrics_handler(State(st): State<Arc<AppState>>) -> impl IntoResponse {
    let s = st.db.pool_status();
    metrics::gauge!("quota_pg_pool_connections").set(s.size as f64);
    metrics::gauge!("quota_pg_pool_idle_connections").set(s.available as f64);
    metrics::gauge!("quota_pg_pool_max_connections").set(s.max_size as f64);
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        st.metrics.render(),
    )
}

#[cfg(test)]
mod tests {
    use quota_shared::admin_auth::{Denied, Scope};

    use super::*;

    const SHARED: &str = "shared-admin-token-0123456789";
    const REGION: &str = "region-admin-token-0123456789";

    fn bearer(t: &str) -> Vec<Vec<u8>> {
        vec![format!("Bearer {t}").into_bytes()]
    }

    fn audit(tokens: &AdminTokens, t: &str) -> Result<Scope, Denied> {
        tokens.authorize(bearer(t).iter().map(Vec::as_slice), Scope::RegionAdmin)
    }

    /// A token file removed on drop (the crate has no tempfile dependency).
    struct TokenFile(std::path::PathBuf);

    impl Drop for TokenFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn region_file(content: &str) -> TokenFile {
        let p = std::env::temp_dir().join(format!("region-admin-{}", uuid::Uuid::new_v4()));
        std::fs::write(&p, content).unwrap();
        TokenFile(p)
    }

    /// Without a region-admin token the shared `--admin-token` opens the audit, exactly as
    /// before scopes; with one, only it does, and the shared token is known but refused (403).
    #[test]
    fn the_audit_takes_the_region_admin_token_when_there_is_one() {
        let legacy = tokens_of(Some(AdminToken::new(SHARED)), None).unwrap();
        assert_eq!(audit(&legacy, SHARED), Ok(Scope::RegionAdmin));
        assert_eq!(audit(&legacy, REGION), Err(Denied::UnknownToken));

        let file = region_file(&format!("{REGION}\n"));
        let scoped = tokens_of(Some(AdminToken::new(SHARED)), Some(&file.0)).unwrap();
        assert_eq!(audit(&scoped, REGION), Ok(Scope::RegionAdmin));
        assert_eq!(
            audit(&scoped, SHARED),
            Err(Denied::Forbidden {
                held: Scope::Operator,
                needed: Scope::RegionAdmin
            })
        );
        assert_eq!(
            audit(&scoped, "an-auditor-token-0123"),
            Err(Denied::UnknownToken)
        );
        let only = tokens_of(None, Some(&file.0)).unwrap();
        assert_eq!(audit(&only, REGION), Ok(Scope::RegionAdmin));

        // Neither (or an empty --admin-token): everybody is refused.
        for off in [
            tokens_of(None, None).unwrap(),
            tokens_of(Some(AdminToken::new("")), None).unwrap(),
        ] {
            assert!(off.is_empty());
            assert_eq!(audit(&off, ""), Err(Denied::NoToken));
        }
    }

    #[test]
    fn unusable_region_admin_token_files_refuse_to_start() {
        let same = region_file(SHARED);
        let e = tokens_of(Some(AdminToken::new(SHARED)), Some(&same.0)).unwrap_err();
        assert!(e.contains("same token"), "{e}");
        let short = region_file("short\n");
        let e = tokens_of(None, Some(&short.0)).unwrap_err();
        assert!(
            e.contains("--region-admin-token-file") && e.contains("at least 16"),
            "{e}"
        );
        assert!(!e.contains("short\n"));
        let e = tokens_of(
            None,
            Some(std::path::Path::new("/nonexistent/region.token")),
        )
        .unwrap_err();
        assert!(e.contains("/nonexistent/region.token"), "{e}");
    }
}
