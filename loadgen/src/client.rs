//! One purchase request against a region node, reduced to what the report needs.

use std::time::Duration;

use serde::Deserialize;

use crate::config::RegionTarget;
use crate::retry::TRANSPORT_ERROR;

/// A region node's answer to one purchase.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Answer {
    /// HTTP status, or [`TRANSPORT_ERROR`] when no answer arrived.
    pub status: u16,
    /// The order id of a 201 (None if the body had none).
    pub order_id: Option<String>,
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
                order_id: None,
            };
        };
        let status = resp.status().as_u16();
        // Read the body either way so the connection goes back to the pool.
        let body = resp.bytes().await;
        let order_id = match (status, body) {
            (201, Ok(b)) => serde_json::from_slice::<Created>(&b)
                .ok()
                .map(|c| c.order_id),
            _ => None,
        };
        Answer { status, order_id }
    }
}
