//! Leader election and the leader's rebalance loop.
//!
//! Each instance holds a lease (TTL default 2 s, kept alive every TTL/3) and campaigns in the
//! etcd election with `{id, url}`. The winner installs its *fence* (election key + create
//! revision) in the [`Store`], so every ledger write it makes compares that key; then it runs
//! a rebalance round per product every period (default 100 ms). If the lease is lost (process
//! paused, partitioned, etcd unreachable) the key disappears, a standby wins, and any write the
//! old leader still attempts fails the fence compare — it notices, drops its fence and
//! campaigns again. A standby carries on from etcd alone: the ledger holds all state.
//!
//! Besides the period, the leader runs a product's round the moment a region publishes a
//! release of it (a watch on the regions' release keys): the units just returned to the pool
//! are granted to the region waiting for them at once, not up to one period later. The watch
//! only makes rounds earlier; a round is safe whenever it runs, and if the watch fails the
//! period carries on alone.

use std::sync::Arc;
use std::time::Duration;

use etcd_client::{EventType, GetOptions, WatchOptions, WatchStream};
use quota_shared::keys::{self, Key};
use tokio_util::sync::CancellationToken;

use crate::error::CoordError;
use crate::escrow::Escrow;
use crate::store::{is_request_timeout, Fence, LeaderValue};

/// The election participant and, while leading, the rebalancer: the one place that decides
/// whether this instance may write the ledger.
pub struct Leader {
    escrow: Arc<Escrow>,
    value: LeaderValue,
    lease_ttl_s: i64,
    period: Duration,
}

impl Leader {
    /// A participant announcing `value`.
    pub fn new(
        escrow: Arc<Escrow>,
        value: LeaderValue,
        lease_ttl_s: i64,
        period: Duration,
    ) -> Self {
        Leader {
            escrow,
            value,
            lease_ttl_s: lease_ttl_s.max(1),
            period,
        }
    }

    /// Campaigns, leads, and campaigns again after losing, until shutdown.
    pub async fn run(self, shutdown: CancellationToken) {
        loop {
            let r = self.term(&shutdown).await;
            self.escrow.store.set_fence(None);
            crate::metrics::leading(None);
            match r {
                Ok(()) => return,
                Err(e) => tracing::warn!(error = %e, "leadership term ended"),
            }
            // The member this instance talked to may be down or cut off from its quorum: the
            // next term runs on a member that answers with a leader.
            self.escrow.store.reconnect().await;
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(Duration::from_millis(300)) => {}
            }
        }
    }

    async fn term(&self, shutdown: &CancellationToken) -> Result<(), CoordError> {
        let mut c = self.escrow.store.client();
        let lease = c.lease_grant(self.lease_ttl_s, None).await?.id();
        let (mut keeper, mut acks) = c.lease_keep_alive(lease).await?;
        let lost = CancellationToken::new();
        let lost2 = lost.clone();
        let every = Duration::from_millis((self.lease_ttl_s * 1000 / 3) as u64);
        let keepalive = tokio::spawn(async move {
            loop {
                tokio::time::sleep(every).await;
                let ok = keeper.keep_alive().await.is_ok()
                    && matches!(
                        tokio::time::timeout(every, acks.message()).await,
                        Ok(Ok(Some(r))) if r.ttl() > 0
                    );
                if !ok {
                    lost2.cancel();
                    return;
                }
            }
        });
        let _stop_keepalive = AbortOnDrop(keepalive);
        let value = serde_json::to_string(&self.value).expect("serialisable");

        let key = loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    let _ = c.lease_revoke(lease).await;
                    return Ok(());
                }
                _ = lost.cancelled() => return Err(CoordError::Unavailable("lease lost while campaigning".into())),
                r = c.campaign(keys::election(), value.clone(), lease) => match r {
                    // Won: leading from this key on (no key in the answer: campaign again).
                    Ok(mut resp) => if let Some(k) = resp.take_leader() {
                        break k;
                    },
                    // The request timeout fires while another instance leads: campaign again
                    // (same lease, same election key).
                    Err(e) if is_request_timeout(&e) => {}
                    Err(e) => return Err(e.into()),
                },
            }
        };
        self.escrow.store.set_fence(Some(Fence {
            key: key.key().to_vec(),
            rev: key.rev(),
        }));
        crate::metrics::leading(Some(key.rev()));
        tracing::info!(id = %self.value.id, "leading");

        let mut tick = tokio::time::interval(self.period);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut releases = watch_releases(&mut c).await;
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    self.escrow.store.set_fence(None);
                    crate::metrics::leading(None);
                    let _ = c.resign(Some(etcd_client::ResignOptions::new().with_leader(key))).await;
                    let _ = c.lease_revoke(lease).await;
                    return Ok(());
                }
                _ = lost.cancelled() => return Err(CoordError::Unavailable("lease lost while leading".into())),
                released = next_release(&mut releases) => match released {
                    Some(products) => {
                        for id in products {
                            self.round(id).await?;
                        }
                    }
                    // The watch ended: rounds keep their period; watch again next tick.
                    None => releases = None,
                },
                _ = tick.tick() => {
                    // Every tick: a new sale gets its first round (and movable stock) at once.
                    let ids = self.escrow.store.product_ids().await?;
                    if releases.is_none() {
                        releases = watch_releases(&mut c).await;
                    }
                    for id in ids {
                        self.round(id).await?;
                    }
                }
            }
        }
    }

    /// One product's round (timed and counted); only a lost leadership ends the term.
    async fn round(&self, id: i64) -> Result<(), CoordError> {
        let started = std::time::Instant::now();
        let done = self.escrow.round(id).await;
        crate::metrics::round(started.elapsed(), done.is_ok());
        match done {
            Ok(_) => Ok(()),
            Err(CoordError::NotLeader) => Err(CoordError::NotLeader),
            Err(e) => {
                tracing::warn!(product_id = id, error = %e, "rebalance round failed");
                Ok(())
            }
        }
    }
}

/// A watch on every region's published releases (`regions/{r}/releases/{p}`), from now on.
/// `None` if it cannot be set up (the period still drives every round).
async fn watch_releases(c: &mut etcd_client::Client) -> Option<WatchStream> {
    let now = c
        .get(
            keys::regions_prefix(),
            Some(GetOptions::new().with_count_only()),
        )
        .await
        .ok()?
        .header()?
        .revision();
    let opts = WatchOptions::new()
        .with_prefix()
        .with_start_revision(now + 1);
    c.watch(keys::regions_prefix(), Some(opts)).await.ok()
}

/// The products whose release a region just published (empty when the events were other
/// region keys: reports, heartbeats); `None` when the watch ended.
async fn next_release(watch: &mut Option<WatchStream>) -> Option<Vec<i64>> {
    let Some(stream) = watch else {
        return std::future::pending().await;
    };
    let resp = stream.message().await.ok()??;
    if resp.canceled() {
        return None;
    }
    let mut products: Vec<i64> = resp
        .events()
        .iter()
        .filter(|e| e.event_type() == EventType::Put)
        .filter_map(|e| match Key::parse_bytes(e.kv()?.key()) {
            Some(Key::RegionRelease { product_id, .. }) => Some(product_id),
            _ => None,
        })
        .collect();
    products.sort_unstable();
    products.dedup();
    Some(products)
}

/// Aborts a task when dropped (the keep-alive of a finished term).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
