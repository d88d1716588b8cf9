//! JSON shapes of the admin API, shared by the server and `quotactl`.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use quota_shared::model::ProductSpec;
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
}
