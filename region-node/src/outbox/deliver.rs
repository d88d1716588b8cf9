//! One delivery attempt: the event as JSON, signed, POSTed to the webhook; a 2xx within the
//! timeout is success, anything else a failure with a reason for `last_error`.

use quota_shared::webhook::{sign, EVENT_ID_HEADER, SIGNATURE_HEADER};

use super::settings::Webhook;
use crate::db::OrderEvent;

/// Longest `last_error` kept (a receiver's error page can be long).
const MAX_ERROR_CHARS: usize = 300;

/// POSTs `event` to the webhook; `Err` says why the attempt failed.
pub(super) async fn deliver(
    http: &reqwest::Client,
    hook: &Webhook,
    event: &OrderEvent,
) -> Result<(), String> {
    let body = serde_json::to_vec(event).map_err(|e| format!("encoding the event: {e}"))?;
    let signature = sign(
        hook.secret.expose().as_bytes(),
        chrono::Utc::now().timestamp(),
        &body,
    );
    let resp = http
        .post(hook.url.clone())
        .timeout(hook.timeout)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(EVENT_ID_HEADER, event.event_id.to_string())
        .header(SIGNATURE_HEADER, signature)
        .body(body)
        .send()
        .await
        .map_err(|e| short(&describe(&e)))?;
    let status = resp.status();
    if status.is_success() {
        return Ok(());
    }
    let text = resp.text().await.unwrap_or_default();
    Err(short(&format!("HTTP {status}: {text}")))
}

/// A transport error with its causes (reqwest's own message names only the outermost).
fn describe(e: &reqwest::Error) -> String {
    let mut s = if e.is_timeout() {
        "timed out".to_string()
    } else {
        e.to_string()
    };
    let mut source = std::error::Error::source(e);
    while let Some(cause) = source {
        s.push_str(": ");
        s.push_str(&cause.to_string());
        source = cause.source();
    }
    s
}

/// `s` cut to [`MAX_ERROR_CHARS`] characters.
fn short(s: &str) -> String {
    s.chars().take(MAX_ERROR_CHARS).collect()
}
