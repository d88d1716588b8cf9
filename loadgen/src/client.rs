//! One purchase request against a region node, reduced to what the report needs: the status,
//! whether a 503 was `awaiting_stock` (stock can still come) rather than `unavailable` (read
//! from the JSON error envelope's `code`), and a 201's order id.

use std::time::Duration;

use serde::Deserialize;

use quota_shared::api::ErrorEnvelope;

use crate::config::RegionTarget;
use crate::retry::TRANSPORT_ERROR;

/// A region node's answer to one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// HTTP status, or [`TRANSPORT_ERROR`] when no answer arrived.
    pub status: u16,
    /// A 503 whose error code was `awaiting_stock`.
    pub awaiting_stock: bool,
    /// The order id of a 201 (None if the body had none).
    pub order_id: Option<String>,
}

/// The error code a 503 answers with when stock is on its way to the region.
const AWAITING_STOCK: &str = "awaiting_stock";

/// Whether a 503 body is the `awaiting_stock` error (anything unreadable is not).
pub(crate) fn is_awaiting_stock(body: &[u8]) -> bool {
    serde_json::from_slice::<ErrorEnvelope>(body).is_ok_and(|e| e.error.code == AWAITING_STOCK)
}

#[derive(Deserialize)]
struct Created {
    order_id: String,
}

/// Sends purchases to the configured regions over one shared connection pool.
#[derive(Clone)]
pub(crate) struct PurchaseClient {
    http: reqwest::Client,
    /// Purchase URL per region index.
    urls: Vec<String>,
}

impl PurchaseClient {
    /// A client for `product` in `regions`, keeping up to `pool` idle connections per node.
    pub(crate) fn new(
        regions: &[RegionTarget],
        product: i64,
        timeout: Duration,
        pool: usize,
    ) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_max_idle_per_host(pool)
            .tcp_nodelay(true)
            .build()?;
        let urls = regions
            .iter()
            .map(|r| {
                format!(
                    "{}/v1/products/{product}/purchase",
                    r.url.trim_end_matches('/')
                )
            })
            .collect();
        Ok(PurchaseClient { http, urls })
    }

    /// Buyer `user` tries to buy one unit in region `region`.
    pub(crate) async fn purchase(&self, region: usize, user: i64) -> Answer {
        let sent = self
            .http
            .post(&self.urls[region])
            .json(&serde_json::json!({ "user_id": user }))
            .send()
            .await;
        let Ok(resp) = sent else {
            return Answer {
                status: TRANSPORT_ERROR,
                awaiting_stock: false,
                order_id: None,
            };
        };
        let status = resp.status().as_u16();
        // Read the body either way so the connection goes back to the pool.
        let body = resp.bytes().await;
        let body = body.unwrap_or_default();
        let order_id = match status {
            201 => serde_json::from_slice::<Created>(&body)
                .ok()
                .map(|c| c.order_id),
            _ => None,
        };
        Answer {
            status,
            awaiting_stock: status == 503 && is_awaiting_stock(&body),
            order_id,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_503_code() {
        let awaiting = br#"{"error":{"code":"awaiting_stock","message":"m","retry_after_ms":50}}"#;
        assert!(is_awaiting_stock(awaiting));
        assert!(!is_awaiting_stock(
            br#"{"error":{"code":"unavailable","message":"m"}}"#
        ));
        assert!(!is_awaiting_stock(b"Service Unavailable"));
        assert!(!is_awaiting_stock(b""));
    }
}
