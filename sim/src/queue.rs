//! The event queue: events in (time, sequence) order, as a *calendar* — one small binary heap
//! per millisecond over a window of [`SLOTS`] milliseconds ahead, and one heap for anything
//! beyond it.
//!
//! Why not one binary heap: a large sale has millions of pending events (every waiting
//! buyer's deadline, every back-off, every message in flight), and each push and pop of a
//! heap that size walks ~20 levels of cache misses; profiling showed three quarters of the
//! run in its sift. Nearly every event is scheduled less than a few seconds ahead, so it lands
//! in a bucket holding only the events of its millisecond. The order is exactly the one heap's
//! — by bucket (time) first, then by (time, sequence) inside it — so a seed replays the same
//! run either way.

use std::cmp::Ordering;
use std::collections::BinaryHeap;

/// Bucket width, microseconds.
const WIDTH: u64 = 1_000;
/// Buckets in the window (a power of two): 8.192 s ahead.
const SLOTS: u64 = 8_192;
/// Capacity an emptied bucket may keep for reuse.
const KEEP_CAPACITY: usize = 64;

/// One scheduled item.
struct Entry<T> {
    at: u64,
    seq: u64,
    item: T,
}

impl<T> PartialEq for Entry<T> {
    fn eq(&self, other: &Self) -> bool {
        (self.at, self.seq) == (other.at, other.seq)
    }
}
impl<T> Eq for Entry<T> {}
impl<T> PartialOrd for Entry<T> {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl<T> Ord for Entry<T> {
    /// Reversed, so the max-heap pops the earliest (time, sequence) first.
    fn cmp(&self, other: &Self) -> Ordering {
        other
            .at
            .cmp(&self.at)
            .then_with(|| other.seq.cmp(&self.seq))
    }
}

/// Items popped in (time, sequence) order. Times pushed must not be earlier than the last
/// popped one (a simulation never schedules into its past).
pub(crate) struct Calendar<T> {
    buckets: Vec<BinaryHeap<Entry<T>>>,
    /// The bucket number (time / WIDTH) the window starts at.
    base: u64,
    /// Items beyond the window.
    far: BinaryHeap<Entry<T>>,
    len: usize,
}

impl<T> Calendar<T> {
    pub(crate) fn new() -> Calendar<T> {
        Calendar {
            buckets: (0..SLOTS).map(|_| BinaryHeap::new()).collect(),
            base: 0,
            far: BinaryHeap::new(),
            len: 0,
        }
    }

    pub(crate) fn push(&mut self, at: u64, seq: u64, item: T) {
        let bucket = at / WIDTH;
        debug_assert!(bucket >= self.base, "scheduled into the past");
        let e = Entry { at, seq, item };
        if bucket < self.base + SLOTS {
            self.buckets[(bucket % SLOTS) as usize].push(e);
        } else {
            self.far.push(e);
        }
        self.len += 1;
    }

    /// The earliest item and its time.
    pub(crate) fn pop(&mut self) -> Option<(u64, T)> {
        loop {
            if self.len == 0 {
                return None;
            }
            if let Some(e) = self.buckets[(self.base % SLOTS) as usize].pop() {
                self.len -= 1;
                return Some((e.at, e.item));
            }
            // This millisecond is done: give back a large bucket's memory (a busy millisecond
            // must not pin its peak for the rest of the run), move on (straight to the far
            // heap's first item when the window holds nothing), and bring far items into the
            // window as it advances.
            let done = &mut self.buckets[(self.base % SLOTS) as usize];
            if done.capacity() > KEEP_CAPACITY {
                *done = BinaryHeap::new();
            }
            self.base = if self.len == self.far.len() {
                self.far.peek().map_or(self.base + 1, |e| e.at / WIDTH)
            } else {
                self.base + 1
            };
            while self
                .far
                .peek()
                .is_some_and(|e| e.at / WIDTH < self.base + SLOTS)
            {
                let e = self.far.pop().expect("peeked");
                self.buckets[((e.at / WIDTH) % SLOTS) as usize].push(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The calendar pops exactly what one binary heap ordered by (time, sequence) pops, for
    /// times near and far (beyond the window), ties included.
    #[test]
    fn same_order_as_one_heap() {
        let mut cal = Calendar::new();
        let mut heap = BinaryHeap::new();
        let mut seq = 0;
        let mut now = 0u64;
        let mut x: u64 = 88_172_645_463_325_252;
        let mut popped = 0;
        for round in 0..20_000u64 {
            // A few pushes at pseudo-random delays (some beyond the 8 s window), then a pop.
            for _ in 0..(round % 3) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let delay = match x % 10 {
                    0 => 20_000_000 + x % 5_000_000,
                    1 => 0,
                    _ => x % 3_000,
                };
                seq += 1;
                cal.push(now + delay, seq, seq);
                heap.push(Entry {
                    at: now + delay,
                    seq,
                    item: seq,
                });
            }
            let a = cal.pop();
            let b = heap.pop().map(|e| (e.at, e.item));
            assert_eq!(a, b, "round {round}");
            if let Some((at, _)) = a {
                now = at;
                popped += 1;
            }
        }
        while let Some(b) = heap.pop() {
            assert_eq!(cal.pop(), Some((b.at, b.item)));
        }
        assert_eq!(cal.pop(), None);
        assert!(popped > 1_000);
    }
}
