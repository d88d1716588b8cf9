//! The coordinator's operations: what the admin API and the leader's loop do, over [`Store`].

use std::collections::BTreeMap;
use std::time::Duration;

use chrono::Utc;
use quota_shared::ledger::{check_conservation, RegionTerms};
use quota_shared::model::{validate_region_name, Ledger, ProductSpec};
use quota_shared::policy::{plan, Move, PolicyKind, PolicyParams};

use crate::error::CoordError;
use crate::round::{apply_moves, drain_moves, movable, region_states, regions_of};
use crate::store::{ProductRead, Store};
use crate::view::{
    AuditReport, CreateProduct, ProductAudit, ProductStatus, ProductView, RegionAudit,
    RegionStatus, StatusView,
};

/// How many times an operation re-reads after losing a compare-and-swap race.
const CAS_ATTEMPTS: usize = 5;

/// Operations shared by every instance (writes require leadership: the store's fence).
pub struct Ops {
    /// The ledger.
    pub store: Store,
    /// Policy tuning.
    pub params: PolicyParams,
    /// Token for region admin endpoints (the audit).
    pub admin_token: String,
    http: reqwest::Client,
    /// Last published movable stock per product, and when (republished on change or every
    /// second so regions can tell it is fresh).
    published: std::sync::Mutex<BTreeMap<i64, (quota_shared::model::Movable, std::time::Instant)>>,
}

impl Ops {
    /// Operations over `store`.
    pub fn new(store: Store, params: PolicyParams, admin_token: String) -> Ops {
        Ops {
            store,
            params,
            admin_token,
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(5))
                .build()
                .expect("static client config"),
            published: std::sync::Mutex::new(BTreeMap::new()),
        }
    }

    async fn known_regions(&self) -> Result<Vec<String>, CoordError> {
        Ok(self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| r.region)
            .collect())
    }

    /// Validates a split: known regions, no negative share, Σ ≤ total.
    fn check_split(
        split: &BTreeMap<String, i64>,
        total: i64,
        known: &[String],
    ) -> Result<(), CoordError> {
        if split.is_empty() {
            return Err(CoordError::Invalid(
                "split must name at least one region".into(),
            ));
        }
        for (r, n) in split {
            validate_region_name(r)?;
            if !known.contains(r) {
                return Err(CoordError::Invalid(format!(
                    "unknown region {r:?} (known: {})",
                    known.join(", ")
                )));
            }
            if *n < 0 {
                return Err(CoordError::Invalid(format!(
                    "share for {r} must not be negative (got {n})"
                )));
            }
        }
        let sum: i64 = split.values().sum();
        if sum > total {
            return Err(CoordError::Invalid(format!(
                "split sums to {sum}, more than the total of {total}"
            )));
        }
        Ok(())
    }

    /// Creates a sale; an initial split is granted at once.
    pub async fn create(&self, req: CreateProduct) -> Result<ProductView, CoordError> {
        let start = req.start_time.unwrap_or_else(Utc::now);
        let spec = ProductSpec {
            product_id: req.product_id,
            name: req.name,
            total: req.total,
            price: req.price,
            original_price: req.original_price.unwrap_or(req.price),
            start_time: start,
            end_time: req.end_time.unwrap_or(start + chrono::Duration::hours(1)),
            per_user_limit: req.per_user_limit.unwrap_or(1),
        };
        spec.validate()?;
        let mut ledger = Ledger {
            total: spec.total,
            policy: req.policy.unwrap_or_default(),
            ..Ledger::default()
        };
        if let Some(split) = req.split {
            Self::check_split(&split, spec.total, &self.known_regions().await?)?;
            ledger.granted = split
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (r.clone(), *n))
                .collect();
            ledger.static_split = split;
        }
        self.store.create(&spec, &ledger).await?;
        Ok(self.store.read(spec.product_id).await?.view())
    }

    /// Re-reads and applies `change` to the ledger (and spec) until the CAS succeeds.
    async fn update<F>(&self, id: i64, mut change: F) -> Result<ProductRead, CoordError>
    where
        F: FnMut(&ProductRead, &mut Ledger, &mut ProductSpec) -> Result<(), CoordError>,
    {
        for _ in 0..CAS_ATTEMPTS {
            let read = self.store.read(id).await?;
            let mut ledger = read.ledger.clone();
            let mut spec = read.spec.clone();
            change(&read, &mut ledger, &mut spec)?;
            let spec_changed = (spec != read.spec).then_some(&spec);
            if self
                .store
                .write(&read, &ledger, spec_changed, &BTreeMap::new())
                .await?
            {
                return self.store.read(id).await;
            }
        }
        Err(CoordError::Unavailable(
            "the ledger kept changing concurrently; retry".into(),
        ))
    }

    /// Static split: record it, switch the product to the static policy, and move towards it
    /// at once (grants from the pool now; releases from regions above their share).
    pub async fn set_split(
        &self,
        id: i64,
        split: BTreeMap<String, i64>,
    ) -> Result<(ProductView, Vec<Move>), CoordError> {
        let known = self.known_regions().await?;
        self.update(id, |read, ledger, _| {
            Self::check_split(&split, read.ledger.total, &known)?;
            ledger.static_split = split.clone();
            ledger.policy = PolicyKind::Static;
            Ok(())
        })
        .await?;
        let moves = self.round(id).await?;
        Ok((self.store.read(id).await?.view(), moves))
    }

    /// Changes the rebalance policy.
    pub async fn set_policy(&self, id: i64, policy: PolicyKind) -> Result<ProductView, CoordError> {
        Ok(self
            .update(id, |_, ledger, _| {
                ledger.policy = policy;
                Ok(())
            })
            .await?
            .view())
    }

    /// Adds units to the pool (and the total).
    pub async fn restock(&self, id: i64, units: i64) -> Result<ProductView, CoordError> {
        if units <= 0 {
            return Err(CoordError::Invalid(format!(
                "restock units must be positive (got {units})"
            )));
        }
        Ok(self
            .update(id, |_, ledger, spec| {
                let total = ledger
                    .total
                    .checked_add(units)
                    .filter(|t| *t <= quota_shared::model::MAX_TOTAL)
                    .ok_or_else(|| CoordError::Invalid("total would exceed the maximum".into()))?;
                ledger.total = total;
                spec.total = total;
                Ok(())
            })
            .await?
            .view())
    }

    /// Ends the sale now (regions refuse purchases from then on; nothing is moved any more).
    pub async fn end(&self, id: i64) -> Result<ProductView, CoordError> {
        Ok(self
            .update(id, |_, _, spec| {
                let now = Utc::now();
                if spec.end_time > now {
                    spec.end_time = now.max(spec.start_time + chrono::Duration::milliseconds(1));
                }
                Ok(())
            })
            .await?
            .view())
    }

    /// Starts (or stops) draining a region.
    pub async fn drain(&self, region: &str, on: bool) -> Result<(), CoordError> {
        validate_region_name(region)?;
        if !self.known_regions().await?.iter().any(|r| r == region) {
            return Err(CoordError::Invalid(format!("unknown region {region:?}")));
        }
        self.store.set_drain(region, on).await
    }

    /// One rebalance round for one product (leader only). Returns the moves made.
    pub async fn round(&self, id: i64) -> Result<Vec<Move>, CoordError> {
        for _ in 0..CAS_ATTEMPTS {
            let read = self.store.read(id).await?;
            if Utc::now() >= read.spec.end_time {
                return Ok(Vec::new());
            }
            let states = region_states(&read);
            self.publish_movable(id, &read, &states).await?;
            let mut moves = plan(read.ledger.policy, &self.params, read.pool(), &states);
            moves.extend(drain_moves(&read, &states));
            if moves.is_empty() {
                return Ok(moves);
            }
            let (ledger, requests, kept) = apply_moves(&read, moves);
            if kept.is_empty() {
                return Ok(kept);
            }
            if self.store.write(&read, &ledger, None, &requests).await? {
                tracing::info!(product_id = id, moves = ?kept, "rebalanced");
                return Ok(kept);
            }
        }
        Err(CoordError::Unavailable(
            "the ledger kept changing concurrently; retry".into(),
        ))
    }

    /// Publishes what could still move to each region, when it changed or a second passed.
    async fn publish_movable(
        &self,
        id: i64,
        read: &ProductRead,
        states: &[quota_shared::policy::RegionState],
    ) -> Result<(), CoordError> {
        let now = std::time::Instant::now();
        let mut m = movable(read, states, Utc::now().timestamp_millis());
        let fresh = {
            let last = self.published.lock().expect("lock poisoned");
            match last.get(&id) {
                Some((prev, at)) => {
                    m.at_ms = prev.at_ms;
                    *prev == m && now.duration_since(*at) < Duration::from_secs(1)
                }
                None => false,
            }
        };
        if fresh {
            return Ok(());
        }
        m.at_ms = Utc::now().timestamp_millis();
        self.store.put_movable(id, &m).await?;
        self.published
            .lock()
            .expect("lock poisoned")
            .insert(id, (m, now));
        Ok(())
    }

    /// Every product id (or just `only`).
    async fn ids(&self, only: Option<i64>) -> Result<Vec<i64>, CoordError> {
        match only {
            Some(id) => Ok(vec![id]),
            None => self.store.product_ids().await,
        }
    }

    /// Status from etcd alone (ledger + region reports).
    pub async fn status(&self, only: Option<i64>) -> Result<StatusView, CoordError> {
        let mut products = Vec::new();
        for id in self.ids(only).await? {
            let read = self.store.read(id).await?;
            let mut regions = BTreeMap::new();
            for r in regions_of(&read) {
                let g_total = read.ledger.granted.get(&r).copied().unwrap_or(0);
                let released = read.released.get(&r).map(|p| p.released).unwrap_or(0);
                let rep = read.reports.get(&r);
                regions.insert(
                    r.clone(),
                    RegionStatus {
                        granted: g_total,
                        applied: rep.map(|x| x.granted),
                        released,
                        sold: rep.map(|x| x.sold),
                        available: rep.map(|x| x.available),
                        in_transit: rep.map(|x| (g_total - x.granted) + (x.released - released)),
                        demand: rep.map(|x| x.demand).unwrap_or(0.0),
                        alive: read.alive.contains(&r),
                        draining: read.draining.contains(&r),
                    },
                );
            }
            products.push(ProductStatus {
                product_id: id,
                name: read.spec.name.clone(),
                total: read.ledger.total,
                pool: read.pool(),
                policy: read.ledger.policy,
                active: read.spec.is_active(Utc::now()),
                regions,
            });
        }
        Ok(StatusView {
            leader: self.store.leader_id().await?,
            products,
        })
    }

    /// The conservation audit (see ARCHITECTURE.md): reads each region's truth through its
    /// admin endpoint, between two reads of the ledger that must agree (a consistent cut).
    pub async fn audit(&self, only: Option<i64>) -> Result<AuditReport, CoordError> {
        let regions = self.store.regions().await?;
        let urls: BTreeMap<String, String> =
            regions.into_iter().map(|r| (r.region, r.url)).collect();
        let mut report = AuditReport {
            ok: true,
            unreadable: Vec::new(),
            products: Vec::new(),
        };
        for id in self.ids(only).await? {
            let pa = self
                .audit_product(id, &urls, &mut report.unreadable)
                .await?;
            report.ok &= pa.ok;
            report.products.push(pa);
        }
        report.unreadable.sort();
        report.unreadable.dedup();
        report.ok &= report.unreadable.is_empty();
        Ok(report)
    }

    async fn audit_product(
        &self,
        id: i64,
        urls: &BTreeMap<String, String>,
        unreadable: &mut Vec<String>,
    ) -> Result<ProductAudit, CoordError> {
        for _ in 0..10 {
            let before = self.store.read(id).await?;
            let stake: Vec<String> = before
                .ledger
                .granted
                .iter()
                .filter(|(_, g)| **g > 0)
                .map(|(r, _)| r.clone())
                .collect();
            let mut truths = BTreeMap::new();
            let mut missing = Vec::new();
            for r in &stake {
                match self.region_truth(urls.get(r), id).await {
                    Ok(v) => {
                        truths.insert(r.clone(), v);
                    }
                    Err(e) => missing.push(format!("{r}: {e}")),
                }
            }
            let after = self.store.read(id).await?;
            let cut_consistent =
                before.revision == after.revision && before.released == after.released;
            if !cut_consistent {
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
            unreadable.extend(missing.iter().cloned());
            return Ok(evaluate(&after, &truths, &missing));
        }
        Err(CoordError::Unavailable(
            "the ledger kept changing during the audit; retry".into(),
        ))
    }

    async fn region_truth(
        &self,
        url: Option<&String>,
        id: i64,
    ) -> Result<serde_json::Value, String> {
        let url = url.ok_or("region never registered a URL")?;
        let resp = self
            .http
            .get(format!("{url}/v1/admin/products/{id}/audit"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| format!("unreachable ({e})"))?;
        if !resp.status().is_success() {
            return Err(format!("answered HTTP {}", resp.status()));
        }
        resp.json()
            .await
            .map_err(|e| format!("unreadable answer ({e})"))
    }
}

/// Pure: the audit verdict for one product from the ledger and each region's truth.
pub fn evaluate(
    read: &ProductRead,
    truths: &BTreeMap<String, serde_json::Value>,
    missing: &[String],
) -> ProductAudit {
    let mut violations = Vec::new();
    let mut terms = BTreeMap::new();
    let mut regions = BTreeMap::new();
    let mut per_user: BTreeMap<i64, (i64, Vec<String>)> = BTreeMap::new();
    let int = |v: &serde_json::Value, k: &str| v[k].as_i64().unwrap_or(0);
    for (r, v) in truths {
        let g_total = read.ledger.granted.get(r).copied().unwrap_or(0);
        let r_pub = read.released.get(r).map(|p| p.released).unwrap_or(0);
        let (g, rel, sold, avail) = (
            int(v, "granted"),
            int(v, "released"),
            int(v, "sold"),
            int(v, "available"),
        );
        let t = RegionTerms {
            sold,
            available: avail,
            grant_in_transit: g_total - g,
            release_in_transit: rel - r_pub,
        };
        terms.insert(r.clone(), t);
        if sold != int(v, "order_units") {
            violations.push(format!(
                "{r}: sold = {sold} but its orders hold {} units",
                int(v, "order_units")
            ));
        }
        let redis_stock = v["redis_stock"].as_i64();
        let in_flight = v["redis_in_flight"].as_i64();
        let drift = match (redis_stock, in_flight) {
            (Some(s), Some(f)) => Some(s + f - avail),
            _ => None,
        };
        if let Some(d) = drift.filter(|d| *d > 0) {
            violations.push(format!(
                "{r}: Redis would admit {d} more units than Postgres can accept"
            ));
        }
        if let Some(buyers) = v["buyers"].as_array() {
            for b in buyers {
                let (u, q) = (b[0].as_i64().unwrap_or(0), b[1].as_i64().unwrap_or(0));
                let e = per_user.entry(u).or_insert((0, Vec::new()));
                e.0 += q;
                e.1.push(r.clone());
            }
        }
        regions.insert(
            r.clone(),
            RegionAudit {
                granted: g_total,
                applied: g,
                released: rel,
                released_published: r_pub,
                sold,
                available: avail,
                order_count: int(v, "order_count"),
                order_units: int(v, "order_units"),
                grant_in_transit: g_total - g,
                release_in_transit: rel - r_pub,
                redis_stock,
                redis_drift: drift,
            },
        );
    }
    let pool = read.pool();
    if missing.is_empty() {
        violations.extend(check_conservation(read.ledger.total, pool, &terms));
    }
    let limit = i64::from(read.spec.per_user_limit);
    let over: Vec<String> = per_user
        .iter()
        .filter(|(_, (q, _))| *q > limit)
        .map(|(u, (q, rs))| {
            format!(
                "user {u} holds {q} units (limit {limit}) in {}",
                rs.join(", ")
            )
        })
        .collect();
    if !over.is_empty() {
        violations.push(format!(
            "{} users over the per-user limit across regions, e.g. {}",
            over.len(),
            over[0]
        ));
    }
    ProductAudit {
        product_id: read.spec.product_id,
        total: read.ledger.total,
        pool,
        sold: terms.values().map(|t| t.sold).sum(),
        ok: violations.is_empty() && missing.is_empty(),
        violations,
        unreadable: missing.to_vec(),
        regions,
    }
}
