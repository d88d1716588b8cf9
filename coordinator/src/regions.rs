//! How the coordinator reads the regions' admin API (the audit, the sale report, one order):
//! every registered region's URL, and one authenticated `GET` with the region-admin token whose
//! failures are typed, so each caller can tell "not there" (404) from "could not ask".

use std::collections::BTreeMap;
use std::fmt;

use serde::de::DeserializeOwned;

use crate::error::CoordError;
use crate::escrow::Escrow;

/// Why a region's answer could not be had.
#[derive(Debug)]
pub(crate) enum RegionError {
    /// No answer (refused, reset, timed out).
    Unreachable(String),
    /// An answer other than success.
    Status(reqwest::StatusCode),
    /// A success whose body is not what the API documents.
    Unreadable(String),
}

impl fmt::Display for RegionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RegionError::Unreachable(e) => write!(f, "unreachable ({e})"),
            RegionError::Status(s)
                if *s == reqwest::StatusCode::UNAUTHORIZED
                    || *s == reqwest::StatusCode::FORBIDDEN =>
            {
                write!(
                    f,
                    "answered HTTP {s}: it does not accept the token this coordinator presents \
                     (give the region nodes and the coordinators the same \
                     --region-admin-token-file, or neither)"
                )
            }
            RegionError::Status(s) => write!(f, "answered HTTP {s}"),
            RegionError::Unreadable(e) => write!(f, "unreadable answer ({e})"),
        }
    }
}

impl Escrow {
    /// Every registered region's admin URL, by region.
    pub(crate) async fn region_urls(&self) -> Result<BTreeMap<String, String>, CoordError> {
        Ok(self
            .store
            .regions()
            .await?
            .into_iter()
            .map(|r| (r.region, r.url))
            .collect())
    }

    /// `GET {url}{path}` with the region-admin token, as `T`.
    pub(crate) async fn region_get<T: DeserializeOwned>(
        &self,
        url: &str,
        path: &str,
    ) -> Result<T, RegionError> {
        let resp = self
            .http
            .get(format!("{url}{path}"))
            .bearer_auth(&self.admin_token)
            .send()
            .await
            .map_err(|e| RegionError::Unreachable(e.to_string()))?;
        if !resp.status().is_success() {
            return Err(RegionError::Status(resp.status()));
        }
        resp.json::<T>()
            .await
            .map_err(|e| RegionError::Unreadable(e.to_string()))
    }
}
