//! The session's three watches (product specs, this region's grants, its release requests) as
//! one stream: [`Watches::next`] waits on all three and returns the next batch of written keys,
//! after the checks every watch needs (stream closed, cancelled, compacted: the session ends
//! and the next one re-reads everything).

use etcd_client::{Client, EventType, KeyValue, WatchOptions, WatchResponse, WatchStream};
use quota_shared::keys;

use super::error::SyncError;

/// Which watch a batch came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Watched {
    /// `products/` (specs, ledgers, movable stock).
    Products,
    /// `grants/{r}/`.
    Grants,
    /// `release-requests/{r}/`.
    ReleaseRequests,
}

impl Watched {
    fn name(self) -> &'static str {
        match self {
            Watched::Products => "spec",
            Watched::Grants => "grant",
            Watched::ReleaseRequests => "release",
        }
    }
}

/// The three watches of one session.
pub(super) struct Watches {
    products: WatchStream,
    grants: WatchStream,
    release_requests: WatchStream,
}

/// Watches `prefix` from just after revision `after`.
async fn watch(client: &mut Client, prefix: String, after: i64) -> Result<WatchStream, SyncError> {
    Ok(client
        .watch(
            prefix,
            Some(
                WatchOptions::new()
                    .with_prefix()
                    .with_start_revision(after + 1),
            ),
        )
        .await?)
}

impl Watches {
    /// Starts the watches just after the revisions their full reads saw.
    pub(super) async fn start(
        client: &mut Client,
        region: &str,
        products_rev: i64,
        grants_rev: i64,
        release_requests_rev: i64,
    ) -> Result<Watches, SyncError> {
        let release_requests = watch(
            client,
            keys::release_requests_prefix(region),
            release_requests_rev,
        )
        .await?;
        let products = watch(client, keys::products_prefix(), products_rev).await?;
        let grants = watch(client, keys::grants_prefix(region), grants_rev).await?;
        Ok(Watches {
            products,
            grants,
            release_requests,
        })
    }

    /// The next batch of keys written (puts only; deletes mean nothing to a region), and the
    /// watch it came from.
    pub(super) async fn next(&mut self) -> Result<(Watched, Vec<KeyValue>), SyncError> {
        let (from, message) = tokio::select! {
            m = self.products.message() => (Watched::Products, m),
            m = self.grants.message() => (Watched::Grants, m),
            m = self.release_requests.message() => (Watched::ReleaseRequests, m),
        };
        let resp = message?
            .ok_or_else(|| SyncError::WatchEnded(format!("{} stream closed", from.name())))?;
        Ok((from, puts(from, &resp)?))
    }
}

/// The keys a watch response wrote, or why the watch is over.
fn puts(from: Watched, resp: &WatchResponse) -> Result<Vec<KeyValue>, SyncError> {
    if resp.canceled() || resp.compact_revision() > 0 {
        return Err(SyncError::WatchEnded(format!(
            "{} watch cancelled: {}",
            from.name(),
            resp.cancel_reason()
        )));
    }
    Ok(resp
        .events()
        .iter()
        .filter(|ev| ev.event_type() == EventType::Put)
        .filter_map(|ev| ev.kv().cloned())
        .collect())
}
