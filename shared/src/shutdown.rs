//! Graceful shutdown for every binary: SIGTERM or Ctrl-C cancels one token that every service
//! and background task watches.

use tokio_util::sync::CancellationToken;

/// Returns a token that is cancelled on SIGTERM or Ctrl-C (spawns the watcher task).
pub fn on_signal() -> CancellationToken {
    let token = CancellationToken::new();
    let t = token.clone();
    tokio::spawn(async move {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("installing the SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
        tracing::info!("shutting down");
        t.cancel();
    });
    token
}
