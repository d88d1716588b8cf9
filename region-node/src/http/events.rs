//! The buyer's event feed: `GET /v1/users/{user_id}/events`, the same order events the webhook
//! receives, read from this region's outbox in seq order.

use std::collections::HashMap;
use std::sync::Arc;

use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use axum::{Extension, Json};
use serde::Serialize;
use utoipa::ToSchema;

use super::buyer::BuyerAuth;
use super::docs::ErrorBody;
use super::extract::positive_id;
use crate::db::OrderEvent;
use crate::error::ApiError;
use crate::state::AppState;

/// Events per page unless `limit` says otherwise.
const DEFAULT_LIMIT: i64 = 100;
/// Most events per page.
pub(super) const MAX_LIMIT: i64 = 500;

/// `GET /v1/users/{user_id}/events`: one page of a user's order events.
#[derive(Serialize, ToSchema)]
pub(super) struct UserEvents {
    /// The user.
    user_id: i64,
    /// Events with `seq` above `after`, in seq order (so each order's in the order they
    /// happened), at most `limit`.
    events: Vec<OrderEvent>,
    /// The `after` of the next page: the last event's seq, or the request's `after` when there
    /// was none (poll again with it for what happens next).
    #[schema(minimum = 0)]
    next_after: i64,
}

/// One query parameter as an integer in `range`, or `default` when absent.
fn param(
    q: &HashMap<String, String>,
    name: &str,
    default: i64,
    range: std::ops::RangeInclusive<i64>,
) -> Result<i64, ApiError> {
    let Some(raw) = q.get(name) else {
        return Ok(default);
    };
    raw.parse::<i64>()
        .ok()
        .filter(|v| range.contains(v))
        .ok_or_else(|| {
            ApiError::InvalidRequest(format!(
                "{name} must be an integer from {} to {}",
                range.start(),
                range.end()
            ))
        })
}

/// `GET /v1/users/{user_id}/events?after=SEQ&limit=N`: with buyer tokens on, only the token's
/// own user (as for the user's orders).
#[utoipa::path(
    get,
    path = "/v1/users/{user_id}/events",
    operation_id = "listUserEvents",
    summary = "A user's order events in this region (created, paid, cancelled, expired), in \
               seq order, paged by seq",
    description = "The same documents the webhook receives. Page with `after` = the previous \
                   page's `next_after`; an event may be listed again (deduplicate by \
                   `event_id`), never changed.",
    params(
        ("user_id" = i64, Path, minimum = 1, description = "The user"),
        ("after" = Option<i64>, Query, minimum = 0,
         description = "Only events with a greater seq (default 0: from the first)"),
        ("limit" = Option<i64>, Query, minimum = 1, maximum = 500,
         description = "Most events in the page (default 100)"),
    ),
    security(("buyerToken" = []), ()),
    responses(
        (status = 200, description = "One page of events", body = UserEvents),
        (status = 400, description = "invalid_request: a bad user id, after or limit", body = ErrorBody),
        (status = 401, description = "token_missing, token_expired, token_invalid (buyer tokens on)", body = ErrorBody),
        (status = 403, description = "user_mismatch: another user than the buyer token's", body = ErrorBody),
        (status = 503, description = "unavailable: Postgres down", body = ErrorBody),
    ),
)]
pub(super) async fn user_events_handler(
    State(st): State<Arc<AppState>>,
    Extension(buyers): Extension<BuyerAuth>,
    Path(raw_id): Path<String>,
    query: Result<Query<HashMap<String, String>>, QueryRejection>,
    headers: axum::http::HeaderMap,
) -> Result<Json<UserEvents>, ApiError> {
    let buyer = buyers.identify(&headers)?;
    let user_id = positive_id("user id", &raw_id)?;
    if let Some(buyer) = buyer {
        buyer.must_be(user_id)?;
    }
    let Query(q) = query.map_err(|r| ApiError::InvalidRequest(r.body_text()))?;
    let after = param(&q, "after", 0, 0..=i64::MAX)?;
    let limit = param(&q, "limit", DEFAULT_LIMIT, 1..=MAX_LIMIT)?;
    let events = st
        .db
        .bounded(st.db.user_events(user_id, after, limit))
        .await
        .map_err(|e| ApiError::Unavailable(e.to_string()))?;
    let next_after = events.last().map_or(after, |e| e.seq);
    Ok(Json(UserEvents {
        user_id,
        events,
        next_after,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `after` and `limit` default when absent and refuse anything but an integer in range.
    #[test]
    fn paging_parameters_are_checked() {
        let q = |pairs: &[(&str, &str)]| -> HashMap<String, String> {
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), (*v).to_string()))
                .collect()
        };
        let empty = q(&[]);
        assert_eq!(param(&empty, "limit", 100, 1..=500).unwrap(), 100);
        let given = q(&[("after", "41"), ("limit", "500")]);
        assert_eq!(param(&given, "after", 0, 0..=i64::MAX).unwrap(), 41);
        assert_eq!(param(&given, "limit", 100, 1..=500).unwrap(), 500);
        for bad in ["-1", "x", "1.5", "", "501", "0"] {
            let one = q(&[("limit", bad)]);
            assert!(
                matches!(
                    param(&one, "limit", 100, 1..=500),
                    Err(ApiError::InvalidRequest(_))
                ),
                "{bad}"
            );
        }
    }
}
