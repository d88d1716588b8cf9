//! `quota-bench`: side-by-side benchmarks, every variant in one run on one machine, so the
//! numbers compare as ratios (this machine is shared and noisy; absolute times are not the
//! point). Run through `deploy/local/bench.sh <scenario> [--json FILE]`, which builds release
//! binaries first.
//!
//! * `strategies` — one region, a flash sale (far more buyers than units), the purchase
//!   strategies v1–v4 and isolation levels; plus the rejection path against a bare axum
//!   endpoint measured by the same generator.
//! * `regions` — three regions at 5/40/80 ms from etcd, skewed demand that shifts mid-sale:
//!   this project (escrow + demand rebalancing) vs a static split vs one central counter that
//!   every region calls across its distance.
//! * `scale` — attempts/s and latency as the offered load grows, and which process saturates.

mod cpu;
mod sale;
mod scenarios;

use std::path::PathBuf;

use clap::{Parser, ValueEnum};

#[derive(Debug, Clone, Copy, ValueEnum)]
enum Scenario {
    Strategies,
    Regions,
    Scale,
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
}

fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let out = rt.block_on(async {
        match cli.scenario {
            Scenario::Strategies => scenarios::strategies(cli.quick).await,
            Scenario::Regions => scenarios::regions(cli.quick).await,
            Scenario::Scale => scenarios::scale(cli.quick).await,
        }
    })?;
    if let Some(path) = cli.json {
        std::fs::write(&path, serde_json::to_string_pretty(&out)? + "\n")?;
        eprintln!("wrote {}", path.display());
    }
    Ok(())
}
