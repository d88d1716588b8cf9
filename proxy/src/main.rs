//! `quota-proxy`: serve the `--link`s given until SIGTERM / Ctrl-C, with an optional control API.

use std::net::SocketAddr;

use anyhow::Context;
use clap::Parser;
use quota_proxy::{control_router, Link, Proxy};

/// A TCP delay/fault proxy that models distance between regions and injects partitions.
#[derive(Debug, Parser)]
#[command(version, about)]
struct Cli {
    /// One link: `id=NAME,listen=ADDR,upstream=ADDR[,latency_ms=N][,jitter_ms=N]
    /// [,mode=pass|blackhole|reset]`. Repeat for more (in the env var, separate with `;`).
    #[arg(
        long = "link",
        env = "QUOTA_PROXY_LINKS",
        value_delimiter = ';',
        required = true
    )]
    links: Vec<Link>,
    /// Where the control HTTP API listens (`GET /links`, `PUT /links/{id}`); off when absent.
    #[arg(long, env = "QUOTA_PROXY_CONTROL")]
    control: Option<SocketAddr>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::parse();
    quota_shared::telemetry::init("info");
    let shutdown = quota_shared::shutdown::on_signal();
    let proxy = Proxy::bind(cli.links).await?;
    let control = match cli.control {
        Some(addr) => {
            let listener = tokio::net::TcpListener::bind(addr)
                .await
                .with_context(|| format!("control API: listening on {addr}"))?;
            tracing::info!(control = %addr, "control API serving");
            let app = control_router(proxy.controls());
            let stop = shutdown.clone().cancelled_owned();
            Some(tokio::spawn(async move {
                axum::serve(listener, app)
                    .with_graceful_shutdown(stop)
                    .await
            }))
        }
        None => None,
    };
    proxy.run(shutdown).await;
    if let Some(task) = control {
        task.await
            .context("control API task")?
            .context("control API")?;
    }
    Ok(())
}
