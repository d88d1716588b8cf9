//! Bounded polling for the system tests.

use std::future::Future;
use std::time::{Duration, Instant};

/// Polls `probe` every 50 ms until it holds; panics after 30 s (a liveness bound, not a timing
/// assertion: it only stops a broken run from hanging).
pub async fn wait_for<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}
