//! quota-loadgen: plays a flash sale against real region nodes and reports how it went.
//!
//! Many simulated buyers arrive open-loop (at scheduled times, never waiting on answers) at a
//! target rate with an opening spike, spread over regions by demand weights that can shift
//! mid-sale; each buyer retries a bounded number of times. The run records every answer's
//! latency (HDR histograms, measured from the *intended* send time), samples the
//! coordinator, then verifies the books: acknowledged orders present in Postgres, nothing
//! oversold, the coordinator's audit. See [`run`], [`Config`] and [`Report`].
//!
//! Pure logic — `schedule`, `retry`, `analysis`, `report`, `table`, `svg` — is
//! separate from I/O — `client`, `coordinator`, `sampler`, `verify`, `runner`.

mod analysis;
mod client;
mod config;
mod coordinator;
mod error;
mod progress;
mod recorder;
mod report;
mod retry;
mod runner;
mod sampler;
mod schedule;
mod series;
mod svg;
mod table;
mod verify;

pub use config::{
    parse_pair, parse_weights, Config, CoordinatorTarget, RegionTarget, WeightShift, Weights,
};
pub use error::Error;
pub use report::Report;
pub use runner::run;
pub use svg::render as render_svg;
pub use table::render as render_table;
