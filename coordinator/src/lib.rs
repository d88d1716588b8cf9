//! The coordinator: keeper of the global quota ledger in etcd (the escrow agent of
//! ARCHITECTURE.md), and its admin HTTP API.
//!
//! * `store` — reads and writes of the ledger. Every write is one etcd transaction that
//!   compares the revision it read (compare-and-swap) and this instance's leadership fence, so
//!   concurrent writers can never lose each other's updates or create units.
//! * `snapshot` — [`LedgerSnapshot`] (defined in [`quota_shared::round`], so the simulator
//!   runs the same round), one product's counters (`G`, `R`, reports) at one
//!   revision: what every decision is made from.
//! * `cas` — the one re-read-and-retry loop for compare-and-swap writes and the audit's cut.
//! * `escrow` — [`Escrow`], the operations, split by concern: `lifecycle` (create, split,
//!   policy, restock, end, drain), `rebalance` (the round's I/O and movable stock around the pure
//!   [`quota_shared::round`]),
//!   `status`, `audit` (I/O, pure `verdict`).
//! * `leader` — leader election; the leader runs a rebalance round per product every 100 ms.
//! * `api` — the authenticated admin API that `quotactl` talks to; standbys forward writes
//!   to the leader. Its JSON types are [`quota_shared::wire`].
//! * `openapi` — the admin API's OpenAPI document (`GET /openapi.json`), derived from the
//!   handlers and [`quota_shared::wire`].
//! * `operation` — idempotency keys: a mutating call applied at most once however often it is
//!   sent.
//! * `error` — [`CoordError`] and its HTTP mapping.
//! * `config` — the `coordinator` command line.
//! * `page` — the live sale page (`GET /page/products/{id}`): an HTML shell without data that
//!   reads the auditor-scoped status and audit with a token from its URL fragment.
//! * `metrics` — the Prometheus metrics `GET /metrics` serves (leadership, rounds, moves, etcd
//!   errors, audits, and the ledger read from etcd when scraped).

mod api;
mod audit;
mod cas;
mod config;
mod error;
mod escrow;
mod leader;
mod lifecycle;
mod metrics;
mod openapi;
mod operation;
mod orders;
mod page;
mod rebalance;
mod report;
mod snapshot;
mod status;
mod store;

pub use api::{router, ApiState};
pub use config::{Cli, Command, ServeConfig, SetupEtcdAuthConfig};
pub use error::CoordError;
pub use escrow::Escrow;
pub use leader::Leader;
pub use metrics::install as install_metrics;
pub use snapshot::LedgerSnapshot;
pub use store::{Fence, LeaderValue, Store};
