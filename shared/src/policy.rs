//! The rebalance policy: which grants and releases the coordinator issues for one product on
//! each tick (every 100 ms). Pure and deterministic — same input, same plan — so it is
//! unit- and property-tested here and the coordinator only has to carry the moves out.
//!
//! # Inputs
//!
//! `pool` (units allocated to no region) and, per region, a [`RegionState`]. A region's
//! *position* is `s = available − pending_release` (clamped ≥ 0): what it will still be able
//! to sell once the releases already asked of it have come back. Dead regions (no heartbeat
//! lease) are left out of everything below: they are never granted, never asked to release
//! (they cannot answer) and their units are not counted as supply.
//!
//! # Supply
//!
//! `S = pool + Σ_alive available`. Units a region has been asked to release are still inside
//! its `available` and are on their way to the pool, so they belong to the supply; counting
//! them keeps `S` (and hence every target) unchanged while a release is in flight, and when
//! it lands (`available −= u`, `pending −= u`, `pool += u`) neither `S` nor any position
//! changes. (Leaving them out would shrink the targets for the duration of every release and
//! make the next tick ask for a second, needless release.) The same sum decides the endgame
//! below. Since `S − Σ s = pool + in-flight`, the positions plus what is or will be in the
//! pool always add up to `S`.
//!
//! # Targets
//!
//! Each alive region gets a *target position* `T`:
//!
//! * [`PolicyKind::Demand`] — `S` in proportion to `demand` (purchase attempts per second,
//!   including refused ones, so a sold-out region still shows its appetite), but at least
//!   [`PolicyParams::floor`] units each so a region whose buyers just arrived can sell at once.
//!   Regions whose proportional share would be below the floor are pinned to it and the rest
//!   is re-split among the others until no share is below the floor (if `S` cannot give every
//!   region `floor`, the floor drops to `S / #alive`). Shares are rounded by largest
//!   remainder (ties → smaller name), so targets sum to exactly `S`. With no demand at all,
//!   `S` is split evenly — but only the pool moves: no region is asked to release units while
//!   nobody is buying anywhere (a move without a demand signal helps no buyer, and it would
//!   undo the operator's initial split before the sale has begun).
//! * [`PolicyKind::Even`] — `S` split evenly, largest remainder (the first `S mod n` names get
//!   one more).
//! * [`PolicyKind::Static`] — the operator's split: a region with a `static_share` should
//!   *hold* that many units, so `T = static_share − (holds − available)` (the part already
//!   sold or in transit counts towards it), clamped ≥ 0. Regions without a share keep what they
//!   have (`T = s`). Targets need not sum to `S`; grants are still capped by the pool.
//! * Endgame (Demand and Even only) — when `S ≤` [`PolicyParams::endgame_threshold`] and some
//!   alive region has demand > 0, all of `S` goes to the alive region with the highest demand
//!   (ties → smaller name): with a handful of units left, splitting them strands units in
//!   regions nobody buys in. With no demand anywhere the normal split applies — moving the last
//!   units to an arbitrary region would gain nothing.
//!
//! # Hysteresis
//!
//! A region with deficit or surplus `d = T − s` is *out of band*, and moves, only when
//! `|d| ≥ max(min_move, ceil(hysteresis × T))`. Two exceptions: in the endgame every unit
//! moves, and a sold-out region (`s = 0`, `T > 0`) always asks for a grant — it has buyers
//! and nothing to sell them, so waiting for the band would starve it.
//!
//! # Moves
//!
//! 1. Grants: out-of-band deficits are filled from the *current* pool, largest deficit first
//!    (ties → smaller name), each up to its deficit, until the pool runs out. Released units
//!    arrive later, asynchronously, so a plan never grants what its own releases would free.
//! 2. Releases: every out-of-band surplus is released in full (it is at most `s`, i.e. at most
//!    `available − pending_release`). If that, plus the releases already in flight, still
//!    does not cover the deficits the pool could not fill, the shortfall is also released from
//!    in-band surpluses (largest first, ties → smaller name) — never below their targets — so
//!    that a sold-out region cannot be starved by many slightly-over-target regions.
//! 3. Output: grants, then releases, each sorted by region name; no move has `units ≤ 0` and
//!    no region appears twice (a region has either a deficit or a surplus).
//!
//! # Convergence
//!
//! Targets depend only on `S`, the alive set, the names, the demands and `holds − available`,
//! none of which a grant or a completed release changes. Hence, with demand unchanged:
//! applying a plan and planning again yields only grants — to regions that were left short
//! because the pool was empty, now paid for by the releases — and never reverses a move;
//! after that second plan, a third is empty. A plan with no releases is already a fixpoint.
//! The one-round lag is unavoidable: when the pool is empty, moving units from a cold region
//! to a sold-out one takes a release, then (after it lands) a grant. The property tests below
//! check exactly this.
//!
//! # Parameters
//!
//! See [`PolicyParams`]; the defaults (`min_move 1`, `hysteresis 0.2`, `floor 1`,
//! `endgame_units 0` = auto) suit totals from tens to millions of units.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::Invalid;

/// Which targets the coordinator steers towards; chosen per deployment (or product) by the
/// operator, so it parses from config and CLI as a lowercase word.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum PolicyKind {
    /// Follow demand: quota goes where buyers are (the default, because it sells out fastest).
    #[default]
    Demand,
    /// Hold the operator's static split (e.g. contractual per-region allocations).
    Static,
    /// Split evenly: predictable when demand is unknown or not trusted.
    Even,
}

impl PolicyKind {
    /// Every kind, for help texts and exhaustive tests.
    pub const ALL: [PolicyKind; 3] = [PolicyKind::Demand, PolicyKind::Static, PolicyKind::Even];

    /// The word used in config, CLI and JSON, so all three spell it the same way.
    pub fn as_str(self) -> &'static str {
        match self {
            PolicyKind::Demand => "demand",
            PolicyKind::Static => "static",
            PolicyKind::Even => "even",
        }
    }
}

impl fmt::Display for PolicyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for PolicyKind {
    type Err = Invalid;

    /// Accepts the lowercase word, ignoring surrounding spaces and case, so a hand-edited
    /// config or flag is not refused over `Demand` vs `demand`.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let word = s.trim().to_ascii_lowercase();
        PolicyKind::ALL
            .into_iter()
            .find(|k| k.as_str() == word)
            .ok_or_else(|| {
                Invalid(format!(
                    "unknown rebalance policy {s:?} (expected demand, static or even)"
                ))
            })
    }
}

/// Tuning knobs of [`plan`]. Missing fields take their defaults when deserialized, so a config
/// only names what it changes.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct PolicyParams {
    /// Smallest move worth making outside the endgame: every move costs an etcd write and a
    /// region round trip. Default 1.
    pub min_move: i64,
    /// Dead band as a fraction of the target: a region within `ceil(hysteresis × target)` of
    /// its target is left alone, so demand noise does not shuffle units every tick.
    /// Default 0.2. Negative or non-finite values mean 0.
    pub hysteresis: f64,
    /// Least target for every alive region under [`PolicyKind::Demand`] (when the supply
    /// allows), so a region whose buyers just arrived can sell before its demand registers.
    /// Default 1.
    pub floor: i64,
    /// Supply at or below which the endgame concentrates everything in the hottest region.
    /// 0 (the default) means auto: `max(10, 2 × #alive regions)`.
    pub endgame_units: i64,
}

impl Default for PolicyParams {
    fn default() -> Self {
        PolicyParams {
            min_move: 1,
            hysteresis: 0.2,
            floor: 1,
            endgame_units: 0,
        }
    }
}

impl PolicyParams {
    /// The endgame threshold for `alive` regions, resolving the auto setting, so the
    /// coordinator can log the same number the policy uses.
    pub fn endgame_threshold(&self, alive: usize) -> i64 {
        if self.endgame_units > 0 {
            self.endgame_units
        } else {
            let alive = i64::try_from(alive).unwrap_or(i64::MAX);
            alive.saturating_mul(2).max(10)
        }
    }

    /// The dead band around `target`: smaller differences are not worth a move.
    fn band(&self, target: i64) -> i64 {
        let h = if self.hysteresis.is_finite() && self.hysteresis > 0.0 {
            self.hysteresis
        } else {
            0.0
        };
        // `as` saturates, so absurd fractions simply freeze the region.
        let frac = (h * target as f64).ceil() as i64;
        self.min_move.max(frac).max(1)
    }
}

/// What the coordinator knows about one region for one product, as the policy needs it.
///
/// Names must be unique within one call (they are the regions' etcd keys). Negative counts
/// are treated as 0. `pending_release ≤ available` normally holds (units asked for are still
/// unsold until released); if a stale report breaks it, the region's position is 0.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RegionState {
    /// The region's name; also the tie-breaker, so plans are deterministic.
    pub name: String,
    /// Its heartbeat lease is present: only alive regions can receive or return units.
    pub alive: bool,
    /// Units allocated to it (sold + available + in transit); with `available` it gives the
    /// already-sold part a static share counts.
    pub holds: i64,
    /// Units it can still sell right now, as last reported.
    pub available: i64,
    /// Units already asked back that have not reached the pool yet; never asked for twice.
    pub pending_release: i64,
    /// Recent purchase attempts per second (EWMA, refused attempts included), so a sold-out
    /// region still shows demand. Negative or non-finite values mean 0.
    pub demand: f64,
    /// The operator's static split target (units to hold), used by [`PolicyKind::Static`].
    #[serde(default)]
    pub static_share: Option<i64>,
}

/// One instruction for the coordinator. Serialized as `{"kind": "grant", "region": …,
/// "units": …}` so plans read well in logs and audit records.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "kind", rename_all = "lowercase")]
pub enum Move {
    /// Move `units` from the pool to an alive region (raises its cumulative grant).
    Grant {
        /// Receiving region.
        region: String,
        /// Units granted, > 0.
        units: i64,
    },
    /// Ask an alive region to give `units` back; they reach the pool later, asynchronously.
    Release {
        /// Region asked to release.
        region: String,
        /// Units asked for, > 0 and ≤ `available − pending_release`.
        units: i64,
    },
}

impl Move {
    /// The region the move concerns, whichever its kind (for logging and grouping).
    pub fn region(&self) -> &str {
        match self {
            Move::Grant { region, .. } | Move::Release { region, .. } => region,
        }
    }

    /// The units the move concerns, whichever its kind.
    pub fn units(&self) -> i64 {
        match self {
            Move::Grant { units, .. } | Move::Release { units, .. } => *units,
        }
    }
}

/// Decides this tick's moves for one product; see the module docs for the algorithm.
///
/// Deterministic (independent of the order of `regions`) and total: any input gives a valid
/// plan — grants sum to at most `pool`, only alive regions appear, releases stay within
/// `available − pending_release`.
pub fn plan(
    kind: PolicyKind,
    params: &PolicyParams,
    pool: i64,
    regions: &[RegionState],
) -> Vec<Move> {
    let pool = pool.max(0);
    let mut alive: Vec<&RegionState> = regions.iter().filter(|r| r.alive).collect();
    alive.sort_by(|a, b| a.name.cmp(&b.name));
    debug_assert!(
        alive.windows(2).all(|w| w[0].name != w[1].name),
        "region names must be unique"
    );
    if alive.is_empty() {
        return Vec::new();
    }
    let n = alive.len();
    let available: Vec<i64> = alive.iter().map(|r| r.available.max(0)).collect();
    let in_flight: Vec<i64> = alive
        .iter()
        .zip(&available)
        .map(|(r, &a)| r.pending_release.max(0).min(a))
        .collect();
    let position: Vec<i64> = available
        .iter()
        .zip(&in_flight)
        .map(|(a, p)| a - p)
        .collect();
    let demand: Vec<f64> = alive.iter().map(|r| sane_demand(r.demand)).collect();
    let supply = available.iter().fold(pool, |acc, a| acc.saturating_add(*a));
    let incoming = in_flight.iter().fold(0i64, |acc, p| acc.saturating_add(*p));

    let endgame = kind != PolicyKind::Static
        && supply <= params.endgame_threshold(n)
        && demand.iter().any(|d| *d > 0.0);
    let target: Vec<i64> = if endgame {
        // First index with the highest demand; indices are in name order.
        let top = (0..n).fold(0, |best, i| if demand[i] > demand[best] { i } else { best });
        (0..n).map(|i| if i == top { supply } else { 0 }).collect()
    } else {
        match kind {
            PolicyKind::Demand => demand_targets(supply, params.floor, &demand),
            PolicyKind::Even => largest_remainder(supply, &vec![1.0; n]),
            PolicyKind::Static => alive
                .iter()
                .zip(&available)
                .zip(&position)
                .map(|((r, &a), &s)| match r.static_share {
                    Some(share) => {
                        let committed = r.holds.saturating_sub(a).max(0);
                        share.max(0).saturating_sub(committed).max(0)
                    }
                    None => s,
                })
                .collect(),
        }
    };

    // (amount, index) lists; indices are in name order, so sorting by (amount desc, index)
    // is "largest first, ties by name".
    let mut deficits = Vec::new();
    let mut soft_surplus = Vec::new();
    let mut grants = vec![0i64; n];
    let mut releases = vec![0i64; n];
    // Without any demand signal, moving units between regions cannot help anybody: the pool is
    // still spread (evenly), but no region is asked to give back what the operator put there.
    let may_release = !(kind == PolicyKind::Demand && demand.iter().all(|d| *d <= 0.0));
    for i in 0..n {
        let d = target[i].saturating_sub(position[i]);
        let out_of_band = endgame || d.abs() >= params.band(target[i]);
        if d > 0 && (out_of_band || position[i] == 0) {
            deficits.push((d, i));
        } else if d < 0 && out_of_band && may_release {
            releases[i] = -d;
        } else if d < 0 && may_release {
            soft_surplus.push((-d, i));
        }
    }
    deficits.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
    soft_surplus.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));

    let mut left = pool;
    let mut unmet = 0i64;
    for (d, i) in deficits {
        let g = d.min(left);
        grants[i] = g;
        left -= g;
        unmet = unmet.saturating_add(d - g);
    }
    let mut short = unmet
        .saturating_sub(incoming)
        .saturating_sub(releases.iter().sum());
    for (surplus, i) in soft_surplus {
        if short <= 0 {
            break;
        }
        let r = surplus.min(short);
        releases[i] = r;
        short -= r;
    }

    let grant_moves = (0..n).filter(|&i| grants[i] > 0).map(|i| Move::Grant {
        region: alive[i].name.clone(),
        units: grants[i],
    });
    let release_moves = (0..n).filter(|&i| releases[i] > 0).map(|i| Move::Release {
        region: alive[i].name.clone(),
        units: releases[i],
    });
    grant_moves.chain(release_moves).collect()
}

/// Demand as a usable weight: garbage (NaN, ∞, negative) counts as no demand.
fn sane_demand(d: f64) -> f64 {
    if d.is_finite() && d > 0.0 {
        d
    } else {
        0.0
    }
}

/// Demand targets: `supply` proportional to `demand`, each at least `floor` (lowered to
/// `supply / n` when the supply cannot give everyone the floor), summing to exactly `supply`.
fn demand_targets(supply: i64, floor: i64, demand: &[f64]) -> Vec<i64> {
    let n = demand.len();
    if demand.iter().all(|d| *d <= 0.0) {
        return largest_remainder(supply, &vec![1.0; n]);
    }
    let floor = floor.max(0).min(supply / n as i64);
    // Pin regions whose proportional share is below the floor, re-split the rest; each round
    // pins at least one more region or stops, so this ends within n rounds.
    let mut pinned = vec![false; n];
    loop {
        let count = pinned.iter().filter(|p| **p).count() as i64;
        let rest = supply - floor * count;
        let weight: f64 = (0..n).filter(|&i| !pinned[i]).map(|i| demand[i]).sum();
        let mut changed = false;
        for i in 0..n {
            if !pinned[i] && (weight <= 0.0 || rest as f64 * demand[i] / weight < floor as f64) {
                pinned[i] = true;
                changed = true;
            }
        }
        if !changed {
            break;
        }
    }
    let count = pinned.iter().filter(|p| **p).count() as i64;
    let weights: Vec<f64> = (0..n)
        .map(|i| if pinned[i] { 0.0 } else { demand[i] })
        .collect();
    // If rounding pinned everyone, `largest_remainder` spreads the rest evenly.
    let shares = largest_remainder(supply - floor * count, &weights);
    (0..n)
        .map(|i| if pinned[i] { floor } else { shares[i] })
        .collect()
}

/// Splits `total` (≥ 0) in proportion to `weights` (≥ 0, finite) into integers summing to
/// exactly `total`: everyone gets the integer part of their quota, the leftover units go to the
/// largest fractional parts (ties → lower index). All-zero weights split evenly.
fn largest_remainder(total: i64, weights: &[f64]) -> Vec<i64> {
    let n = weights.len();
    if total <= 0 || n == 0 {
        return vec![0; n];
    }
    // Normalize by the largest weight so the sum cannot overflow to infinity.
    let max = weights.iter().copied().fold(0.0, f64::max);
    let w: Vec<f64> = if max > 0.0 {
        weights.iter().map(|x| x / max).collect()
    } else {
        vec![1.0; n]
    };
    let sum: f64 = w.iter().sum();
    let quota: Vec<f64> = w.iter().map(|x| total as f64 * x / sum).collect();
    let mut share: Vec<i64> = quota
        .iter()
        .map(|q| (q.floor() as i64).clamp(0, total))
        .collect();
    let mut order: Vec<usize> = (0..n).collect();
    let frac = |i: usize| quota[i] - share[i] as f64;
    let fracs: Vec<f64> = (0..n).map(frac).collect();
    order.sort_by(|&a, &b| fracs[b].total_cmp(&fracs[a]).then(a.cmp(&b)));
    let mut left = total - share.iter().sum::<i64>();
    // Normally 0 ≤ left < n; the loops only guard against floating-point slop.
    let mut k = 0;
    while left > 0 {
        let i = order[k % n];
        if w[i] > 0.0 {
            share[i] += 1;
            left -= 1;
        }
        k += 1;
    }
    let mut k = 0;
    while left < 0 {
        let i = order[n - 1 - k % n];
        if share[i] > 0 {
            share[i] -= 1;
            left += 1;
        }
        k += 1;
    }
    share
}

#[cfg(test)]
mod tests;
