//! `quotactl`'s library: a typed client of the coordinator's admin API, speaking the
//! [`quota_shared::wire`] contract. The `quotactl` binary is built on it, and tests can drive a
//! coordinator with it without linking the coordinator (or etcd-client, or protoc).

mod client;
mod failover;

pub use client::{AdminClient, ClientError, Tried};
pub use failover::Endpoints;
