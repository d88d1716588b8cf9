//! `quota-proxy`: a user-space TCP proxy that puts distance and faults between regions.
//!
//! Kernel netem is not available everywhere tests run, so cross-region links are modelled here:
//!
//! * `link` — a [`Link`]'s static config (`id=…,listen=…,upstream=…,latency_ms=…`) and
//!   the fault [`Mode`]s: `pass`, `blackhole` (a partition: bytes vanish), `reset` (RST).
//! * `control` — [`LinkControl`], one link's live knobs (atomics + a watch of the mode) and
//!   counters, shared by its listener, every connection on it, and the control API.
//! * `conn` — one proxied connection: per direction a reader stamps each chunk with
//!   `deliver_at = max(previous, now + latency ± jitter)` and a writer sleeps until then, so
//!   delay applies per chunk and jitter never reorders bytes.
//! * `proxy` — [`Proxy`]: binds every link, accepts, spawns one task per connection.
//! * `api` — the control HTTP API (`GET /links`, `PUT /links/{id}`, `GET /healthz`).

mod api;
mod conn;
mod control;
mod link;
mod proxy;

pub use api::router as control_router;
pub use control::{LinkControl, LinkStatus};
pub use link::{Link, LinkParseError, Mode};
pub use proxy::{Proxy, ProxyError};
