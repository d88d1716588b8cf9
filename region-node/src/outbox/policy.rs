//! The pure rules of delivery: what to do with a claimed event, how long to wait after a failed
//! attempt (exponential backoff with a cap, jittered), and when to give up. No I/O: the
//! jitter is an argument, so every rule is deterministic under test.

use std::time::Duration;

/// Exponential backoff: the n-th retry waits about `base · 2^(n−1)`, never more than `cap`,
/// jittered into the upper half of that (so a crowd of failed events does not come back in
/// one wave, and no wait is much shorter than the schedule says).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Backoff {
    /// The wait after the first failed attempt (before jitter).
    pub(crate) base: Duration,
    /// The longest wait.
    pub(crate) cap: Duration,
}

impl Backoff {
    /// The wait after `failed` failed attempts (≥ 1), with `jitter` in `[0, 1)` choosing a
    /// point in `[d/2, d)` where `d = min(cap, base · 2^(failed−1))`.
    pub(crate) fn delay(&self, failed: u32, jitter: f64) -> Duration {
        let doublings = failed.saturating_sub(1).min(32);
        let full = self
            .base
            .saturating_mul(1u32 << doublings.min(31))
            .min(self.cap);
        let jitter = jitter.clamp(0.0, 1.0);
        full.div_f64(2.0) + full.div_f64(2.0).mul_f64(jitter)
    }
}

/// What to do with an event just claimed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Claim {
    /// Send it.
    Deliver,
    /// Do not send it: an earlier event of the same order (this seq) is dead, and a receiver
    /// must never see a later change of an order before an earlier one. It is dead-lettered
    /// with it, and retried with it.
    FollowDead(i64),
}

/// The ordering rule for a claimed event, given the seq of an earlier dead event of its order
/// (the claim already held back every event with an earlier one still pending).
pub(crate) fn on_claim(follows_dead: Option<i64>) -> Claim {
    follows_dead.map_or(Claim::Deliver, Claim::FollowDead)
}

/// What follows a failed attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AfterFailure {
    /// Try again after this long.
    Retry(Duration),
    /// That was the last attempt allowed: dead-letter it.
    Dead,
}

/// After a failed attempt, when `attempts_before` attempts had already failed: retry with
/// backoff, or dead-letter once `max_attempts` attempts have failed in all.
pub(crate) fn after_failure(
    attempts_before: i32,
    max_attempts: u32,
    backoff: Backoff,
    jitter: f64,
) -> AfterFailure {
    let failed = u32::try_from(attempts_before.max(0))
        .unwrap_or(u32::MAX)
        .saturating_add(1);
    if failed >= max_attempts {
        AfterFailure::Dead
    } else {
        AfterFailure::Retry(backoff.delay(failed, jitter))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const B: Backoff = Backoff {
        base: Duration::from_millis(100),
        cap: Duration::from_secs(2),
    };

    /// The wait doubles from the base, stops at the cap, and jitter keeps it in [d/2, d).
    #[test]
    fn backoff_doubles_up_to_the_cap_within_its_jitter() {
        let ms = |failed, jitter| B.delay(failed, jitter).as_millis();
        assert_eq!(
            (1..=7).map(|n| ms(n, 1.0)).collect::<Vec<_>>(),
            [100, 200, 400, 800, 1600, 2000, 2000]
        );
        assert_eq!(ms(1, 0.0), 50);
        assert_eq!(ms(3, 0.5), 300);
        assert_eq!(ms(1_000, 0.0), 1000, "a huge count stays at the cap");
        for n in 1..40 {
            for j in [0.0, 0.25, 0.999] {
                let d = B.delay(n, j);
                assert!(d >= B.delay(n, 0.0) && d <= B.cap, "{n} {j}");
            }
        }
    }

    /// With 3 attempts allowed, the first two failures retry (with the first and second
    /// backoff) and the third is dead.
    #[test]
    fn the_last_allowed_attempt_dead_letters() {
        assert_eq!(
            after_failure(0, 3, B, 1.0),
            AfterFailure::Retry(Duration::from_millis(100))
        );
        assert_eq!(
            after_failure(1, 3, B, 1.0),
            AfterFailure::Retry(Duration::from_millis(200))
        );
        assert_eq!(after_failure(2, 3, B, 1.0), AfterFailure::Dead);
        assert_eq!(after_failure(9, 3, B, 1.0), AfterFailure::Dead);
        assert_eq!(after_failure(0, 1, B, 0.0), AfterFailure::Dead);
    }

    /// An event behind a dead one of its order is never sent: it follows it into the dead
    /// letters.
    #[test]
    fn an_event_after_a_dead_one_follows_it() {
        assert_eq!(on_claim(None), Claim::Deliver);
        assert_eq!(on_claim(Some(7)), Claim::FollowDead(7));
    }
}
