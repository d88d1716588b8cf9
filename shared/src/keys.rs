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
//! | `/quota/v1/grants/{r}/{p}` | cumulative grant `G` (decimal) | coordinator |
//! | `/quota/v1/regions/{r}/info` | [`crate::model::RegionInfo`] JSON | region `r` |
//! | `/quota/v1/regions/{r}/alive` | heartbeat, attached to a lease | region `r` |
//! | `/quota/v1/regions/{r}/releases/{p}` | cumulative release `R` (decimal) | region `r` |

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

/// Parses the product id out of a `products/{p}/spec` or `grants/{r}/{p}` key.
pub fn product_id_from_key(key: &str) -> Option<i64> {
    let rest = key.strip_prefix(ROOT)?;
    let mut parts = rest.split('/');
    match parts.next()? {
        "products" => parts.next()?.parse().ok().filter(|p: &i64| *p > 0),
        "grants" => {
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
        assert!(!grant("east", 1).starts_with(&grants_prefix("eas")));
    }
}
