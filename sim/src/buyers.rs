//! The buyers: the load generator's model ([`quota_shared::buyers`]) in virtual time. The same
//! open-loop arrival schedule, the same smooth weighted region choice (and mid-sale shift),
//! the same retry rule and jittered back-off. Like `quota-loadgen --stop-on-sellout`, the run
//! stops at sell-out: no new arrivals, no new retries; a buyer waiting to retry keeps its last
//! answer.

use std::time::Duration;

use quota_shared::buyers::{backoff, is_retryable, ArrivalSchedule, RegionPicker};
use quota_shared::quality::{AnswerRecord, BuyerRecord, FinalAnswer};

use crate::engine::{secs, us, Ctx, Micros};
use crate::event::Event;

/// One buyer's progress.
#[derive(Debug, Clone, Copy)]
struct Buyer {
    home: u16,
    target: u16,
    arrived: Micros,
    sent: Micros,
    tries: u32,
    status: u16,
    awaiting: bool,
    answered: Micros,
    done: bool,
}

/// Every buyer of one run.
pub(crate) struct Buyers {
    schedule: ArrivalSchedule,
    picker: RegionPicker,
    /// Every buyer goes to this region (the central counter), else to its own.
    central: Option<u16>,
    retries: u32,
    backoff: Duration,
    next: u64,
    buyers: Vec<Buyer>,
    answers: Vec<AnswerRecord>,
    open: u64,
    stopped: bool,
    arrivals_done: bool,
}

impl Buyers {
    pub(crate) fn new(
        schedule: ArrivalSchedule,
        picker: RegionPicker,
        central: Option<u16>,
        retries: u32,
        backoff_ms: f64,
    ) -> Buyers {
        Buyers {
            schedule,
            picker,
            central,
            retries,
            backoff: Duration::from_micros(us(backoff_ms)),
            next: 0,
            buyers: Vec::new(),
            answers: Vec::new(),
            open: 0,
            stopped: false,
            arrivals_done: false,
        }
    }

    /// Schedules the first arrival.
    pub(crate) fn begin(&mut self, ctx: &mut Ctx) {
        self.schedule_next(ctx);
    }

    fn schedule_next(&mut self, ctx: &mut Ctx) {
        match self.schedule.offset(self.next) {
            Some(t) if !self.stopped => ctx.at(us(t * 1e3), Event::Arrival),
            _ => self.arrivals_done = true,
        }
    }

    /// The next scheduled buyer arrives and sends its first request.
    pub(crate) fn on_arrival(&mut self, ctx: &mut Ctx) {
        if self.stopped {
            self.arrivals_done = true;
            return;
        }
        let t = self.schedule.offset(self.next).unwrap_or(0.0);
        let home = self.picker.pick(t) as u16;
        let id = self.buyers.len() as u32;
        self.buyers.push(Buyer {
            home,
            target: self.central.unwrap_or(home),
            arrived: ctx.now,
            sent: ctx.now,
            tries: 0,
            status: 0,
            awaiting: false,
            answered: ctx.now,
            done: false,
        });
        self.open += 1;
        self.send(ctx, id);
        self.next += 1;
        self.schedule_next(ctx);
    }

    fn send(&mut self, ctx: &mut Ctx, id: u32) {
        let b = &mut self.buyers[id as usize];
        b.sent = ctx.now;
        let d = ctx.net.buyer(&mut ctx.rng, b.home, b.target);
        ctx.after(
            d,
            Event::Request {
                buyer: id,
                region: b.target,
            },
        );
    }

    /// The home region of a buyer (the answer travels back to it).
    pub(crate) fn home(&self, id: u32) -> u16 {
        self.buyers[id as usize].home
    }

    /// An answer reaches buyer `id`: record it, then retry or finish.
    pub(crate) fn on_answer(&mut self, ctx: &mut Ctx, id: u32, status: u16, awaiting: bool) {
        let b = &mut self.buyers[id as usize];
        b.status = status;
        b.awaiting = awaiting;
        b.answered = ctx.now;
        self.answers.push(AnswerRecord {
            region: usize::from(b.home),
            sent_s: secs(b.sent),
            answered_s: secs(ctx.now),
            status,
            awaiting_stock: awaiting,
        });
        if is_retryable(status) && b.tries < self.retries && !self.stopped {
            b.tries += 1;
            let pause = backoff(self.backoff, ctx.rng.unit());
            ctx.after(pause.as_micros() as Micros, Event::Retry { buyer: id });
        } else {
            self.finish(id);
        }
    }

    /// A back-off ended: try again, unless the run stopped (then the last answer stands).
    pub(crate) fn on_retry(&mut self, ctx: &mut Ctx, id: u32) {
        if self.stopped {
            self.finish(id);
        } else {
            self.send(ctx, id);
        }
    }

    fn finish(&mut self, id: u32) {
        let b = &mut self.buyers[id as usize];
        if !b.done {
            b.done = true;
            self.open -= 1;
        }
    }

    /// Sell-out: no more arrivals or retries.
    pub(crate) fn stop(&mut self) {
        self.stopped = true;
    }

    /// Every buyer has its final answer and no more will come.
    pub(crate) fn finished(&self) -> bool {
        self.arrivals_done && self.open == 0
    }

    /// The records the quality measures are computed from.
    pub(crate) fn records(&self) -> (Vec<BuyerRecord>, &[AnswerRecord]) {
        let buyers = self
            .buyers
            .iter()
            .map(|b| BuyerRecord {
                region: usize::from(b.home),
                arrived_s: secs(b.arrived),
                answered_s: secs(b.answered),
                answer: FinalAnswer::from_status(b.status, b.awaiting),
                attempts: b.tries + 1,
            })
            .collect();
        (buyers, &self.answers)
    }

    /// When the last final answer arrived.
    pub(crate) fn last_answer(&self) -> Micros {
        self.buyers.iter().map(|b| b.answered).max().unwrap_or(0)
    }
}
