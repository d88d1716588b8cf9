//! The project's own binaries as test processes: `region-node`, `coordinator` and
//! `quota-proxy` (built by `cargo build --bins`, found by [`crate::bin_path`]).

mod coordinator;
mod node;
mod proxy;

// `self::` because `coordinator` is also the coordinator library crate.
pub use self::coordinator::Coordinator;
pub use self::node::{Node, NodeBackends};
pub use self::proxy::Proxy;
