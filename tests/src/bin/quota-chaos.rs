//! `quota-chaos`: seeded nemesis runs against fresh local clusters (see
//! `quota_tests::run_nemesis`). Prints each run's faults and verdict, then one table line per
//! run; exits 1 if any run found an anomaly. A failing seed reruns the same faults:
//! `quota-chaos --seed N`.
//!
//! Usage: `quota-chaos [--seed N] [--runs N] [--secs S] [--rate R] [--etcd-members M]` — runs
//! seeds N, N+1, … (default seed 1, 1 run, 30 s of load, 40 buyers/s per region, 3 etcd
//! members).

use std::process::ExitCode;
use std::time::Duration;

use quota_tests::{run_nemesis, NemesisConfig};

fn main() -> ExitCode {
    let mut seed = 1u64;
    let mut runs = 1u64;
    let mut secs = 30u64;
    let mut rate = 40u32;
    let mut etcd_members = 3usize;
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mut it = args.iter();
    while let Some(flag) = it.next() {
        let value = it.next().and_then(|v| v.parse::<u64>().ok());
        match (flag.as_str(), value) {
            ("--seed", Some(v)) => seed = v,
            ("--runs", Some(v)) if v > 0 => runs = v,
            ("--secs", Some(v)) if v >= 10 => secs = v,
            ("--rate", Some(v)) if v > 0 => rate = u32::try_from(v).unwrap_or(40),
            ("--etcd-members", Some(v)) if v == 1 || v == 3 || v == 5 => {
                etcd_members = usize::try_from(v).unwrap_or(3);
            }
            _ => {
                eprintln!(
                    "usage: quota-chaos [--seed N] [--runs N>0] [--secs S>=10] [--rate R>0] \
                     [--etcd-members 1|3|5] (bad or missing value for {flag})"
                );
                return ExitCode::from(2);
            }
        }
    }
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(4)
        .enable_all()
        .build()
        .expect("runtime");
    let mut rows = Vec::new();
    let mut clean = true;
    for s in seed..seed + runs {
        let report = rt.block_on(run_nemesis(NemesisConfig {
            seed: s,
            load: Duration::from_secs(secs),
            rate,
            etcd_members,
        }));
        println!("{report}");
        clean &= report.clean();
        rows.push(format!(
            "| {} | {} | {} | {} | {}/{} | {} |",
            report.seed,
            report.faults.len(),
            report.requests,
            report.statuses.get(&201).copied().unwrap_or(0),
            report.sold,
            report.total,
            if report.clean() {
                "0".to_string()
            } else {
                report.anomalies.len().to_string()
            }
        ));
    }
    println!("| seed | faults | requests | acknowledged | sold/total | anomalies |");
    println!("|---|---|---|---|---|---|");
    for r in rows {
        println!("{r}");
    }
    if clean {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}
