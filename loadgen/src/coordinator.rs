//! The coordinator's admin API as the load generator uses it: status samples and the audit.
//!
//! The wire shapes mirror `coordinator::view::{StatusView, AuditReport}` but only the fields
//! used here, and unknown fields are ignored — the load generator does not depend on the
//! coordinator crate (and its etcd client), and keeps working as those views grow.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::Deserialize;

use crate::config::CoordinatorTarget;
use crate::series::{RegionSample, Sample};

/// `GET /v1/admin/status`, the parts used.
#[derive(Debug, Clone, Deserialize)]
pub struct StatusWire {
    /// Per product.
    pub products: Vec<ProductStatusWire>,
}

/// One product's status.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductStatusWire {
    /// Id.
    pub product_id: i64,
    /// Total units.
    pub total: i64,
    /// Units in the pool.
    pub pool: i64,
    /// Per region.
    pub regions: BTreeMap<String, RegionStatusWire>,
}

/// One region's status for a product.
#[derive(Debug, Clone, Deserialize)]
pub struct RegionStatusWire {
    /// Sold, as reported.
    #[serde(default)]
    pub sold: Option<i64>,
    /// Available, as reported.
    #[serde(default)]
    pub available: Option<i64>,
    /// Attempts per second.
    #[serde(default)]
    pub demand: f64,
    /// Heartbeat present.
    #[serde(default)]
    pub alive: bool,
}

/// `GET /v1/admin/audit`, the parts used.
#[derive(Debug, Clone, Deserialize)]
pub struct AuditWire {
    /// Everything holds and every region was read.
    pub ok: bool,
    /// Regions not read.
    #[serde(default)]
    pub unreadable: Vec<String>,
    /// Per product.
    #[serde(default)]
    pub products: Vec<ProductAuditWire>,
}

/// One product's audit.
#[derive(Debug, Clone, Deserialize)]
pub struct ProductAuditWire {
    /// Id.
    pub product_id: i64,
    /// Broken rules in words.
    #[serde(default)]
    pub violations: Vec<String>,
    /// Regions not read for this product.
    #[serde(default)]
    pub unreadable: Vec<String>,
}

/// The sample of `product` in a status answer, stamped `t_s`; None if the product is absent.
pub fn sample_from_status(status: &StatusWire, product: i64, t_s: f64) -> Option<Sample> {
    let p = status.products.iter().find(|p| p.product_id == product)?;
    let regions = p
        .regions
        .iter()
        .map(|(name, r)| {
            let sample = RegionSample {
                available: r.available,
                sold: r.sold,
                demand: r.demand,
                alive: r.alive,
            };
            (name.clone(), sample)
        })
        .collect();
    Some(Sample {
        t_s,
        total: p.total,
        pool: p.pool,
        regions,
    })
}

/// The audit's verdict in one line: `ok`, or what is wrong.
pub fn audit_verdict(audit: &AuditWire, product: i64) -> String {
    let mut problems: Vec<String> = Vec::new();
    let mut unreadable = audit.unreadable.clone();
    for p in audit.products.iter().filter(|p| p.product_id == product) {
        problems.extend(p.violations.iter().cloned());
        unreadable.extend(p.unreadable.iter().cloned());
    }
    unreadable.sort();
    unreadable.dedup();
    if !unreadable.is_empty() {
        problems.push(format!("unreadable: {}", unreadable.join(", ")));
    }
    if audit.ok && problems.is_empty() {
        "ok".to_string()
    } else if problems.is_empty() {
        "not ok (no violation listed)".to_string()
    } else {
        problems.join("; ")
    }
}

/// A client of the two admin endpoints used.
#[derive(Clone)]
pub struct CoordinatorClient {
    http: reqwest::Client,
    target: CoordinatorTarget,
    product: i64,
}

impl CoordinatorClient {
    /// A client for `product` at `target`.
    pub fn new(target: CoordinatorTarget, product: i64) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(CoordinatorClient {
            http,
            target,
            product,
        })
    }

    async fn get<T: for<'de> Deserialize<'de>>(&self, path: &str) -> Result<T, String> {
        let url = format!(
            "{}/v1/admin/{path}?product={}",
            self.target.url.trim_end_matches('/'),
            self.product
        );
        let resp = self
            .http
            .get(&url)
            .bearer_auth(&self.target.token)
            .send()
            .await
            .map_err(|e| format!("GET {url}: {e}"))?;
        let status = resp.status();
        let body = resp.text().await.map_err(|e| format!("GET {url}: {e}"))?;
        if !status.is_success() {
            return Err(format!("GET {url}: HTTP {status}: {body}"));
        }
        serde_json::from_str(&body).map_err(|e| format!("GET {url}: bad JSON: {e}"))
    }

    /// The product's state now, stamped `t_s`.
    pub async fn sample(&self, t_s: f64) -> Result<Sample, String> {
        let status: StatusWire = self.get("status").await?;
        sample_from_status(&status, self.product, t_s)
            .ok_or_else(|| format!("product {} not in the status", self.product))
    }

    /// The audit verdict (`ok` or what is wrong), or why it could not be had.
    pub async fn audit(&self) -> String {
        match self.get::<AuditWire>("audit").await {
            Ok(a) => audit_verdict(&a, self.product),
            Err(e) => format!("audit failed: {e}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_status_view_json() {
        let json = r#"{"leader":"c1","products":[{"product_id":7,"name":"phone","total":300,
            "pool":20,"policy":"demand","active":true,"regions":{"east":{"granted":100,
            "applied":100,"released":0,"sold":60,"available":40,"in_transit":0,"demand":12.5,
            "alive":true,"draining":false},"south":{"granted":0,"applied":null,"released":0,
            "sold":null,"available":null,"in_transit":null,"demand":0.0,"alive":false,
            "draining":false}}}]}"#;
        let s: StatusWire = serde_json::from_str(json).unwrap();
        let sample = sample_from_status(&s, 7, 1.5).unwrap();
        assert_eq!(sample.total, 300);
        assert_eq!(sample.pool, 20);
        assert_eq!(sample.regions["east"].available, Some(40));
        assert_eq!(sample.regions["east"].demand, 12.5);
        assert_eq!(sample.regions["south"].sold, None);
        assert!(!sample.regions["south"].alive);
        assert!(sample_from_status(&s, 8, 0.0).is_none());
    }

    #[test]
    fn audit_verdicts() {
        let ok: AuditWire = serde_json::from_str(
            r#"{"ok":true,"unreadable":[],"products":[{"product_id":7,"ok":true,
            "violations":[],"unreadable":[]}]}"#,
        )
        .unwrap();
        assert_eq!(audit_verdict(&ok, 7), "ok");
        let bad: AuditWire = serde_json::from_str(
            r#"{"ok":false,"unreadable":["north: timeout"],"products":[{"product_id":7,
            "violations":["identity broken","sold > total"],"unreadable":["north: timeout"]}]}"#,
        )
        .unwrap();
        assert_eq!(
            audit_verdict(&bad, 7),
            "identity broken; sold > total; unreadable: north: timeout"
        );
    }
}
