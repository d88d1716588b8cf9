//! `quota-sim`: run a scenario's designs side by side and print the table.
//!
//! ```text
//! quota-sim run --scenario skew --seed 1 [--design escrow,oracle] [--json out.json] [--chart out.svg]
//! quota-sim list
//! quota-sim check [--large] [--total 2] [--split 1,1] [--homes 001] [--writes 2] [--crashes 1] [--forge] [--flaw release-twice]
//! ```
//!
//! Exit 1 when an invariant breaks (the seed and the last events are printed).

use std::process::ExitCode;
use std::time::Instant;

use anyhow::Context;
use clap::{Parser, Subcommand};
use quota_sim::check::{explore, Bound, Flaw};
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
    /// Model-check the protocol: every interleaving of a small instance (see ARCHITECTURE.md,
    /// "Model check"). Exit 1 on a violation, with its trace.
    Check {
        /// Start from the larger built-in bound instead of the unit test's.
        #[arg(long)]
        large: bool,
        /// Units on sale.
        #[arg(long)]
        total: Option<i64>,
        /// The initial split, east,north.
        #[arg(long, value_delimiter = ',', num_args = 2)]
        split: Option<Vec<i8>>,
        /// Each buyer's home, one digit per buyer (0 east, 1 north), e.g. 001.
        #[arg(long)]
        homes: Option<String>,
        /// Ledger writes the leader may make.
        #[arg(long)]
        writes: Option<u8>,
        /// Crashes (node processes and the leader) that may happen.
        #[arg(long)]
        crashes: Option<u8>,
        /// North is compromised and may forge its published R once.
        #[arg(long)]
        forge: bool,
        /// A deliberately broken step: release-twice, release-ignores-tokens, grant-adds,
        /// uncapped-credit.
        #[arg(long)]
        flaw: Option<String>,
    },
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
        Command::Check {
            large,
            total,
            split,
            homes,
            writes,
            crashes,
            forge,
            flaw,
        } => {
            let mut b = if large {
                Bound::large()
            } else {
                Bound::small()
            };
            b.total = total.unwrap_or(b.total);
            if let Some(s) = split {
                b.split = [s[0], s[1]];
            }
            if let Some(h) = homes {
                b.homes = h
                    .bytes()
                    .map(|c| match c {
                        b'0' | b'1' => Ok(c - b'0'),
                        _ => Err(anyhow::anyhow!("--homes: digits 0 (east) and 1 (north)")),
                    })
                    .collect::<anyhow::Result<_>>()?;
            }
            b.writes = writes.unwrap_or(b.writes);
            b.crashes = crashes.unwrap_or(b.crashes);
            b.forge = forge;
            b.flaw = match flaw.as_deref() {
                None => None,
                Some("release-twice") => Some(Flaw::ReleaseTwice),
                Some("release-ignores-tokens") => Some(Flaw::ReleaseIgnoresTokens),
                Some("grant-adds") => Some(Flaw::GrantAdds),
                Some("uncapped-credit") => Some(Flaw::UncappedCredit),
                Some(other) => anyhow::bail!("unknown --flaw {other:?}"),
            };
            println!("{b:?}");
            let e = explore(&b);
            println!(
                "{} states, {} transitions, depth {}, {} settled states, {} with a release in transit, {:.1} s",
                e.states,
                e.transitions,
                e.depth,
                e.settled,
                e.in_transit,
                e.elapsed.as_secs_f64()
            );
            if let Some(v) = e.violation {
                for (i, a) in v.trace.iter().enumerate() {
                    println!("{:>3}. {a}", i + 1);
                }
                anyhow::bail!("violation: {}", v.invariant);
            }
            println!("every invariant holds in every reachable state");
            Ok(())
        }
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
