//! The one compare-and-swap retry loop. Every operation that reads the ledger, decides, and
//! writes back guarded by the revision it read (or, for the audit, checks that the ledger did
//! not move while the regions were read) may lose a race with another writer; it then reads
//! again and decides again, a bounded number of times, and reports "unavailable" after that.

use std::future::Future;
use std::time::Duration;

use crate::error::CoordError;

/// What one attempt decided.
pub(crate) enum Attempt<T> {
    /// Finished (written, or nothing to write): the loop ends with this value.
    Done(T),
    /// Lost the race (the ledger changed since it was read): read again.
    Retry,
}

/// How often to retry, how long to wait in between, and what to say when giving up.
pub(crate) struct CasRetry {
    attempts: usize,
    pause: Duration,
    gave_up: &'static str,
}

/// Ledger writes (operator changes, rebalance rounds): retry at once, a few times.
pub(crate) const LEDGER_WRITE: CasRetry = CasRetry {
    attempts: 5,
    pause: Duration::ZERO,
    gave_up: "the ledger kept changing concurrently; retry",
};

/// The audit's consistent cut: the ledger read before and after the regions must agree; the
/// rebalancer writes every 100 ms, so wait a little between tries.
pub(crate) const CONSISTENT_CUT: CasRetry = CasRetry {
    attempts: 30,
    pause: Duration::from_millis(50),
    gave_up: "the ledger kept changing during the audit; retry",
};

impl CasRetry {
    /// Runs `attempt` until it is [`Attempt::Done`] or fails, at most `attempts` times.
    pub(crate) async fn run<T, F, Fut>(&self, mut attempt: F) -> Result<T, CoordError>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Result<Attempt<T>, CoordError>>,
    {
        for _ in 0..self.attempts {
            if let Attempt::Done(v) = attempt().await? {
                return Ok(v);
            }
            if !self.pause.is_zero() {
                tokio::time::sleep(self.pause).await;
            }
        }
        Err(CoordError::Unavailable(self.gave_up.into()))
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use super::*;

    #[tokio::test]
    async fn retries_until_done_and_gives_up_after_the_budget() {
        let tries = Cell::new(0);
        let done = LEDGER_WRITE
            .run(|| {
                tries.set(tries.get() + 1);
                let n = tries.get();
                async move {
                    Ok(if n < 3 {
                        Attempt::Retry
                    } else {
                        Attempt::Done(n)
                    })
                }
            })
            .await;
        assert_eq!(done.unwrap(), 3);

        tries.set(0);
        let never = LEDGER_WRITE
            .run(|| {
                tries.set(tries.get() + 1);
                async { Ok(Attempt::<()>::Retry) }
            })
            .await;
        assert!(matches!(never, Err(CoordError::Unavailable(_))));
        assert_eq!(tries.get(), 5);
    }

    #[tokio::test]
    async fn an_error_ends_the_loop_at_once() {
        let tries = Cell::new(0);
        let r = LEDGER_WRITE
            .run(|| {
                tries.set(tries.get() + 1);
                async { Err::<Attempt<()>, _>(CoordError::NotLeader) }
            })
            .await;
        assert!(matches!(r, Err(CoordError::NotLeader)));
        assert_eq!(tries.get(), 1);
    }
}
