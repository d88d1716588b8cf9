//! The third-party services a cluster runs on: etcd, Redis and Postgres, each a real binary
//! on free loopback ports with its data under the test directory.

mod etcd;
mod postgres;
mod redis;
mod secured;

pub use self::etcd::{Etcd, EtcdMember};
pub use self::postgres::Postgres;
// `self::` because `redis` is also the Redis client crate.
pub use self::redis::Redis;
pub use self::secured::Secured;
