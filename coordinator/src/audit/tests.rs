//! The pure verdict, without etcd or regions. The fixture snapshot: total 120, `G` east =
//! north = 50, no releases, pool 20.

use std::collections::BTreeMap;

use proptest::prelude::*;
use quota_shared::model::ReleasePublished;
use quota_shared::wire::RegionTruth;

use super::verdict::{evaluate, UserOverLimit, Violation};
use crate::snapshot::fixture::snapshot;

/// A region that applied its whole grant of 50, sold 10 to users `first..first + 10`.
fn truth(region: &str, first_user: i64) -> RegionTruth {
    RegionTruth {
        region: region.into(),
        product_id: 1,
        granted: 50,
        released: 0,
        sold: 10,
        returned: 0,
        available: 40,
        order_count: 10,
        order_units: 10,
        returned_units: 0,
        buyers: (first_user..first_user + 10).map(|u| (u, 1)).collect(),
        redis_stock: Some(40),
        redis_in_flight: Some(0),
    }
}

fn both(east: RegionTruth, north: RegionTruth) -> BTreeMap<String, RegionTruth> {
    [("east".to_string(), east), ("north".to_string(), north)].into()
}

#[test]
fn balanced_books_pass() {
    let v = evaluate(
        &snapshot(),
        &both(truth("east", 1), truth("north", 100)),
        vec![],
    );
    assert!(v.ok(), "{:?}", v.violations);
    assert_eq!((v.total, v.pool, v.sold), (120, 20, 20));
    let wire = v.into_wire();
    assert!(wire.ok);
    assert_eq!(wire.regions["east"].grant_in_transit, 0);
    assert_eq!(wire.regions["east"].redis_drift, Some(0));
}

#[test]
fn terms_in_transit_balance_too() {
    // North applied only 30 of its 50 and released 5 that it has not published yet.
    let mut north = truth("north", 100);
    north.granted = 30;
    north.released = 5;
    north.available = 15;
    north.redis_stock = Some(15);
    let v = evaluate(&snapshot(), &both(truth("east", 1), north), vec![]);
    assert!(v.ok(), "{:?}", v.violations);
    assert_eq!(v.regions["north"].grant_in_transit, 20);
    assert_eq!(v.regions["north"].release_in_transit, 5);
}

#[test]
fn each_rule_is_its_own_violation_with_todays_words() {
    let mut east = truth("east", 1);
    east.order_units = 9;
    east.redis_in_flight = Some(3);
    let mut north = truth("north", 100);
    north.buyers.push((1, 1)); // user 1 also bought in east
    north.available = 41; // one unit out of thin air
    north.redis_stock = Some(41);
    let v = evaluate(&snapshot(), &both(east, north), vec![]);
    let text: Vec<String> = v.violations.iter().map(ToString::to_string).collect();
    assert_eq!(
        text,
        [
            "east: sold = 10 but its orders hold 9 units",
            "east: Redis would admit 3 more units than Postgres can accept",
            "pool + Σ(sold + available + in transit) = 121, but total = 120 (off by 1)",
            "1 users over the per-user limit across regions, e.g. user 1 holds 2 units (limit 1) \
             in east, north",
        ]
    );
    assert_eq!(
        v.violations[3],
        Violation::OverLimit {
            users: 1,
            example: UserOverLimit {
                user_id: 1,
                units: 2,
                limit: 1,
                regions: vec!["east".into(), "north".into()],
            },
        }
    );
    assert!(!v.into_wire().ok);
}

#[test]
fn unreadable_region_skips_the_identity_and_fails() {
    let truths: BTreeMap<String, RegionTruth> = [("east".to_string(), truth("east", 1))].into();
    let v = evaluate(&snapshot(), &truths, vec!["north: unreachable".into()]);
    assert!(v.violations.is_empty(), "{:?}", v.violations);
    assert!(!v.ok());
    let wire = v.into_wire();
    assert_eq!(wire.unreadable, ["north: unreachable"]);
    assert!(!wire.ok);
}

#[test]
fn unknown_redis_is_not_drift() {
    let mut east = truth("east", 1);
    east.redis_stock = None;
    east.redis_in_flight = Some(100);
    let v = evaluate(&snapshot(), &both(east, truth("north", 100)), vec![]);
    assert!(v.ok(), "{:?}", v.violations);
    assert_eq!(v.regions["east"].redis_drift, None);
}

/// A region's truth from its counters: `g` applied of `G` = 50, `sold`, `rel`, of which `R`
/// published; Redis exact.
fn counted(region: &str, g: i64, sold: i64, rel: i64) -> RegionTruth {
    let available = g - rel - sold;
    RegionTruth {
        granted: g,
        released: rel,
        sold,
        available,
        order_count: sold,
        order_units: sold,
        buyers: Vec::new(),
        redis_stock: Some(available),
        redis_in_flight: Some(0),
        ..truth(region, 0)
    }
}

/// Per region: `(g, sold, rel, R)` with `R ≤ rel ≤ g − sold`, `g ≤ G = 50`.
fn counters() -> impl Strategy<Value = (i64, i64, i64, i64)> {
    (0..=50i64)
        .prop_flat_map(|g| (Just(g), 0..=g))
        .prop_flat_map(|(g, sold)| (Just(g), Just(sold), 0..=g - sold))
        .prop_flat_map(|(g, sold, rel)| (Just(g), Just(sold), Just(rel), 0..=rel))
}

proptest! {
    #[test]
    fn any_consistent_books_pass_and_one_created_unit_is_caught(
        east in counters(),
        north in counters(),
    ) {
        let mut snap = snapshot();
        let mut truths = BTreeMap::new();
        for (r, (g, sold, rel, published)) in [("east", east), ("north", north)] {
            snap.published.insert(
                r.to_string(),
                ReleasePublished { released: published, last_request: None, handled: 0 },
            );
            // The coordinator asked for at least what was released (a region may give back
            // less than it is asked for, never more).
            snap.ledger.requested.insert(r.to_string(), rel + sold);
            truths.insert(r.to_string(), counted(r, g, sold, rel));
        }
        let v = evaluate(&snap, &truths, vec![]);
        prop_assert!(v.ok(), "{:?}", v.violations);

        let east = truths.get_mut("east").unwrap();
        east.available += 1;
        east.redis_stock = Some(east.available - 1);
        let v = evaluate(&snap, &truths, vec![]);
        prop_assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
        prop_assert!(matches!(v.violations[0], Violation::Conservation(_)));
    }
}

/// Cancelled and expired orders give their units back: with `returned` = the units of those
/// orders the books balance (the units are available again, not sold); a `returned` that
/// disagrees with the orders — a unit that came back twice, or without an order closing — is
/// named.
#[test]
fn returned_units_balance_and_a_return_without_an_order_is_caught() {
    // East: 10 ordered, 4 of them cancelled or expired and back on sale.
    let mut east = truth("east", 1);
    east.returned = 4;
    east.returned_units = 4;
    east.available = 44;
    east.redis_stock = Some(44);
    let v = evaluate(
        &snapshot(),
        &both(east.clone(), truth("north", 100)),
        vec![],
    );
    assert!(v.ok(), "{:?}", v.violations);
    assert_eq!(v.sold, 16, "units in live orders");

    // The counter says 5 came back, the orders say 4 (and available follows the counter).
    east.returned = 5;
    east.available = 45;
    east.redis_stock = Some(45);
    let v = evaluate(&snapshot(), &both(east, truth("north", 100)), vec![]);
    assert!(
        v.violations.contains(&Violation::ReturnedMismatch {
            region: "east".into(),
            returned: 5,
            returned_units: 4,
        }),
        "{:?}",
        v.violations
    );
    // The counters agree with each other (g − rel = live + available), so only the order
    // rows can tell: that check is the one that catches a unit coming back twice.
    assert_eq!(v.violations.len(), 1, "{:?}", v.violations);
}

/// A region whose published `R` exceeds what it was asked for is named, and the pool does not
/// count the excess (it stays what the honest books say), whatever the region's own answer.
#[test]
fn a_release_nobody_asked_for_is_named_and_not_counted() {
    let mut snap = snapshot();
    snap.ledger.requested.insert("north".into(), 5);
    snap.published.insert(
        "north".into(),
        ReleasePublished {
            handled: 0,
            released: 30,
            last_request: None,
        },
    );
    // North gave back the 5 it was asked for and claims 30; its own books say rel = 30 too.
    let v = evaluate(
        &snap,
        &both(truth("east", 1), counted("north", 50, 10, 30)),
        vec![],
    );
    assert_eq!(v.pool, 25, "only the 5 asked for are back in the pool");
    assert!(
        v.violations.contains(&Violation::UnaskedRelease {
            region: "north".into(),
            published: 30,
            asked: 5,
            granted: 50,
        }),
        "{:?}",
        v.violations
    );
    assert!(
        v.violations
            .iter()
            .any(|x| matches!(x, Violation::Conservation(_))),
        "{:?}",
        v.violations
    );
}

#[test]
fn a_transfer_is_stuck_only_while_it_stays_open_and_unchanged() {
    use super::verdict::OpenTransfers;
    let mut north = truth("north", 100);
    north.granted = 30; // G = 50: 20 in transit
    north.released = 5; // R = 0: 5 in transit
    north.available = 15;
    let v = evaluate(&snapshot(), &both(truth("east", 1), north), vec![]);
    let open = OpenTransfers::of(&v.regions["north"]);
    assert_eq!(open.grant, Some((50, 30)));
    assert_eq!(open.release, Some((5, 0)));
    assert!(OpenTransfers::of(&v.regions["east"]).is_empty());
    // Unchanged: still open, and after the bound both are violations naming the numbers.
    assert_eq!(open.still(&open), open);
    let words: Vec<String> = open
        .stuck("north", 5_000)
        .iter()
        .map(ToString::to_string)
        .collect();
    assert!(
        words[0].contains("grant stuck") && words[0].contains("G = 50"),
        "{words:?}"
    );
    assert!(
        words[1].contains("release stuck") && words[1].contains("R = 0"),
        "{words:?}"
    );
    // The grant moved (part applied), the release completed: nothing is stuck.
    let moved = OpenTransfers {
        grant: Some((50, 40)),
        release: None,
    };
    assert!(open.still(&moved).is_empty());
}
