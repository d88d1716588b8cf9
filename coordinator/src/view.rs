//! JSON shapes of the admin API, shared by the server and `quotactl`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quota_shared::model::ProductSpec;
use quota_shared::policy::{Move, PolicyKind};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// `POST /v1/admin/products`: a new sale. Omitted times default to now and now + 1 h; the
/// per-user limit defaults to 1. `split` optionally grants an initial static split.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Positive, unique.
    pub product_id: i64,
    /// Shown to buyers.
    pub name: String,
    /// Units on sale in all regions.
    pub total: i64,
    /// Sale price.
    pub price: Decimal,
    /// List price (defaults to the sale price).
    #[serde(default)]
    pub original_price: Option<Decimal>,
    /// Sale start (default: now).
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// Sale end (default: start + 1 h).
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    /// Units per user across regions (default 1).
    #[serde(default)]
    pub per_user_limit: Option<i32>,
    /// Units each region should hold initially.
    #[serde(default)]
    pub split: Option<BTreeMap<String, i64>>,
    /// Rebalance policy (default: demand).
    #[serde(default)]
    pub policy: Option<PolicyKind>,
}

/// `PUT /v1/admin/products/{id}/policy`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// demand | static | even.
    pub policy: PolicyKind,
}

/// `POST /v1/admin/products/{id}/restock`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    /// Units added to the pool (> 0).
    pub units: i64,
}

/// `POST /v1/admin/regions/{region}/drain`.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    /// true: start draining; false: stop.
    #[serde(default = "yes")]
    pub on: bool,
}

fn yes() -> bool {
    true
}

/// The moves of one rebalance round, with the product afterwards.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RoundView {
    /// Grants and releases made.
    pub moves: Vec<Move>,
    /// The product after the round.
    pub product: ProductView,
}

/// `PUT /v1/admin/products/{id}/quota`: units each named region should hold.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetSplit {
    /// Region → units to hold (`G − R` after the change).
    pub split: BTreeMap<String, i64>,
}

/// One region's share of a product, as the ledger sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegionShare {
    /// Cumulative grant `G`.
    pub granted: i64,
    /// Cumulative release `R` the region has published.
    pub released: i64,
    /// `G − R`: units the region holds (sold, available or grant in transit).
    pub holds: i64,
}

/// A product as the admin API shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductView {
    /// The spec regions see.
    pub spec: ProductSpec,
    /// Total units.
    pub total: i64,
    /// Units not allocated to any region.
    pub pool: i64,
    /// Rebalance policy.
    pub policy: PolicyKind,
    /// Per region.
    pub regions: BTreeMap<String, RegionShare>,
}

/// A region as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionView {
    /// Name.
    pub region: String,
    /// Public URL its node registered.
    pub url: String,
    /// Whether its leased heartbeat is present.
    pub alive: bool,
    /// Age of its latest report in milliseconds (None: no report).
    pub last_report_ms: Option<i64>,
}

/// `GET /v1/admin/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusView {
    /// Id of the leading coordinator (None: no leader elected).
    pub leader: Option<String>,
    /// Per product.
    pub products: Vec<ProductStatus>,
}

/// One product's status.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductStatus {
    /// Id.
    pub product_id: i64,
    /// Name.
    pub name: String,
    /// Total units.
    pub total: i64,
    /// Units in the pool.
    pub pool: i64,
    /// Rebalance policy.
    pub policy: PolicyKind,
    /// Within the sale window now.
    pub active: bool,
    /// Per region.
    pub regions: BTreeMap<String, RegionStatus>,
}

/// One region's status for a product (report values are None while it does not report).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionStatus {
    /// `G`.
    pub granted: i64,
    /// `g` as reported.
    pub applied: Option<i64>,
    /// `R` as published.
    pub released: i64,
    /// Sold, as reported.
    pub sold: Option<i64>,
    /// Available, as reported.
    pub available: Option<i64>,
    /// `(G − g) + (rel − R)`.
    pub in_transit: Option<i64>,
    /// Purchase attempts per second.
    pub demand: f64,
    /// Heartbeat present.
    pub alive: bool,
    /// Being drained.
    pub draining: bool,
}

/// `GET /v1/admin/audit`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditReport {
    /// Every product's identity holds and every region was read.
    pub ok: bool,
    /// Regions that could not be read (and why).
    pub unreadable: Vec<String>,
    /// Per product.
    pub products: Vec<ProductAudit>,
}

/// One product's audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ProductAudit {
    /// Id.
    pub product_id: i64,
    /// Total.
    pub total: i64,
    /// Pool.
    pub pool: i64,
    /// Σ sold.
    pub sold: i64,
    /// No violation and nothing unreadable.
    pub ok: bool,
    /// Each broken rule, in words.
    pub violations: Vec<String>,
    /// Regions not read.
    pub unreadable: Vec<String>,
    /// Per region terms.
    pub regions: BTreeMap<String, RegionAudit>,
}

/// One region's terms in the audit.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RegionAudit {
    /// `G` (etcd).
    pub granted: i64,
    /// `g` (region Postgres).
    pub applied: i64,
    /// `rel` (region Postgres).
    pub released: i64,
    /// `R` (etcd).
    pub released_published: i64,
    /// Sold.
    pub sold: i64,
    /// `g − rel − sold`.
    pub available: i64,
    /// Order rows.
    pub order_count: i64,
    /// Σ order quantity.
    pub order_units: i64,
    /// `G − g`.
    pub grant_in_transit: i64,
    /// `rel − R`.
    pub release_in_transit: i64,
    /// Redis stock.
    pub redis_stock: Option<i64>,
    /// Redis stock + in flight − available (> 0 would over-admit).
    pub redis_drift: Option<i64>,
}
