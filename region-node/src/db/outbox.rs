//! Webhook delivery bookkeeping on `order_events`: claiming due events (several node processes
//! of a region share the table), and recording how an attempt ended. The rules these
//! statements keep are argued in `crate::outbox`.

use std::time::Duration;

use super::error::DbError;
use super::events::{OrderEvent, EVENT_COLS};
use super::pool::Db;

/// An event this process claimed for one delivery attempt.
#[derive(Debug, Clone)]
pub(crate) struct Claimed {
    /// The event, as it is sent.
    pub(crate) event: OrderEvent,
    /// Failed attempts before this one.
    pub(crate) attempts: i32,
    /// The seq of an earlier event of the same order that is dead (dead-lettered, never
    /// delivered), if any: then this one is dead-lettered with it instead of being sent.
    pub(crate) follows_dead: Option<i64>,
}

/// How the webhook backlog looks (every process of the region sees the same table).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct Backlog {
    /// Events neither delivered nor dead.
    pub(crate) pending: i64,
    /// Age in seconds of the oldest of them (0 with none).
    pub(crate) oldest_age_s: f64,
}

/// `d` in milliseconds, as the statements multiply `interval '1 millisecond'` by it.
fn millis(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

impl Db {
    /// Claims up to `limit` events that are due and may be delivered now — neither delivered
    /// nor dead, `next_attempt_at` passed, and no earlier event of the same order still
    /// pending — oldest first, skipping rows another process is claiming (`FOR UPDATE SKIP
    /// LOCKED`). Claiming pushes `next_attempt_at` to `lease` from now, so no other process
    /// takes them while this one delivers; if this one dies, they are due again after the
    /// lease. At most one event per order is ever claimed at once (its predecessors are
    /// delivered or dead).
    pub(crate) async fn claim_events(
        &self,
        limit: i64,
        lease: Duration,
    ) -> Result<Vec<Claimed>, DbError> {
        let c = self.conn().await?;
        let cols = EVENT_COLS
            .split(", ")
            .map(|c| format!("e.{c}"))
            .collect::<Vec<_>>()
            .join(", ");
        let rows = c
            .query(
                &format!(
                    "WITH due AS (
                         SELECT e.seq FROM order_events e
                          WHERE e.delivered_at IS NULL AND e.dead_at IS NULL
                            AND e.next_attempt_at <= now()
                            AND NOT EXISTS (
                                SELECT 1 FROM order_events p
                                 WHERE p.order_id = e.order_id AND p.seq < e.seq
                                   AND p.delivered_at IS NULL AND p.dead_at IS NULL)
                          ORDER BY e.seq LIMIT $1
                          FOR UPDATE OF e SKIP LOCKED)
                     UPDATE order_events e
                        SET next_attempt_at = now() + $2::float8 * interval '1 millisecond'
                       FROM due WHERE e.seq = due.seq
                     RETURNING {cols}, e.attempts,
                         (SELECT max(p.seq) FROM order_events p
                           WHERE p.order_id = e.order_id AND p.seq < e.seq
                             AND p.delivered_at IS NULL AND p.dead_at IS NOT NULL)
                         AS follows_dead"
                ),
                &[&limit, &millis(lease)],
            )
            .await?;
        let mut claimed: Vec<Claimed> = rows
            .iter()
            .map(|r| Claimed {
                event: OrderEvent::from_row(r),
                attempts: r.get("attempts"),
                follows_dead: r.get("follows_dead"),
            })
            .collect();
        claimed.sort_by_key(|c| c.event.seq);
        Ok(claimed)
    }

    /// The receiver took event `seq` (a 2xx).
    pub(crate) async fn event_delivered(&self, seq: i64) -> Result<(), DbError> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE order_events SET delivered_at = now(), last_error = NULL
              WHERE seq = $1 AND delivered_at IS NULL",
            &[&seq],
        )
        .await?;
        Ok(())
    }

    /// An attempt at event `seq` failed with `error`; it is due again after `retry_in`.
    pub(crate) async fn event_retry(
        &self,
        seq: i64,
        error: &str,
        retry_in: Duration,
    ) -> Result<(), DbError> {
        let c = self.conn().await?;
        c.execute(
            "UPDATE order_events
                SET attempts = attempts + 1, last_error = $2,
                    next_attempt_at = now() + $3::float8 * interval '1 millisecond'
              WHERE seq = $1 AND delivered_at IS NULL AND dead_at IS NULL",
            &[&seq, &error, &millis(retry_in)],
        )
        .await?;
        Ok(())
    }

    /// Dead-letters event `seq` of `order_id` (its last attempt failed with `error`, or
    /// `counts_attempt` is false: it follows a dead event and was never sent), and with it
    /// every later pending event of the same order, in one transaction: they would otherwise
    /// wait behind it for ever. Returns how many events died.
    pub(crate) async fn event_dead(
        &self,
        seq: i64,
        order_id: uuid::Uuid,
        error: &str,
        counts_attempt: bool,
    ) -> Result<u64, DbError> {
        let mut c = self.conn().await?;
        let tx = c.transaction().await?;
        let step = i32::from(counts_attempt);
        let own = tx
            .execute(
                "UPDATE order_events
                    SET attempts = attempts + $2, last_error = $3, dead_at = now()
                  WHERE seq = $1 AND delivered_at IS NULL AND dead_at IS NULL",
                &[&seq, &step, &error],
            )
            .await?;
        let followers = tx
            .execute(
                "UPDATE order_events
                    SET dead_at = now(),
                        last_error = 'an earlier event of this order (seq ' || $2::bigint::text || ') is dead'
                  WHERE order_id = $1 AND seq > $2::bigint AND delivered_at IS NULL AND dead_at IS NULL",
                &[&order_id, &seq],
            )
            .await?;
        tx.commit().await?;
        Ok(own + followers)
    }

    /// The operator's retry: every dead, undelivered event (of `order_id` only, if given) is
    /// pending again with no attempts, due now. An order's dead events are reset together, so
    /// they go out again in seq order. Returns how many.
    pub(crate) async fn retry_dead_events(
        &self,
        order_id: Option<uuid::Uuid>,
    ) -> Result<u64, DbError> {
        let c = self.conn().await?;
        Ok(c.execute(
            "UPDATE order_events
                SET dead_at = NULL, attempts = 0, next_attempt_at = now(), last_error = NULL
              WHERE dead_at IS NOT NULL AND delivered_at IS NULL
                AND ($1::uuid IS NULL OR order_id = $1::uuid)",
            &[&order_id],
        )
        .await?)
    }

    /// The pending events (neither delivered nor dead) and the age of the oldest.
    pub(crate) async fn event_backlog(&self) -> Result<Backlog, DbError> {
        let c = self.conn().await?;
        let r = c
            .query_one(
                "SELECT count(*),
                        COALESCE(EXTRACT(EPOCH FROM now() - min(at))::float8, 0)
                   FROM order_events WHERE delivered_at IS NULL AND dead_at IS NULL",
                &[],
            )
            .await?;
        Ok(Backlog {
            pending: r.get(0),
            oldest_age_s: r.get(1),
        })
    }
}
