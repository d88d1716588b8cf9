//! One link's live state: the knobs tests and the control API turn, and its counters.
//!
//! Latency and jitter are atomics read once per chunk. The mode is a `watch` channel so that
//! every open connection can *wait* for it to become `Reset` and tear itself down at once.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use rand::Rng;
use serde::Serialize;
use tokio::sync::watch;

use crate::link::{Link, Mode};

/// Shared by a link's listener, its connections and the control API (behind an `Arc`).
#[derive(Debug)]
pub struct LinkControl {
    /// The link's id, for routing control requests.
    pub id: String,
    /// The bound listen address; clients (and tests) connect here.
    pub listen: SocketAddr,
    /// Where connections are forwarded.
    pub upstream: SocketAddr,
    latency_ms: AtomicU64,
    jitter_ms: AtomicU64,
    mode: watch::Sender<Mode>,
    /// Connections currently open; read by `GET /links`.
    pub connections: AtomicU64,
    /// Bytes delivered client → upstream.
    pub bytes_up: AtomicU64,
    /// Bytes delivered upstream → client.
    pub bytes_down: AtomicU64,
}

/// A point-in-time view of one link, as `GET /links` returns it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct LinkStatus {
    /// The link's id.
    pub id: String,
    /// Where it listens (the bound address).
    pub listen: SocketAddr,
    /// Where it forwards.
    pub upstream: SocketAddr,
    /// Current one-way latency.
    pub latency_ms: u64,
    /// Current ± jitter.
    pub jitter_ms: u64,
    /// Current fault mode.
    pub mode: Mode,
    /// Open connections.
    pub connections: u64,
    /// Bytes delivered client → upstream.
    pub bytes_up: u64,
    /// Bytes delivered upstream → client.
    pub bytes_down: u64,
}

impl LinkControl {
    /// Starts a link's live state from its config (with `listen` already bound).
    pub fn new(link: &Link) -> Self {
        LinkControl {
            id: link.id.clone(),
            listen: link.listen,
            upstream: link.upstream,
            latency_ms: AtomicU64::new(link.latency_ms),
            jitter_ms: AtomicU64::new(link.jitter_ms),
            mode: watch::Sender::new(link.mode),
            connections: AtomicU64::new(0),
            bytes_up: AtomicU64::new(0),
            bytes_down: AtomicU64::new(0),
        }
    }

    /// Changes the one-way latency for chunks read from now on.
    pub fn set_latency_ms(&self, ms: u64) {
        self.latency_ms.store(ms, Relaxed);
    }

    /// Changes the ± jitter for chunks read from now on.
    pub fn set_jitter_ms(&self, ms: u64) {
        self.jitter_ms.store(ms, Relaxed);
    }

    /// Switches the fault mode; `Reset` also tears down every open connection.
    pub fn set_mode(&self, mode: Mode) {
        self.mode.send_replace(mode);
        tracing::info!(link = %self.id, ?mode, "mode changed");
    }

    /// The current fault mode.
    pub fn mode(&self) -> Mode {
        *self.mode.borrow()
    }

    /// A receiver that connections await to learn of a switch to `Reset`.
    pub fn watch_mode(&self) -> watch::Receiver<Mode> {
        self.mode.subscribe()
    }

    /// One sample of the delay for a chunk: latency ± uniform jitter, floored at zero.
    pub fn sample_delay(&self) -> Duration {
        let (lat, jit) = (self.latency_ms.load(Relaxed), self.jitter_ms.load(Relaxed));
        let ms = if jit == 0 {
            lat
        } else {
            rand::rng().random_range(lat.saturating_sub(jit)..=lat + jit)
        };
        Duration::from_millis(ms)
    }

    /// A snapshot for the control API.
    pub fn status(&self) -> LinkStatus {
        LinkStatus {
            id: self.id.clone(),
            listen: self.listen,
            upstream: self.upstream,
            latency_ms: self.latency_ms.load(Relaxed),
            jitter_ms: self.jitter_ms.load(Relaxed),
            mode: self.mode(),
            connections: self.connections.load(Relaxed),
            bytes_up: self.bytes_up.load(Relaxed),
            bytes_down: self.bytes_down.load(Relaxed),
        }
    }
}
