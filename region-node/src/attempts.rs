//! One purchase's database attempts: bounded retries of what may succeed on retry, and the
//! one fact that must survive between attempts — whether an earlier attempt *may have
//! committed*.
//!
//! An attempt that loses its connection mid-statement may have committed (the commit reached
//! the WAL, the answer did not reach us). Its retry is safe — every purchase write is
//! idempotent per order id, and `quota_purchase` looks for its own order first — but if the
//! retry then fails for another reason (the pool is down, contention ran out of retries, the
//! sale ended), that later error says nothing about the first attempt. Taking it as "not
//! committed" would give the buyer's tokens and slot back and tell them 503 while their order
//! exists. So once an attempt may have committed, only a definite answer from Postgres about
//! *this order* (created, or another order of this buyer) ends the uncertainty; anything else
//! stays "connection lost — outcome unknown", and the ticket is left to the reconciler, which
//! asks Postgres.

use std::future::Future;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};

use crate::db::{bounded, DbError, PurchaseOutcome};
use crate::failpoint::{AttemptFault, Failpoint};

/// Runs `attempt` with at most 3 retries of retryable errors (exponential backoff from 10 ms,
/// jitter), each attempt bounded by `limit` (past it: a lost connection, which may have
/// committed), injecting `failpoint`'s fault if one is set, and returns the purchase's outcome
/// over all its attempts (see the module docs).
pub(crate) async fn with_retries<F, Fut>(
    failpoint: Option<&Failpoint>,
    limit: Duration,
    mut attempt: F,
) -> Result<PurchaseOutcome, DbError>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<PurchaseOutcome, DbError>>,
{
    let tries = AtomicU32::new(0);
    let claimed = AtomicBool::new(false);
    let maybe_committed = AtomicBool::new(false);
    let one = || {
        let n = tries.fetch_add(1, Ordering::SeqCst);
        let fault = failpoint.map_or(AttemptFault::None, |f| f.purchase_attempt(n, &claimed));
        let fut = bounded(limit, attempt());
        let maybe_committed = &maybe_committed;
        async move {
            let r = match fault {
                AttemptFault::None => fut.await,
                AttemptFault::PoolDown => {
                    drop(fut);
                    Err(DbError::Unavailable("failpoint: no connection".into()))
                }
                AttemptFault::LoseAnswer(delay) => match fut.await {
                    Ok(_) => {
                        tokio::time::sleep(delay).await;
                        Err(DbError::ConnectionLost(
                            "failpoint: the commit's answer was lost".into(),
                        ))
                    }
                    other => other,
                },
            };
            if matches!(r, Err(DbError::ConnectionLost(_))) {
                maybe_committed.store(true, Ordering::SeqCst);
            }
            r
        }
    };
    let last = one
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(10))
                .with_max_delay(Duration::from_millis(200))
                .with_max_times(3)
                .with_jitter(),
        )
        .when(DbError::is_retryable)
        .notify(|e, d| tracing::debug!(error = %e, delay = ?d, "retrying purchase"))
        .await;
    overall(maybe_committed.load(Ordering::SeqCst), last)
}

/// The outcome over all attempts, from the last attempt's and whether any attempt may have
/// committed: after a possible commit, only `Created` or `AlreadyPurchased` (another order of
/// this buyer exists, so this one cannot) are definite; everything else is unknown.
fn overall(
    maybe_committed: bool,
    last: Result<PurchaseOutcome, DbError>,
) -> Result<PurchaseOutcome, DbError> {
    match last {
        Ok(o @ (PurchaseOutcome::Created(_) | PurchaseOutcome::AlreadyPurchased(_))) => Ok(o),
        other if !maybe_committed => other,
        Err(e @ DbError::ConnectionLost(_)) => Err(e),
        Ok(PurchaseOutcome::NotActive) => Err(DbError::ConnectionLost(
            "an attempt lost its connection, and the sale has ended since: \
             the purchase may have committed"
                .into(),
        )),
        Err(e) => Err(DbError::ConnectionLost(format!(
            "an attempt lost its connection, then {e}: the purchase may have committed"
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lost() -> DbError {
        DbError::ConnectionLost("x".into())
    }

    #[test]
    fn without_a_lost_connection_the_last_answer_stands() {
        assert!(matches!(
            overall(false, Err(DbError::Unavailable("down".into()))),
            Err(DbError::Unavailable(_))
        ));
        assert!(matches!(
            overall(false, Ok(PurchaseOutcome::NotActive)),
            Ok(PurchaseOutcome::NotActive)
        ));
        assert!(matches!(
            overall(false, Err(DbError::SoldOut)),
            Err(DbError::SoldOut)
        ));
    }

    #[test]
    fn after_a_lost_connection_only_a_definite_answer_about_this_order_counts() {
        for later in [
            Err(DbError::Unavailable("pool down".into())),
            Err(DbError::Retryable("serialization".into())),
            Err(DbError::SoldOut),
            Err(DbError::Other("bug".into())),
            Err(lost()),
            Ok(PurchaseOutcome::NotActive),
        ] {
            let shown = format!("{later:?}");
            assert!(
                matches!(overall(true, later), Err(DbError::ConnectionLost(_))),
                "{shown} must stay unknown"
            );
        }
        let other = uuid::Uuid::nil();
        assert!(matches!(
            overall(true, Ok(PurchaseOutcome::AlreadyPurchased(other))),
            Ok(PurchaseOutcome::AlreadyPurchased(_))
        ));
    }

    #[tokio::test]
    async fn a_lost_answer_then_a_dead_pool_is_unknown_not_failed() {
        let fp = Failpoint::parse("lost_commit_answer_then_down").unwrap();
        let calls = AtomicU32::new(0);
        let r = with_retries(Some(&fp), Duration::from_secs(5), || {
            calls.fetch_add(1, Ordering::SeqCst);
            async { Ok(PurchaseOutcome::NotActive) }
        })
        .await;
        assert!(matches!(r, Err(DbError::ConnectionLost(_))), "{r:?}");
        assert_eq!(
            calls.load(Ordering::SeqCst),
            2,
            "one commit, one retry that found no pool"
        );
    }
}
