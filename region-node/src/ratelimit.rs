//! Rate limits, the first defence: without them a spike reaches Redis and Postgres whole.
//!
//! Three token buckets (governor, GCRA): one global, one per client IP, one per user. A limit of
//! 0 disables that bucket (a local cluster disables the per-IP one: every client there is
//! 127.0.0.1). The keyed buckets are pruned periodically so memory stays bounded.

use std::net::IpAddr;
use std::num::NonZeroU32;

use governor::clock::{Clock, DefaultClock};
use governor::{DefaultDirectRateLimiter, DefaultKeyedRateLimiter, Quota, RateLimiter};

use crate::error::ApiError;

/// The node's buckets.
pub(crate) struct Limits {
    global: Option<DefaultDirectRateLimiter>,
    per_ip: Option<DefaultKeyedRateLimiter<IpAddr>>,
    per_user: Option<DefaultKeyedRateLimiter<i64>>,
}

fn quota(per_second: u32, burst: u32) -> Option<Quota> {
    let rate = NonZeroU32::new(per_second)?;
    let burst = NonZeroU32::new(burst.max(per_second)).unwrap_or(rate);
    Some(Quota::per_second(rate).allow_burst(burst))
}

fn refused(not_until: governor::NotUntil<<DefaultClock as Clock>::Instant>) -> ApiError {
    let wait = not_until.wait_time_from(DefaultClock::default().now());
    metrics::counter!("quota_rate_limited_total").increment(1);
    ApiError::RateLimited {
        retry_after_s: wait.as_secs_f64().ceil() as u64,
    }
}

impl Limits {
    /// Builds the buckets: global at `global` rps (burst = 1 s worth), per IP and per user at
    /// their rates with a burst of twice the rate (at least 4 for users, so a double click and
    /// a retry are not punished).
    pub(crate) fn new(global: u32, per_ip: u32, per_user: u32) -> Limits {
        Limits {
            global: quota(global, global).map(RateLimiter::direct),
            per_ip: quota(per_ip, per_ip.saturating_mul(2)).map(RateLimiter::keyed),
            per_user: quota(per_user, per_user.saturating_mul(2).max(4)).map(RateLimiter::keyed),
        }
    }

    /// Global and per-IP buckets: checked before the body is even parsed.
    pub(crate) fn check_request(&self, ip: IpAddr) -> Result<(), ApiError> {
        if let Some(g) = &self.global {
            g.check().map_err(refused)?;
        }
        if let Some(l) = &self.per_ip {
            l.check_key(&ip).map_err(refused)?;
        }
        Ok(())
    }

    /// Per-user bucket: checked once the user id is known.
    pub(crate) fn check_user(&self, user_id: i64) -> Result<(), ApiError> {
        if let Some(l) = &self.per_user {
            l.check_key(&user_id).map_err(refused)?;
        }
        Ok(())
    }

    /// Forgets keys whose buckets are full again (bounded memory under many distinct users).
    pub(crate) fn prune(&self) {
        if let Some(l) = &self.per_ip {
            l.retain_recent();
            l.shrink_to_fit();
        }
        if let Some(l) = &self.per_user {
            l.retain_recent();
            l.shrink_to_fit();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn per_user_bucket_refuses_after_burst_and_says_when() {
        let l = Limits::new(0, 0, 1);
        for _ in 0..4 {
            l.check_user(7).unwrap();
        }
        match l.check_user(7) {
            Err(ApiError::RateLimited { retry_after_s }) => assert!(retry_after_s >= 1),
            other => panic!("expected rate limit, got {other:?}"),
        }
        l.check_user(8).unwrap();
    }

    #[test]
    fn zero_disables() {
        let l = Limits::new(0, 0, 0);
        for _ in 0..10_000 {
            l.check_request("127.0.0.1".parse().unwrap()).unwrap();
            l.check_user(1).unwrap();
        }
    }
}
