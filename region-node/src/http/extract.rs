//! What the handlers share: the body limit and path parsing with JSON errors.

use crate::error::ApiError;

/// Largest purchase body accepted (a valid one is under 60 bytes).
pub(super) const MAX_BODY_BYTES: usize = 4096;

/// Parses a positive integer path segment.
pub(super) fn positive_id(what: &str, raw: &str) -> Result<i64, ApiError> {
    raw.parse::<i64>()
        .ok()
        .filter(|v| *v > 0)
        .ok_or_else(|| ApiError::InvalidRequest(format!("{what} must be a positive integer")))
}
