//! The in-process product catalog: the first cache of the purchase path.
//!
//! It holds every product this region knows (loaded from Postgres at start, kept current by the
//! etcd watch), so it is *authoritative*: an id that is not here is unknown, and is answered 404
//! without a Redis or Postgres round trip — stronger than negative caching, which would still
//! let each new random id through once. Each entry also carries the sold-out flag (a sold-out
//! product is refused without touching Redis) and this process's in-flight purchase count (used
//! when Redis has to be rebuilt).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};

use crate::db::QuotaRow;

use quota_shared::model::ProductSpec;

/// One product and its in-process flags.
pub struct ProductEntry {
    spec: RwLock<Arc<ProductSpec>>,
    /// Set when Redis answered "no stock"; cleared when stock comes back (grant, give-back,
    /// reconciliation). A stale `true` costs a false 410 for at most one reconcile period;
    /// it never admits anybody.
    pub sold_out: AtomicBool,
    /// Units this process admitted in Redis and has not finished yet.
    pub in_flight: AtomicI64,
    /// `g − rel` at the last reconciliation, so a stock change caused by a grant or release is
    /// not reported as drift.
    pub holding_seen: AtomicI64,
    /// Purchase attempts so far (every answer counts, refusals included): the demand signal.
    pub attempts: AtomicU64,
    /// The quota row as the reconciler last read it (reported to the coordinator).
    pub last_quota: Mutex<Option<QuotaRow>>,
    /// The cumulative grant being applied that Redis does not reflect yet (0: none). Until a
    /// reconciliation pass has read `g` at least this high and raised Redis stock, "no stock" in
    /// Redis means "stock arriving", not "sold out".
    pub restock_target: AtomicI64,
    /// What the leader last said could still move here (see `quota_shared::model::Movable`).
    pub movable: Mutex<Option<quota_shared::model::Movable>>,
}

impl ProductEntry {
    /// The current spec (shared, not copied: this is on every purchase).
    pub fn spec(&self) -> Arc<ProductSpec> {
        Arc::clone(&self.spec.read().expect("catalog lock poisoned"))
    }
    /// Whether the sold-out flag is set.
    pub fn is_sold_out(&self) -> bool {
        self.sold_out.load(Ordering::Relaxed)
    }
    /// The quota row as last reconciled.
    pub fn quota(&self) -> Option<QuotaRow> {
        *self.last_quota.lock().expect("catalog lock poisoned")
    }
    /// Whether units could still reach `region`: a grant being applied here, or units elsewhere
    /// by a report younger than `max_age_ms` (older, or none: we cannot tell, and the local
    /// truth — sold out — stands).
    pub fn stock_elsewhere(&self, region: &str, now_ms: i64, max_age_ms: i64) -> bool {
        self.restock_target.load(Ordering::Relaxed) > 0
            || self
                .movable
                .lock()
                .expect("catalog lock poisoned")
                .as_ref()
                .is_some_and(|m| now_ms - m.at_ms <= max_age_ms && m.elsewhere(region) > 0)
    }

    /// A reconciliation pass that read `granted` has made Redis reflect it: clear the restock
    /// marker unless a newer grant is still being applied.
    pub fn restocked_up_to(&self, granted: i64) {
        let target = self.restock_target.load(Ordering::Relaxed);
        if target > 0 && granted >= target {
            let _ = self.restock_target.compare_exchange(
                target,
                0,
                Ordering::Relaxed,
                Ordering::Relaxed,
            );
        }
    }

    /// Sets or clears the flag from a known stock level.
    pub fn observe_stock(&self, stock: i64) {
        self.sold_out.store(stock <= 0, Ordering::Relaxed);
    }
}

/// Every product this region sells.
#[derive(Default)]
pub struct Catalog {
    inner: RwLock<HashMap<i64, Arc<ProductEntry>>>,
}

impl Catalog {
    /// The product, or `None` when it is unknown.
    pub fn get(&self, product_id: i64) -> Option<Arc<ProductEntry>> {
        self.inner
            .read()
            .expect("catalog lock poisoned")
            .get(&product_id)
            .cloned()
    }

    /// Adds or updates a product; its flags survive an update.
    pub fn upsert(&self, spec: ProductSpec) {
        let mut map = self.inner.write().expect("catalog lock poisoned");
        match map.get(&spec.product_id) {
            Some(e) => *e.spec.write().expect("catalog lock poisoned") = Arc::new(spec),
            None => {
                map.insert(
                    spec.product_id,
                    Arc::new(ProductEntry {
                        spec: RwLock::new(Arc::new(spec)),
                        sold_out: AtomicBool::new(false),
                        in_flight: AtomicI64::new(0),
                        holding_seen: AtomicI64::new(0),
                        attempts: AtomicU64::new(0),
                        last_quota: Mutex::new(None),
                        movable: Mutex::new(None),
                        restock_target: AtomicI64::new(0),
                    }),
                );
            }
        }
    }

    /// Every product id, sorted.
    pub fn ids(&self) -> Vec<i64> {
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
