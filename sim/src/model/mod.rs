//! The modelled parts of the world: the network, etcd, the leader coordinator and the
//! regions. Each handles its own events; they talk only through messages on the queue.

pub(crate) mod coordinator;
pub(crate) mod etcd;
pub(crate) mod net;
pub(crate) mod region;
