//! The expiry sweep: every period (default 1 s) it expires the pending orders whose payment
//! window has passed, in batches, and pokes the reconciler so that their units are on sale in
//! Redis again within one reconcile pass. Any number of node processes of one region may sweep
//! the same Postgres at once: each batch skips the rows another transaction holds, and the
//! database gives each order's units back in the transaction that expires it (see
//! [`crate::db`]'s `lifecycle`), so no unit comes back twice.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use crate::db::DbError;
use crate::state::AppState;

/// Orders expired per transaction (a transaction holds the quota rows it touches until it
/// commits, so batches stay small).
const BATCH: i64 = 200;

/// The background task.
pub(crate) struct ExpirySweep {
    st: Arc<AppState>,
    every: Duration,
}

impl ExpirySweep {
    /// A sweep of the node's Postgres every `every`.
    pub(crate) fn new(st: Arc<AppState>, every: Duration) -> Self {
        ExpirySweep { st, every }
    }

    /// Sweeps until shutdown.
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut failing = false;
        loop {
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(self.every) => {}
            }
            match self.sweep().await {
                Ok(_) if failing => {
                    failing = false;
                    tracing::info!("expiry sweep recovered");
                }
                Ok(_) => {}
                Err(e) => {
                    if !failing {
                        tracing::warn!(error = %e, "expiry sweep failed");
                    }
                    failing = true;
                }
            }
        }
    }

    /// One sweep of every product this node sells, each with its payment window (the sale's,
    /// else `--payment-window-s`): batches until none is full. Returns the orders expired.
    pub(crate) async fn sweep(&self) -> Result<usize, DbError> {
        let st = &self.st;
        let mut expired = 0;
        for product_id in st.catalog.ids() {
            let Some(entry) = st.catalog.get(product_id) else {
                continue;
            };
            let window = entry.spec().payment_window_s.unwrap_or(st.payment_window_s);
            loop {
                let batch = st
                    .db
                    .bounded(st.db.expire_due(product_id, window, BATCH))
                    .await?;
                expired += batch.len();
                for &units in &batch {
                    crate::metrics::order_closed(product_id, "expired", units);
                }
                if !batch.is_empty() {
                    st.reconcile_now.notify_one();
                }
                if i64::try_from(batch.len()).unwrap_or(i64::MAX) < BATCH {
                    break;
                }
            }
        }
        Ok(expired)
    }
}
