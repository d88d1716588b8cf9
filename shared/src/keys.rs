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
//! | `/quota/v1/regions/{r}/alive/{n}` | node process `n`'s heartbeat (its URL), leased | region `r` |
//! | `/quota/v1/release-requests/{r}/{p}` | [`crate::model::ReleaseRequest`] JSON | coordinator |
//! | `/quota/v1/drain/{r}` | present while region `r` is being drained | coordinator |
//! | `/quota/v1/home-regions` | [`crate::wire::HomeRegions`] JSON: the list new sales take | coordinator |
//! | `/quota/v1/operations/{k}` | [`crate::model::OperationRecord`] JSON, leased 24 h | coordinator |
//! | `/quota/v1/coordinator/leader` | election (etcd election API) | coordinators |
//! | `/quota/v1/regions/{r}/releases/{p}` | [`crate::model::ReleasePublished`] JSON (`R`) | region `r` |
//! | `/quota/v1/regions/{r}/reports/{p}/{n}` | node process `n`'s [`crate::model::RegionReport`] JSON, leased | region `r` |
//!
//! A region may run several node processes (`n`, see [`validate_process_id`]) against its one
//! Postgres and Redis: each keeps its own heartbeat and reports under its own name, so one
//! process ending never deletes what another wrote. The region is alive while any process's
//! heartbeat is; the coordinator merges the processes' reports ([`crate::model::merge_reports`]).

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

/// Node process `process`'s leased heartbeat in `region` (its value: the process's URL). The
/// region is *alive* while any of these exists.
pub fn region_alive(region: &str, process: &str) -> String {
    format!("{ROOT}regions/{region}/alive/{process}")
}

/// Prefix of every heartbeat of `region`'s node processes.
pub fn region_alive_prefix(region: &str) -> String {
    format!("{ROOT}regions/{region}/alive/")
}

/// Checks a node process name: 1–64 characters of `A–Z a–z 0–9 - _ .` (it is a key segment;
/// a Kubernetes pod name fits).
pub fn validate_process_id(id: &str) -> Result<(), crate::Invalid> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'));
    if ok {
        Ok(())
    } else {
        Err(crate::Invalid(format!(
            "process id must be 1-64 characters of A-Z a-z 0-9 - _ . (got {id:?})"
        )))
    }
}

/// The cumulative release `R` of `product_id` that `region` has published.
pub fn region_release(region: &str, product_id: i64) -> String {
    format!("{ROOT}regions/{region}/releases/{product_id}")
}

/// Prefix of every release request, to every region (the coordinator reads them all at once).
pub fn release_requests_root() -> String {
    format!("{ROOT}release-requests/")
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

/// The record of the admin operation made with idempotency key `key` (written in the same
/// transaction as the change it made, so a rerun of the same call finds it and changes nothing).
pub fn operation(key: &str) -> String {
    format!("{ROOT}operations/{key}")
}

/// The deployment's home-region list, copied into every sale created after it was set (see
/// [`crate::model::ProductSpec::home_regions`]).
pub fn home_regions() -> String {
    format!("{ROOT}home-regions")
}

/// Name of the coordinators' election.
pub fn election() -> String {
    format!("{ROOT}coordinator/leader")
}

/// Node process `process`'s latest report on `product_id` (attached to its heartbeat lease).
pub fn region_report(region: &str, product_id: i64, process: &str) -> String {
    format!("{ROOT}regions/{region}/reports/{product_id}/{process}")
}

/// Every key of the schema, parsed once: the one place that knows how a key string is laid out,
/// so no other file matches key text (`ends_with("/spec")`, `contains("/reports/")`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Key {
    /// `products/{p}/spec`.
    ProductSpec(i64),
    /// `products/{p}/ledger`.
    ProductLedger(i64),
    /// `products/{p}/movable`.
    ProductMovable(i64),
    /// `grants/{r}/{p}`: the cumulative grant `G`.
    Grant {
        /// Receiving region.
        region: String,
        /// Product.
        product_id: i64,
    },
    /// `release-requests/{r}/{p}`.
    ReleaseRequest {
        /// Region asked to release.
        region: String,
        /// Product.
        product_id: i64,
    },
    /// `drain/{r}`.
    Drain(String),
    /// `regions/{r}/info`.
    RegionInfo(String),
    /// `regions/{r}/alive/{n}`.
    RegionAlive {
        /// The region.
        region: String,
        /// The node process.
        process: String,
    },
    /// `regions/{r}/releases/{p}`: the published release `R`.
    RegionRelease {
        /// Publishing region.
        region: String,
        /// Product.
        product_id: i64,
    },
    /// `regions/{r}/reports/{p}/{n}`.
    RegionReport {
        /// Reporting region.
        region: String,
        /// Product.
        product_id: i64,
        /// The node process that reported.
        process: String,
    },
}

impl Key {
    /// Parses a full key (`/quota/v1/…`); `None` for anything outside the schema, including
    /// non-positive product ids and empty region names.
    pub fn parse(key: &str) -> Option<Key> {
        let rest = key.strip_prefix(ROOT)?;
        let parts: Vec<&str> = rest.split('/').collect();
        let product = |s: &str| s.parse::<i64>().ok().filter(|p| *p > 0);
        let region = |s: &str| (!s.is_empty()).then(|| s.to_string());
        let process = |s: &str| validate_process_id(s).is_ok().then(|| s.to_string());
        Some(match parts.as_slice() {
            ["products", p, "spec"] => Key::ProductSpec(product(p)?),
            ["products", p, "ledger"] => Key::ProductLedger(product(p)?),
            ["products", p, "movable"] => Key::ProductMovable(product(p)?),
            ["grants", r, p] => Key::Grant {
                region: region(r)?,
                product_id: product(p)?,
            },
            ["release-requests", r, p] => Key::ReleaseRequest {
                region: region(r)?,
                product_id: product(p)?,
            },
            ["drain", r] => Key::Drain(region(r)?),
            ["regions", r, "info"] => Key::RegionInfo(region(r)?),
            ["regions", r, "alive", n] => Key::RegionAlive {
                region: region(r)?,
                process: process(n)?,
            },
            ["regions", r, "releases", p] => Key::RegionRelease {
                region: region(r)?,
                product_id: product(p)?,
            },
            ["regions", r, "reports", p, n] => Key::RegionReport {
                region: region(r)?,
                product_id: product(p)?,
                process: process(n)?,
            },
            _ => return None,
        })
    }

    /// Parses raw key bytes as etcd returns them.
    pub fn parse_bytes(key: &[u8]) -> Option<Key> {
        std::str::from_utf8(key).ok().and_then(Key::parse)
    }

    /// The product the key concerns, if it concerns one.
    pub fn product_id(&self) -> Option<i64> {
        match self {
            Key::ProductSpec(p) | Key::ProductLedger(p) | Key::ProductMovable(p) => Some(*p),
            Key::Grant { product_id, .. }
            | Key::ReleaseRequest { product_id, .. }
            | Key::RegionRelease { product_id, .. }
            | Key::RegionReport { product_id, .. } => Some(*product_id),
            Key::Drain(_) | Key::RegionInfo(_) | Key::RegionAlive { .. } => None,
        }
    }

    /// The region the key concerns, if it concerns one.
    pub fn region(&self) -> Option<&str> {
        match self {
            Key::Grant { region, .. }
            | Key::ReleaseRequest { region, .. }
            | Key::RegionRelease { region, .. }
            | Key::RegionReport { region, .. }
            | Key::Drain(region)
            | Key::RegionInfo(region)
            | Key::RegionAlive { region, .. } => Some(region),
            Key::ProductSpec(_) | Key::ProductLedger(_) | Key::ProductMovable(_) => None,
        }
    }
}

/// Parses the product id out of any key that names a product.
pub fn product_id_from_key(key: &str) -> Option<i64> {
    Key::parse(key)?.product_id()
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
        assert_eq!(region_from_key(&region_alive("north", "n1")), Some("north"));
        assert!(region_alive("north", "n1").starts_with(&region_alive_prefix("north")));
        assert_eq!(region_from_key(&region_release("south", 3)), Some("south"));
        assert!(grant("east", 1).starts_with(&grants_prefix("east")));
        assert_eq!(product_id_from_key(&release_request("east", 9)), Some(9));
        assert!(release_request("east", 9).starts_with(&release_requests_prefix("east")));
        assert_eq!(
            region_from_key(&region_report("east", 9, "n1")),
            Some("east")
        );
        assert!(!grant("east", 1).starts_with(&grants_prefix("eas")));
    }

    #[test]
    fn every_key_parses_back() {
        let r = || "east".to_string();
        let cases = [
            (product_spec(5), Key::ProductSpec(5)),
            (product_ledger(5), Key::ProductLedger(5)),
            (product_movable(5), Key::ProductMovable(5)),
            (
                grant("east", 5),
                Key::Grant {
                    region: r(),
                    product_id: 5,
                },
            ),
            (
                release_request("east", 5),
                Key::ReleaseRequest {
                    region: r(),
                    product_id: 5,
                },
            ),
            (drain("east"), Key::Drain(r())),
            (region_info("east"), Key::RegionInfo(r())),
            (
                region_alive("east", "pod-7"),
                Key::RegionAlive {
                    region: r(),
                    process: "pod-7".into(),
                },
            ),
            (
                region_release("east", 5),
                Key::RegionRelease {
                    region: r(),
                    product_id: 5,
                },
            ),
            (
                region_report("east", 5, "pod-7"),
                Key::RegionReport {
                    region: r(),
                    product_id: 5,
                    process: "pod-7".into(),
                },
            ),
        ];
        for (text, key) in cases {
            assert_eq!(Key::parse(&text).as_ref(), Some(&key), "{text}");
            assert_eq!(Key::parse_bytes(text.as_bytes()), Some(key));
        }
        for bad in [
            "/quota/v1/products/0/spec",
            "/quota/v1/products/5/other",
            "/quota/v1/grants//5",
            "/quota/v1/regions/east/reports/x",
            "/quota/v1/regions/east/reports/5",
            "/quota/v1/regions/east/reports/5/a b",
            "/quota/v1/regions/east/alive",
            "/quota/v1/regions/east/alive/",
            "/quota/v1/regions/east/info/extra",
            "/quota/v2/products/5/spec",
            &election(),
        ] {
            assert_eq!(Key::parse(bad), None, "{bad}");
        }
    }
}
