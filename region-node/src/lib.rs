//! A region node: one region's flash-sale service.
//!
//! A purchase passes the defences in order, cheapest first, and each one only ever *refuses*:
//!
//! 1. `ratelimit` — a global token bucket, then per-IP and per-user buckets (governor).
//! 2. `catalog` — the in-process product catalog: an unknown id is answered 404 without
//!    touching Redis or Postgres; the sale window and the availability rule
//!    ([`quota_shared::availability`]: open, 503 awaiting stock, 410 sold out) are checked here
//!    too.
//! 3. `stock` — one Redis Lua script checks the per-user limit and pre-decrements stock,
//!    recording an in-flight *ticket* (fast fail for the ~99 % who cannot win).
//! 4. `db` — one Postgres statement (`quota_purchase`): order row + conditional update of the
//!    region's quota row. This is the truth; its CHECK constraint makes oversell impossible.
//!
//! Which of those run is the purchase strategy (`strategy`, parsed once into a purchaser).
//! Background tasks keep the filters honest: `reconcile` re-derives Redis from Postgres every
//! 100 ms (rebuilding it after a flush), and `etcd_sync` applies the coordinator's grants
//! (`g := max(g, G)`), handles release requests exactly once (`release`), reports sold,
//! available and demand every 100 ms, and keeps the region's leased heartbeat; `outbox`
//! delivers the region's order events to a webhook (result notification).
//! [`RegionNode`] wires them around the shared `state::AppState`.
//!
//! Module floors (each imports only from floors below it, so there is no import circle):
//! `error`, `db`, `stock`, `metrics`, `config`, `waitroom` → `ratelimit`, `catalog`, `batch`,
//! `strategy` →
//! `state` → `purchase`, `reconcile`, `release`, `etcd_sync`, `outbox`, `http` → `server`.

mod attempts;
mod backends;
mod batch;
mod catalog;
mod config;
mod db;
mod error;
mod etcd_sync;
mod expiry;
mod failpoint;
mod http;
mod metrics;
mod outbox;
mod purchase;
mod ratelimit;
mod reconcile;
mod release;
mod server;
mod state;
mod stock;
mod strategy;
mod waitroom;

pub use backends::{PgArgs, RedisArgs};
pub use config::{Cli, Command, MigrateConfig, ServeConfig};
pub use db::{DbError, Isolation};
pub use metrics::install as install_metrics;
pub use outbox::WebhookArgs;
pub use server::{migrate, NodeError, RegionNode};
pub use stock::StockError;
pub use strategy::PurchaseStrategy;
