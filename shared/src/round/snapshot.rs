//! [`LedgerSnapshot`]: one product's escrow counters as etcd holds them, read in one
//! transaction. Every decision of the coordinator (a rebalance round, a status, the audit's
//! ledger side) is a pure function of one snapshot; its `revision` is what the following write
//! compares, so a decision made on stale data can never be written. It lives here, not in the
//! coordinator, so that the simulator (`quota-sim`) builds the same snapshot from its modelled
//! etcd and runs the same round on it.

use std::collections::{BTreeMap, BTreeSet};

use crate::ledger::{credited_release, pool};
use crate::model::{Ledger, ProductSpec, RegionReport, ReleasePublished, ReleaseRequest};
use crate::wire::{ProductView, RegionShare};

/// Everything the coordinator knows about one product at one etcd revision.
///
/// The counters, in ARCHITECTURE.md's names: `ledger.granted[r]` is `G` (cumulative grant, the
/// coordinator's), `published[r].released` is `R` (cumulative release the region published);
/// `reports[r]` carries the region's own `g` (`granted`: grants applied), `rel` (`released`),
/// sold and available as it last reported them.
#[derive(Debug, Clone)]
pub struct LedgerSnapshot {
    /// The spec.
    pub spec: ProductSpec,
    /// The ledger: total, `G` per region, policy, static split.
    pub ledger: Ledger,
    /// `mod_revision` of the ledger key (the compare-and-swap guard of the next write).
    pub revision: i64,
    /// Published releases `R` per region.
    pub published: BTreeMap<String, ReleasePublished>,
    /// Latest report per region (`g`, `rel`, sold, available, demand; present only while the
    /// region's lease lives).
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
    /// etcd transactions the coordinator has written for this product since it was created:
    /// the versions of its ledger key and its movable-stock key (each write of either bumps
    /// one). Read from etcd, so every instance reports the same number: the coordinator's cost.
    pub coordinator_writes: i64,
}

impl LedgerSnapshot {
    /// `G` of region `r` (0 when never granted).
    pub fn grant(&self, r: &str) -> i64 {
        self.ledger.granted.get(r).copied().unwrap_or(0)
    }

    /// `R` of region `r` as the coordinator counts it: what the region published, but at most
    /// what it was asked for and granted ([`credited_release`]; equal to the published value
    /// for every honest region). 0 when it never published a release.
    pub fn published_release(&self, r: &str) -> i64 {
        credited_release(
            self.claimed_release(r),
            self.ledger.requested.get(r).copied().unwrap_or(0),
            self.grant(r),
        )
    }

    /// `R` of region `r` exactly as the region published it (its claim; the audit holds it
    /// against the region's own `rel` and the units it was asked for).
    pub fn claimed_release(&self, r: &str) -> i64 {
        self.published.get(r).map_or(0, |p| p.released)
    }

    /// Counted `R` ([`Self::published_release`]) per region that published one.
    pub fn published_releases(&self) -> BTreeMap<String, i64> {
        self.published
            .keys()
            .map(|r| (r.clone(), self.published_release(r)))
            .collect()
    }

    /// Units in the pool: `total − Σ (G − R)`.
    pub fn pool(&self) -> i64 {
        pool(
            self.ledger.total,
            &self.ledger.granted,
            &self.published_releases(),
        )
    }

    /// Region `r`'s release request, while the region has not handled it yet.
    pub fn release_pending(&self, r: &str) -> Option<&ReleaseRequest> {
        let req = self.requests.get(r)?;
        let handled = self
            .published
            .get(r)
            .and_then(|p| p.last_request.as_deref())
            == Some(req.request_id.as_str());
        (!handled).then_some(req)
    }

    /// Every region with a stake in or a registration for the product, sorted.
    pub fn regions(&self) -> BTreeSet<String> {
        self.known
            .iter()
            .chain(self.ledger.granted.keys())
            .cloned()
            .collect()
    }

    /// The admin API's view of the product.
    pub fn view(&self) -> ProductView {
        let regions = self
            .ledger
            .granted
            .iter()
            .map(|(r, g)| {
                let released = self.published_release(r);
                let share = RegionShare {
                    granted: *g,
                    released,
                    holds: g - released,
                };
                (r.clone(), share)
            })
            .collect();
        ProductView {
            spec: self.spec.clone(),
            total: self.ledger.total,
            pool: self.pool(),
            policy: self.ledger.policy,
            regions,
        }
    }
}
