//! `coordinator`: parse config, connect to etcd, campaign for leadership, serve the admin API
//! until SIGTERM / Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use coordinator::{router, ApiState, Cli, Command, Escrow, Leader, LeaderValue, Store};

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
        let escrow = Arc::new(
            Escrow::new(store, cfg.policy_params(), cfg.admin_token.clone())
                .with_clock_skew_ms(cfg.clock_skew_ms)
                .with_stuck_after(Duration::from_millis(cfg.audit_stuck_after_ms)),
        );
        let leader = Leader::new(
            Arc::clone(&escrow),
            LeaderValue {
                id: cfg.id.clone(),
                url: cfg.advertise_url(),
            },
            cfg.lease_ttl_s,
            Duration::from_millis(cfg.rebalance_ms.max(10)),
        );
        let leading = tokio::spawn(leader.run(shutdown.clone()));
        let st = Arc::new(ApiState {
            id: cfg.id.clone(),
            escrow,
            admin_token: cfg.admin_token.clone(),
            http: reqwest::Client::builder()
                .timeout(Duration::from_secs(10))
                .build()
                .context("http client")?,
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        tracing::info!(id = %cfg.id, listen = %cfg.listen, "coordinator serving");
        axum::serve(listener, router(st))
            .with_graceful_shutdown(shutdown.clone().cancelled_owned())
            .await
            .context("serving")?;
        let _ = leading.await;
        tracing::info!("coordinator stopped");
        Ok(())
    })
}
