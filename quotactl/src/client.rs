//! [`AdminClient`]: one method per admin endpoint, typed by [`quota_shared::wire`], sent through
//! a list of coordinator instances (see [`crate::failover`] for which one next).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use quota_shared::admin_auth::{FORBIDDEN_SCOPE, REQUIRED_SCOPE_FIELD};
use quota_shared::api::ErrorEnvelope;
use serde::de::DeserializeOwned;

use crate::failover::{Endpoints, Failover, Kind, Miss, Next};

use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, DrainView, HomeRegions, IdempotencyKey, OrderRecord,
    ProductView, RegionView, Restock, RoundView, SaleReport, SetPolicy, SetSplit, StatusView,
    IDEMPOTENCY_KEY_HEADER, IDEMPOTENT_REPLAYED_HEADER,
};

/// One instance that brought no usable answer, and why (its last reason, when tried more
/// than once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tried {
    /// Base URL.
    pub url: String,
    /// Why: e.g. "Connection refused (os error 111)", "timed out", "HTTP 503 not_leader".
    pub why: String,
}

/// `a (why), b (why)`: every instance tried.
fn list(tried: &[Tried]) -> String {
    tried
        .iter()
        .map(|t| format!("{} ({})", t.url, t.why))
        .collect::<Vec<_>>()
        .join(", ")
}

/// `""`, or where an answer came from when other instances were tried first.
fn trail(answered_by: &str, tried: &[Tried]) -> String {
    if tried.is_empty() {
        String::new()
    } else {
        format!("; answered by {answered_by} after {}", list(tried))
    }
}

/// Why a request failed: unreachable, refused (with the API's error code), or answered with
/// something the contract does not allow. `quotactl` prints it and exits 1.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No coordinator instance could be reached (every one tried is named, with why).
    #[error("cannot reach the coordinator: tried {}", list(tried))]
    Unreachable {
        /// Every instance tried, in order.
        tried: Vec<Tried>,
    },
    /// The coordinator refused the request.
    #[error("{message} ({code}, HTTP {status}{})", trail(answered_by, tried))]
    Api {
        /// HTTP status.
        status: u16,
        /// Stable error code.
        code: String,
        /// Human message.
        message: String,
        /// The instance that answered.
        answered_by: String,
        /// Instances tried before it without a usable answer (empty: it was the first).
        tried: Vec<Tried>,
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
    /// A change was sent but no answer came back from any instance: it may or may not have
    /// been applied.
    #[error(
        "no answer from the coordinator (tried {}); the change may have been applied. Rerun \
         the same command with --idempotency-key {key} to apply it at most once",
        list(tried)
    )]
    MaybeApplied {
        /// Every instance tried, in order.
        tried: Vec<Tried>,
        /// The key the change was sent with.
        key: IdempotencyKey,
    },
    /// The answer was not what the API documents.
    #[error("unexpected answer from the coordinator: {0}")]
    Decode(String),
}

/// One try that brought no usable answer: why (for the decision and the message), and the
/// instance's own answer when it gave one (a 503), reported if it is the last.
struct Missed {
    miss: Miss,
    why: String,
    answer: Option<ClientError>,
}

/// The root cause of a transport error, short: "Connection refused (os error 111)", "timed
/// out", "invalid peer certificate: UnknownIssuer".
fn cause(e: &reqwest::Error) -> String {
    if e.is_timeout() {
        return "timed out".into();
    }
    let mut root: &dyn std::error::Error = e;
    while let Some(next) = root.source() {
        root = next;
    }
    root.to_string()
}

/// Client of the coordinator's admin API through a list of instances (any instance: standbys
/// forward writes to the leader). A request that finds an instance unreachable, or between
/// leaders (503), goes to the next one; see [`Failover`].
pub struct AdminClient {
    http: reqwest::Client,
    endpoints: Endpoints,
    token: String,
    /// Sent with every change, so resending one is harmless.
    key: Option<IdempotencyKey>,
    /// The last change had already been applied with the same key (nothing changed).
    replayed: AtomicBool,
    /// The instance that answered last: the next request starts there.
    preferred: AtomicUsize,
}

impl AdminClient {
    /// A client of the instances `endpoints` (e.g. `http://127.0.0.1:7070`) with the admin
    /// token, trusting what the HTTP client `http` was built to trust.
    pub fn new(endpoints: Endpoints, token: &str, http: reqwest::Client) -> AdminClient {
        AdminClient {
            http,
            endpoints,
            token: token.to_string(),
            key: None,
            replayed: AtomicBool::new(false),
            preferred: AtomicUsize::new(0),
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

    /// Sends a change: with the key (if any) as a header, resent while no instance answers or
    /// all are between leaders, to the next instance and again (see [`Failover`]).
    ///
    /// Resending a keyed change — to the same instance or to another — is safe: a standby
    /// only forwards the call, key included, to the leader, and the leader writes the change
    /// and a record of the key in one etcd transaction. Every instance, and a leader elected
    /// after a failover, reads that same etcd, so a copy arriving by any way finds the record
    /// and changes nothing (answering `Idempotent-Replayed: true`); the record names the call
    /// (method, path, body), and every copy is built by `make` from the same arguments, so it
    /// is the same call. Without a key a change is resent only where it was certainly never
    /// delivered (no connection made).
    async fn send_change<T: DeserializeOwned>(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        match &self.key {
            Some(key) => {
                self.exchange(Kind::KeyedChange, |base| {
                    make(base).header(IDEMPOTENCY_KEY_HEADER, key.as_str())
                })
                .await
            }
            None => self.exchange(Kind::UnkeyedChange, make).await,
        }
    }

    /// Sends a read (to every instance in turn until one answers).
    async fn read<T: DeserializeOwned>(
        &self,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        self.exchange(Kind::Read, make).await
    }

    /// Sends the request `make` builds for an instance's base URL through the instances, as
    /// [`Failover`] decides, until one answers; the error names every instance tried.
    async fn exchange<T: DeserializeOwned>(
        &self,
        kind: Kind,
        make: impl Fn(&str) -> reqwest::RequestBuilder,
    ) -> Result<T, ClientError> {
        let urls = self.endpoints.urls();
        let mut way = Failover::new(urls.len(), self.preferred.load(Ordering::Relaxed), kind);
        // Each instance's last miss, in the order first tried.
        let mut tried: Vec<Tried> = Vec::new();
        let mut maybe_delivered = false;
        let mut at = way.first();
        loop {
            let base = &urls[at];
            let missed = match self.send_once(make(base)).await {
                Ok(answer) => {
                    self.preferred.store(at, Ordering::Relaxed);
                    return answer.map_err(|e| match e {
                        ClientError::Api {
                            status,
                            code,
                            message,
                            ..
                        } => ClientError::Api {
                            status,
                            code,
                            message,
                            answered_by: base.clone(),
                            tried: tried.clone(),
                        },
                        other => other,
                    });
                }
                Err(m) => m,
            };
            maybe_delivered |= missed.miss != Miss::NotSent;
            match tried.iter_mut().find(|t| t.url == *base) {
                Some(t) => t.why.clone_from(&missed.why),
                None => tried.push(Tried {
                    url: base.clone(),
                    why: missed.why.clone(),
                }),
            }
            match way.after(missed.miss) {
                Next::Try(i) => at = i,
                Next::Wait(d, i) => {
                    tokio::time::sleep(d).await;
                    at = i;
                }
                Next::GiveUp => {
                    return Err(match (missed.answer, &self.key) {
                        // The last instance answered 503: that answer, with the trail.
                        (
                            Some(ClientError::Api {
                                status,
                                code,
                                message,
                                ..
                            }),
                            _,
                        ) => {
                            tried.retain(|t| t.url != *base);
                            ClientError::Api {
                                status,
                                code,
                                message,
                                answered_by: base.clone(),
                                tried,
                            }
                        }
                        (_, Some(key)) if kind == Kind::KeyedChange && maybe_delivered => {
                            ClientError::MaybeApplied {
                                tried,
                                key: key.clone(),
                            }
                        }
                        _ => ClientError::Unreachable { tried },
                    });
                }
            }
        }
    }

    /// One try at one instance: `Ok` with the answer (a success or a refusal to report), or
    /// the miss that lets [`Failover`] move on.
    async fn send_once<T: DeserializeOwned>(
        &self,
        req: reqwest::RequestBuilder,
    ) -> Result<Result<T, ClientError>, Missed> {
        let resp = match req.bearer_auth(&self.token).send().await {
            Ok(r) => r,
            Err(e) => {
                return Err(Missed {
                    miss: if e.is_connect() {
                        Miss::NotSent
                    } else {
                        Miss::NoAnswer
                    },
                    why: cause(&e),
                    answer: None,
                });
            }
        };
        let status = resp.status();
        let replayed = resp
            .headers()
            .get(IDEMPOTENT_REPLAYED_HEADER)
            .is_some_and(|v| v == "true");
        let bytes = match resp.bytes().await {
            Ok(b) => b,
            Err(e) => {
                return Err(Missed {
                    miss: Miss::NoAnswer,
                    why: format!("answer cut short: {}", cause(&e)),
                    answer: None,
                });
            }
        };
        let answer = decode(status, &bytes);
        if let Err(ClientError::Api {
            status: 503,
            code,
            message,
            ..
        }) = &answer
        {
            return Err(Missed {
                miss: Miss::Unavailable,
                why: format!("HTTP 503 {code}: {message}"),
                answer: answer.err(),
            });
        }
        self.replayed.store(replayed, Ordering::Relaxed);
        Ok(answer)
    }

    /// Creates a product (and its initial split).
    pub async fn create_product(&self, req: &CreateProduct) -> Result<ProductView, ClientError> {
        self.send_change(|b| self.http.post(format!("{b}/v1/admin/products")).json(req))
            .await
    }

    /// Every product.
    pub async fn products(&self) -> Result<Vec<ProductView>, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/products")))
            .await
    }

    /// One product.
    pub async fn product(&self, id: i64) -> Result<ProductView, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/products/{id}")))
            .await
    }

    /// What became of a sale's units, per region, with the audit (`report`).
    pub async fn sale_report(&self, id: i64) -> Result<SaleReport, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/products/{id}/report")))
            .await
    }

    /// Sets a static split (and the static policy); returns the moves made at once.
    pub async fn set_split(&self, id: i64, req: &SetSplit) -> Result<RoundView, ClientError> {
        self.send_change(|b| {
            self.http
                .put(format!("{b}/v1/admin/products/{id}/quota"))
                .json(req)
        })
        .await
    }

    /// Sets the rebalance policy.
    pub async fn set_policy(&self, id: i64, req: &SetPolicy) -> Result<ProductView, ClientError> {
        self.send_change(|b| {
            self.http
                .put(format!("{b}/v1/admin/products/{id}/policy"))
                .json(req)
        })
        .await
    }

    /// Adds units to the pool.
    pub async fn restock(&self, id: i64, req: &Restock) -> Result<ProductView, ClientError> {
        self.send_change(|b| {
            self.http
                .post(format!("{b}/v1/admin/products/{id}/restock"))
                .json(req)
        })
        .await
    }

    /// Ends the sale now.
    pub async fn end(&self, id: i64) -> Result<ProductView, ClientError> {
        self.send_change(|b| self.http.post(format!("{b}/v1/admin/products/{id}/end")))
            .await
    }

    /// One order, from whichever region holds it (`order show`).
    pub async fn order(&self, id: uuid::Uuid) -> Result<OrderRecord, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/orders/{id}")))
            .await
    }

    /// Cancels a pending order in its region (`order cancel`).
    pub async fn cancel_order(&self, id: uuid::Uuid) -> Result<OrderRecord, ClientError> {
        self.send_change(|b| self.http.post(format!("{b}/v1/admin/orders/{id}/cancel")))
            .await
    }

    /// One immediate rebalance round (unkeyed: the API takes no key for it).
    pub async fn rebalance(&self, id: i64) -> Result<RoundView, ClientError> {
        self.exchange(Kind::UnkeyedChange, |b| {
            self.http
                .post(format!("{b}/v1/admin/products/{id}/rebalance"))
        })
        .await
    }

    /// Starts or stops draining a region.
    pub async fn drain(&self, region: &str, req: &Drain) -> Result<DrainView, ClientError> {
        self.send_change(|b| {
            self.http
                .post(format!("{b}/v1/admin/regions/{region}/drain"))
                .json(req)
        })
        .await
    }

    /// The home regions new sales take.
    pub async fn home_regions(&self) -> Result<HomeRegions, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/home-regions")))
            .await
    }

    /// Sets the home regions new sales take.
    pub async fn set_home_regions(&self, req: &HomeRegions) -> Result<HomeRegions, ClientError> {
        self.send_change(|b| {
            self.http
                .put(format!("{b}/v1/admin/home-regions"))
                .json(req)
        })
        .await
    }

    /// Status of every product (or one).
    pub async fn status(&self, id: Option<i64>) -> Result<StatusView, ClientError> {
        let q = id.map(|i| format!("?product={i}")).unwrap_or_default();
        self.read(|b| self.http.get(format!("{b}/v1/admin/status{q}")))
            .await
    }

    /// The conservation audit of every product (or one).
    pub async fn audit(&self, id: Option<i64>) -> Result<AuditReport, ClientError> {
        let q = id.map(|i| format!("?product={i}")).unwrap_or_default();
        self.read(|b| self.http.get(format!("{b}/v1/admin/audit{q}")))
            .await
    }

    /// Every registered region.
    pub async fn regions(&self) -> Result<Vec<RegionView>, ClientError> {
        self.read(|b| self.http.get(format!("{b}/v1/admin/regions")))
            .await
    }
}

/// An answer: the body as `T` on success, else the error envelope as a [`ClientError`] (the
/// instance's URL and the trail are filled in by the caller).
fn decode<T: DeserializeOwned>(
    status: reqwest::StatusCode,
    bytes: &[u8],
) -> Result<T, ClientError> {
    if status.is_success() {
        return serde_json::from_slice(bytes).map_err(|e| ClientError::Decode(e.to_string()));
    }
    match serde_json::from_slice::<ErrorEnvelope>(bytes) {
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
            answered_by: String::new(),
            tried: Vec::new(),
        }),
        Err(_) => Err(ClientError::Decode(format!(
            "HTTP {status}: {}",
            String::from_utf8_lossy(bytes)
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A loopback port nothing listens on.
    fn closed_port() -> u16 {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    }

    #[tokio::test]
    async fn a_read_no_instance_answers_names_every_one_tried() {
        let (a, b) = (closed_port(), closed_port());
        let list = format!("http://127.0.0.1:{a},http://127.0.0.1:{b}");
        let client = AdminClient::new(
            Endpoints::parse(&list).unwrap(),
            "token-0123456789abcdef",
            reqwest::Client::new(),
        );
        let err = client.status(None).await.unwrap_err();
        let ClientError::Unreachable { tried } = &err else {
            panic!("{err:?}");
        };
        let urls: Vec<&str> = tried.iter().map(|t| t.url.as_str()).collect();
        assert_eq!(
            urls,
            [
                format!("http://127.0.0.1:{a}"),
                format!("http://127.0.0.1:{b}")
            ]
        );
        let said = err.to_string();
        assert!(
            said.starts_with("cannot reach the coordinator: tried "),
            "{said}"
        );
        assert!(said.contains(&format!(":{a} (")) && said.contains(&format!(":{b} (")));
        assert!(said.to_lowercase().contains("refused"), "{said}");
    }

    #[test]
    fn an_answer_after_a_failover_says_where_it_came_from() {
        let plain = ClientError::Api {
            status: 404,
            code: "unknown_product".into(),
            message: "unknown product 9".into(),
            answered_by: "http://b:2".into(),
            tried: Vec::new(),
        };
        assert_eq!(
            plain.to_string(),
            "unknown product 9 (unknown_product, HTTP 404)"
        );
        let after = ClientError::Api {
            status: 404,
            code: "unknown_product".into(),
            message: "unknown product 9".into(),
            answered_by: "http://b:2".into(),
            tried: vec![Tried {
                url: "http://a:1".into(),
                why: "Connection refused".into(),
            }],
        };
        assert_eq!(
            after.to_string(),
            "unknown product 9 (unknown_product, HTTP 404; answered by http://b:2 after \
             http://a:1 (Connection refused))"
        );
    }
}
