//! [`LedgerSnapshot`]: one product's escrow counters as etcd holds them, read in one
//! transaction. Every decision of the coordinator (a rebalance round, a status, the audit's
//! ledger side) is a pure function of one snapshot. The type lives in
//! [`quota_shared::round`] so that the simulator runs the same round on the same data; it is
//! re-exported here under the coordinator's name for it.

pub use quota_shared::round::LedgerSnapshot;

/// The shared test snapshot (total 120, `G` east = north = 50, pool 20, south silent).
#[cfg(test)]
pub(crate) mod fixture {
    pub(crate) use quota_shared::round::fixture::snapshot;
}
