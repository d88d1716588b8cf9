//! One small, fixed snapshot for the unit tests of every crate that decides on snapshots (the
//! round here, the coordinator's audit verdict), so they all reason about the same numbers.

use std::collections::{BTreeMap, BTreeSet};

use crate::model::{Ledger, ProductSpec, RegionReport};

use super::LedgerSnapshot;

/// Total 120, `G` east = north = 50 (pool 20), both alive and reporting `g` = 50, sold 10,
/// available 40; south registered but silent.
pub fn snapshot() -> LedgerSnapshot {
    let now = chrono::Utc::now();
    let mut granted = BTreeMap::new();
    granted.insert("east".to_string(), 50);
    granted.insert("north".to_string(), 50);
    LedgerSnapshot {
        spec: ProductSpec {
            product_id: 1,
            name: "x".into(),
            total: 120,
            price: rust_decimal::Decimal::ONE,
            original_price: rust_decimal::Decimal::ONE,
            start_time: now,
            end_time: now + chrono::Duration::hours(1),
            per_user_limit: 1,
            ended: false,
            home_regions: Vec::new(),
            payment_window_s: None,
        },
        ledger: Ledger {
            total: 120,
            granted,
            ..Ledger::default()
        },
        revision: 1,
        published: BTreeMap::new(),
        reports: ["east", "north"]
            .iter()
            .map(|r| {
                (
                    r.to_string(),
                    RegionReport {
                        granted: 50,
                        available: 40,
                        sold: 10,
                        ..RegionReport::default()
                    },
                )
            })
            .collect(),
        requests: BTreeMap::new(),
        alive: ["east", "north"].iter().map(ToString::to_string).collect(),
        known: ["east", "north", "south"]
            .iter()
            .map(ToString::to_string)
            .collect(),
        draining: BTreeSet::new(),
        etcd_revision: 1,
        coordinator_writes: 1,
    }
}
