//! `quota-sim`: run a scenario's designs side by side and print the table.
//!
//! ```text
//! quota-sim run --scenario skew --seed 1 [--design escrow,oracle] [--json out.json] [--chart out.svg]
//! quota-sim list
//! ```
//!
//! Exit 1 when an invariant breaks (the seed and the last events are printed).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use quota_sim::{chart, compare, Design, Scenario, SimError};

#[derive(Parser)]
#[command(
    name = "quota-sim",
    about = "Deterministic simulation of a multi-region flash sale"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every design of a scenario with one seed.
    Run {
        /// A built-in scenario name or a path to a scenario JSON file.
        #[arg(long)]
        scenario: String,
        /// The seed (the same seed replays the same run).
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Designs to run, comma-separated (default: all).
        #[arg(long, value_delimiter = ',')]
        design: Vec<Design>,
        /// Write the comparison as JSON to this file.
        #[arg(long)]
        json: Option<String>,
        /// Write the stock chart (SVG) to this file.
        #[arg(long)]
        chart: Option<String>,
    },
    /// List the built-in scenarios.
    List,
}

fn main() -> ExitCode {
    match real_main() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quota-sim: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn real_main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Command::List => {
            for name in Scenario::builtin_names() {
                let s = Scenario::load(name)?;
                println!("{name:<20} {}", s.about);
            }
            Ok(())
        }
        Command::Run {
            scenario,
            seed,
            design,
            json,
            chart: chart_path,
        } => {
            let s = Scenario::load(&scenario)?;
            let designs = if design.is_empty() {
                Design::ALL.to_vec()
            } else {
                design
            };
            let started = Instant::now();
            let c = match compare(&s, seed, &designs) {
                Ok(c) => c,
                Err(e @ SimError::Violation { .. }) => anyhow::bail!("{e}"),
                Err(e) => return Err(e.into()),
            };
            let wall = started.elapsed().as_secs_f64();
            print!("{}", c.table());
            println!(
                "{} events in {:.3} s wall: {:.0} events/s",
                c.events(),
                wall,
                c.events() as f64 / wall.max(1e-9)
            );
            if let Some(path) = json {
                let text = serde_json::to_string_pretty(&c)?;
                std::fs::write(&path, text).with_context(|| format!("writing {path}"))?;
            }
            if let Some(path) = chart_path {
                std::fs::write(&path, chart(&c)).with_context(|| format!("writing {path}"))?;
            }
            Ok(())
        }
    }
}
