//! The leader coordinator: every round period it reads a snapshot from etcd, publishes movable
//! stock when it changed (or a refresh period passed), plans with the real policy and writes
//! the round with a fenced compare-and-swap — `coordinator::rebalance::round` step for step,
//! calling the same pure functions ([`quota_shared::round`], [`quota_shared::policy::plan`]).
//! A failover voids the leader's fence and leaves the sale leaderless for a lease TTL.

use std::rc::Rc;

use quota_shared::model::Movable;
use quota_shared::policy::{plan, PolicyParams};
use quota_shared::round::{apply_moves, drain_moves, movable, region_states, LedgerSnapshot};

use crate::engine::{Ctx, Micros};
use crate::event::{CoordMsg, EtcdMsg, Event, LedgerWrite};
use crate::model::etcd::Etcd;

/// The leader (whichever instance currently holds the lease).
pub(crate) struct Coordinator {
    params: PolicyParams,
    round: Micros,
    movable_refresh: Micros,
    lease: Micros,
    /// The current leader's epoch (its fence).
    epoch: u32,
    /// No leader before this instant (after a failover).
    leads_from: Micros,
    /// A round is between its read and its write's answer.
    busy: bool,
    /// Last movable published by this leader, and when.
    last_movable: Option<(Movable, Micros)>,
    /// Release request ids handed out (a counter keeps runs deterministic).
    requests: u64,
    /// Run a round the moment a region publishes a release (the leader's watch).
    round_on_release: bool,
    /// A release landed while a round was under way: run another when it ends.
    again: bool,
}

impl Coordinator {
    pub(crate) fn new(
        params: PolicyParams,
        round: Micros,
        movable_refresh: Micros,
        lease: Micros,
        round_on_release: bool,
    ) -> Coordinator {
        Coordinator {
            params,
            round: round.max(1),
            movable_refresh,
            lease,
            epoch: 0,
            leads_from: 0,
            busy: false,
            last_movable: None,
            requests: 0,
            round_on_release,
            again: false,
        }
    }

    /// The periodic tick: start a round unless one is under way or nobody leads.
    pub(crate) fn on_tick(&mut self, ctx: &mut Ctx) {
        ctx.after(self.round, Event::RoundTick);
        if ctx.now >= self.leads_from && !self.busy {
            self.read(ctx);
        }
    }

    fn read(&mut self, ctx: &mut Ctx) {
        self.busy = true;
        let d = ctx.net.coord_etcd(&mut ctx.rng);
        ctx.after(d, Event::ToEtcd(EtcdMsg::Read { epoch: self.epoch }));
    }

    /// etcd answered the leader of `epoch`.
    pub(crate) fn on_message(&mut self, ctx: &mut Ctx, etcd: &Etcd, epoch: u32, msg: CoordMsg) {
        if epoch != self.epoch {
            return; // addressed to a dead leader
        }
        match msg {
            CoordMsg::Snapshot(snap) => self.decide(ctx, etcd, &snap),
            CoordMsg::Written(true) => self.done(ctx),
            // The compare failed: re-read and recompute at once (the CAS loop).
            CoordMsg::Written(false) => self.read(ctx),
            CoordMsg::ReleaseLanded => {
                if !self.round_on_release || ctx.now < self.leads_from {
                    return;
                }
                if self.busy {
                    self.again = true;
                } else {
                    self.read(ctx);
                }
            }
        }
    }

    /// A round ended; run the one a landed release asked for meanwhile.
    fn done(&mut self, ctx: &mut Ctx) {
        self.busy = false;
        if std::mem::take(&mut self.again) {
            self.read(ctx);
        }
    }

    /// One round on a snapshot: the pure decisions, then the writes.
    fn decide(&mut self, ctx: &mut Ctx, etcd: &Etcd, snap: &LedgerSnapshot) {
        let states = region_states(snap);
        self.publish_movable(ctx, movable(snap, &states, ctx.now_ms()));
        let mut moves = plan(snap.ledger.policy, &self.params, snap.pool(), &states);
        moves.extend(drain_moves(snap, &states));
        if moves.is_empty() {
            self.done(ctx);
            return;
        }
        let requests = &mut self.requests;
        let (ledger, reqs, kept) = apply_moves(snap, moves, || {
            *requests += 1;
            format!("sim-{requests}")
        });
        if kept.is_empty() {
            self.done(ctx);
            return;
        }
        let requests = reqs
            .into_iter()
            .filter_map(|(name, req)| etcd.index(&name).map(|r| (r, req)))
            .collect();
        let write = Box::new(LedgerWrite {
            revision: snap.revision,
            ledger,
            requests,
            moves: kept,
        });
        let d = ctx.net.coord_etcd(&mut ctx.rng);
        ctx.after(
            d,
            Event::ToEtcd(EtcdMsg::Write {
                epoch: self.epoch,
                write,
            }),
        );
    }

    /// Publishes movable stock when it changed or the refresh period passed.
    fn publish_movable(&mut self, ctx: &mut Ctx, mut m: Movable) {
        if let Some((prev, at)) = &self.last_movable {
            let stamp = m.at_ms;
            m.at_ms = prev.at_ms;
            if *prev == m && ctx.now < at + self.movable_refresh {
                return;
            }
            m.at_ms = stamp;
        }
        self.last_movable = Some((m.clone(), ctx.now));
        let d = ctx.net.coord_etcd(&mut ctx.rng);
        ctx.after(
            d,
            Event::ToEtcd(EtcdMsg::PutMovable {
                epoch: self.epoch,
                movable: Rc::new(m),
            }),
        );
    }

    /// The leader dies: its fence is void at once (etcd deletes the election key when its
    /// lease expires; modelled as immediately, the safe side), and a standby leads after the
    /// lease TTL, starting from etcd alone.
    pub(crate) fn failover(&mut self, ctx: &Ctx, etcd: &mut Etcd) {
        self.epoch += 1;
        etcd.leader_epoch = self.epoch;
        self.leads_from = ctx.now + self.lease;
        self.busy = false;
        self.last_movable = None;
    }
}
