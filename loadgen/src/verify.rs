//! After the run: do the books agree with what buyers were told?
//!
//! For each region given `--pg`, every acknowledged (201) order id must be a row in `orders`,
//! and `sold ≤ granted − released` must hold in `region_quota`. Oversold units come from
//! Postgres when every region was read there, else from the coordinator's final sample.
//! Reading Postgres is I/O (`check_region`); combining the results is pure (`combine`).

use std::collections::BTreeMap;

use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::config::PgAuth;
use uuid::Uuid;

use crate::series::Sample;

/// One region's Postgres, as read after the run.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RegionBooks {
    /// `region_quota.granted` (`g`; 0 if the region has no row).
    pub granted: i64,
    /// `region_quota.released` (`rel`).
    pub released: i64,
    /// `region_quota.sold`.
    pub sold: i64,
    /// `products.total`, if the region knows the product.
    pub total: Option<i64>,
    /// Acknowledged orders checked.
    pub checked: u64,
    /// Acknowledged orders with no row.
    pub missing: u64,
}

/// The sale's books at the end: what was on sale and what sold, from the best source read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Books {
    /// Units on sale.
    pub total: i64,
    /// Units sold, all regions.
    pub sold: i64,
}

impl Books {
    /// Units sold beyond the total; must be 0.
    pub(crate) fn oversold(self) -> i64 {
        (self.sold - self.total).max(0)
    }
}

/// What verification concluded.
#[derive(Debug, Clone, Default, PartialEq)]
pub(crate) struct Findings {
    /// The books (None: neither every region's Postgres nor a coordinator sample was read).
    pub books: Option<Books>,
    /// Acknowledged orders missing from Postgres (None: no region checked).
    pub lost_orders: Option<u64>,
    /// Units sold beyond the total (None: nothing to compute it from).
    pub oversold: Option<i64>,
    /// Everything else wrong or unchecked, in words.
    pub problems: Vec<String>,
}

/// Reads `region`'s books for `product` and looks up the acknowledged `orders`.
pub(crate) async fn check_region(
    url: &str,
    auth: &PgAuth,
    region: &str,
    product: i64,
    orders: &[String],
) -> Result<RegionBooks, String> {
    let mut cfg: tokio_postgres::Config = url.parse().map_err(|e| format!("bad URL: {e}"))?;
    if let Some(file) = auth.password_files.get(region) {
        let password = quota_shared::secret::Secret::from_file(file).map_err(|e| e.to_string())?;
        cfg.password(password.expose());
    }
    let client = match &auth.ca_file {
        None => {
            let (client, conn) = cfg
                .connect(NoTls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            tokio::spawn(conn);
            client
        }
        Some(ca) => {
            cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
            let tls = MakeRustlsConnect::new(tls_trusting(ca)?);
            let (client, conn) = cfg
                .connect(tls)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            tokio::spawn(conn);
            client
        }
    };
    read_books(&client, product, orders)
        .await
        .map_err(|e| e.to_string())
}

/// A rustls client configuration trusting only the certificates in `ca`.
fn tls_trusting(ca: &std::path::Path) -> Result<rustls::ClientConfig, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::CertificateDer;
    let mut roots = rustls::RootCertStore::empty();
    let certs = CertificateDer::pem_file_iter(ca).map_err(|e| format!("{}: {e}", ca.display()))?;
    for cert in certs {
        let cert = cert.map_err(|e| format!("{}: {e}", ca.display()))?;
        roots
            .add(cert)
            .map_err(|e| format!("{}: {e}", ca.display()))?;
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    Ok(rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth())
}

async fn read_books(
    client: &tokio_postgres::Client,
    product: i64,
    orders: &[String],
) -> Result<RegionBooks, tokio_postgres::Error> {
    let mut books = RegionBooks::default();
    let quota = client
        .query_opt(
            "SELECT granted, released, sold FROM region_quota WHERE product_id = $1",
            &[&product],
        )
        .await?;
    if let Some(row) = quota {
        books.granted = row.get(0);
        books.released = row.get(1);
        books.sold = row.get(2);
    }
    books.total = client
        .query_opt(
            "SELECT total FROM products WHERE product_id = $1",
            &[&product],
        )
        .await?
        .map(|r| r.get(0));
    let (ids, unparseable) = parse_ids(orders);
    books.checked = orders.len() as u64;
    books.missing = unparseable;
    for chunk in ids.chunks(10_000) {
        let found: i64 = client
            .query_one(
                "SELECT count(*) FROM orders WHERE product_id = $1 AND order_id = ANY($2)",
                &[&product, &chunk],
            )
            .await?
            .get(0);
        books.missing += chunk.len() as u64 - found.max(0) as u64;
    }
    Ok(books)
}

/// Distinct order ids as UUIDs, and how many strings were not UUIDs (those count as missing).
fn parse_ids(orders: &[String]) -> (Vec<Uuid>, u64) {
    let mut ids = Vec::with_capacity(orders.len());
    let mut bad = 0;
    for o in orders {
        match Uuid::parse_str(o) {
            Ok(id) => ids.push(id),
            Err(_) => bad += 1,
        }
    }
    ids.sort();
    ids.dedup();
    (ids, bad)
}

/// Combines per-region results. `orders_by_region`: 201s per region (report order);
/// `books`: the regions given `--pg`, each read or failed; `final_sample`: coordinator view.
pub(crate) fn combine(
    orders_by_region: &[(String, u64)],
    books: &BTreeMap<String, Result<RegionBooks, String>>,
    final_sample: Option<&Sample>,
) -> Findings {
    let mut f = Findings::default();
    let mut lost = None;
    for (region, result) in books {
        match result {
            Ok(b) => {
                *lost.get_or_insert(0) += b.missing;
                if b.sold > b.granted - b.released {
                    f.problems.push(format!(
                        "{region}: sold {} > granted {} − released {}",
                        b.sold, b.granted, b.released
                    ));
                }
            }
            Err(e) => f.problems.push(format!("{region}: postgres not read: {e}")),
        }
    }
    if !books.is_empty() {
        for (region, orders) in orders_by_region {
            if *orders > 0 && !matches!(books.get(region), Some(Ok(_))) {
                f.problems.push(format!(
                    "{region}: {orders} acknowledged orders not checked"
                ));
            }
        }
    }
    f.lost_orders = lost;
    let all_read: Option<Vec<&RegionBooks>> = orders_by_region
        .iter()
        .map(|(r, _)| books.get(r).and_then(|b| b.as_ref().ok()))
        .collect();
    let pg_total = all_read
        .as_ref()
        .and_then(|all| all.iter().find_map(|b| b.total))
        .or(final_sample.map(|s| s.total));
    f.books = match (all_read, pg_total) {
        (Some(all), Some(total)) if !all.is_empty() => Some(Books {
            total,
            sold: all.iter().map(|b| b.sold).sum(),
        }),
        _ => final_sample.map(|s| Books {
            total: s.total,
            sold: s.sold(),
        }),
    };
    f.oversold = f.books.map(Books::oversold);
    f
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::series::RegionSample;

    fn books(granted: i64, sold: i64, missing: u64) -> Result<RegionBooks, String> {
        Ok(RegionBooks {
            granted,
            released: 0,
            sold,
            total: Some(100),
            checked: 10,
            missing,
        })
    }

    fn orders() -> Vec<(String, u64)> {
        vec![("east".into(), 10), ("south".into(), 5)]
    }

    #[test]
    fn all_regions_read() {
        let b = [
            ("east".into(), books(60, 60, 0)),
            ("south".into(), books(40, 40, 1)),
        ]
        .into();
        let f = combine(&orders(), &b, None);
        assert_eq!(f.lost_orders, Some(1));
        assert_eq!(f.oversold, Some(0));
        assert_eq!(
            f.books,
            Some(Books {
                total: 100,
                sold: 100
            })
        );
        assert!(f.problems.is_empty());
    }

    #[test]
    fn oversell_and_overspent_region() {
        let b = [
            ("east".into(), books(60, 70, 0)),
            ("south".into(), books(40, 40, 0)),
        ]
        .into();
        let f = combine(&orders(), &b, None);
        assert_eq!(f.oversold, Some(10));
        assert_eq!(f.problems.len(), 1);
        assert!(f.problems[0].starts_with("east: sold 70"));
    }

    #[test]
    fn partial_pg_falls_back_to_coordinator_for_oversold() {
        let b = [
            ("east".into(), books(60, 60, 0)),
            ("south".into(), Err("refused".into())),
        ]
        .into();
        let sample = Sample {
            t_s: 1.0,
            total: 100,
            pool: 0,
            coordinator_writes: 0,
            regions: [(
                "east".to_string(),
                RegionSample {
                    sold: Some(101),
                    ..RegionSample::default()
                },
            )]
            .into(),
        };
        let f = combine(&orders(), &b, Some(&sample));
        assert_eq!(f.lost_orders, Some(0));
        assert_eq!(f.oversold, Some(1));
        assert_eq!(f.problems.len(), 2); // south unread, south's orders unchecked
    }

    #[test]
    fn nothing_to_check() {
        let f = combine(&orders(), &BTreeMap::new(), None);
        assert_eq!(f, Findings::default());
    }

    #[test]
    fn unparseable_ids_count_as_missing() {
        let (ids, bad) = parse_ids(&[
            "0190b5f8-8d3a-7c3e-9a43-9c1f8a7b6d5e".into(),
            "0190b5f8-8d3a-7c3e-9a43-9c1f8a7b6d5e".into(),
            "nope".into(),
        ]);
        assert_eq!(ids.len(), 1);
        assert_eq!(bad, 1);
    }
}
