//! Where buyer tasks put what they saw: per-request latency by region and status, buyer
//! outcomes, acknowledged order ids, the 410 timeline and per-second client counts.
//!
//! Shared by every task: cheap atomics for the live progress line, one short-held mutex for
//! the histograms. Latencies are recorded in microseconds.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

use crate::analysis::SoldOutAnswer;
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

/// What the recorder holds when the run is over.
#[derive(Debug, Clone)]
pub(crate) struct Recorded {
    /// Per region, in config order.
    pub regions: Vec<RegionRecord>,
    /// Every 410 the client received.
    pub sold_outs: Vec<SoldOutAnswer>,
    /// When the last 201 arrived (seconds since start).
    pub last_201_s: Option<f64>,
    /// When the last request that got a 201 was sent (answer time − latency).
    pub last_201_sent_s: Option<f64>,
    /// When the last 410 arrived.
    pub last_410_s: Option<f64>,
    /// `[second][region]` client counts.
    pub buckets: Vec<Vec<ClientBucket>>,
    /// Arrivals dropped by the concurrency cap.
    pub dropped_by_client: u64,
}

struct Inner {
    regions: Vec<RegionRecord>,
    all: Histogram<u64>,
    sold_outs: Vec<SoldOutAnswer>,
    last_201_s: Option<f64>,
    last_201_sent_s: Option<f64>,
    last_410_s: Option<f64>,
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
                sold_outs: Vec::new(),
                last_201_s: None,
                last_201_sent_s: None,
                last_410_s: None,
                buckets: Vec::new(),
            }),
        }
    }

    /// The run's start.
    pub(crate) fn t0(&self) -> Instant {
        self.t0
    }

    /// One answered request: `latency` from its intended send time, answered at `at`.
    pub(crate) fn request(
        &self,
        region: usize,
        status: u16,
        latency: Duration,
        at: Instant,
        order_id: Option<String>,
    ) {
        let live = &self.live;
        live.attempts.fetch_add(1, Ordering::Relaxed);
        match status {
            201 => live.created.fetch_add(1, Ordering::Relaxed),
            410 => live.sold_out.fetch_add(1, Ordering::Relaxed),
            503 => live.unavailable.fetch_add(1, Ordering::Relaxed),
            _ => 0,
        };
        let t = at.saturating_duration_since(self.t0).as_secs_f64();
        let us = micros(latency);
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.all.saturating_record(us);
        let second = t as usize;
        if inner.buckets.len() <= second {
            let width = self.region_count;
            inner
                .buckets
                .resize_with(second + 1, || vec![ClientBucket::default(); width]);
        }
        let bucket = &mut inner.buckets[second][region];
        bucket.attempts += 1;
        match status {
            201 => bucket.orders += 1,
            410 => bucket.sold_out += 1,
            _ => {}
        }
        match status {
            201 => {
                inner.last_201_s = Some(inner.last_201_s.map_or(t, |l| l.max(t)));
                let sent = (t - latency.as_secs_f64()).max(0.0);
                inner.last_201_sent_s = Some(inner.last_201_sent_s.map_or(sent, |l| l.max(sent)));
            }
            410 => {
                inner.last_410_s = Some(inner.last_410_s.map_or(t, |l| l.max(t)));
                inner.sold_outs.push((t, region));
            }
            _ => {}
        }
        let r = &mut inner.regions[region];
        r.requests.saturating_record(us);
        r.by_status
            .entry(status)
            .or_insert_with(new_histogram)
            .saturating_record(us);
        if status == 201 {
            match order_id {
                Some(id) => r.orders.push(id),
                None => r.unreadable_acks += 1,
            }
        }
    }

    /// A buyer's final answer, `latency` from its arrival's intended time.
    pub(crate) fn outcome(&self, region: usize, status: u16, latency: Duration) {
        let mut inner = self.inner.lock().expect("recorder lock");
        inner.regions[region]
            .by_outcome
            .entry(status)
            .or_insert_with(new_histogram)
            .saturating_record(micros(latency));
    }

    /// The P99 of every request so far, in milliseconds.
    pub(crate) fn p99_ms(&self) -> f64 {
        let inner = self.inner.lock().expect("recorder lock");
        inner.all.value_at_quantile(0.99) as f64 / 1000.0
    }

    /// Takes what was recorded (the run is over).
    pub(crate) fn finish(&self) -> Recorded {
        let mut inner = self.inner.lock().expect("recorder lock");
        let mut sold_outs = std::mem::take(&mut inner.sold_outs);
        sold_outs.sort_by(|a, b| a.0.total_cmp(&b.0));
        Recorded {
            regions: std::mem::take(&mut inner.regions),
            sold_outs,
            last_201_s: inner.last_201_s,
            last_201_sent_s: inner.last_201_sent_s,
            last_410_s: inner.last_410_s,
            buckets: std::mem::take(&mut inner.buckets),
            dropped_by_client: self.live.dropped.load(Ordering::Relaxed),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_requests_outcomes_and_timeline() {
        let t0 = Instant::now();
        let rec = Recorder::new(t0, 2);
        let ms = Duration::from_millis;
        rec.request(0, 201, ms(5), t0 + ms(100), Some("a".into()));
        rec.request(0, 201, ms(7), t0 + ms(1500), None);
        rec.request(1, 410, ms(3), t0 + ms(1600), None);
        rec.request(1, 503, ms(2), t0 + ms(200), None);
        rec.outcome(0, 201, ms(5));
        assert_eq!(rec.live.attempts.load(Ordering::Relaxed), 4);
        assert_eq!(rec.live.created.load(Ordering::Relaxed), 2);
        assert!(rec.p99_ms() >= 6.9);
        let r = rec.finish();
        assert_eq!(r.regions[0].orders, vec!["a".to_string()]);
        assert_eq!(r.regions[0].unreadable_acks, 1);
        assert_eq!(r.regions[1].by_status[&410].len(), 1);
        assert_eq!(r.regions[0].by_outcome[&201].len(), 1);
        assert_eq!(r.sold_outs, vec![(1.6, 1)]);
        assert_eq!(r.last_201_s, Some(1.5));
        assert_eq!(r.buckets.len(), 2);
        assert_eq!(r.buckets[0][0].orders, 1);
        assert_eq!(r.buckets[0][1].attempts, 1);
        assert_eq!(r.buckets[1][1].sold_out, 1);
    }
}
