//! Group commit (strategy `group-commit`, alias `v4`): Redis winners of one product queue up,
//! and one transaction inserts the whole batch of orders with `UNNEST` and moves `sold` once
//! (the SQL is `crate::db`'s `commit_batch`).
//!
//! One worker task per product drains its queue: it takes whatever is waiting (up to
//! [`MAX_BATCH`]) the moment the previous batch is decided, so batches grow exactly as fast as
//! the database falls behind and a lone purchase never waits for company.
//!
//! **The queue is bounded** (`--group-commit-queue` purchases per product). A purchase that
//! finds it full is refused at once with [`DbError::Unavailable`]: nothing was sent to
//! Postgres, so the caller gives the Redis tokens back and answers 503. Without the bound a
//! slow or dead database let the queue grow until Redis tickets expired behind it (and were
//! given back while their purchases still waited to commit).
//!
//! **When a batch fails**, what happens next depends only on how it failed ([`next`], a pure
//! function; the I/O loop around it, [`decide`], is thin):
//!
//! * [`DbError::Unavailable`] — no connection was obtained (or the server cancelled a
//!   statement: statement timeout, too many connections); nothing was committed. Every
//!   purchase of the batch is answered with it at once: retrying each one alone would only
//!   wait out the pool timeout once per purchase while the queue behind grows.
//! * [`DbError::ConnectionLost`] — the connection died, perhaps after `COMMIT` reached the WAL:
//!   the batch *may have committed*. Every purchase of it is answered `ConnectionLost` at once.
//!   It is never re-decided item by item here: a re-run that then failed for another reason
//!   would turn "maybe committed" into "not committed" and give back units that were sold.
//!   The purchase path's own bounded retry (`crate::attempts`) may queue it again — a retry
//!   finds its own order first — and carries "may have committed" across attempts; if the
//!   outcome stays unknown, its ticket is left to the reconciler, which asks Postgres.
//! * [`DbError::SoldOut`], [`DbError::Retryable`], [`DbError::Other`] — the transaction rolled
//!   back (the batch needed more units than the row has, a serialization failure, one bad
//!   purchase). Only then is the batch **bisected**: each half is committed as a batch of its
//!   own, first half first, recursively (an explicit work stack, no async recursion); a single
//!   purchase goes through the one-statement path (`quota_purchase`). One purchase that cannot
//!   be sold costs about `2·log₂ n` extra transactions instead of `n` (a row that runs out in
//!   the middle of a batch costs at most `2n − 1`); earlier purchases are always decided before
//!   later ones (first come, first served); and no slice can sell more than the row allows —
//!   every one passes the same conditional update.
//! * Once any slice fails with `Unavailable` or `ConnectionLost`, the purchases not tried yet
//!   are answered at once too: `Unavailable` when the pool refused, [`DbError::Retryable`] when
//!   a connection was lost (they were not in that transaction, so they are definitely not
//!   committed, and the caller may retry them).
//!
//! Metrics: `quota_group_commit_batch_size` (histogram), `quota_group_commit_bisections_total`
//! (every batch or sub-batch that rolled back and was split in two) and
//! `quota_group_commit_queue_full_total` (purchases refused because the queue was full).
//!
//! Why re-running is safe at all: bisection re-runs only slices whose transaction rolled back;
//! and every write is idempotent per order id — `commit_batch` and `quota_purchase` both find a
//! purchase's own order first (committed by an earlier attempt whose answer was lost) and
//! answer it `created`, so a retry can never buy twice.

use std::collections::HashMap;
use std::future::Future;
use std::ops::Range;
use std::sync::Mutex;

use tokio::sync::mpsc::error::TrySendError;
use tokio::sync::{mpsc, oneshot};

use crate::db::{Db, DbError, NewOrder, PurchaseOutcome};

/// Most purchases one transaction commits.
const MAX_BATCH: usize = 128;

/// What a queued purchase is answered with.
type Reply = oneshot::Sender<Result<PurchaseOutcome, DbError>>;

/// One queued purchase and where its answer goes.
type Queued = (NewOrder, Reply);

/// Per-product bounded queues and their workers.
pub(crate) struct Batcher {
    db: Db,
    region: String,
    /// Purchases that may wait in one product's queue (at least 1).
    capacity: usize,
    queues: Mutex<HashMap<i64, mpsc::Sender<Queued>>>,
}

impl Batcher {
    /// A batcher writing to `db` for `region`, at most `capacity` purchases waiting per
    /// product (`--group-commit-queue`; 0 counts as 1).
    pub(crate) fn new(db: Db, region: String, capacity: usize) -> Batcher {
        Batcher {
            db,
            region,
            capacity: capacity.max(1),
            queues: Mutex::new(HashMap::new()),
        }
    }

    /// Queues a purchase and waits for its batch to decide it. A full queue is refused at once
    /// with [`DbError::Unavailable`] (nothing was sent to the database).
    pub(crate) async fn purchase(&self, order: NewOrder) -> Result<PurchaseOutcome, DbError> {
        let (tx, rx) = oneshot::channel();
        match self.queue(order.product_id).try_send((order, tx)) {
            Ok(()) => {}
            Err(TrySendError::Full(_)) => {
                metrics::counter!("quota_group_commit_queue_full_total").increment(1);
                return Err(DbError::Unavailable(format!(
                    "group-commit queue full ({} purchases of this product waiting)",
                    self.capacity
                )));
            }
            Err(TrySendError::Closed(_)) => {
                return Err(DbError::Unavailable("batch worker stopped".into()));
            }
        }
        // The worker dropped the reply without answering only if it died (panicked) while
        // deciding the batch — perhaps after its commit: the outcome is unknown.
        rx.await.map_err(|_| {
            DbError::ConnectionLost("the batch worker stopped before answering".into())
        })?
    }

    /// The product's queue, starting its worker if there is none (or it died).
    fn queue(&self, product_id: i64) -> mpsc::Sender<Queued> {
        let mut q = self.queues.lock().expect("batch lock poisoned");
        if let Some(tx) = q.get(&product_id).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(self.capacity);
        tokio::spawn(worker(self.db.clone(), self.region.clone(), product_id, rx));
        q.insert(product_id, tx.clone());
        tx
    }
}

/// Drains one product's queue, a batch at a time.
async fn worker(db: Db, region: String, product_id: i64, mut rx: mpsc::Receiver<Queued>) {
    let mut items = Vec::with_capacity(MAX_BATCH);
    while rx.recv_many(&mut items, MAX_BATCH).await > 0 {
        metrics::histogram!("quota_group_commit_batch_size").record(items.len() as f64);
        let (orders, replies): (Vec<NewOrder>, Vec<Reply>) = items.drain(..).unzip();
        let mut replies: Vec<Option<Reply>> = replies.into_iter().map(Some).collect();
        let (db, region, batch) = (&db, region.as_str(), orders.as_slice());
        decide(
            batch.len(),
            move |slice: Range<usize>| async move {
                db.bounded(async {
                    match &batch[slice] {
                        [one] => db.purchase_one_statement(one).await.map(|o| vec![o]),
                        part => db.commit_batch(product_id, region, part).await,
                    }
                })
                .await
            },
            |i, answer| {
                if let Some(reply) = replies[i].take() {
                    let _ = reply.send(answer);
                }
            },
        )
        .await;
    }
}

/// What the worker does with a slice of a batch after trying to commit it.
#[derive(Debug)]
enum Next {
    /// The slice is decided: its purchases' answers, in order.
    Answer(Vec<Result<PurchaseOutcome, DbError>>),
    /// The slice's transaction rolled back: commit each half on its own, first half first.
    Split,
    /// The database cannot serve (or the answer was lost): answer every purchase of the slice
    /// with `slice` and every purchase not tried yet with `untried`, now.
    Stop {
        /// The answer of each purchase of the slice just tried.
        slice: DbError,
        /// The answer of each purchase still waiting on the work stack.
        untried: DbError,
    },
}

/// Given what committing a slice of `len` purchases returned (one outcome per purchase, or
/// the error of the whole slice), what next (the rules are in the module docs).
fn next(len: usize, result: Result<Vec<PurchaseOutcome>, DbError>) -> Next {
    match result {
        Ok(outcomes) => Next::Answer(outcomes.into_iter().map(Ok).collect()),
        Err(DbError::Unavailable(m)) => Next::Stop {
            untried: DbError::Unavailable(m.clone()),
            slice: DbError::Unavailable(m),
        },
        Err(DbError::ConnectionLost(m)) => Next::Stop {
            untried: DbError::Retryable(format!(
                "not tried: another part of its batch lost its connection ({m})"
            )),
            slice: DbError::ConnectionLost(m),
        },
        // One purchase: the one-statement path decided it; its error is its answer.
        Err(e) if len == 1 => Next::Answer(vec![Err(e)]),
        Err(DbError::SoldOut | DbError::Retryable(_) | DbError::Other(_)) => Next::Split,
    }
}

/// The two halves of `slice` (at least two purchases), in order.
fn halves(slice: Range<usize>) -> (Range<usize>, Range<usize>) {
    let mid = slice.start + slice.len() / 2;
    (slice.start..mid, mid..slice.end)
}

/// Decides every purchase of a batch of `len` (in arrival order): `commit` commits a slice of
/// it (a single purchase through the one-statement path), [`next`] says what to do with the
/// result, and `answer(i, …)` is called exactly once per purchase `i`, earlier purchases first.
async fn decide<F, Fut>(
    len: usize,
    mut commit: F,
    mut answer: impl FnMut(usize, Result<PurchaseOutcome, DbError>),
) where
    F: FnMut(Range<usize>) -> Fut,
    Fut: Future<Output = Result<Vec<PurchaseOutcome>, DbError>>,
{
    // Slices still to decide; the next one on top. It starts as the whole batch.
    let mut work: Vec<Range<usize>> = Vec::new();
    work.push(0..len);
    while let Some(slice) = work.pop() {
        let result = commit(slice.clone()).await;
        match next(slice.len(), result) {
            Next::Answer(answers) => {
                for (i, a) in slice.zip(answers) {
                    answer(i, a);
                }
            }
            Next::Split => {
                metrics::counter!("quota_group_commit_bisections_total").increment(1);
                let (first, second) = halves(slice);
                work.push(second);
                work.push(first);
            }
            Next::Stop { slice: e, untried } => {
                for i in slice {
                    answer(i, Err(e.clone()));
                }
                for i in work.drain(..).rev().flatten() {
                    answer(i, Err(untried.clone()));
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::{Cell, RefCell};

    use chrono::Utc;
    use rust_decimal::Decimal;
    use uuid::Uuid;

    use super::*;
    use crate::db::Order;

    fn order(user_id: i64, quantity: i32) -> NewOrder {
        NewOrder {
            order_id: Uuid::now_v7(),
            product_id: 1,
            user_id,
            quantity,
            region: "east".into(),
        }
    }

    fn created(o: &NewOrder) -> PurchaseOutcome {
        PurchaseOutcome::Created(Order {
            order_id: o.order_id,
            product_id: o.product_id,
            user_id: o.user_id,
            region: o.region.clone(),
            quantity: o.quantity,
            price: Decimal::ONE,
            status: "pending".into(),
            created_at: Utc::now(),
        })
    }

    fn errors() -> [DbError; 5] {
        [
            DbError::SoldOut,
            DbError::Retryable("serialization".into()),
            DbError::Other("bug".into()),
            DbError::Unavailable("pool".into()),
            DbError::ConnectionLost("eof".into()),
        ]
    }

    /// A committed slice is answered as it is, whatever its size.
    #[test]
    fn a_committed_slice_is_answered() {
        for n in [1, 2, 128] {
            let outs = vec![PurchaseOutcome::NotActive; n];
            match next(n, Ok(outs)) {
                Next::Answer(a) => assert_eq!(a.len(), n),
                other => panic!("{other:?}"),
            }
        }
    }

    /// A rolled-back batch (sold out, retryable, other) is split; a lost connection or no
    /// connection stops the whole batch at once, never re-running anything item by item.
    #[test]
    fn a_failed_batch_splits_only_when_it_rolled_back() {
        for e in errors() {
            let shown = format!("{e:?}");
            let kind = (
                matches!(e, DbError::Unavailable(_)),
                matches!(e, DbError::ConnectionLost(_)),
            );
            match (kind, next(2, Err(e))) {
                ((false, false), Next::Split)
                | (
                    (true, false),
                    Next::Stop {
                        slice: DbError::Unavailable(_),
                        untried: DbError::Unavailable(_),
                    },
                )
                | (
                    (false, true),
                    Next::Stop {
                        slice: DbError::ConnectionLost(_),
                        untried: DbError::Retryable(_),
                    },
                ) => {}
                (_, other) => panic!("{shown} gave {other:?}"),
            }
        }
    }

    /// A single purchase is never split: its own error is its answer, and no connection (or a
    /// lost one) still stops the purchases behind it.
    #[test]
    fn a_single_purchase_is_answered_or_stops_the_rest() {
        for e in errors() {
            let stops = matches!(e, DbError::Unavailable(_) | DbError::ConnectionLost(_));
            let shown = format!("{e:?}");
            match next(1, Err(e)) {
                Next::Answer(a) => {
                    assert!(!stops, "{shown}");
                    assert_eq!(format!("{:?}", a[0].as_ref().unwrap_err()), shown);
                }
                Next::Stop { slice, .. } => {
                    assert!(stops, "{shown}");
                    assert_eq!(format!("{slice:?}"), shown);
                }
                Next::Split => panic!("{shown}: one purchase cannot be split"),
            }
        }
    }

    #[test]
    fn halves_keep_order_and_cover_the_slice() {
        assert_eq!(halves(0..2), (0..1, 1..2));
        assert_eq!(halves(3..6), (3..4, 4..6));
        assert_eq!(halves(0..128), (0..64, 64..128));
    }

    /// A fake row: commits a slice when it has the units for all of it, else "sold out" (rolled
    /// back); `fail` injects an error at the given call (counting from 0).
    struct FakeRow {
        available: Cell<i32>,
        calls: RefCell<Vec<Range<usize>>>,
        fail: Option<(usize, fn() -> DbError)>,
    }

    impl FakeRow {
        fn new(available: i32) -> FakeRow {
            FakeRow {
                available: Cell::new(available),
                calls: RefCell::new(Vec::new()),
                fail: None,
            }
        }

        fn commit(
            &self,
            orders: &[NewOrder],
            slice: Range<usize>,
        ) -> Result<Vec<PurchaseOutcome>, DbError> {
            let call = self.calls.borrow().len();
            self.calls.borrow_mut().push(slice.clone());
            if let Some((at, e)) = self.fail {
                if at == call {
                    return Err(e());
                }
            }
            let slice = &orders[slice];
            let need: i32 = slice.iter().map(|o| o.quantity).sum();
            if need > self.available.get() {
                return Err(DbError::SoldOut);
            }
            self.available.set(self.available.get() - need);
            Ok(slice.iter().map(created).collect())
        }
    }

    /// Runs [`decide`] over `orders` against `row`; every purchase answered exactly once, and
    /// the order in which they were answered.
    async fn run(
        orders: &[NewOrder],
        row: &FakeRow,
    ) -> (Vec<Result<PurchaseOutcome, DbError>>, Vec<usize>) {
        let mut answers: Vec<Option<Result<PurchaseOutcome, DbError>>> =
            (0..orders.len()).map(|_| None).collect();
        let mut seen = Vec::new();
        decide(
            orders.len(),
            |slice| {
                let result = row.commit(orders, slice);
                async move { result }
            },
            |i, a| {
                assert!(answers[i].is_none(), "purchase {i} answered twice");
                answers[i] = Some(a);
                seen.push(i);
            },
        )
        .await;
        let answers = answers
            .into_iter()
            .enumerate()
            .map(|(i, a)| a.unwrap_or_else(|| panic!("purchase {i} never answered")))
            .collect();
        (answers, seen)
    }

    fn is_created(a: &Result<PurchaseOutcome, DbError>) -> bool {
        matches!(a, Ok(PurchaseOutcome::Created(_)))
    }

    /// Redis was ahead: 8 purchases, 3 units. The first three (first come, first served) get
    /// them, the rest are sold out, and it takes far fewer than one transaction per purchase
    /// beyond the bisection.
    #[tokio::test]
    async fn bisection_sells_exactly_what_the_row_has_first_come_first_served() {
        let orders: Vec<_> = (1..=8).map(|u| order(u, 1)).collect();
        let row = FakeRow::new(3);
        let (answers, seen) = run(&orders, &row).await;
        let sold: Vec<bool> = answers.iter().map(is_created).collect();
        assert_eq!(sold, [true, true, true, false, false, false, false, false]);
        assert!(answers[3..]
            .iter()
            .all(|a| matches!(a, Err(DbError::SoldOut))));
        assert_eq!(
            seen,
            (0..8).collect::<Vec<_>>(),
            "answered in arrival order"
        );
        assert_eq!(row.available.get(), 0);
        assert_eq!(row.calls.borrow()[0], 0..8, "the whole batch first");
    }

    /// A purchase that does not fit does not block a later one that does.
    #[tokio::test]
    async fn one_purchase_that_cannot_sell_does_not_fail_the_others() {
        let orders = vec![order(1, 1), order(2, 2), order(3, 1)];
        let row = FakeRow::new(2);
        let (answers, _) = run(&orders, &row).await;
        assert!(is_created(&answers[0]));
        assert!(matches!(answers[1], Err(DbError::SoldOut)));
        assert!(is_created(&answers[2]));
        assert_eq!(row.available.get(), 0);
    }

    /// A whole batch that finds no connection is answered in one go: one attempt, no per-item
    /// fallback.
    #[tokio::test]
    async fn no_connection_answers_the_whole_batch_at_once() {
        let orders: Vec<_> = (1..=128).map(|u| order(u, 1)).collect();
        let mut row = FakeRow::new(1000);
        row.fail = Some((0, || DbError::Unavailable("pool timeout".into())));
        let (answers, _) = run(&orders, &row).await;
        assert!(answers
            .iter()
            .all(|a| matches!(a, Err(DbError::Unavailable(_)))));
        assert_eq!(row.calls.borrow().len(), 1);
    }

    /// A batch whose connection died may have committed: every purchase of it stays unknown
    /// (for the reconciler), none is re-run.
    #[tokio::test]
    async fn a_lost_connection_leaves_the_whole_batch_unknown() {
        let orders: Vec<_> = (1..=10).map(|u| order(u, 1)).collect();
        let mut row = FakeRow::new(1000);
        row.fail = Some((0, || DbError::ConnectionLost("eof".into())));
        let (answers, _) = run(&orders, &row).await;
        assert!(answers
            .iter()
            .all(|a| matches!(a, Err(DbError::ConnectionLost(_)))));
        assert_eq!(row.calls.borrow().len(), 1);
    }

    /// Mid-bisection the database goes away: what was decided stands, the slice that failed
    /// gets its error, and everything not tried yet is answered at once without being tried.
    #[tokio::test]
    async fn the_database_failing_mid_bisection_stops_at_once() {
        let orders: Vec<_> = (1..=8).map(|u| order(u, 1)).collect();
        // Call 0: 0..8 sold out; 1: 0..4 commits; 2: 4..8 sold out; 3: 4..6 loses its connection.
        let mut row = FakeRow::new(5);
        row.fail = Some((3, || DbError::ConnectionLost("eof".into())));
        let (answers, _) = run(&orders, &row).await;
        assert!(answers[..4].iter().all(is_created));
        assert!(answers[4..6]
            .iter()
            .all(|a| matches!(a, Err(DbError::ConnectionLost(_)))));
        assert!(answers[6..]
            .iter()
            .all(|a| matches!(a, Err(DbError::Retryable(_)))));
        assert_eq!(*row.calls.borrow(), [0..8, 0..4, 4..8, 4..6]);

        let mut row = FakeRow::new(5);
        row.fail = Some((3, || DbError::Unavailable("pool timeout".into())));
        let (answers, _) = run(&orders, &row).await;
        assert!(answers[..4].iter().all(is_created));
        assert!(answers[4..]
            .iter()
            .all(|a| matches!(a, Err(DbError::Unavailable(_)))));
        assert_eq!(row.calls.borrow().len(), 4);
    }
}
