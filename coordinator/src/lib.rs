//! The coordinator: keeper of the global quota ledger in etcd, and its admin HTTP API.
//!
//! * [`store`] — reads and writes of the ledger. Every write is one etcd transaction that
//!   compares the revision it read (compare-and-swap), so concurrent writers can never lose
//!   each other's updates or create units.
//! * [`api`] — the authenticated admin API that `quotactl` talks to.
//! * [`client`] — the typed HTTP client `quotactl` uses.
//! * [`error`] — the error type and its HTTP mapping.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod store;
pub mod view;
