//! An exhaustive model check of the escrow protocol: every interleaving, crashes included, of
//! two regions with two node processes each, a leader and a few buyers, over a few units.
//!
//! Why, next to the simulator: a simulator run follows one seeded schedule, and the nemesis one
//! seeded fault plan; the races that matter (two processes handling one release, a crash
//! between a release's commit and its publish, a round decided on a read that is stale by the
//! time it is written) need a precise interleaving that a random schedule reaches rarely. Here a
//! breadth-first search visits every reachable state of a small instance, checks every
//! invariant in each (`invariants`), and on a violation prints the shortest action sequence
//! that leads to it.
//!
//! What a state is (`state::State`): etcd (`G`, `Q`, the release request and the published
//! `R` with its last request, per region), per region its Postgres row (`g`, `rel`, `sold`,
//! `returned`, the handled request ids), its Redis admission stock, and two node processes
//! whose volatile state — the last `G` and request their watch delivered, the request they
//! hold, a publish of `R` between its Postgres read and its compare-and-swap — a crash loses;
//! the leader's round between its read and its write; the buyers (idle, admitted by Redis at
//! a process, or an order: pending, paid, cancelled, expired). The decisions are the real
//! functions: the round ([`quota_shared::round`], [`quota_shared::policy::plan`] with the
//! demand policy), [`quota_shared::region_steps`], [`quota_shared::reconcile::target_stock`],
//! [`quota_shared::order::OrderStatus::after`], [`quota_shared::model::merge_reports`], and
//! the checks are [`quota_shared::ledger::check_conservation`] and
//! [`quota_shared::ledger::pool`] with [`quota_shared::ledger::credited_release`].
//!
//! A hand-written search rather than `stateright`: the state is a plain hashable struct, the
//! search is forty lines, and a new crate (with its own scheduler and UI) would buy nothing the
//! bound needs.

mod coordinator;
mod invariants;
mod state;
#[cfg(test)]
mod tests;

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

pub use state::Action;
use state::State;

/// Regions in the model.
const REGIONS: usize = 2;
/// Node processes per region.
const PROCS: usize = 2;

/// How far the search goes: the instance and its budgets (the state space is finite only
/// because units can circle pool → region → pool, so ledger writes are bounded).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bound {
    /// Units on sale.
    pub total: i64,
    /// The initial split (`G = g` per region, applied and reconciled); the rest is the pool.
    pub split: [i8; 2],
    /// Each buyer's home region (0 east, 1 north): one buyer, one unit, one order ever.
    pub homes: Vec<u8>,
    /// Ledger writes (rounds that move something) the leader may make.
    pub writes: u8,
    /// Crashes (of node processes and of the leader) that may happen.
    pub crashes: u8,
    /// The second region is compromised and may once write any `R` into its own key.
    pub forge: bool,
    /// A deliberately broken step, to show the check can fail (`None`: the real protocol).
    pub flaw: Option<Flaw>,
}

impl Bound {
    /// The bound the unit test explores: 2 units split 1/1, 3 buyers (two at home in east, so
    /// the demand policy asks north for its unit and grants it to east), 2 ledger writes, 1
    /// crash.
    pub fn small() -> Bound {
        Bound {
            total: 2,
            split: [1, 1],
            homes: vec![0, 0, 1],
            writes: 2,
            crashes: 1,
            forge: false,
            flaw: None,
        }
    }

    /// A larger bound (`quota-sim check --large`): as [`Bound::small`] with 3 ledger writes
    /// (a unit can go north → east and a returned one move again).
    pub fn large() -> Bound {
        Bound {
            total: 2,
            split: [1, 1],
            homes: vec![0, 0, 1],
            writes: 3,
            crashes: 1,
            forge: false,
            flaw: None,
        }
    }
}

/// A deliberately broken variant of one step.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flaw {
    /// A process handles a release request without looking for its id in `quota_releases`.
    ReleaseTwice,
    /// A release takes what it wants from `rel` without taking Redis tokens first.
    ReleaseIgnoresTokens,
    /// A grant is added (`g += G`) instead of applied (`g := max(g, G)`).
    GrantAdds,
    /// The pool credits a published `R` up to `G` only, not up to `Q` (the rule before the
    /// threat model's fix); shows with [`Bound::forge`].
    UncappedCredit,
}

/// A broken invariant and the shortest way to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Counterexample {
    /// The invariant, in words.
    pub invariant: String,
    /// The steps from the initial state, in order.
    pub trace: Vec<Action>,
}

/// What a search explored.
#[derive(Debug, Clone)]
pub struct Exploration {
    /// Distinct reachable states visited (each checked).
    pub states: u64,
    /// Transitions followed (each enabled step of each state).
    pub transitions: u64,
    /// The longest shortest path from the initial state.
    pub depth: u32,
    /// Settled states (nothing left to deliver, apply, publish or decide) where the liveness
    /// rule was checked.
    pub settled: u64,
    /// States with a release in transit (`rel > R`: committed in Postgres, not yet
    /// published), where the crash between commit and publish matters.
    pub in_transit: u64,
    /// The shortest path on which a published `last_request` goes back to an older request
    /// (same `R`): a liveness hazard, not a safety one (see ARCHITECTURE.md, "Model check").
    pub last_request_back: Option<Vec<Action>>,
    /// Wall time.
    pub elapsed: Duration,
    /// The first violation found (breadth first: a shortest trace), if any.
    pub violation: Option<Counterexample>,
}

/// Explores every state reachable within `bound`, breadth first, stopping at the first broken
/// invariant.
pub fn explore(bound: &Bound) -> Exploration {
    assert!(bound.homes.len() <= 8, "a handful of buyers");
    // Each write asks at most one release per region; the handled ids are bits of a `u16`.
    assert!(bound.writes <= 7, "at most 7 ledger writes");
    let started = Instant::now();
    let init = State::initial(bound).canonical(bound);
    let mut seen: HashMap<State, u32> = HashMap::new();
    // Per state index: its parent's index and the step from it.
    let mut parent: Vec<(u32, Option<Action>)> = vec![(0, None)];
    seen.insert(init.clone(), 0);
    let mut queue = VecDeque::from([(0u32, 0u32, init)]);
    let mut out = Vec::new();
    let mut result = Exploration {
        states: 1,
        transitions: 0,
        depth: 0,
        settled: 0,
        in_transit: 0,
        last_request_back: None,
        elapsed: Duration::ZERO,
        violation: None,
    };
    let trace = |parent: &[(u32, Option<Action>)], mut i: u32| {
        let mut steps = Vec::new();
        while let (p, Some(a)) = parent[i as usize] {
            steps.push(a);
            i = p;
        }
        steps.reverse();
        steps
    };
    let progress = std::env::var_os("QUOTA_CHECK_PROGRESS").is_some();
    while let Some((i, depth, s)) = queue.pop_front() {
        result.depth = result.depth.max(depth);
        if (0..REGIONS).any(|r| s.regions[r].pg.rel > s.etcd.published[r].r) {
            result.in_transit += 1;
        }
        if progress && i % 100_000 == 0 {
            eprintln!(
                "… {i} states checked, {} found, depth {depth}, {:.0?}",
                parent.len(),
                started.elapsed()
            );
        }
        let problem = invariants::broken(&s, bound).or_else(|| {
            let settled = invariants::settled(&s, bound)?;
            result.settled += 1;
            settled
        });
        if let Some(invariant) = problem {
            result.violation = Some(Counterexample {
                invariant,
                trace: concrete(bound, &trace(&parent, i)),
            });
            break;
        }
        s.successors(bound, &mut out);
        for (a, next) in out.drain(..) {
            result.transitions += 1;
            let back = (0..REGIONS).any(|r| {
                let (old, new) = (s.etcd.published[r], next.etcd.published[r]);
                new.r == old.r && new.last < old.last
            });
            if back && result.last_request_back.is_none() && !s.forged {
                let mut path = trace(&parent, i);
                path.push(a);
                result.last_request_back = Some(concrete(bound, &path));
            }
            let next = next.canonical(bound);
            if seen.contains_key(&next) {
                continue;
            }
            let j = u32::try_from(parent.len()).expect("fewer than 4 billion states");
            parent.push((i, Some(a)));
            seen.insert(next.clone(), j);
            queue.push_back((j, depth + 1, next));
        }
    }
    result.states = parent.len() as u64;
    result.elapsed = started.elapsed();
    result
}

/// The same path with the actual process and buyer numbers: the search stores one
/// representative per symmetry class, so its steps name the representatives' numbers; this
/// replays the path from the initial state and picks, at each step, the concrete step that
/// leads to the next class.
fn concrete(bound: &Bound, canonical_trace: &[Action]) -> Vec<Action> {
    let mut c = State::initial(bound).canonical(bound);
    let mut x = State::initial(bound);
    let mut out = Vec::new();
    let mut steps = Vec::new();
    for &a in canonical_trace {
        c.successors(bound, &mut steps);
        let next = steps
            .drain(..)
            .find(|(b, _)| *b == a)
            .map(|(_, s)| s.canonical(bound))
            .expect("the path's step is enabled");
        x.successors(bound, &mut steps);
        let (b, y) = steps
            .drain(..)
            .find(|(_, y)| y.clone().canonical(bound) == next)
            .expect("a concrete step leads to the same class");
        out.push(b);
        (c, x) = (next, y);
    }
    out
}
