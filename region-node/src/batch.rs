//! Group commit (strategy `group-commit`, alias `v4`): Redis winners of one product queue up,
//! and one transaction inserts the whole batch of orders with `UNNEST` and moves `sold` once
//! (the SQL is `crate::db`'s `commit_batch`).
//!
//! One worker task per product drains its queue: it takes whatever is waiting (up to
//! [`MAX_BATCH`]) the moment the previous batch commits, so batches grow exactly as fast as the
//! database falls behind and a lone purchase never waits for company. If the batch transaction
//! finds too little quota (Redis was ahead of Postgres), it rolls back and each purchase falls
//! back to the one-statement path, which decides them one by one — so a batch can never sell
//! more than the row allows, and one bad purchase cannot fail the others.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbError, NewOrder, PurchaseOutcome};

/// Most purchases one transaction commits.
const MAX_BATCH: usize = 128;

/// What a queued purchase is answered with.
type Reply = oneshot::Sender<Result<PurchaseOutcome, DbError>>;

/// Per-product queues and their workers.
pub(crate) struct Batcher {
    db: Db,
    region: String,
    queues: Mutex<HashMap<i64, mpsc::UnboundedSender<(NewOrder, Reply)>>>,
}

impl Batcher {
    /// A batcher writing to `db` for `region`.
    pub(crate) fn new(db: Db, region: String) -> Batcher {
        Batcher {
            db,
            region,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a purchase and waits for its batch to commit.
    pub(crate) async fn purchase(&self, order: NewOrder) -> Result<PurchaseOutcome, DbError> {
        let (tx, rx) = oneshot::channel();
        self.queue(order.product_id)
            .send((order, tx))
            .map_err(|_| DbError::Unavailable("batch worker stopped".into()))?;
        rx.await
            .map_err(|_| DbError::Unavailable("batch worker stopped".into()))?
    }

    fn queue(&self, product_id: i64) -> mpsc::UnboundedSender<(NewOrder, Reply)> {
        let mut q = self.queues.lock().expect("batch lock poisoned");
        q.entry(product_id)
            .or_insert_with(|| {
                let (tx, rx) = mpsc::unbounded_channel();
                tokio::spawn(worker(self.db.clone(), self.region.clone(), product_id, rx));
                tx
            })
            .clone()
    }
}

async fn worker(
    db: Db,
    region: String,
    product_id: i64,
    mut rx: mpsc::UnboundedReceiver<(NewOrder, Reply)>,
) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        metrics::histogram!("quota_group_commit_batch_size").record(items.len() as f64);
        let (orders, replies): (Vec<NewOrder>, Vec<Reply>) = items.into_iter().unzip();
        match db.commit_batch(product_id, &region, &orders).await {
            Ok(outcomes) => {
                for (reply, out) in replies.into_iter().zip(outcomes) {
                    let _ = reply.send(Ok(out));
                }
            }
            Err(_) => {
                // Decide each purchase on its own (also covers a transient batch failure: the
                // one-statement path is idempotent per order id).
                for (order, reply) in orders.iter().zip(replies) {
                    let _ = reply.send(db.purchase_one_statement(order).await);
                }
            }
        }
    }
}
