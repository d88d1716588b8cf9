//! The one rule that decides what a buyer hears when a region has nothing left for them:
//! `410 sold_out`, `503 awaiting_stock`, or nothing (the purchase may go on).
//!
//! A region answers "sold out" only when nothing could still come to it (ARCHITECTURE.md, "Sold
//! out vs awaiting stock"):
//!
//! * **Restocking.** While a grant is being applied — committed in Postgres, not yet in Redis —
//!   "no stock" in Redis means "stock arriving". The product is marked restocking when the grant
//!   is seen (before it is applied) and the mark is cleared by the first reconciliation pass that
//!   has read `g` at least that high and made Redis reflect it.
//! * **Stock elsewhere.** The leader publishes the units that could still move to each region
//!   ([`Movable`]); a fresh value (received at most [`MOVABLE_MAX_AGE_MS`] ago) with units
//!   elsewhere makes the answer "awaiting stock". A stale or missing value falls back to the local truth: sold
//!   out — except in the first [`MOVABLE_MAX_AGE_MS`] after the region learned of the product
//!   (a new sale, or a node restart), before the leader's first value can have arrived: a
//!   region with no units of its own yet must not tell the sale's first buyers it is over.
//!
//! This is a liveness/UX rule only: it decides between two refusals and never admits anybody
//! (Redis and Postgres do). A stale "empty" flag costs a false refusal for at most one
//! reconcile period.
//!
//! [`AvailabilityState`] is pure: every input arrives through one method per event, and
//! [`AvailabilityState::answer`] is the only question. The caller supplies the clock: this
//! region's own milliseconds, and only ever compared with itself. Freshness is *when the value
//! arrived here*, never the leader's [`Movable::at_ms`] stamp: comparing two machines' clocks
//! turned a skew of more than [`MOVABLE_MAX_AGE_MS`] into permanent false "sold out" answers
//! (leader behind) or endless "awaiting stock" (leader ahead). The leader re-publishes the
//! value every second while it leads, so a value that stops arriving — no leader, or this
//! region cut off from etcd — goes stale on the region's own clock.

use crate::model::Movable;

/// How old the leader's "movable stock" may be and still be believed (it is republished
/// every second).
pub const MOVABLE_MAX_AGE_MS: i64 = 5_000;

/// What a buyer hears about this region's stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Availability {
    /// Nothing known against selling: the purchase goes on to admission.
    Open,
    /// Out here for now, but units are arriving or could still move here: 503, retry.
    AwaitingStock,
    /// Out here and nothing could come here: 410.
    SoldOut,
}

/// Who is asking [`AvailabilityState::answer`], i.e. what the asker itself saw of local stock.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ask {
    /// The gate before admission: the last Redis answer about this product decides.
    BeforeAdmission,
    /// Redis or Postgres just refused this purchase for lack of stock here: the answer is one
    /// of the two refusals, whatever the last Redis answer said.
    ShortHere,
}

/// One product's availability inputs in one region. Private state; change it only through
/// the event methods.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct AvailabilityState {
    /// Set when Redis answered "no stock"; cleared when stock comes back (grant, give-back,
    /// reconciliation).
    empty_here: bool,
    /// The cumulative grant `G` being applied that Redis does not reflect yet (0: none).
    restock_target: i64,
    /// What the leader last said could still move here.
    movable: Option<Movable>,
    /// When that value arrived here (this region's clock).
    movable_seen_at_ms: i64,
    /// When this region learned of the product (wall-clock ms), if told.
    learned_at_ms: Option<i64>,
}

impl AvailabilityState {
    /// A product nothing is known about yet: open.
    pub fn new() -> Self {
        Self::default()
    }

    /// A cumulative grant `G` is about to be applied; `g_last_read` is the applied grant `g`
    /// the reconciler last read (0 when it has not read the row yet). If `G` is above it, the
    /// product is restocking until a reconciliation pass reads `g ≥ G` (set *before* the
    /// commit, so no buyer can see the new `g` in Postgres while Redis still says "empty"
    /// without the mark).
    pub fn grant_seen(&mut self, cumulative: i64, g_last_read: i64) {
        if cumulative > g_last_read {
            self.restock_target = self.restock_target.max(cumulative);
        }
    }

    /// A reconciliation pass read the applied grant `g_read` and set Redis stock to
    /// `redis_stock`: Redis now reflects every grant up to `g_read`, so the restock mark is
    /// cleared unless a newer grant is still being applied.
    pub fn reconciled(&mut self, g_read: i64, redis_stock: i64) {
        self.stock_observed(redis_stock);
        if self.restock_target > 0 && g_read >= self.restock_target {
            self.restock_target = 0;
        }
    }

    /// Redis said how much stock is left (a give-back, a rebuild): sets or clears the flag.
    pub fn stock_observed(&mut self, remaining: i64) {
        self.empty_here = remaining <= 0;
    }

    /// Redis said it has nothing left (an admission took the last unit, or refused for lack
    /// of stock).
    pub fn redis_empty(&mut self) {
        self.empty_here = true;
    }

    /// The region learned of the product at `now_ms` (its spec arrived, or the node started
    /// with it): until a movable value can have arrived, "nothing known" means "wait".
    pub fn learned(&mut self, now_ms: i64) {
        self.learned_at_ms.get_or_insert(now_ms);
    }

    /// The leader's value of what could still move to each region arrived at `now_ms`.
    pub fn movable_seen(&mut self, movable: Movable, now_ms: i64) {
        self.movable = Some(movable);
        self.movable_seen_at_ms = now_ms;
    }

    /// Whether units could still reach `region`: a grant being applied here, or units
    /// elsewhere by a value received at most [`MOVABLE_MAX_AGE_MS`] ago (earlier, or none: we
    /// cannot tell, and the local truth — sold out — stands).
    fn stock_could_come(&self, region: &str, now_ms: i64) -> bool {
        self.restock_target > 0
            || match &self.movable {
                Some(m) => {
                    now_ms - self.movable_seen_at_ms <= MOVABLE_MAX_AGE_MS
                        && m.elsewhere(region) > 0
                }
                None => self
                    .learned_at_ms
                    .is_some_and(|t| now_ms - t <= MOVABLE_MAX_AGE_MS),
            }
    }

    /// Whether Redis last said there is stock here (the gate before admission is open, whatever
    /// the leader says about elsewhere): the moment to wake buyers waiting for stock.
    pub fn open_here(&self) -> bool {
        !self.empty_here
    }

    /// The answer for a buyer of `region` at wall-clock `now_ms`.
    pub fn answer(&self, ask: Ask, now_ms: i64, region: &str) -> Availability {
        let empty = match ask {
            Ask::BeforeAdmission => self.empty_here,
            Ask::ShortHere => true,
        };
        if !empty {
            Availability::Open
        } else if self.stock_could_come(region, now_ms) {
            Availability::AwaitingStock
        } else {
            Availability::SoldOut
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use proptest::prelude::*;

    use super::*;

    fn movable(pool: i64, east: i64, south: i64, at_ms: i64) -> Movable {
        Movable {
            pool,
            regions: BTreeMap::from([("east".to_string(), east), ("south".to_string(), south)]),
            at_ms,
        }
    }

    #[test]
    fn new_product_is_open_and_a_short_buyer_hears_sold_out() {
        let s = AvailabilityState::new();
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 0, "east"),
            Availability::Open
        );
        assert_eq!(s.answer(Ask::ShortHere, 0, "east"), Availability::SoldOut);
    }

    #[test]
    fn empty_redis_closes_the_gate_until_stock_is_observed() {
        let mut s = AvailabilityState::new();
        s.redis_empty();
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 0, "east"),
            Availability::SoldOut
        );
        s.stock_observed(3);
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 0, "east"),
            Availability::Open
        );
        s.stock_observed(0);
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 0, "east"),
            Availability::SoldOut
        );
    }

    #[test]
    fn a_grant_being_applied_means_awaiting_until_reconciled_up_to_it() {
        let mut s = AvailabilityState::new();
        s.redis_empty();
        s.grant_seen(10, 0);
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 0, "east"),
            Availability::AwaitingStock
        );
        // A pass that read an older g does not clear the mark.
        s.reconciled(5, 0);
        assert_eq!(
            s.answer(Ask::ShortHere, 0, "east"),
            Availability::AwaitingStock
        );
        // A newer grant raises the target; reading the old target is not enough.
        s.grant_seen(20, 5);
        s.reconciled(10, 0);
        assert_eq!(
            s.answer(Ask::ShortHere, 0, "east"),
            Availability::AwaitingStock
        );
        s.reconciled(20, 0);
        assert_eq!(s.answer(Ask::ShortHere, 0, "east"), Availability::SoldOut);
    }

    #[test]
    fn a_grant_already_read_does_not_mark_restocking() {
        let mut s = AvailabilityState::new();
        s.grant_seen(10, 10);
        assert_eq!(s.answer(Ask::ShortHere, 0, "east"), Availability::SoldOut);
    }

    #[test]
    fn movable_stock_counts_only_elsewhere_and_only_while_fresh() {
        let mut s = AvailabilityState::new();
        s.redis_empty();
        // Units only in this region: nothing can come here.
        s.movable_seen(movable(0, 5, 0, 1_000), 1_000);
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 1_000, "east"),
            Availability::SoldOut
        );
        s.movable_seen(movable(0, 0, 5, 1_000), 1_000);
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 1_000, "east"),
            Availability::AwaitingStock
        );
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 1_000 + MOVABLE_MAX_AGE_MS, "east"),
            Availability::AwaitingStock
        );
        assert_eq!(
            s.answer(Ask::BeforeAdmission, 1_001 + MOVABLE_MAX_AGE_MS, "east"),
            Availability::SoldOut
        );
        s.movable_seen(movable(2, 0, 0, 1_000), 1_000);
        assert_eq!(
            s.answer(Ask::ShortHere, 1_000, "east"),
            Availability::AwaitingStock
        );
    }

    #[test]
    fn the_leaders_clock_is_never_compared_with_ours() {
        let mut s = AvailabilityState::new();
        s.redis_empty();
        // Leader a minute behind: its value is fresh because it just arrived.
        s.movable_seen(movable(0, 0, 5, 1_000 - 60_000), 1_000);
        assert_eq!(
            s.answer(Ask::ShortHere, 1_000, "east"),
            Availability::AwaitingStock
        );
        // Leader a minute ahead: the value still goes stale once it stops arriving.
        s.movable_seen(movable(0, 0, 5, 1_000 + 60_000), 1_000);
        assert_eq!(
            s.answer(Ask::ShortHere, 1_001 + MOVABLE_MAX_AGE_MS, "east"),
            Availability::SoldOut
        );
    }

    /// The rule as it was spread over `ProductEntry` (an atomic flag, a restock target with
    /// `fetch_max` / compare-and-clear, and the movable value), kept as the reference the one
    /// type must agree with.
    #[derive(Default)]
    struct Reference {
        sold_out: bool,
        restock_target: i64,
        movable: Option<Movable>,
    }

    impl Reference {
        fn apply(&mut self, e: &Event) {
            match e {
                Event::GrantSeen {
                    cumulative,
                    g_last_read,
                } => {
                    if cumulative > g_last_read {
                        self.restock_target = self.restock_target.max(*cumulative);
                    }
                }
                Event::Reconciled { g_read, stock } => {
                    self.sold_out = *stock <= 0;
                    if self.restock_target > 0 && *g_read >= self.restock_target {
                        self.restock_target = 0;
                    }
                }
                Event::StockObserved(n) => self.sold_out = *n <= 0,
                Event::RedisEmpty => self.sold_out = true,
                Event::Movable(m) => self.movable = Some(m.clone()),
            }
        }

        fn elsewhere(&self, region: &str, now_ms: i64) -> bool {
            self.restock_target > 0
                || self.movable.as_ref().is_some_and(|m| {
                    now_ms - m.at_ms <= MOVABLE_MAX_AGE_MS && m.elsewhere(region) > 0
                })
        }

        fn gate(&self, region: &str, now_ms: i64) -> Availability {
            if !self.sold_out {
                Availability::Open
            } else {
                self.short(region, now_ms)
            }
        }

        fn short(&self, region: &str, now_ms: i64) -> Availability {
            if self.elsewhere(region, now_ms) {
                Availability::AwaitingStock
            } else {
                Availability::SoldOut
            }
        }
    }

    #[derive(Debug, Clone)]
    enum Event {
        GrantSeen { cumulative: i64, g_last_read: i64 },
        Reconciled { g_read: i64, stock: i64 },
        StockObserved(i64),
        RedisEmpty,
        Movable(Movable),
    }

    fn event() -> impl Strategy<Value = Event> {
        prop_oneof![
            (0..50i64, 0..50i64).prop_map(|(cumulative, g_last_read)| Event::GrantSeen {
                cumulative,
                g_last_read
            }),
            (0..50i64, -2..5i64).prop_map(|(g_read, stock)| Event::Reconciled { g_read, stock }),
            (-2..5i64).prop_map(Event::StockObserved),
            Just(Event::RedisEmpty),
            (0..3i64, 0..3i64, 0..3i64, 0..20_000i64)
                .prop_map(|(p, e, s, at)| Event::Movable(movable(p, e, s, at))),
        ]
    }

    fn apply(s: &mut AvailabilityState, e: &Event) {
        match e {
            Event::GrantSeen {
                cumulative,
                g_last_read,
            } => s.grant_seen(*cumulative, *g_last_read),
            Event::Reconciled { g_read, stock } => s.reconciled(*g_read, *stock),
            Event::StockObserved(n) => s.stock_observed(*n),
            Event::RedisEmpty => s.redis_empty(),
            // Received the instant it was stamped: the reference compares with the stamp.
            Event::Movable(m) => s.movable_seen(m.clone(), m.at_ms),
        }
    }

    #[test]
    fn a_just_learned_product_waits_for_the_leaders_first_word() {
        let mut s = AvailabilityState::new();
        s.learned(1_000);
        s.learned(4_000); // the first time counts
        assert_eq!(
            s.answer(Ask::ShortHere, 1_000, "east"),
            Availability::AwaitingStock
        );
        assert_eq!(
            s.answer(Ask::ShortHere, 1_000 + MOVABLE_MAX_AGE_MS, "east"),
            Availability::AwaitingStock
        );
        assert_eq!(
            s.answer(Ask::ShortHere, 1_001 + MOVABLE_MAX_AGE_MS, "east"),
            Availability::SoldOut,
            "no word from the leader for too long: the local truth stands"
        );
        // Once the leader has spoken, its word decides.
        s.movable_seen(movable(0, 0, 0, 1_500), 1_500);
        assert_eq!(
            s.answer(Ask::ShortHere, 1_600, "east"),
            Availability::SoldOut
        );
    }

    proptest! {
        /// After any sequence of events, the one type answers exactly as the old spread-out
        /// rule did, for both askers, any clock and either region.
        #[test]
        fn agrees_with_the_reference_rule(
            events in proptest::collection::vec(event(), 0..40),
            now_ms in 0..30_000i64,
            region in prop_oneof![Just("east"), Just("south")],
        ) {
            let mut s = AvailabilityState::new();
            let mut r = Reference::default();
            for e in &events {
                apply(&mut s, e);
                r.apply(e);
                prop_assert_eq!(s.answer(Ask::BeforeAdmission, now_ms, region), r.gate(region, now_ms));
                prop_assert_eq!(s.answer(Ask::ShortHere, now_ms, region), r.short(region, now_ms));
            }
        }

        /// A buyer who was refused for lack of stock is never told "open".
        #[test]
        fn short_here_is_never_open(
            events in proptest::collection::vec(event(), 0..40),
            now_ms in 0..30_000i64,
        ) {
            let mut s = AvailabilityState::new();
            for e in &events {
                apply(&mut s, e);
            }
            prop_assert_ne!(s.answer(Ask::ShortHere, now_ms, "east"), Availability::Open);
        }

        /// Restocking lasts exactly until a pass reads a grant at least as high as every grant
        /// seen above what had been read.
        #[test]
        fn restocking_ends_only_when_the_highest_grant_is_read(
            grants in proptest::collection::vec(1..100i64, 1..10),
            g_read in 0..100i64,
        ) {
            let mut s = AvailabilityState::new();
            for g in &grants {
                s.grant_seen(*g, 0);
            }
            s.reconciled(g_read, 0);
            let highest = *grants.iter().max().unwrap();
            let expected = if g_read >= highest {
                Availability::SoldOut
            } else {
                Availability::AwaitingStock
            };
            prop_assert_eq!(s.answer(Ask::BeforeAdmission, 0, "east"), expected);
        }
    }
}
