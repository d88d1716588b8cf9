//! The ledger in etcd: reads, and fenced compare-and-swap writes.
//!
//! Every write is one etcd transaction with two guards:
//!
//! * **CAS** — the ledger's `mod_revision` is still the one read (creation: the spec key does
//!   not exist yet), so concurrent writers never lose each other's updates;
//! * **fence** — this instance's election key still exists with the revision it won with, so a
//!   deposed or paused leader (its lease expired, another instance leads) can never write.
//!
//! Because `R` (region releases) only grows, a pool computed from a stale `R` only looks
//! smaller: a write based on old data can never create a unit.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::{Arc, RwLock};
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use quota_shared::keys;
use quota_shared::ledger::pool;
use quota_shared::model::{
    Ledger, ProductSpec, RegionInfo, RegionReport, ReleasePublished, ReleaseRequest,
};

use crate::error::CoordError;
use crate::view::{ProductView, RegionShare, RegionView};

/// What a leader announces in the election: who it is and where its admin API listens.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LeaderValue {
    /// Instance id.
    pub id: String,
    /// Admin API base URL (writes are forwarded there).
    pub url: String,
}

/// This instance's proof of leadership: the election key and the revision it was created at.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The election key (`{election}/{lease id}`).
    pub key: Vec<u8>,
    /// Its create revision.
    pub rev: i64,
}

/// Everything the coordinator knows about one product, read in one etcd transaction.
#[derive(Debug, Clone)]
pub struct ProductRead {
    /// The spec.
    pub spec: ProductSpec,
    /// The ledger.
    pub ledger: Ledger,
    /// `mod_revision` of the ledger key (the CAS guard).
    pub revision: i64,
    /// Published releases `R` per region.
    pub released: BTreeMap<String, ReleasePublished>,
    /// Latest report per region (present only while the region's lease lives).
    pub reports: BTreeMap<String, RegionReport>,
    /// Outstanding release request per region.
    pub requests: BTreeMap<String, ReleaseRequest>,
    /// Regions whose heartbeat is present.
    pub alive: BTreeSet<String>,
    /// Regions registered (ever started).
    pub known: BTreeSet<String>,
    /// Regions being drained.
    pub draining: BTreeSet<String>,
    /// etcd revision of the read.
    pub etcd_revision: i64,
}

impl ProductRead {
    /// `R` per region as plain numbers.
    pub fn released_units(&self) -> BTreeMap<String, i64> {
        self.released
            .iter()
            .map(|(r, p)| (r.clone(), p.released))
            .collect()
    }

    /// Units in the pool.
    pub fn pool(&self) -> i64 {
        pool(
            self.ledger.total,
            &self.ledger.granted,
            &self.released_units(),
        )
    }

    /// Whether region `r` still has a release request it has not handled.
    pub fn release_pending(&self, r: &str) -> Option<&ReleaseRequest> {
        let req = self.requests.get(r)?;
        let handled = self.released.get(r).and_then(|p| p.last_request.as_deref())
            == Some(req.request_id.as_str());
        (!handled).then_some(req)
    }

    /// The admin view.
    pub fn view(&self) -> ProductView {
        let released = self.released_units();
        let mut regions: BTreeMap<String, RegionShare> = BTreeMap::new();
        for (r, g) in &self.ledger.granted {
            let rel = released.get(r).copied().unwrap_or(0);
            regions.insert(
                r.clone(),
                RegionShare {
                    granted: *g,
                    released: rel,
                    holds: g - rel,
                },
            );
        }
        ProductView {
            spec: self.spec.clone(),
            total: self.ledger.total,
            pool: self.pool(),
            policy: self.ledger.policy,
            regions,
        }
    }
}

/// The coordinator's handle on etcd.
#[derive(Clone)]
pub struct Store {
    client: Client,
    fence: Arc<RwLock<Option<Fence>>>,
}

fn parse_json<T: serde::de::DeserializeOwned>(key: &str, v: &[u8]) -> Result<T, CoordError> {
    serde_json::from_slice(v)
        .map_err(|e| CoordError::Internal(format!("unreadable value at {key}: {e}")))
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("ledger documents serialise")
}

fn gets(resp: &etcd_client::TxnResponse) -> Vec<etcd_client::GetResponse> {
    resp.op_responses()
        .into_iter()
        .filter_map(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => Some(g),
            _ => None,
        })
        .collect()
}

impl Store {
    /// Connects to etcd.
    pub async fn connect(endpoints: &[String]) -> Result<Store, CoordError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3));
        Ok(Store {
            client: Client::connect(endpoints, Some(opts)).await?,
            fence: Arc::new(RwLock::new(None)),
        })
    }

    /// A clone of the etcd client (for the election).
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    /// Installs (on winning the election) or clears (on losing it) this instance's fence.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.write().expect("fence lock poisoned") = fence;
    }

    /// Whether this instance currently leads.
    pub fn is_leader(&self) -> bool {
        self.fence.read().expect("fence lock poisoned").is_some()
    }

    /// The leader's election value, if any instance leads.
    async fn leader_value(&self) -> Result<Option<LeaderValue>, CoordError> {
        let mut c = self.client.clone();
        match c.leader(keys::election()).await {
            Ok(resp) => Ok(resp
                .kv()
                .and_then(|kv| serde_json::from_slice(kv.value()).ok())),
            Err(etcd_client::Error::GRpcStatus(s)) if s.message().contains("no leader") => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The leader's admin URL, if any instance leads.
    pub async fn leader_url(&self) -> Result<Option<String>, CoordError> {
        Ok(self.leader_value().await?.map(|v| v.url))
    }

    /// The leader's id, if any instance leads.
    pub async fn leader_id(&self) -> Result<Option<String>, CoordError> {
        Ok(self.leader_value().await?.map(|v| v.id))
    }

    /// Whether etcd answers.
    pub async fn ping(&self) -> Result<(), CoordError> {
        let mut c = self.client.clone();
        c.get(keys::ROOT, Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(())
    }

    /// Runs a write transaction guarded by `cmps` plus the fence. `Ok(false)` when the CAS
    /// lost (re-read and retry); `Err(NotLeader)` when the fence failed.
    async fn fenced_txn(
        &self,
        mut cmps: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<bool, CoordError> {
        let fence = self
            .fence
            .read()
            .expect("fence lock poisoned")
            .clone()
            .ok_or(CoordError::NotLeader)?;
        cmps.push(Compare::create_revision(
            fence.key.clone(),
            CompareOp::Equal,
            fence.rev,
        ));
        let mut c = self.client.clone();
        if c.txn(Txn::new().when(cmps).and_then(ops))
            .await?
            .succeeded()
        {
            return Ok(true);
        }
        // Which guard failed? If our election key is gone or was re-created, we are deposed.
        let resp = c.get(fence.key.clone(), None).await?;
        match resp.kvs().first() {
            Some(kv) if kv.create_revision() == fence.rev => Ok(false),
            _ => {
                tracing::warn!("fenced write rejected: this instance no longer leads");
                self.set_fence(None);
                Err(CoordError::NotLeader)
            }
        }
    }

    /// Every registered region, with liveness and the age of its latest report.
    pub async fn regions(&self) -> Result<Vec<RegionView>, CoordError> {
        let mut c = self.client.clone();
        let resp = c
            .get(
                keys::regions_prefix(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut infos: BTreeMap<String, RegionView> = BTreeMap::new();
        let mut alive = BTreeSet::new();
        let mut last_report: BTreeMap<String, i64> = BTreeMap::new();
        for kv in resp.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(region) = keys::region_from_key(&key).map(str::to_string) else {
                continue;
            };
            if key == keys::region_info(&region) {
                let info: RegionInfo = parse_json(&key, kv.value())?;
                infos.insert(
                    region.clone(),
                    RegionView {
                        region,
                        url: info.url,
                        alive: false,
                        last_report_ms: None,
                    },
                );
            } else if key == keys::region_alive(&region) {
                alive.insert(region);
            } else if key.contains("/reports/") {
                if let Ok(r) = serde_json::from_slice::<RegionReport>(kv.value()) {
                    let e = last_report.entry(region).or_insert(i64::MIN);
                    *e = (*e).max(r.at_ms);
                }
            }
        }
        for (r, v) in infos.iter_mut() {
            v.alive = alive.contains(r);
            v.last_report_ms = last_report.get(r).map(|at| (now_ms - at).max(0));
        }
        Ok(infos.into_values().collect())
    }

    /// Reads one product and everything regions published about it, in one transaction.
    pub async fn read(&self, product_id: i64) -> Result<ProductRead, CoordError> {
        let mut c = self.client.clone();
        let txn = Txn::new().and_then(vec![
            TxnOp::get(keys::product_spec(product_id), None),
            TxnOp::get(keys::product_ledger(product_id), None),
            TxnOp::get(
                keys::regions_prefix(),
                Some(GetOptions::new().with_prefix()),
            ),
            TxnOp::get(
                format!("{}release-requests/", keys::ROOT),
                Some(GetOptions::new().with_prefix()),
            ),
            TxnOp::get(keys::drains_prefix(), Some(GetOptions::new().with_prefix())),
        ]);
        let resp = c.txn(txn).await?;
        let etcd_revision = resp.header().map(|h| h.revision()).unwrap_or(0);
        let g = gets(&resp);
        let [spec, ledger, regions, requests, drains] = g.as_slice() else {
            return Err(CoordError::Internal("short etcd transaction reply".into()));
        };
        let Some(spec_kv) = spec.kvs().first() else {
            return Err(CoordError::UnknownProduct(product_id));
        };
        let spec: ProductSpec = parse_json(&keys::product_spec(product_id), spec_kv.value())?;
        let ledger_kv = ledger.kvs().first().ok_or_else(|| {
            CoordError::Internal(format!("product {product_id} has a spec but no ledger"))
        })?;
        let ledger_doc: Ledger = parse_json(&keys::product_ledger(product_id), ledger_kv.value())?;
        let mut read = ProductRead {
            spec,
            ledger: ledger_doc,
            revision: ledger_kv.mod_revision(),
            released: BTreeMap::new(),
            reports: BTreeMap::new(),
            requests: BTreeMap::new(),
            alive: BTreeSet::new(),
            known: BTreeSet::new(),
            draining: BTreeSet::new(),
            etcd_revision,
        };
        for kv in regions.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            let Some(region) = keys::region_from_key(&key).map(str::to_string) else {
                continue;
            };
            if key == keys::region_release(&region, product_id) {
                read.released.insert(region, parse_json(&key, kv.value())?);
            } else if key == keys::region_report(&region, product_id) {
                read.reports.insert(region, parse_json(&key, kv.value())?);
            } else if key == keys::region_alive(&region) {
                read.alive.insert(region);
            } else if key == keys::region_info(&region) {
                read.known.insert(region);
            }
        }
        for kv in requests.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if keys::product_id_from_key(&key) != Some(product_id) {
                continue;
            }
            let region = key
                .trim_start_matches(&format!("{}release-requests/", keys::ROOT))
                .split('/')
                .next()
                .unwrap_or_default()
                .to_string();
            read.requests.insert(region, parse_json(&key, kv.value())?);
        }
        for kv in drains.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if let Some(r) = key.strip_prefix(&keys::drains_prefix()) {
                read.draining.insert(r.to_string());
            }
        }
        Ok(read)
    }

    /// Every product id with a spec.
    pub async fn product_ids(&self) -> Result<Vec<i64>, CoordError> {
        let mut c = self.client.clone();
        let resp = c
            .get(
                keys::products_prefix(),
                Some(GetOptions::new().with_prefix().with_keys_only()),
            )
            .await?;
        let mut ids: Vec<i64> = resp
            .kvs()
            .iter()
            .filter_map(|kv| {
                let k = String::from_utf8_lossy(kv.key());
                if k.ends_with("/spec") {
                    keys::product_id_from_key(&k)
                } else {
                    None
                }
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }

    /// Creates a product with its ledger (and initial grants), atomically.
    pub async fn create(&self, spec: &ProductSpec, ledger: &Ledger) -> Result<(), CoordError> {
        let p = spec.product_id;
        let mut ops = vec![
            TxnOp::put(keys::product_spec(p), to_json(spec), None),
            TxnOp::put(keys::product_ledger(p), to_json(ledger), None),
        ];
        for (r, g) in &ledger.granted {
            ops.push(TxnOp::put(keys::grant(r, p), g.to_string(), None));
        }
        let cmp = Compare::create_revision(keys::product_spec(p), CompareOp::Equal, 0);
        if !self.fenced_txn(vec![cmp], ops).await? {
            return Err(CoordError::Conflict(format!("product {p} already exists")));
        }
        tracing::info!(product_id = p, total = spec.total, "product created");
        Ok(())
    }

    /// Writes a new ledger (and spec, if changed), the grants that grew, and new release
    /// requests, iff the ledger is unchanged since `read`. Grants never shrink: a lower value
    /// is a bug and is refused.
    pub async fn write(
        &self,
        read: &ProductRead,
        ledger: &Ledger,
        spec: Option<&ProductSpec>,
        requests: &BTreeMap<String, ReleaseRequest>,
    ) -> Result<bool, CoordError> {
        let p = read.spec.product_id;
        let mut ops = Vec::new();
        for (r, g) in &ledger.granted {
            let old = read.ledger.granted.get(r).copied().unwrap_or(0);
            if *g < old {
                return Err(CoordError::Internal(format!(
                    "refusing to lower {r}'s grant from {old} to {g}"
                )));
            }
            if *g != old {
                ops.push(TxnOp::put(keys::grant(r, p), g.to_string(), None));
            }
        }
        for (r, req) in requests {
            ops.push(TxnOp::put(keys::release_request(r, p), to_json(req), None));
        }
        if let Some(spec) = spec {
            ops.push(TxnOp::put(keys::product_spec(p), to_json(spec), None));
        }
        ops.push(TxnOp::put(keys::product_ledger(p), to_json(ledger), None));
        let cmp = Compare::mod_revision(keys::product_ledger(p), CompareOp::Equal, read.revision);
        self.fenced_txn(vec![cmp], ops).await
    }

    /// Publishes what could still move to each region (fenced; no CAS: last writer wins and
    /// only the leader writes).
    pub async fn put_movable(
        &self,
        product_id: i64,
        m: &quota_shared::model::Movable,
    ) -> Result<(), CoordError> {
        self.fenced_txn(
            vec![],
            vec![TxnOp::put(
                keys::product_movable(product_id),
                to_json(m),
                None,
            )],
        )
        .await?;
        Ok(())
    }

    /// Marks (or unmarks) a region as draining.
    pub async fn set_drain(&self, region: &str, on: bool) -> Result<(), CoordError> {
        let op = if on {
            TxnOp::put(keys::drain(region), "1", None)
        } else {
            TxnOp::delete(keys::drain(region), None)
        };
        self.fenced_txn(vec![], vec![op]).await?;
        Ok(())
    }
}
