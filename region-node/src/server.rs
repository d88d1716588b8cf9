//! [`RegionNode`]: wires Postgres, Redis, etcd, the background tasks and the HTTP server. It
//! only builds and runs; the state the parts share is [`crate::state::AppState`].

use std::net::SocketAddr;
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
    Db::new(&cfg.pg_url, 2, Duration::from_secs(30))?
        .migrate()
        .await
}

/// One region node: configuration plus the metrics handle, started by [`RegionNode::run`].
pub struct RegionNode {
    cfg: ServeConfig,
    metrics: PrometheusHandle,
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
        if cfg.etcd_endpoints.iter().all(|e| e.trim().is_empty()) {
            return Err(NodeError::Config(
                "at least one etcd endpoint is required".into(),
            ));
        }
        Ok(RegionNode { cfg, metrics })
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
        let db = Db::with_isolation(
            &cfg.pg_url,
            cfg.pg_pool_size,
            cfg.pg_timeout(),
            cfg.isolation,
        )?;
        let Some(_) = until_ok("Postgres", &shutdown, || db.migrate()).await else {
            return Ok(());
        };
        let Some(products) = until_ok("Postgres", &shutdown, || db.load_products()).await else {
            return Ok(());
        };
        let Some(stock) = until_ok("Redis", &shutdown, || {
            Stock::connect(&cfg.redis_url, cfg.redis_timeout())
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
            admin_token: cfg.admin_token.clone().filter(|t| !t.is_empty()),
            await_stock: Duration::from_millis(cfg.await_stock_ms),
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
        let process = cfg.process_id();
        tracing::info!(region = %cfg.region, process = %process, "node process");
        let sync = EtcdSync::new(
            Arc::clone(&st),
            cfg.etcd_endpoints.clone(),
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

        let listener = tokio::net::TcpListener::bind(cfg.listen).await?;
        tracing::info!(region = %cfg.region, listen = %cfg.listen, "region node serving");
        let app = crate::http::router(Arc::clone(&st));
        let served = axum::serve(
            listener,
            app.into_make_service_with_connect_info::<SocketAddr>(),
        )
        .with_graceful_shutdown(shutdown.clone().cancelled_owned())
        .await;
        tasks.cancel();
        for h in handles {
            let _ = h.await;
        }
        tracing::info!("region node stopped");
        served.map_err(NodeError::from)
    }
}
