//! `coordinator`: parse config, connect to etcd, campaign for leadership, serve the admin API
//! until SIGTERM / Ctrl-C.

use std::sync::Arc;
use std::time::Duration;

use anyhow::{bail, Context};
use clap::Parser;
use coordinator::{
    install_metrics, router, ApiState, Cli, Command, Escrow, Leader, LeaderValue,
    SetupEtcdAuthConfig, Store,
};

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().collect();
    quota_shared::config::load_config_from_args(&args)?;
    let cli = Cli::parse();
    quota_shared::telemetry::init_as("info", cli.log_format);
    let cfg = match cli.command {
        Command::Serve(cfg) => *cfg,
        Command::SetupEtcdAuth(setup) => return setup_etcd_auth(&setup),
    };
    // Read once, before anything starts: an unusable token file is a start-up error.
    let (tokens, region_token) = match cfg.admin_tokens() {
        Ok(t) => t,
        Err(e) => bail!("{e}"),
    };
    let metrics = install_metrics();
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    rt.block_on(async move {
        let shutdown = quota_shared::shutdown::on_signal();
        let etcd = cfg
            .etcd
            .options(quota_etcd::EtcdOptions::default())
            .context("etcd credentials")?;
        let store = Store::connect(&cfg.etcd.endpoints, etcd)
            .await
            .context("connecting to etcd")?;
        let tls = cfg.tls.server_config().context("--tls-cert-file/--tls-key-file")?;
        let client = || {
            quota_serve::client_with_ca(cfg.tls_ca_file.as_deref()).context("--tls-ca-file")
        };
        let escrow = Arc::new(
            Escrow::new(
                store,
                cfg.policy_params(),
                region_token.expose().to_string(),
            )
            .with_http(client()?.timeout(Duration::from_secs(5)).build()?)
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
            tokens,
            http: client()?
                .timeout(Duration::from_secs(10))
                .build()
                .context("http client")?,
            metrics,
        });
        let listener = tokio::net::TcpListener::bind(cfg.listen)
            .await
            .with_context(|| format!("listening on {}", cfg.listen))?;
        tracing::info!(id = %cfg.id, listen = %cfg.listen, scheme = cfg.tls.scheme(), "coordinator serving");
        quota_serve::serve(listener, router(st), tls, shutdown.clone())
            .await
            .context("serving")?;
        let _ = leading.await;
        tracing::info!("coordinator stopped");
        Ok(())
    })
}

/// `coordinator setup-etcd-auth`: users, roles and passwords, then authentication on.
fn setup_etcd_auth(setup: &SetupEtcdAuthConfig) -> anyhow::Result<()> {
    let ca_pem = match &setup.etcd_ca_file {
        Some(path) => {
            Some(std::fs::read(path).with_context(|| format!("reading {}", path.display()))?)
        }
        None => None,
    };
    let rt = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    let applied = rt
        .block_on(quota_etcd::rbac::bootstrap(
            &setup.etcd_endpoints,
            ca_pem,
            &setup.regions,
            &setup.credentials_dir,
        ))
        .context("setting up etcd authentication")?;
    for change in &applied.changes {
        println!("{change}");
    }
    println!(
        "etcd authentication is on: users root, {}, {} (passwords in {})",
        quota_etcd::rbac::COORDINATOR_USER,
        setup
            .regions
            .iter()
            .map(|r| quota_etcd::rbac::region_user(r))
            .collect::<Vec<_>>()
            .join(", "),
        setup.credentials_dir.display()
    );
    Ok(())
}
