//! Why an etcd session ended (the next one starts with a full re-read).

use crate::db::DbError;
use crate::release::ReleaseError;

/// Why a session ended.
#[derive(Debug, thiserror::Error)]
pub(crate) enum SyncError {
    /// etcd failed or is unreachable.
    #[error("etcd: {0}")]
    Etcd(#[from] etcd_client::Error),
    /// No etcd member answered as part of a quorum.
    #[error("etcd: {0}")]
    NoMember(#[from] quota_etcd::ConnectError),
    /// Postgres failed while applying.
    #[error(transparent)]
    Db(#[from] DbError),
    /// A watch ended (cancelled, compacted, stream closed): re-read everything.
    #[error("watch ended: {0}")]
    WatchEnded(String),
    /// The heartbeat lease expired.
    #[error("heartbeat lease lost")]
    LeaseLost,
    /// Publishing a release failed.
    #[error(transparent)]
    Release(#[from] ReleaseError),
}
