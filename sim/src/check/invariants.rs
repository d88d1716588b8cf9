//! The safety invariants every reachable state must satisfy. The identity and the pool are the
//! real [`check_conservation`] and [`quota_shared::ledger::pool`] (through the coordinator's
//! own count, [`coordinator_pool`]).

use std::collections::BTreeMap;

use quota_shared::ledger::{check_conservation, pool, RegionTerms};
use quota_shared::reconcile::target_stock;

use super::coordinator::{coordinator_pool, decide};
use super::state::{w, Buyer, Publish, State, NAMES};
use super::{Bound, REGIONS};

/// The first broken invariant of `s`, in words (`None`: all hold).
pub(super) fn broken(s: &State, bound: &Bound) -> Option<String> {
    if s.double_release {
        return Some("a release request took units twice (exactly once broken)".into());
    }
    if s.admitted_refused {
        return Some("Postgres refused a purchase Redis had admitted".into());
    }
    let forger = |r: usize| s.forged && r == REGIONS - 1;
    // `R` as an honest region would have it: the published one, or the forger's real one.
    let honest_r = |r: usize| {
        if forger(r) {
            w(s.honest_r[r])
        } else {
            w(s.etcd.published[r].r)
        }
    };
    let mut terms = BTreeMap::new();
    let mut kept_total = 0;
    for (r, region) in s.regions.iter().enumerate() {
        let name = NAMES[r];
        let pg = region.pg;
        let (big_g, big_r, q) = (w(s.etcd.g[r]), w(s.etcd.published[r].r), w(s.etcd.q[r]));
        let (g, rel, sold, returned) = (w(pg.g), w(pg.rel), w(pg.sold), w(pg.returned));
        let honest_r = honest_r(r);
        if !(honest_r <= rel && rel <= g && g <= big_g) {
            return Some(format!(
                "{name}: R {honest_r} ≤ rel {rel} ≤ g {g} ≤ G {big_g} broken"
            ));
        }
        if !forger(r) && big_r > q {
            return Some(format!("{name}: R {big_r} > Q {q}"));
        }
        if rel > q {
            return Some(format!(
                "{name}: rel {rel} > Q {q} (released more than asked)"
            ));
        }
        let homes = || {
            s.buyers
                .iter()
                .zip(&bound.homes)
                .filter(|(_, &h)| usize::from(h) == r)
        };
        let orders = homes()
            .filter(|(b, _)| matches!(b, Buyer::Order(_)))
            .count();
        let closed = homes()
            .filter(|(b, _)| matches!(b, Buyer::Order(st) if st.returns_units()))
            .count();
        if usize::try_from(sold).ok() != Some(orders) {
            return Some(format!("{name}: sold {sold} ≠ {orders} orders"));
        }
        if usize::try_from(returned).ok() != Some(closed) || returned > sold {
            return Some(format!(
                "{name}: returned {returned} ≠ {closed} closed orders (sold {sold})"
            ));
        }
        let kept = sold - returned;
        if kept > g - rel {
            return Some(format!(
                "{name}: oversold: kept {kept} > g − rel {}",
                g - rel
            ));
        }
        let stock = w(region.stock);
        let in_flight = s.in_flight(bound, r);
        if stock + in_flight > pg.available() {
            return Some(format!(
                "{name}: Redis stock {stock} + in flight {in_flight} > available {}",
                pg.available()
            ));
        }
        kept_total += kept;
        terms.insert(
            name.to_string(),
            RegionTerms {
                sold: kept,
                available: pg.available(),
                grant_in_transit: big_g - g,
                release_in_transit: rel - honest_r,
            },
        );
    }
    // The books as an honest region's key would make them.
    let granted = by_name(|r| w(s.etcd.g[r]));
    if s.forged {
        // The forger's credit (up to `Q`) may have been granted on while it still sells the
        // units: the identity cannot hold (the audit names the region), but every term of
        // every region must stay non-negative, and the bounds below must hold.
        for (name, t) in &terms {
            if let Some(b) = t.negative_terms(name).first() {
                return Some(format!("conservation: {b}"));
            }
        }
    } else {
        let honest = pool(bound.total, &granted, &by_name(honest_r));
        if let Some(b) = check_conservation(bound.total, honest, &terms).first() {
            return Some(format!("conservation: {b}"));
        }
    }
    // What the coordinator counts may exceed that only by what it asked the forger for.
    let allowed = pool(
        bound.total,
        &granted,
        &by_name(|r| {
            if forger(r) {
                honest_r(r).max(w(s.etcd.q[r]).min(w(s.etcd.g[r])))
            } else {
                honest_r(r)
            }
        }),
    );
    let counted = coordinator_pool(s, bound);
    if counted > allowed {
        return Some(format!(
            "the coordinator counts a pool of {counted}, honest books allow {allowed}"
        ));
    }
    let asked_of_forger: i64 = (0..REGIONS)
        .filter(|&r| forger(r))
        .map(|r| (w(s.etcd.q[r]).min(w(s.etcd.g[r])) - honest_r(r)).max(0))
        .sum();
    if kept_total > bound.total + asked_of_forger {
        return Some(format!(
            "oversold: {kept_total} units kept, total {} (+{asked_of_forger} asked of the forger)",
            bound.total
        ));
    }
    None
}

fn by_name(f: impl Fn(usize) -> i64) -> BTreeMap<String, i64> {
    (0..REGIONS).map(|r| (NAMES[r].to_string(), f(r))).collect()
}

/// The liveness rule, checked where the system has settled: every process up and caught up
/// (watch delivered, grant applied, no request held, nothing to publish), Redis reconciled, no
/// purchase in flight, and the leader — with writes left in its budget — deciding a round that
/// moves nothing. `None` when `s` has not settled; otherwise the broken rule, if any: no
/// release may stay in transit, and while a buyer still wants a unit and units are unsold,
/// some such buyer's home must be able to sell one.
pub(super) fn settled(s: &State, bound: &Bound) -> Option<Option<String>> {
    if s.coord.is_some() || s.writes >= bound.writes {
        return None;
    }
    for (r, region) in s.regions.iter().enumerate() {
        let req = s.etcd.request[r].map(|q| q.id);
        let caught_up = region.procs.iter().all(|p| {
            p.up && p.pending.is_none()
                && p.publish == Publish::Idle
                && p.delivered == req
                && p.seen_grant == s.etcd.g[r]
        });
        let target = target_stock(region.pg.available(), s.in_flight(bound, r));
        if !caught_up || region.pg.g != s.etcd.g[r] || w(region.stock) != target {
            return None;
        }
    }
    if s.buyers.iter().any(|b| matches!(b, Buyer::Admitted { .. })) || decide(s, bound).is_some() {
        return None;
    }
    let forger = |r: usize| s.forged && r == REGIONS - 1;
    for r in (0..REGIONS).filter(|&r| !forger(r)) {
        if s.regions[r].pg.rel != s.etcd.published[r].r {
            return Some(Some(format!(
                "{}: settled with rel {} but R {} (a release stuck in transit)",
                NAMES[r], s.regions[r].pg.rel, s.etcd.published[r].r
            )));
        }
    }
    let unsold =
        coordinator_pool(s, bound) + s.regions.iter().map(|g| g.pg.available()).sum::<i64>();
    let idle: Vec<usize> = s
        .buyers
        .iter()
        .zip(&bound.homes)
        .filter(|(b, _)| **b == Buyer::Idle)
        .map(|(_, &h)| usize::from(h))
        .collect();
    if unsold > 0 && !idle.is_empty() && idle.iter().all(|&r| s.regions[r].stock < 1) {
        return Some(Some(format!(
            "settled with {unsold} units unsold and buyers waiting in {:?}, none can buy",
            idle.iter().map(|&r| NAMES[r]).collect::<Vec<_>>()
        )));
    }
    Some(None)
}
