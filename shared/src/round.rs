//! One rebalance round as pure functions: the ledger snapshot ([`LedgerSnapshot`]) → the
//! policy's input, and the policy's moves → the new ledger and release requests.
//!
//! The coordinator wraps them in etcd I/O (read, compare-and-swap write); the simulator
//! (`quota-sim`) wraps them in its modelled etcd. Both therefore run the very same decisions,
//! and these are unit-tested here without either.

mod snapshot;

#[doc(hidden)]
pub mod fixture;
#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use crate::model::{Ledger, Movable, ReleaseRequest};
use crate::policy::PolicyKind;
use crate::policy::{Move, RegionState};

pub use snapshot::LedgerSnapshot;

/// The policy's view of every region. A region counts as alive only with a live heartbeat, a
/// report, and no drain in progress: the coordinator never grants to, or counts on releases
/// from, a region it cannot hear. For a sale with home regions, a region outside them sells
/// to nobody, so it is never granted units either.
pub fn region_states(snap: &LedgerSnapshot) -> Vec<RegionState> {
    snap.regions()
        .into_iter()
        .map(|r| {
            let g_total = snap.grant(&r);
            let released = snap.published_release(&r);
            let report = snap.reports.get(&r);
            let homes = &snap.spec.home_regions;
            let alive = snap.alive.contains(&r)
                && report.is_some()
                && !snap.draining.contains(&r)
                && (homes.is_empty() || homes.contains(&r));
            // Units granted but not yet applied will be sellable in milliseconds: count them.
            let available = report
                .map_or(0, |rep| rep.available + (g_total - rep.granted).max(0))
                .max(0);
            RegionState {
                pending_release: snap
                    .release_pending(&r)
                    .map_or(0, |q| q.amount.min(available)),
                alive,
                holds: g_total - released,
                available,
                demand: report.map_or(0.0, |rep| rep.demand),
                static_share: snap.ledger.static_split.get(&r).copied(),
                name: r,
            }
        })
        .collect()
}

/// What could still move to a region that sold out locally (see [`Movable`]): under the
/// static policy nothing moves; otherwise the pool (with releases still in transit to it) and
/// every live region's unsold units. A region whose heartbeat is up but whose first report on
/// the product has not arrived yet (a sale just created, a node just restarted) counts with
/// what the ledger says it holds (`G − R`): leaving it out told every other region "nothing
/// can come" in the first rounds of a sale, and their first buyers heard a false 410. Counting
/// too much only costs a 503 "awaiting stock" instead of a 410; this rule never admits anybody.
pub fn movable(snap: &LedgerSnapshot, states: &[RegionState], at_ms: i64) -> Movable {
    if snap.ledger.policy == PolicyKind::Static {
        return Movable {
            at_ms,
            ..Movable::default()
        };
    }
    // Units released but not yet published (`rel − R`) are on their way to the pool.
    let in_transit: i64 = snap
        .reports
        .iter()
        .map(|(r, rep)| (rep.released - snap.published_release(r)).max(0))
        .sum();
    let homes = &snap.spec.home_regions;
    let unreported = |s: &&RegionState| {
        !s.alive
            && snap.alive.contains(&s.name)
            && !snap.reports.contains_key(&s.name)
            && !snap.draining.contains(&s.name)
            && (homes.is_empty() || homes.contains(&s.name))
    };
    Movable {
        pool: snap.pool() + in_transit,
        regions: states
            .iter()
            .filter(|s| s.alive)
            .map(|s| (s.name.clone(), s.available))
            .chain(
                states
                    .iter()
                    .filter(unreported)
                    .map(|s| (s.name.clone(), s.holds.max(0))),
            )
            .collect(),
        at_ms,
    }
}

/// What could move at the moment a sale is created (written with it, so a region learns it
/// together with the spec and never answers a false "sold out" before the first round): the
/// pool and every region's initial grant; nothing under the static policy.
pub fn initial_movable(ledger: &Ledger, at_ms: i64) -> Movable {
    if ledger.policy == PolicyKind::Static {
        return Movable {
            at_ms,
            ..Movable::default()
        };
    }
    let granted: i64 = ledger.granted.values().sum();
    Movable {
        pool: (ledger.total - granted).max(0),
        regions: ledger.granted.clone(),
        at_ms,
    }
}

/// Releases that drain the regions being drained: everything they have unsold, once any earlier
/// request has been handled.
pub fn drain_moves(snap: &LedgerSnapshot, states: &[RegionState]) -> Vec<Move> {
    states
        .iter()
        .filter(|s| snap.draining.contains(&s.name) && snap.alive.contains(&s.name))
        .filter(|s| snap.release_pending(&s.name).is_none() && s.available > 0)
        .map(|s| Move::Release {
            region: s.name.clone(),
            units: s.available,
        })
        .collect()
}

/// Applies moves to the ledger read: grants raise `G` (never past the pool — checked again
/// here, whatever the policy said), releases become new requests (only where no earlier request
/// is still unhandled). Returns the new ledger, the requests to write, and the moves kept.
///
/// `request_id` names each new release request; it must never repeat, because a region
/// handles each id exactly once. The coordinator passes UUIDv7s, the simulator a counter (so
/// its runs stay deterministic).
pub fn apply_moves(
    snap: &LedgerSnapshot,
    moves: Vec<Move>,
    mut request_id: impl FnMut() -> String,
) -> (Ledger, BTreeMap<String, ReleaseRequest>, Vec<Move>) {
    let mut ledger = snap.ledger.clone();
    let mut pool = snap.pool();
    let mut requests = BTreeMap::new();
    let mut kept = Vec::new();
    for m in moves {
        match &m {
            Move::Grant { region, units } => {
                if *units <= 0 || *units > pool || !snap.alive.contains(region) {
                    continue;
                }
                pool -= units;
                *ledger.granted.entry(region.clone()).or_insert(0) += units;
                kept.push(m);
            }
            Move::Release { region, units } => {
                if *units <= 0 || snap.release_pending(region).is_some() {
                    continue;
                }
                requests.insert(
                    region.clone(),
                    ReleaseRequest {
                        request_id: request_id(),
                        amount: *units,
                    },
                );
                // Written with the request: the most of `R` the pool may ever count.
                *ledger.requested.entry(region.clone()).or_insert(0) += units;
                kept.push(m);
            }
        }
    }
    (ledger, requests, kept)
}
