//! The audit's verdict for one product, as a pure function of a ledger snapshot and each
//! region's typed truth ([`RegionTruth`]): the region's terms of the conservation identity next
//! to the ledger's, and every broken rule as a [`Violation`].

use std::collections::BTreeMap;
use std::fmt;

use quota_shared::ledger::{check_conservation, ConservationBreak, RegionTerms};
use quota_shared::wire::{ProductAudit, RegionAudit, RegionTruth};

use crate::snapshot::LedgerSnapshot;

/// A rule the audit found broken. `Display` is the sentence operators (and `quotactl audit`)
/// see; the wire carries that text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Violation {
    /// The region's `sold` counter disagrees with its order rows.
    SoldMismatch {
        /// The region.
        region: String,
        /// Its `sold` counter.
        sold: i64,
        /// Σ quantity of its order rows.
        order_units: i64,
    },
    /// The region's `returned` counter disagrees with its cancelled and expired orders: units
    /// came back without an order closing (or an order closed without giving them back).
    ReturnedMismatch {
        /// The region.
        region: String,
        /// Its `returned` counter.
        returned: i64,
        /// Σ quantity of its cancelled and expired orders.
        returned_units: i64,
    },
    /// The region's Redis would admit more than its Postgres can accept
    /// (`stock + in flight − available > 0`).
    RedisDrift {
        /// The region.
        region: String,
        /// Units Redis would over-admit.
        excess: i64,
    },
    /// The conservation identity or one of its terms is broken (see
    /// [`quota_shared::ledger::check_conservation`], which words it).
    Conservation(ConservationBreak),
    /// Units granted (`G − g > 0`) that the region has not applied, unchanged for the whole
    /// stuck bound while the region answered: it is not receiving its grants.
    GrantStuck {
        /// The region.
        region: String,
        /// `G`.
        granted: i64,
        /// `g`.
        applied: i64,
        /// How long it was watched unchanged, ms.
        for_ms: u128,
    },
    /// Units released (`rel − R > 0`) that the region has not published, unchanged for the
    /// whole stuck bound while the region answered: they are in no region and not in the pool.
    ReleaseStuck {
        /// The region.
        region: String,
        /// `rel`.
        released: i64,
        /// `R`.
        published: i64,
        /// How long it was watched unchanged, ms.
        for_ms: u128,
    },
    /// The region published a cumulative release `R` above what the coordinator ever asked
    /// it for (`Q`) or granted it (`G`): no honest region can, so its claim is corrupt or
    /// forged. The pool does not count the excess ([`quota_shared::ledger::credited_release`]).
    UnaskedRelease {
        /// The region.
        region: String,
        /// Its published `R`.
        published: i64,
        /// `Q`: units the coordinator asked it to release, in total.
        asked: i64,
        /// `G`.
        granted: i64,
    },
    /// Users hold more units across regions than the per-user limit allows.
    OverLimit {
        /// How many users are over the limit.
        users: usize,
        /// The first of them (lowest user id).
        example: UserOverLimit,
    },
}

/// One user over the per-user limit, and where their units are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct UserOverLimit {
    /// The user.
    pub(crate) user_id: i64,
    /// Units held across regions.
    pub(crate) units: i64,
    /// The product's per-user limit.
    pub(crate) limit: i64,
    /// Regions holding the user's orders.
    pub(crate) regions: Vec<String>,
}

impl fmt::Display for Violation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Violation::SoldMismatch {
                region,
                sold,
                order_units,
            } => write!(
                f,
                "{region}: sold = {sold} but its orders hold {order_units} units"
            ),
            Violation::ReturnedMismatch {
                region,
                returned,
                returned_units,
            } => write!(
                f,
                "{region}: returned = {returned} but its cancelled and expired orders hold \
                 {returned_units} units"
            ),
            Violation::RedisDrift { region, excess } => write!(
                f,
                "{region}: Redis would admit {excess} more units than Postgres can accept"
            ),
            Violation::Conservation(broken) => broken.fmt(f),
            Violation::GrantStuck {
                region,
                granted,
                applied,
                for_ms,
            } => write!(
                f,
                "{region}: grant stuck in transit — G = {granted} but the region applied g = \
                 {applied}, unchanged for {for_ms} ms"
            ),
            Violation::ReleaseStuck {
                region,
                released,
                published,
                for_ms,
            } => write!(
                f,
                "{region}: release stuck in transit — the region released rel = {released} but \
                 published R = {published}, unchanged for {for_ms} ms"
            ),
            Violation::UnaskedRelease {
                region,
                published,
                asked,
                granted,
            } => write!(
                f,
                "{region}: published R = {published}, more than it was ever asked to release \
                 (Q = {asked}) or granted (G = {granted}); the pool does not count the excess"
            ),
            Violation::OverLimit { users, example } => write!(
                f,
                "{users} users over the per-user limit across regions, e.g. user {} holds {} \
                 units (limit {}) in {}",
                example.user_id,
                example.units,
                example.limit,
                example.regions.join(", ")
            ),
        }
    }
}

/// One product's audit before it goes on the wire.
#[derive(Debug, Clone)]
pub(crate) struct Verdict {
    /// The product.
    pub(crate) product_id: i64,
    /// Its total.
    pub(crate) total: i64,
    /// Its pool in the snapshot.
    pub(crate) pool: i64,
    /// Σ sold over the regions read.
    pub(crate) sold: i64,
    /// Every broken rule, in the order found.
    pub(crate) violations: Vec<Violation>,
    /// Regions with a stake that could not be read (and why).
    pub(crate) unreadable: Vec<String>,
    /// The terms of every region read.
    pub(crate) regions: BTreeMap<String, RegionAudit>,
}

impl Verdict {
    /// No violation, and every region with a stake was read.
    pub(crate) fn ok(&self) -> bool {
        self.violations.is_empty() && self.unreadable.is_empty()
    }

    /// The admin API's shape: violations as their sentences.
    pub(crate) fn into_wire(self) -> ProductAudit {
        ProductAudit {
            ok: self.ok(),
            product_id: self.product_id,
            total: self.total,
            pool: self.pool,
            sold: self.sold,
            violations: self.violations.iter().map(ToString::to_string).collect(),
            unreadable: self.unreadable,
            regions: self.regions,
        }
    }
}

/// The transfers between the ledger and one region that have not completed: a grant not yet
/// applied (`(G, g)` with `G > g`) and a release not yet published (`(rel, R)` with
/// `rel > R`). Normally each lasts milliseconds; one that stays open, unchanged, is stuck.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct OpenTransfers {
    /// `(G, g)` of a grant in transit.
    pub(crate) grant: Option<(i64, i64)>,
    /// `(rel, R)` of a release in transit.
    pub(crate) release: Option<(i64, i64)>,
}

impl OpenTransfers {
    /// The open transfers of a region's audit terms.
    pub(crate) fn of(a: &RegionAudit) -> OpenTransfers {
        OpenTransfers {
            grant: (a.granted > a.applied).then_some((a.granted, a.applied)),
            release: (a.released > a.released_published)
                .then_some((a.released, a.released_published)),
        }
    }

    /// Nothing in transit.
    pub(crate) fn is_empty(&self) -> bool {
        self.grant.is_none() && self.release.is_none()
    }

    /// What is still open *and unchanged* in `now`: a transfer that completed, or moved (the
    /// region applied part of a grant, a new grant or release came), is not stuck.
    pub(crate) fn still(&self, now: &OpenTransfers) -> OpenTransfers {
        OpenTransfers {
            grant: self.grant.filter(|g| now.grant == Some(*g)),
            release: self.release.filter(|r| now.release == Some(*r)),
        }
    }

    /// The violations of transfers open and unchanged for `for_ms`.
    pub(crate) fn stuck(&self, region: &str, for_ms: u128) -> Vec<Violation> {
        let mut v = Vec::new();
        if let Some((granted, applied)) = self.grant {
            v.push(Violation::GrantStuck {
                region: region.to_string(),
                granted,
                applied,
                for_ms,
            });
        }
        if let Some((released, published)) = self.release {
            v.push(Violation::ReleaseStuck {
                region: region.to_string(),
                released,
                published,
                for_ms,
            });
        }
        v
    }
}

/// One region's terms: `G`, `R` from the snapshot; `g`, `rel`, sold, orders, Redis from its
/// truth.
pub(crate) fn region_audit(snap: &LedgerSnapshot, r: &str, t: &RegionTruth) -> RegionAudit {
    // The region's own claim, not the part the pool counts: a claim above what it was asked
    // for shows here as a negative release in transit.
    let (grant, published) = (snap.grant(r), snap.claimed_release(r));
    RegionAudit {
        granted: grant,
        applied: t.granted,
        released: t.released,
        released_published: published,
        sold: t.sold,
        returned: t.returned,
        available: t.available,
        order_count: t.order_count,
        order_units: t.order_units,
        returned_units: t.returned_units,
        grant_in_transit: grant - t.granted,
        release_in_transit: t.released - published,
        redis_stock: t.redis_stock,
        redis_drift: t
            .redis_stock
            .zip(t.redis_in_flight)
            .map(|(stock, in_flight)| stock + in_flight - t.available),
    }
}

/// Users over `limit` across the regions read, lowest user id first.
fn users_over_limit(truths: &BTreeMap<String, RegionTruth>, limit: i64) -> Vec<UserOverLimit> {
    let mut per_user: BTreeMap<i64, (i64, Vec<String>)> = BTreeMap::new();
    for (r, t) in truths {
        for &(user, units) in &t.buyers {
            let e = per_user.entry(user).or_default();
            e.0 += units;
            e.1.push(r.clone());
        }
    }
    per_user
        .into_iter()
        .filter(|(_, (units, _))| *units > limit)
        .map(|(user_id, (units, regions))| UserOverLimit {
            user_id,
            units,
            limit,
            regions,
        })
        .collect()
}

/// The verdict for one product from its snapshot and the truth of each region read;
/// `unreadable` names the regions with a stake that could not be read (then the identity is
/// not checked: its sum would be missing terms).
pub(crate) fn evaluate(
    snap: &LedgerSnapshot,
    truths: &BTreeMap<String, RegionTruth>,
    unreadable: Vec<String>,
) -> Verdict {
    let mut violations = Vec::new();
    let mut terms = BTreeMap::new();
    let mut regions = BTreeMap::new();
    for (r, t) in truths {
        let audit = region_audit(snap, r, t);
        terms.insert(
            r.clone(),
            RegionTerms {
                // Units in live orders: what the region's holding `g − rel` splits into with
                // `available`.
                sold: audit.sold - audit.returned,
                available: audit.available,
                grant_in_transit: audit.grant_in_transit,
                release_in_transit: audit.release_in_transit,
            },
        );
        if t.sold != t.order_units {
            violations.push(Violation::SoldMismatch {
                region: r.clone(),
                sold: t.sold,
                order_units: t.order_units,
            });
        }
        if t.returned != t.returned_units {
            violations.push(Violation::ReturnedMismatch {
                region: r.clone(),
                returned: t.returned,
                returned_units: t.returned_units,
            });
        }
        if let Some(excess) = audit.redis_drift.filter(|d| *d > 0) {
            violations.push(Violation::RedisDrift {
                region: r.clone(),
                excess,
            });
        }
        regions.insert(r.clone(), audit);
    }
    for r in snap.published.keys() {
        let (published, counted) = (snap.claimed_release(r), snap.published_release(r));
        if published > counted {
            violations.push(Violation::UnaskedRelease {
                region: r.clone(),
                published,
                asked: snap.ledger.requested.get(r).copied().unwrap_or(0),
                granted: snap.grant(r),
            });
        }
    }
    let pool = snap.pool();
    if unreadable.is_empty() {
        let broken = check_conservation(snap.ledger.total, pool, &terms);
        violations.extend(broken.into_iter().map(Violation::Conservation));
    }
    let over = users_over_limit(truths, i64::from(snap.spec.per_user_limit));
    if let Some(example) = over.first() {
        violations.push(Violation::OverLimit {
            users: over.len(),
            example: example.clone(),
        });
    }
    Verdict {
        product_id: snap.spec.product_id,
        total: snap.ledger.total,
        pool,
        sold: terms.values().map(|t| t.sold).sum(),
        violations,
        unreadable,
        regions,
    }
}
