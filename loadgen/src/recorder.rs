//! Where buyer tasks put what they saw: per-request latency by region and status, buyer
//! outcomes, acknowledged order ids, per-second client counts, and one small record per buyer
//! and per answer for the shared sale-quality measures ([`quota_shared::quality`]).
//!
//! Shared by every task: cheap atomics for the live progress line, one short-held mutex for
//! the rest. Latencies are recorded in microseconds. Memory grows by one `Copy` record per
//! buyer (~40 bytes) and per answer (~32 bytes): a few million of each is well under 1 GiB.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use quota_shared::quality::{AnswerRecord, BuyerRecord, FinalAnswer};

use crate::series::ClientBucket;

/// Highest latency tracked exactly (60 s); longer ones are clamped to it.
const MAX_MICROS: u64 = 60_000_000;

/// A latency histogram in microseconds, 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, MAX_MICROS, 3).expect("static histogram bounds")
}

/// Counters read by the progress line while the run goes on.
#[derive(Debug, Default)]
pub(crate) struct Live {
    /// Requests answered.
    pub attempts: AtomicU64,
    /// 201 answers.
    pub created: AtomicU64,
    /// 410 answers.
    pub sold_out: AtomicU64,
    /// 503 answers.
    pub unavailable: AtomicU64,
    /// Requests sent and not yet answered.
    pub in_flight: AtomicU64,
    /// Arrivals not sent because the concurrency cap was reached.
    pub dropped: AtomicU64,
}

/// Everything recorded for one region.
#[derive(Debug, Clone)]
pub(crate) struct RegionRecord {
    /// Latency of every request, from its intended send time to its answer.
    pub requests: Histogram<u64>,
    /// Same, split by status (0 = transport error).
    pub by_status: BTreeMap<u16, Histogram<u64>>,
    /// Buyer latency, from arrival to final answer (retries included), by final status.
    pub by_outcome: BTreeMap<u16, Histogram<u64>>,
    /// Order ids of every 201.
    pub orders: Vec<String>,
    /// 201s whose body had no readable order id.
    pub unreadable_acks: u64,
}

impl RegionRecord {
    fn new() -> Self {
        RegionRecord {
            requests: new_histogram(),
            by_status: BTreeMap::new(),
            by_outcome: BTreeMap::new(),
            orders: Vec::new(),
            unreadable_acks: 0,
        }
    }
}

/// One try (request and its answer) as a buyer task saw it.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Try {
    /// Region index.
    pub region: usize,
    /// HTTP status (0: no answer).
    pub status: u16,
    /// A 503 whose code was `awaiting_stock`.
    pub awaiting_stock: bool,
    /// When it was due (the arrival, or the end of the back-off): latency counts from here.
    pub intended: Instant,
    /// When it was actually sent.
    pub sent: Instant,
    /// When its answer arrived.
    pub answered: Instant,
}

/// What the recorder holds when the run is over.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// Per region, in config order.
    pub regions: Vec<RegionRecord>,
    /// Every buyer, from arrival to final answer, in the order they finished.
    pub buyers: Vec<BuyerRecord>,
    /// Every answer, retries included, in the order they arrived.
    pub answers: Vec<AnswerRecord>,
    /// `[second][region]` client counts.
    pub buckets: Vec<Vec<ClientBucket>>,
    /// Arrivals dropped by the concurrency cap.
    pub dropped_by_client: u64,
}

impl Recorded {
    /// Nothing recorded (what a default report stands on).
    pub(crate) fn empty() -> Self {
        Recorded {
            regions: Vec::new(),
            buyers: Vec::new(),
            answers: Vec::new(),
            buckets: Vec::new(),
            dropped_by_client: 0,
        }
    }
}

struct Inner {
    regions: Vec<RegionRecord>,
    all: Histogram<u64>,
    buyers: Vec<BuyerRecord>,
    answers: Vec<AnswerRecord>,
    buckets: Vec<Vec<ClientBucket>>,
}

/// The shared sink of a run.
pub(crate) struct Recorder {
    t0: Instant,
    region_count: usize,
    /// Live counters.
    pub live: Live,
    inner: Mutex<Inner>,
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

impl Recorder {
    /// A recorder for `region_count` regions; `t0` is the run's start.
    pub(crate) fn new(t0: Instant, region_count: usize) -> Self {
        Recorder {
            t0,
            region_count,
            live: Live::default(),
            inner: Mutex::new(Inner {
                regions: (0..region_count).map(|_| RegionRecord::new()).collect(),
                all: new_histogram(),
                buyers: Vec::new(),
                answers: Vec::new(),
                buckets: Vec::new(),
            }),
        }
    }

    /// The run's start.
    pub(crate) fn t0(&self) -> Instant {
        self.t0
    }

    /// Seconds from the run's start to `at`.
    fn secs(&self, at: Instant) -> f64 {
        at.saturating_duration_since(self.t0).as_secs_f64()
    }

    /// One answered request, with the order id of a 201.
    pub(crate) fn request(&self, t: &Try, order_id: Option<String>) {
        let live = &self.live;
        live.attempts.fetch_add(1, Ordering::Relaxed);
        match t.status {
            201 => live.created.fetch_add(1, Ordering::Relaxed),
            410 => live.sold_out.fetch_add(1, Ordering::Relaxed),
            503 => live.unavailable.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let answered_s = self.secs(t.answered);
        let record = AnswerRecord {
            region: t.region,
            sent_s: self.secs(t.sent),
            answered_s,
            status: t.status,
            awaiting_stock: t.awaiting_stock,
        };
        let us = micros(t.answered.saturating_duration_since(t.intended));
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.all.saturating_record(us);
        inner.answers.push(record);
        let second = answered_s as usize;
        if inner.buckets.len() <= second {
            let width = self.region_count;
            inner
                .buckets
                .resize_with(second + 1, || vec![ClientBucket::default(); width]);
        }
        let bucket = &mut inner.buckets[second][t.region];
        bucket.attempts += 1;
        match t.status {
            201 => bucket.orders += 1,
            410 => bucket.sold_out += 1,
            _ => {}
        }
        let r = &mut inner.regions[t.region];
        r.requests.saturating_record(us);
        r.by_status
            .entry(t.status)
            .or_insert_with(new_histogram)
            .saturating_record(us);
        if t.status == 201 {
            match order_id {
                Some(id) => r.orders.push(id),
                None => r.unreadable_acks += 1,
            }
        }
    }

    /// A buyer's final answer: `last` is its last try, `arrival` its intended arrival time,
    /// `attempts` how many requests it sent.
    pub(crate) fn outcome(&self, last: &Try, arrival: Instant, attempts: u32) {
        let record = BuyerRecord {
            region: last.region,
            arrived_s: self.secs(arrival),
            answered_s: self.secs(last.answered),
            answer: FinalAnswer::from_status(last.status, last.awaiting_stock),
            attempts,
        };
        let us = micros(last.answered.saturating_duration_since(arrival));
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.buyers.push(record);
        inner.regions[last.region]
            .by_outcome
            .entry(last.status)
            .or_insert_with(new_histogram)
            .saturating_record(us);
    }

    /// The P99 of every request so far, in milliseconds.
    pub(crate) fn p99_ms(&self) -> f64 {
        let inner = self.inner.lock().expect("recorder lock");
        inner.all.value_at_quantile(0.99) as f64 / 1000.0
    }

    /// Takes what was recorded (the run is over).
    pub(crate) fn finish(&self) -> Recorded {
        let mut inner = self.inner.lock().expect("recorder lock");
        Recorded {
            regions: std::mem::take(&mut inner.regions),
            buyers: std::mem::take(&mut inner.buyers),
            answers: std::mem::take(&mut inner.answers),
            buckets: std::mem::take(&mut inner.buckets),
            dropped_by_client: self.live.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A try in `region` answered `status` at `at_ms`, sent (and due) `rtt_ms` earlier.
    pub(crate) fn try_at(t0: Instant, region: usize, status: u16, at_ms: u64, rtt_ms: u64) -> Try {
        let answered = t0 + Duration::from_millis(at_ms);
        let sent = answered - Duration::from_millis(rtt_ms);
        Try {
            region,
            status,
            awaiting_stock: status == 503,
            intended: sent,
            sent,
            answered,
        }
    }

    #[test]
    fn records_requests_outcomes_and_timeline() {
        let t0 = Instant::now();
        let rec = Recorder::new(t0, 2);
        rec.request(&try_at(t0, 0, 201, 100, 5), Some("a".into()));
        rec.request(&try_at(t0, 0, 201, 1500, 7), None);
        rec.request(&try_at(t0, 1, 410, 1600, 3), None);
        rec.request(&try_at(t0, 1, 503, 200, 2), None);
        rec.outcome(
            &try_at(t0, 0, 201, 100, 5),
            t0 + Duration::from_millis(95),
            1,
        );
        rec.outcome(&try_at(t0, 1, 503, 200, 2), t0, 2);
        assert_eq!(rec.live.attempts.load(Ordering::Relaxed), 4);
        assert_eq!(rec.live.created.load(Ordering::Relaxed), 2);
        assert!(rec.p99_ms() >= 6.9);
        let r = rec.finish();
        assert_eq!(r.regions[0].orders, vec!["a".to_string()]);
        assert_eq!(r.regions[0].unreadable_acks, 1);
        assert_eq!(r.regions[1].by_status[&410].len(), 1);
        assert_eq!(r.regions[0].by_outcome[&201].len(), 1);
        assert_eq!(r.answers.len(), 4);
        let gone = r.answers[2];
        assert_eq!((gone.region, gone.status), (1, 410));
        assert!((gone.answered_s - 1.6).abs() < 1e-9 && (gone.sent_s - 1.597).abs() < 1e-9);
        assert!(r.answers[3].awaiting_stock);
        assert_eq!(r.buyers.len(), 2);
        assert_eq!(r.buyers[0].answer, FinalAnswer::Order);
        assert!((r.buyers[0].arrived_s - 0.095).abs() < 1e-9);
        assert_eq!(r.buyers[1].answer, FinalAnswer::AwaitingStock);
        assert_eq!(r.buyers[1].attempts, 2);
        assert_eq!(r.buckets.len(), 2);
        assert_eq!(r.buckets[0][0].orders, 1);
        assert_eq!(r.buckets[0][1].attempts, 1);
        assert_eq!(r.buckets[1][1].sold_out, 1);
    }
}
