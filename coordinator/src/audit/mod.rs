//! The cross-region conservation audit (see ARCHITECTURE.md): read each region's truth through
//! its admin endpoint, typed as [`RegionTruth`], between two reads of the ledger that must agree
//! (a consistent cut), and judge it with the pure [`verdict::evaluate`].

#[cfg(test)]
mod tests;
mod verdict;

use std::collections::BTreeMap;

use quota_shared::wire::{AuditReport, ProductAudit, RegionTruth};

use crate::cas::{Attempt, CONSISTENT_CUT};
use crate::error::CoordError;
use crate::escrow::Escrow;

impl Escrow {
    /// The audit of every product (or just `only`).
    pub(crate) async fn audit(&self, only: Option<i64>) -> Result<AuditReport, CoordError> {
        let urls: BTreeMap<String, String> = self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| (r.region, r.url))
            .collect();
        let mut report = AuditReport {
            ok: true,
            unreadable: Vec::new(),
            products: Vec::new(),
        };
        for id in self.product_ids(only).await? {
            let product = self.audit_product(id, &urls).await?;
            report.ok &= product.ok;
            report.unreadable.extend(product.unreadable.iter().cloned());
            report.products.push(product);
        }
        report.unreadable.sort();
        report.unreadable.dedup();
        report.ok &= report.unreadable.is_empty();
        Ok(report)
    }

    /// One product, over a consistent cut: the ledger read before and after the regions must
    /// be the same revision with the same published releases, else read again.
    async fn audit_product(
        &self,
        id: i64,
        urls: &BTreeMap<String, String>,
    ) -> Result<ProductAudit, CoordError> {
        CONSISTENT_CUT
            .run(move || async move {
                let before = self.store.read(id).await?;
                let stake = before
                    .ledger
                    .granted
                    .iter()
                    .filter(|(_, g)| **g > 0)
                    .map(|(r, _)| r);
                let mut truths = BTreeMap::new();
                let mut unreadable = Vec::new();
                for r in stake {
                    match self.region_truth(urls.get(r), id).await {
                        Ok(t) => {
                            truths.insert(r.clone(), t);
                        }
                        Err(e) => unreadable.push(format!("{r}: {e}")),
                    }
                }
                let after = self.store.read(id).await?;
                if before.revision != after.revision || before.published != after.published {
                    return Ok(Attempt::Retry);
                }
                let verdict = verdict::evaluate(&after, &truths, unreadable);
                Ok(Attempt::Done(verdict.into_wire()))
            })
            .await
    }

    /// One region's truth about product `id`, or why it could not be had (in words: the
    /// audit names it as unreadable).
    async fn region_truth(&self, url: Option<&String>, id: i64) -> Result<RegionTruth, String> {
        let url = url.ok_or("region never registered a URL")?;
        let resp = self
            .http
            .get(format!("{url}/v1/admin/products/{id}/audit"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| format!("unreachable ({e})"))?;
        if !resp.status().is_success() {
            return Err(format!("answered HTTP {}", resp.status()));
        }
        resp.json::<RegionTruth>()
            .await
            .map_err(|e| format!("unreadable answer ({e})"))
    }
}
