//! Group commit (strategy `v4`): Redis winners of one product queue up, and one transaction
//! inserts the whole batch of orders with `UNNEST` and moves `sold` once.
//!
//! One worker task per product drains its queue: it takes whatever is waiting (up to
//! [`MAX_BATCH`]) the moment the previous batch commits, so batches grow exactly as fast as the
//! database falls behind and a lone purchase never waits for company. The batch transaction:
//! insert every order (`ON CONFLICT (user_id, product_id) DO NOTHING`), then
//! `UPDATE … SET sold = sold + Σ inserted WHERE granted − released − sold ≥ Σ inserted`. If that
//! finds too little (Redis was ahead of Postgres), the transaction rolls back and each purchase
//! falls back to the one-statement path, which decides them one by one — so a batch can never
//! sell more than the row allows, and one bad purchase cannot fail the others.

use std::collections::HashMap;
use std::sync::Mutex;

use tokio::sync::{mpsc, oneshot};
use uuid::Uuid;

use crate::db::{Db, DbError, Order, PurchaseOutcome};

/// Most purchases one transaction commits.
pub const MAX_BATCH: usize = 128;

/// One queued purchase.
struct Item {
    order_id: Uuid,
    user_id: i64,
    quantity: i32,
    reply: oneshot::Sender<Result<PurchaseOutcome, DbError>>,
}

/// Per-product queues and their workers.
pub struct Batcher {
    db: Db,
    region: String,
    queues: Mutex<HashMap<i64, mpsc::UnboundedSender<Item>>>,
}

impl Batcher {
    /// A batcher writing to `db` for `region`.
    pub fn new(db: Db, region: String) -> Batcher {
        Batcher {
            db,
            region,
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a purchase and waits for its batch to commit.
    pub async fn purchase(
        &self,
        order_id: Uuid,
        product_id: i64,
        user_id: i64,
        quantity: i32,
    ) -> Result<PurchaseOutcome, DbError> {
        let (tx, rx) = oneshot::channel();
        let item = Item {
            order_id,
            user_id,
            quantity,
            reply: tx,
        };
        self.queue(product_id)
            .send(item)
            .map_err(|_| DbError::Unavailable("batch worker stopped".into()))?;
        rx.await
            .map_err(|_| DbError::Unavailable("batch worker stopped".into()))?
    }

    fn queue(&self, product_id: i64) -> mpsc::UnboundedSender<Item> {
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

async fn worker(db: Db, region: String, product_id: i64, mut rx: mpsc::UnboundedReceiver<Item>) {
    while let Some(first) = rx.recv().await {
        let mut items = vec![first];
        while items.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(i) => items.push(i),
                Err(_) => break,
            }
        }
        metrics::histogram!("quota_group_commit_batch_size").record(items.len() as f64);
        match commit_batch(&db, &region, product_id, &items).await {
            Ok(outcomes) => {
                for (item, out) in items.into_iter().zip(outcomes) {
                    let _ = item.reply.send(Ok(out));
                }
            }
            Err(_) => {
                // Decide each purchase on its own (also covers a transient batch failure: the
                // one-statement path is idempotent per order id).
                for item in items {
                    let r = db
                        .purchase(
                            item.order_id,
                            product_id,
                            item.user_id,
                            item.quantity,
                            &region,
                        )
                        .await;
                    let _ = item.reply.send(r);
                }
            }
        }
    }
}

/// The batch transaction; `Err` means nothing was committed.
async fn commit_batch(
    db: &Db,
    region: &str,
    product_id: i64,
    items: &[Item],
) -> Result<Vec<PurchaseOutcome>, DbError> {
    let mut c = db.pool().get().await?;
    let tx = c.transaction().await?;
    let Some(p) = tx
        .query_opt(
            "SELECT price, now() >= start_time AND now() < end_time FROM products
              WHERE product_id = $1",
            &[&product_id],
        )
        .await?
    else {
        return Ok(items.iter().map(|_| PurchaseOutcome::NotActive).collect());
    };
    let (price, active): (rust_decimal::Decimal, bool) = (p.get(0), p.get(1));
    if !active {
        return Ok(items.iter().map(|_| PurchaseOutcome::NotActive).collect());
    }
    let ids: Vec<Uuid> = items.iter().map(|i| i.order_id).collect();
    let users: Vec<i64> = items.iter().map(|i| i.user_id).collect();
    let qtys: Vec<i32> = items.iter().map(|i| i.quantity).collect();
    let inserted = tx
        .query(
            "INSERT INTO orders (order_id, product_id, user_id, region, quantity, price, status)
             SELECT o, $1, u, $2, q, $3, 'pending'
               FROM UNNEST($4::uuid[], $5::bigint[], $6::int[]) AS t(o, u, q)
             ON CONFLICT ON CONSTRAINT orders_one_per_user DO NOTHING
             RETURNING order_id, quantity, status, created_at",
            &[&product_id, &region, &price, &ids, &users, &qtys],
        )
        .await?;
    let units: i64 = inserted.iter().map(|r| i64::from(r.get::<_, i32>(1))).sum();
    if units > 0 {
        let n = tx
            .execute(
                "UPDATE region_quota SET sold = sold + $2, updated_at = now()
                  WHERE product_id = $1 AND granted - released - sold >= $2",
                &[&product_id, &units],
            )
            .await?;
        if n == 0 {
            tx.rollback().await?;
            return Err(DbError::SoldOut);
        }
    }
    let mut created: HashMap<Uuid, Order> = HashMap::new();
    for r in &inserted {
        let order_id: Uuid = r.get(0);
        let item = items
            .iter()
            .find(|i| i.order_id == order_id)
            .expect("inserted one of ours");
        created.insert(
            order_id,
            Order {
                order_id,
                product_id,
                user_id: item.user_id,
                region: region.to_string(),
                quantity: r.get(1),
                price,
                status: r.get(2),
                created_at: r.get(3),
            },
        );
    }
    // Conflicting buyers: their existing order (our own, from an earlier attempt, or another).
    let losers: Vec<i64> = items
        .iter()
        .filter(|i| !created.contains_key(&i.order_id))
        .map(|i| i.user_id)
        .collect();
    let existing: HashMap<i64, Uuid> = if losers.is_empty() {
        HashMap::new()
    } else {
        tx.query(
            "SELECT user_id, order_id FROM orders WHERE product_id = $1 AND user_id = ANY($2)",
            &[&product_id, &losers],
        )
        .await?
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect()
    };
    tx.commit().await?;
    let mut out = Vec::with_capacity(items.len());
    for i in items {
        if let Some(o) = created.remove(&i.order_id) {
            out.push(PurchaseOutcome::Created(o));
        } else {
            match existing.get(&i.user_id) {
                Some(id) if *id == i.order_id => match db.order(*id).await? {
                    Some(o) => out.push(PurchaseOutcome::Created(o)),
                    None => return Err(DbError::Other("order vanished".into())),
                },
                Some(id) => out.push(PurchaseOutcome::AlreadyPurchased(*id)),
                None => return Err(DbError::Other("conflict without an existing order".into())),
            }
        }
    }
    Ok(out)
}
