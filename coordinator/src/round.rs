//! One rebalance round as pure functions: the ledger read → the policy's input, and the
//! policy's moves → the new ledger and release requests. The I/O around them lives in
//! [`crate::ops`]; these are unit-tested without etcd.

use std::collections::{BTreeMap, BTreeSet};

use quota_shared::model::{Ledger, Movable, ReleaseRequest};
use quota_shared::policy::PolicyKind;
use quota_shared::policy::{Move, RegionState};

use crate::store::ProductRead;

/// Every region with a stake in or a registration for the product, sorted.
pub fn regions_of(read: &ProductRead) -> BTreeSet<String> {
    read.known
        .iter()
        .chain(read.ledger.granted.keys())
        .cloned()
        .collect()
}

/// The policy's view of every region. A region counts as alive only with a live heartbeat, a
/// report, and no drain in progress: the coordinator never grants to, or counts on releases
/// from, a region it cannot hear.
pub fn region_states(read: &ProductRead) -> Vec<RegionState> {
    regions_of(read)
        .into_iter()
        .map(|r| {
            let g_total = read.ledger.granted.get(&r).copied().unwrap_or(0);
            let released = read.released.get(&r).map(|p| p.released).unwrap_or(0);
            let report = read.reports.get(&r);
            let alive = read.alive.contains(&r) && report.is_some() && !read.draining.contains(&r);
            // Units granted but not yet applied will be sellable in milliseconds: count them.
            let available = report
                .map(|rep| rep.available + (g_total - rep.granted).max(0))
                .unwrap_or(0)
                .max(0);
            RegionState {
                pending_release: read
                    .release_pending(&r)
                    .map(|q| q.amount.min(available))
                    .unwrap_or(0),
                alive,
                holds: g_total - released,
                available,
                demand: report.map(|rep| rep.demand).unwrap_or(0.0),
                static_share: read.ledger.static_split.get(&r).copied(),
                name: r,
            }
        })
        .collect()
}

/// What could still move to a region that sold out locally (see [`Movable`]): under the
/// static policy nothing moves; otherwise the pool (with releases still in transit to it) and
/// every live region's unsold units.
pub fn movable(read: &ProductRead, states: &[RegionState], at_ms: i64) -> Movable {
    if read.ledger.policy == PolicyKind::Static {
        return Movable {
            at_ms,
            ..Movable::default()
        };
    }
    // Units released but not yet published (`rel − R`) are on their way to the pool.
    let in_transit: i64 = read
        .reports
        .iter()
        .map(|(r, rep)| {
            let published = read.released.get(r).map(|p| p.released).unwrap_or(0);
            (rep.released - published).max(0)
        })
        .sum();
    Movable {
        pool: read.pool() + in_transit,
        regions: states
            .iter()
            .filter(|s| s.alive)
            .map(|s| (s.name.clone(), s.available))
            .collect(),
        at_ms,
    }
}

/// Releases that drain the regions being drained: everything they have unsold, once any earlier
/// request has been handled.
pub fn drain_moves(read: &ProductRead, states: &[RegionState]) -> Vec<Move> {
    states
        .iter()
        .filter(|s| read.draining.contains(&s.name) && read.alive.contains(&s.name))
        .filter(|s| read.release_pending(&s.name).is_none() && s.available > 0)
        .map(|s| Move::Release {
            region: s.name.clone(),
            units: s.available,
        })
        .collect()
}

/// Applies moves to the ledger read: grants raise `G` (never past the pool — checked again
/// here, whatever the policy said), releases become new requests (only where no earlier request
/// is still unhandled). Returns the new ledger, the requests to write, and the moves kept.
pub fn apply_moves(
    read: &ProductRead,
    moves: Vec<Move>,
) -> (Ledger, BTreeMap<String, ReleaseRequest>, Vec<Move>) {
    let mut ledger = read.ledger.clone();
    let mut pool = read.pool();
    let mut requests = BTreeMap::new();
    let mut kept = Vec::new();
    for m in moves {
        match &m {
            Move::Grant { region, units } => {
                if *units <= 0 || *units > pool || !read.alive.contains(region) {
                    continue;
                }
                pool -= units;
                *ledger.granted.entry(region.clone()).or_insert(0) += units;
                kept.push(m);
            }
            Move::Release { region, units } => {
                if *units <= 0 || read.release_pending(region).is_some() {
                    continue;
                }
                requests.insert(
                    region.clone(),
                    ReleaseRequest {
                        request_id: uuid::Uuid::now_v7().to_string(),
                        amount: *units,
                    },
                );
                kept.push(m);
            }
        }
    }
    (ledger, requests, kept)
}

#[cfg(test)]
mod tests {
    use super::*;
    use quota_shared::model::{ProductSpec, RegionReport, ReleasePublished};

    fn read() -> ProductRead {
        let now = chrono::Utc::now();
        let mut granted = BTreeMap::new();
        granted.insert("east".to_string(), 50);
        granted.insert("north".to_string(), 50);
        ProductRead {
            spec: ProductSpec {
                product_id: 1,
                name: "x".into(),
                total: 120,
                price: rust_decimal::Decimal::ONE,
                original_price: rust_decimal::Decimal::ONE,
                start_time: now,
                end_time: now + chrono::Duration::hours(1),
                per_user_limit: 1,
            },
            ledger: Ledger {
                total: 120,
                granted,
                ..Ledger::default()
            },
            revision: 1,
            released: BTreeMap::new(),
            reports: ["east", "north"]
                .iter()
                .map(|r| {
                    (
                        r.to_string(),
                        RegionReport {
                            granted: 50,
                            available: 40,
                            sold: 10,
                            ..RegionReport::default()
                        },
                    )
                })
                .collect(),
            requests: BTreeMap::new(),
            alive: ["east", "north"].iter().map(|s| s.to_string()).collect(),
            known: ["east", "north", "south"]
                .iter()
                .map(|s| s.to_string())
                .collect(),
            draining: BTreeSet::new(),
            etcd_revision: 1,
        }
    }

    #[test]
    fn dead_and_silent_regions_are_not_alive() {
        let s = region_states(&read());
        let south = s.iter().find(|s| s.name == "south").unwrap();
        assert!(!south.alive);
        assert!(s.iter().find(|s| s.name == "east").unwrap().alive);
    }

    #[test]
    fn grants_never_exceed_the_pool_and_skip_dead_regions() {
        let r = read(); // pool = 20
        let moves = vec![
            Move::Grant {
                region: "east".into(),
                units: 15,
            },
            Move::Grant {
                region: "north".into(),
                units: 15,
            },
            Move::Grant {
                region: "south".into(),
                units: 1,
            },
        ];
        let (ledger, _, kept) = apply_moves(&r, moves);
        assert_eq!(kept.len(), 1);
        assert_eq!(ledger.granted["east"], 65);
        assert_eq!(ledger.granted["north"], 50);
        assert!(!ledger.granted.contains_key("south"));
    }

    #[test]
    fn one_outstanding_release_per_region() {
        let mut r = read();
        r.requests.insert(
            "east".into(),
            ReleaseRequest {
                request_id: "a".into(),
                amount: 5,
            },
        );
        let m = vec![Move::Release {
            region: "east".into(),
            units: 3,
        }];
        assert!(
            apply_moves(&r, m.clone()).2.is_empty(),
            "a is still pending"
        );
        r.released.insert(
            "east".into(),
            ReleasePublished {
                released: 5,
                last_request: Some("a".into()),
            },
        );
        let (_, reqs, kept) = apply_moves(&r, m);
        assert_eq!(kept.len(), 1);
        assert_eq!(reqs["east"].amount, 3);
    }

    #[test]
    fn drain_releases_everything_unsold() {
        let mut r = read();
        r.draining.insert("north".into());
        let s = region_states(&r);
        assert!(!s.iter().find(|s| s.name == "north").unwrap().alive);
        assert_eq!(
            drain_moves(&r, &s),
            vec![Move::Release {
                region: "north".into(),
                units: 40
            }]
        );
    }
}
