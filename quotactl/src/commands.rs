//! Runs one parsed command against the admin API and prints the answer; the exit code says
//! how it went.

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use clap::CommandFactory;
use quota_shared::wire::{
    AuditReport, CreateProduct, Drain, HomeRegions, Restock, SetPolicy, SetSplit,
};
use quotactl::{AdminClient, ClientError};

use crate::args::{Cli, Cmd, OrderCmd, ProductCmd, QuotaCmd, RegionCmd};
use crate::exit::Exit;
use crate::output::{self, emit, Format};

/// Runs `cli.command`: [`Exit::Success`], or for the audit [`Exit::AuditFailed`] and
/// [`Exit::AuditInconclusive`]; a refused or failed request is the error.
pub(crate) async fn run(cli: Cli, client: AdminClient) -> Result<Exit, ClientError> {
    let format = cli.format();
    match cli.command {
        // Both need no coordinator: `main` runs them before it connects.
        Cmd::Completion { shell } => completion(shell),
        Cmd::Config(_) => {}
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
            payment_window,
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
                payment_window_s: payment_window,
            };
            emit(format, &client.create_product(&req).await?, output::product);
        }
        Cmd::Product(ProductCmd::List) => emit(format, &client.products().await?, |ps, wide| {
            output::products(ps, wide)
        }),
        Cmd::Product(ProductCmd::Show { id }) => {
            emit(format, &client.product(id).await?, output::product);
        }
        Cmd::Product(ProductCmd::Restock { id, units }) => emit(
            format,
            &client.restock(id, &Restock { units }).await?,
            output::product,
        ),
        Cmd::Product(ProductCmd::End { id }) => {
            emit(format, &client.end(id).await?, output::product);
        }
        Cmd::Quota(QuotaCmd::Set { id, split }) => emit(
            format,
            &client.set_split(id, &SetSplit { split }).await?,
            output::round,
        ),
        Cmd::Quota(QuotaCmd::Policy { id, policy }) => emit(
            format,
            &client.set_policy(id, &SetPolicy { policy }).await?,
            output::product,
        ),
        Cmd::Rebalance { id } => emit(format, &client.rebalance(id).await?, output::round),
        Cmd::Order(OrderCmd::Show { id }) => {
            emit(format, &client.order(id).await?, output::order);
        }
        Cmd::Order(OrderCmd::Cancel { id }) => {
            emit(format, &client.cancel_order(id).await?, output::order);
        }
        Cmd::Report { id } => {
            let r = client.sale_report(id).await?;
            emit(format, &r, output::report);
            let unread = !r.unreadable.is_empty() || !r.audit.unreadable.is_empty();
            return Ok(audit_exit_of(r.audit.ok && !unread, unread));
        }
        Cmd::Region(RegionCmd::List) => {
            emit(format, &client.regions().await?, |r, wide| {
                output::regions(r, wide)
            });
        }
        Cmd::Region(RegionCmd::Drain { region, stop }) => {
            let v = client.drain(&region, &Drain { on: !stop }).await?;
            emit(format, &v, |_, _| {
                format!(
                    "region {region}: {}\n",
                    if stop {
                        "drain stopped"
                    } else {
                        "draining (its unsold quota returns to the pool)"
                    }
                )
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
            emit(format, &homes, |h, _| {
                if h.regions.is_empty() {
                    "home regions: none (the per-user limit holds per region)\n".into()
                } else {
                    format!("home regions: {}\n", h.regions.join(", "))
                }
            });
        }
        Cmd::Status { id, watch: None } => {
            emit(format, &client.status(id).await?, output::status);
        }
        Cmd::Status {
            id,
            watch: Some(secs),
        } => return watch_status(&client, id, format, secs.map(Duration::from_secs)).await,
        Cmd::Audit { id, watch: None } => {
            let a = client.audit(id).await?;
            emit(format, &a, output::audit);
            return Ok(audit_exit(&a));
        }
        Cmd::Audit {
            id,
            watch: Some(secs),
        } => return watch_audits(&client, id, format, Duration::from_secs(secs)).await,
    }
    if client.replayed() {
        eprintln!(
            "quotactl: this change had already been applied with the same idempotency key; \
             nothing changed (shown: the state now)"
        );
    }
    Ok(Exit::Success)
}

/// Prints the completion script of `shell` for `quotactl` (a closed pipe, e.g. `| head`, just
/// ends the output).
pub(crate) fn completion(shell: clap_complete::Shell) {
    let mut script = Vec::new();
    clap_complete::generate(shell, &mut Cli::command(), "quotactl", &mut script);
    let _ = std::io::Write::write_all(&mut std::io::stdout().lock(), &script);
}

/// Success when the audit holds; inconclusive when a region could not be read (and nothing
/// else was found); failed when the books do not balance.
fn audit_exit(a: &AuditReport) -> Exit {
    audit_exit_of(a.ok, !a.unreadable.is_empty())
}

/// [`audit_exit`] from the verdict and whether a region went unread.
fn audit_exit_of(ok: bool, unreadable: bool) -> Exit {
    if ok {
        Exit::Success
    } else if unreadable {
        Exit::AuditInconclusive
    } else {
        Exit::AuditFailed
    }
}

/// `audit --watch`: audits back to back for `span`, one line each (or one JSON report per
/// line); the first failing audit is printed in full and ends the watch with its status. An
/// audit the coordinator could not complete (503: e.g. the ledger kept moving while a busy
/// sale was read) proves nothing either way: it is reported as inconclusive and the watch goes
/// on; if none completes at all the watch ends inconclusive.
async fn watch_audits(
    client: &AdminClient,
    id: Option<i64>,
    format: Format,
    span: Duration,
) -> Result<Exit, ClientError> {
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
        if format == Format::Json {
            println!("{}", serde_json::to_string(&a).expect("serialisable"));
        } else if format == Format::Yaml {
            print!("{}", output::yaml(&a));
        } else if a.ok {
            let sold: i64 = a.products.iter().map(|p| p.sold).sum();
            println!(
                "{:>7.1}s  audit {n}: ok ({} products, {sold} sold)",
                started.elapsed().as_secs_f64(),
                a.products.len()
            );
        }
        if !a.ok {
            if !format.is_document() {
                print!("{}", output::audit(&a, format == Format::Wide));
            }
            return Ok(audit_exit(&a));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    if !format.is_document() {
        println!(
            "{n} audits ok, {inconclusive} inconclusive in {:.0} s",
            span.as_secs_f64()
        );
    }
    if n == 0 {
        eprintln!("quotactl: no audit completed during the watch");
        return Ok(Exit::AuditInconclusive);
    }
    Ok(Exit::Success)
}

/// How often `status --watch` redraws.
const WATCH_EVERY: Duration = Duration::from_millis(500);

/// `status --watch`: the status every [`WATCH_EVERY`] until `span` has passed (or, without
/// it, for ever) or Ctrl-C, then exit 0. On a terminal each frame replaces the last (clear
/// screen); piped, frames follow each other, and `-o json` prints one answer per line. An
/// answer that does not come (an instance down, between leaders: the client already tried the
/// others) is shown in the frame and the watch goes on, so it outlives a failover; a refusal
/// (bad token, unknown product) ends it with the error.
async fn watch_status(
    client: &AdminClient,
    id: Option<i64>,
    format: Format,
    span: Option<Duration>,
) -> Result<Exit, ClientError> {
    let clear = !format.is_document() && std::io::stdout().is_terminal();
    let end = async {
        match span {
            Some(s) => tokio::time::sleep(s).await,
            None => std::future::pending().await,
        }
    };
    let interrupted = tokio::signal::ctrl_c();
    tokio::pin!(end, interrupted);
    let mut tick = tokio::time::interval(WATCH_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = &mut end => break,
            _ = &mut interrupted => break,
            _ = tick.tick() => {}
        }
        let answer = tokio::select! {
            () = &mut end => break,
            _ = &mut interrupted => break,
            a = client.status(id) => a,
        };
        let frame = match (&answer, format) {
            (Ok(view), Format::Json) => {
                format!("{}\n", serde_json::to_string(view).expect("serialisable"))
            }
            (Ok(view), Format::Yaml) => output::yaml(view),
            (
                Err(
                    ClientError::Forbidden { .. }
                    | ClientError::Api {
                        status: 400..=499, ..
                    },
                ),
                _,
            ) => {
                return answer.map(|_| Exit::Success);
            }
            (Ok(view), _) => output::watch_frame(Ok(view), format == Format::Wide, clear),
            (Err(e), Format::Json | Format::Yaml) => {
                eprintln!("quotactl: {e} (watching on)");
                continue;
            }
            (Err(e), _) => output::watch_frame(Err(&e.to_string()), format == Format::Wide, clear),
        };
        let mut out = std::io::stdout().lock();
        // A closed pipe (`| head`) ends the watch, as Ctrl-C does.
        if out
            .write_all(frame.as_bytes())
            .and_then(|()| out.flush())
            .is_err()
        {
            break;
        }
    }
    Ok(Exit::Success)
}
