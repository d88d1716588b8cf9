//! One region: a sell path (a capacity of purchases in service, a FIFO queue behind it, a
//! service time), its Postgres truth (`g`, `rel`, `sold`, the handled release ids — what
//! survives a crash) and its process state (Redis admission tokens and in-flight purchases,
//! the availability rule, the demand estimate — what a crash loses).
//!
//! The decisions are the real ones: the 410/503 answer is
//! [`AvailabilityState`](quota_shared::availability::AvailabilityState)'s, grants and
//! releases go through [`quota_shared::region_steps`], the reconciler's stock through
//! [`quota_shared::reconcile::target_stock`], the demand through
//! [`DemandEstimate`](quota_shared::demand::DemandEstimate).

use std::collections::{HashMap, HashSet, VecDeque};
use std::time::{Duration, Instant};

use quota_shared::availability::{Ask, Availability, AvailabilityState};
use quota_shared::demand::{with_waiting, DemandEstimate};
use quota_shared::model::{RegionReport, ReleasePublished, ReleaseRequest};
use quota_shared::reconcile::target_stock;
use quota_shared::region_steps::{apply_grant, release_step, release_taken, ReleaseStep};

use crate::engine::{Ctx, Micros};
use crate::event::{EtcdMsg, Event, RegionMsg};
use crate::model::etcd::Etcd;

/// A region's timing knobs.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Timing {
    pub(crate) capacity: usize,
    pub(crate) queue: usize,
    pub(crate) service: Micros,
    pub(crate) refusal: Micros,
    pub(crate) reconcile: Micros,
    pub(crate) tick: Micros,
    /// Longest wait in line for stock on its way (0: answer 503 at once).
    pub(crate) await_stock: Micros,
}

/// A purchase in service.
#[derive(Debug, Clone, Copy)]
struct Job {
    buyer: u32,
    home: u16,
    /// Admitted by Redis (holds a token): commits at the end of service.
    admitted: bool,
    /// The refusal to answer when not admitted.
    status: u16,
    awaiting: bool,
}

/// What a finished purchase answers: (buyer, home region, status, awaiting stock).
pub(crate) type Reply = (u32, u16, u16, bool);

/// One region.
pub(crate) struct Region {
    pub(crate) idx: u16,
    pub(crate) name: String,
    t: Timing,
    // --- Postgres: survives crashes.
    /// `g`, grants applied.
    pub(crate) g: i64,
    /// `rel`, units released.
    pub(crate) rel: i64,
    /// Units sold.
    pub(crate) sold: i64,
    handled: HashSet<String>,
    last_request: Option<String>,
    // --- The process: lost on a crash.
    pub(crate) up: bool,
    /// Process incarnation: events of an earlier one are void.
    pub(crate) life: u32,
    /// etcd session: watch events of an earlier one are ignored.
    pub(crate) session: u32,
    /// Redis admission tokens.
    pub(crate) tokens: i64,
    /// Units admitted by Redis, not yet committed.
    pub(crate) in_flight: i64,
    avail: AvailabilityState,
    /// `g` as the reconciler last read it.
    g_read: i64,
    attempts: u64,
    demand: DemandEstimate,
    /// An arbitrary origin for the demand estimate's `Instant`s: only differences matter.
    origin: Instant,
    slots: Vec<Option<Job>>,
    free: Vec<u32>,
    queue: VecDeque<(u32, u16)>,
    /// The wait room: buyers waiting, in arrival order, for stock on its way. Entries whose
    /// buyer is no longer in `waiting_ids` timed out (removed lazily).
    waiting: VecDeque<(u32, u16)>,
    waiting_ids: HashMap<u32, u16>,
    /// Answers produced outside the request path (the wait room), for the world to send.
    pub(crate) outbox: Vec<Reply>,
}

impl Region {
    /// A region holding `granted` units, applied and admitted before the sale starts.
    pub(crate) fn new(idx: u16, name: String, t: Timing, granted: i64, origin: Instant) -> Region {
        let mut avail = AvailabilityState::new();
        avail.reconciled(granted, granted);
        Region {
            idx,
            name,
            t,
            g: granted,
            rel: 0,
            sold: 0,
            handled: HashSet::new(),
            last_request: None,
            up: true,
            life: 0,
            session: 0,
            tokens: granted,
            in_flight: 0,
            avail,
            g_read: granted,
            attempts: 0,
            demand: DemandEstimate::new(0, origin),
            origin,
            slots: vec![None; t.capacity],
            free: (0..t.capacity as u32).rev().collect(),
            queue: VecDeque::new(),
            waiting: VecDeque::new(),
            waiting_ids: HashMap::new(),
            outbox: Vec::new(),
        }
    }

    /// `g − rel − sold`.
    pub(crate) fn available(&self) -> i64 {
        self.g - self.rel - self.sold
    }

    /// What the region reports now.
    pub(crate) fn report(&self, at_ms: i64, demand: f64) -> RegionReport {
        RegionReport {
            granted: self.g,
            released: self.rel,
            sold: self.sold,
            returned: 0,
            available: self.available(),
            demand,
            // Requests are handled the moment they arrive: none waits.
            release_in_flight: 0,
            at_ms,
        }
    }

    fn instant(&self, now: Micros) -> Instant {
        self.origin + Duration::from_micros(now)
    }

    fn send_etcd(&self, ctx: &mut Ctx, msg: EtcdMsg) {
        if let Some(d) = ctx.net.region_etcd(&mut ctx.rng, self.idx) {
            ctx.after(d, Event::ToEtcd(msg));
        }
    }

    // --- The sell path --------------------------------------------------------------------

    /// A purchase arrives. `oracle`: the oracle design's zero-delay allocation. Returns an
    /// immediate answer when the region cannot take it (down: 503 from the load balancer;
    /// queue full: 429).
    pub(crate) fn on_request(
        &mut self,
        ctx: &mut Ctx,
        buyer: u32,
        home: u16,
        oracle: Option<&mut Etcd>,
    ) -> Option<Reply> {
        if !self.up {
            return Some((buyer, home, 503, false));
        }
        self.attempts += 1;
        if self.free.is_empty() {
            if self.queue.len() >= self.t.queue {
                return Some((buyer, home, 429, false));
            }
            self.queue.push_back((buyer, home));
            return None;
        }
        self.start(ctx, buyer, home, oracle);
        None
    }

    /// Takes a purchase into service: the availability gate, then Redis admission.
    fn start(&mut self, ctx: &mut Ctx, buyer: u32, home: u16, oracle: Option<&mut Etcd>) {
        // While anybody waits, newcomers queue behind them (first come, first served).
        if self.t.await_stock > 0 && !self.waiting_ids.is_empty() {
            self.enter_wait_room(ctx, buyer, home);
            return;
        }
        self.serve(ctx, buyer, home, oracle);
    }

    /// Takes a purchase into service (its turn has come).
    fn serve(&mut self, ctx: &mut Ctx, buyer: u32, home: u16, oracle: Option<&mut Etcd>) {
        if let Some(etcd) = oracle {
            if self.tokens < 1 && etcd.oracle_grant(self.idx) {
                self.g = apply_grant(self.g, self.g + 1).after;
                self.tokens += 1;
                self.avail.stock_observed(self.tokens);
            }
        }
        let now_ms = ctx.now_ms();
        let mut job = Job {
            buyer,
            home,
            admitted: false,
            status: 0,
            awaiting: false,
        };
        let gate = self.avail.answer(Ask::BeforeAdmission, now_ms, &self.name);
        let refusal = if gate != Availability::Open {
            Some(gate)
        } else if self.tokens < 1 {
            self.avail.redis_empty();
            Some(self.avail.answer(Ask::ShortHere, now_ms, &self.name))
        } else {
            self.tokens -= 1;
            self.in_flight += 1;
            if self.tokens == 0 {
                self.avail.redis_empty();
            }
            job.admitted = true;
            None
        };
        if refusal == Some(Availability::AwaitingStock) && self.t.await_stock > 0 {
            // Out of stock here for now: wait in line instead of hearing 503.
            self.enter_wait_room(ctx, buyer, home);
            return;
        }
        let service = match refusal {
            Some(a) => {
                (job.status, job.awaiting) = refusal_status(a);
                self.t.refusal
            }
            None => spread(ctx, self.t.service),
        };
        let slot = self.free.pop().expect("start is called with a free slot");
        self.slots[slot as usize] = Some(job);
        ctx.after(
            service,
            Event::ServiceDone {
                region: self.idx,
                life: self.life,
                slot,
            },
        );
    }

    // --- The wait room (`region-node/src/waitroom.rs`) ----------------------------------

    fn enter_wait_room(&mut self, ctx: &mut Ctx, buyer: u32, home: u16) {
        self.waiting.push_back((buyer, home));
        self.waiting_ids.insert(buyer, home);
        ctx.after(
            self.t.await_stock,
            Event::WaitDeadline {
                region: self.idx,
                life: self.life,
                buyer,
            },
        );
    }

    /// Serves the line in arrival order while there is stock; once nothing can come any more
    /// (the availability rule says sold out), everyone still waiting hears 410.
    pub(crate) fn serve_waiters(&mut self, ctx: &mut Ctx) {
        if !self.up {
            return;
        }
        while let Some(&(buyer, home)) = self.waiting.front() {
            if !self.waiting_ids.contains_key(&buyer) {
                self.waiting.pop_front(); // timed out earlier
                continue;
            }
            if self.tokens >= 1 {
                if self.free.is_empty() {
                    return; // the sell path is full; the next finished purchase serves on
                }
                self.waiting.pop_front();
                self.waiting_ids.remove(&buyer);
                self.serve(ctx, buyer, home, None);
                continue;
            }
            let now_ms = ctx.now_ms();
            if self.avail.answer(Ask::ShortHere, now_ms, &self.name) == Availability::SoldOut {
                self.waiting.pop_front();
                self.waiting_ids.remove(&buyer);
                self.outbox.push((buyer, home, 410, false));
                continue;
            }
            return;
        }
    }

    /// A waiting buyer's deadline: still in line, it hears 503 awaiting_stock.
    pub(crate) fn wait_deadline(&mut self, buyer: u32) {
        if let Some(home) = self.waiting_ids.remove(&buyer) {
            self.outbox.push((buyer, home, 503, true));
        }
    }

    /// A purchase leaves service: an admitted one commits under Postgres's check.
    pub(crate) fn on_service_done(
        &mut self,
        ctx: &mut Ctx,
        slot: u32,
        oracle: Option<&mut Etcd>,
    ) -> Option<Reply> {
        let job = self.slots[slot as usize].take()?;
        self.free.push(slot);
        let reply = if job.admitted {
            self.in_flight -= 1;
            if self.available() >= 1 {
                self.sold += 1;
                (job.buyer, job.home, 201, false)
            } else {
                let a = self.avail.answer(Ask::ShortHere, ctx.now_ms(), &self.name);
                let (s, w) = refusal_status(a);
                (job.buyer, job.home, s, w)
            }
        } else {
            (job.buyer, job.home, job.status, job.awaiting)
        };
        self.serve_waiters(ctx);
        if !self.free.is_empty() {
            if let Some((buyer, home)) = self.queue.pop_front() {
                self.start(ctx, buyer, home, oracle);
            }
        }
        Some(reply)
    }

    // --- The etcd session -----------------------------------------------------------------

    /// The periodic tick: reconcile, report (demand EWMA).
    pub(crate) fn on_tick(&mut self, ctx: &mut Ctx) {
        ctx.after(
            self.t.tick,
            Event::RegionTick {
                region: self.idx,
                life: self.life,
            },
        );
        self.reconcile();
        self.serve_waiters(ctx);
        let rate = with_waiting(
            self.demand.observe(self.attempts, self.instant(ctx.now)),
            self.waiting_ids.len(),
        );
        let report = self.report(ctx.now_ms(), rate);
        let msg = EtcdMsg::Report {
            region: self.idx,
            session: self.session,
            report,
        };
        self.send_etcd(ctx, msg);
    }

    /// A reconciliation pass: Redis stock := what Postgres can accept minus what is in flight.
    pub(crate) fn reconcile(&mut self) {
        self.tokens = target_stock(self.available(), self.in_flight);
        self.g_read = self.g;
        self.avail.reconciled(self.g, self.tokens);
    }

    /// A watch event of session `session`.
    pub(crate) fn on_message(&mut self, ctx: &mut Ctx, session: u32, msg: RegionMsg) {
        if !self.up || session != self.session {
            return;
        }
        match msg {
            RegionMsg::Grant(g) => self.on_grant(ctx, g),
            RegionMsg::Release(req) => self.handle_release(ctx, &req),
            RegionMsg::Movable(m) => self.avail.movable_seen((*m).clone(), ctx.now_ms()),
            RegionMsg::Resync {
                grant,
                request,
                movable,
            } => {
                self.on_grant(ctx, grant);
                if let Some(m) = movable {
                    self.avail.movable_seen((*m).clone(), ctx.now_ms());
                }
                // Every session starts by re-publishing `R` from Postgres.
                self.publish(ctx);
                if let Some(req) = request {
                    self.handle_release(ctx, &req);
                }
            }
        }
        self.serve_waiters(ctx);
    }

    /// `g := max(g, G)`, then poke the reconciler.
    fn on_grant(&mut self, ctx: &mut Ctx, grant: i64) {
        self.avail.grant_seen(grant, self.g_read);
        let step = apply_grant(self.g, grant);
        self.g = step.after;
        if step.added() > 0 {
            ctx.after(
                self.t.reconcile,
                Event::Reconcile {
                    region: self.idx,
                    life: self.life,
                },
            );
        }
    }

    /// Handles a release request exactly once, then publishes `R`.
    fn handle_release(&mut self, ctx: &mut Ctx, req: &ReleaseRequest) {
        let handled = self.handled.contains(&req.request_id);
        if let ReleaseStep::Take(want) = release_step(handled, req.amount, self.available()) {
            let taken = release_taken(want, self.tokens);
            self.tokens -= taken;
            self.rel += taken;
            self.handled.insert(req.request_id.clone());
            self.last_request = Some(req.request_id.clone());
        }
        self.publish(ctx);
    }

    fn publish(&self, ctx: &mut Ctx) {
        let value = ReleasePublished {
            released: self.rel,
            last_request: self.last_request.clone(),
            handled: i64::try_from(self.handled.len()).unwrap_or(i64::MAX),
        };
        self.send_etcd(
            ctx,
            EtcdMsg::PublishRelease {
                region: self.idx,
                value,
            },
        );
    }

    /// Starts a new etcd session (after a restart or a heal): register, then re-read.
    pub(crate) fn start_session(&mut self, ctx: &mut Ctx) {
        self.session += 1;
        let msg = EtcdMsg::SessionStart {
            region: self.idx,
            session: self.session,
        };
        self.send_etcd(ctx, msg);
    }

    // --- Crash and restart ----------------------------------------------------------------

    /// The node dies: every purchase in service or queued gets no answer (the load balancer
    /// answers 502), Redis and the process state are gone; Postgres keeps `g`, `rel`, `sold`.
    pub(crate) fn crash(&mut self) -> Vec<Reply> {
        let mut lost: Vec<Reply> = self
            .slots
            .iter_mut()
            .filter_map(Option::take)
            .map(|j| (j.buyer, j.home, 502, false))
            .collect();
        lost.extend(self.queue.drain(..).map(|(b, h)| (b, h, 502, false)));
        let waiting = &self.waiting_ids;
        lost.extend(
            self.waiting
                .drain(..)
                .filter(|(b, _)| waiting.contains_key(b))
                .map(|(b, h)| (b, h, 502, false)),
        );
        self.waiting_ids.clear();
        self.free = (0..self.t.capacity as u32).rev().collect();
        self.up = false;
        self.life += 1;
        self.session += 1;
        self.tokens = 0;
        self.in_flight = 0;
        lost
    }

    /// The node restarts: admission rebuilt from Postgres, demand from zero, a new session.
    pub(crate) fn restart(&mut self, ctx: &mut Ctx) {
        self.up = true;
        self.life += 1;
        self.avail = AvailabilityState::new();
        self.attempts = 0;
        self.demand = DemandEstimate::new(0, self.instant(ctx.now));
        self.reconcile();
        ctx.after(
            self.t.tick,
            Event::RegionTick {
                region: self.idx,
                life: self.life,
            },
        );
        self.start_session(ctx);
    }
}

/// The HTTP answer of a refusal.
fn refusal_status(a: Availability) -> (u16, bool) {
    match a {
        Availability::AwaitingStock => (503, true),
        Availability::SoldOut | Availability::Open => (410, false),
    }
}

/// A service time uniform in ±50 % of `mean`.
fn spread(ctx: &mut Ctx, mean: Micros) -> Micros {
    (mean as f64 * (0.5 + ctx.rng.unit())).round() as Micros
}
