//! `quotactl`: the operator CLI, a thin client of the coordinator's admin API.
//!
//! Where to connect comes from `--url`/`--token`, else `COORDINATOR_URL`/`ADMIN_TOKEN`, else
//! the local cluster's `target/cluster/cluster.env` (written by `deploy/local/cluster.sh up`).
//! Output is a human table, or JSON with `--json`. Exit status: 0 success, 1 the coordinator
//! refused or could not be reached, 2 bad command line.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use coordinator::client::AdminClient;
use coordinator::view::{CreateProduct, ProductView, RegionView, SetSplit};
use rust_decimal::Decimal;

#[derive(Debug, Parser)]
#[command(
    name = "quotactl",
    version,
    about = "Operate flash sales: products, quotas, regions"
)]
struct Cli {
    /// Coordinator admin API base URL.
    #[arg(long, env = "COORDINATOR_URL", global = true)]
    url: Option<String>,
    /// Admin bearer token.
    #[arg(long, env = "ADMIN_TOKEN", global = true, hide_env_values = true)]
    token: Option<String>,
    /// Env file to read COORDINATOR_URL / ADMIN_TOKEN from when not set.
    #[arg(long, global = true, default_value = "target/cluster/cluster.env")]
    cluster_env: PathBuf,
    /// Print JSON instead of tables.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Create, list and show products.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Set how many units each region holds.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Regions known to the coordinator.
    #[command(subcommand)]
    Region(RegionCmd),
}

#[derive(Debug, Subcommand)]
enum ProductCmd {
    /// Create a sale, e.g. `product create 1001 --name phone --total 1000 --price 99.00
    /// --split east=300,south=400,north=300`.
    Create {
        /// Product id (positive integer).
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Name shown to buyers.
        #[arg(long)]
        name: String,
        /// Units on sale across all regions.
        #[arg(long, value_parser = clap::value_parser!(i64).range(0..))]
        total: i64,
        /// Sale price, e.g. 99.00.
        #[arg(long)]
        price: Decimal,
        /// List price (default: the sale price).
        #[arg(long)]
        original_price: Option<Decimal>,
        /// Start, RFC 3339 (default: now).
        #[arg(long)]
        start: Option<DateTime<Utc>>,
        /// End, RFC 3339 (default: start + 1 hour).
        #[arg(long)]
        end: Option<DateTime<Utc>>,
        /// Units one user may buy (default 1).
        #[arg(long, value_parser = clap::value_parser!(i32).range(1..))]
        per_user_limit: Option<i32>,
        /// Initial units per region, e.g. east=300,south=400.
        #[arg(long, value_parser = parse_split)]
        split: Option<BTreeMap<String, i64>>,
    },
    /// List every product.
    List,
    /// Show one product's ledger.
    Show {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum QuotaCmd {
    /// Static split: `quota set 1001 east=300,south=400,north=300` (raises from the pool).
    Set {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// REGION=UNITS pairs, comma-separated.
        #[arg(value_parser = parse_split)]
        split: BTreeMap<String, i64>,
    },
}

#[derive(Debug, Subcommand)]
enum RegionCmd {
    /// Every registered region and whether its heartbeat is alive.
    List,
}

/// Parses `east=300,south=400`.
fn parse_split(s: &str) -> Result<BTreeMap<String, i64>, String> {
    let mut out = BTreeMap::new();
    for item in s.split(',').map(str::trim).filter(|i| !i.is_empty()) {
        let (r, n) = item
            .split_once('=')
            .ok_or_else(|| format!("'{item}' is not REGION=UNITS"))?;
        let n: i64 = n
            .trim()
            .parse()
            .map_err(|_| format!("'{item}': units must be an integer"))?;
        if n < 0 {
            return Err(format!("'{item}': units must not be negative"));
        }
        if out.insert(r.trim().to_string(), n).is_some() {
            return Err(format!("region '{}' named twice", r.trim()));
        }
    }
    if out.is_empty() {
        return Err("split must name at least one region".into());
    }
    Ok(out)
}

fn print_product(p: &ProductView) {
    let s = &p.spec;
    println!(
        "product {}  {:?}  price {} (list {})  limit {}/user",
        s.product_id, s.name, s.price, s.original_price, s.per_user_limit
    );
    println!(
        "window  {} → {}",
        s.start_time.to_rfc3339(),
        s.end_time.to_rfc3339()
    );
    println!("total {}  pool {}", p.total, p.pool);
    if !p.regions.is_empty() {
        println!(
            "{:<12} {:>10} {:>10} {:>10}",
            "REGION", "GRANTED", "RELEASED", "HOLDS"
        );
        for (r, sh) in &p.regions {
            println!(
                "{r:<12} {:>10} {:>10} {:>10}",
                sh.granted, sh.released, sh.holds
            );
        }
    }
}

fn print_regions(rs: &[RegionView]) {
    println!("{:<12} {:<6} URL", "REGION", "ALIVE");
    for r in rs {
        println!(
            "{:<12} {:<6} {}",
            r.region,
            if r.alive { "yes" } else { "no" },
            r.url
        );
    }
}

fn emit<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce(&T)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
    } else {
        human(v);
    }
}

async fn run(cli: Cli, client: AdminClient) -> Result<(), coordinator::client::ClientError> {
    let json = cli.json;
    match cli.command {
        Cmd::Product(ProductCmd::Create {
            id,
            name,
            total,
            price,
            original_price,
            start,
            end,
            per_user_limit,
            split,
        }) => {
            let req = CreateProduct {
                product_id: id,
                name,
                total,
                price,
                original_price,
                start_time: start,
                end_time: end,
                per_user_limit,
                split,
            };
            let p = client.create_product(&req).await?;
            emit(json, &p, print_product);
        }
        Cmd::Product(ProductCmd::List) => {
            let ps = client.products().await?;
            emit(json, &ps, |ps| {
                println!(
                    "{:<10} {:<24} {:>10} {:>10} {:>8}",
                    "ID", "NAME", "TOTAL", "POOL", "REGIONS"
                );
                for p in ps {
                    println!(
                        "{:<10} {:<24} {:>10} {:>10} {:>8}",
                        p.spec.product_id,
                        p.spec.name,
                        p.total,
                        p.pool,
                        p.regions.len()
                    );
                }
            });
        }
        Cmd::Product(ProductCmd::Show { id }) => {
            let p = client.product(id).await?;
            emit(json, &p, print_product);
        }
        Cmd::Quota(QuotaCmd::Set { id, split }) => {
            let p = client.set_split(id, &SetSplit { split }).await?;
            emit(json, &p, print_product);
        }
        Cmd::Region(RegionCmd::List) => {
            let rs = client.regions().await?;
            emit(json, &rs, |rs| print_regions(rs));
        }
    }
    Ok(())
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Fill COORDINATOR_URL / ADMIN_TOKEN from the cluster env file when not given.
    let from_file = quota_shared::config::read_env_file(&cli.cluster_env).unwrap_or_default();
    let url = cli
        .url
        .clone()
        .or_else(|| from_file.get("COORDINATOR_URL").cloned());
    let token = cli
        .token
        .clone()
        .or_else(|| from_file.get("ADMIN_TOKEN").cloned());
    let (Some(url), Some(token)) = (url, token) else {
        eprintln!(
            "quotactl: no coordinator configured: pass --url and --token, set COORDINATOR_URL and \
             ADMIN_TOKEN, or start a local cluster (deploy/local/cluster.sh up) which writes {}",
            cli.cluster_env.display()
        );
        return ExitCode::from(2);
    };
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    match rt.block_on(run(cli, AdminClient::new(&url, &token))) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("quotactl: {e}");
            ExitCode::from(1)
        }
    }
}
