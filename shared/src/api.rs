//! The JSON error envelope shared by the region node and the coordinator.
//!
//! Every error any HTTP service of this project answers with has the shape
//! `{"error":{"code":"…","message":"…", …extra}}`, so clients branch on a stable `code`
//! and show `message` to humans.

use serde::{Deserialize, Serialize};

/// The outer envelope: `{"error": {...}}`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorEnvelope {
    /// The error itself.
    pub error: ErrorBody,
}

/// A machine-readable code, a human message, and optional extra fields.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ErrorBody {
    /// Stable, snake_case, documented in the OpenAPI document.
    pub code: String,
    /// For humans; may change between versions.
    pub message: String,
    /// Extra context (e.g. `order_id` for `already_purchased`), flattened into the body.
    #[serde(flatten, default, skip_serializing_if = "serde_json::Map::is_empty")]
    pub details: serde_json::Map<String, serde_json::Value>,
}

impl ErrorEnvelope {
    /// Builds an envelope with no extra fields.
    pub fn new(code: impl Into<String>, message: impl Into<String>) -> Self {
        ErrorEnvelope {
            error: ErrorBody {
                code: code.into(),
                message: message.into(),
                details: serde_json::Map::new(),
            },
        }
    }

    /// Adds one extra field.
    pub fn with(mut self, key: &str, value: impl Into<serde_json::Value>) -> Self {
        self.error.details.insert(key.to_string(), value.into());
        self
    }
}

/// Compares a secret someone `presented` (an admin token) with the `expected` one without
/// leaking, through timing, where they first differ or how long the expected one is: every
/// byte of `presented` is compared (against `expected` repeated), so the time depends on the
/// presented length only, which the presenter knows anyway; a length mismatch is folded into
/// the result instead of returning early.
pub fn constant_time_eq(presented: &[u8], expected: &[u8]) -> bool {
    if expected.is_empty() {
        return presented.is_empty();
    }
    let diff = presented
        .iter()
        .enumerate()
        .fold(0u8, |acc, (i, p)| acc | (p ^ expected[i % expected.len()]));
    let lengths_differ = u8::from(presented.len() != expected.len());
    std::hint::black_box(diff | lengths_differ) == 0
}

#[cfg(test)]
mod tests {
    use super::constant_time_eq;

    #[test]
    fn equal_only_when_every_byte_and_the_length_match() {
        assert!(constant_time_eq(b"0123456789abcdef", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"0123456789abcdeF", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"Z123456789abcdef", b"0123456789abcdef"));
        // A prefix, a repetition, an extension: all refused.
        assert!(!constant_time_eq(b"01234567", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"abcabc", b"abc"));
        assert!(!constant_time_eq(b"0123456789abcdefX", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"", b"0123456789abcdef"));
        assert!(!constant_time_eq(b"x", b""));
        assert!(constant_time_eq(b"", b""));
    }
}
