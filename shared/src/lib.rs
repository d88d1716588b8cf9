//! Everything more than one quota process must agree on.
//!
//! * [`keys`] — the etcd key schema, and which process may write each key.
//! * [`model`] — the JSON documents stored under those keys (product spec, ledger, region info).
//! * [`order`] — an order's life after the click: the allowed changes, which give units back.
//! * [`ledger`] — pure arithmetic over the global ledger: pool, split validation, the
//!   conservation identity the audit checks.
//! * [`admission`] — the pure request checks a region applies before touching Redis.
//! * [`availability`] — the one rule deciding "open", "awaiting stock" (503) or "sold out" (410).
//! * [`demand`] — the demand EWMA a region reports (purchase attempts per second).
//! * [`reconcile`] — the pure arithmetic that re-derives Redis admission stock from Postgres.
//! * [`policy`] — the pure rebalance policy: which grants and releases the coordinator issues.
//! * [`round`] — one rebalance round over a ledger snapshot (the coordinator's and the
//!   simulator's).
//! * [`region_steps`] — a region's grant-apply and release decisions (the region node's and the
//!   simulator's).
//! * [`quality`] — one definition of every sale-quality measure (loadgen and simulator).
//! * [`config`] — config-file loading shared by every binary (`--config FILE`).
//! * [`buyers`] — the buyer model (arrivals, region choice, retries) of loadgen and simulator.
//! * [`api`] — the JSON error envelope every HTTP service answers with.
//! * [`admin_auth`] — admin bearer tokens, their scopes (operator, auditor, region-admin) and
//!   the one check the coordinator and the region node make (and the token files they read).
//! * [`wire`] — the typed HTTP contract between region nodes, coordinator, quotactl, loadgen;
//!   [`price`] — how a price travels in it.
//! * [`openapi`] — what the two services' OpenAPI documents share (error envelope, headers,
//!   security schemes).
//! * [`webhook`] — how a region signs the order events it delivers, and how a receiver checks
//!   the signature.
//!
//! Nothing here does I/O beyond reading a file it is handed (a config file, a token file), so
//! all of it is unit- and property-tested without servers.

pub mod admin_auth;
pub mod admission;
pub mod api;
pub mod availability;
pub mod buyers;
pub mod config;
pub mod demand;
mod error;
pub mod keys;
pub mod ledger;
pub mod model;
pub mod openapi;
pub mod order;
pub mod policy;
pub mod price;
pub mod quality;
pub mod reconcile;
pub mod region_steps;
pub mod round;
pub mod secret;
pub mod shutdown;
pub mod telemetry;
pub mod webhook;
pub mod wire;

pub use error::Invalid;
