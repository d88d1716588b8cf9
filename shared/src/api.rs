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

/// Compares secrets (admin tokens) without leaking, through timing, where they first differ.
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}
