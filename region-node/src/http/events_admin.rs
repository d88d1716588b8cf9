//! The operator's retry of dead-lettered order events: `POST /v1/admin/events/retry`
//! (region-admin token), the endpoint form of the README's `UPDATE order_events …`.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::Json;
use quota_shared::admin_auth::Scope;
use serde::Serialize;
use utoipa::ToSchema;
use uuid::Uuid;

use super::admin::authorize;
use super::docs::ErrorBody;
use crate::error::ApiError;
use crate::state::AppState;

/// What a retry reset.
#[derive(Serialize, ToSchema)]
pub(super) struct Retried {
    /// Dead events made pending again (due now, attempts 0).
    #[schema(minimum = 0)]
    retried: u64,
}

/// `POST /v1/admin/events/retry[?order_id=UUID]`: every dead event of this region (or of one
/// order) is pending again, and goes out in seq order once the webhook takes it.
#[utoipa::path(
    post,
    path = "/v1/admin/events/retry",
    operation_id = "retryDeadEvents",
    summary = "Deliver this region's dead-lettered order events again (all, or one order's)",
    description = "Each dead event is made pending with no attempts, due now; an order's dead \
                   events are reset together and delivered again in seq order. Fix the \
                   receiver first.",
    params(("order_id" = Option<uuid::Uuid>, Query,
            description = "Only this order's dead events (default: every dead event)")),
    security(("adminToken" = ["region-admin"])),
    responses(
        (status = 200, description = "How many events were reset", body = Retried),
        (status = 400, description = "invalid_request: order_id is not a UUID", body = ErrorBody),
        (status = 401, description = "unauthorized: no token, or one this node does not know", body = ErrorBody),
        (status = 403, description = "forbidden_scope: a token this node knows (its \
            --admin-token) without the region-admin scope; required_scope names it", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn retry_dead_events_handler(
    State(st): State<Arc<AppState>>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: HeaderMap,
) -> Result<Json<Retried>, ApiError> {
    authorize(&st, &headers, Scope::RegionAdmin)?;
    let Query(q) = query.map_err(|r| ApiError::InvalidRequest(r.body_text()))?;
    let order_id = q
        .get("order_id")
        .map(|raw| {
            Uuid::parse_str(raw)
                .map_err(|_| ApiError::InvalidRequest("order_id must be a UUID".into()))
        })
        .transpose()?;
    let retried = st
        .db
        .bounded(st.db.retry_dead_events(order_id))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    tracing::info!(retried, order_id = ?order_id, "dead order events retried");
    Ok(Json(Retried { retried }))
}
