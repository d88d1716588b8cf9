//! `quota-bench`: side-by-side benchmarks, every variant in one run on one machine, so the
//! numbers compare as ratios (this machine is shared and noisy; absolute times are not the
//! point). Run through `deploy/local/bench.sh <scenario> [--json FILE]`, which builds release
//! binaries first.
//!
//! * `strategies` — one region, a flash sale (far more buyers than units), the purchase
//!   strategies v1–v4 and isolation levels, each at its capacity (the offered rate is raised
//!   until attempts/s stops growing), with node CPU-seconds per 1,000 attempts next to a bare
//!   axum endpoint's and the generator's own CPU.
//! * `regions` — three regions at 5/40/80 ms from etcd, skewed demand that shifts mid-sale:
//!   this project (escrow + demand rebalancing) vs a static split vs one central counter that
//!   every region calls across its distance; each design several times on fresh clusters,
//!   median and worst of every sale-quality measure.
//! * `scale` — attempts/s and latency as the offered load grows, and which process saturates.

mod bare;
mod capacity;
mod cpu;
mod sale;
mod scenarios;
mod summary;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Strategies,
    Regions,
    Scale,
    /// Internal: the bare axum endpoint `strategies` measures, as its own process.
    #[value(hide = true)]
    ServeBare,
}

#[derive(Debug, Parser)]
#[command(
    name = "quota-bench",
    about = "Side-by-side benchmarks of quota designs"
)]
struct Cli {
    /// Which benchmark.
    #[arg(value_enum)]
    scenario: Scenario,
    /// Also write the results as JSON here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Tiny numbers and seconds-long runs (the test suite's smoke run).
    #[arg(long)]
    quick: bool,
    /// Runs per design in `regions` (default: 3, or 1 with --quick).
    #[arg(long, value_parser = clap::value_parser!(u16).range(1..))]
    runs: Option<u16>,
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    if matches!(cli.scenario, Scenario::ServeBare) {
        return bare::serve();
    }
    let runs = usize::from(cli.runs.unwrap_or(if cli.quick { 1 } else { 3 }));
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        match cli.scenario {
            Scenario::Strategies => scenarios::strategies(cli.quick).await,
            Scenario::Regions => scenarios::regions(cli.quick, runs).await,
            Scenario::Scale => scenarios::scale(cli.quick).await,
            Scenario::ServeBare => unreachable!("served above"),
        }
    })?;
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&out)? + "\n")?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
