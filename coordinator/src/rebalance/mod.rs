//! The leader's rebalance round for one product: read a ledger snapshot, publish the stock that
//! could still move to each region, let the policy plan grants and releases (plus the releases
//! drains need), and write them with one compare-and-swap. The decisions are the pure
//! functions of [`quota_shared::round`] (shared with the simulator); this module is the I/O
//! around them.

use std::time::{Duration, Instant};

use chrono::Utc;
use quota_shared::policy::{plan, Move, RegionState};
use quota_shared::round::{apply_moves, drain_moves, movable, region_states};

use crate::cas::{Attempt, LEDGER_WRITE};
use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::snapshot::LedgerSnapshot;

/// How long published movable stock counts as fresh without a change: regions treat a value
/// much older than this as unknown.
const MOVABLE_REFRESH: Duration = Duration::from_secs(1);

impl Escrow {
    /// One rebalance round for one product (leader only). Returns the moves made.
    pub(crate) async fn round(&self, id: i64) -> Result<Vec<Move>, CoordError> {
        LEDGER_WRITE
            .run(move || async move {
                let snap = self.store.read(id).await?;
                if snap.spec.ended || Utc::now() >= snap.spec.end_time {
                    return Ok(Attempt::Done(Vec::new()));
                }
                let states = region_states(&snap);
                self.publish_movable(id, &snap, &states).await?;
                let mut moves = plan(snap.ledger.policy, &self.params, snap.pool(), &states);
                moves.extend(drain_moves(&snap, &states));
                if moves.is_empty() {
                    return Ok(Attempt::Done(moves));
                }
                let (ledger, requests, kept) =
                    apply_moves(&snap, moves, || uuid::Uuid::now_v7().to_string());
                if kept.is_empty() {
                    return Ok(Attempt::Done(kept));
                }
                if !self.store.write(&snap, &ledger, None, &requests).await? {
                    return Ok(Attempt::Retry);
                }
                tracing::info!(product_id = id, moves = ?kept, "rebalanced");
                crate::metrics::moved(&kept);
                Ok(Attempt::Done(kept))
            })
            .await
    }

    /// Publishes what could still move to each region, when it changed or a second passed.
    async fn publish_movable(
        &self,
        id: i64,
        snap: &LedgerSnapshot,
        states: &[RegionState],
    ) -> Result<(), CoordError> {
        let now = Instant::now();
        let mut m = movable(snap, states, self.stamp_ms());
        let fresh = {
            let last = self.movable_published.lock().expect("lock poisoned");
            match last.get(&id) {
                Some((prev, at)) => {
                    m.at_ms = prev.at_ms;
                    *prev == m && now.duration_since(*at) < MOVABLE_REFRESH
                }
                None => false,
            }
        };
        if fresh {
            return Ok(());
        }
        m.at_ms = self.stamp_ms();
        self.store.put_movable(id, &m).await?;
        self.movable_published
            .lock()
            .expect("lock poisoned")
            .insert(id, (m, now));
        Ok(())
    }
}
