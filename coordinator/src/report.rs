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
        let urls = self.region_urls().await?;
        let mut regions = BTreeMap::new();
        let mut unreadable = Vec::new();
        for (region, url) in &urls {
            match self
                .region_get::<RegionSaleReport>(url, &format!("/v1/admin/products/{id}/report"))
                .await
            {
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
}
