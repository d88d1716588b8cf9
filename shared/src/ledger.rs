//! Pure arithmetic over the global ledger (the escrow / demarcation counters).
//!
//! For product `p` and region `r`, all counters only grow: `G` (granted, etcd, coordinator),
//! `g` (grants applied, region Postgres), `rel` (released, region Postgres), `R` (releases
//! published, etcd, region) and `sold`. Derived quantities:
//!
//! * region holding `g − rel = sold + available`,
//! * grants in transit `G − g ≥ 0`, releases in transit `rel − R ≥ 0`,
//! * `pool = total − Σ_r (G − R) ≥ 0`,
//!
//! hence the identity `total = pool + Σ_r (sold + available + (G − g) + (rel − R))`.

use std::collections::BTreeMap;

use crate::error::Invalid;

/// The part of region `r`'s published release `claimed` (`R`) the pool may count: at most the
/// units the coordinator asked it for (`Q`, [`crate::model::Ledger::requested`]) and at most
/// its grant (`G`). An honest region always has `R ≤ Q` and `R ≤ rel ≤ g ≤ G`, so for it this
/// is `R` itself; a compromised or corrupted region that claims more gets no credit for the
/// excess — otherwise one write of its own key would let the coordinator grant the units it
/// still holds to everyone else (and, since what it claims to hold would stay 0, grant to it
/// again and again). The audit compares the raw claim and names the region.
pub fn credited_release(claimed: i64, requested: i64, granted: i64) -> i64 {
    claimed.min(requested).min(granted)
}

/// `pool = total − Σ (G_r − min(R_r, G_r))`. A stale (smaller) `R` only makes the pool look
/// smaller. `R` is the region's own word (it writes `regions/{r}/releases/`), and no honest
/// region can have given back more than it was granted (`R ≤ rel ≤ g ≤ G`), so an `R` above
/// `G` — a compromised or corrupted region — counts as `G`: one region's claim can never put
/// into the pool units that it never held, so it cannot mint stock for the others. (The audit
/// still sees the raw `R` and names the region: its "release in transit" goes negative.)
pub fn pool(total: i64, granted: &BTreeMap<String, i64>, released: &BTreeMap<String, i64>) -> i64 {
    let out: i64 = granted
        .iter()
        .map(|(r, &g)| g - released.get(r).copied().unwrap_or(0).min(g))
        .sum();
    total - out
}

/// Turns an operator's static split (units each region should *hold*, `G − R`) into the new
/// cumulative grants. Grants only grow, so a region can be raised from the pool but not lowered
/// here: lowering needs the region to release (a separate, asynchronous protocol step).
///
/// Regions not named keep what they hold. Fails, changing nothing, when a region is unknown,
/// a share is negative, a share is below what the region already holds, or the split needs
/// more than the pool has.
pub fn apply_split(
    total: i64,
    granted: &BTreeMap<String, i64>,
    released: &BTreeMap<String, i64>,
    split: &BTreeMap<String, i64>,
    known_regions: &[String],
) -> Result<BTreeMap<String, i64>, Invalid> {
    let mut new = granted.clone();
    for (region, &share) in split {
        if !known_regions.iter().any(|k| k == region) {
            return Err(Invalid(format!(
                "unknown region {region:?} (known: {})",
                known_regions.join(", ")
            )));
        }
        if share < 0 {
            return Err(Invalid(format!(
                "share for {region} must not be negative (got {share})"
            )));
        }
        let g = granted.get(region).copied().unwrap_or(0);
        let rel = released.get(region).copied().unwrap_or(0);
        let holds = g - rel;
        if share < holds {
            return Err(Invalid(format!(
                "region {region} already holds {holds} units; lowering it to {share} needs a release \
                 (drain/rebalance), which a static split cannot do"
            )));
        }
        new.insert(region.clone(), rel + share);
    }
    let p = pool(total, &new, released);
    if p < 0 {
        let wanted: i64 = split.values().sum();
        return Err(Invalid(format!(
            "split needs {} more units than the pool has (split sums to {wanted}, total is {total})",
            -p
        )));
    }
    Ok(new)
}

/// One region's terms in the conservation identity.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RegionTerms {
    /// Units sold and kept: Σ quantity of the live (pending or paid) orders, i.e. the
    /// cumulative `sold` less the `returned` units of cancelled and expired orders.
    pub sold: i64,
    /// Units the region can still sell (`g − rel − sold + returned`).
    pub available: i64,
    /// `G − g`: granted in etcd, not yet applied by the region.
    pub grant_in_transit: i64,
    /// `rel − R`: released by the region, not yet published to etcd.
    pub release_in_transit: i64,
}

impl RegionTerms {
    /// Every term of `region` that is below zero (each is a broken invariant on its own).
    pub fn negative_terms(&self, region: &str) -> Vec<ConservationBreak> {
        [
            ("sold", self.sold),
            ("available", self.available),
            ("grant in transit", self.grant_in_transit),
            ("release in transit", self.release_in_transit),
        ]
        .into_iter()
        .filter(|(_, value)| *value < 0)
        .map(|(term, value)| ConservationBreak::NegativeTerm {
            region: region.to_string(),
            term,
            value,
        })
        .collect()
    }
}

/// One way the conservation identity can be broken; `Display` words it for operators.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConservationBreak {
    /// The pool went below zero: more was granted than the total allows.
    NegativePool(i64),
    /// A region's term went below zero (`term` is "sold", "available", "grant in transit" or
    /// "release in transit").
    NegativeTerm {
        /// The region.
        region: String,
        /// Which term.
        term: &'static str,
        /// Its value.
        value: i64,
    },
    /// `pool + Σ(…)` differs from the total: a unit was created or lost.
    Unbalanced {
        /// `pool + Σ(sold + available + in transit)`.
        sum: i64,
        /// The ledger's total.
        total: i64,
    },
    /// More units were sold than exist.
    Oversold {
        /// `Σ sold`.
        sold: i64,
        /// The ledger's total.
        total: i64,
    },
}

impl std::fmt::Display for ConservationBreak {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ConservationBreak::NegativePool(pool) => write!(f, "pool is negative ({pool})"),
            ConservationBreak::NegativeTerm {
                region,
                term,
                value,
            } => write!(f, "{region}: {term} is negative ({value})"),
            ConservationBreak::Unbalanced { sum, total } => write!(
                f,
                "pool + Σ(sold + available + in transit) = {sum}, but total = {total} (off by {})",
                sum - total
            ),
            ConservationBreak::Oversold { sold, total } => {
                write!(f, "oversold: Σ sold = {sold} > total = {total}")
            }
        }
    }
}

/// Checks `total = pool + Σ(sold + available + grant_in_transit + release_in_transit)` with
/// every term ≥ 0 and `Σ sold ≤ total`. Returns every violation found.
pub fn check_conservation(
    total: i64,
    pool: i64,
    regions: &BTreeMap<String, RegionTerms>,
) -> Vec<ConservationBreak> {
    let mut errs = Vec::new();
    if pool < 0 {
        errs.push(ConservationBreak::NegativePool(pool));
    }
    let mut sum = pool;
    let mut sold = 0;
    for (r, t) in regions {
        errs.extend(t.negative_terms(r));
        sum += t.sold + t.available + t.grant_in_transit + t.release_in_transit;
        sold += t.sold;
    }
    if sum != total {
        errs.push(ConservationBreak::Unbalanced { sum, total });
    }
    if sold > total {
        errs.push(ConservationBreak::Oversold { sold, total });
    }
    errs
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn m(pairs: &[(&str, i64)]) -> BTreeMap<String, i64> {
        pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
    }
    fn regions() -> Vec<String> {
        vec!["east".into(), "south".into(), "north".into()]
    }

    /// A region publishing more releases than it was ever granted (`R > G`) adds nothing to
    /// the pool beyond what it held: its claim cannot mint units for the other regions.
    #[test]
    fn a_release_above_the_grant_counts_as_the_grant() {
        let granted = m(&[("east", 100), ("south", 50)]);
        let honest = pool(1000, &granted, &m(&[("east", 100), ("south", 10)]));
        assert_eq!(honest, 1000 - 40);
        let inflated = pool(1000, &granted, &m(&[("east", 1_000_000), ("south", 10)]));
        assert_eq!(inflated, honest, "east's claim above its grant is clamped");
        // A release published by a region never granted anything is ignored.
        assert_eq!(pool(1000, &granted, &m(&[("north", 500)])), 1000 - 150);
    }

    proptest! {
        /// Whatever the regions publish, the pool never exceeds the total and equals the pool
        /// of the same claims each capped at its region's grant.
        #[test]
        fn no_published_release_can_grow_the_pool_past_the_grants(
            grants in proptest::collection::vec(0i64..1_000, 1..5),
            claims in proptest::collection::vec(-10i64..5_000, 1..5),
        ) {
            let names = ["a", "b", "c", "d", "e"];
            let granted: BTreeMap<String, i64> =
                grants.iter().enumerate().map(|(i, g)| (names[i].to_string(), *g)).collect();
            let released: BTreeMap<String, i64> =
                claims.iter().enumerate().map(|(i, r)| (names[i].to_string(), *r)).collect();
            let honest: BTreeMap<String, i64> = released
                .iter()
                .map(|(r, &v)| (r.clone(), v.min(granted.get(r).copied().unwrap_or(0))))
                .collect();
            let total = 10_000;
            prop_assert!(pool(total, &granted, &released) <= total);
            prop_assert_eq!(pool(total, &granted, &released), pool(total, &granted, &honest));
        }
    }

    #[test]
    fn split_from_empty() {
        let g = apply_split(
            1000,
            &m(&[]),
            &m(&[]),
            &m(&[("east", 300), ("south", 400), ("north", 300)]),
            &regions(),
        )
        .unwrap();
        assert_eq!(g, m(&[("east", 300), ("south", 400), ("north", 300)]));
        assert_eq!(pool(1000, &g, &m(&[])), 0);
    }

    #[test]
    fn split_rejects_overcommit_unknown_negative_and_lowering() {
        let none = m(&[]);
        let e = apply_split(
            100,
            &none,
            &none,
            &m(&[("east", 60), ("south", 50)]),
            &regions(),
        );
        assert!(e.unwrap_err().0.contains("10 more units"));
        let e = apply_split(100, &none, &none, &m(&[("west", 1)]), &regions());
        assert!(e.unwrap_err().0.contains("unknown region"));
        let e = apply_split(100, &none, &none, &m(&[("east", -1)]), &regions());
        assert!(e.unwrap_err().0.contains("negative"));
        let e = apply_split(
            100,
            &m(&[("east", 50)]),
            &none,
            &m(&[("east", 40)]),
            &regions(),
        );
        assert!(e.unwrap_err().0.contains("release"));
    }

    #[test]
    fn split_accounts_for_releases() {
        // east was granted 50 and released 20: it holds 30; raising it to 40 means G = 60.
        let g = apply_split(
            100,
            &m(&[("east", 50)]),
            &m(&[("east", 20)]),
            &m(&[("east", 40)]),
            &regions(),
        )
        .unwrap();
        assert_eq!(g["east"], 60);
    }

    #[test]
    fn conservation_reports_each_problem() {
        let mut r = BTreeMap::new();
        r.insert(
            "east".to_string(),
            RegionTerms {
                sold: 10,
                available: 5,
                grant_in_transit: 0,
                release_in_transit: 0,
            },
        );
        assert!(check_conservation(20, 5, &r).is_empty());
        let errs = check_conservation(20, 4, &r);
        assert!(errs[0].to_string().contains("off by -1"), "{errs:?}");
        r.get_mut("east").unwrap().available = -1;
        assert!(!check_conservation(20, 11, &r).is_empty());
    }

    proptest! {
        /// Any accepted split keeps the pool non-negative, never lowers a grant, and leaves
        /// unnamed regions alone; a refused split is refused whole.
        #[test]
        fn split_never_creates_units(
            total in 0i64..10_000,
            g0 in proptest::collection::vec(0i64..3_000, 3),
            r0 in proptest::collection::vec(0i64..3_000, 3),
            shares in proptest::collection::vec(proptest::option::of(0i64..5_000), 3),
        ) {
            let names = regions();
            let mut granted = BTreeMap::new();
            let mut released = BTreeMap::new();
            for i in 0..3 {
                let rel = r0[i].min(g0[i]);
                granted.insert(names[i].clone(), g0[i]);
                released.insert(names[i].clone(), rel);
            }
            prop_assume!(pool(total, &granted, &released) >= 0);
            let split: BTreeMap<String, i64> = names.iter().cloned().zip(shares.iter())
                .filter_map(|(n, s)| s.map(|s| (n, s))).collect();
            if let Ok(new) = apply_split(total, &granted, &released, &split, &names) {
                prop_assert!(pool(total, &new, &released) >= 0);
                for n in &names {
                    prop_assert!(new[n] >= granted[n]);
                    match split.get(n) {
                        Some(s) => prop_assert_eq!(new[n] - released[n], *s),
                        None => prop_assert_eq!(new[n], granted[n]),
                    }
                }
            }
        }
    }
}
