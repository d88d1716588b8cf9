//! The control HTTP API, so scripts and tests can cut, heal and slow links at runtime:
//! `GET /healthz`, `GET /links`, `GET /links/{id}`, `PUT /links/{id}` with any of
//! `{"latency_ms":…,"jitter_ms":…,"mode":"pass|blackhole|reset"}`. Errors use the project's
//! envelope `{"error":{"code":"invalid_request|not_found","message":"…"}}`.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use quota_shared::api::ErrorEnvelope;
use serde::Deserialize;

use crate::control::{LinkControl, LinkStatus};
use crate::link::{check_delay, Mode};

type Links = Arc<[Arc<LinkControl>]>;

/// A partial update: absent fields keep their value.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Update {
    latency_ms: Option<u64>,
    jitter_ms: Option<u64>,
    mode: Option<Mode>,
}

/// An error answer: status plus the shared envelope.
struct ApiError(StatusCode, &'static str, String);

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.0, Json(ErrorEnvelope::new(self.1, self.2))).into_response()
    }
}

fn bad(msg: impl ToString) -> ApiError {
    ApiError(StatusCode::BAD_REQUEST, "invalid_request", msg.to_string())
}

/// Builds the router over the proxy's links (see [`crate::Proxy::controls`]).
pub fn router(links: Vec<Arc<LinkControl>>) -> Router {
    Router::new()
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/links", get(list))
        .route("/links/{id}", get(one).put(update))
        .with_state(Links::from(links))
}

fn find(links: &Links, id: &str) -> Result<Arc<LinkControl>, ApiError> {
    let found = links.iter().find(|l| l.id == id).cloned();
    found.ok_or_else(|| {
        ApiError(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no link {id:?}"),
        )
    })
}

async fn list(State(links): State<Links>) -> Json<Vec<LinkStatus>> {
    Json(links.iter().map(|l| l.status()).collect())
}

async fn one(
    State(links): State<Links>,
    Path(id): Path<String>,
) -> Result<Json<LinkStatus>, ApiError> {
    Ok(Json(find(&links, &id)?.status()))
}

async fn update(
    State(links): State<Links>,
    Path(id): Path<String>,
    body: Result<Json<Update>, JsonRejection>,
) -> Result<Json<LinkStatus>, ApiError> {
    let link = find(&links, &id)?;
    let Json(u) = body.map_err(|e| bad(e.body_text()))?;
    let latency = u
        .latency_ms
        .map(|ms| check_delay("latency_ms", ms))
        .transpose()
        .map_err(bad)?;
    let jitter = u
        .jitter_ms
        .map(|ms| check_delay("jitter_ms", ms))
        .transpose()
        .map_err(bad)?;
    latency.inspect(|&ms| link.set_latency_ms(ms));
    jitter.inspect(|&ms| link.set_jitter_ms(ms));
    u.mode.inspect(|&m| link.set_mode(m));
    Ok(Json(link.status()))
}
