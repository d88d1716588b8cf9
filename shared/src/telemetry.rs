//! Logging setup shared by every binary: `RUST_LOG`-style filtering, compact lines on stderr.

use tracing_subscriber::EnvFilter;

/// Installs the global tracing subscriber. `default` applies when `RUST_LOG` is unset.
pub fn init(default: &str) {
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_target(false)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr)
        .try_init();
}
