//! Logging setup shared by every binary: `RUST_LOG`-style filtering, one line per event on
//! stderr, as text for people or JSON for a log pipeline ([`LogFormat`]), and the one shape of
//! the servers' request log ([`log_request`]).

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use tracing_subscriber::EnvFilter;

/// How log lines are written (`--log-format`, env `QUOTA_LOG_FORMAT`): `text` (the default,
/// compact lines for a terminal) or `json` (one JSON object a line, for a log pipeline that
/// must not parse prose).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// Compact human-readable lines.
    #[default]
    Text,
    /// One JSON object per line: `timestamp`, `level`, `target`, `fields`, the current spans.
    Json,
}

impl FromStr for LogFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" => Ok(LogFormat::Text),
            "json" => Ok(LogFormat::Json),
            other => Err(format!("unknown log format {other:?} (text or json)")),
        }
    }
}

impl fmt::Display for LogFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        })
    }
}

/// Installs the global tracing subscriber with text lines. `default` applies when `RUST_LOG`
/// is unset.
pub fn init(default: &str) {
    init_as(default, LogFormat::Text);
}

/// Installs the global tracing subscriber writing `format`. `default` applies when `RUST_LOG`
/// is unset.
pub fn init_as(default: &str, format: LogFormat) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_target(false)
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        // The target stays: it tells request lines (`request`) from the rest.
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

/// The target of every request-log line, so a filter can turn the request log alone down
/// (`RUST_LOG=info,request=warn`).
pub const REQUEST_TARGET: &str = "request";

/// Logs one answered HTTP request: method, path (the caller passes the path alone — never
/// the query string, which may carry ids a log should not keep), status and latency. One
/// definition, so the coordinator's and the region node's request lines have the same fields;
/// no header is ever logged (an `Authorization` header carries a token). Server errors log at
/// `warn`, everything else at `info`.
pub fn log_request(method: &str, path: &str, status: u16, latency: Duration) {
    let latency_ms = latency.as_secs_f64() * 1000.0;
    if status >= 500 {
        tracing::warn!(target: REQUEST_TARGET, method, path, status, latency_ms, "request");
    } else {
        tracing::info!(target: REQUEST_TARGET, method, path, status, latency_ms, "request");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_formats_parse_and_print_back() {
        for f in [LogFormat::Text, LogFormat::Json] {
            assert_eq!(f.to_string().parse::<LogFormat>(), Ok(f));
        }
        assert_eq!(" JSON ".parse::<LogFormat>(), Ok(LogFormat::Json));
        assert!("yaml"
            .parse::<LogFormat>()
            .unwrap_err()
            .contains("text or json"));
        assert_eq!(LogFormat::default(), LogFormat::Text);
    }
}
