//! A bounded first-come-first-served wait for stock that is on its way.
//!
//! Without it, a region that is out of stock *for now* (units are moving towards it) answers
//! `503 awaiting_stock` and the buyer retries after a back-off. That costs the buyer their place
//! in line (a later arrival elsewhere takes the unit), inflates the region's demand signal with
//! retries, and makes every buyer pay at least one back-off. Instead the buyer waits here, in
//! arrival order, for at most `--await-stock-ms`; the unit is handed to the head of the line
//! the moment it arrives, and only a buyer still waiting at its deadline hears the 503.
//!
//! One room per product. A *turnstile* (a fair semaphore with one permit: tokio's semaphore
//! grants permits in the order they were asked for) lets one buyer at a time try admission, in
//! arrival order; while anybody waits, new buyers queue behind them instead of overtaking.
//! The buyer at the head sleeps until stock arrives ([`WaitRoom::stock_arrived`], called when
//! the product's availability turns open) or a short poll interval passes (so a wake-up that
//! slips between a check and the sleep costs at most that interval).
//!
//! Safety: waiting changes only *when* a buyer is answered, never *whether* a sale is allowed —
//! admission (Redis) and the commit (Postgres) decide exactly as without the room.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use tokio::sync::{Notify, Semaphore, SemaphorePermit};
use tokio::time::Instant;

/// How often the buyer at the head re-checks even without a wake-up.
const POLL: Duration = Duration::from_millis(20);

/// One product's queue of buyers waiting for stock.
pub(crate) struct WaitRoom {
    turnstile: Semaphore,
    arrived: Notify,
    waiting: AtomicUsize,
}

/// A buyer's turn at the head of the line; leaving (drop) lets the next buyer try.
pub(crate) struct Turn<'a> {
    room: &'a WaitRoom,
    _permit: SemaphorePermit<'a>,
}

impl WaitRoom {
    /// An empty room.
    pub(crate) fn new() -> WaitRoom {
        WaitRoom {
            turnstile: Semaphore::new(1),
            arrived: Notify::new(),
            waiting: AtomicUsize::new(0),
        }
    }

    /// Buyers in the room (queued or at the head): a new buyer queues behind them, and the
    /// count is an exact measure of demand the region cannot serve yet.
    pub(crate) fn waiting(&self) -> usize {
        self.waiting.load(Ordering::Relaxed)
    }

    /// Joins the line and waits for this buyer's turn until `deadline`. `None` when the
    /// deadline passes first or `capacity` buyers are already waiting (the caller answers
    /// 503 awaiting_stock, as without the room).
    pub(crate) async fn enter(&self, deadline: Instant, capacity: usize) -> Option<Turn<'_>> {
        if self.waiting.fetch_add(1, Ordering::Relaxed) >= capacity {
            self.waiting.fetch_sub(1, Ordering::Relaxed);
            return None;
        }
        match tokio::time::timeout_at(deadline, self.turnstile.acquire()).await {
            Ok(Ok(permit)) => Some(Turn {
                room: self,
                _permit: permit,
            }),
            // Timed out, or the semaphore was closed (never: it is not closed anywhere).
            Ok(Err(_)) | Err(_) => {
                self.waiting.fetch_sub(1, Ordering::Relaxed);
                None
            }
        }
    }

    /// Stock may have arrived for this product: wake the buyer at the head.
    pub(crate) fn stock_arrived(&self) {
        self.arrived.notify_waiters();
    }
}

impl Turn<'_> {
    /// Sleeps until stock may have arrived, a poll interval passed, or `deadline`. Returns
    /// whether there is still time to try again.
    pub(crate) async fn wait_for_stock(&self, deadline: Instant) -> bool {
        let wake = (Instant::now() + POLL).min(deadline);
        let _ = tokio::time::timeout_at(wake, self.room.arrived.notified()).await;
        Instant::now() < deadline
    }
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        self.room.waiting.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[tokio::test(start_paused = true)]
    async fn buyers_get_their_turn_in_arrival_order() {
        let room = Arc::new(WaitRoom::new());
        let order = Arc::new(std::sync::Mutex::new(Vec::new()));
        let mut tasks = Vec::new();
        for i in 0..5 {
            let (room, order) = (Arc::clone(&room), Arc::clone(&order));
            tasks.push(tokio::spawn(async move {
                let deadline = Instant::now() + Duration::from_secs(10);
                let turn = room.enter(deadline, 100).await.expect("in time");
                order.lock().unwrap().push(i);
                tokio::time::sleep(Duration::from_millis(5)).await;
                drop(turn);
            }));
            // Arrive one after another.
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(*order.lock().unwrap(), vec![0, 1, 2, 3, 4]);
        assert_eq!(room.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn a_full_room_or_a_passed_deadline_turns_the_buyer_away() {
        let room = WaitRoom::new();
        let far = Instant::now() + Duration::from_secs(10);
        let head = room.enter(far, 1).await.expect("first buyer");
        assert!(room.enter(far, 1).await.is_none(), "capacity 1 is taken");
        let soon = Instant::now() + Duration::from_millis(50);
        assert!(
            room.enter(soon, 10).await.is_none(),
            "the head never leaves"
        );
        assert_eq!(room.waiting(), 1);
        drop(head);
        assert_eq!(room.waiting(), 0);
    }

    #[tokio::test(start_paused = true)]
    async fn the_head_wakes_when_stock_arrives_and_gives_up_at_its_deadline() {
        let room = Arc::new(WaitRoom::new());
        let deadline = Instant::now() + Duration::from_millis(100);
        let turn = room.enter(deadline, 10).await.unwrap();
        let notifier = Arc::clone(&room);
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(5)).await;
            notifier.stock_arrived();
        });
        let before = Instant::now();
        assert!(turn.wait_for_stock(deadline).await);
        assert!(Instant::now() - before <= POLL);
        while turn.wait_for_stock(deadline).await {}
        assert!(Instant::now() >= deadline);
    }
}
