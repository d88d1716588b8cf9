//! Every design of one scenario and seed, side by side: one table of the sale-quality measures
//! (relative to the oracle, the limit), one of buyer-perceived latency per region, and the
//! same as JSON.

use std::fmt::Write as _;

use serde::Serialize;

use crate::designs::Design;
use crate::scenario::Scenario;
use crate::world::{run, DesignRun, SimError};

/// Regions shown one by one in the latency table; more are summarised.
const LATENCY_COLUMNS: usize = 10;

/// The runs of one scenario and seed.
#[derive(Debug, Clone, Serialize)]
pub struct Comparison {
    /// Scenario name.
    pub scenario: String,
    /// The seed.
    pub seed: u64,
    /// Region names.
    pub regions: Vec<String>,
    /// One run per design.
    pub runs: Vec<DesignRun>,
}

/// Runs every design in `designs` on `scenario` with `seed`.
pub fn compare(scenario: &Scenario, seed: u64, designs: &[Design]) -> Result<Comparison, SimError> {
    let runs = designs
        .iter()
        .map(|d| run(scenario, *d, seed))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(Comparison {
        scenario: scenario.name.clone(),
        seed,
        regions: scenario.places().into_iter().map(|p| p.name).collect(),
        runs,
    })
}

fn opt(v: Option<f64>, digits: usize) -> String {
    v.map_or_else(|| "-".to_string(), |v| format!("{v:.digits$}"))
}

impl Comparison {
    /// The run of `design`, if it was run.
    pub fn get(&self, design: Design) -> Option<&DesignRun> {
        self.runs.iter().find(|r| r.design == design)
    }

    /// Events processed by every run together.
    pub fn events(&self) -> u64 {
        self.runs.iter().map(|r| r.events).sum()
    }

    /// The side-by-side tables.
    pub fn table(&self) -> String {
        let mut out = String::new();
        let oracle = self.get(Design::Oracle).and_then(|r| r.quality.sellout_s);
        let _ = writeln!(
            out,
            "scenario {} · seed {} · {} regions",
            self.scenario,
            self.seed,
            self.regions.len()
        );
        let _ = writeln!(
            out,
            "{:<8} {:>13} {:>9} {:>8} {:>7} {:>8} {:>9} {:>9} {:>8} {:>8} {:>9}",
            "design",
            "sold",
            "sellout s",
            "×oracle",
            "FCFS %",
            "stranded",
            "false 410",
            "503/order",
            "moved",
            "writes/s",
            "events"
        );
        for r in &self.runs {
            let q = &r.quality;
            let ratio = match (q.sellout_s, oracle) {
                (Some(s), Some(o)) if o > 0.0 => Some(s / o),
                _ => None,
            };
            let _ = writeln!(
                out,
                "{:<8} {:>13} {:>9} {:>8} {:>7.2} {:>8} {:>9} {:>9.2} {:>8} {:>8.1} {:>9}",
                r.design.as_str(),
                format!("{}/{}", r.sold, r.total),
                opt(q.sellout_s, 3),
                opt(ratio, 2),
                q.fcfs_inversion_pct,
                q.stranded,
                q.false_sold_outs,
                q.awaiting_per_order,
                q.units_moved,
                q.ledger_writes_per_s,
                r.events
            );
        }
        out.push_str(&self.latency_table());
        out
    }

    /// Buyer-perceived p50/p99 (arrival → final answer) per region, ms.
    fn latency_table(&self) -> String {
        let mut out = String::from("buyer-perceived latency p50/p99 ms");
        let shown = self.regions.len().min(LATENCY_COLUMNS);
        if shown < self.regions.len() {
            let _ = write!(out, " (first {shown} regions; then min/max p99 of all)");
        }
        let _ = write!(out, "\n{:<8}", "design");
        for name in &self.regions[..shown] {
            let _ = write!(out, " {name:>13}");
        }
        if shown < self.regions.len() {
            let _ = write!(out, " {:>15}", "p99 min/max");
        }
        out.push('\n');
        for r in &self.runs {
            let _ = write!(out, "{:<8}", r.design.as_str());
            for q in &r.quality.regions[..shown] {
                let _ = write!(out, " {:>13}", format!("{:.0}/{:.0}", q.p50_ms, q.p99_ms));
            }
            if shown < self.regions.len() {
                let p99 = r
                    .quality
                    .regions
                    .iter()
                    .filter(|q| q.buyers > 0)
                    .map(|q| q.p99_ms);
                let min = p99.clone().fold(f64::INFINITY, f64::min);
                let max = p99.fold(0.0, f64::max);
                let _ = write!(out, " {:>15}", format!("{min:.0}/{max:.0}"));
            }
            out.push('\n');
        }
        out
    }
}
