//! The HTTP readiness probe shared by every service that answers HTTP.

use std::sync::OnceLock;
use std::time::Duration;

/// One client for every probe: short timeout, never through an `http_proxy`.
pub(crate) fn http_client() -> reqwest::Client {
    static CLIENT: OnceLock<reqwest::Client> = OnceLock::new();
    CLIENT
        .get_or_init(|| {
            reqwest::Client::builder()
                .timeout(Duration::from_secs(2))
                .no_proxy() // never route loopback probes through an http_proxy
                // Readiness only (is it up?), also of services serving HTTPS with the test
                // CA's certificates; what a client trusts is tested with real clients.
                .danger_accept_invalid_certs(true)
                .build()
                .expect("reqwest client")
        })
        .clone()
}

/// GET `url` answers 200: the readiness test of the project's HTTP services.
pub async fn http_ok(url: &str) -> bool {
    matches!(http_client().get(url).send().await, Ok(r) if r.status() == reqwest::StatusCode::OK)
}
