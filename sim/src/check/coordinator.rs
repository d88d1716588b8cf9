//! The leader's round on the model's etcd: the model state is turned into the very
//! [`LedgerSnapshot`] the coordinator reads, and the round is decided by the real functions
//! (`region_states`, `policy::plan`, `drain_moves`, `apply_moves`); the new ledger and requests
//! come back as a [`Decision`] that the leader writes in a later step.

use std::collections::{BTreeMap, BTreeSet};

use quota_shared::ledger::{credited_release, pool};
use quota_shared::model::{merge_reports, Ledger, ProductSpec, RegionReport, ReleaseRequest};
use quota_shared::policy::{plan, PolicyKind, PolicyParams};
use quota_shared::round::{apply_moves, drain_moves, region_states, LedgerSnapshot};

use super::state::{n, w, Buyer, State, N, NAMES};
use super::{Bound, Flaw, REGIONS};

/// A round decided and not yet written: the new `G` and `Q` and the new requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) struct Decision {
    pub(super) g: [N; REGIONS],
    pub(super) q: [N; REGIONS],
    pub(super) requests: [Option<super::state::Req>; REGIONS],
    pub(super) next_id: u8,
}

/// The `requested` the coordinator's arithmetic caps `R` with: the ledger's `Q`, or — the
/// [`Flaw::UncappedCredit`] variant, the rule before the cap — the grant itself.
fn cap(s: &State, bound: &Bound, r: usize) -> i64 {
    if bound.flaw == Some(Flaw::UncappedCredit) {
        w(s.etcd.g[r]).max(w(s.etcd.q[r]))
    } else {
        w(s.etcd.q[r])
    }
}

/// The pool exactly as the coordinator counts it (`LedgerSnapshot::pool`: `ledger::pool` of
/// the credited releases).
pub(super) fn coordinator_pool(s: &State, bound: &Bound) -> i64 {
    let granted = by_name(|r| w(s.etcd.g[r]));
    let credited =
        by_name(|r| credited_release(w(s.etcd.published[r].r), cap(s, bound, r), w(s.etcd.g[r])));
    pool(bound.total, &granted, &credited)
}

fn by_name(f: impl Fn(usize) -> i64) -> BTreeMap<String, i64> {
    (0..REGIONS).map(|r| (NAMES[r].to_string(), f(r))).collect()
}

fn spec(total: i64) -> ProductSpec {
    let start = chrono::DateTime::from_timestamp(0, 0).expect("the epoch");
    ProductSpec {
        product_id: 1,
        name: "model".into(),
        total,
        price: rust_decimal::Decimal::ONE,
        original_price: rust_decimal::Decimal::ONE,
        start_time: start,
        end_time: start + chrono::Duration::hours(1),
        per_user_limit: 1,
        ended: false,
        home_regions: NAMES.iter().map(ToString::to_string).collect(),
        payment_window_s: None,
    }
}

/// What etcd holds for the leader's read: a region is alive while any of its processes is
/// (its heartbeat), and each live process's report is the Postgres row as it reads it now
/// (demand: the buyers of that home still trying, reported by one process).
fn snapshot(s: &State, bound: &Bound) -> LedgerSnapshot {
    let mut reports = BTreeMap::new();
    let mut alive = BTreeSet::new();
    for (r, region) in s.regions.iter().enumerate() {
        let trying = s
            .buyers
            .iter()
            .zip(&bound.homes)
            .filter(|(b, &h)| usize::from(h) == r && !matches!(b, Buyer::Order(_)))
            .count();
        let mut demand = trying as f64;
        let per_proc: Vec<RegionReport> = region
            .procs
            .iter()
            .filter(|p| p.up)
            .map(|p| {
                let pg = region.pg;
                RegionReport {
                    granted: w(pg.g),
                    released: w(pg.rel),
                    sold: w(pg.sold),
                    returned: w(pg.returned),
                    available: pg.available(),
                    demand: std::mem::take(&mut demand),
                    release_in_flight: p.pending.map_or(0, |q| w(q.amount)),
                    at_ms: 0,
                }
            })
            .collect();
        if let Some(rep) = merge_reports(&per_proc) {
            reports.insert(NAMES[r].to_string(), rep);
            alive.insert(NAMES[r].to_string());
        }
    }
    let published = (0..REGIONS)
        .filter(|&r| s.etcd.published[r] != super::state::Published::default())
        .map(|r| (NAMES[r].to_string(), s.etcd.published[r].document()))
        .collect();
    let requests = (0..REGIONS)
        .filter_map(|r| {
            s.etcd.request[r].map(|q| {
                let req = ReleaseRequest {
                    request_id: q.id.to_string(),
                    amount: w(q.amount),
                };
                (NAMES[r].to_string(), req)
            })
        })
        .collect();
    LedgerSnapshot {
        spec: spec(bound.total),
        ledger: Ledger {
            total: bound.total,
            granted: by_name(|r| w(s.etcd.g[r])),
            policy: PolicyKind::Demand,
            static_split: BTreeMap::new(),
            requested: by_name(|r| cap(s, bound, r)),
        },
        revision: 1,
        published,
        reports,
        requests,
        alive,
        known: NAMES.iter().map(ToString::to_string).collect(),
        draining: BTreeSet::new(),
        etcd_revision: 1,
        coordinator_writes: 0,
    }
}

/// The leader's round on the current state, step for step `coordinator::rebalance::round`
/// (movable stock left out: it steers 410 vs 503 answers, never a counter). `None` when the
/// round moves nothing (then it writes nothing).
pub(super) fn decide(s: &State, bound: &Bound) -> Option<Decision> {
    let snap = snapshot(s, bound);
    let states = region_states(&snap);
    let mut moves = plan(
        snap.ledger.policy,
        &PolicyParams::default(),
        snap.pool(),
        &states,
    );
    moves.extend(drain_moves(&snap, &states));
    let mut next_id = s.etcd.next_id;
    let (ledger, requests, kept) = apply_moves(&snap, moves, || {
        let id = next_id;
        next_id += 1;
        id.to_string()
    });
    if kept.is_empty() {
        return None;
    }
    let mut d = Decision {
        g: [0; REGIONS],
        q: [0; REGIONS],
        requests: [None; REGIONS],
        next_id,
    };
    for (r, name) in NAMES.into_iter().enumerate() {
        d.g[r] = n(ledger.granted.get(name).copied().unwrap_or(0));
        // What the round added to `Q` (the snapshot's `Q` is the capped one under the flaw).
        let added = ledger.requested.get(name).copied().unwrap_or(0) - cap(s, bound, r);
        d.q[r] = n(w(s.etcd.q[r]) + added);
        d.requests[r] = requests.get(name).map(|q| super::state::Req {
            id: q.request_id.parse().expect("ids are the counter's"),
            amount: n(q.amount),
        });
    }
    Some(d)
}
