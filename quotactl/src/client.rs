//! [`AdminClient`]: one method per admin endpoint, typed by [`quota_shared::wire`].

use std::time::Duration;

use quota_shared::api::ErrorEnvelope;
use serde::de::DeserializeOwned;

use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, DrainView, ProductView, RegionView, Restock, RoundView,
    SetPolicy, SetSplit, StatusView,
};

/// Why a request failed: unreachable, refused (with the API's error code), or answered with
/// something the contract does not allow. `quotactl` prints it and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The coordinator could not be reached.
    #[error("cannot reach the coordinator at {url}: {source}")]
    Connect {
        /// Base URL tried.
        url: String,
        /// Cause.
        source: reqwest::Error,
    },
    /// The coordinator refused the request.
    #[error("{message} ({code}, HTTP {status})")]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Human message.
        message: String,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the coordinator: {0}")]
    Decode(String),
}

/// Client of one coordinator's admin API (any instance: standbys forward writes to the
/// leader).
pub struct AdminClient {
    http: reqwest::Client,
    base: String,
    token: String,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7070`) with the admin token.
    pub fn new(base: &str, token: &str) -> AdminClient {
        AdminClient {
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .expect("static client config"),
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
        }
    }

    async fn send<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let resp = req
            .bearer_auth(&self.token)
            .send()
            .await
            .map_err(|source| ClientError::Connect {
                url: self.base.clone(),
                source,
            })?;
        let status = resp.status();
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(env) => Err(ClientError::Api {
                status: status.as_u16(),
                code: env.error.code,
                message: env.error.message,
            }),
            Err(_) => Err(ClientError::Decode(format!(
                "HTTP {status}: {}",
                String::from_utf8_lossy(&bytes)
            ))),
        }
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    /// Creates a product (and its initial split).
    pub async fn create_product(&self, req: &CreateProduct) -> Result<ProductView, ClientError> {
        self.send(self.http.post(self.url("/v1/admin/products")).json(req))
            .await
    }

    /// Every product.
    pub async fn products(&self) -> Result<Vec<ProductView>, ClientError> {
        self.send(self.http.get(self.url("/v1/admin/products")))
            .await
    }

    /// One product.
    pub async fn product(&self, id: i64) -> Result<ProductView, ClientError> {
        self.send(self.http.get(self.url(&format!("/v1/admin/products/{id}"))))
            .await
    }

    /// Sets a static split (and the static policy); returns the moves made at once.
    pub async fn set_split(&self, id: i64, req: &SetSplit) -> Result<RoundView, ClientError> {
        self.send(
            self.http
                .put(self.url(&format!("/v1/admin/products/{id}/quota")))
                .json(req),
        )
        .await
    }

    /// Sets the rebalance policy.
    pub async fn set_policy(&self, id: i64, req: &SetPolicy) -> Result<ProductView, ClientError> {
        self.send(
            self.http
                .put(self.url(&format!("/v1/admin/products/{id}/policy")))
                .json(req),
        )
        .await
    }

    /// Adds units to the pool.
    pub async fn restock(&self, id: i64, req: &Restock) -> Result<ProductView, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/admin/products/{id}/restock")))
                .json(req),
        )
        .await
    }

    /// Ends the sale now.
    pub async fn end(&self, id: i64) -> Result<ProductView, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/admin/products/{id}/end"))),
        )
        .await
    }

    /// One immediate rebalance round.
    pub async fn rebalance(&self, id: i64) -> Result<RoundView, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/admin/products/{id}/rebalance"))),
        )
        .await
    }

    /// Starts or stops draining a region.
    pub async fn drain(&self, region: &str, req: &Drain) -> Result<DrainView, ClientError> {
        self.send(
            self.http
                .post(self.url(&format!("/v1/admin/regions/{region}/drain")))
                .json(req),
        )
        .await
    }

    /// Status of every product (or one).
    pub async fn status(&self, id: Option<i64>) -> Result<StatusView, ClientError> {
        let q = id.map(|i| format!("?product={i}")).unwrap_or_default();
        self.send(self.http.get(self.url(&format!("/v1/admin/status{q}"))))
            .await
    }

    /// The conservation audit of every product (or one).
    pub async fn audit(&self, id: Option<i64>) -> Result<AuditReport, ClientError> {
        let q = id.map(|i| format!("?product={i}")).unwrap_or_default();
        self.send(self.http.get(self.url(&format!("/v1/admin/audit{q}"))))
            .await
    }

    /// Every registered region.
    pub async fn regions(&self) -> Result<Vec<RegionView>, ClientError> {
        self.send(self.http.get(self.url("/v1/admin/regions")))
            .await
    }
}
