//! The in-process product catalog: the first cache of the purchase path.
//!
//! It holds every product this region knows (loaded from Postgres at start, kept current by the
//! etcd watch), so it is *authoritative*: an id that is not here is unknown, and is answered 404
//! without a Redis or Postgres round trip — stronger than negative caching, which would still
//! let each new random id through once. Each entry also carries the product's availability
//! state (a sold-out product is refused without touching Redis; see
//! [`quota_shared::availability`]) and this process's in-flight purchase count (used when Redis
//! has to be rebuilt).

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use quota_shared::availability::{Ask, Availability, AvailabilityState};
use quota_shared::model::ProductSpec;

use crate::db::{CumulativeGrant, QuotaRow};
use crate::waitroom::WaitRoom;

/// One product and its in-process state.
pub(crate) struct ProductEntry {
    spec: RwLock<Arc<ProductSpec>>,
    /// Open, awaiting stock or sold out. A mutex around a few words, taken once on a purchase's
    /// way to admission and once more only when a refusal for lack of stock is answered; the
    /// atomic fast-path flag of before was dropped (no measurement showed a need for it).
    availability: Mutex<AvailabilityState>,
    /// Units this process admitted in Redis and has not finished yet.
    in_flight: AtomicI64,
    /// `g − rel` at the last reconciliation, so a stock change caused by a grant or release is
    /// not reported as drift.
    holding_seen: AtomicI64,
    /// Purchase attempts so far (every answer counts, refusals included): the demand signal.
    attempts: AtomicU64,
    /// The quota row as the reconciler last read it (reported to the coordinator).
    last_quota: Mutex<Option<QuotaRow>>,
    /// Buyers waiting, first come first served, for stock on its way.
    waitroom: WaitRoom,
}

impl ProductEntry {
    fn new(spec: ProductSpec) -> ProductEntry {
        ProductEntry {
            spec: RwLock::new(Arc::new(spec)),
            availability: Mutex::new(AvailabilityState::new()),
            in_flight: AtomicI64::new(0),
            holding_seen: AtomicI64::new(0),
            attempts: AtomicU64::new(0),
            last_quota: Mutex::new(None),
            waitroom: WaitRoom::new(),
        }
    }

    /// The current spec (shared, not copied: this is on every purchase).
    pub(crate) fn spec(&self) -> Arc<ProductSpec> {
        Arc::clone(&self.spec.read().expect("catalog lock poisoned"))
    }

    /// The quota row as last reconciled.
    pub(crate) fn quota(&self) -> Option<QuotaRow> {
        *self.last_quota.lock().expect("catalog lock poisoned")
    }

    /// The reconciler read `q` under the row lock.
    pub(crate) fn quota_read(&self, q: QuotaRow) {
        *self.last_quota.lock().expect("catalog lock poisoned") = Some(q);
    }

    /// Applies one availability event (see [`AvailabilityState`]'s event methods); if the
    /// product is open afterwards, the buyer waiting at the head of the wait room is woken.
    pub(crate) fn update(&self, event: impl FnOnce(&mut AvailabilityState)) {
        let open = {
            let mut a = self.availability.lock().expect("catalog lock poisoned");
            event(&mut a);
            a.open_here()
        };
        if open && self.waitroom.waiting() > 0 {
            self.waitroom.stock_arrived();
        }
    }

    /// The product's wait room (see [`crate::waitroom`]).
    pub(crate) fn waitroom(&self) -> &WaitRoom {
        &self.waitroom
    }

    /// The availability rule's answer to `ask` for a buyer of `region` at `now_ms`.
    pub(crate) fn answer(&self, ask: Ask, now_ms: i64, region: &str) -> Availability {
        self.answer_after(|_| {}, ask, now_ms, region)
    }

    /// Applies `event`, then answers `ask` for a buyer of `region` at `now_ms`, under one lock.
    pub(crate) fn answer_after(
        &self,
        event: impl FnOnce(&mut AvailabilityState),
        ask: Ask,
        now_ms: i64,
        region: &str,
    ) -> Availability {
        let mut a = self.availability.lock().expect("catalog lock poisoned");
        event(&mut a);
        a.answer(ask, now_ms, region)
    }

    /// The cumulative grant `G` is about to be applied: restocking unless the reconciler has
    /// already read `g ≥ G` (set before the commit; cleared by the first reconciliation that
    /// reads it).
    pub(crate) fn grant_seen(&self, grant: CumulativeGrant) {
        let g_last_read = self.quota().map_or(0, |q| q.applied_grant);
        self.update(|a| a.grant_seen(grant.units(), g_last_read));
    }

    /// Counts one purchase attempt (the demand signal).
    pub(crate) fn count_attempt(&self) {
        self.attempts.fetch_add(1, Ordering::Relaxed);
    }

    /// Purchase attempts so far.
    pub(crate) fn attempts(&self) -> u64 {
        self.attempts.load(Ordering::Relaxed)
    }

    /// `quantity` units were admitted by Redis (`+`) or finished (`−`) by this process.
    pub(crate) fn add_in_flight(&self, quantity: i64) {
        self.in_flight.fetch_add(quantity, Ordering::Relaxed);
    }

    /// Units this process admitted and has not finished.
    pub(crate) fn in_flight(&self) -> i64 {
        self.in_flight.load(Ordering::Relaxed)
    }

    /// Records `holding` (`g − rel`) as reconciled; returns whether it differs from the last
    /// one (then a stock change is quota moving, not drift).
    pub(crate) fn holding_changed(&self, holding: i64) -> bool {
        self.holding_seen.swap(holding, Ordering::Relaxed) != holding
    }
}

/// Every product this region sells.
#[derive(Default)]
pub(crate) struct Catalog {
    inner: RwLock<HashMap<i64, Arc<ProductEntry>>>,
}

impl Catalog {
    /// The product, or `None` when it is unknown.
    pub(crate) fn get(&self, product_id: i64) -> Option<Arc<ProductEntry>> {
        self.inner
            .read()
            .expect("catalog lock poisoned")
            .get(&product_id)
            .cloned()
    }

    /// Adds or updates a product; its state survives an update.
    pub(crate) fn upsert(&self, spec: ProductSpec) {
        let mut map = self.inner.write().expect("catalog lock poisoned");
        match map.get(&spec.product_id) {
            Some(e) => *e.spec.write().expect("catalog lock poisoned") = Arc::new(spec),
            None => {
                let entry = ProductEntry::new(spec);
                let now_ms = chrono::Utc::now().timestamp_millis();
                entry.update(|a| a.learned(now_ms));
                map.insert(entry.spec().product_id, Arc::new(entry));
            }
        }
    }

    /// Every product id, sorted.
    pub(crate) fn ids(&self) -> Vec<i64> {
        let mut v: Vec<i64> = self
            .inner
            .read()
            .expect("catalog lock poisoned")
            .keys()
            .copied()
            .collect();
        v.sort_unstable();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Utc;
    use rust_decimal::Decimal;

    fn spec(id: i64, name: &str) -> ProductSpec {
        ProductSpec {
            product_id: id,
            name: name.into(),
            total: 1,
            price: Decimal::ONE,
            original_price: Decimal::ONE,
            start_time: Utc::now(),
            end_time: Utc::now() + chrono::Duration::hours(1),
            per_user_limit: 1,
            ended: false,
            home_regions: Vec::new(),
            payment_window_s: None,
        }
    }

    impl ProductEntry {
        fn observe_stock(&self, stock: i64) {
            self.update(|a| a.stock_observed(stock));
        }
        fn is_sold_out(&self) -> bool {
            self.answer(Ask::BeforeAdmission, 0, "east") != Availability::Open
        }
    }

    #[test]
    fn update_keeps_flags() {
        let c = Catalog::default();
        assert!(c.get(1).is_none());
        c.upsert(spec(1, "a"));
        c.get(1).unwrap().observe_stock(0);
        c.upsert(spec(1, "b"));
        let e = c.get(1).unwrap();
        assert_eq!(e.spec().name, "b");
        assert!(e.is_sold_out());
        e.observe_stock(3);
        assert!(!e.is_sold_out());
        assert_eq!(c.ids(), vec![1]);
    }
}
