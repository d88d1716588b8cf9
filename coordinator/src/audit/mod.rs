//! The cross-region conservation audit (see ARCHITECTURE.md): read *every registered* region's
//! truth through its admin endpoint, typed as [`RegionTruth`], between two reads of the ledger
//! that must agree (a consistent cut), and judge it with the pure [`verdict::evaluate`]. Then
//! watch any transfer still in transit (a grant not applied, a release not published): one that
//! stays open and unchanged for the stuck bound is a violation, because the identity counts
//! in-transit units as present and would otherwise pass however long they never arrive.

#[cfg(test)]
mod tests;
mod verdict;

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use quota_shared::wire::{AuditReport, ProductAudit, RegionTruth};
use verdict::{region_audit, OpenTransfers, Verdict};

use crate::cas::{Attempt, CONSISTENT_CUT};
use crate::error::CoordError;
use crate::escrow::Escrow;

impl Escrow {
    /// The audit of every product (or just `only`).
    pub(crate) async fn audit(&self, only: Option<i64>) -> Result<AuditReport, CoordError> {
        let urls = self.region_urls().await?;
        let mut report = AuditReport {
            ok: true,
            unreadable: Vec::new(),
            products: Vec::new(),
        };
        for id in self.product_ids(only).await? {
            let product = self.audit_product(id, &urls).await?;
            crate::metrics::audited(id, product.ok);
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
    /// be the same revision with the same published releases, else read again. Every
    /// registered region is read, with a stake in the ledger or not: a region with `G = 0`
    /// may still hold units (an etcd restored from an old backup, a reused product id).
    async fn audit_product(
        &self,
        id: i64,
        urls: &BTreeMap<String, String>,
    ) -> Result<ProductAudit, CoordError> {
        let mut verdict: Verdict = CONSISTENT_CUT
            .run(move || async move {
                let before = self.store.read(id).await?;
                let mut regions: Vec<&String> = urls.keys().collect();
                regions.extend(before.ledger.granted.keys());
                regions.sort();
                regions.dedup();
                let mut truths = BTreeMap::new();
                let mut unreadable = Vec::new();
                for r in regions {
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
                Ok(Attempt::Done(verdict::evaluate(
                    &after, &truths, unreadable,
                )))
            })
            .await?;
        let open: BTreeMap<String, OpenTransfers> = verdict
            .regions
            .iter()
            .map(|(r, a)| (r.clone(), OpenTransfers::of(a)))
            .filter(|(_, o)| !o.is_empty())
            .collect();
        if !open.is_empty() {
            verdict.violations.extend(self.stuck(id, open, urls).await?);
        }
        Ok(verdict.into_wire())
    }

    /// Watches transfers that were open at the cut: every quarter second, re-reads the ledger
    /// and those regions; a transfer that completed or moved is dropped; what is still open and
    /// unchanged after the stuck bound is a violation. A region that stops answering meanwhile
    /// is dropped here (the next audit names it unreadable). Returns at once when nothing stays
    /// open, so a busy sale's millisecond transfers cost one short wait.
    async fn stuck(
        &self,
        id: i64,
        mut open: BTreeMap<String, OpenTransfers>,
        urls: &BTreeMap<String, String>,
    ) -> Result<Vec<verdict::Violation>, CoordError> {
        let started = Instant::now();
        while !open.is_empty() && started.elapsed() < self.stuck_after {
            tokio::time::sleep(Duration::from_millis(250)).await;
            let snap = self.store.read(id).await?;
            let mut still = BTreeMap::new();
            for (r, was) in open {
                let Ok(t) = self.region_truth(urls.get(&r), id).await else {
                    continue;
                };
                let now = was.still(&OpenTransfers::of(&region_audit(&snap, &r, &t)));
                if !now.is_empty() {
                    still.insert(r, now);
                }
            }
            open = still;
        }
        let for_ms = started.elapsed().as_millis();
        Ok(open.iter().flat_map(|(r, o)| o.stuck(r, for_ms)).collect())
    }

    /// One region's truth about product `id`, or why it could not be had (in words: the
    /// audit names it as unreadable).
    async fn region_truth(&self, url: Option<&String>, id: i64) -> Result<RegionTruth, String> {
        let url = url.ok_or("region never registered a URL")?;
        self.region_get(url, &format!("/v1/admin/products/{id}/audit"))
            .await
            .map_err(|e| e.to_string())
    }
}
