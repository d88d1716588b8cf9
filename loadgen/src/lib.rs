//! quota-loadgen: plays a flash sale against real region nodes and reports how it went.
//!
//! Many simulated buyers arrive open-loop (at scheduled times, never waiting on answers) at a
//! target rate with an opening spike, spread over regions by demand weights that can shift
//! mid-sale; each buyer retries a bounded number of times. The run records every answer's
//! latency (HDR histograms, measured from the *intended* send time), samples the
//! coordinator, then verifies the books: acknowledged orders present in Postgres, nothing
//! oversold, the coordinator's audit. See [`run`], [`Config`] and [`Report`].
//!
//! The sale-quality measures (sell-out time, FCFS inversions, stranded units, false sold-outs,
//! awaiting-stock answers, buyer-perceived latency, units moved) are the project's one
//! definition in `quota_shared::quality`, fed from a record per buyer and per answer.
//!
//! Pure logic — the buyer model (`quota_shared::buyers`), `retry`, `quality`, `report`,
//! `table`, `svg` — is separate from I/O — `client`, `coordinator`, `sampler`, `verify`,
//! `runner`.

mod client;
mod config;
mod coordinator;
mod error;
mod progress;
mod quality;
mod recorder;
mod report;
mod retry;
mod runner;
mod sampler;
mod series;
mod svg;
mod table;
mod verify;

pub use config::{
    parse_pair, parse_weights, Config, CoordinatorTarget, PgAuth, RegionTarget, WeightShift,
    Weights,
};
pub use error::Error;
pub use quality::{NotMeasured, Quality};
pub use report::Report;
pub use runner::run;
pub use svg::render as render_svg;
pub use table::render as render_table;
