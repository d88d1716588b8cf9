//! The typed HTTP contract between the quota processes: what the region node's admin endpoint
//! answers, what the coordinator's admin API takes and answers, and what `quotactl` and the load
//! generator read. Serde types only (no I/O), so every party compiles against one definition and
//! a renamed field is a compile error instead of a silent zero.

use serde::{Deserialize, Serialize};

/// `GET /v1/admin/products/{p}/audit` on a region node: the region's truth about one product,
/// read in one Postgres snapshot, plus what its Redis holds. The coordinator's audit compares
/// it with the ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegionTruth {
    /// The region that answered.
    pub region: String,
    /// The product.
    pub product_id: i64,
    /// `g`: grants applied (cumulative).
    pub granted: i64,
    /// `rel`: units released back to the pool (cumulative).
    pub released: i64,
    /// Units sold (`sold`).
    pub sold: i64,
    /// `g − rel − sold`.
    pub available: i64,
    /// Number of order rows.
    pub order_count: i64,
    /// Σ order quantity (must equal `sold`).
    pub order_units: i64,
    /// Every buyer and the units they hold, `(user_id, units)` (for the cross-region per-user
    /// check).
    pub buyers: Vec<(i64, i64)>,
    /// Admission tokens in Redis; `None` when Redis could not be read or is being rebuilt.
    pub redis_stock: Option<i64>,
    /// Units admitted by Redis and not yet finished; `None` when unreadable.
    pub redis_in_flight: Option<i64>,
}
