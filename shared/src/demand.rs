//! The demand signal a region reports to the coordinator: purchase *attempts* per second
//! (refusals included, so a sold-out region still shows its demand), smoothed by an
//! exponentially weighted moving average.
//!
//! The average is continuous-time: a sample after `dt` seconds moves the estimate by
//! `α = 1 − e^(−dt/τ)` towards the rate measured over that interval, so the result does not
//! depend on how regularly the region samples. Pure arithmetic over counters and instants.

use std::time::Instant;

/// Time constant τ of the average, seconds: short enough to follow a demand shift within a
/// second.
pub const TAU_S: f64 = 0.5;

/// One product's demand estimate (attempts per second, exponentially weighted).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct DemandEstimate {
    last_attempts: u64,
    last_at: Instant,
    rate: f64,
}

/// The demand a region reports: the attempt rate plus the buyers waiting in its line for stock.
/// A waiting buyer sends no new attempts, yet is the most certain demand there is; each counts
/// as one attempt per time constant, the rate at which a buyer answered 503 would come back.
/// (Without this, a hot region's demand would collapse exactly while its buyers wait.)
pub fn with_waiting(attempt_rate: f64, waiting: usize) -> f64 {
    attempt_rate + waiting as f64 / TAU_S
}

impl DemandEstimate {
    /// Starts at rate 0 from the attempt counter's value `attempts` at `at`.
    pub fn new(attempts: u64, at: Instant) -> Self {
        DemandEstimate {
            last_attempts: attempts,
            last_at: at,
            rate: 0.0,
        }
    }

    /// Folds in the counter's value `attempts` at `at` and returns the new estimate. A sample
    /// at the same instant as the previous one (or earlier) changes nothing, so there is never
    /// a division by zero.
    pub fn observe(&mut self, attempts: u64, at: Instant) -> f64 {
        let dt = at
            .checked_duration_since(self.last_at)
            .unwrap_or_default()
            .as_secs_f64();
        if dt > 0.0 {
            let measured = attempts.saturating_sub(self.last_attempts) as f64 / dt;
            let alpha = 1.0 - (-dt / TAU_S).exp();
            self.rate += alpha * (measured - self.rate);
            self.last_attempts = attempts;
            self.last_at = at;
        }
        self.rate
    }

    /// The current estimate, attempts per second.
    pub fn rate(&self) -> f64 {
        self.rate
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use proptest::prelude::*;

    use super::*;

    /// Feeds `per_tick` attempts every `tick` for `ticks` ticks.
    fn feed(
        d: &mut DemandEstimate,
        t: &mut Instant,
        n: &mut u64,
        per_tick: u64,
        tick: Duration,
        ticks: u32,
    ) {
        for _ in 0..ticks {
            *t += tick;
            *n += per_tick;
            d.observe(*n, *t);
        }
    }

    #[test]
    fn starts_at_zero() {
        let d = DemandEstimate::new(42, Instant::now());
        assert!(d.rate().abs() < f64::EPSILON);
    }

    #[test]
    fn constant_rate_converges() {
        let mut t = Instant::now();
        let mut n = 0;
        let mut d = DemandEstimate::new(n, t);
        // 100 attempts per second, sampled every 100 ms, for 5 s (10 τ).
        feed(&mut d, &mut t, &mut n, 10, Duration::from_millis(100), 50);
        assert!((d.rate() - 100.0).abs() < 0.01, "rate {}", d.rate());
    }

    #[test]
    fn step_response_follows_the_time_constant() {
        let mut t = Instant::now();
        let mut n = 0;
        let mut d = DemandEstimate::new(n, t);
        // A step from 0 to 100/s: after one τ the estimate is 1 − 1/e of the way there.
        feed(&mut d, &mut t, &mut n, 1, Duration::from_millis(10), 50);
        let expected = 100.0 * (1.0 - (-1.0f64).exp());
        assert!(
            (d.rate() - expected).abs() < 0.5,
            "rate {} vs {expected}",
            d.rate()
        );
        // And a step back down decays the same way.
        feed(&mut d, &mut t, &mut n, 0, Duration::from_millis(10), 500);
        assert!(d.rate() < 0.01, "rate {}", d.rate());
    }

    #[test]
    fn no_division_by_zero_for_dt_zero() {
        let t = Instant::now();
        let mut d = DemandEstimate::new(0, t);
        let before = d;
        assert!(d.observe(1_000, t).is_finite());
        assert_eq!(d, before);
        // A later sample then counts every attempt since the last one folded in.
        let r = d.observe(1_000, t + Duration::from_secs(1));
        assert!(r > 0.0 && r.is_finite());
    }

    proptest! {
        /// Whatever the sampling (same-instant samples included), the estimate stays finite and
        /// between 0 and the highest rate measured over any interval it folded in.
        #[test]
        fn stays_finite_and_bounded(
            samples in proptest::collection::vec((0u64..1_000, 0u64..500), 1..50),
        ) {
            let mut t = Instant::now();
            let mut n = 0u64;
            let mut d = DemandEstimate::new(n, t);
            let (mut folded_n, mut folded_t) = (n, t);
            let mut highest = 0.0f64;
            for (added, ms) in samples {
                t += Duration::from_millis(ms);
                n += added;
                if t > folded_t {
                    let dt = (t - folded_t).as_secs_f64();
                    highest = highest.max((n - folded_n) as f64 / dt);
                    (folded_n, folded_t) = (n, t);
                }
                let r = d.observe(n, t);
                prop_assert!(r.is_finite());
                prop_assert!(r >= 0.0 && r <= highest + 1e-6, "rate {r} highest {highest}");
            }
        }
    }

    #[test]
    fn waiting_buyers_count_as_one_attempt_per_time_constant() {
        assert!((with_waiting(10.0, 0) - 10.0).abs() < 1e-12);
        assert!((with_waiting(10.0, 5) - (10.0 + 5.0 / TAU_S)).abs() < 1e-12);
        assert!(
            with_waiting(0.0, 1) > 0.0,
            "a waiting buyer alone is demand"
        );
    }
}
