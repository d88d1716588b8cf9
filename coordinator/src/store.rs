//! The ledger in etcd: reads, and compare-and-swap writes.
//!
//! A product's ledger (`products/{p}/ledger`) and its grants (`grants/{r}/{p}`) change together
//! in one etcd transaction that succeeds only if the ledger's `mod_revision` is still the one
//! read (creation: only if the spec key does not exist yet). A writer that lost the race re-reads
//! and recomputes, at most a few times. Because `R` (region releases) only grows, computing the
//! pool from a stale `R` only makes it look smaller: never a unit created.

use std::collections::BTreeMap;
use std::time::Duration;

use etcd_client::{Client, Compare, CompareOp, ConnectOptions, GetOptions, Txn, TxnOp};
use quota_shared::keys;
use quota_shared::ledger::{apply_split, pool};
use quota_shared::model::{Ledger, ProductSpec, RegionInfo};

use crate::error::CoordError;
use crate::view::{ProductView, RegionShare, RegionView};

/// How many times a write re-reads after losing a compare-and-swap race.
const CAS_ATTEMPTS: usize = 5;

/// A product's ledger as read, with the revision a write must compare against.
#[derive(Debug, Clone)]
pub struct LedgerRead {
    /// The spec.
    pub spec: ProductSpec,
    /// The ledger.
    pub ledger: Ledger,
    /// `mod_revision` of the ledger key.
    pub revision: i64,
    /// Cumulative releases `R` published by each region.
    pub released: BTreeMap<String, i64>,
}

impl LedgerRead {
    /// The admin view of this read.
    pub fn view(&self) -> ProductView {
        let mut regions: BTreeMap<String, RegionShare> = BTreeMap::new();
        for (r, g) in &self.ledger.granted {
            let rel = self.released.get(r).copied().unwrap_or(0);
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
            pool: pool(self.ledger.total, &self.ledger.granted, &self.released),
            regions,
        }
    }
}

/// The coordinator's handle on etcd.
#[derive(Clone)]
pub struct Store {
    client: Client,
}

fn parse_json<T: serde::de::DeserializeOwned>(key: &str, v: &[u8]) -> Result<T, CoordError> {
    serde_json::from_slice(v)
        .map_err(|e| CoordError::Internal(format!("unreadable value at {key}: {e}")))
}

impl Store {
    /// Connects to etcd.
    pub async fn connect(endpoints: &[String]) -> Result<Store, CoordError> {
        let opts = ConnectOptions::new()
            .with_connect_timeout(Duration::from_secs(2))
            .with_timeout(Duration::from_secs(3));
        Ok(Store {
            client: Client::connect(endpoints, Some(opts)).await?,
        })
    }

    /// Whether etcd answers.
    pub async fn ping(&self) -> Result<(), CoordError> {
        let mut c = self.client.clone();
        c.get(keys::ROOT, Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(())
    }

    /// Every registered region, with liveness.
    pub async fn regions(&self) -> Result<Vec<RegionView>, CoordError> {
        let mut c = self.client.clone();
        let resp = c
            .get(
                keys::regions_prefix(),
                Some(GetOptions::new().with_prefix()),
            )
            .await?;
        let mut infos: BTreeMap<String, RegionView> = BTreeMap::new();
        let mut alive = Vec::new();
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
                    },
                );
            } else if key == keys::region_alive(&region) {
                alive.push(region);
            }
        }
        for r in alive {
            if let Some(v) = infos.get_mut(&r) {
                v.alive = true;
            }
        }
        Ok(infos.into_values().collect())
    }

    /// Reads one product's spec, ledger and the regions' published releases.
    pub async fn read(&self, product_id: i64) -> Result<LedgerRead, CoordError> {
        let mut c = self.client.clone();
        let txn = Txn::new().and_then(vec![
            TxnOp::get(keys::product_spec(product_id), None),
            TxnOp::get(keys::product_ledger(product_id), None),
            TxnOp::get(
                keys::regions_prefix(),
                Some(GetOptions::new().with_prefix()),
            ),
        ]);
        let resp = c.txn(txn).await?;
        let mut gets = resp.op_responses().into_iter().filter_map(|r| match r {
            etcd_client::TxnOpResponse::Get(g) => Some(g),
            _ => None,
        });
        let (Some(spec), Some(ledger), Some(regions)) = (gets.next(), gets.next(), gets.next())
        else {
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
        let mut released = BTreeMap::new();
        for kv in regions.kvs() {
            let key = String::from_utf8_lossy(kv.key()).into_owned();
            if let Some(region) = keys::region_from_key(&key) {
                if key == keys::region_release(region, product_id) {
                    let r: i64 = std::str::from_utf8(kv.value())
                        .ok()
                        .and_then(|v| v.trim().parse().ok())
                        .ok_or_else(|| CoordError::Internal(format!("unreadable {key}")))?;
                    released.insert(region.to_string(), r);
                }
            }
        }
        Ok(LedgerRead {
            spec,
            ledger: ledger_doc,
            revision: ledger_kv.mod_revision(),
            released,
        })
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

    /// Creates a product with an optional initial split, atomically: spec, ledger and grants
    /// appear together or not at all.
    pub async fn create(
        &self,
        spec: ProductSpec,
        split: Option<BTreeMap<String, i64>>,
    ) -> Result<LedgerRead, CoordError> {
        spec.validate()?;
        let empty = BTreeMap::new();
        let granted = match &split {
            Some(s) => {
                let known = self.known_regions().await?;
                apply_split(spec.total, &empty, &empty, s, &known)?
            }
            None => BTreeMap::new(),
        };
        let ledger = Ledger {
            total: spec.total,
            granted,
        };
        let p = spec.product_id;
        let mut ops = vec![
            TxnOp::put(keys::product_spec(p), to_json(&spec), None),
            TxnOp::put(keys::product_ledger(p), to_json(&ledger), None),
        ];
        for (r, g) in &ledger.granted {
            ops.push(TxnOp::put(keys::grant(r, p), g.to_string(), None));
        }
        let txn = Txn::new()
            .when(vec![Compare::create_revision(
                keys::product_spec(p),
                CompareOp::Equal,
                0,
            )])
            .and_then(ops);
        let mut c = self.client.clone();
        if !c.txn(txn).await?.succeeded() {
            return Err(CoordError::Conflict(format!("product {p} already exists")));
        }
        tracing::info!(product_id = p, total = spec.total, "product created");
        self.read(p).await
    }

    /// Sets a static split (raising grants from the pool; see `ledger::apply_split`).
    pub async fn set_split(
        &self,
        product_id: i64,
        split: &BTreeMap<String, i64>,
    ) -> Result<LedgerRead, CoordError> {
        let known = self.known_regions().await?;
        for _ in 0..CAS_ATTEMPTS {
            let read = self.read(product_id).await?;
            let new = apply_split(
                read.ledger.total,
                &read.ledger.granted,
                &read.released,
                split,
                &known,
            )?;
            if new == read.ledger.granted {
                return Ok(read);
            }
            if self.write_grants(&read, new).await? {
                return self.read(product_id).await;
            }
        }
        Err(CoordError::Unavailable(
            "the ledger kept changing concurrently; retry".into(),
        ))
    }

    /// Writes new cumulative grants iff the ledger is unchanged since `read`. Grants never
    /// shrink: a lower value is a bug and is refused.
    async fn write_grants(
        &self,
        read: &LedgerRead,
        granted: BTreeMap<String, i64>,
    ) -> Result<bool, CoordError> {
        let p = read.spec.product_id;
        let mut ops = Vec::new();
        for (r, g) in &granted {
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
        let ledger = Ledger {
            total: read.ledger.total,
            granted,
        };
        ops.push(TxnOp::put(keys::product_ledger(p), to_json(&ledger), None));
        let txn = Txn::new()
            .when(vec![Compare::mod_revision(
                keys::product_ledger(p),
                CompareOp::Equal,
                read.revision,
            )])
            .and_then(ops);
        let mut c = self.client.clone();
        Ok(c.txn(txn).await?.succeeded())
    }

    async fn known_regions(&self) -> Result<Vec<String>, CoordError> {
        Ok(self
            .regions()
            .await?
            .into_iter()
            .map(|r| r.region)
            .collect())
    }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("ledger documents serialise")
}
