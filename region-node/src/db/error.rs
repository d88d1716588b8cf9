//! Every database failure, classified once, here, so the purchase path can decide what to
//! retry (only errors after which a retry can succeed and cannot double-apply) and what to
//! answer.

use deadpool_postgres::PoolError;
use tokio_postgres::error::SqlState;

/// A database failure, classified by what the caller should do about it.
#[derive(Debug, Clone, thiserror::Error)]
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
    pub(crate) fn is_retryable(&self) -> bool {
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
        let msg = e.as_db_error().map_or_else(
            || e.to_string(),
            |d| format!("{} ({})", d.message(), code.code()),
        );
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
