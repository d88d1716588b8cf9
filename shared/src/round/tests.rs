//! The pure round, without etcd.

use super::fixture::snapshot;
use super::{apply_moves, drain_moves, initial_movable, region_states};
use crate::model::{Ledger, ReleasePublished, ReleaseRequest};
use crate::policy::{Move, PolicyKind};

/// Request ids for tests: a counter, like the simulator's.
fn ids() -> impl FnMut() -> String {
    let mut n = 0;
    move || {
        n += 1;
        format!("req-{n}")
    }
}

#[test]
fn dead_and_silent_regions_are_not_alive() {
    let s = region_states(&snapshot());
    let south = s.iter().find(|s| s.name == "south").unwrap();
    assert!(!south.alive);
    assert!(s.iter().find(|s| s.name == "east").unwrap().alive);
}

#[test]
fn grants_never_exceed_the_pool_and_skip_dead_regions() {
    let r = snapshot(); // pool = 20
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
    let (ledger, _, kept) = apply_moves(&r, moves, ids());
    assert_eq!(kept.len(), 1);
    assert_eq!(ledger.granted["east"], 65);
    assert_eq!(ledger.granted["north"], 50);
    assert!(!ledger.granted.contains_key("south"));
}

#[test]
fn one_outstanding_release_per_region() {
    let mut r = snapshot();
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
        apply_moves(&r, m.clone(), ids()).2.is_empty(),
        "a is still pending"
    );
    r.published.insert(
        "east".into(),
        ReleasePublished {
            handled: 0,
            released: 5,
            last_request: Some("a".into()),
        },
    );
    let (_, reqs, kept) = apply_moves(&r, m, ids());
    assert_eq!(kept.len(), 1);
    assert_eq!(reqs["east"].amount, 3);
}

#[test]
fn drain_releases_everything_unsold() {
    let mut r = snapshot();
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

#[test]
fn a_new_sale_can_move_its_pool_and_every_initial_grant() {
    let ledger = Ledger {
        total: 100,
        granted: [("east".to_string(), 30), ("south".to_string(), 20)].into(),
        ..Ledger::default()
    };
    let m = initial_movable(&ledger, 7);
    assert_eq!(m.pool, 50);
    assert_eq!(m.elsewhere("east"), 70);
    assert_eq!(m.elsewhere("north"), 100);
    assert_eq!(m.at_ms, 7);
    let fixed = Ledger {
        policy: PolicyKind::Static,
        ..ledger
    };
    assert_eq!(initial_movable(&fixed, 7).elsewhere("north"), 0);
}

#[test]
fn a_live_region_that_has_not_reported_yet_counts_with_what_it_holds() {
    use super::movable;
    let mut snap = snapshot();
    // East's heartbeat is up but its first report on the product has not arrived.
    snap.reports.remove("east");
    let states = region_states(&snap);
    assert!(!states.iter().find(|s| s.name == "east").unwrap().alive);
    let m = movable(&snap, &states, 7);
    assert_eq!(
        m.regions.get("east"),
        Some(&50),
        "G − R = 50 could still move"
    );
    assert_eq!(m.regions.get("north"), Some(&40));
    // South, silent and without a heartbeat, holds nothing that could move.
    assert_eq!(m.regions.get("south"), None);
    // A region whose heartbeat is gone does not count at all.
    snap.alive.remove("east");
    let m = movable(&snap, &region_states(&snap), 7);
    assert_eq!(m.regions.get("east"), None);
}
