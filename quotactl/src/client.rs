//! [`AdminClient`]: one method per admin endpoint, typed by [`quota_shared::wire`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use quota_shared::admin_auth::{FORBIDDEN_SCOPE, REQUIRED_SCOPE_FIELD};
use quota_shared::api::ErrorEnvelope;
use serde::de::DeserializeOwned;

use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, DrainView, HomeRegions, IdempotencyKey, ProductView,
    RegionView, Restock, RoundView, SetPolicy, SetSplit, StatusView, IDEMPOTENCY_KEY_HEADER,
    IDEMPOTENT_REPLAYED_HEADER,
};

/// How many times a keyed change is sent when the coordinator cannot be reached or is
/// between leaders: safe, because the key makes every copy after the first a no-op. The waits
/// between tries (0.3 s growing to 1.5 s, 7.5 s in all) outlast a coordinator's lease (2 s)
/// plus an etcd leader election, so an operator's command rides out a failover.
const WRITE_TRIES: u32 = 8;

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
    /// The token is valid but its scope does not allow the request (e.g. an auditor token on
    /// a change); nothing was changed.
    #[error(
        "refused: {message} ({FORBIDDEN_SCOPE}, HTTP 403). Pass a token with the {needed} \
         scope: --token-file FILE"
    )]
    Forbidden {
        /// The scope the request needs (`operator`, `auditor`), as the coordinator named it.
        needed: String,
        /// Human message.
        message: String,
    },
    /// A change was sent but no answer came back: it may or may not have been applied.
    #[error(
        "no answer from the coordinator at {url} ({source}); the change may have been applied. \
         Rerun the same command with --idempotency-key {key} to apply it at most once"
    )]
    MaybeApplied {
        /// Base URL tried.
        url: String,
        /// The key the change was sent with.
        key: IdempotencyKey,
        /// Cause.
        source: reqwest::Error,
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
    /// Sent with every change, so resending one is harmless.
    key: Option<IdempotencyKey>,
    /// The last change had already been applied with the same key (nothing changed).
    replayed: AtomicBool,
}

impl AdminClient {
    /// A client for `base` (e.g. `http://127.0.0.1:7070`) with the admin token, trusting the
    /// system's roots and the HTTP client `http` was built to trust.
    pub fn new(base: &str, token: &str, http: reqwest::Client) -> AdminClient {
        AdminClient {
            http,
            base: base.trim_end_matches('/').to_string(),
            token: token.to_string(),
            key: None,
            replayed: AtomicBool::new(false),
        }
    }

    /// Sends every change with `key` (one key names one change: use a client per change) and
    /// resends it when no answer comes back.
    #[must_use]
    pub fn with_idempotency_key(mut self, key: IdempotencyKey) -> AdminClient {
        self.key = Some(key);
        self
    }

    /// Whether the last change had already been applied earlier under the same key, so this
    /// call changed nothing.
    pub fn replayed(&self) -> bool {
        self.replayed.load(Ordering::Relaxed)
    }

    /// Sends a change: with the key (if any) as a header; resent up to [`WRITE_TRIES`] times
    /// while the coordinator cannot be reached or has no leader — only when keyed, because an
    /// unkeyed resend could apply the change twice.
    async fn send_change<T: DeserializeOwned>(
        &self,
        make: impl Fn() -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let Some(key) = &self.key else {
            return self.send(make()).await;
        };
        let mut tries = 0;
        loop {
            tries += 1;
            let req = make().header(IDEMPOTENCY_KEY_HEADER, key.as_str());
            match self.send(req).await {
                Err(ClientError::Connect { source, url }) => {
                    if tries >= WRITE_TRIES {
                        return Err(ClientError::MaybeApplied {
                            url,
                            key: key.clone(),
                            source,
                        });
                    }
                }
                Err(ClientError::Api { status: 503, .. }) if tries < WRITE_TRIES => {}
                other => return other,
            }
            tokio::time::sleep(Duration::from_millis((300 * u64::from(tries)).min(1_500))).await;
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
        self.replayed.store(
            resp.headers()
                .get(IDEMPOTENT_REPLAYED_HEADER)
                .is_some_and(|v| v == "true"),
            Ordering::Relaxed,
        );
        let bytes = resp
            .bytes()
            .await
            .map_err(|e| ClientError::Decode(e.to_string()))?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|e| ClientError::Decode(e.to_string()));
        }
        match serde_json::from_slice::<ErrorEnvelope>(&bytes) {
            Ok(env) if status.as_u16() == 403 && env.error.code == FORBIDDEN_SCOPE => {
                Err(ClientError::Forbidden {
                    needed: env
                        .error
                        .details
                        .get(REQUIRED_SCOPE_FIELD)
                        .and_then(serde_json::Value::as_str)
                        .unwrap_or("another")
                        .to_string(),
                    message: env.error.message,
                })
            }
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
        self.send_change(|| self.http.post(self.url("/v1/admin/products")).json(req))
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
        self.send_change(|| {
            self.http
                .put(self.url(&format!("/v1/admin/products/{id}/quota")))
                .json(req)
        })
        .await
    }

    /// Sets the rebalance policy.
    pub async fn set_policy(&self, id: i64, req: &SetPolicy) -> Result<ProductView, ClientError> {
        self.send_change(|| {
            self.http
                .put(self.url(&format!("/v1/admin/products/{id}/policy")))
                .json(req)
        })
        .await
    }

    /// Adds units to the pool.
    pub async fn restock(&self, id: i64, req: &Restock) -> Result<ProductView, ClientError> {
        self.send_change(|| {
            self.http
                .post(self.url(&format!("/v1/admin/products/{id}/restock")))
                .json(req)
        })
        .await
    }

    /// Ends the sale now.
    pub async fn end(&self, id: i64) -> Result<ProductView, ClientError> {
        self.send_change(|| {
            self.http
                .post(self.url(&format!("/v1/admin/products/{id}/end")))
        })
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
        self.send_change(|| {
            self.http
                .post(self.url(&format!("/v1/admin/regions/{region}/drain")))
                .json(req)
        })
        .await
    }

    /// The home regions new sales take.
    pub async fn home_regions(&self) -> Result<HomeRegions, ClientError> {
        self.send(self.http.get(self.url("/v1/admin/home-regions")))
            .await
    }

    /// Sets the home regions new sales take.
    pub async fn set_home_regions(&self, req: &HomeRegions) -> Result<HomeRegions, ClientError> {
        self.send_change(|| self.http.put(self.url("/v1/admin/home-regions")).json(req))
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
