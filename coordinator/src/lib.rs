//! The coordinator: keeper of the global quota ledger in etcd, and its admin HTTP API.
//!
//! * [`store`] — reads and writes of the ledger. Every write is one etcd transaction that
//!   compares the revision it read (compare-and-swap), so concurrent writers can never lose
//!   each other's updates or create units.
//! * [`leader`] — leader election; the leader runs a rebalance round per product every 100 ms.
//! * [`round`] — one round as pure functions (ledger read → policy input; moves → new ledger).
//! * [`ops`] — every operation (create, split, policy, restock, end, drain, round, status,
//!   audit) over the store.
//! * [`api`] — the authenticated admin API that `quotactl` talks to; standbys forward writes
//!   to the leader.
//! * [`client`] — the typed HTTP client `quotactl` uses.
//! * [`error`] — the error type and its HTTP mapping.

pub mod api;
pub mod client;
pub mod config;
pub mod error;
pub mod leader;
pub mod ops;
pub mod round;
pub mod store;
pub mod view;
