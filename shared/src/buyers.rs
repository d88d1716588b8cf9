//! The buyer model shared by the load generator (real buyers over HTTP) and the simulator
//! (modelled buyers in virtual time), so both play exactly the same sale: WHEN each buyer
//! arrives, WHICH region it goes to, and which answers it retries after what pause.
//!
//! Arrivals are pure and deterministic. Arrivals are evenly spaced at the rate in force (a spike at the
//! start, then the steady rate), so arrival `i` has a fixed intended time that does not depend
//! on how fast the servers answer — the property that avoids coordinated omission. Regions are
//! chosen by smooth weighted round-robin, so any window of `Σ weights` consecutive arrivals
//! splits exactly by the weights.

use std::collections::BTreeMap;
use std::time::Duration;

/// Demand weight per region name (e.g. `east=70,south=20,north=10`); empty means equal.
pub type Weights = BTreeMap<String, u32>;

/// Intended arrival times: `spike_rate` for `spike_secs`, then `rate`, until `duration_secs`.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct ArrivalSchedule {
    /// Buyers per second during the spike.
    pub spike_rate: f64,
    /// Spike length in seconds.
    pub spike_secs: f64,
    /// Buyers per second after the spike.
    pub rate: f64,
    /// No arrival at or after this many seconds.
    pub duration_secs: f64,
}

impl ArrivalSchedule {
    /// Seconds after the start at which arrival `i` (0-based) is due; None once past the end.
    pub fn offset(&self, i: u64) -> Option<f64> {
        let i = i as f64;
        // A zero spike rate means no spike: the steady rate starts at once.
        let spike_secs = if self.spike_rate > 0.0 {
            self.spike_secs
        } else {
            0.0
        };
        let spike_n = self.spike_rate.max(0.0) * spike_secs;
        let t = if i < spike_n {
            i / self.spike_rate
        } else if self.rate > 0.0 {
            spike_secs + (i - spike_n) / self.rate
        } else {
            return None;
        };
        (t < self.duration_secs).then_some(t)
    }

    /// How many arrivals the whole schedule holds.
    pub fn total(&self) -> u64 {
        // Offsets grow with i, so count by bisection instead of walking millions of arrivals.
        let (mut lo, mut hi) = (0u64, 1u64);
        while self.offset(hi - 1).is_some() {
            lo = hi;
            hi = hi.saturating_mul(2);
        }
        // offset(lo - 1) is Some (or lo == 0), offset(hi - 1) is None.
        while lo < hi {
            let mid = lo + (hi - lo) / 2;
            if self.offset(mid).is_some() {
                lo = mid + 1;
            } else {
                hi = mid;
            }
        }
        lo
    }
}

/// Picks the region of each arrival from the weights in force at its intended time.
#[derive(Debug, Clone)]
pub struct RegionPicker {
    /// (start second, weight per region index), by start time.
    phases: Vec<(f64, Vec<i64>)>,
    phase: usize,
    current: Vec<i64>,
}

impl RegionPicker {
    /// A picker over `regions` (report order) with the config's weights and optional shift.
    pub fn new(regions: &[String], weights: &Weights, shift: Option<(f64, &Weights)>) -> Self {
        let vector = |w: &Weights| -> Vec<i64> {
            regions
                .iter()
                .map(|r| {
                    if w.is_empty() {
                        1
                    } else {
                        i64::from(w.get(r).copied().unwrap_or(0))
                    }
                })
                .collect()
        };
        let mut phases = vec![(0.0, vector(weights))];
        if let Some((at, w)) = shift {
            phases.push((at, vector(w)));
        }
        RegionPicker {
            phases,
            phase: 0,
            current: vec![0; regions.len()],
        }
    }

    /// Region index for an arrival due at `t` seconds (calls must come in time order).
    pub fn pick(&mut self, t: f64) -> usize {
        while self.phase + 1 < self.phases.len() && t >= self.phases[self.phase + 1].0 {
            self.phase += 1;
            self.current.iter_mut().for_each(|c| *c = 0);
        }
        let weights = &self.phases[self.phase].1;
        let total: i64 = weights.iter().sum();
        let mut best = 0;
        for (i, w) in weights.iter().enumerate() {
            self.current[i] += w;
            if self.current[i] > self.current[best] {
                best = i;
            }
        }
        self.current[best] -= total;
        best
    }
}

// --- Retries -------------------------------------------------------------------------------
//
// 503 (a dependency down, Redis being rebuilt, or stock on its way) and 429 (rate limited) are
// transient; 410 is retried too because the coordinator may move stock into a sold-out region.
// Everything else is final: 201 bought, 409 already bought, 403 sale closed, 421 wrong region,
// 4xx/5xx otherwise, and transport errors (status 0), which a real client would surface.

/// Status used for an answer that never arrived (connect error, timeout).
pub const TRANSPORT_ERROR: u16 = 0;

/// Whether a buyer that got `status` tries again (if it has tries left).
pub fn is_retryable(status: u16) -> bool {
    matches!(status, 503 | 429 | 410)
}

/// Pause before a retry: `base` scaled by `0.5 + u` for a uniform `u` in `[0, 1)`, so retries of
/// buyers that failed together spread out instead of arriving together again.
pub fn backoff(base: Duration, u: f64) -> Duration {
    base.mul_f64(0.5 + u.clamp(0.0, 1.0))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_weights(s: &str) -> Option<Weights> {
        s.split(',')
            .map(|kv| {
                let (k, v) = kv.split_once('=')?;
                Some((k.to_string(), v.parse().ok()?))
            })
            .collect()
    }

    fn sched() -> ArrivalSchedule {
        ArrivalSchedule {
            spike_rate: 6000.0,
            spike_secs: 1.0,
            rate: 2000.0,
            duration_secs: 30.0,
        }
    }

    fn count_in(s: &ArrivalSchedule, from: f64, to: f64) -> u64 {
        (0..)
            .map(|i| s.offset(i))
            .take_while(Option::is_some)
            .flatten()
            .filter(|&t| t >= from && t < to)
            .count() as u64
    }

    #[test]
    fn spike_then_steady() {
        let s = sched();
        assert_eq!(s.offset(0), Some(0.0));
        assert_eq!(count_in(&s, 0.0, 1.0), 6000);
        assert_eq!(count_in(&s, 1.0, 2.0), 2000);
        assert_eq!(count_in(&s, 10.0, 15.0), 10_000);
        assert_eq!(s.total(), 6000 + 29 * 2000);
        assert_eq!(count_in(&s, 0.0, 1e9), s.total());
    }

    #[test]
    fn offsets_increase_and_stop_at_duration() {
        let s = sched();
        let mut last = -1.0;
        for i in 0..s.total() {
            let t = s.offset(i).unwrap();
            assert!(t > last && t < 30.0);
            last = t;
        }
        assert_eq!(s.offset(s.total()), None);
    }

    #[test]
    fn no_spike_or_no_steady() {
        let steady = ArrivalSchedule {
            spike_rate: 0.0,
            spike_secs: 1.0,
            rate: 100.0,
            duration_secs: 2.0,
        };
        assert_eq!(steady.total(), 200);
        assert_eq!(steady.offset(1), Some(0.01));
        let spike_only = ArrivalSchedule {
            spike_rate: 500.0,
            spike_secs: 0.5,
            rate: 0.0,
            duration_secs: 10.0,
        };
        assert_eq!(spike_only.total(), 250);
    }

    fn names() -> Vec<String> {
        ["east", "south", "north"].map(String::from).to_vec()
    }

    #[test]
    fn weights_split_exactly_per_cycle() {
        let w = parse_weights("east=70,south=20,north=10").unwrap();
        let mut p = RegionPicker::new(&names(), &w, None);
        let mut counts = [0; 3];
        for i in 0..1000 {
            counts[p.pick(f64::from(i) / 1000.0)] += 1;
        }
        assert_eq!(counts, [700, 200, 100]);
    }

    #[test]
    fn smooth_interleaving() {
        let w = parse_weights("east=1,south=1").unwrap();
        let mut p = RegionPicker::new(&names(), &w, None);
        let picks: Vec<usize> = (0..6).map(|i| p.pick(f64::from(i))).collect();
        assert_eq!(picks, [0, 1, 0, 1, 0, 1]);
    }

    #[test]
    fn empty_weights_are_equal() {
        let mut p = RegionPicker::new(&names(), &Weights::new(), None);
        let mut counts = [0; 3];
        for i in 0..300 {
            counts[p.pick(f64::from(i))] += 1;
        }
        assert_eq!(counts, [100, 100, 100]);
    }

    #[test]
    fn shift_changes_weights_at_its_time() {
        let before = parse_weights("east=70,south=20,north=10").unwrap();
        let after = parse_weights("east=10,south=20,north=70").unwrap();
        let mut p = RegionPicker::new(&names(), &before, Some((10.0, &after)));
        let (mut a, mut b) = ([0; 3], [0; 3]);
        for i in 0..2000 {
            let t = f64::from(i) / 100.0; // 100 arrivals per second for 20 s
            let r = p.pick(t);
            if t < 10.0 {
                a[r] += 1;
            } else {
                b[r] += 1;
            }
        }
        assert_eq!(a, [700, 200, 100]);
        assert_eq!(b, [100, 200, 700]);
    }

    #[test]
    fn classification() {
        for s in [503, 429, 410] {
            assert!(is_retryable(s), "{s}");
        }
        for s in [201, 409, 403, 421, 400, 404, 500, TRANSPORT_ERROR] {
            assert!(!is_retryable(s), "{s}");
        }
    }

    #[test]
    fn backoff_is_jittered_around_base() {
        let base = Duration::from_millis(50);
        assert_eq!(backoff(base, 0.0), Duration::from_millis(25));
        assert_eq!(backoff(base, 0.5), Duration::from_millis(50));
        assert!(backoff(base, 0.999) < Duration::from_millis(75));
        assert_eq!(backoff(base, 7.0), Duration::from_millis(75));
    }
}
