//! [`RegionNode`]: wires Postgres, Redis, etcd, the background tasks and the HTTP server. It
//! only builds and runs; the state the parts share is [`crate::state::AppState`].

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::catalog::Catalog;
use crate::config::{MigrateConfig, ServeConfig};
use crate::db::{Db, DbError};
use crate::etcd_sync::EtcdSync;
use crate::failpoint::Failpoint;
use crate::ratelimit::Limits;
use crate::reconcile::Reconciler;
use crate::state::AppState;
use crate::stock::{Stock, StockError};
use crate::strategy::Purchaser;
use quota_etcd::{EtcdOptions, Members};

/// Why the node could not start or stopped abnormally.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// A setting is unusable.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// Postgres failed at start.
    #[error(transparent)]
    Db(#[from] DbError),
    /// Redis failed at start.
    #[error(transparent)]
    Stock(#[from] StockError),
    /// Listening or serving failed.
    #[error("http server: {0}")]
    Io(#[from] std::io::Error),
}

/// `region-node migrate`: applies the embedded migrations to `cfg`'s database; returns how
/// many were applied now.
pub async fn migrate(cfg: &MigrateConfig) -> Result<usize, DbError> {
    Db::new(&cfg.pg, 2, Duration::from_secs(30))?
        .migrate()
        .await
}

/// One region node: configuration plus the metrics handle, started by [`RegionNode::run`].
pub struct RegionNode {
    cfg: ServeConfig,
    metrics: PrometheusHandle,
    /// Buyer-token verification, its key read once in [`RegionNode::new`].
    buyers: crate::http::BuyerAuth,
    /// The admin tokens of the audit endpoint, read once in [`RegionNode::new`].
    admin_tokens: quota_shared::admin_auth::AdminTokens,
    /// Where order events go, its secret read once in [`RegionNode::new`]; `None`: nowhere.
    webhook: Option<crate::outbox::Webhook>,
}

/// Retries `f` every second until it succeeds or shutdown; dependencies may start after us.
async fn until_ok<T, E: std::fmt::Display, F, Fut>(
    what: &str,
    shutdown: &CancellationToken,
    mut f: F,
) -> Option<T>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, E>>,
{
    let mut warned = false;
    loop {
        match f().await {
            Ok(v) => return Some(v),
            Err(e) => {
                if !warned {
                    tracing::warn!(error = %e, "waiting for {what}");
                    warned = true;
                }
            }
        }
        tokio::select! {
            _ = shutdown.cancelled() => return None,
            () = tokio::time::sleep(Duration::from_secs(1)) => {}
        }
    }
}

impl RegionNode {
    /// A node for `cfg`; `metrics` is the process's recorder handle.
    pub fn new(cfg: ServeConfig, metrics: PrometheusHandle) -> Result<Self, NodeError> {
        quota_shared::model::validate_region_name(&cfg.region)
            .map_err(|e| NodeError::Config(e.0))?;
        if !cfg.home_regions.is_empty() {
            return Err(NodeError::Config(format!(
                "--home-regions ({}) is no longer a node flag: home regions are part of each \
                 sale, so that every node follows one list; set them on the coordinator with \
                 `quotactl region homes --set {}` (sales already on keep theirs)",
                cfg.home_regions.join(","),
                cfg.home_regions.join(",")
            )));
        }
        if let Some(id) = cfg.process_id.as_deref().filter(|p| !p.is_empty()) {
            quota_shared::keys::validate_process_id(id).map_err(|e| NodeError::Config(e.0))?;
        }
        if cfg.etcd.endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err(NodeError::Config(
                "at least one etcd endpoint is required".into(),
            ));
        }
        let buyers =
            crate::http::BuyerAuth::from_config(&cfg.buyer_token).map_err(NodeError::Config)?;
        if buyers.is_on() {
            tracing::info!(buyer_tokens = %buyers.describe(), "buyer tokens");
        } else {
            tracing::warn!(buyer_tokens = %buyers.describe(), "buyer tokens");
        }
        let admin_tokens = crate::http::admin_tokens(&cfg).map_err(NodeError::Config)?;
        tracing::info!(admin = %crate::http::describe_admin_tokens(&cfg), "admin tokens");
        let webhook = cfg.webhook.webhook().map_err(NodeError::Config)?;
        if webhook.is_none() {
            tracing::info!("no --webhook-url: order events are kept for the feed, not delivered");
        }
        Ok(RegionNode {
            cfg,
            metrics,
            buyers,
            admin_tokens,
            webhook,
        })
    }

    /// Starts everything, serves until `shutdown`, then stops the background tasks.
    pub async fn run(self, shutdown: CancellationToken) -> Result<(), NodeError> {
        let cfg = self.cfg;
        let failpoint = cfg
            .failpoint
            .as_deref()
            .filter(|f| !f.is_empty())
            .map(Failpoint::parse)
            .transpose()
            .map_err(NodeError::Config)?;
        cfg.pg
            .check()
            .and_then(|()| cfg.redis.check())
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let db = Db::with_isolation(&cfg.pg, cfg.pg_pool_size, cfg.pg_timeout(), cfg.isolation)?;
        let Some(_) = until_ok("Postgres", &shutdown, || db.migrate()).await else {
            return Ok(());
        };
        let Some(products) = until_ok("Postgres", &shutdown, || db.load_products()).await else {
            return Ok(());
        };
        let Some(stock) = until_ok("Redis", &shutdown, || {
            Stock::connect(&cfg.redis, cfg.redis_timeout())
        })
        .await
        else {
            return Ok(());
        };
        let catalog = Catalog::default();
        for p in products {
            catalog.upsert(p);
        }
        let st = Arc::new(AppState {
            region: cfg.region.clone(),
            catalog,
            stock,
            db: db.clone(),
            limits: Limits::new(
                cfg.global_rate_limit,
                cfg.ip_rate_limit,
                cfg.user_rate_limit,
            ),
            metrics: self.metrics,
            reconcile_now: Notify::new(),
            etcd_connected: AtomicBool::new(false),
            failpoint,
            admin_tokens: self.admin_tokens,
            await_stock: Duration::from_millis(cfg.await_stock_ms),
            payment_window_s: cfg.payment_window_s,
            trusted_proxies: crate::ratelimit::TrustedProxies::new(cfg.trusted_proxies.clone()),
            purchaser: Purchaser::new(
                cfg.strategy,
                db.clone(),
                cfg.region.clone(),
                cfg.group_commit_queue,
            ),
        });

        let tasks = shutdown.child_token();
        let mut handles = Vec::new();
        let reconciler = Reconciler::new(
            Arc::clone(&st),
            cfg.reconcile_every(),
            Duration::from_millis(cfg.ticket_expiry_ms),
        );
        // The first pass runs before we listen, so Redis is built from Postgres first.
        for id in st.catalog.ids() {
            if let Err(e) = reconciler.pass(id).await {
                tracing::warn!(product_id = id, error = %e, "initial reconciliation failed");
            }
        }
        handles.push(tokio::spawn(reconciler.run(tasks.clone())));
        if let Some(hook) = self.webhook {
            let outbox = crate::outbox::Outbox::new(db.clone(), hook).map_err(NodeError::Config)?;
            handles.push(tokio::spawn(outbox.run(tasks.clone())));
        }
        let sweep = crate::expiry::ExpirySweep::new(
            Arc::clone(&st),
            Duration::from_millis(cfg.expiry_sweep_ms),
        );
        handles.push(tokio::spawn(sweep.run(tasks.clone())));
        let process = cfg.process_id();
        tracing::info!(region = %cfg.region, process = %process, "node process");
        let etcd = cfg
            .etcd
            .options(EtcdOptions {
                keep_alive: Some((Duration::from_secs(2), Duration::from_secs(2))),
                ..EtcdOptions::default()
            })
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let members = Members::new(cfg.etcd.endpoints.clone(), etcd)
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let sync = EtcdSync::new(
            Arc::clone(&st),
            members,
            cfg.lease_ttl_s,
            cfg.public_url(),
            process,
        );
        handles.push(tokio::spawn(sync.run(tasks.clone())));
        let pruner_st = Arc::clone(&st);
        let pruner_stop = tasks.clone();
        handles.push(tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = pruner_stop.cancelled() => return,
                    _ = tokio::time::sleep(Duration::from_secs(10)) => pruner_st.limits.prune(),
                }
            }
        }));

        let tls = cfg
            .tls
            .server_config()
            .map_err(|e| NodeError::Config(e.to_string()))?;
        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        tracing::info!(region = %cfg.region, listen = %cfg.listen, "region node serving");
        let app = crate::http::router(Arc::clone(&st), self.buyers);
        let served = quota_serve::serve(listener, app, tls, shutdown.clone()).await;
        tasks.cancel();
        for h in handles {
            let _ = h.await;
        }
        tracing::info!("region node stopped");
        served.map_err(NodeError::from)
    }
}
