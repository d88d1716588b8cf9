//! Postgres: the region's truth. A connection pool plus every query the node runs.
//!
//! Errors are classified once, here ([`DbError`]), so the purchase path can decide what to
//! retry (only errors after which a retry can succeed and cannot double-apply) and what to
//! answer.

use std::time::Duration;

use chrono::{DateTime, Utc};
use deadpool_postgres::{Manager, ManagerConfig, Pool, PoolError, RecyclingMethod, Runtime};
use quota_shared::model::ProductSpec;
use rust_decimal::Decimal;
use serde::Serialize;
use tokio_postgres::error::SqlState;
use tokio_postgres::{NoTls, Row};
use uuid::Uuid;

/// A database failure, classified by what the caller should do about it.
#[derive(Debug, thiserror::Error)]
pub enum DbError {
    /// The conditional update found too little quota (SQLSTATE QS001 from `quota_purchase`).
    #[error("sold out")]
    SoldOut,
    /// Transient and definite — serialization failure, deadlock, a server-reported connection
    /// error: the transaction did not commit. May be retried (every write the node retries is
    /// idempotent).
    #[error("retryable database error: {0}")]
    Retryable(String),
    /// The connection died mid-statement: the transaction may or may not have committed. May be
    /// retried (idempotent per order id); if retries run out the outcome stays unknown.
    #[error("connection lost: {0}")]
    ConnectionLost(String),
    /// The database cannot serve now (down, pool exhausted, statement timeout): answer 503.
    #[error("database unavailable: {0}")]
    Unavailable(String),
    /// Anything else: a bug or a broken invariant.
    #[error("database error: {0}")]
    Other(String),
}

impl DbError {
    /// Whether a retry may succeed.
    pub fn is_retryable(&self) -> bool {
        matches!(self, DbError::Retryable(_) | DbError::ConnectionLost(_))
    }
}

fn count_error() {
    metrics::counter!("quota_dependency_errors_total", "dependency" => "postgres").increment(1);
}

impl From<tokio_postgres::Error> for DbError {
    fn from(e: tokio_postgres::Error) -> Self {
        let Some(code) = e.code() else {
            count_error();
            // No SQLSTATE: I/O error or closed connection — outcome unknown.
            return DbError::ConnectionLost(e.to_string());
        };
        if code.code() == "QS001" {
            return DbError::SoldOut;
        }
        count_error();
        let msg = e
            .as_db_error()
            .map(|d| format!("{} ({})", d.message(), code.code()))
            .unwrap_or_else(|| e.to_string());
        if *code == SqlState::T_R_SERIALIZATION_FAILURE
            || *code == SqlState::T_R_DEADLOCK_DETECTED
            || code.code().starts_with("08")
            || *code == SqlState::ADMIN_SHUTDOWN
            || *code == SqlState::CRASH_SHUTDOWN
            || *code == SqlState::CANNOT_CONNECT_NOW
        {
            DbError::Retryable(msg)
        } else if *code == SqlState::QUERY_CANCELED || *code == SqlState::TOO_MANY_CONNECTIONS {
            DbError::Unavailable(msg)
        } else {
            DbError::Other(msg)
        }
    }
}

impl From<PoolError> for DbError {
    fn from(e: PoolError) -> Self {
        match e {
            PoolError::Backend(e) => {
                let d = DbError::from(e);
                // Failing to get a connection means nothing was sent.
                match d {
                    DbError::Retryable(m) | DbError::ConnectionLost(m) | DbError::Other(m) => {
                        DbError::Unavailable(m)
                    }
                    d => d,
                }
            }
            other => {
                count_error();
                DbError::Unavailable(other.to_string())
            }
        }
    }
}

/// An order as stored and as returned by the API.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Order {
    /// Globally unique (UUIDv7: time-ordered, minted by the node before Redis admission).
    pub order_id: Uuid,
    /// The product.
    pub product_id: i64,
    /// The buyer.
    pub user_id: i64,
    /// The region that sold it.
    pub region: String,
    /// Units.
    pub quantity: i32,
    /// Unit price, as a decimal string (e.g. "99.00").
    pub price: Decimal,
    /// pending | paid | cancelled.
    pub status: String,
    /// Commit time (database clock).
    pub created_at: DateTime<Utc>,
}

impl Order {
    fn from_row(r: &Row) -> Order {
        Order {
            order_id: r.get("order_id"),
            product_id: r.get("product_id"),
            user_id: r.get("user_id"),
            region: r.get("region"),
            quantity: r.get("quantity"),
            price: r.get("price"),
            status: r.get("status"),
            created_at: r.get("created_at"),
        }
    }
}

/// The region's quota row for one product.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct QuotaRow {
    /// `g`: grants applied (cumulative).
    pub granted: i64,
    /// `rel`: units released back to the pool (cumulative).
    pub released: i64,
    /// Units sold.
    pub sold: i64,
}

impl QuotaRow {
    /// `g − rel − sold`.
    pub fn available(&self) -> i64 {
        quota_shared::reconcile::pg_available(self.granted, self.released, self.sold)
    }
}

/// What `quota_purchase` decided.
#[derive(Debug, Clone)]
pub enum PurchaseOutcome {
    /// The order is committed.
    Created(Order),
    /// The user already has an order for this product.
    AlreadyPurchased(Uuid),
    /// The database says the product is unknown or outside its sale window.
    NotActive,
}

/// The region's database: a pool and the queries.
#[derive(Clone)]
pub struct Db {
    pool: Pool,
}

const ORDER_COLS: &str =
    "order_id, product_id, user_id, region, quantity, price, status, created_at";

impl Db {
    /// Builds the pool (connections open lazily). `statement_timeout` bounds every statement
    /// server-side, so a stuck query cannot hold the hot row lock.
    pub fn new(url: &str, size: usize, timeout: Duration) -> Result<Db, DbError> {
        Self::with_isolation(
            url,
            size,
            timeout,
            crate::strategy::Isolation::ReadCommitted,
        )
    }

    /// Like [`Db::new`], with every transaction at `isolation`.
    pub fn with_isolation(
        url: &str,
        size: usize,
        timeout: Duration,
        isolation: crate::strategy::Isolation,
    ) -> Result<Db, DbError> {
        let mut cfg: tokio_postgres::Config = url
            .parse()
            .map_err(|e| DbError::Other(format!("bad Postgres URL: {e}")))?;
        cfg.connect_timeout(Duration::from_secs(2));
        cfg.options(format!(
            "-c statement_timeout={} -c lock_timeout={} -c default_transaction_isolation={}",
            timeout.as_millis(),
            timeout.as_millis(),
            // libpq splits options on spaces; a backslash keeps "read committed" one value.
            isolation.pg_name().replace(' ', "\\ ")
        ));
        if cfg.get_application_name().is_none() {
            cfg.application_name("region-node");
        }
        let mgr = Manager::from_config(
            cfg,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(mgr)
            .max_size(size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(timeout))
            .create_timeout(Some(Duration::from_secs(2)))
            .recycle_timeout(Some(Duration::from_secs(1)))
            .build()
            .map_err(|e| DbError::Other(e.to_string()))?;
        Ok(Db { pool })
    }

    /// The pool (for transactions the reconciler runs itself).
    pub fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Applies pending migrations.
    pub async fn migrate(&self) -> Result<usize, DbError> {
        let mut obj = self.pool.get().await?;
        let client: &mut tokio_postgres::Client = &mut obj;
        Ok(crate::migrate::migrate(client).await?)
    }

    /// Postgres reachable and migrations applied.
    pub async fn ready(&self) -> Result<bool, DbError> {
        let obj = self.pool.get().await?;
        Ok(crate::migrate::is_current(&obj).await?)
    }

    /// Every product this region knows (loaded at start so it can sell without etcd).
    pub async fn load_products(&self) -> Result<Vec<ProductSpec>, DbError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                "SELECT product_id, name, total, price, original_price, start_time, end_time,
                        per_user_limit FROM products ORDER BY product_id",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|r| ProductSpec {
                product_id: r.get(0),
                name: r.get(1),
                total: r.get(2),
                price: r.get(3),
                original_price: r.get(4),
                start_time: r.get(5),
                end_time: r.get(6),
                per_user_limit: r.get(7),
            })
            .collect())
    }

    /// Stores (or updates) a spec from etcd and makes sure the quota row exists.
    pub async fn upsert_product(&self, s: &ProductSpec) -> Result<(), DbError> {
        let mut c = self.pool.get().await?;
        let tx = c.transaction().await?;
        tx.execute(
            "INSERT INTO products (product_id, name, total, price, original_price, start_time,
                                   end_time, per_user_limit)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (product_id) DO UPDATE SET
                name = EXCLUDED.name, total = EXCLUDED.total, price = EXCLUDED.price,
                original_price = EXCLUDED.original_price, start_time = EXCLUDED.start_time,
                end_time = EXCLUDED.end_time, per_user_limit = EXCLUDED.per_user_limit,
                updated_at = now()",
            &[
                &s.product_id,
                &s.name,
                &s.total,
                &s.price,
                &s.original_price,
                &s.start_time,
                &s.end_time,
                &s.per_user_limit,
            ],
        )
        .await?;
        tx.execute(
            "INSERT INTO region_quota (product_id) VALUES ($1) ON CONFLICT DO NOTHING",
            &[&s.product_id],
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    /// `g := max(g, G)`. Returns `(g before, g after)`. Idempotent and order-insensitive.
    pub async fn apply_grant(
        &self,
        product_id: i64,
        cumulative: i64,
    ) -> Result<(i64, i64), DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "WITH old AS (SELECT granted FROM region_quota WHERE product_id = $1 FOR UPDATE)
                 UPDATE region_quota q SET granted = GREATEST(q.granted, $2), updated_at = now()
                   FROM old WHERE q.product_id = $1
                 RETURNING old.granted, q.granted",
                &[&product_id, &cumulative],
            )
            .await?;
        row.map(|r| (r.get(0), r.get(1)))
            .ok_or_else(|| DbError::Other(format!("no quota row for product {product_id}")))
    }

    /// The purchase transaction (see `migrations/0002_purchase_fn.sql`).
    pub async fn purchase(
        &self,
        order_id: Uuid,
        product_id: i64,
        user_id: i64,
        quantity: i32,
        region: &str,
    ) -> Result<PurchaseOutcome, DbError> {
        let c = self.pool.get().await?;
        let stmt = c
            .prepare_cached(
                "SELECT outcome, order_id, quantity, price, status, created_at
                   FROM quota_purchase($1, $2, $3, $4, $5)",
            )
            .await?;
        let row = c
            .query_opt(
                &stmt,
                &[&order_id, &product_id, &user_id, &quantity, &region],
            )
            .await?
            .ok_or_else(|| DbError::Other("quota_purchase returned no row".into()))?;
        let outcome: &str = row.get(0);
        Ok(match outcome {
            "created" => PurchaseOutcome::Created(Order {
                order_id: row.get(1),
                product_id,
                user_id,
                region: region.to_string(),
                quantity: row.get(2),
                price: row.get(3),
                status: row.get(4),
                created_at: row.get(5),
            }),
            "already_purchased" => PurchaseOutcome::AlreadyPurchased(row.get(1)),
            "not_active" => PurchaseOutcome::NotActive,
            other => return Err(DbError::Other(format!("unknown outcome {other:?}"))),
        })
    }

    /// The order a user holds for a product, if committed.
    pub async fn order_of(&self, user_id: i64, product_id: i64) -> Result<Option<Uuid>, DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT order_id FROM orders WHERE user_id = $1 AND product_id = $2",
                &[&user_id, &product_id],
            )
            .await?;
        Ok(row.map(|r| r.get(0)))
    }

    /// One order by id.
    pub async fn order(&self, order_id: Uuid) -> Result<Option<Order>, DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                &format!("SELECT {ORDER_COLS} FROM orders WHERE order_id = $1"),
                &[&order_id],
            )
            .await?;
        Ok(row.as_ref().map(Order::from_row))
    }

    /// A user's orders in this region, newest first (at most `limit`).
    pub async fn user_orders(&self, user_id: i64, limit: i64) -> Result<Vec<Order>, DbError> {
        let c = self.pool.get().await?;
        let rows = c
            .query(
                &format!(
                    "SELECT {ORDER_COLS} FROM orders WHERE user_id = $1
                     ORDER BY created_at DESC, order_id DESC LIMIT $2"
                ),
                &[&user_id, &limit],
            )
            .await?;
        Ok(rows.iter().map(Order::from_row).collect())
    }

    /// The region's quota row for a product.
    pub async fn quota(&self, product_id: i64) -> Result<Option<QuotaRow>, DbError> {
        let c = self.pool.get().await?;
        let row = c
            .query_opt(
                "SELECT granted, released, sold FROM region_quota WHERE product_id = $1",
                &[&product_id],
            )
            .await?;
        Ok(row.map(|r| QuotaRow {
            granted: r.get(0),
            released: r.get(1),
            sold: r.get(2),
        }))
    }

    /// Pool gauges for `/metrics`.
    pub fn pool_status(&self) -> deadpool_postgres::Status {
        self.pool.status()
    }
}

/// A region's truth about one product, read in one snapshot (for the coordinator's audit).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct AuditRow {
    /// The quota row.
    #[serde(flatten)]
    pub quota: QuotaRow,
    /// `g − rel − sold`.
    pub available: i64,
    /// Number of order rows.
    pub order_count: i64,
    /// Σ order quantity (must equal `sold`).
    pub order_units: i64,
    /// Every buyer and the units they hold (for the cross-region per-user check).
    pub buyers: Vec<(i64, i64)>,
}

impl Db {
    /// Reads the quota row and the orders in one REPEATABLE READ snapshot, so `sold` and the
    /// order totals are comparable.
    pub async fn audit(&self, product_id: i64) -> Result<Option<AuditRow>, DbError> {
        let mut c = self.pool.get().await?;
        let tx = c
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await?;
        let Some(q) = tx
            .query_opt(
                "SELECT granted, released, sold FROM region_quota WHERE product_id = $1",
                &[&product_id],
            )
            .await?
        else {
            return Ok(None);
        };
        let quota = QuotaRow {
            granted: q.get(0),
            released: q.get(1),
            sold: q.get(2),
        };
        let buyers: Vec<(i64, i64)> = tx
            .query(
                "SELECT user_id, quantity::BIGINT FROM orders WHERE product_id = $1 ORDER BY user_id",
                &[&product_id],
            )
            .await?
            .iter()
            .map(|r| (r.get(0), r.get(1)))
            .collect();
        tx.commit().await?;
        Ok(Some(AuditRow {
            available: quota.available(),
            order_count: buyers.len() as i64,
            order_units: buyers.iter().map(|b| b.1).sum(),
            quota,
            buyers,
        }))
    }
}
