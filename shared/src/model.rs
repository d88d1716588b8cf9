//! The documents stored in etcd and exchanged over the admin API, with their validation.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// Largest total a product may have (keeps every sum far from `i64` overflow).
pub const MAX_TOTAL: i64 = 1_000_000_000;
/// Largest per-user limit (orders are one row per user and product, quantity ≤ this).
pub const MAX_PER_USER_LIMIT: i32 = 100;
/// Largest price NUMERIC(10,2) can hold: 99999999.99 (9 999 999 999 hundredths).
pub const MAX_PRICE: Decimal = Decimal::from_parts(1_410_065_407, 2, 0, false, 2);

/// A product on sale, as every region sees it. Written by the coordinator only.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, utoipa::ToSchema)]
pub struct ProductSpec {
    /// Positive, chosen by the operator, unique.
    pub product_id: i64,
    /// Shown to buyers.
    pub name: String,
    /// Units on sale in all regions together (the conservation identity's `total`).
    pub total: i64,
    /// Sale price per unit.
    pub price: Decimal,
    /// List price per unit (shown crossed out).
    pub original_price: Decimal,
    /// Purchases before this instant are refused (`sale_not_active`).
    pub start_time: DateTime<Utc>,
    /// Purchases at or after this instant are refused (`sale_not_active`).
    pub end_time: DateTime<Utc>,
    /// Most units one user may buy of this product, across all regions.
    pub per_user_limit: i32,
    /// Ended by the operator: refused from then on whatever the window and any clock say
    /// (`product end`; absent in older specs, which never ended early).
    #[serde(default)]
    pub ended: bool,
    /// The regions among which each buyer of this product has one home region (rendezvous
    /// hashing, [`crate::admission::home_region`]), the only one that sells them this product:
    /// that makes the per-user limit global with no cross-region check. Fixed when the sale is
    /// created, so changing the deployment's list never re-homes the buyers of a sale already
    /// on (who would then buy a second time in their new home). Empty: every region sells to
    /// everyone and the limit holds per region.
    #[serde(default)]
    pub home_regions: Vec<String>,
    /// Seconds a buyer has to pay for an order of this sale before it expires and its units go
    /// back on sale; absent: each region node's `--payment-window-s` (15 minutes by default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub payment_window_s: Option<i32>,
}

pub use crate::error::Invalid;

/// The longest payment window a sale may have: 30 days, in seconds.
pub const MAX_PAYMENT_WINDOW_S: i32 = 2_592_000;

fn invalid<T>(msg: impl Into<String>) -> Result<T, Invalid> {
    Err(Invalid(msg.into()))
}

/// Checks a money amount fits NUMERIC(10,2) and is not negative.
pub fn validate_price(what: &str, p: Decimal) -> Result<(), Invalid> {
    if p.is_sign_negative() && !p.is_zero() {
        return invalid(format!("{what} must not be negative (got {p})"));
    }
    if p.scale() > 2 && p.normalize().scale() > 2 {
        return invalid(format!("{what} has more than 2 decimal places (got {p})"));
    }
    if p > MAX_PRICE {
        return invalid(format!("{what} must be at most {MAX_PRICE} (got {p})"));
    }
    Ok(())
}

impl ProductSpec {
    /// Checks every field; returns the first problem in words an operator can act on.
    pub fn validate(&self) -> Result<(), Invalid> {
        if self.product_id <= 0 {
            return invalid(format!(
                "product id must be a positive integer (got {})",
                self.product_id
            ));
        }
        // Counted untrimmed: a name padded to over 200 characters is refused, as the API's
        // document says, not trimmed into range.
        if self.name.trim().is_empty() || self.name.chars().count() > 200 {
            return invalid("name must be 1 to 200 characters");
        }
        if !(0..=MAX_TOTAL).contains(&self.total) {
            return invalid(format!(
                "total must be between 0 and {MAX_TOTAL} (got {})",
                self.total
            ));
        }
        validate_price("price", self.price)?;
        validate_price("original price", self.original_price)?;
        if self.end_time <= self.start_time {
            return invalid(format!(
                "end ({}) must be after start ({})",
                self.end_time.to_rfc3339(),
                self.start_time.to_rfc3339()
            ));
        }
        let mut seen = std::collections::BTreeSet::new();
        for r in &self.home_regions {
            validate_region_name(r)?;
            if !seen.insert(r) {
                return invalid(format!("home region {r} is listed twice"));
            }
        }
        if !(1..=MAX_PER_USER_LIMIT).contains(&self.per_user_limit) {
            return invalid(format!(
                "per-user limit must be between 1 and {MAX_PER_USER_LIMIT} (got {})",
                self.per_user_limit
            ));
        }
        if let Some(w) = self.payment_window_s {
            if !(1..=MAX_PAYMENT_WINDOW_S).contains(&w) {
                return invalid(format!(
                    "payment window must be between 1 and {MAX_PAYMENT_WINDOW_S} seconds (got {w})"
                ));
            }
        }
        Ok(())
    }

    /// Whether purchases are accepted at `now`: not ended, and `start_time <= now < end_time`.
    pub fn is_active(&self, now: DateTime<Utc>) -> bool {
        !self.ended && self.start_time <= now && now < self.end_time
    }

    /// Ends the sale at `now`: marked ended (refused everywhere from the moment a region
    /// learns it, whatever its clock says), and `end_time` moved to `now` when that is
    /// earlier, for display — never before the start, where the window would be empty.
    pub fn end_at(&mut self, now: DateTime<Utc>) {
        self.ended = true;
        if self.end_time > now {
            self.end_time = now.max(self.start_time + chrono::Duration::milliseconds(1));
        }
    }
}

/// The coordinator's record of a product: its total and every region's cumulative grant `G`.
///
/// `granted` only ever grows per region (grants are cumulative); the pool is derived, see
/// [`crate::ledger::pool`].
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Ledger {
    /// Units on sale in total (grows on restock, never shrinks below what is allocated).
    pub total: i64,
    /// Cumulative grant `G` per region.
    #[serde(default)]
    pub granted: BTreeMap<String, i64>,
    /// The rebalance policy.
    #[serde(default)]
    pub policy: crate::policy::PolicyKind,
    /// The operator's static split (units each region should hold), used by `Policy::Static`.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub static_split: BTreeMap<String, i64>,
    /// Cumulative units asked back per region (`Q`: the sum of every release request's
    /// `amount`, raised in the same transaction that writes the request). A region's published
    /// `R` is its own word; no honest region releases more than it was asked for (`R ≤ Q`), so
    /// the pool counts at most `Q` of it ([`crate::ledger::credited_release`]) and a region
    /// that claims more cannot put units it still holds back into the pool for others.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub requested: BTreeMap<String, i64>,
}

/// A request from the coordinator that a region give back up to `amount` unsold units.
/// A region handles each `request_id` exactly once (recorded in its Postgres).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleaseRequest {
    /// Unique per request; the region's exactly-once key.
    pub request_id: String,
    /// Most units to release (the region releases what it still has unsold, up to this).
    pub amount: i64,
}

/// A region's published cumulative release `R`, and the last request it handled (so the
/// coordinator knows when it may ask again).
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReleasePublished {
    /// Cumulative units released (`R`); only grows.
    pub released: i64,
    /// The most recent request handled.
    #[serde(default)]
    pub last_request: Option<String>,
    /// How many release requests the region has handled (a count that only grows, read from
    /// Postgres in the same snapshot as `released`): with `released` it orders two
    /// publications, since request ids need not (absent in older records: 0).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub handled: i64,
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

impl ReleasePublished {
    /// Whether publishing `self` over `current` moves the key forward. Both are snapshots of
    /// the region's Postgres, where `released` and `handled` only grow, so the newer snapshot
    /// is at least as large in both and larger in one; anything else is a stale read (a
    /// process that read before another handled a request) and must not overwrite — not even
    /// at the same `R`, where it would put back an older `last_request` and the coordinator
    /// would wait for ever for a request already handled (found by the model check).
    pub fn supersedes(&self, current: &ReleasePublished) -> bool {
        self.released >= current.released
            && self.handled >= current.handled
            && (self.released, self.handled) != (current.released, current.handled)
    }
}

/// What a region reports about one product, at least every 100 ms, on its heartbeat lease.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq)]
pub struct RegionReport {
    /// Grants applied (`g`).
    pub granted: i64,
    /// Units released (`rel`).
    pub released: i64,
    /// Units ever ordered (cumulative).
    pub sold: i64,
    /// Units of cancelled and expired orders given back to the region's stock (cumulative).
    #[serde(default)]
    pub returned: i64,
    /// Units the region can still sell (`g − rel − sold + returned`).
    pub available: i64,
    /// Recent purchase attempts per second (EWMA, rejected attempts included).
    pub demand: f64,
    /// Release requests received but not yet published.
    pub release_in_flight: i64,
    /// Unix milliseconds when the report was made.
    pub at_ms: i64,
}

/// One region's report merged from its node processes' reports (`None` when none reported).
/// The counters come from the report that read the quota row last: every process reads the
/// same Postgres row and `g`, `rel`, `sold` and `returned` only grow, so the largest sum is
/// the newest view (ties: the later `at_ms`). Demand is the sum — each process counts only the
/// buyers it served; the release in flight is the largest any process is handling (they all
/// handle the same requests, exactly once in Postgres).
pub fn merge_reports<'a>(
    reports: impl IntoIterator<Item = &'a RegionReport>,
) -> Option<RegionReport> {
    let mut merged: Option<RegionReport> = None;
    let (mut demand, mut in_flight) = (0.0, 0i64);
    for r in reports {
        if r.demand.is_finite() && r.demand > 0.0 {
            demand += r.demand;
        }
        in_flight = in_flight.max(r.release_in_flight);
        let newer = merged.as_ref().is_none_or(|m| {
            let progress = |x: &RegionReport| x.granted + x.released + x.sold + x.returned;
            (progress(r), r.at_ms) > (progress(m), m.at_ms)
        });
        if newer {
            merged = Some(r.clone());
        }
    }
    merged.map(|mut m| {
        m.demand = demand;
        m.release_in_flight = in_flight;
        m
    })
}

/// Units that could still move to a region that has sold out locally: the pool plus every live
/// region's unsold units (nothing under the static policy, which moves nothing). A region that
/// is out of stock answers "sold out" (410) only when nothing could come to it; otherwise it
/// answers "awaiting stock" (503, retry) — a 410 while units exist elsewhere is a false
/// sold-out.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Movable {
    /// Units in the pool that could be granted.
    pub pool: i64,
    /// Unsold units per live region.
    pub regions: BTreeMap<String, i64>,
    /// Unix milliseconds when the leader computed it (regions ignore a stale value).
    pub at_ms: i64,
}

impl Movable {
    /// Units that could reach `region` from elsewhere (the pool and the other regions).
    pub fn elsewhere(&self, region: &str) -> i64 {
        self.pool
            + self
                .regions
                .iter()
                .filter(|(r, _)| r.as_str() != region)
                .map(|(_, n)| *n)
                .sum::<i64>()
    }
}

/// What the coordinator remembers of an admin call made with an idempotency key: which request
/// it was (so the same key on a *different* request is refused rather than silently ignored)
/// and when it was applied.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct OperationRecord {
    /// The request: method, path and canonical JSON body.
    pub fingerprint: String,
    /// Unix milliseconds when it was applied.
    pub at_ms: i64,
}

/// A region's self-registration, written once when its node starts.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct RegionInfo {
    /// The region's name (see [`validate_region_name`]).
    pub region: String,
    /// Base URL of a node serving the region's public API.
    pub url: String,
}

/// Region names are short lowercase identifiers: they appear in keys, env var names and URLs.
pub fn validate_region_name(name: &str) -> Result<(), Invalid> {
    let ok = !name.is_empty()
        && name.len() <= 32
        && name.starts_with(|c: char| c.is_ascii_lowercase())
        && name
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(())
    } else {
        invalid(format!(
            "region name {name:?} must be 1-32 characters of a-z, 0-9 and '-', starting with a letter"
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::Duration;
    use std::str::FromStr;

    fn spec() -> ProductSpec {
        let now = Utc::now();
        ProductSpec {
            product_id: 1001,
            name: "phone".into(),
            total: 1000,
            price: Decimal::from_str("99.00").unwrap(),
            original_price: Decimal::from_str("199.00").unwrap(),
            start_time: now,
            end_time: now + Duration::hours(1),
            per_user_limit: 1,
            ended: false,
            home_regions: Vec::new(),
            payment_window_s: None,
        }
    }

    #[test]
    fn valid_spec_passes() {
        spec().validate().unwrap();
    }

    /// Ending a sale that has not started: no instant is left at which it sells (the old rule
    /// moved `end_time` to start + 1 ms, an active millisecond at the start), and the spec
    /// stays valid.
    #[test]
    fn an_ended_sale_never_sells_even_before_its_start() {
        let mut s = spec();
        let now = s.start_time;
        s.start_time = now + Duration::seconds(60);
        s.end_time = now + Duration::hours(1);
        s.end_at(now);
        s.validate().unwrap();
        let start = s.start_time;
        for ms in -2..=2 {
            let t = start + Duration::milliseconds(ms);
            assert!(!s.is_active(t), "active at start {ms:+} ms");
        }
        assert!(!s.is_active(now));
        // Specs written before the flag existed read as not ended.
        let mut json = serde_json::to_value(spec()).unwrap();
        json.as_object_mut().unwrap().remove("ended");
        let old: ProductSpec = serde_json::from_value(json).unwrap();
        assert!(!old.ended);
    }

    #[test]
    fn each_bad_field_is_named() {
        type Mutation = Box<dyn Fn(&mut ProductSpec)>;
        let cases: Vec<(Mutation, &str)> = vec![
            (Box::new(|s| s.product_id = 0), "product id"),
            (Box::new(|s| s.name = " ".into()), "name"),
            (Box::new(|s| s.total = -1), "total"),
            (
                Box::new(|s| s.price = Decimal::from_str("-1").unwrap()),
                "price",
            ),
            (
                Box::new(|s| s.price = Decimal::from_str("1.001").unwrap()),
                "decimal",
            ),
            (
                Box::new(|s| s.original_price = Decimal::from(100_000_000)),
                "original price",
            ),
            (Box::new(|s| s.end_time = s.start_time), "end"),
            (Box::new(|s| s.per_user_limit = 0), "per-user"),
        ];
        for (mutate, word) in cases {
            let mut s = spec();
            mutate(&mut s);
            let err = s.validate().unwrap_err();
            assert!(err.0.contains(word), "{err} should mention {word}");
        }
    }

    #[test]
    fn trailing_zeros_are_fine() {
        let mut s = spec();
        s.price = Decimal::from_str("9.9000").unwrap();
        s.validate().unwrap();
    }

    #[test]
    fn region_names() {
        for ok in ["east", "us-east-1", "a"] {
            validate_region_name(ok).unwrap();
        }
        for bad in ["", "East", "1east", "ea st", "e/st", &"x".repeat(33)] {
            assert!(validate_region_name(bad).is_err(), "{bad}");
        }
    }

    /// A publication replaces the key only when it is a newer snapshot: more released, or the
    /// same with more requests handled; a stale read never writes back, not even at the same
    /// `R` with an older request.
    #[test]
    fn only_a_newer_snapshot_supersedes_a_published_release() {
        let p = |released, handled, last: Option<&str>| ReleasePublished {
            released,
            last_request: last.map(str::to_string),
            handled,
        };
        let now = p(5, 2, Some("b"));
        assert!(p(6, 3, Some("c")).supersedes(&now));
        assert!(
            p(5, 3, Some("c")).supersedes(&now),
            "a request that took nothing"
        );
        assert!(!p(5, 2, Some("b")).supersedes(&now), "the same");
        assert!(
            !p(5, 1, Some("a")).supersedes(&now),
            "a stale read at the same R"
        );
        assert!(!p(4, 1, None).supersedes(&now), "a stale read");
        // Records written before `handled` existed read as 0 handled.
        let old: ReleasePublished =
            serde_json::from_str(r#"{"released":5,"last_request":"b"}"#).unwrap();
        assert!(p(5, 2, Some("b")).supersedes(&old));
        assert_eq!(
            serde_json::to_string(&p(1, 0, None)).unwrap(),
            r#"{"released":1,"last_request":null}"#
        );
    }

    fn report(g: i64, sold: i64, demand: f64, at_ms: i64) -> RegionReport {
        RegionReport {
            granted: g,
            released: 0,
            sold,
            returned: 0,
            available: g - sold,
            demand,
            release_in_flight: 0,
            at_ms,
        }
    }

    #[test]
    fn reports_of_several_processes_merge_into_the_newest_counts_and_the_total_demand() {
        assert_eq!(merge_reports(&[]), None);
        let a = report(10, 5, 30.0, 2_000);
        let mut b = report(10, 7, 20.0, 1_000); // read the row later, whatever its clock says
        b.release_in_flight = 3;
        let m = merge_reports([&a, &b]).unwrap();
        assert_eq!((m.granted, m.sold, m.available), (10, 7, 3));
        assert!((m.demand - 50.0).abs() < 1e-9);
        assert_eq!(m.release_in_flight, 3);
        // Order does not matter; a lone report is itself.
        assert_eq!(merge_reports([&b, &a]), Some(m));
        assert_eq!(merge_reports([&a]), Some(a));
    }
}
