//! [`Proxy`]: binds every link's listener up front (so callers learn real ports before traffic),
//! then accepts on all of them, one task per connection, until shutdown.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::conn;
use crate::control::LinkControl;
use crate::link::Link;

/// Why a proxy could not start.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    /// Two links share an id, so the control API could not tell them apart.
    #[error("duplicate link id {0:?}")]
    DuplicateId(String),
    /// A listen address is taken or not ours.
    #[error("link {id:?}: listening on {addr}: {source}")]
    Bind {
        /// The link's id.
        id: String,
        /// The address that failed.
        addr: SocketAddr,
        /// The OS error.
        source: io::Error,
    },
}

/// Several links served at once; keep [`Proxy::controls`] to steer them while it runs.
#[derive(Debug)]
pub struct Proxy {
    links: Vec<(TcpListener, Arc<LinkControl>)>,
}

impl Proxy {
    /// Binds every link's listener (port 0 picks a free port, reported by [`LinkControl::listen`]).
    pub async fn bind(links: Vec<Link>) -> Result<Self, ProxyError> {
        let mut bound: Vec<(TcpListener, Arc<LinkControl>)> = Vec::with_capacity(links.len());
        for mut link in links {
            if bound.iter().any(|(_, c)| c.id == link.id) {
                return Err(ProxyError::DuplicateId(link.id));
            }
            let bind_err = |source| ProxyError::Bind {
                id: link.id.clone(),
                addr: link.listen,
                source,
            };
            let listener = TcpListener::bind(link.listen).await.map_err(bind_err)?;
            link.listen = listener.local_addr().map_err(bind_err)?;
            bound.push((listener, Arc::new(LinkControl::new(&link))));
        }
        Ok(Proxy { links: bound })
    }

    /// Every link's control handle, in the order given to [`Proxy::bind`].
    pub fn controls(&self) -> Vec<Arc<LinkControl>> {
        self.links.iter().map(|(_, c)| Arc::clone(c)).collect()
    }

    /// Serves until `shutdown`, then waits for every connection task to close its sockets.
    pub async fn run(self, shutdown: CancellationToken) {
        let tracker = TaskTracker::new();
        for (listener, ctl) in self.links {
            tracker.spawn(accept_loop(
                listener,
                ctl,
                shutdown.clone(),
                tracker.clone(),
            ));
        }
        tracker.close();
        tracker.wait().await;
    }
}

/// Accepts on one link; a failed accept (e.g. out of file descriptors) backs off briefly.
async fn accept_loop(
    listener: TcpListener,
    ctl: Arc<LinkControl>,
    shutdown: CancellationToken,
    tracker: TaskTracker,
) {
    tracing::info!(link = &*ctl.id, listen = %ctl.listen, upstream = %ctl.upstream, "link up");
    loop {
        tokio::select! {
            r = listener.accept() => match r {
                Ok((stream, _)) => {
                    tracker.spawn(conn::serve(stream, Arc::clone(&ctl), shutdown.clone()));
                }
                Err(e) => {
                    tracing::warn!(link = &*ctl.id, error = %e, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            },
            _ = shutdown.cancelled() => return,
        }
    }
}
