//! `quotactl`: the operator CLI, a thin client of the coordinator's admin API.
//!
//! Where to connect comes from `--url`/`--token`, else `COORDINATOR_URL`/`ADMIN_TOKEN`, else
//! the local cluster's `target/cluster/cluster.env` (written by `deploy/local/cluster.sh up`).
//! Any coordinator instance answers; writes reach the leader. Output is a human table, or JSON
//! with `--json`. Exit status: 0 success; 1 the coordinator refused, could not be reached, or
//! (audit) the books do not balance; 2 bad command line or (audit) a region could not be read.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;

use chrono::{DateTime, Utc};
use clap::{Parser, Subcommand};
use coordinator::client::{AdminClient, ClientError};
use coordinator::view::{
    AuditReport, CreateProduct, Drain, ProductView, RegionView, Restock, RoundView, SetPolicy,
    SetSplit, StatusView,
};
use quota_shared::policy::PolicyKind;
use rust_decimal::Decimal;

#[derive(Debug, Parser)]
#[command(
    name = "quotactl",
    version,
    allow_negative_numbers = true,
    about = "Operate flash sales: products, quotas, regions, audits"
)]
struct Cli {
    /// Coordinator admin API base URL (any instance).
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
    /// Create, list, show, restock and end products.
    #[command(subcommand)]
    Product(ProductCmd),
    /// Static splits and rebalance policies.
    #[command(subcommand)]
    Quota(QuotaCmd),
    /// Run one rebalance round now and show the moves.
    Rebalance {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Regions: list, drain.
    #[command(subcommand)]
    Region(RegionCmd),
    /// Leader, and per product and region: granted, applied, released, sold, available,
    /// in transit, demand, alive; pool and total.
    Status {
        /// Only this product.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: Option<i64>,
    },
    /// Conservation audit: total = pool + Σ(sold + available + in transit), every term ≥ 0,
    /// sold = order units, no user over the limit across regions, Redis drift. Exit 0 when it
    /// holds, 1 when it does not, 2 when a region could not be read.
    Audit {
        /// Only this product.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: Option<i64>,
    },
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
        #[arg(long, allow_negative_numbers = true)]
        price: Decimal,
        /// List price (default: the sale price).
        #[arg(long, allow_negative_numbers = true)]
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
        /// Initial units per region, e.g. east=300,south=400 (the rest stays in the pool).
        #[arg(long, value_parser = parse_split)]
        split: Option<BTreeMap<String, i64>>,
        /// Rebalance policy: demand (default), static or even.
        #[arg(long)]
        policy: Option<PolicyKind>,
    },
    /// List every product.
    List,
    /// Show one product's ledger.
    Show {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
    /// Add units to the pool (the total grows; it can never shrink below what is allocated).
    Restock {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// Units to add.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        units: i64,
    },
    /// End the sale now.
    End {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
    },
}

#[derive(Debug, Subcommand)]
enum QuotaCmd {
    /// Static split: `quota set 1001 east=300,south=400,north=300` (switches to the static
    /// policy; regions above their share release the difference).
    Set {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// REGION=UNITS pairs, comma-separated.
        #[arg(value_parser = parse_split)]
        split: BTreeMap<String, i64>,
    },
    /// Set the rebalance policy: demand | static | even.
    Policy {
        /// Product id.
        #[arg(value_parser = clap::value_parser!(i64).range(1..))]
        id: i64,
        /// demand, static or even.
        policy: PolicyKind,
    },
}

#[derive(Debug, Subcommand)]
enum RegionCmd {
    /// Every registered region, its liveness and the age of its last report.
    List,
    /// Move all of a region's unsold quota back to the pool (e.g. before maintenance);
    /// `--stop` ends the drain.
    Drain {
        /// Region name.
        region: String,
        /// Stop draining instead.
        #[arg(long)]
        stop: bool,
    },
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
        "product {}  {:?}  price {} (list {})  limit {}/user  policy {}",
        s.product_id, s.name, s.price, s.original_price, s.per_user_limit, p.policy
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

fn print_round(r: &RoundView) {
    if r.moves.is_empty() {
        println!("no moves");
    }
    for m in &r.moves {
        match m {
            quota_shared::policy::Move::Grant { region, units } => {
                println!("grant   {units:>8} → {region}")
            }
            quota_shared::policy::Move::Release { region, units } => {
                println!("release {units:>8} ← {region}")
            }
        }
    }
    print_product(&r.product);
}

fn print_regions(rs: &[RegionView]) {
    println!("{:<12} {:<6} {:>12}  URL", "REGION", "ALIVE", "REPORT AGE");
    for r in rs {
        let age = r
            .last_report_ms
            .map(|a| format!("{a} ms"))
            .unwrap_or_else(|| "-".into());
        println!(
            "{:<12} {:<6} {:>12}  {}",
            r.region,
            if r.alive { "yes" } else { "no" },
            age,
            r.url
        );
    }
}

fn opt(v: Option<i64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

fn print_status(s: &StatusView) {
    println!(
        "leader: {}",
        s.leader.as_deref().unwrap_or("(none elected)")
    );
    for p in &s.products {
        println!(
            "\nproduct {} {:?}  total {}  pool {}  policy {}  {}",
            p.product_id,
            p.name,
            p.total,
            p.pool,
            p.policy,
            if p.active { "on sale" } else { "not on sale" }
        );
        println!(
            "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9} {:>6}",
            "REGION",
            "GRANTED",
            "APPLIED",
            "RELEASED",
            "SOLD",
            "AVAILABLE",
            "IN TRANSIT",
            "DEMAND/s",
            "ALIVE"
        );
        for (r, x) in &p.regions {
            println!(
                "{:<10} {:>8} {:>8} {:>8} {:>8} {:>9} {:>10} {:>9.1} {:>6}",
                r,
                x.granted,
                opt(x.applied),
                x.released,
                opt(x.sold),
                opt(x.available),
                opt(x.in_transit),
                x.demand,
                if x.draining {
                    "drain"
                } else if x.alive {
                    "yes"
                } else {
                    "no"
                }
            );
        }
    }
}

fn print_audit(a: &AuditReport) {
    for p in &a.products {
        println!(
            "product {}: total {} = pool {} + Σ(sold + available + in transit)  [sold {}]  {}",
            p.product_id,
            p.total,
            p.pool,
            p.sold,
            if p.ok { "OK" } else { "FAILED" }
        );
        println!(
            "  {:<10} {:>6} {:>9} {:>9} {:>10} {:>6} {:>6} {:>7} {:>6}",
            "REGION", "SOLD", "AVAILABLE", "G-g", "rel-R", "ORDERS", "UNITS", "REDIS", "DRIFT"
        );
        for (r, x) in &p.regions {
            println!(
                "  {:<10} {:>6} {:>9} {:>9} {:>10} {:>6} {:>6} {:>7} {:>6}",
                r,
                x.sold,
                x.available,
                x.grant_in_transit,
                x.release_in_transit,
                x.order_count,
                x.order_units,
                opt(x.redis_stock),
                opt(x.redis_drift)
            );
        }
        for v in &p.violations {
            println!("  VIOLATION: {v}");
        }
        for u in &p.unreadable {
            println!("  UNREADABLE: {u}");
        }
    }
    println!(
        "audit: {}",
        if a.ok {
            "ok"
        } else if !a.unreadable.is_empty() {
            "incomplete (a region could not be read)"
        } else {
            "FAILED"
        }
    );
}

fn emit<T: serde::Serialize>(json: bool, v: &T, human: impl FnOnce(&T)) {
    if json {
        println!("{}", serde_json::to_string_pretty(v).expect("serialisable"));
    } else {
        human(v);
    }
}

async fn run(cli: Cli, client: AdminClient) -> Result<ExitCode, ClientError> {
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
            policy,
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
                policy,
            };
            emit(json, &client.create_product(&req).await?, print_product);
        }
        Cmd::Product(ProductCmd::List) => {
            let ps = client.products().await?;
            emit(json, &ps, |ps| {
                println!(
                    "{:<10} {:<24} {:>10} {:>10} {:>8}",
                    "ID", "NAME", "TOTAL", "POOL", "POLICY"
                );
                for p in ps {
                    println!(
                        "{:<10} {:<24} {:>10} {:>10} {:>8}",
                        p.spec.product_id,
                        p.spec.name,
                        p.total,
                        p.pool,
                        p.policy.to_string()
                    );
                }
            });
        }
        Cmd::Product(ProductCmd::Show { id }) => {
            emit(json, &client.product(id).await?, print_product)
        }
        Cmd::Product(ProductCmd::Restock { id, units }) => emit(
            json,
            &client.restock(id, &Restock { units }).await?,
            print_product,
        ),
        Cmd::Product(ProductCmd::End { id }) => emit(json, &client.end(id).await?, print_product),
        Cmd::Quota(QuotaCmd::Set { id, split }) => emit(
            json,
            &client.set_split(id, &SetSplit { split }).await?,
            print_round,
        ),
        Cmd::Quota(QuotaCmd::Policy { id, policy }) => emit(
            json,
            &client.set_policy(id, &SetPolicy { policy }).await?,
            print_product,
        ),
        Cmd::Rebalance { id } => emit(json, &client.rebalance(id).await?, print_round),
        Cmd::Region(RegionCmd::List) => emit(json, &client.regions().await?, |r| print_regions(r)),
        Cmd::Region(RegionCmd::Drain { region, stop }) => {
            let v = client.drain(&region, &Drain { on: !stop }).await?;
            emit(json, &v, |_| {
                println!(
                    "region {region}: {}",
                    if stop {
                        "drain stopped"
                    } else {
                        "draining (its unsold quota returns to the pool)"
                    }
                )
            });
        }
        Cmd::Status { id } => emit(json, &client.status(id).await?, print_status),
        Cmd::Audit { id } => {
            let a = client.audit(id).await?;
            emit(json, &a, print_audit);
            return Ok(if a.ok {
                ExitCode::SUCCESS
            } else if !a.unreadable.is_empty() {
                ExitCode::from(2)
            } else {
                ExitCode::from(1)
            });
        }
    }
    Ok(ExitCode::SUCCESS)
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
        Ok(code) => code,
        Err(e) => {
            eprintln!("quotactl: {e}");
            ExitCode::from(1)
        }
    }
}
