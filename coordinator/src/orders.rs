//! Operators' view of one order (`quotactl order show|cancel`): an order id names no region (the
//! region that sold it minted it), so the coordinator asks every registered region's admin
//! endpoint for it, and cancels it through the region that has it. The region decides: its
//! database refuses any change but of a pending order.

use std::collections::BTreeMap;

use quota_shared::wire::OrderRecord;
use uuid::Uuid;

use crate::error::CoordError;
use crate::escrow::Escrow;

impl Escrow {
    /// The order and its region's URL: 404 when no region has it; 503 when none had it but
    /// some could not be asked (it may be there).
    async fn locate_order(&self, id: Uuid) -> Result<(OrderRecord, String), CoordError> {
        let urls: BTreeMap<String, String> = self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| (r.region, r.url))
            .collect();
        let mut unreachable = Vec::new();
        for (region, url) in &urls {
            let resp = self
                .http
                .get(format!("{url}/v1/admin/orders/{id}"))
                .bearer_auth(&self.admin_token)
                .send()
                .await;
            match resp {
                Ok(r) if r.status().is_success() => {
                    let order = r.json::<OrderRecord>().await.map_err(|e| {
                        CoordError::Internal(format!("{region} answered an unreadable order: {e}"))
                    })?;
                    return Ok((order, url.clone()));
                }
                Ok(r) if r.status() == reqwest::StatusCode::NOT_FOUND => {}
                Ok(r) => unreachable.push(format!("{region} (HTTP {})", r.status())),
                Err(e) => unreachable.push(format!("{region} ({e})")),
            }
        }
        if unreachable.is_empty() {
            Err(CoordError::UnknownOrder(id))
        } else {
            Err(CoordError::Unavailable(format!(
                "order {id} is in no region that answered; not asked: {}",
                unreachable.join(", ")
            )))
        }
    }

    /// The order, from whichever region holds it.
    pub(crate) async fn order(&self, id: Uuid) -> Result<OrderRecord, CoordError> {
        Ok(self.locate_order(id).await?.0)
    }

    /// Cancels the order in its region (an operator's cancel: any pending order); a 409 says
    /// what it is instead.
    pub(crate) async fn cancel_order(&self, id: Uuid) -> Result<OrderRecord, CoordError> {
        let (order, url) = self.locate_order(id).await?;
        let resp = self
            .http
            .post(format!("{url}/v1/admin/orders/{id}/cancel"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| {
                CoordError::Unavailable(format!("region {} unreachable ({e})", order.region))
            })?;
        let status = resp.status();
        if status.is_success() {
            return resp
                .json::<OrderRecord>()
                .await
                .map_err(|e| CoordError::Internal(format!("unreadable answer: {e}")));
        }
        if status == reqwest::StatusCode::CONFLICT {
            let body: serde_json::Value = resp.json().await.unwrap_or_default();
            let now = body["error"]["status"].as_str().unwrap_or("not pending");
            return Err(CoordError::Conflict(format!(
                "order {id} is {now}, not pending: only a pending order can be cancelled"
            )));
        }
        Err(CoordError::Unavailable(format!(
            "region {} answered HTTP {status} to the cancel",
            order.region
        )))
    }
}
