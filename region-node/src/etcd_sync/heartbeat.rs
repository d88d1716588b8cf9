//! The region's heartbeat: its lease kept alive on a task of its own. The session's event loop
//! waits on Postgres (a grant applied, a release under the quota row lock); when the heartbeat
//! shared that loop, a Postgres slower than the lease TTL let the lease lapse, the region
//! "died" for the coordinator and its session restarted although nothing was wrong with it.

use std::time::Duration;

use etcd_client::Client;
use tokio::task::JoinHandle;

use super::error::SyncError;

/// A running heartbeat; dropping it stops it (the session that owned the lease has ended).
pub(super) struct Heartbeat {
    task: JoinHandle<SyncError>,
}

impl Heartbeat {
    /// Keeps `lease` alive every `every` until it fails.
    pub(super) async fn start(
        client: &mut Client,
        lease: i64,
        every: Duration,
    ) -> Result<Heartbeat, SyncError> {
        let (mut keeper, mut answers) = client.lease_keep_alive(lease).await?;
        let task = tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            loop {
                tick.tick().await;
                if let Err(e) = keeper.keep_alive().await {
                    return SyncError::Etcd(e);
                }
                // An answer that never comes (its bytes dropped by a partition on a connection
                // that stays open) must end the session too, not leave it waiting for ever.
                match tokio::time::timeout(every * 2, answers.message()).await {
                    Ok(Ok(Some(r))) if r.ttl() > 0 => {}
                    Ok(Ok(_)) | Err(_) => return SyncError::LeaseLost,
                    Ok(Err(e)) => return SyncError::Etcd(e),
                }
            }
        });
        Ok(Heartbeat { task })
    }

    /// Resolves when the heartbeat has stopped, with why: the session must end (its lease is
    /// gone or etcd is unreachable). Cancel-safe.
    pub(super) async fn stopped(&mut self) -> SyncError {
        (&mut self.task).await.unwrap_or(SyncError::LeaseLost)
    }
}

impl Drop for Heartbeat {
    fn drop(&mut self) {
        self.task.abort();
    }
}
