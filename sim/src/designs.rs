//! The designs compared side by side in the same simulated world (same seed, same buyers,
//! same faults). Each is the same machinery set up differently, so the comparison measures
//! the design, not the model:
//!
//! * `escrow` — this project: the scenario's split, the demand policy moving units.
//! * `static` — the same split under the static policy: nothing ever moves.
//! * `central` — every unit in one region (the one nearest the hub), every buyer sent there:
//!   one counter, and remote buyers pay the distance both ways.
//! * `oracle` — perfect allocation with zero transfer delay: the pool hands a unit to a
//!   region the instant one of its buyers needs it. No design can sell faster.

use std::collections::BTreeMap;
use std::fmt;
use std::str::FromStr;

use quota_shared::policy::PolicyKind;
use serde::{Deserialize, Serialize};

use crate::scenario::{Place, Scenario};

/// One design.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Design {
    /// This project: escrow with demand rebalancing.
    Escrow,
    /// The initial split, never moved.
    Static,
    /// One central counter.
    Central,
    /// Perfect allocation, zero delay: the lower bound.
    Oracle,
}

impl Design {
    /// Every design, in report order.
    pub const ALL: [Design; 4] = [
        Design::Escrow,
        Design::Static,
        Design::Central,
        Design::Oracle,
    ];

    /// The name in tables, JSON and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Design::Escrow => "escrow",
            Design::Static => "static",
            Design::Central => "central",
            Design::Oracle => "oracle",
        }
    }

    /// The coordinator's policy (none: the oracle needs no coordinator).
    pub(crate) fn policy(self) -> Option<PolicyKind> {
        match self {
            Design::Escrow => Some(PolicyKind::Demand),
            Design::Static | Design::Central => Some(PolicyKind::Static),
            Design::Oracle => None,
        }
    }

    /// The region every buyer is sent to, for the central counter: the one nearest the hub
    /// (ties: the first by name).
    pub(crate) fn central(self, places: &[Place]) -> Option<u16> {
        (self == Design::Central).then(|| {
            (0..places.len())
                .min_by(|&a, &b| places[a].distance_ms.total_cmp(&places[b].distance_ms))
                .unwrap_or(0) as u16
        })
    }

    /// Units each region holds when the sale starts (granted and applied beforehand).
    pub(crate) fn initial(self, scenario: &Scenario, places: &[Place]) -> Vec<i64> {
        match self {
            Design::Escrow | Design::Static => scenario.initial_split(places),
            Design::Central => {
                let c = usize::from(self.central(places).unwrap_or(0));
                (0..places.len())
                    .map(|i| if i == c { scenario.total } else { 0 })
                    .collect()
            }
            Design::Oracle => vec![0; places.len()],
        }
    }

    /// The static split the ledger records (what the static policy holds the regions to).
    pub(crate) fn static_split(self, places: &[Place], initial: &[i64]) -> BTreeMap<String, i64> {
        match self {
            Design::Static | Design::Central => places
                .iter()
                .zip(initial)
                .map(|(p, u)| (p.name.clone(), *u))
                .collect(),
            Design::Escrow | Design::Oracle => BTreeMap::new(),
        }
    }
}

impl fmt::Display for Design {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Design {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Design::ALL
            .into_iter()
            .find(|d| d.as_str() == s.trim())
            .ok_or_else(|| format!("unknown design {s:?} (escrow, static, central, oracle)"))
    }
}
