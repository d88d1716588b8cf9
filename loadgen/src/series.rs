//! Time series the run collects: coordinator samples and the client's own per-second counts.
//!
//! Plain data (serialised into the report) plus small lookups the analysis needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// One region in one coordinator sample (values are None while the region does not report).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct RegionSample {
    /// `G`: units the coordinator has granted the region so far, the initial split included
    /// (never decreases; what feeds the units-moved measure).
    #[serde(default)]
    pub granted: i64,
    /// Units the region can still sell, as it reported.
    pub available: Option<i64>,
    /// Units it sold, as it reported.
    pub sold: Option<i64>,
    /// Purchase attempts per second the region reported.
    pub demand: f64,
    /// Its heartbeat is present.
    pub alive: bool,
}

/// The product's state at one instant, from `GET /v1/admin/status`.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Sample {
    /// Seconds since the run started.
    pub t_s: f64,
    /// Units on sale in all regions.
    pub total: i64,
    /// Units no region holds.
    pub pool: i64,
    /// etcd transactions the coordinator has written for the product so far.
    #[serde(default)]
    pub coordinator_writes: i64,
    /// Per region.
    pub regions: BTreeMap<String, RegionSample>,
}

impl Sample {
    /// Σ sold over every region (a region not reporting counts 0).
    pub fn sold(&self) -> i64 {
        self.regions.values().filter_map(|r| r.sold).sum()
    }

    /// Units a buyer could still get somewhere other than `region`: the pool plus what the
    /// other live regions report available. A dead region's stock is out of reach.
    pub fn stock_elsewhere(&self, region: &str) -> i64 {
        let others: i64 = self
            .regions
            .iter()
            .filter(|(name, r)| name.as_str() != region && r.alive)
            .filter_map(|(_, r)| r.available)
            .map(|a| a.max(0))
            .sum();
        self.pool.max(0) + others
    }

    /// Whether every unit is sold.
    pub fn sold_out(&self) -> bool {
        self.total > 0 && self.sold() >= self.total
    }
}

/// What the client itself saw in one region during one second of the run.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct ClientBucket {
    /// Requests answered in this second.
    pub attempts: u64,
    /// 201s among them.
    pub orders: u64,
    /// 410s among them.
    pub sold_out: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(t: f64) -> Sample {
        Sample {
            t_s: t,
            ..Sample::default()
        }
    }

    #[test]
    fn stock_elsewhere_counts_pool_and_live_other_regions() {
        let mut s = at(0.0);
        s.pool = 5;
        let region = |available, alive| RegionSample {
            available: Some(available),
            sold: Some(0),
            alive,
            ..RegionSample::default()
        };
        s.regions.insert("east".into(), region(7, true));
        s.regions.insert("south".into(), region(3, true));
        s.regions.insert("north".into(), region(100, false));
        assert_eq!(s.stock_elsewhere("east"), 5 + 3);
        assert_eq!(s.stock_elsewhere("south"), 5 + 7);
    }
}
