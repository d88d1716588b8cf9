//! Runs one parsed command against the admin API and prints the answer; the exit code says
//! how it went.

use std::process::ExitCode;
use std::time::{Duration, Instant};

use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, HomeRegions, Restock, SetPolicy, SetSplit,
};
use quotactl::{AdminClient, ClientError};

use crate::args::{Cli, Cmd, ProductCmd, QuotaCmd, RegionCmd};
use crate::output::{emit, print_audit, print_product, print_regions, print_round, print_status};

/// Runs `cli.command`: success, 1 when the audit fails, 2 when the audit could not read a
/// region; a refused or failed request is the error.
pub(crate) async fn run(cli: Cli, client: AdminClient) -> Result<ExitCode, ClientError> {
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
            home_regions,
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
                home_regions: home_regions.map(|l| l.0),
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
            emit(json, &client.product(id).await?, print_product);
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
                );
            });
        }
        Cmd::Region(RegionCmd::Homes { set }) => {
            let homes = match set {
                Some(list) => {
                    let req = HomeRegions { regions: list.0 };
                    client.set_home_regions(&req).await?
                }
                None => client.home_regions().await?,
            };
            emit(json, &homes, |h| {
                if h.regions.is_empty() {
                    println!("home regions: none (the per-user limit holds per region)");
                } else {
                    println!("home regions: {}", h.regions.join(", "));
                }
            });
        }
        Cmd::Status { id } => emit(json, &client.status(id).await?, print_status),
        Cmd::Audit { id, watch: None } => {
            let a = client.audit(id).await?;
            emit(json, &a, print_audit);
            return Ok(audit_exit(&a));
        }
        Cmd::Audit {
            id,
            watch: Some(secs),
        } => return watch_audits(&client, id, json, Duration::from_secs(secs)).await,
    }
    if client.replayed() {
        eprintln!(
            "quotactl: this change had already been applied with the same idempotency key; \
             nothing changed (shown: the state now)"
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// 0 when the audit holds, 2 when a region could not be read, 1 when the books do not balance.
fn audit_exit(a: &AuditReport) -> ExitCode {
    if a.ok {
        ExitCode::SUCCESS
    } else if !a.unreadable.is_empty() {
        ExitCode::from(2)
    } else {
        ExitCode::from(1)
    }
}

/// `audit --watch`: audits back to back for `span`, one line each (or one JSON report per
/// line); the first failing audit is printed in full and ends the watch with its status. An
/// audit the coordinator could not complete (503: e.g. the ledger kept moving while a busy
/// sale was read) proves nothing either way: it is reported as inconclusive and the watch goes
/// on; if none completes at all the watch ends with 2.
async fn watch_audits(
    client: &AdminClient,
    id: Option<i64>,
    json: bool,
    span: Duration,
) -> Result<ExitCode, ClientError> {
    let started = Instant::now();
    let (mut n, mut inconclusive) = (0u64, 0u64);
    while started.elapsed() < span {
        let a = match client.audit(id).await {
            Ok(a) => a,
            Err(ClientError::Api {
                status: 503,
                message,
                ..
            }) => {
                inconclusive += 1;
                eprintln!(
                    "{:>7.1}s  audit inconclusive ({message}); again",
                    started.elapsed().as_secs_f64()
                );
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            }
            Err(e) => return Err(e),
        };
        n += 1;
        if json {
            println!("{}", serde_json::to_string(&a).expect("serialisable"));
        } else if a.ok {
            let sold: i64 = a.products.iter().map(|p| p.sold).sum();
            println!(
                "{:>7.1}s  audit {n}: ok ({} products, {sold} sold)",
                started.elapsed().as_secs_f64(),
                a.products.len()
            );
        }
        if !a.ok {
            if !json {
                print_audit(&a);
            }
            return Ok(audit_exit(&a));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !json {
        println!(
            "{n} audits ok, {inconclusive} inconclusive in {:.0} s",
            span.as_secs_f64()
        );
    }
    if n == 0 {
        eprintln!("quotactl: no audit completed during the watch");
        return Ok(ExitCode::from(2));
    }
    Ok(ExitCode::SUCCESS)
}
