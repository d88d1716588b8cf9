//! `quota-sim`: a deterministic discrete-event simulation of a whole multi-region flash sale.
//!
//! Why: on a small shared machine the real cluster's numbers are dominated by CPU queueing, so
//! they cannot steer the allocation policy. Here time is virtual (integer microseconds), there
//! is one seeded generator and no thread or wall clock, so a seed replays exactly — and the
//! project's *real* pure code runs inside: the policy ([`quota_shared::policy::plan`]), the
//! round ([`quota_shared::round`]), the ledger arithmetic, the availability rule, the demand
//! estimate and the region's grant/release steps ([`quota_shared::region_steps`]). Only the
//! I/O around them is modelled: each region's sell path, etcd, the links, the buyers.
//!
//! * `scenario` — the world as a data file ([`Scenario`]); built-ins in `sim/scenarios/`.
//! * `engine`, `event` — the clock, the queue, the events; `world` — one design's run.
//! * `model` — `net`, `etcd`, `coordinator`, `region`; `buyers` — the load generator's buyers.
//! * `designs` — [`Design`]: escrow, static, central, oracle, side by side.
//! * `faults` — crashes, partitions, failovers, delay spikes on a seeded schedule.
//! * `invariants` — checked after every event; the first [`Violation`] stops the run.
//! * `report`, `svg` — the side-by-side table, JSON, and the stock chart.
//! * [`check`] — not a simulation: an exhaustive model check of the protocol's steps (every
//!   interleaving of a small instance, crashes included). A public module rather than
//!   re-exports, because its `Bound`, `Flaw` and `Action` mean something only under its name.

mod buyers;
pub mod check;
mod designs;
mod engine;
mod event;
mod faults;
mod invariants;
mod model;
mod queue;
mod report;
mod rng;
mod scenario;
mod svg;
mod world;

pub use designs::Design;
pub use faults::{Fault, FaultPlan, SeededFaults};
pub use invariants::Violation;
pub use report::{compare, Comparison};
pub use scenario::{Scenario, ScenarioError};
pub use svg::chart;
pub use world::{run, DesignRun, Series, SimError};
