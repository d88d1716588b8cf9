//! etcd as a linearizable store at the hub: each message is applied atomically when it
//! arrives, in arrival order. It holds what the real keys hold — the ledger (`G` per region,
//! policy, static split) and its revision, `R` per region, reports on each region's lease,
//! release requests, movable stock — and plays the watch: every change a region watches is
//! sent to the region's current session over its link.

use std::collections::BTreeSet;
use std::rc::Rc;

use quota_shared::model::{
    Ledger, Movable, ProductSpec, RegionReport, ReleasePublished, ReleaseRequest,
};
use quota_shared::policy::Move;
use quota_shared::round::LedgerSnapshot;

use crate::engine::{Ctx, Micros};
use crate::event::{CoordMsg, EtcdMsg, Event, LedgerWrite, RegionMsg};

/// The store.
pub(crate) struct Etcd {
    names: Vec<String>,
    spec: ProductSpec,
    ledger: Ledger,
    /// `G` per region index (mirrors `ledger.granted`, for the per-event invariant check).
    pub(crate) grants: Vec<i64>,
    /// `Σ (G − R)`, kept as they change.
    held: i64,
    /// `mod_revision` of the ledger key.
    revision: i64,
    /// `R` per region.
    pub(crate) published: Vec<ReleasePublished>,
    reports: Vec<Option<RegionReport>>,
    requests: Vec<Option<ReleaseRequest>>,
    /// Last keepalive per region (the lease lives `lease` after it).
    keepalive: Vec<Option<Micros>>,
    lease: Micros,
    /// Each region's current session (watch events go to it).
    sessions: Vec<u32>,
    movable: Option<Rc<Movable>>,
    /// The leader epoch whose fence is valid.
    pub(crate) leader_epoch: u32,
    /// Ledger and movable writes the coordinator made.
    pub(crate) writes: u64,
    /// Units granted after the initial split.
    pub(crate) units_moved: i64,
}

impl Etcd {
    /// The store as a sale starts: the initial ledger, every region registered and reporting.
    pub(crate) fn new(
        names: Vec<String>,
        spec: ProductSpec,
        ledger: Ledger,
        reports: Vec<RegionReport>,
        lease: Micros,
    ) -> Etcd {
        let n = names.len();
        let grants = names
            .iter()
            .map(|r| ledger.granted.get(r).copied().unwrap_or(0))
            .collect();
        let held = ledger.granted.values().sum();
        Etcd {
            held,
            spec,
            ledger,
            grants,
            revision: 1,
            published: vec![ReleasePublished::default(); n],
            reports: reports.into_iter().map(Some).collect(),
            requests: vec![None; n],
            keepalive: vec![Some(0); n],
            lease,
            sessions: vec![0; n],
            movable: None,
            leader_epoch: 0,
            writes: 0,
            units_moved: 0,
            names,
        }
    }

    /// `pool = total − Σ (G − R)` ([`quota_shared::ledger::pool`]'s arithmetic, with the sum
    /// kept as `G` and `R` change, so the per-event check costs nothing; the leader's rounds
    /// use the real function on their snapshot).
    pub(crate) fn pool(&self) -> i64 {
        self.ledger.total - self.held
    }

    fn alive(&self, r: usize, now: Micros) -> bool {
        self.keepalive[r].is_some_and(|k| now < k + self.lease)
    }

    /// The oracle's zero-delay perfect allocation: one unit from the pool to region `r`
    /// (false when the pool is empty).
    pub(crate) fn oracle_grant(&mut self, r: u16) -> bool {
        let r = usize::from(r);
        if self.pool() <= 0 {
            return false;
        }
        self.grants[r] += 1;
        self.held += 1;
        *self
            .ledger
            .granted
            .entry(self.names[r].clone())
            .or_insert(0) += 1;
        true
    }

    /// Applies one message.
    pub(crate) fn on_message(&mut self, ctx: &mut Ctx, msg: EtcdMsg) {
        match msg {
            EtcdMsg::Report {
                region,
                session,
                report,
            } => {
                let r = usize::from(region);
                // A report of an old session was sent on a lease that session no longer holds.
                if session == self.sessions[r] {
                    self.reports[r] = Some(report);
                    self.keepalive[r] = Some(ctx.now);
                }
            }
            EtcdMsg::PublishRelease { region, value } => {
                // The region's compare-and-swap: only a newer snapshot replaces the key.
                let cur = &mut self.published[usize::from(region)];
                if value.supersedes(cur) {
                    let landed = value.released > cur.released;
                    self.held -= value.released - cur.released;
                    *cur = value;
                    if landed {
                        // The leader's watch on the regions' releases.
                        let d = ctx.net.coord_etcd(&mut ctx.rng);
                        let epoch = self.leader_epoch;
                        ctx.after(
                            d,
                            Event::ToCoord {
                                epoch,
                                msg: CoordMsg::ReleaseLanded,
                            },
                        );
                    }
                }
            }
            EtcdMsg::SessionStart { region, session } => self.session_start(ctx, region, session),
            EtcdMsg::Read { epoch } => {
                let snap = Box::new(self.snapshot(ctx.now));
                let d = ctx.net.coord_etcd(&mut ctx.rng);
                ctx.after(
                    d,
                    Event::ToCoord {
                        epoch,
                        msg: CoordMsg::Snapshot(snap),
                    },
                );
            }
            EtcdMsg::Write { epoch, write } => {
                let ok = self.write(ctx, epoch, *write);
                let d = ctx.net.coord_etcd(&mut ctx.rng);
                ctx.after(
                    d,
                    Event::ToCoord {
                        epoch,
                        msg: CoordMsg::Written(ok),
                    },
                );
            }
            EtcdMsg::PutMovable { epoch, movable } => {
                if epoch == self.leader_epoch {
                    self.writes += 1;
                    self.movable = Some(Rc::clone(&movable));
                    for r in 0..self.names.len() {
                        self.watch(ctx, r, RegionMsg::Movable(Rc::clone(&movable)));
                    }
                }
            }
        }
    }

    /// Sends a watch event to region `r`'s current session (lost if its link is down).
    fn watch(&self, ctx: &mut Ctx, r: usize, msg: RegionMsg) {
        let region = r as u16;
        if let Some(d) = ctx.net.region_etcd(&mut ctx.rng, region) {
            let session = self.sessions[r];
            ctx.after(
                d,
                Event::ToRegion {
                    region,
                    session,
                    msg,
                },
            );
        }
    }

    fn session_start(&mut self, ctx: &mut Ctx, region: u16, session: u32) {
        let r = usize::from(region);
        self.sessions[r] = session;
        self.keepalive[r] = Some(ctx.now);
        let msg = RegionMsg::Resync {
            grant: self.grants[r],
            request: self.requests[r].clone(),
            movable: self.movable.clone(),
        };
        self.watch(ctx, r, msg);
    }

    /// The fenced compare-and-swap of a round: refused when the leader's fence is gone, the
    /// ledger changed since the read, or a `G` would go down.
    fn write(&mut self, ctx: &mut Ctx, epoch: u32, w: LedgerWrite) -> bool {
        if epoch != self.leader_epoch || w.revision != self.revision {
            return false;
        }
        let new: Vec<i64> = self
            .names
            .iter()
            .map(|n| w.ledger.granted.get(n).copied().unwrap_or(0))
            .collect();
        if new.iter().zip(&self.grants).any(|(n, o)| n < o) {
            return false;
        }
        self.writes += 1;
        self.revision += 1;
        self.ledger = w.ledger;
        for (r, &g) in new.iter().enumerate() {
            if g != self.grants[r] {
                self.held += g - self.grants[r];
                self.grants[r] = g;
                self.watch(ctx, r, RegionMsg::Grant(g));
            }
        }
        for (r, req) in w.requests {
            self.requests[usize::from(r)] = Some(req.clone());
            self.watch(ctx, usize::from(r), RegionMsg::Release(req));
        }
        self.units_moved += w
            .moves
            .iter()
            .filter_map(|m| match m {
                Move::Grant { units, .. } => Some(*units),
                Move::Release { .. } => None,
            })
            .sum::<i64>();
        true
    }

    /// The leader's read: what `coordinator::store::read` assembles from the keys.
    fn snapshot(&self, now: Micros) -> LedgerSnapshot {
        let alive: BTreeSet<String> = (0..self.names.len())
            .filter(|&r| self.alive(r, now))
            .map(|r| self.names[r].clone())
            .collect();
        let by_name = |r: usize| self.names[r].clone();
        LedgerSnapshot {
            spec: self.spec.clone(),
            ledger: self.ledger.clone(),
            revision: self.revision,
            published: (0..self.names.len())
                .filter(|&r| self.published[r] != ReleasePublished::default())
                .map(|r| (by_name(r), self.published[r].clone()))
                .collect(),
            reports: (0..self.names.len())
                .filter(|&r| self.alive(r, now))
                .filter_map(|r| self.reports[r].clone().map(|rep| (by_name(r), rep)))
                .collect(),
            requests: (0..self.names.len())
                .filter_map(|r| self.requests[r].clone().map(|q| (by_name(r), q)))
                .collect(),
            alive,
            known: self.names.iter().cloned().collect(),
            draining: BTreeSet::new(),
            etcd_revision: self.revision,
            coordinator_writes: i64::try_from(self.writes).unwrap_or(i64::MAX),
        }
    }

    /// Region index by name (the round speaks names; the model indices).
    pub(crate) fn index(&self, name: &str) -> Option<u16> {
        self.names.iter().position(|n| n == name).map(|i| i as u16)
    }
}
