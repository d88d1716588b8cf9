//! The discrete-event core: virtual time in integer microseconds, one seeded generator, and a
//! event queue ordered by (time, sequence number) ([`crate::queue`]). The sequence number breaks ties
//! in scheduling order, so two events at the same microsecond always run in the same order and
//! a seed replays exactly. No threads, no wall clock.

use std::collections::VecDeque;

use crate::event::Event;
use crate::model::net::Net;
use crate::queue::Calendar;
use crate::rng::Rng;

/// Virtual time, microseconds since the sale started.
pub(crate) type Micros = u64;

/// Microseconds from milliseconds (negative or non-finite: 0).
pub(crate) fn us(ms: f64) -> Micros {
    if ms.is_finite() && ms > 0.0 {
        (ms * 1_000.0).round() as Micros
    } else {
        0
    }
}

/// Seconds from microseconds, for reports.
pub(crate) fn secs(t: Micros) -> f64 {
    t as f64 / 1e6
}

/// What every part of the model may use while handling an event: the clock, the queue, the
/// generator and the network.
pub(crate) struct Ctx {
    /// Now.
    pub(crate) now: Micros,
    queue: Calendar<Event>,
    seq: u64,
    /// The one generator.
    pub(crate) rng: Rng,
    /// Links and their faults.
    pub(crate) net: Net,
}

impl Ctx {
    pub(crate) fn new(seed: u64, net: Net) -> Ctx {
        Ctx {
            now: 0,
            queue: Calendar::new(),
            seq: 0,
            rng: Rng::new(seed),
            net,
        }
    }

    /// Schedules `ev` at `at` (never in the past).
    pub(crate) fn at(&mut self, at: Micros, ev: Event) {
        self.seq += 1;
        self.queue.push(at.max(self.now), self.seq, ev);
    }

    /// Schedules `ev` after `delay`.
    pub(crate) fn after(&mut self, delay: Micros, ev: Event) {
        self.at(self.now + delay, ev);
    }

    /// Pops the next event and advances the clock to it.
    pub(crate) fn pop(&mut self) -> Option<Event> {
        let (at, ev) = self.queue.pop()?;
        self.now = at;
        Some(ev)
    }

    /// Now in milliseconds (the clock availability and movable stock are stamped with).
    pub(crate) fn now_ms(&self) -> i64 {
        (self.now / 1_000) as i64
    }
}

/// The last events, for the report of an invariant violation. Entries are cheap tuples; they
/// are formatted only when printed.
pub(crate) struct Trace {
    ring: VecDeque<(Micros, &'static str, i64, i64)>,
    keep: usize,
}

impl Trace {
    pub(crate) fn new(keep: usize) -> Trace {
        Trace {
            ring: VecDeque::with_capacity(keep),
            keep,
        }
    }

    pub(crate) fn push(&mut self, at: Micros, ev: &Event) {
        if self.ring.len() == self.keep {
            self.ring.pop_front();
        }
        let (label, a, b) = ev.trace();
        self.ring.push_back((at, label, a, b));
    }

    /// The kept events, oldest first, one line each.
    pub(crate) fn lines(&self) -> Vec<String> {
        self.ring
            .iter()
            .map(|(at, label, a, b)| format!("{:>12.6}s {label:<16} {a:>8} {b:>8}", secs(*at)))
            .collect()
    }
}
