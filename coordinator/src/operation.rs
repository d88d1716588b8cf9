//! Idempotent admin calls. A mutating call may carry an `Idempotency-Key`; the change it makes
//! and a record of the key are written in one etcd transaction (see `store`), so sending the
//! same call again — a client's retry after a timeout, or an operator rerunning a command whose
//! answer was lost — finds the record and changes nothing. The record remembers *which* call it
//! was (a fingerprint of method, path and body), so the same key on a different call is refused
//! instead of being silently taken for a replay.
//!
//! The middleware here parses the header once into an [`Operation`] that the handlers pass down;
//! it runs on the leader (after a standby has forwarded the call), and marks a replayed answer
//! with `Idempotent-Replayed: true`.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use axum::body::Body;
use axum::extract::Request;
use axum::http::{HeaderValue, Method};
use axum::middleware::Next;
use axum::response::Response;
use quota_shared::model::OperationRecord;
use quota_shared::wire::{IdempotencyKey, IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER};

use crate::error::CoordError;

/// One keyed admin call, as the escrow operations see it.
#[derive(Debug, Clone)]
pub(crate) struct Operation {
    /// The client's key.
    pub(crate) key: IdempotencyKey,
    /// Which call this is: method, path, canonical body.
    fingerprint: String,
    /// Set when the call turned out to be a replay (read back by the middleware).
    replayed: Arc<AtomicBool>,
}

impl Operation {
    fn new(key: IdempotencyKey, method: &Method, path: &str, body: &[u8]) -> Operation {
        Operation {
            key,
            fingerprint: fingerprint(method, path, body),
            replayed: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The record written together with the change.
    pub(crate) fn record(&self) -> OperationRecord {
        OperationRecord {
            fingerprint: self.fingerprint.clone(),
            at_ms: chrono::Utc::now().timestamp_millis(),
        }
    }

    /// What an earlier record of this key means: the same call was already applied (`Ok`:
    /// answer with the current state, change nothing), or the key names another call (refused).
    pub(crate) fn replay_of(&self, earlier: &OperationRecord) -> Result<(), CoordError> {
        if earlier.fingerprint == self.fingerprint {
            self.replayed.store(true, Ordering::Relaxed);
            Ok(())
        } else {
            Err(CoordError::KeyReused(format!(
                "idempotency key {} was already used for another call ({}); \
                 use a new key for a new change",
                self.key, earlier.fingerprint
            )))
        }
    }
}

/// `METHOD path body`, the body re-serialised from its JSON value (keys sorted, no spaces) so
/// the same request sent by another client library has the same fingerprint.
fn fingerprint(method: &Method, path: &str, body: &[u8]) -> String {
    let body = match serde_json::from_slice::<serde_json::Value>(body) {
        Ok(v) => v.to_string(),
        Err(_) => String::from_utf8_lossy(body).trim().to_string(),
    };
    format!("{method} {path} {body}")
}

/// Parses `Idempotency-Key` on mutating calls into an [`Operation`] request extension; a
/// malformed key is a 400 before anything runs.
pub(crate) async fn middleware(req: Request, next: Next) -> Result<Response, CoordError> {
    if req.method() == Method::GET {
        return Ok(next.run(req).await);
    }
    let Some(raw) = req.headers().get(IDEMPOTENCY_KEY_HEADER) else {
        return Ok(next.run(req).await);
    };
    let key = raw
        .to_str()
        .map_err(|_| CoordError::Invalid("idempotency key must be ASCII".into()))
        .and_then(|k| Ok(IdempotencyKey::parse(k)?))?;
    let (mut parts, body) = req.into_parts();
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|e| CoordError::Invalid(format!("unreadable body: {e}")))?;
    let op = Operation::new(key, &parts.method, parts.uri.path(), &bytes);
    let replayed = Arc::clone(&op.replayed);
    parts.extensions.insert(op);
    let mut resp = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    if replayed.load(Ordering::Relaxed) {
        resp.headers_mut()
            .insert(IDEMPOTENT_REPLAYED_HEADER, HeaderValue::from_static("true"));
    }
    Ok(resp)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn op(body: &str) -> Operation {
        let key = IdempotencyKey::parse("k1").unwrap();
        Operation::new(
            key,
            &Method::POST,
            "/v1/admin/products/7/restock",
            body.as_bytes(),
        )
    }

    #[test]
    fn the_same_call_in_another_layout_is_a_replay() {
        let first = op(r#"{"units": 100}"#);
        let again = op(r#"{ "units":100 }"#);
        assert!(again.replay_of(&first.record()).is_ok());
        assert!(again.replayed.load(Ordering::Relaxed));
    }

    #[test]
    fn the_same_key_on_another_call_is_refused() {
        let first = op(r#"{"units": 100}"#);
        let other = op(r#"{"units": 5}"#);
        let err = other.replay_of(&first.record()).unwrap_err();
        assert!(matches!(err, CoordError::KeyReused(_)), "{err}");
        assert!(!other.replayed.load(Ordering::Relaxed));
    }
}
