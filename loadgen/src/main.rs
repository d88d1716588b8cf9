//! `quota-loadgen`: the command line around [`quota_loadgen::run`].
//!
//! Parses flags into a [`Config`], runs the sale, prints the table to stdout and writes the
//! JSON report and SVG chart if asked. Exits 1 if a must-be-zero measure (oversold, lost
//! orders) is not 0 or the audit is not ok, so scripts can gate on it.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::{ArgAction, Parser};
use quota_loadgen::{
    parse_pair, parse_weights, Config, CoordinatorTarget, RegionTarget, Report, WeightShift,
};

/// Flash-sale load generator: open-loop buyers against real region nodes.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Args {
    /// Product on sale.
    #[arg(long)]
    product: i64,
    /// A region node, `name=url` (repeat for each region).
    #[arg(long = "region", required = true, value_name = "NAME=URL")]
    regions: Vec<String>,
    /// Coordinator base URL: samples its status and asks for the audit.
    #[arg(long, requires = "token")]
    coordinator: Option<String>,
    /// Coordinator admin token.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// A region's Postgres, `name=postgres://…`, to verify acknowledged orders (repeatable).
    #[arg(long = "pg", value_name = "NAME=URL")]
    pg: Vec<String>,
    /// File holding a region's Postgres password, `name=path` (repeatable).
    #[arg(long = "pg-password-file", value_name = "NAME=PATH")]
    pg_password_files: Vec<String>,
    /// CA certificate (PEM) of the Postgres servers: TLS required and verified against it.
    #[arg(long)]
    pg_ca_file: Option<PathBuf>,
    /// Steady arrival rate, buyers per second.
    #[arg(long, default_value_t = 2000.0)]
    rate: f64,
    /// Arrival rate during the opening spike.
    #[arg(long, default_value_t = 6000.0)]
    spike_rate: f64,
    /// Length of the opening spike, seconds.
    #[arg(long, default_value_t = 1.0)]
    spike_secs: f64,
    /// Longest run, seconds.
    #[arg(long, default_value_t = 30.0)]
    duration: f64,
    /// Demand weights, e.g. `east=70,south=20,north=10` (default: equal).
    #[arg(long)]
    weights: Option<String>,
    /// Seconds after the start at which `--shift-weights` apply.
    #[arg(long, requires = "shift_weights")]
    shift_at: Option<f64>,
    /// Weights from `--shift-at` on.
    #[arg(long, requires = "shift_at")]
    shift_weights: Option<String>,
    /// Extra tries per buyer after 503, 429 or 410.
    #[arg(long, default_value_t = 3)]
    retries: u32,
    /// Base pause before a retry, ms (jittered ±50 %).
    #[arg(long, default_value_t = 50)]
    retry_backoff_ms: u64,
    /// First user id (arrival i is user user_base + i).
    #[arg(long, default_value_t = 1)]
    user_base: i64,
    /// Most requests in flight; arrivals beyond are dropped and counted.
    #[arg(long, default_value_t = 4000)]
    concurrency_cap: usize,
    /// Per-request timeout, ms.
    #[arg(long, default_value_t = 10_000)]
    request_timeout_ms: u64,
    /// Write the JSON report here.
    #[arg(long)]
    json: Option<PathBuf>,
    /// Write the SVG chart here.
    #[arg(long)]
    svg: Option<PathBuf>,
    /// Stop once the coordinator reports every unit sold (`--stop-on-sellout false` to play on).
    #[arg(long, default_value_t = true, action = ArgAction::Set)]
    stop_on_sellout: bool,
    /// No progress line.
    #[arg(long)]
    quiet: bool,
}

fn config(a: &Args) -> Result<Config> {
    let regions = a
        .regions
        .iter()
        .map(|r| parse_pair(r).map(|(name, url)| RegionTarget { name, url }))
        .collect::<Result<Vec<_>, _>>()?;
    let mut c = Config::new(a.product, regions);
    c.coordinator = match (&a.coordinator, &a.token) {
        (Some(url), Some(token)) => Some(CoordinatorTarget {
            url: url.clone(),
            token: token.clone(),
        }),
        _ => None,
    };
    for p in &a.pg {
        let (name, url) = parse_pair(p)?;
        c.pg.insert(name, url);
    }
    for p in &a.pg_password_files {
        let (name, path) = parse_pair(p)?;
        c.pg_auth.password_files.insert(name, path.into());
    }
    c.pg_auth.ca_file.clone_from(&a.pg_ca_file);
    c.rate = a.rate;
    c.spike_rate = a.spike_rate;
    c.spike_secs = a.spike_secs;
    c.duration_secs = a.duration;
    if let Some(w) = &a.weights {
        c.weights = parse_weights(w)?;
    }
    if let (Some(at), Some(w)) = (a.shift_at, &a.shift_weights) {
        c.shift = Some(WeightShift {
            at_secs: at,
            weights: parse_weights(w)?,
        });
    }
    c.retries = a.retries;
    c.retry_backoff = Duration::from_millis(a.retry_backoff_ms);
    c.user_base = a.user_base;
    c.concurrency_cap = a.concurrency_cap;
    c.request_timeout = Duration::from_millis(a.request_timeout_ms);
    c.stop_on_sellout = a.stop_on_sellout;
    c.progress = !a.quiet;
    c.validate()?;
    Ok(c)
}

/// Whether the run showed a correctness failure (not a performance one).
fn failed(r: &Report) -> bool {
    r.oversold.is_some_and(|n| n != 0)
        || r.lost_orders.is_some_and(|n| n != 0)
        || (r.audit != "ok" && r.audit != "skipped")
}

#[tokio::main]
async fn main() -> Result<()> {
    let args = Args::parse();
    let cfg = config(&args)?;
    let report = quota_loadgen::run(cfg).await?;
    print!("{}", quota_loadgen::render_table(&report));
    if let Some(path) = &args.json {
        let json = serde_json::to_string_pretty(&report)?;
        std::fs::write(path, json).with_context(|| format!("writing {}", path.display()))?;
    }
    if let Some(path) = &args.svg {
        let svg = quota_loadgen::render_svg(&report);
        std::fs::write(path, svg).with_context(|| format!("writing {}", path.display()))?;
    }
    if failed(&report) {
        std::process::exit(1);
    }
    Ok(())
}
