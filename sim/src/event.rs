//! Everything that can happen in the simulated world, as one enum: the engine pops one event
//! at a time, in time order, and hands it to the part it concerns. Messages between parts are
//! events too, delivered after their link's delay, so every delay and every reordering a real
//! network allows is explicit here.

use std::rc::Rc;

use quota_shared::model::{Ledger, Movable, RegionReport, ReleasePublished, ReleaseRequest};
use quota_shared::policy::Move;
use quota_shared::round::LedgerSnapshot;

/// One event.
#[derive(Debug, Clone)]
pub(crate) enum Event {
    /// The next buyer of the schedule arrives.
    Arrival,
    /// A buyer's request reaches region `region`.
    Request {
        /// Buyer index.
        buyer: u32,
        /// The region serving it.
        region: u16,
    },
    /// A region's answer reaches a buyer.
    Answer {
        /// Buyer index.
        buyer: u32,
        /// HTTP status.
        status: u16,
        /// A 503 meaning `awaiting_stock` (else `unavailable`).
        awaiting: bool,
    },
    /// A buyer's back-off is over: it tries again.
    Retry {
        /// Buyer index.
        buyer: u32,
    },
    /// A purchase in service at a region finishes.
    ServiceDone {
        /// Region.
        region: u16,
        /// The process incarnation that started it (a crash voids it).
        life: u32,
        /// Service slot.
        slot: u32,
    },
    /// A region's reconciler pass after a grant was applied.
    Reconcile {
        /// Region.
        region: u16,
        /// Process incarnation.
        life: u32,
    },
    /// A buyer waiting in a region's line for stock reaches its deadline.
    WaitDeadline {
        /// Region.
        region: u16,
        /// Process incarnation.
        life: u32,
        /// Buyer index.
        buyer: u32,
    },
    /// A region's periodic tick: report to etcd, reconcile, retry pending releases.
    RegionTick {
        /// Region.
        region: u16,
        /// Process incarnation.
        life: u32,
    },
    /// etcd's watch delivers something to a region's session.
    ToRegion {
        /// Region.
        region: u16,
        /// The session it was sent to (a newer session ignores it: it re-read everything).
        session: u32,
        /// What.
        msg: RegionMsg,
    },
    /// Something reaches etcd.
    ToEtcd(EtcdMsg),
    /// etcd answers the coordinator instance of leader epoch `epoch`.
    ToCoord {
        /// The leader epoch it was sent to.
        epoch: u32,
        /// What.
        msg: CoordMsg,
    },
    /// The leader's periodic rebalance round.
    RoundTick,
    /// Record stock per region for the chart.
    Sample,
    /// A scheduled fault step.
    Fault(FaultStep),
}

/// etcd → region (watch events and the session's initial read).
#[derive(Debug, Clone)]
pub(crate) enum RegionMsg {
    /// The cumulative grant `G`.
    Grant(i64),
    /// A release request.
    Release(ReleaseRequest),
    /// Movable stock.
    Movable(Rc<Movable>),
    /// A new session's full read: `G`, the outstanding request, movable stock.
    Resync {
        /// `G`.
        grant: i64,
        /// The request under the region's key, if any.
        request: Option<ReleaseRequest>,
        /// Movable stock, if published.
        movable: Option<Rc<Movable>>,
    },
}

/// Anything → etcd.
#[derive(Debug, Clone)]
pub(crate) enum EtcdMsg {
    /// A region's report (on its lease: also the keepalive).
    Report {
        /// Region.
        region: u16,
        /// Session that sent it.
        session: u32,
        /// The report.
        report: RegionReport,
    },
    /// A region publishes `R` (only ever raised).
    PublishRelease {
        /// Region.
        region: u16,
        /// The value.
        value: ReleasePublished,
    },
    /// A region starts a session (registers, then reads everything).
    SessionStart {
        /// Region.
        region: u16,
        /// The new session.
        session: u32,
    },
    /// The leader reads one product's snapshot.
    Read {
        /// Leader epoch (the fence).
        epoch: u32,
    },
    /// The leader's fenced compare-and-swap write of a round.
    Write {
        /// Leader epoch (the fence).
        epoch: u32,
        /// What to write.
        write: Box<LedgerWrite>,
    },
    /// The leader publishes movable stock.
    PutMovable {
        /// Leader epoch.
        epoch: u32,
        /// The value.
        movable: Rc<Movable>,
    },
}

/// One round's write: the new ledger and release requests, guarded by the ledger revision read.
#[derive(Debug, Clone)]
pub(crate) struct LedgerWrite {
    /// The ledger revision the round read (the compare of the compare-and-swap).
    pub(crate) revision: i64,
    /// The new ledger.
    pub(crate) ledger: Ledger,
    /// New release requests by region index.
    pub(crate) requests: Vec<(u16, ReleaseRequest)>,
    /// The moves kept (for units-moved accounting).
    pub(crate) moves: Vec<Move>,
}

/// etcd → coordinator.
#[derive(Debug, Clone)]
pub(crate) enum CoordMsg {
    /// The snapshot read.
    Snapshot(Box<LedgerSnapshot>),
    /// The outcome of a write (false: compare or fence failed).
    Written(bool),
    /// A region published a release (the leader's watch): run a round now.
    ReleaseLanded,
}

/// One step of a fault.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum FaultStep {
    /// A region's node dies.
    Crash(u16),
    /// It comes back.
    Restart(u16),
    /// Its etcd link breaks.
    Partition(u16),
    /// Its etcd link heals.
    Heal(u16),
    /// The leader dies.
    Failover,
    /// Its etcd link slows by this many µs.
    SpikeOn(u16, u64),
    /// The spike ends.
    SpikeOff(u16, u64),
}

impl Event {
    /// The region this event is addressed to, if any.
    pub(crate) fn region(&self) -> Option<u16> {
        match self {
            Event::Request { region, .. }
            | Event::ServiceDone { region, .. }
            | Event::Reconcile { region, .. }
            | Event::WaitDeadline { region, .. }
            | Event::RegionTick { region, .. }
            | Event::ToRegion { region, .. } => Some(*region),
            Event::Arrival
            | Event::Answer { .. }
            | Event::Retry { .. }
            | Event::ToEtcd(_)
            | Event::ToCoord { .. }
            | Event::RoundTick
            | Event::Sample
            | Event::Fault(_) => None,
        }
    }

    /// A short label and up to two numbers for the trace (cheap: no formatting per event).
    pub(crate) fn trace(&self) -> (&'static str, i64, i64) {
        match self {
            Event::Arrival => ("arrival", -1, -1),
            Event::Request { buyer, region } => ("request", i64::from(*region), i64::from(*buyer)),
            Event::Answer { buyer, status, .. } => {
                ("answer", i64::from(*status), i64::from(*buyer))
            }
            Event::Retry { buyer } => ("retry", -1, i64::from(*buyer)),
            Event::ServiceDone { region, slot, .. } => {
                ("service-done", i64::from(*region), i64::from(*slot))
            }
            Event::Reconcile { region, .. } => ("reconcile", i64::from(*region), -1),
            Event::WaitDeadline { region, buyer, .. } => {
                ("wait-deadline", i64::from(*region), i64::from(*buyer))
            }
            Event::RegionTick { region, .. } => ("region-tick", i64::from(*region), -1),
            Event::ToRegion { region, msg, .. } => match msg {
                RegionMsg::Grant(g) => ("grant-seen", i64::from(*region), *g),
                RegionMsg::Release(r) => ("release-request", i64::from(*region), r.amount),
                RegionMsg::Movable(m) => ("movable-seen", i64::from(*region), m.pool),
                RegionMsg::Resync { grant, .. } => ("resync", i64::from(*region), *grant),
            },
            Event::ToEtcd(m) => match m {
                EtcdMsg::Report { region, report, .. } => {
                    ("report", i64::from(*region), report.available)
                }
                EtcdMsg::PublishRelease { region, value } => {
                    ("publish-R", i64::from(*region), value.released)
                }
                EtcdMsg::SessionStart { region, .. } => ("session-start", i64::from(*region), -1),
                EtcdMsg::Read { epoch } => ("leader-read", i64::from(*epoch), -1),
                EtcdMsg::Write { epoch, write } => {
                    ("leader-write", i64::from(*epoch), write.moves.len() as i64)
                }
                EtcdMsg::PutMovable { movable, .. } => ("put-movable", -1, movable.pool),
            },
            Event::ToCoord { epoch, msg } => match msg {
                CoordMsg::Snapshot(s) => ("snapshot", i64::from(*epoch), s.revision),
                CoordMsg::Written(ok) => ("written", i64::from(*epoch), i64::from(*ok)),
                CoordMsg::ReleaseLanded => ("release-landed", i64::from(*epoch), -1),
            },
            Event::RoundTick => ("round-tick", -1, -1),
            Event::Sample => ("sample", -1, -1),
            Event::Fault(step) => match step {
                FaultStep::Crash(r) => ("fault-crash", i64::from(*r), -1),
                FaultStep::Restart(r) => ("fault-restart", i64::from(*r), -1),
                FaultStep::Partition(r) => ("fault-partition", i64::from(*r), -1),
                FaultStep::Heal(r) => ("fault-heal", i64::from(*r), -1),
                FaultStep::Failover => ("fault-failover", -1, -1),
                FaultStep::SpikeOn(r, us) => ("fault-spike-on", i64::from(*r), *us as i64),
                FaultStep::SpikeOff(r, us) => ("fault-spike-off", i64::from(*r), *us as i64),
            },
        }
    }
}
