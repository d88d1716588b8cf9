//! A product's life as the operator drives it: create (with an optional initial split), static
//! split, policy, restock, end; and draining a region. Each change is one compare-and-swap
//! write of the ledger (see [`crate::cas`]).

use std::collections::BTreeMap;

use chrono::Utc;
use quota_shared::model::{validate_region_name, Ledger, ProductSpec, MAX_TOTAL};
use quota_shared::policy::{Move, PolicyKind};
use quota_shared::wire::{CreateProduct, HomeRegions, ProductView};

use crate::cas::{Attempt, LEDGER_WRITE};
use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::operation::Operation;
use crate::snapshot::LedgerSnapshot;

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

/// Validates a home-region list: known regions, each once; returned sorted (order does not
/// matter to rendezvous hashing, and a sorted list reads the same everywhere).
fn check_home_regions(mut list: Vec<String>, known: &[String]) -> Result<Vec<String>, CoordError> {
    for r in &list {
        validate_region_name(r)?;
        if !known.contains(r) {
            return Err(CoordError::Invalid(format!(
                "unknown home region {r:?} (known: {})",
                known.join(", ")
            )));
        }
    }
    list.sort();
    let before = list.len();
    list.dedup();
    if list.len() != before {
        return Err(CoordError::Invalid("a home region is listed twice".into()));
    }
    Ok(list)
}

impl Escrow {
    /// Creates a sale; an initial split is granted at once. A keyed call that was already
    /// applied answers with the product as it is now.
    pub(crate) async fn create(
        &self,
        req: CreateProduct,
        op: Option<&Operation>,
    ) -> Result<ProductView, CoordError> {
        let id = req.product_id;
        if self.already_applied(op).await? {
            return Ok(self.store.read(id).await?.view());
        }
        let known = self.known_regions().await?;
        let home_regions = match req.home_regions {
            Some(list) => check_home_regions(list, &known)?,
            None => self.store.home_regions().await?.regions,
        };
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
            ended: false,
            home_regions,
            payment_window_s: req.payment_window_s,
        };
        spec.validate()?;
        let mut ledger = Ledger {
            total: spec.total,
            policy: req.policy.unwrap_or_default(),
            ..Ledger::default()
        };
        if let Some(split) = req.split {
            check_split(&split, spec.total, &known)?;
            if let Some(r) = split
                .iter()
                .find(|(r, n)| {
                    **n > 0 && !spec.home_regions.is_empty() && !spec.home_regions.contains(r)
                })
                .map(|(r, _)| r)
            {
                return Err(CoordError::Invalid(format!(
                    "split gives units to {r}, which is not one of the sale's home regions ({}): \
                     nobody could buy them there",
                    spec.home_regions.join(", ")
                )));
            }
            ledger.granted = split
                .iter()
                .filter(|(_, n)| **n > 0)
                .map(|(r, n)| (r.clone(), *n))
                .collect();
            ledger.static_split = split;
        }
        match self
            .store
            .create_keyed(&spec, &ledger, op, self.stamp_ms())
            .await
        {
            // The product exists: made by this very call (its answer lost, resent meanwhile)?
            Err(CoordError::Conflict(_)) if self.already_applied(op).await? => {}
            other => other?,
        }
        Ok(self.store.read(id).await?.view())
    }

    /// Whether keyed call `op` was already applied (refusing a key reused for another call).
    async fn already_applied(&self, op: Option<&Operation>) -> Result<bool, CoordError> {
        let Some(op) = op else { return Ok(false) };
        match self.store.operation(&op.key).await? {
            Some(earlier) => op.replay_of(&earlier).map(|()| true),
            None => Ok(false),
        }
    }

    /// Re-reads and applies `change` to the ledger (and spec) until the CAS succeeds; returns
    /// the product afterwards. A keyed call already applied changes nothing (checked on every
    /// attempt: a concurrent copy of the call may win the race).
    async fn update<F>(
        &self,
        id: i64,
        op: Option<&Operation>,
        change: F,
    ) -> Result<ProductView, CoordError>
    where
        F: Fn(&LedgerSnapshot, &mut Ledger, &mut ProductSpec) -> Result<(), CoordError>,
    {
        let (this, change) = (self, &change);
        LEDGER_WRITE
            .run(move || async move {
                let snap = this.store.read(id).await?;
                if this.already_applied(op).await? {
                    return Ok(Attempt::Done(()));
                }
                let mut ledger = snap.ledger.clone();
                let mut spec = snap.spec.clone();
                change(&snap, &mut ledger, &mut spec)?;
                let spec_changed = (spec != snap.spec).then_some(&spec);
                let written = this
                    .store
                    .write_keyed(&snap, &ledger, spec_changed, &BTreeMap::new(), op)
                    .await?;
                Ok(if written {
                    Attempt::Done(())
                } else {
                    Attempt::Retry
                })
            })
            .await?;
        Ok(self.store.read(id).await?.view())
    }

    /// Static split: record it, switch the product to the static policy, and move towards it
    /// at once (grants from the pool now; releases from regions above their share).
    pub(crate) async fn set_split(
        &self,
        id: i64,
        split: BTreeMap<String, i64>,
        op: Option<&Operation>,
    ) -> Result<(ProductView, Vec<Move>), CoordError> {
        let known = self.known_regions().await?;
        self.update(id, op, |snap, ledger, _| {
            check_split(&split, snap.ledger.total, &known)?;
            ledger.static_split.clone_from(&split);
            ledger.policy = PolicyKind::Static;
            Ok(())
        })
        .await?;
        let moves = self.round(id).await?;
        Ok((self.store.read(id).await?.view(), moves))
    }

    /// Changes the rebalance policy.
    pub(crate) async fn set_policy(
        &self,
        id: i64,
        policy: PolicyKind,
        op: Option<&Operation>,
    ) -> Result<ProductView, CoordError> {
        self.update(id, op, |_, ledger, _| {
            ledger.policy = policy;
            Ok(())
        })
        .await
    }

    /// Adds units to the pool (and the total). Not idempotent by itself — the same call twice
    /// adds twice — which is what the idempotency key (`op`) is for.
    pub(crate) async fn restock(
        &self,
        id: i64,
        units: i64,
        op: Option<&Operation>,
    ) -> Result<ProductView, CoordError> {
        if units <= 0 {
            return Err(CoordError::Invalid(format!(
                "restock units must be positive (got {units})"
            )));
        }
        self.update(id, op, |_, ledger, spec| {
            let total = ledger
                .total
                .checked_add(units)
                .filter(|t| *t <= MAX_TOTAL)
                .ok_or_else(|| CoordError::Invalid("total would exceed the maximum".into()))?;
            ledger.total = total;
            spec.total = total;
            Ok(())
        })
        .await
    }

    /// Ends the sale now (regions refuse purchases from then on; nothing is moved any more).
    pub(crate) async fn end(
        &self,
        id: i64,
        op: Option<&Operation>,
    ) -> Result<ProductView, CoordError> {
        self.update(id, op, |_, _, spec| {
            spec.end_at(Utc::now());
            Ok(())
        })
        .await
    }

    /// Sets the home-region list sales created from now on take (sales already on keep theirs).
    pub(crate) async fn set_home_regions(
        &self,
        regions: Vec<String>,
        op: Option<&Operation>,
    ) -> Result<HomeRegions, CoordError> {
        let homes = HomeRegions {
            regions: check_home_regions(regions, &self.known_regions().await?)?,
        };
        self.write_once(op, || self.store.set_home_regions(&homes, op))
            .await?;
        Ok(homes)
    }

    /// Starts (or stops) draining a region.
    pub(crate) async fn drain(
        &self,
        region: &str,
        on: bool,
        op: Option<&Operation>,
    ) -> Result<(), CoordError> {
        validate_region_name(region)?;
        if !self.known_regions().await?.iter().any(|r| r == region) {
            return Err(CoordError::Invalid(format!("unknown region {region:?}")));
        }
        self.write_once(op, || self.store.set_drain(region, on, op))
            .await
    }

    /// An unguarded write (a marker, a list: no ledger revision to compare) for keyed call
    /// `op`: done once `write` lands or the call turns out to have been applied already. The
    /// write fails only when `op`'s record appeared meanwhile (a copy of the call won), so the
    /// second look finds it.
    async fn write_once<F, Fut>(&self, op: Option<&Operation>, write: F) -> Result<(), CoordError>
    where
        F: Fn() -> Fut,
        Fut: std::future::Future<Output = Result<bool, CoordError>>,
    {
        for _ in 0..2 {
            if self.already_applied(op).await? || write().await? {
                return Ok(());
            }
        }
        Err(CoordError::Unavailable(
            "a copy of this call kept racing it; retry".into(),
        ))
    }
}
