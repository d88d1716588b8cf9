//! The abstract state of a sale and every atomic step of it. Counters are `i8` (the bound keeps
//! them tiny) so that a million states fit in memory; every decision converts them to `i64`
//! and calls the project's real pure function.

use std::fmt;

use quota_shared::order::{Change, OrderStatus};
use quota_shared::reconcile::target_stock;
use quota_shared::region_steps::{apply_grant, release_step, release_taken, ReleaseStep};

use super::coordinator::{decide, Decision};
use super::{Bound, Flaw, PROCS, REGIONS};

/// A counter of the model (tiny by construction).
pub(super) type N = i8;

/// Widens a model counter for the real functions.
pub(super) fn w(x: N) -> i64 {
    i64::from(x)
}

/// Narrows a real function's answer back; the bound keeps every value in range.
pub(super) fn n(x: i64) -> N {
    N::try_from(x).expect("the bound keeps counters tiny")
}

/// Region names, as the real functions key them.
pub(super) const NAMES: [&str; REGIONS] = ["east", "north"];

/// A release request `{request_id, amount}` (ids are a counter; the coordinator's are UUIDv7s).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Req {
    pub(super) id: u8,
    pub(super) amount: N,
}

/// `regions/{r}/releases/{p}`: `{released: R, last_request}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Published {
    pub(super) r: N,
    pub(super) last: Option<u8>,
    /// Requests handled (the count `release::publish` orders snapshots by, with `R`).
    pub(super) handled: u8,
}

impl Published {
    /// The etcd document this stands for.
    pub(super) fn document(self) -> quota_shared::model::ReleasePublished {
        quota_shared::model::ReleasePublished {
            released: i64::from(self.r),
            last_request: self.last.map(|id| id.to_string()),
            handled: i64::from(self.handled),
        }
    }
}

/// The product's keys in etcd (survive every crash).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Etcd {
    /// `G` per region.
    pub(super) g: [N; REGIONS],
    /// `Q` per region (ledger `requested`).
    pub(super) q: [N; REGIONS],
    /// `release-requests/{r}/{p}` (the latest; it stays after being handled).
    pub(super) request: [Option<Req>; REGIONS],
    /// `R` and the last request handled, as published.
    pub(super) published: [Published; REGIONS],
    /// The next release request id (unique for ever).
    pub(super) next_id: u8,
}

/// A region's Postgres: the quota row and `quota_releases` (survive every crash).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub(super) struct Pg {
    pub(super) g: N,
    pub(super) rel: N,
    pub(super) sold: N,
    pub(super) returned: N,
    /// Request ids recorded in `quota_releases` (bit `id`).
    pub(super) handled: u16,
    /// The newest recorded request id.
    pub(super) last: Option<u8>,
}

impl Pg {
    /// `g − rel − sold + returned`.
    pub(super) fn available(&self) -> i64 {
        w(self.g) - w(self.rel) - w(self.sold) + w(self.returned)
    }
}

/// Where a process's "publish `R`" is: nothing to do, about to read `rel` from Postgres, or
/// holding what it read for the compare-and-swap.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) enum Publish {
    #[default]
    Idle,
    ToRead,
    Read(Published),
}

/// One node process: everything here is lost when it crashes.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct Proc {
    pub(super) up: bool,
    /// The last `G` its watch delivered.
    pub(super) seen_grant: N,
    /// The last release request id its watch delivered.
    pub(super) delivered: Option<u8>,
    /// The request it has received and not yet handled.
    pub(super) pending: Option<Req>,
    pub(super) publish: Publish,
}

/// One region: Postgres, Redis (admission stock; survives a node crash) and its processes.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct Region {
    pub(super) pg: Pg,
    pub(super) stock: N,
    pub(super) procs: [Proc; PROCS],
}

/// A buyer (one unit, one order ever: the per-user limit). Its home region is fixed by the
/// bound (a sale with home regions).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(super) enum Buyer {
    /// Not bought yet (may try, and retry).
    Idle,
    /// Admitted by Redis (holds a token) in a purchase served by process `proc` of its home.
    Admitted { proc: u8 },
    /// Its order, in its home region's Postgres.
    Order(OrderStatus),
}

/// The whole world.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(super) struct State {
    pub(super) etcd: Etcd,
    pub(super) regions: [Region; REGIONS],
    pub(super) buyers: Vec<Buyer>,
    /// The leader's round between its read (decided) and its fenced write.
    pub(super) coord: Option<Decision>,
    /// Ledger writes so far (bounded).
    pub(super) writes: u8,
    /// Crashes so far (bounded).
    pub(super) crashes: u8,
    /// The compromised region has forged its `R`.
    pub(super) forged: bool,
    /// `R` as the honest publish path last wrote it (what the forger's key would say).
    pub(super) honest_r: [N; REGIONS],
    /// Ghost: a release request was applied (took units) twice.
    pub(super) double_release: bool,
    /// Ghost: Postgres refused a purchase Redis had admitted.
    pub(super) admitted_refused: bool,
}

/// One atomic step. Each is one etcd transaction, one Postgres transaction, one Redis script or
/// one in-memory change of a process — what can happen between two crashes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// The leader reads etcd and decides its round (real `region_states`, `plan`,
    /// `drain_moves`, `apply_moves`).
    CoordRead,
    /// The leader's fenced compare-and-swap writes the round.
    CoordWrite,
    /// The leader dies between read and write; a standby starts from etcd alone.
    CoordCrash,
    /// A process's watch delivers the current `G` and release request.
    Watch(u8, u8),
    /// A process applies the grant it saw: `g := max(g, G)`.
    ApplyGrant(u8, u8),
    /// A process handles its pending release request in one Postgres transaction.
    HandleRelease(u8, u8),
    /// A process reads `rel` and the last request from Postgres to publish them.
    ReadRel(u8, u8),
    /// A process publishes what it read as `R` (compare-and-swap, never lowers `R`).
    PublishR(u8, u8),
    /// The reconciler: `stock := available − in flight` under the row lock.
    Reconcile(u8),
    /// Buyer `b` is admitted by Redis at process `p` of its home.
    Admit(u8, u8),
    /// Buyer `b`'s purchase reaches Postgres (commits, or is refused).
    Commit(u8),
    /// Buyer `b`'s order is paid, cancelled or expires.
    Close(u8, Change),
    /// Process `p` of region `r` dies.
    Crash(u8, u8),
    /// Process `p` of region `r` restarts (new session: re-read etcd, re-publish `R`).
    Restart(u8, u8),
    /// The compromised region writes this `R` into its own key.
    Forge(N),
}

impl fmt::Display for Action {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let p = |r: u8, p: u8| format!("{}/{p}", NAMES[usize::from(r)]);
        match *self {
            Action::CoordRead => write!(f, "leader reads etcd and decides a round"),
            Action::CoordWrite => write!(f, "leader writes the round"),
            Action::CoordCrash => write!(f, "leader crashes before writing"),
            Action::Watch(r, q) => write!(f, "{} watch delivers G and the request", p(r, q)),
            Action::ApplyGrant(r, q) => write!(f, "{} applies the grant", p(r, q)),
            Action::HandleRelease(r, q) => write!(f, "{} handles its release request", p(r, q)),
            Action::ReadRel(r, q) => write!(f, "{} reads rel from Postgres", p(r, q)),
            Action::PublishR(r, q) => write!(f, "{} publishes R", p(r, q)),
            Action::Reconcile(r) => write!(f, "{} reconciler", NAMES[usize::from(r)]),
            Action::Admit(b, q) => write!(f, "buyer {b} admitted by Redis at process {q}"),
            Action::Commit(b) => write!(f, "buyer {b}'s purchase reaches Postgres"),
            Action::Close(b, c) => write!(f, "buyer {b}'s order: {c:?}"),
            Action::Crash(r, q) => write!(f, "{} crashes", p(r, q)),
            Action::Restart(r, q) => write!(f, "{} restarts", p(r, q)),
            Action::Forge(v) => write!(f, "{} forges R = {v}", NAMES[REGIONS - 1]),
        }
    }
}

impl State {
    /// The sale as it starts: the initial split granted and applied, Redis reconciled, every
    /// process up and in sync, the rest of the total in the pool.
    pub(super) fn initial(bound: &Bound) -> State {
        let region = |g: N| Region {
            pg: Pg { g, ..Pg::default() },
            stock: g,
            procs: [Proc {
                up: true,
                seen_grant: g,
                ..Proc::default()
            }; PROCS],
        };
        State {
            etcd: Etcd {
                g: bound.split,
                q: [0; REGIONS],
                request: [None; REGIONS],
                published: [Published::default(); REGIONS],
                next_id: 0,
            },
            regions: [region(bound.split[0]), region(bound.split[1])],
            buyers: vec![Buyer::Idle; bound.homes.len()],
            coord: None,
            writes: 0,
            crashes: 0,
            forged: false,
            honest_r: [0; REGIONS],
            double_release: false,
            admitted_refused: false,
        }
    }

    /// Units admitted by Redis and not yet committed in region `r`.
    pub(super) fn in_flight(&self, bound: &Bound, r: usize) -> i64 {
        let n = self
            .buyers
            .iter()
            .zip(&bound.homes)
            .filter(|(b, &h)| usize::from(h) == r && matches!(b, Buyer::Admitted { .. }))
            .count();
        i64::try_from(n).unwrap_or(i64::MAX)
    }

    /// Every enabled step and the state it leads to (steps that change nothing are left out).
    pub(super) fn successors(&self, bound: &Bound, out: &mut Vec<(Action, State)>) {
        out.clear();
        self.coordinator_steps(bound, out);
        for r in 0..REGIONS {
            for p in 0..PROCS {
                self.process_steps(bound, r, p, out);
            }
            if self.regions[r].procs.iter().any(|p| p.up) {
                let mut s = self.clone();
                let avail = s.regions[r].pg.available();
                s.regions[r].stock = n(target_stock(avail, self.in_flight(bound, r)));
                push(out, self, Action::Reconcile(idx(r)), s);
            }
        }
        self.buyer_steps(bound, out);
        if bound.forge && !self.forged {
            let f = REGIONS - 1;
            for v in self.etcd.published[f].r + 1..=n(bound.total + 1) {
                let mut s = self.clone();
                s.etcd.published[f].r = v;
                s.forged = true;
                out.push((Action::Forge(v), s));
            }
        }
    }

    fn coordinator_steps(&self, bound: &Bound, out: &mut Vec<(Action, State)>) {
        match &self.coord {
            None if self.writes < bound.writes => {
                if let Some(d) = decide(self, bound) {
                    let mut s = self.clone();
                    s.coord = Some(d);
                    out.push((Action::CoordRead, s));
                }
            }
            None => {}
            Some(d) => {
                let mut s = self.clone();
                // `store::write` refuses to lower a `G`; the fence and the ledger revision
                // cannot have moved (one leader, and a dead one's round is dropped).
                assert!(d.g.iter().zip(&self.etcd.g).all(|(new, old)| new >= old));
                s.etcd.g = d.g;
                s.etcd.q = d.q;
                for (r, req) in d.requests.iter().enumerate() {
                    if let Some(req) = req {
                        s.etcd.request[r] = Some(*req);
                    }
                }
                s.etcd.next_id = d.next_id;
                s.writes += 1;
                s.coord = None;
                out.push((Action::CoordWrite, s));
                if self.crashes < bound.crashes {
                    let mut s = self.clone();
                    s.coord = None;
                    s.crashes += 1;
                    out.push((Action::CoordCrash, s));
                }
            }
        }
    }

    fn process_steps(&self, bound: &Bound, r: usize, p: usize, out: &mut Vec<(Action, State)>) {
        let (ri, pi) = (idx(r), idx(p));
        let region = &self.regions[r];
        let proc = region.procs[p];
        if !proc.up {
            // A new session: re-read `G` and the request, re-publish `R` from Postgres first.
            let mut s = self.clone();
            s.regions[r].procs[p] = Proc {
                up: true,
                seen_grant: self.etcd.g[r],
                delivered: self.etcd.request[r].map(|q| q.id),
                pending: self.etcd.request[r],
                publish: Publish::ToRead,
            };
            push(out, self, Action::Restart(ri, pi), s);
            return;
        }
        if self.crashes < bound.crashes {
            let mut s = self.clone();
            s.regions[r].procs[p] = Proc::default();
            s.crashes += 1;
            // Its purchases in service die with it (their Redis tickets expire).
            for (b, home) in s.buyers.iter_mut().zip(&bound.homes) {
                if usize::from(*home) == r && *b == (Buyer::Admitted { proc: pi }) {
                    *b = Buyer::Idle;
                }
            }
            out.push((Action::Crash(ri, pi), s));
        }
        // The watch: the newest `G` and request (a watch delivers in revision order; the ones
        // it would deliver in between are dominated: `G` only grows, and a request is only
        // replaced once handled).
        let req = self.etcd.request[r];
        let new_req = req.is_some() && req.map(|q| q.id) != proc.delivered;
        if self.etcd.g[r] > proc.seen_grant || new_req {
            let mut s = self.clone();
            let sp = &mut s.regions[r].procs[p];
            sp.seen_grant = sp.seen_grant.max(self.etcd.g[r]);
            if new_req {
                sp.delivered = req.map(|q| q.id);
                sp.pending = req;
            }
            push(out, self, Action::Watch(ri, pi), s);
        }
        if proc.seen_grant > region.pg.g {
            let mut s = self.clone();
            let g = &mut s.regions[r].pg.g;
            *g = if bound.flaw == Some(Flaw::GrantAdds) {
                *g + proc.seen_grant
            } else {
                n(apply_grant(w(*g), w(proc.seen_grant)).after)
            };
            push(out, self, Action::ApplyGrant(ri, pi), s);
        }
        // The session loop does one thing at a time: a request waits for a publish under way.
        if let (Some(req), Publish::Idle) = (proc.pending, proc.publish) {
            let mut s = self.clone();
            let sr = &mut s.regions[r];
            let bit = 1u16 << req.id;
            let recorded = sr.pg.handled & bit != 0;
            let handled = recorded && bound.flaw != Some(Flaw::ReleaseTwice);
            if let ReleaseStep::Take(want) = release_step(handled, w(req.amount), sr.pg.available())
            {
                let taken = if bound.flaw == Some(Flaw::ReleaseIgnoresTokens) {
                    want
                } else {
                    release_taken(want, w(sr.stock))
                };
                if recorded && taken > 0 {
                    s.double_release = true;
                }
                sr.stock = n((w(sr.stock) - taken).max(0));
                sr.pg.rel += n(taken);
                sr.pg.handled |= bit;
                sr.pg.last = Some(sr.pg.last.map_or(req.id, |l| l.max(req.id)));
            }
            let sp = &mut sr.procs[p];
            sp.pending = None;
            sp.publish = Publish::ToRead;
            push(out, self, Action::HandleRelease(ri, pi), s);
        }
        match proc.publish {
            Publish::Idle => {}
            Publish::ToRead => {
                let mut s = self.clone();
                s.regions[r].procs[p].publish = Publish::Read(Published {
                    r: region.pg.rel,
                    last: region.pg.last,
                    handled: u8::try_from(region.pg.handled.count_ones()).unwrap_or(u8::MAX),
                });
                push(out, self, Action::ReadRel(ri, pi), s);
            }
            Publish::Read(value) => {
                let mut s = self.clone();
                // `release::publish`: only a newer snapshot replaces the key.
                let cur = self.etcd.published[r];
                if value.document().supersedes(&cur.document()) {
                    s.etcd.published[r] = value;
                }
                // What an honest key would hold: `R` only rises.
                s.honest_r[r] = self.honest_r[r].max(value.r);
                s.regions[r].procs[p].publish = Publish::Idle;
                push(out, self, Action::PublishR(ri, pi), s);
            }
        }
    }

    fn buyer_steps(&self, bound: &Bound, out: &mut Vec<(Action, State)>) {
        for (b, (&buyer, &home)) in self.buyers.iter().zip(&bound.homes).enumerate() {
            let (bi, r) = (idx(b), usize::from(home));
            match buyer {
                Buyer::Idle => {
                    for p in 0..PROCS {
                        if self.regions[r].procs[p].up && self.regions[r].stock >= 1 {
                            let mut s = self.clone();
                            s.regions[r].stock -= 1;
                            s.buyers[b] = Buyer::Admitted { proc: idx(p) };
                            out.push((Action::Admit(bi, idx(p)), s));
                        }
                    }
                }
                Buyer::Admitted { .. } => {
                    // `quota_purchase`: the conditional update under the row lock.
                    let mut s = self.clone();
                    let pg = &mut s.regions[r].pg;
                    if pg.available() >= 1 {
                        pg.sold += 1;
                        s.buyers[b] = Buyer::Order(OrderStatus::Pending);
                    } else {
                        s.buyers[b] = Buyer::Idle;
                        s.admitted_refused = true;
                    }
                    out.push((Action::Commit(bi), s));
                }
                Buyer::Order(status) => {
                    for change in [Change::Pay, Change::Cancel, Change::Expire] {
                        // Any live process (or the sweep) may run it; the order row decides.
                        if !self.regions[r].procs.iter().any(|p| p.up) {
                            break;
                        }
                        let Ok(next) = status.after(change) else {
                            break;
                        };
                        let mut s = self.clone();
                        // Cancelled and expired behave alike from here on: one state for both.
                        let next = if next.returns_units() {
                            OrderStatus::Cancelled
                        } else {
                            next
                        };
                        s.buyers[b] = Buyer::Order(next);
                        if next.returns_units() {
                            s.regions[r].pg.returned += 1;
                        }
                        out.push((Action::Close(bi, change), s));
                    }
                }
            }
        }
    }
}

/// Adds a step unless it changes nothing.
fn push(out: &mut Vec<(Action, State)>, from: &State, a: Action, to: State) {
    if &to != from {
        out.push((a, to));
    }
}

impl State {
    /// The representative of `self` up to symmetry: a region's two processes are
    /// interchangeable (sorted, and the purchases they serve renumbered), and so are two buyers
    /// with the same home (sorted). Every invariant is symmetric, so checking one state per
    /// class checks them all; a trace's process and buyer numbers are those of the
    /// representatives along it.
    pub(super) fn canonical(mut self, bound: &Bound) -> State {
        for r in 0..REGIONS {
            let mut order: [usize; PROCS] = std::array::from_fn(|p| p);
            let procs = self.regions[r].procs;
            // Sort by the process state, then by the purchases it serves.
            let serving = |p: usize| {
                self.buyers
                    .iter()
                    .zip(&bound.homes)
                    .filter(|(b, &h)| {
                        usize::from(h) == r && **b == (Buyer::Admitted { proc: idx(p) })
                    })
                    .count()
            };
            order.sort_by_key(|&p| (procs[p], serving(p)));
            if order.iter().enumerate().all(|(i, &p)| i == p) {
                continue;
            }
            self.regions[r].procs = std::array::from_fn(|i| procs[order[i]]);
            for (b, home) in self.buyers.iter_mut().zip(&bound.homes) {
                if let (true, Buyer::Admitted { proc }) = (usize::from(*home) == r, *b) {
                    let new = order
                        .iter()
                        .position(|&p| p == usize::from(proc))
                        .expect("a process");
                    *b = Buyer::Admitted { proc: idx(new) };
                }
            }
        }
        // Buyers of one home are interchangeable: sort each home's slots.
        for home in 0..REGIONS {
            let slots: Vec<usize> = (0..self.buyers.len())
                .filter(|&b| usize::from(bound.homes[b]) == home)
                .collect();
            let mut values: Vec<Buyer> = slots.iter().map(|&b| self.buyers[b]).collect();
            values.sort_by_key(|b| match b {
                Buyer::Idle => (0, 0),
                Buyer::Admitted { proc } => (1, *proc),
                Buyer::Order(st) => (
                    2,
                    idx(OrderStatus::ALL.iter().position(|x| x == st).unwrap_or(0)),
                ),
            });
            for (&b, v) in slots.iter().zip(values) {
                self.buyers[b] = v;
            }
        }
        self
    }
}

/// An index as the `u8` the actions carry (there are at most a handful).
fn idx(i: usize) -> u8 {
    u8::try_from(i).expect("a handful of regions, processes and buyers")
}
