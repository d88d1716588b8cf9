//! The library's error type: what can stop a run before it produces a report.
//!
//! Problems found *during* verification (a region's Postgres unreachable, an audit that fails)
//! are not errors: they are findings, and land in the [`crate::Report`].

/// Why [`crate::run`] could not produce a report.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The configuration is inconsistent (unknown region in weights, zero rates, …).
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The HTTP client could not be built.
    #[error("cannot build the HTTP client: {0}")]
    Http(#[from] reqwest::Error),
}
