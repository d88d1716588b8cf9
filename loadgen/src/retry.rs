//! A buyer's retry policy: which answers are worth another try, and how long to wait.
//!
//! Pure. 503 (a dependency down or Redis being rebuilt) and 429 (rate limited) are transient;
//! 410 is retried too because the coordinator may move stock into a sold-out region. Everything
//! else is final: 201 bought, 409 already bought, 403 sale closed, 421 wrong region, 4xx/5xx
//! otherwise, and transport errors (status 0), which a real client would surface to the user.

use std::time::Duration;

/// Status used for an answer that never arrived (connect error, timeout).
pub(crate) const TRANSPORT_ERROR: u16 = 0;

/// Whether a buyer that got `status` tries again (if it has tries left).
pub(crate) fn is_retryable(status: u16) -> bool {
    matches!(status, 503 | 429 | 410)
}

/// Pause before a retry: `base` scaled by `0.5 + u` for a uniform `u` in `[0, 1)`, so retries of
/// buyers that failed together spread out instead of arriving together again.
pub(crate) fn backoff(base: Duration, u: f64) -> Duration {
    base.mul_f64(0.5 + u.clamp(0.0, 1.0))
}

/// Short name of a status for reports: the number, or `error` for a transport error.
pub(crate) fn status_label(status: u16) -> String {
    if status == TRANSPORT_ERROR {
        "error".to_string()
    } else {
        status.to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classification() {
        for s in [503, 429, 410] {
            assert!(is_retryable(s), "{s}");
        }
        for s in [201, 409, 403, 421, 400, 404, 500, TRANSPORT_ERROR] {
            assert!(!is_retryable(s), "{s}");
        }
    }

    #[test]
    fn backoff_is_jittered_around_base() {
        let base = Duration::from_millis(50);
        assert_eq!(backoff(base, 0.0), Duration::from_millis(25));
        assert_eq!(backoff(base, 0.5), Duration::from_millis(50));
        assert!(backoff(base, 0.999) < Duration::from_millis(75));
        assert_eq!(backoff(base, 7.0), Duration::from_millis(75));
    }

    #[test]
    fn labels() {
        assert_eq!(status_label(410), "410");
        assert_eq!(status_label(TRANSPORT_ERROR), "error");
    }
}
