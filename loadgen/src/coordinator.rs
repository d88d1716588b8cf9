//! The coordinator's admin API as the load generator uses it: status samples and the audit,
//! read as the typed contract ([`quota_shared::wire`]) the coordinator itself serves, so a
//! renamed field fails to compile here instead of silently reading as nothing.

use std::time::Duration;

use quota_shared::wire::{AuditReport, StatusView};
use serde::de::DeserializeOwned;

use crate::config::CoordinatorTarget;
use crate::series::{RegionSample, Sample};

/// The sample of `product` in a status answer, stamped `t_s`; None if the product is absent.
pub(crate) fn sample_from_status(status: &StatusView, product: i64, t_s: f64) -> Option<Sample> {
    let p = status.products.iter().find(|p| p.product_id == product)?;
    let regions = p
        .regions
        .iter()
        .map(|(name, r)| {
            let sample = RegionSample {
                granted: r.granted,
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
        coordinator_writes: p.coordinator_writes,
        regions,
    })
}

/// The audit's verdict in one line: `ok`, or what is wrong.
pub(crate) fn audit_verdict(audit: &AuditReport, product: i64) -> String {
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
pub(crate) struct CoordinatorClient {
    http: reqwest::Client,
    target: CoordinatorTarget,
    product: i64,
}

impl CoordinatorClient {
    /// A client for `product` at `target`.
    pub(crate) fn new(target: CoordinatorTarget, product: i64) -> Result<Self, reqwest::Error> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()?;
        Ok(CoordinatorClient {
            http,
            target,
            product,
        })
    }

    async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, String> {
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
    pub(crate) async fn sample(&self, t_s: f64) -> Result<Sample, String> {
        let status: StatusView = self.get("status").await?;
        sample_from_status(&status, self.product, t_s)
            .ok_or_else(|| format!("product {} not in the status", self.product))
    }

    /// The audit verdict (`ok` or what is wrong), or why it could not be had.
    pub(crate) async fn audit(&self) -> String {
        match self.get::<AuditReport>("audit").await {
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
        let s: StatusView = serde_json::from_str(json).unwrap();
        let sample = sample_from_status(&s, 7, 1.5).unwrap();
        assert_eq!(sample.total, 300);
        assert_eq!(sample.pool, 20);
        assert_eq!(sample.regions["east"].available, Some(40));
        assert_eq!(sample.regions["east"].granted, 100);
        assert_eq!(sample.regions["east"].demand, 12.5);
        assert_eq!(sample.regions["south"].sold, None);
        assert!(!sample.regions["south"].alive);
        assert!(sample_from_status(&s, 8, 0.0).is_none());
    }

    #[test]
    fn audit_verdicts() {
        let ok: AuditReport = serde_json::from_str(
            r#"{"ok":true,"unreadable":[],"products":[{"product_id":7,"total":300,"pool":0,
            "sold":300,"ok":true,"violations":[],"unreadable":[],"regions":{}}]}"#,
        )
        .unwrap();
        assert_eq!(audit_verdict(&ok, 7), "ok");
        let bad: AuditReport = serde_json::from_str(
            r#"{"ok":false,"unreadable":["north: timeout"],"products":[{"product_id":7,
            "total":300,"pool":0,"sold":301,"ok":false,
            "violations":["identity broken","sold > total"],"unreadable":["north: timeout"],
            "regions":{}}]}"#,
        )
        .unwrap();
        assert_eq!(
            audit_verdict(&bad, 7),
            "identity broken; sold > total; unreadable: north: timeout"
        );
    }
}
