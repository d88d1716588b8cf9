//! Scenarios: the simulated world as a data file (`sim/scenarios/*.json`), so a new experiment
//! is a new file, not new code. Every knob of the escrow design (policy parameters, report and
//! round periods, the buyers' retry policy) is a field, so the lead can vary them without
//! touching the engine. Missing fields take the defaults below (the real system's settings).

use std::collections::BTreeMap;
use std::path::Path;

use quota_shared::buyers::{ArrivalSchedule, Weights};
use quota_shared::policy::PolicyParams;
use serde::{Deserialize, Serialize};

use crate::faults::FaultPlan;

/// The built-in scenarios, compiled in so `--scenario NAME` works from any directory.
const BUILTIN: &[(&str, &str)] = &[
    ("skew", include_str!("../scenarios/skew.json")),
    ("shift", include_str!("../scenarios/shift.json")),
    ("spike", include_str!("../scenarios/spike.json")),
    ("regions-3", include_str!("../scenarios/regions-3.json")),
    ("regions-10", include_str!("../scenarios/regions-10.json")),
    ("regions-50", include_str!("../scenarios/regions-50.json")),
    (
        "distances-5-40-80",
        include_str!("../scenarios/distances-5-40-80.json"),
    ),
    (
        "distances-50-200",
        include_str!("../scenarios/distances-50-200.json"),
    ),
    ("faults", include_str!("../scenarios/faults.json")),
];

/// Why a scenario could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ScenarioError {
    /// Neither a built-in name nor a readable file.
    #[error("no scenario {0:?} (built in: {1}; or give a path to a .json file)")]
    Unknown(String, String),
    /// The file could not be read.
    #[error("reading {0}: {1}")]
    Io(String, std::io::Error),
    /// The JSON does not describe a scenario.
    #[error("scenario {0}: {1}")]
    Parse(String, serde_json::Error),
    /// The scenario is inconsistent.
    #[error("scenario {0}: {1}")]
    Invalid(String, String),
}

/// One simulated sale: the world, the buyers, the design knobs and the faults.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Scenario {
    /// Short name, shown in reports.
    pub name: String,
    /// What the scenario is about, one line.
    #[serde(default)]
    pub about: String,
    /// Units on sale.
    pub total: i64,
    /// The regions, listed or generated.
    pub regions: RegionsSpec,
    /// Initial units per region for the split designs (default: even).
    #[serde(default)]
    pub split: Option<BTreeMap<String, i64>>,
    /// When buyers arrive (the load generator's schedule).
    pub arrivals: ArrivalSchedule,
    /// A mid-sale change of the demand weights.
    #[serde(default)]
    pub shift: Option<Shift>,
    /// The buyers' client: distance to their region, retry policy.
    #[serde(default)]
    pub buyer: BuyerSpec,
    /// Each region's sell path.
    #[serde(default)]
    pub node: NodeSpec,
    /// The escrow protocol's knobs.
    #[serde(default)]
    pub escrow: EscrowSpec,
    /// Link jitter: each one-way delay is `base × (1 + jitter × u)`, `u` uniform in [0, 1).
    #[serde(default = "default_jitter")]
    pub jitter: f64,
    /// Faults on a seeded schedule.
    #[serde(default)]
    pub faults: FaultPlan,
}

fn default_jitter() -> f64 {
    0.1
}

/// The regions: an explicit list, or `count` regions generated with distances spread evenly
/// over a range and Zipf-like weights (so 50-region scenarios stay one screen long).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RegionsSpec {
    /// Named regions.
    List(Vec<RegionSpec>),
    /// Generated regions `r00`, `r01`, …
    Generated {
        /// How many.
        count: usize,
        /// One-way delay to the hub of the first and last region (the others in between), ms.
        distance_ms: [f64; 2],
        /// Weight of region `i` is `1000 / (i + 1)^skew` (0: all equal).
        #[serde(default)]
        skew: f64,
    },
}

/// One region.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionSpec {
    /// Its name.
    pub name: String,
    /// One-way delay to the hub (where etcd and the coordinator run), ms. Regions reach each
    /// other through the hub: `d(i, j) = d_i + d_j`.
    pub distance_ms: f64,
    /// Share of the buyers arriving here.
    #[serde(default = "one")]
    pub weight: u32,
}

fn one() -> u32 {
    1
}

/// New demand weights from `at_s` on.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Shift {
    /// Seconds after the start.
    pub at_s: f64,
    /// The new weights by region name.
    pub weights: Weights,
}

/// The buyers' side.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct BuyerSpec {
    /// One-way delay from a buyer to its own region, ms.
    pub local_ms: f64,
    /// Extra tries after a 503, 429 or 410 (quota-loadgen's `--retries`).
    pub retries: u32,
    /// Base pause before a retry, ms, jittered ×(0.5 + u) (quota-loadgen's `--retry-backoff-ms`).
    pub backoff_ms: f64,
}

impl Default for BuyerSpec {
    fn default() -> Self {
        BuyerSpec {
            local_ms: 1.0,
            retries: 3,
            backoff_ms: 50.0,
        }
    }
}

/// One region's sell path.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct NodeSpec {
    /// Purchases in service at once; more wait in a FIFO queue.
    pub capacity: usize,
    /// Longest queue; an arrival beyond it is answered 429.
    pub queue: usize,
    /// Mean service time of an admitted purchase (Postgres commit), ms; uniform ±50 %.
    pub service_ms: f64,
    /// Service time of a refusal (answered from memory or Redis), ms.
    pub refusal_ms: f64,
    /// Delay from a grant committed in Postgres to Redis admitting it (the reconciler poke), ms.
    pub reconcile_ms: f64,
}

impl Default for NodeSpec {
    fn default() -> Self {
        NodeSpec {
            capacity: 32,
            queue: 100_000,
            service_ms: 2.0,
            refusal_ms: 0.2,
            reconcile_ms: 1.0,
        }
    }
}

/// The escrow protocol's knobs (the coordinator and the regions' etcd session).
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct EscrowSpec {
    /// The rebalance policy's parameters.
    pub policy: PolicyParams,
    /// Period of a region's report (and reconcile pass), ms.
    pub report_ms: f64,
    /// Period of the leader's rebalance round, ms.
    pub round_ms: f64,
    /// One-way delay between the coordinator and etcd (both at the hub), ms.
    pub coord_etcd_ms: f64,
    /// A region's heartbeat lease TTL, ms: a silent region counts as dead after it.
    pub region_lease_ms: f64,
    /// The leader's lease TTL, ms: after a failover nobody leads for this long.
    pub leader_lease_ms: f64,
    /// How often unchanged movable stock is republished, ms.
    pub movable_refresh_ms: f64,
    /// How long a buyer may wait in a region's line for stock on its way before hearing 503
    /// (`region-node --await-stock-ms`), ms; 0 answers at once.
    pub await_stock_ms: f64,
    /// Whether the leader runs a round the moment a region publishes a release (its watch).
    pub round_on_release: bool,
}

impl Default for EscrowSpec {
    fn default() -> Self {
        EscrowSpec {
            policy: PolicyParams::default(),
            report_ms: 100.0,
            round_ms: 100.0,
            coord_etcd_ms: 1.0,
            region_lease_ms: 3_000.0,
            leader_lease_ms: 2_000.0,
            movable_refresh_ms: 1_000.0,
            await_stock_ms: 500.0,
            round_on_release: true,
        }
    }
}

/// A region after generation: what the engine uses.
#[derive(Debug, Clone, PartialEq)]
pub struct Place {
    /// Name.
    pub name: String,
    /// One-way delay to the hub, ms.
    pub distance_ms: f64,
    /// Buyer weight.
    pub weight: u32,
}

impl Scenario {
    /// Loads a built-in scenario by name, or a JSON file by path.
    pub fn load(name_or_path: &str) -> Result<Scenario, ScenarioError> {
        if let Some((_, text)) = BUILTIN.iter().find(|(n, _)| *n == name_or_path) {
            return Scenario::parse(name_or_path, text);
        }
        let path = Path::new(name_or_path);
        if !path.exists() {
            return Err(ScenarioError::Unknown(
                name_or_path.to_string(),
                Scenario::builtin_names().join(", "),
            ));
        }
        let text = std::fs::read_to_string(path)
            .map_err(|e| ScenarioError::Io(name_or_path.to_string(), e))?;
        Scenario::parse(name_or_path, &text)
    }

    /// Names of the built-in scenarios.
    pub fn builtin_names() -> Vec<&'static str> {
        BUILTIN.iter().map(|(n, _)| *n).collect()
    }

    /// Parses and validates a scenario's JSON (`origin` names it in errors).
    pub fn parse(origin: &str, text: &str) -> Result<Scenario, ScenarioError> {
        let s: Scenario =
            serde_json::from_str(text).map_err(|e| ScenarioError::Parse(origin.to_string(), e))?;
        s.validate()
            .map_err(|m| ScenarioError::Invalid(origin.to_string(), m))?;
        Ok(s)
    }

    fn validate(&self) -> Result<(), String> {
        let places = self.places();
        if places.is_empty() {
            return Err("no regions".into());
        }
        if places.len() > usize::from(u16::MAX) {
            return Err("too many regions".into());
        }
        if self.total < 0 || self.total > quota_shared::model::MAX_TOTAL {
            return Err(format!("total {} out of range", self.total));
        }
        let mut names: Vec<&str> = places.iter().map(|p| p.name.as_str()).collect();
        names.sort_unstable();
        if names.windows(2).any(|w| w[0] == w[1]) {
            return Err("region names must be unique".into());
        }
        if let Some(split) = &self.split {
            if split.keys().any(|k| !names.contains(&k.as_str())) {
                return Err("split names an unknown region".into());
            }
            if split.values().any(|v| *v < 0) || split.values().sum::<i64>() > self.total {
                return Err("split must be non-negative and sum to at most the total".into());
            }
        }
        if self.node.capacity == 0 {
            return Err("node.capacity must be at least 1".into());
        }
        if self.escrow.round_ms <= 0.0 || self.escrow.report_ms <= 0.0 {
            return Err("escrow periods must be positive".into());
        }
        Ok(())
    }

    /// The regions, generated if need be, in name order (the order every report uses).
    pub fn places(&self) -> Vec<Place> {
        let mut places = match &self.regions {
            RegionsSpec::List(list) => list
                .iter()
                .map(|r| Place {
                    name: r.name.clone(),
                    distance_ms: r.distance_ms,
                    weight: r.weight,
                })
                .collect(),
            RegionsSpec::Generated {
                count,
                distance_ms,
                skew,
            } => (0..*count)
                .map(|i| {
                    let frac = if *count > 1 {
                        i as f64 / (*count - 1) as f64
                    } else {
                        0.0
                    };
                    Place {
                        name: format!("r{i:02}"),
                        distance_ms: distance_ms[0] + frac * (distance_ms[1] - distance_ms[0]),
                        weight: (1000.0 / ((i + 1) as f64).powf(*skew)).round().max(1.0) as u32,
                    }
                })
                .collect::<Vec<_>>(),
        };
        places.sort_by(|a, b| a.name.cmp(&b.name));
        places
    }

    /// The initial split of the split designs: the scenario's, or even (largest remainder by
    /// name order, so it is deterministic).
    pub fn initial_split(&self, places: &[Place]) -> Vec<i64> {
        if let Some(split) = &self.split {
            return places
                .iter()
                .map(|p| split.get(&p.name).copied().unwrap_or(0))
                .collect();
        }
        let n = places.len() as i64;
        (0..n)
            .map(|i| self.total / n + i64::from(i < self.total % n))
            .collect()
    }

    /// The buyer weights by name.
    pub fn weights(&self, places: &[Place]) -> Weights {
        places.iter().map(|p| (p.name.clone(), p.weight)).collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_builtin_parses() {
        for name in Scenario::builtin_names() {
            let s = Scenario::load(name).unwrap_or_else(|e| panic!("{e}"));
            assert!(!s.places().is_empty());
        }
    }

    #[test]
    fn even_split_sums_to_total() {
        let s = Scenario::load("regions-10").unwrap();
        let p = s.places();
        assert_eq!(s.initial_split(&p).iter().sum::<i64>(), s.total);
    }

    #[test]
    fn unknown_name_lists_the_builtins() {
        let e = Scenario::load("nope").unwrap_err().to_string();
        assert!(e.contains("skew"), "{e}");
    }
}
