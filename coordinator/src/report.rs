//! `quotactl report`: what became of a sale's units after the click — per region sold, pending,
//! paid, cancelled, expired, returned and resold units and revenue, read from every registered
//! region (its region-admin endpoint), summed, next to the product's audit.

use std::collections::BTreeMap;

use quota_shared::wire::{RegionSaleReport, SaleReport};

use crate::error::CoordError;
use crate::escrow::Escrow;

impl Escrow {
    /// The report of product `id` (404 for an unknown product).
    pub(crate) async fn sale_report(&self, id: i64) -> Result<SaleReport, CoordError> {
        let total = self.store.read(id).await?.ledger.total;
        let urls: BTreeMap<String, String> = self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| (r.region, r.url))
            .collect();
        let mut regions = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (region, url) in &urls {
            match self.region_report(url, id).await {
                Ok(r) => {
                    regions.insert(region.clone(), r);
                }
                Err(e) => unreadable.push(format!("{region}: {e}")),
            }
        }
        let totals = regions
            .values()
            .fold(RegionSaleReport::default(), |sum, r| sum.plus(r, "total"));
        let mut audit = self.audit(Some(id)).await?;
        let audit = audit
            .products
            .pop()
            .ok_or_else(|| CoordError::Internal(format!("the audit of {id} had no product")))?;
        Ok(SaleReport {
            product_id: id,
            total,
            regions,
            totals: RegionSaleReport {
                region: "total".into(),
                ..totals
            },
            unreadable,
            audit,
        })
    }

    /// One region's report, or why it could not be had (in words).
    async fn region_report(&self, url: &str, id: i64) -> Result<RegionSaleReport, String> {
        let resp = self
            .http
            .get(format!("{url}/v1/admin/products/{id}/report"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| format!("unreachable ({e})"))?;
        let status = resp.status();
        if !status.is_success() {
            return Err(format!("answered HTTP {status}"));
        }
        resp.json::<RegionSaleReport>()
            .await
            .map_err(|e| format!("unreadable answer ({e})"))
    }
}
