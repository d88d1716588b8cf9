//! [`Escrow`]: the coordinator's side of the escrow protocol. It holds the global ledger (in
//! etcd, through [`Store`]) and is the only party that grants units from the pool (`G` grows)
//! or asks a region to release them. What it does is split by concern:
//!
//! * `lifecycle` — operator changes to a product: create, split, policy, restock, end,
//!   and region drains;
//! * `rebalance` — the leader's rebalance round and the movable stock it publishes;
//! * `status` — status from etcd alone;
//! * `audit` — the cross-region conservation audit.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use quota_shared::model::Movable;
use quota_shared::policy::PolicyParams;

use crate::error::CoordError;
use crate::store::Store;

/// The escrow agent over the global ledger; shared by the admin API and the leader's loop.
/// Every instance has one; only the leader's writes pass the store's fence.
pub struct Escrow {
    /// The ledger.
    pub(crate) store: Store,
    /// Rebalance policy tuning.
    pub(crate) params: PolicyParams,
    /// Token for region admin endpoints (the audit).
    pub(crate) admin_token: String,
    /// Client for region admin endpoints (the audit).
    pub(crate) http: reqwest::Client,
    /// Last published movable stock per product, and when (republished on change or every
    /// second so regions can tell it is fresh).
    pub(crate) movable_published: Mutex<BTreeMap<i64, (Movable, Instant)>>,
    /// Added to this instance's clock where it stamps what regions read (fault tests of clock
    /// skew; 0 in production).
    clock_skew_ms: i64,
    /// How long the audit watches a transfer that stays in transit, unchanged, before it
    /// calls it stuck.
    pub(crate) stuck_after: Duration,
}

impl Escrow {
    /// The escrow agent over `store`, with the rebalance tuning and the regions' admin token.
    pub fn new(store: Store, params: PolicyParams, admin_token: String) -> Escrow {
        Escrow {
            store,
            params,
            admin_token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("static client config"),
            movable_published: Mutex::new(BTreeMap::new()),
            clock_skew_ms: 0,
            stuck_after: Duration::from_secs(5),
        }
    }

    /// The HTTP client for the regions' audit endpoints (e.g. one trusting a private CA).
    #[must_use]
    pub fn with_http(mut self, http: reqwest::Client) -> Escrow {
        self.http = http;
        self
    }

    /// The audit's stuck bound (default 5 s): a grant or release in transit, unchanged for
    /// this long while its region answers, is a violation.
    #[must_use]
    pub fn with_stuck_after(mut self, after: Duration) -> Escrow {
        self.stuck_after = after;
        self
    }

    /// Pretends this instance's clock is `ms` off (a test knob: regions must not depend on
    /// the coordinator's clock agreeing with theirs).
    #[must_use]
    pub fn with_clock_skew_ms(mut self, ms: i64) -> Escrow {
        self.clock_skew_ms = ms;
        self
    }

    /// This instance's wall clock in Unix milliseconds, as it stamps values regions read.
    pub(crate) fn stamp_ms(&self) -> i64 {
        chrono::Utc::now().timestamp_millis() + self.clock_skew_ms
    }

    /// Every region that ever registered.
    pub(crate) async fn known_regions(&self) -> Result<Vec<String>, CoordError> {
        Ok(self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| r.region)
            .collect())
    }

    /// Every product id (or just `only`).
    pub(crate) async fn product_ids(&self, only: Option<i64>) -> Result<Vec<i64>, CoordError> {
        match only {
            Some(id) => Ok(vec![id]),
            None => self.store.product_ids().await,
        }
    }
}
