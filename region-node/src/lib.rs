//! A region node: one region's flash-sale service.
//!
//! A purchase passes the defences in order, cheapest first, and each one only ever *refuses*:
//!
//! 1. [`ratelimit`] — a global token bucket, then per-IP and per-user buckets (governor).
//! 2. [`catalog`] — the in-process product catalog: an unknown id is answered 404 without
//!    touching Redis or Postgres; the sale window and a sold-out flag are checked here too.
//! 3. [`stock`] — one Redis Lua script checks the per-user limit and pre-decrements stock,
//!    recording an in-flight *ticket* (fast fail for the ~99 % who cannot win).
//! 4. [`db`] — one Postgres statement (`quota_purchase`): order row + conditional update of the
//!    region's quota row. This is the truth; its CHECK constraint makes oversell impossible.
//!
//! Background tasks keep the filters honest: [`reconcile`] re-derives Redis from Postgres every
//! 100 ms (rebuilding it after a flush), and [`etcd_sync`] applies the coordinator's grants
//! (`g := max(g, G)`), handles release requests exactly once ([`release`]), reports sold,
//! available and demand every 100 ms, and keeps the region's leased heartbeat. [`server::RegionNode`] wires them.

pub mod batch;
pub mod catalog;
pub mod config;
pub mod db;
pub mod error;
pub mod etcd_sync;
pub mod http;
pub mod metrics;
pub mod migrate;
pub mod purchase;
pub mod ratelimit;
pub mod reconcile;
pub mod release;
pub mod server;
pub mod stock;
pub mod strategy;
