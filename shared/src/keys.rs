//! The etcd key schema (version 1).
//!
//! Every key has exactly one writer. Keys written by the coordinator live outside
//! `/quota/v1/regions/`; everything a region writes lives under its own
//! `/quota/v1/regions/{region}/` prefix, so etcd role-based access control can stop one region
//! from ever writing another region's or the coordinator's keys.
//!
//! | key | value | writer |
//! |---|---|---|
//! | `/quota/v1/products/{p}/spec` | [`crate::model::ProductSpec`] JSON | coordinator |
//! | `/quota/v1/products/{p}/ledger` | [`crate::model::Ledger`] JSON | coordinator |
//! | `/quota/v1/products/{p}/movable` | [`crate::model::Movable`] JSON | coordinator |
//! | `/quota/v1/grants/{r}/{p}` | cumulative grant `G` (decimal) | coordinator |
//! | `/quota/v1/regions/{r}/info` | [`crate::model::RegionInfo`] JSON | region `r` |
//! | `/quota/v1/regions/{r}/alive` | heartbeat, attached to a lease | region `r` |
//! | `/quota/v1/release-requests/{r}/{p}` | [`crate::model::ReleaseRequest`] JSON | coordinator |
//! | `/quota/v1/drain/{r}` | present while region `r` is being drained | coordinator |
//! | `/quota/v1/coordinator/leader` | election (etcd election API) | coordinators |
//! | `/quota/v1/regions/{r}/releases/{p}` | [`crate::model::ReleasePublished`] JSON (`R`) | region `r` |
//! | `/quota/v1/regions/{r}/reports/{p}` | [`crate::model::RegionReport`] JSON, leased | region `r` |

/// Root of every key this project writes; bump the version to change the schema.
pub const ROOT: &str = "/quota/v1/";

/// Prefix of every product's spec and ledger.
pub fn products_prefix() -> String {
    format!("{ROOT}products/")
}

/// The product's spec: what buyers see (name, price, window, per-user limit, total).
pub fn product_spec(product_id: i64) -> String {
    format!("{ROOT}products/{product_id}/spec")
}

/// The product's ledger: total and the cumulative grant of every region.
pub fn product_ledger(product_id: i64) -> String {
    format!("{ROOT}products/{product_id}/ledger")
}

/// Stock that could still reach each region (leader-written each round; see
/// [`crate::model::Movable`]).
pub fn product_movable(product_id: i64) -> String {
    format!("{ROOT}products/{product_id}/movable")
}

/// Prefix of every grant addressed to `region` (a region watches exactly this).
pub fn grants_prefix(region: &str) -> String {
    format!("{ROOT}grants/{region}/")
}

/// The cumulative grant `G` of `product_id` to `region`.
pub fn grant(region: &str, product_id: i64) -> String {
    format!("{ROOT}grants/{region}/{product_id}")
}

/// Prefix of every key region-written keys live under.
pub fn regions_prefix() -> String {
    format!("{ROOT}regions/")
}

/// The region's registration (written once at start, not leased: the region is *known*).
pub fn region_info(region: &str) -> String {
    format!("{ROOT}regions/{region}/info")
}

/// The region's leased heartbeat (present only while the region is *alive*).
pub fn region_alive(region: &str) -> String {
    format!("{ROOT}regions/{region}/alive")
}

/// The cumulative release `R` of `product_id` that `region` has published.
pub fn region_release(region: &str, product_id: i64) -> String {
    format!("{ROOT}regions/{region}/releases/{product_id}")
}

/// Prefix of every release request addressed to `region`.
pub fn release_requests_prefix(region: &str) -> String {
    format!("{ROOT}release-requests/{region}/")
}

/// The coordinator's current release request of `product_id` to `region`.
pub fn release_request(region: &str, product_id: i64) -> String {
    format!("{ROOT}release-requests/{region}/{product_id}")
}

/// Present while the operator drains `region` (no grants; everything unsold is released).
pub fn drain(region: &str) -> String {
    format!("{ROOT}drain/{region}")
}

/// Prefix of every drain marker.
pub fn drains_prefix() -> String {
    format!("{ROOT}drain/")
}

/// Name of the coordinators' election.
pub fn election() -> String {
    format!("{ROOT}coordinator/leader")
}

/// The region's latest report on `product_id` (attached to its heartbeat lease).
pub fn region_report(region: &str, product_id: i64) -> String {
    format!("{ROOT}regions/{region}/reports/{product_id}")
}

/// Parses the product id out of a `products/{p}/spec` or `grants/{r}/{p}` key.
pub fn product_id_from_key(key: &str) -> Option<i64> {
    let rest = key.strip_prefix(ROOT)?;
    let mut parts = rest.split('/');
    match parts.next()? {
        "products" => parts.next()?.parse().ok().filter(|p: &i64| *p > 0),
        "grants" | "release-requests" => {
            let _region = parts.next()?;
            parts.next()?.parse().ok().filter(|p: &i64| *p > 0)
        }
        _ => None,
    }
}

/// Parses the region name out of any `/quota/v1/regions/{r}/…` key.
pub fn region_from_key(key: &str) -> Option<&str> {
    key.strip_prefix(ROOT)?
        .strip_prefix("regions/")?
        .split('/')
        .next()
        .filter(|r| !r.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        assert_eq!(product_id_from_key(&product_spec(1001)), Some(1001));
        assert_eq!(product_id_from_key(&product_ledger(7)), Some(7));
        assert_eq!(product_id_from_key(&grant("east", 42)), Some(42));
        assert_eq!(product_id_from_key("/quota/v1/grants/east/x"), None);
        assert_eq!(product_id_from_key("/other/products/1/spec"), None);
        assert_eq!(region_from_key(&region_alive("north")), Some("north"));
        assert_eq!(region_from_key(&region_release("south", 3)), Some("south"));
        assert!(grant("east", 1).starts_with(&grants_prefix("east")));
        assert_eq!(product_id_from_key(&release_request("east", 9)), Some(9));
        assert!(release_request("east", 9).starts_with(&release_requests_prefix("east")));
        assert_eq!(region_from_key(&region_report("east", 9)), Some("east"));
        assert!(!grant("east", 1).starts_with(&grants_prefix("eas")));
    }
}
