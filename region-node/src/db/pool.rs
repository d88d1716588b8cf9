//! The connection pool and the per-connection settings (timeouts, isolation level).

use std::str::FromStr;
use std::time::Duration;

use clap::ValueEnum;
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::backends::{client_tls, read_secret, PgArgs};

use super::error::DbError;
use super::migrate;

/// Transaction isolation for every connection of the pool (`--isolation`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, ValueEnum)]
pub enum Isolation {
    /// Postgres's default; what the purchase path is designed for.
    #[default]
    ReadCommitted,
    /// Concurrent updates of the quota row fail with a serialization error (retried).
    RepeatableRead,
    /// As repeatable read, plus predicate locking.
    Serializable,
}

impl Isolation {
    /// The value of `default_transaction_isolation`.
    fn pg_name(self) -> &'static str {
        match self {
            Isolation::ReadCommitted => "read committed",
            Isolation::RepeatableRead => "repeatable read",
            Isolation::Serializable => "serializable",
        }
    }
}

impl FromStr for Isolation {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        <Isolation as ValueEnum>::from_str(s, true)
    }
}

/// The region's database: a pool and the queries.
#[derive(Clone)]
pub(crate) struct Db {
    pool: Pool,
    /// Longest any one database operation may take before it counts as a lost connection.
    op_timeout: Duration,
}

impl Db {
    /// Builds the pool (connections open lazily). `statement_timeout` bounds every statement
    /// server-side and `idle_in_transaction_session_timeout` every pause between two, so
    /// neither a stuck query nor a paused process can hold the hot row lock.
    pub(crate) fn new(pg: &PgArgs, size: usize, timeout: Duration) -> Result<Db, DbError> {
        Self::with_isolation(pg, size, timeout, Isolation::ReadCommitted)
    }

    /// Like [`Db::new`], with every transaction at `isolation`.
    pub(crate) fn with_isolation(
        pg: &PgArgs,
        size: usize,
        timeout: Duration,
        isolation: Isolation,
    ) -> Result<Db, DbError> {
        let mut cfg: tokio_postgres::Config = pg
            .pg_url
            .parse()
            .map_err(|e| DbError::Other(format!("bad Postgres URL: {e}")))?;
        if let Some(file) = &pg.pg_password_file {
            cfg.password(read_secret(file).map_err(|e| DbError::Other(e.to_string()))?);
        }
        cfg.connect_timeout(Duration::from_secs(2));
        // A transaction left idle (the process paused or stalled between two statements while
        // holding the hot row lock) is ended by the server after twice the statement timeout,
        // which releases the lock; no transaction of ours waits that long between statements.
        cfg.options(format!(
            "-c statement_timeout={} -c lock_timeout={} \
             -c idle_in_transaction_session_timeout={} -c default_transaction_isolation={}",
            timeout.as_millis(),
            timeout.as_millis(),
            timeout.as_millis() * 2,
            // libpq splits options on spaces; a backslash keeps "read committed" one value.
            isolation.pg_name().replace(' ', "\\ ")
        ));
        if cfg.get_application_name().is_none() {
            cfg.application_name("region-node");
        }
        let mgr_cfg = ManagerConfig {
            // A connection is checked with a round trip before reuse: one abandoned mid-
            // operation (see `bounded`) may be waiting for an answer that will never come
            // (its bytes dropped by a partition, the server frozen); `Fast` only notices a
            // closed socket and would hand it to the next purchase.
            recycling_method: RecyclingMethod::Verified,
        };
        let mgr = match &pg.pg_ca_file {
            // A CA file means TLS, always: a server that offers no TLS is refused.
            Some(ca) => {
                cfg.ssl_mode(tokio_postgres::config::SslMode::Require);
                let tls = client_tls(ca).map_err(|e| DbError::Other(e.to_string()))?;
                Manager::from_config(cfg, MakeRustlsConnect::new(tls), mgr_cfg)
            }
            None => Manager::from_config(cfg, NoTls, mgr_cfg),
        };
        let pool = Pool::builder(mgr)
            .max_size(size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|e| DbError::Other(e.to_string()))?;
        Ok(Db {
            pool,
            op_timeout: timeout * 2 + Duration::from_secs(1),
        })
    }

    /// Longest one database operation may take: twice the statement timeout plus a second.
    pub(crate) fn op_timeout(&self) -> Duration {
        self.op_timeout
    }

    /// Runs `op` for at most [`Db::op_timeout`]. The server's own timeouts bound a statement
    /// it is running, but not one it never received or whose answer never arrives (a
    /// partition, a frozen server): past the bound the operation counts as a lost connection
    /// (it may have committed; callers treat it so) and its connection is dropped, to be
    /// re-verified before any reuse.
    pub(crate) async fn bounded<T, E: From<DbError>>(
        &self,
        op: impl std::future::Future<Output = Result<T, E>>,
    ) -> Result<T, E> {
        bounded(self.op_timeout, op).await
    }

    /// One pooled connection.
    pub(super) async fn conn(&self) -> Result<Object, DbError> {
        Ok(self.pool.get().await?)
    }

    /// Applies pending migrations; returns how many were applied now.
    pub(crate) async fn migrate(&self) -> Result<usize, DbError> {
        let mut obj = self.conn().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        Ok(migrate::migrate(client).await?)
    }

    /// Postgres reachable and migrations applied.
    pub(crate) async fn ready(&self) -> Result<bool, DbError> {
        let obj = self.conn().await?;
        Ok(migrate::is_current(&obj).await?)
    }

    /// Pool gauges for `/metrics`.
    pub(crate) fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

/// [`Db::bounded`] for callers that hold only the bound.
pub(crate) async fn bounded<T, E: From<DbError>>(
    limit: Duration,
    op: impl std::future::Future<Output = Result<T, E>>,
) -> Result<T, E> {
    match tokio::time::timeout(limit, op).await {
        Ok(r) => r,
        Err(_) => Err(DbError::ConnectionLost(format!(
            "no answer from Postgres within {} ms",
            limit.as_millis()
        ))
        .into()),
    }
}
