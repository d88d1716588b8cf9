//! Result notification: delivers this region's order events (the `order_events` outbox the
//! `orders` trigger writes in every changing transaction) to the one configured webhook, at
//! least once, in order per order, signed; retried with backoff, dead-lettered after
//! `--webhook-max-attempts`.
//!
//! | file | what |
//! |---|---|
//! | this one | [`Outbox`], the background task: claim, deliver, record, export the backlog |
//! | [`settings`] | the `--webhook-*` flags and the checked settings |
//! | [`policy`] | the pure rules: ordering on claim, backoff, when to give up |
//! | [`deliver`] | one signed POST |
//!
//! Every process of a region runs one; they share the table. A claim (`crate::db` `claim_events`)
//! takes due events with `FOR UPDATE SKIP LOCKED` and leases them (`next_attempt_at` moved past
//! the request timeout), so two processes never send one event at the same moment; one that
//! dies mid-delivery leaves its events due again when the lease ends — a duplicate is possible
//! then (the receiver may have taken it), which is why every delivery of an event carries its
//! one `event_id`. The safety argument is in ARCHITECTURE.md, *Result notification*.

mod deliver;
pub(crate) mod policy;
mod settings;

use std::sync::Arc;
use std::time::Duration;

use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

pub(crate) use settings::Webhook;
pub use settings::WebhookArgs;

use self::policy::{after_failure, on_claim, AfterFailure, Claim};
use crate::db::{Claimed, Db, DbError};

/// Events claimed (and delivered concurrently) at once; one per order at most.
const BATCH: i64 = 32;
/// A claim outlives the request timeout by this much before another process may take it.
const LEASE_MARGIN: Duration = Duration::from_secs(5);
/// The backlog gauges are read at most this often while the outbox is busy (each read counts
/// the pending events), and on every idle round.
const GAUGES_EVERY: Duration = Duration::from_secs(1);

/// The delivery task of one node process.
pub(crate) struct Outbox {
    db: Db,
    hook: Arc<Webhook>,
    http: reqwest::Client,
}

impl Outbox {
    /// A task delivering to `hook` from `db`'s outbox.
    pub(crate) fn new(db: Db, hook: Webhook) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .user_agent(concat!("quota-region-node/", env!("CARGO_PKG_VERSION")))
            .connect_timeout(hook.timeout)
            // A redirect would re-send a signed event somewhere it was not configured to go.
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("webhook HTTP client: {e}"))?;
        Ok(Outbox {
            db,
            hook: Arc::new(hook),
            http,
        })
    }

    /// Delivers until `shutdown`: claims a batch, sends each event (concurrently: a batch
    /// holds at most one event per order), records every outcome, and sleeps `--webhook-poll-ms`
    /// when nothing was due. The backlog gauges are refreshed on every idle round, and at
    /// least every [`GAUGES_EVERY`] while busy.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        tracing::info!(url = %self.hook.url, "delivering order events");
        let mut failing = false;
        let mut idle = true;
        let mut gauges_at = tokio::time::Instant::now();
        loop {
            let gauges = idle || gauges_at.elapsed() >= GAUGES_EVERY;
            if gauges {
                gauges_at = tokio::time::Instant::now();
            }
            let round = self.round(gauges);
            let outcome = tokio::select! {
                _ = shutdown.cancelled() => return,
                r = round => r,
            };
            idle = match outcome {
                Ok(claimed) => {
                    if failing {
                        tracing::info!("order event delivery recovered");
                        failing = false;
                    }
                    claimed < BATCH
                }
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "order event delivery failed");
                        failing = true;
                    }
                    true
                }
            };
            if idle {
                tokio::select! {
                    _ = shutdown.cancelled() => return,
                    () = tokio::time::sleep(self.hook.poll) => {}
                }
            }
        }
    }

    /// One round: the gauges (when `gauges`), one claim, its deliveries (each database step
    /// bounded by [`Db::bounded`], each request by the webhook timeout). Returns how many
    /// events it claimed.
    async fn round(&self, gauges: bool) -> Result<i64, DbError> {
        if gauges {
            let backlog = self.db.bounded(self.db.event_backlog()).await?;
            crate::metrics::outbox_backlog(backlog.pending, backlog.oldest_age_s);
        }
        let lease = self.hook.timeout + LEASE_MARGIN;
        let claimed = self.db.bounded(self.db.claim_events(BATCH, lease)).await?;
        let count = i64::try_from(claimed.len()).unwrap_or(BATCH);
        let mut attempts = JoinSet::new();
        for c in claimed {
            let (db, hook, http) = (self.db.clone(), Arc::clone(&self.hook), self.http.clone());
            attempts.spawn(async move { attempt(&db, &hook, &http, c).await });
        }
        let mut first_error = None;
        while let Some(done) = attempts.join_next().await {
            match done {
                Ok(Ok(())) => {}
                Ok(Err(e)) => {
                    first_error.get_or_insert(e);
                }
                Err(e) => {
                    first_error.get_or_insert(DbError::Other(format!("delivery task: {e}")));
                }
            }
        }
        first_error.map_or(Ok(count), Err)
    }
}

/// One claimed event: dead-letter it behind a dead predecessor, or send it and record how it
/// went. A database error leaves the event claimed; it is due again when the lease ends.
async fn attempt(
    db: &Db,
    hook: &Webhook,
    http: &reqwest::Client,
    c: Claimed,
) -> Result<(), DbError> {
    let e = &c.event;
    if let Claim::FollowDead(dead) = on_claim(c.follows_dead) {
        let why = format!("an earlier event of this order (seq {dead}) is dead");
        let died = db
            .bounded(db.event_dead(e.seq, e.order_id, &why, false))
            .await?;
        crate::metrics::outbox_dead(died);
        return Ok(());
    }
    match deliver::deliver(http, hook, e).await {
        Ok(()) => {
            db.bounded(db.event_delivered(e.seq)).await?;
            crate::metrics::outbox_delivered();
        }
        Err(why) => {
            crate::metrics::outbox_failed_attempt();
            let jitter = rand::random::<f64>();
            match after_failure(c.attempts, hook.max_attempts, hook.backoff, jitter) {
                AfterFailure::Retry(wait) => {
                    tracing::debug!(seq = e.seq, error = %why, "webhook attempt failed");
                    db.bounded(db.event_retry(e.seq, &why, wait)).await?;
                }
                AfterFailure::Dead => {
                    tracing::warn!(seq = e.seq, event_id = %e.event_id, error = %why,
                                   "order event dead-lettered");
                    let died = db
                        .bounded(db.event_dead(e.seq, e.order_id, &why, true))
                        .await?;
                    crate::metrics::outbox_dead(died);
                }
            }
        }
    }
    Ok(())
}
