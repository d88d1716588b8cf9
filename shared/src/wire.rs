//! The typed HTTP contract between the quota processes: what the region node's admin endpoint
//! answers, what the coordinator's admin API takes and answers, and what `quotactl` and the load
//! generator read. Serde types only (no I/O), so every party compiles against one definition and
//! a renamed field is a compile error instead of a silent zero.
//!
//! Field names and order are the JSON (tests and scripts parse it): change them only together
//! with every reader.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::error::Invalid;
use crate::model::ProductSpec;
use crate::policy::{Move, PolicyKind};

/// Request header carrying an [`IdempotencyKey`] on a mutating admin call.
pub const IDEMPOTENCY_KEY_HEADER: &str = "idempotency-key";

/// Response header set to `true` when a call with an idempotency key had already been applied
/// and this answer changed nothing.
pub const IDEMPOTENT_REPLAYED_HEADER: &str = "idempotent-replayed";

/// A client's name for one mutating admin call. The coordinator records it in the same etcd
/// transaction as the change, so the same call sent again — a retry after a timeout, or an
/// operator rerunning a command whose answer was lost — is applied at most once. It becomes
/// part of an etcd key, hence the narrow alphabet.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct IdempotencyKey(String);

impl IdempotencyKey {
    /// Longest key accepted.
    pub const MAX_LEN: usize = 128;

    /// Validates a key: 1–128 characters of `A–Z a–z 0–9 - _ . :`.
    pub fn parse(raw: &str) -> Result<IdempotencyKey, Invalid> {
        let ok = !raw.is_empty()
            && raw.len() <= Self::MAX_LEN
            && raw
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b':'));
        if ok {
            Ok(IdempotencyKey(raw.to_string()))
        } else {
            Err(Invalid(format!(
                "idempotency key must be 1-{} characters of A-Z a-z 0-9 - _ . : (got {raw:?})",
                Self::MAX_LEN
            )))
        }
    }

    /// The key as sent and stored.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Display for IdempotencyKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// `GET /v1/admin/products/{p}/audit` on a region node: the region's truth about one product,
/// read in one Postgres snapshot, plus what its Redis holds. The coordinator's audit compares
/// it with the ledger.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RegionTruth {
    /// The region that answered.
    pub region: String,
    /// The product.
    pub product_id: i64,
    /// `g`: grants applied (cumulative).
    pub granted: i64,
    /// `rel`: units released back to the pool (cumulative).
    pub released: i64,
    /// Units ever ordered (`sold`, cumulative).
    pub sold: i64,
    /// Units of cancelled and expired orders given back (`returned`, cumulative).
    #[serde(default)]
    pub returned: i64,
    /// `g − rel − sold + returned`.
    pub available: i64,
    /// Number of order rows.
    pub order_count: i64,
    /// Σ order quantity, every status (must equal `sold`).
    pub order_units: i64,
    /// Σ quantity of the cancelled and expired orders (must equal `returned`).
    #[serde(default)]
    pub returned_units: i64,
    /// Every buyer and the units they hold, `(user_id, units)` (for the cross-region per-user
    /// check).
    #[schema(value_type = Vec<Vec<i64>>)]
    pub buyers: Vec<(i64, i64)>,
    /// Admission tokens in Redis; `None` when Redis could not be read or is being rebuilt.
    pub redis_stock: Option<i64>,
    /// Units admitted by Redis whose purchase has not committed (read with the stock in one
    /// step, under the quota row lock); `None` when unreadable.
    pub redis_in_flight: Option<i64>,
}

// ---------------------------------------------------------------------------------------------
// The coordinator's admin API (`/v1/admin/…`): requests `quotactl` sends, answers it prints.
// ---------------------------------------------------------------------------------------------

/// `POST /v1/admin/products`: a new sale. Omitted times default to now and now + 1 h; the
/// per-user limit defaults to 1. `split` optionally grants an initial static split.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreateProduct {
    /// Positive, unique.
    #[schema(minimum = 1)]
    pub product_id: i64,
    /// Shown to buyers.
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: String,
    /// Units on sale in all regions.
    #[schema(minimum = 0, maximum = 1_000_000_000)]
    pub total: i64,
    /// Sale price.
    #[serde(deserialize_with = "crate::price::deserialize")]
    #[schema(value_type = String, pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$", example = "99.00")]
    pub price: Decimal,
    /// List price (defaults to the sale price).
    #[serde(default, deserialize_with = "crate::price::deserialize_option")]
    #[schema(value_type = Option<String>, pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$")]
    pub original_price: Option<Decimal>,
    /// Sale start (default: now).
    #[serde(default)]
    pub start_time: Option<DateTime<Utc>>,
    /// Sale end (default: start + 1 h).
    #[serde(default)]
    pub end_time: Option<DateTime<Utc>>,
    /// Units per user across regions (default 1).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 100)]
    pub per_user_limit: Option<i32>,
    /// Units each region should hold initially (`G − R`; the rest stays in the pool).
    #[serde(default)]
    #[schema(value_type = Option<BTreeMap<String, u32>>)]
    pub split: Option<BTreeMap<String, i64>>,
    /// Rebalance policy (default: demand).
    #[serde(default)]
    pub policy: Option<PolicyKind>,
    /// The sale's home regions (default: the deployment's list, [`HomeRegions`]); fixed for
    /// the sale's life.
    #[serde(default)]
    #[schema(value_type = Option<Vec<RegionName>>)]
    pub home_regions: Option<Vec<String>>,
    /// Seconds a buyer has to pay before the order expires and its units go back on sale
    /// (default: each region node's `--payment-window-s`, 15 minutes).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 2_592_000)]
    pub payment_window_s: Option<i32>,
}

/// A region name as the admin API takes it, for the OpenAPI document: 1–32 of `a-z 0-9 -`,
/// starting with a letter ([`crate::model::validate_region_name`]).
pub struct RegionName;

impl utoipa::PartialSchema for RegionName {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        crate::openapi::schema(serde_json::json!({
            "type": "string",
            "pattern": "^[a-z][a-z0-9-]{0,31}$",
        }))
        .into()
    }
}

impl ToSchema for RegionName {}

/// `GET`/`PUT /v1/admin/home-regions`: the regions among which each buyer of a sale created
/// from now on has one home region (empty: no home regions, the per-user limit holds per
/// region). Sales already created keep the list they were created with.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct HomeRegions {
    /// Region names.
    #[schema(value_type = Vec<RegionName>)]
    pub regions: Vec<String>,
}

/// `PUT /v1/admin/products/{id}/policy`: switch how the rebalancer moves quota.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetPolicy {
    /// demand | static | even.
    pub policy: PolicyKind,
}

/// `POST /v1/admin/products/{id}/restock`: more units for the pool (and the total).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Restock {
    /// Units added to the pool (> 0).
    #[schema(minimum = 1, maximum = 1_000_000_000)]
    pub units: i64,
}

/// `POST /v1/admin/regions/{region}/drain`: an empty body means "start draining".
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Drain {
    /// true: start draining; false: stop.
    #[serde(default = "yes")]
    pub on: bool,
}

fn yes() -> bool {
    true
}

/// The answer to [`Drain`]: which region, and whether it drains now.
///
/// Fields are in alphabetical order so the JSON is byte-identical to the map the server
/// answered with before this type existed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
pub struct DrainView {
    /// Whether the region is being drained now.
    pub draining: bool,
    /// The region.
    pub region: String,
}

/// `PUT /v1/admin/products/{id}/quota`: units each named region should hold.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SetSplit {
    /// Region → units to hold (`G − R` after the change).
    #[schema(value_type = BTreeMap<String, u32>)]
    pub split: BTreeMap<String, i64>,
}

/// The moves of one rebalance round (or of a new static split), with the product afterwards.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RoundView {
    /// Grants and releases made.
    pub moves: Vec<Move>,
    /// The product after the round.
    pub product: ProductView,
}

/// One region's share of a product, as the ledger in etcd sees it.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RegionShare {
    /// Cumulative grant `G` (etcd, coordinator-written).
    pub granted: i64,
    /// Cumulative release `R` the region has published (etcd, region-written).
    pub released: i64,
    /// `G − R`: units the region holds (sold, available or grant in transit).
    pub holds: i64,
}

/// A product as the admin API shows it: spec plus the ledger's `G`/`R` per region.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct ProductView {
    /// The spec regions see.
    pub spec: ProductSpec,
    /// Total units.
    pub total: i64,
    /// `total − Σ (G − R)`: units not allocated to any region.
    pub pool: i64,
    /// Rebalance policy.
    pub policy: PolicyKind,
    /// Per region.
    pub regions: BTreeMap<String, RegionShare>,
}

/// `GET /v1/admin/regions`: a region as the coordinator sees it.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionView {
    /// Name.
    pub region: String,
    /// Public URL of one of its live node processes (the audit reads the region's truth
    /// there); the last one registered when none is alive.
    pub url: String,
    /// Whether any of its node processes' leased heartbeats is present.
    pub alive: bool,
    /// How many of its node processes are alive.
    #[serde(default)]
    pub processes: usize,
    /// Age of its latest report in milliseconds (None: no report).
    pub last_report_ms: Option<i64>,
}

/// `GET /v1/admin/status`: what etcd alone says (ledger plus region reports), no region is
/// asked.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct StatusView {
    /// Id of the leading coordinator (None: no leader elected).
    pub leader: Option<String>,
    /// Per product.
    pub products: Vec<ProductStatus>,
}

/// One product's status.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    /// etcd transactions the coordinator has written for this product so far (ledger and
    /// movable-stock writes): sampled twice, the difference over the time is its write rate.
    #[serde(default)]
    pub coordinator_writes: i64,
    /// Per region.
    pub regions: BTreeMap<String, RegionStatus>,
}

/// One region's status for a product (report values are None while it does not report).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionStatus {
    /// `G` (etcd).
    pub granted: i64,
    /// `g` as the region reported it.
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

/// An order as its region holds it (`GET /v1/admin/orders/{id}` on the coordinator, which
/// asks every region; `quotactl order show`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct OrderRecord {
    /// The order (UUIDv7, minted by the region that sold it).
    pub order_id: uuid::Uuid,
    /// The product.
    pub product_id: i64,
    /// The buyer.
    pub user_id: i64,
    /// The region that sold it and holds it.
    pub region: String,
    /// Units.
    pub quantity: i32,
    /// Unit price, a decimal string.
    #[schema(value_type = String, pattern = r"^[0-9]{1,8}(\.[0-9]{1,2})?$", example = "99.00")]
    pub price: Decimal,
    /// `pending`, `paid`, `cancelled` or `expired`.
    pub status: crate::order::OrderStatus,
    /// When it was placed (the region's database clock).
    pub created_at: DateTime<Utc>,
}

/// One region's account of a sale after the click (`GET /v1/admin/products/{p}/report` on a
/// region node, region-admin token): what became of the units it sold. Units, not orders.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq, ToSchema)]
pub struct RegionSaleReport {
    /// The region.
    pub region: String,
    /// Units ever ordered here (every order, whatever became of it).
    pub sold: i64,
    /// Units in orders awaiting payment.
    pub pending: i64,
    /// Units in paid orders.
    pub paid: i64,
    /// Units in cancelled orders.
    pub cancelled: i64,
    /// Units in expired orders.
    pub expired: i64,
    /// Units given back to the region's stock (the counter: cancelled + expired).
    pub returned: i64,
    /// Units sold a second time after coming back: `sold − (g − rel)` when positive (a unit
    /// the region holds can only be sold again after it was returned; exact once the region
    /// has sold out).
    pub resold: i64,
    /// Units the region can still sell.
    pub available: i64,
    /// Money received: Σ amount of the paid orders, a decimal string.
    #[schema(value_type = String, pattern = r"^[0-9]+(\.[0-9]{1,2})?$")]
    pub revenue: Decimal,
}

/// `GET /v1/admin/products/{p}/report`: a sale's outcome per region and in total, with the
/// audit's verdict (`quotactl report`).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct SaleReport {
    /// The product.
    pub product_id: i64,
    /// Units on sale.
    pub total: i64,
    /// Per region that answered.
    pub regions: BTreeMap<String, RegionSaleReport>,
    /// The regions summed (its `region` is "total").
    pub totals: RegionSaleReport,
    /// Regions that could not be read (and why): the totals then leave them out.
    pub unreadable: Vec<String>,
    /// The conservation audit of the product, run with the report.
    pub audit: ProductAudit,
}

impl RegionSaleReport {
    /// `self + other`, named `region`.
    pub fn plus(&self, other: &RegionSaleReport, region: &str) -> RegionSaleReport {
        RegionSaleReport {
            region: region.to_string(),
            sold: self.sold + other.sold,
            pending: self.pending + other.pending,
            paid: self.paid + other.paid,
            cancelled: self.cancelled + other.cancelled,
            expired: self.expired + other.expired,
            returned: self.returned + other.returned,
            resold: self.resold + other.resold,
            available: self.available + other.available,
            revenue: self.revenue + other.revenue,
        }
    }
}

/// `GET /v1/admin/audit`: the conservation audit of every product (or one).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct AuditReport {
    /// Every product's identity holds and every region was read.
    pub ok: bool,
    /// Regions that could not be read (and why).
    pub unreadable: Vec<String>,
    /// Per product.
    pub products: Vec<ProductAudit>,
}

/// One product's audit.
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
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
    /// Each broken rule, in words (the coordinator's typed violations, displayed).
    pub violations: Vec<String>,
    /// Regions not read.
    pub unreadable: Vec<String>,
    /// Per region terms.
    pub regions: BTreeMap<String, RegionAudit>,
}

/// One region's terms in the audit: the ledger's side (`G`, `R`) next to the region's (`g`,
/// `rel`, sold, orders, Redis).
#[derive(Debug, Clone, Serialize, Deserialize, ToSchema)]
pub struct RegionAudit {
    /// `G` (etcd).
    pub granted: i64,
    /// `g` (region Postgres).
    pub applied: i64,
    /// `rel` (region Postgres).
    pub released: i64,
    /// `R` (etcd).
    pub released_published: i64,
    /// Units ever ordered.
    pub sold: i64,
    /// Units of cancelled and expired orders given back.
    #[serde(default)]
    pub returned: i64,
    /// `g − rel − sold + returned`.
    pub available: i64,
    /// Order rows.
    pub order_count: i64,
    /// Σ order quantity.
    pub order_units: i64,
    /// Σ quantity of cancelled and expired orders.
    #[serde(default)]
    pub returned_units: i64,
    /// `G − g`.
    pub grant_in_transit: i64,
    /// `rel − R`.
    pub release_in_transit: i64,
    /// Redis stock.
    pub redis_stock: Option<i64>,
    /// Redis stock + in flight − available (> 0 would over-admit).
    pub redis_drift: Option<i64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drain_view_is_byte_identical_to_the_old_map() {
        let typed = DrainView {
            draining: true,
            region: "east".into(),
        };
        let old = serde_json::json!({"region": "east", "draining": true});
        assert_eq!(serde_json::to_string(&typed).unwrap(), old.to_string());
    }

    #[test]
    fn drain_body_defaults_to_on() {
        let d: Drain = serde_json::from_str("{}").unwrap();
        assert!(d.on);
        assert!(serde_json::from_str::<Drain>(r#"{"on":true,"x":1}"#).is_err());
    }

    #[test]
    fn idempotency_keys_are_narrow_enough_to_be_an_etcd_key() {
        for ok in [
            "a",
            "550e8400-e29b-41d4-a716-446655440000",
            "op:restock.7_x",
        ] {
            assert_eq!(IdempotencyKey::parse(ok).unwrap().as_str(), ok);
        }
        let long = "k".repeat(IdempotencyKey::MAX_LEN + 1);
        for bad in ["", "a/b", "a b", "ü", "../x", long.as_str()] {
            assert!(IdempotencyKey::parse(bad).is_err(), "{bad:?}");
        }
    }
}
