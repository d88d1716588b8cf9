//! The region's link to the global ledger in etcd.
//!
//! One session: connect to one etcd member of a quorum → register (`regions/{r}/info`) → leased heartbeat
//! (`regions/{r}/alive/{process}`) → full read of every product spec and of this region's grants →
//! watch both prefixes from the revision after the read. Any error (etcd down, watch cancelled
//! or compacted, lease lost) ends the session; the next one starts with a full re-read, so an
//! event missed while disconnected is never lost. Applying is idempotent (`g := max(g, G)`,
//! spec upsert), so reading the same event twice is harmless.
//!
//! While etcd is unreachable the region keeps selling what its Postgres says it holds; it just
//! receives no new quota.
//!
//! | file | concern |
//! |---|---|
//! | this one | the session: connect, register, full read, the event loop |
//! | [`error`] | why a session ended |
//! | [`heartbeat`] | the lease kept alive on its own task |
//! | [`watch`] | the three watches as one stream of typed keys |
//! | [`apply`] | what each key means here: spec, movable stock, grant `G`, release request |
//! | [`releases`] | pending release requests, handled and published as `R` |
//! | [`report`] | the per-product report and its demand estimate |

mod apply;
mod error;
mod heartbeat;
mod releases;
mod report;
mod watch;

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use etcd_client::{Client, GetOptions, KeyValue, PutOptions};
use quota_etcd::Members;
use quota_shared::keys::{self, Key};
use quota_shared::model::RegionInfo;
use tokio_util::sync::CancellationToken;

use crate::release;
use crate::state::AppState;
use apply::apply;
use error::SyncError;
use heartbeat::Heartbeat;
use releases::{handle_releases, Pending};
use report::{report, Reporter};
use watch::{Watched, Watches};

/// How often the region reports to the coordinator and retries pending releases.
const REPORT_EVERY: Duration = Duration::from_millis(100);

/// The background task keeping the region in sync with etcd.
pub(crate) struct EtcdSync {
    st: Arc<AppState>,
    /// The etcd members; each session runs on one of them.
    members: Members,
    lease_ttl_s: i64,
    public_url: String,
    /// This node process's name within the region (several may serve one region).
    process: String,
}

impl EtcdSync {
    /// A syncer for the node's region.
    pub(crate) fn new(
        st: Arc<AppState>,
        members: Members,
        lease_ttl_s: i64,
        public_url: String,
        process: String,
    ) -> Self {
        EtcdSync {
            st,
            members,
            lease_ttl_s: lease_ttl_s.max(1),
            public_url,
            process,
        }
    }

    /// Runs sessions until shutdown, backing off between failed ones (0.2 s doubling to 3 s).
    pub(crate) async fn run(self, shutdown: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            let result = tokio::select! {
                () = shutdown.cancelled() => return,
                r = self.session(&shutdown) => r,
            };
            // A session that got as far as connected was healthy: the next one starts quickly
            // (on the next member) instead of after the backoff earlier failures built up.
            if self.st.etcd_connected.swap(false, Ordering::Relaxed) {
                backoff = Duration::from_millis(200);
            }
            match result {
                Ok(()) => return,
                Err(e) => {
                    metrics::counter!("quota_dependency_errors_total", "dependency" => "etcd")
                        .increment(1);
                    tracing::warn!(error = %e, retry_in = ?backoff, "etcd session ended");
                }
            }
            tokio::select! {
                () = shutdown.cancelled() => return,
                () = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(3));
        }
    }

    /// Registers the region and takes this process's leased heartbeat (under its own name, so
    /// another process of the region ending never deletes it); returns the lease id.
    async fn register(&self, client: &mut Client) -> Result<i64, SyncError> {
        let region = &self.st.region;
        let info = RegionInfo {
            region: region.clone(),
            url: self.public_url.clone(),
        };
        let info_json = serde_json::to_string(&info).expect("serialisable");
        client
            .put(keys::region_info(region), info_json, None)
            .await?;
        let lease = client.lease_grant(self.lease_ttl_s, None).await?.id();
        client
            .put(
                keys::region_alive(region, &self.process),
                self.public_url.clone(),
                Some(PutOptions::new().with_lease(lease)),
            )
            .await?;
        Ok(lease)
    }

    /// Reads every key under `prefix` and applies it; returns the revision of the read (the
    /// watch starts just after it).
    async fn read_all(
        &self,
        client: &mut Client,
        prefix: String,
        pending: &mut Pending,
    ) -> Result<i64, SyncError> {
        let resp = client
            .get(prefix, Some(GetOptions::new().with_prefix()))
            .await?;
        let rev = resp
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        let mut kvs: Vec<KeyValue> = resp.kvs().to_vec();
        // Specs first: a product's movable stock (and grants) mean something only once the
        // product is in the catalog, and keys sort `…/movable` before `…/spec`.
        kvs.sort_by_key(|kv| !matches!(Key::parse_bytes(kv.key()), Some(Key::ProductSpec(_))));
        for kv in &kvs {
            self.st
                .db
                .bounded(apply(&self.st, client, kv, pending))
                .await?;
        }
        Ok(rev)
    }

    async fn session(&self, shutdown: &CancellationToken) -> Result<(), SyncError> {
        let region = self.st.region.clone();
        // One member of a quorum; when it fails, the session ends and the next one runs on
        // another member.
        let connected = self.members.connect().await?;
        let mut client = connected.client;
        let lease = self.register(&mut client).await?;
        let every = Duration::from_millis(u64::try_from(self.lease_ttl_s * 1000 / 3).unwrap_or(1));
        let mut heartbeat = Heartbeat::start(&mut client, lease, every).await?;

        // Full read, then watch from just after it.
        let mut pending = Pending::default();
        let specs_rev = self
            .read_all(&mut client, keys::products_prefix(), &mut pending)
            .await?;
        let grants_rev = self
            .read_all(&mut client, keys::grants_prefix(&region), &mut pending)
            .await?;
        // Releases: re-publish R from Postgres (a crash may have left it unpublished), then
        // pick up every outstanding request.
        for product_id in self.st.catalog.ids() {
            release::publish_released_locally(&self.st, &mut client, product_id).await?;
        }
        let reqs_rev = self
            .read_all(
                &mut client,
                keys::release_requests_prefix(&region),
                &mut pending,
            )
            .await?;
        let mut watches =
            Watches::start(&mut client, &region, specs_rev, grants_rev, reqs_rev).await?;
        self.st.etcd_connected.store(true, Ordering::Relaxed);
        tracing::info!(region, lease, member = %connected.member, "connected to etcd");

        let mut tick = tokio::time::interval(REPORT_EVERY);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut demand = HashMap::new();
        loop {
            tokio::select! {
                () = shutdown.cancelled() => {
                    // Tell the coordinator at once that this region is going away.
                    let _ = client.lease_revoke(lease).await;
                    return Ok(());
                }
                stopped = heartbeat.stopped() => return Err(stopped),
                batch = watches.next() => {
                    let (from, kvs) = batch?;
                    for kv in &kvs {
                        // Bounded: a Postgres that never answers ends the session (the next
                        // one re-reads everything) instead of stalling it for good.
                        let st = &self.st;
                        st.db.bounded(apply(st, &mut client, kv, &mut pending)).await?;
                    }
                    if from == Watched::ReleaseRequests {
                        handle_releases(&self.st, &mut client, &mut pending).await?;
                    }
                }
                _ = tick.tick() => {
                    handle_releases(&self.st, &mut client, &mut pending).await?;
                    let to = Reporter { lease, process: &self.process };
                    report(&self.st, &mut client, &to, &pending, &mut demand).await?;
                }
            }
        }
    }
}
