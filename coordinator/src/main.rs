//! `coordinator`: parse config, connect to etcd, serve the admin API until SIGTERM / Ctrl-C.

use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Parser;
use coordinator::api::{router, ApiState};
use coordinator::config::{Cli, Command};
use coordinator::store::Store;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    quota_shared::config::load_config_from_args(&args)?;
    let cli = Cli::parse();
    quota_shared::telemetry::init("info");
    let Command::Serve(cfg) = cli.command;
    if cfg.admin_token.len() < 16 {
        bail!("--admin-token must be at least 16 characters");
    }
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = quota_shared::shutdown::on_signal();
        let store = Store::connect(&cfg.etcd_endpoints)
            .await
            .context("connecting to etcd")?;
        let st = Arc::new(ApiState {
            id: cfg.id.clone(),
            store,
            admin_token: cfg.admin_token.clone(),
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        tracing::info!(id = %cfg.id, listen = %cfg.listen, "coordinator serving");
        axum::serve(listener, router(st))
            .with_graceful_shutdown(shutdown.cancelled_owned())
            .await
            .context("serving")?;
        tracing::info!("coordinator stopped");
        Ok(())
    })
}
