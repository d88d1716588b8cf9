//! Faults: listed in the scenario, or drawn on a schedule from the seed (so a failing seed
//! replays exactly). The schedule is drawn from its own generator, derived from the seed, so
//! every design of one run meets the same faults at the same instants.

use serde::{Deserialize, Serialize};

use crate::engine::{us, Ctx};
use crate::event::{Event, FaultStep};
use crate::rng::Rng;

/// The faults of a scenario.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct FaultPlan {
    /// Faults at fixed instants.
    pub list: Vec<Fault>,
    /// Faults drawn from the seed.
    pub seeded: Option<SeededFaults>,
}

/// How many faults of each kind to draw, and when.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SeededFaults {
    /// Region crashes (each followed by a restart).
    pub crashes: u32,
    /// Region ↔ etcd partitions (each followed by a heal).
    pub partitions: u32,
    /// Leader failovers.
    pub failovers: u32,
    /// Delay spikes on a region ↔ etcd link.
    pub spikes: u32,
    /// Faults start between these instants, seconds.
    pub window_s: [f64; 2],
    /// A fault lasts between these many milliseconds.
    pub length_ms: [f64; 2],
    /// Extra one-way delay during a spike, ms.
    pub spike_extra_ms: f64,
}

impl Default for SeededFaults {
    fn default() -> Self {
        SeededFaults {
            crashes: 1,
            partitions: 1,
            failovers: 1,
            spikes: 1,
            window_s: [0.1, 2.0],
            length_ms: [100.0, 1_500.0],
            spike_extra_ms: 200.0,
        }
    }
}

/// One fault.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum Fault {
    /// The region's node dies at `at_s` (in-flight purchases lost, admission state gone) and
    /// restarts `for_ms` later (admission rebuilt from its Postgres, which survives).
    Crash {
        /// Region name.
        region: String,
        /// When, seconds.
        at_s: f64,
        /// Down time, ms.
        for_ms: f64,
    },
    /// The region cannot reach etcd (both ways) from `at_s` for `for_ms`; it keeps selling.
    Partition {
        /// Region name.
        region: String,
        /// When, seconds.
        at_s: f64,
        /// Length, ms.
        for_ms: f64,
    },
    /// The leader dies at `at_s`; a standby leads after the leader lease TTL.
    Failover {
        /// When, seconds.
        at_s: f64,
    },
    /// The region ↔ etcd link gets `extra_ms` slower from `at_s` for `for_ms`.
    DelaySpike {
        /// Region name.
        region: String,
        /// When, seconds.
        at_s: f64,
        /// Length, ms.
        for_ms: f64,
        /// Extra one-way delay, ms.
        extra_ms: f64,
    },
}

impl Fault {
    /// The region a fault concerns (none for a failover).
    pub fn region(&self) -> Option<&str> {
        match self {
            Fault::Crash { region, .. }
            | Fault::Partition { region, .. }
            | Fault::DelaySpike { region, .. } => Some(region),
            Fault::Failover { .. } => None,
        }
    }
}

impl FaultPlan {
    /// Every fault of the run: the listed ones and those drawn from `seed`, by start time.
    pub fn schedule(&self, seed: u64, regions: &[String]) -> Vec<Fault> {
        let mut out = self.list.clone();
        if let (Some(s), false) = (&self.seeded, regions.is_empty()) {
            let mut rng = Rng::new(seed ^ 0xfa17_5eed_0000_0001);
            let region = |rng: &mut Rng| regions[rng.below(regions.len() as u64) as usize].clone();
            let at = |rng: &mut Rng| rng.between(s.window_s[0], s.window_s[1]);
            let len = |rng: &mut Rng| rng.between(s.length_ms[0], s.length_ms[1]);
            for _ in 0..s.crashes {
                let (region, at_s, for_ms) = (region(&mut rng), at(&mut rng), len(&mut rng));
                out.push(Fault::Crash {
                    region,
                    at_s,
                    for_ms,
                });
            }
            for _ in 0..s.partitions {
                let (region, at_s, for_ms) = (region(&mut rng), at(&mut rng), len(&mut rng));
                out.push(Fault::Partition {
                    region,
                    at_s,
                    for_ms,
                });
            }
            for _ in 0..s.failovers {
                out.push(Fault::Failover { at_s: at(&mut rng) });
            }
            for _ in 0..s.spikes {
                let (region, at_s, for_ms) = (region(&mut rng), at(&mut rng), len(&mut rng));
                out.push(Fault::DelaySpike {
                    region,
                    at_s,
                    for_ms,
                    extra_ms: s.spike_extra_ms,
                });
            }
        }
        out.sort_by(|a, b| start(a).total_cmp(&start(b)));
        out
    }
}

fn start(f: &Fault) -> f64 {
    match f {
        Fault::Crash { at_s, .. }
        | Fault::Partition { at_s, .. }
        | Fault::Failover { at_s }
        | Fault::DelaySpike { at_s, .. } => *at_s,
    }
}

/// Turns the faults into timed steps.
pub(crate) fn schedule(ctx: &mut Ctx, faults: &[Fault], names: &[String]) -> Result<(), String> {
    let index = |name: &str| {
        names
            .iter()
            .position(|n| n == name)
            .map(|i| i as u16)
            .ok_or_else(|| format!("fault names unknown region {name:?}"))
    };
    let at = |s: f64| us(s * 1e3);
    for f in faults {
        let r = f.region().map(index).transpose()?;
        match (f, r) {
            (Fault::Crash { at_s, for_ms, .. }, Some(r)) => {
                ctx.at(at(*at_s), Event::Fault(FaultStep::Crash(r)));
                ctx.at(at(*at_s) + us(*for_ms), Event::Fault(FaultStep::Restart(r)));
            }
            (Fault::Partition { at_s, for_ms, .. }, Some(r)) => {
                ctx.at(at(*at_s), Event::Fault(FaultStep::Partition(r)));
                ctx.at(at(*at_s) + us(*for_ms), Event::Fault(FaultStep::Heal(r)));
            }
            (
                Fault::DelaySpike {
                    at_s,
                    for_ms,
                    extra_ms,
                    ..
                },
                Some(r),
            ) => {
                let extra = us(*extra_ms);
                ctx.at(at(*at_s), Event::Fault(FaultStep::SpikeOn(r, extra)));
                ctx.at(
                    at(*at_s) + us(*for_ms),
                    Event::Fault(FaultStep::SpikeOff(r, extra)),
                );
            }
            (Fault::Failover { at_s }, _) => ctx.at(at(*at_s), Event::Fault(FaultStep::Failover)),
            _ => {}
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_draws_the_same_faults() {
        let plan = FaultPlan {
            list: Vec::new(),
            seeded: Some(SeededFaults::default()),
        };
        let names = vec!["a".to_string(), "b".to_string()];
        assert_eq!(plan.schedule(7, &names), plan.schedule(7, &names));
        assert_eq!(plan.schedule(7, &names).len(), 4);
        assert_ne!(plan.schedule(7, &names), plan.schedule(8, &names));
    }
}
