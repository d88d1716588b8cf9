//! The ledger in etcd: reads, and fenced compare-and-swap writes.
//!
//! Every write is one etcd transaction with two guards:
//!
//! * **CAS** — the ledger's `mod_revision` is still the one read (creation: the spec key does
//!   not exist yet), so concurrent writers never lose each other's updates;
//! * **fence** — this instance's election key still exists with the revision it won with, so a
//!   deposed or paused leader (its lease expired, another instance leads) can never write.
//!
//! Because `R` (region releases) only grows, a pool computed from a stale `R` only looks
//! smaller: a write based on old data can never create a unit.
//!
//! Reads that parse etcd keys live in [`read`](self::read); the gRPC answers treated as normal
//! (no leader yet, request timeout) in [`grpc`](self::grpc).

mod grpc;
mod read;

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use etcd_client::{Client, Compare, CompareOp, GetOptions, PutOptions, Txn, TxnOp};
use quota_etcd::{EtcdOptions, Members};
use quota_shared::keys;
use quota_shared::model::{Ledger, Movable, OperationRecord, ProductSpec, ReleaseRequest};
use quota_shared::round::initial_movable;
use quota_shared::wire::{HomeRegions, IdempotencyKey};

use crate::error::CoordError;
use crate::operation::Operation;
use crate::snapshot::LedgerSnapshot;

/// How long an operation record is kept: long enough for any rerun of a timed-out command,
/// short enough that the records do not pile up.
const OPERATION_TTL_S: i64 = 24 * 3600;

pub(crate) use grpc::is_request_timeout;

/// What a leader announces in the election: who it is and where its admin API listens, so a
/// standby can forward writes to it.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize, PartialEq, Eq)]
pub struct LeaderValue {
    /// Instance id.
    pub id: String,
    /// Admin API base URL (writes are forwarded there).
    pub url: String,
}

/// This instance's proof of leadership: the election key and the revision it was created at.
/// Every write compares it, so a deposed leader's writes fail in etcd itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    /// The election key (`{election}/{lease id}`).
    pub key: Vec<u8>,
    /// Its create revision.
    pub rev: i64,
}

/// The coordinator's handle on etcd: the only code that reads or writes the ledger.
///
/// It talks to one etcd member at a time ([`Members`]); when a leadership term ends on an
/// error, [`Store::reconnect`] moves it to the next member of a quorum.
#[derive(Clone)]
pub struct Store {
    members: Arc<Members>,
    client: Arc<RwLock<Client>>,
    fence: Arc<RwLock<Option<Fence>>>,
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("ledger documents serialise")
}

impl Store {
    /// Connects to a member of `endpoints` that is part of a quorum; if none is, starts on the
    /// first one anyway (the coordinator serves and campaigns while etcd is down, and moves to
    /// a live member when its first term fails).
    pub async fn connect(endpoints: &[String], options: EtcdOptions) -> Result<Store, CoordError> {
        let members = Members::new(endpoints.to_vec(), options)
            .map_err(|e| CoordError::Unavailable(e.to_string()))?;
        let connected = match members.connect().await {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "no etcd member answers yet");
                members.connect_lazily().await?
            }
        };
        tracing::info!(member = %connected.member, "etcd member");
        Ok(Store {
            members: Arc::new(members),
            client: Arc::new(RwLock::new(connected.client)),
            fence: Arc::new(RwLock::new(None)),
        })
    }

    /// Moves to the next etcd member that is part of a quorum (keeps the current client if
    /// none is).
    pub async fn reconnect(&self) {
        match self.members.connect().await {
            Ok(c) => {
                tracing::info!(member = %c.member, "etcd member");
                *self.client.write().expect("client lock poisoned") = c.client;
            }
            Err(e) => tracing::warn!(error = %e, "no etcd member to move to"),
        }
    }

    /// A clone of the etcd client (cheap: a handle on one connection).
    pub fn client(&self) -> Client {
        self.client.read().expect("client lock poisoned").clone()
    }

    /// Installs (on winning the election) or clears (on losing it) this instance's fence.
    pub fn set_fence(&self, fence: Option<Fence>) {
        *self.fence.write().expect("fence lock poisoned") = fence;
    }

    /// Whether this instance currently leads.
    pub fn is_leader(&self) -> bool {
        self.fence.read().expect("fence lock poisoned").is_some()
    }

    /// The leader's election value, if any instance leads.
    async fn leader_value(&self) -> Result<Option<LeaderValue>, CoordError> {
        let mut c = self.client();
        match c.leader(keys::election()).await {
            Ok(resp) => Ok(resp
                .kv()
                .and_then(|kv| serde_json::from_slice(kv.value()).ok())),
            Err(e) if grpc::is_no_leader(&e) => Ok(None),
            Err(e) => Err(e.into()),
        }
    }

    /// The leader's admin URL, if any instance leads.
    pub(crate) async fn leader_url(&self) -> Result<Option<String>, CoordError> {
        Ok(self.leader_value().await?.map(|v| v.url))
    }

    /// The leader's id, if any instance leads.
    pub(crate) async fn leader_id(&self) -> Result<Option<String>, CoordError> {
        Ok(self.leader_value().await?.map(|v| v.id))
    }

    /// Whether etcd answers.
    pub(crate) async fn ping(&self) -> Result<(), CoordError> {
        let mut c = self.client();
        c.get(keys::ROOT, Some(GetOptions::new().with_count_only()))
            .await?;
        Ok(())
    }

    /// Runs a write transaction guarded by `cmps` plus the fence. `Ok(false)` when the CAS
    /// lost (re-read and retry); `Err(NotLeader)` when the fence failed.
    async fn fenced_txn(
        &self,
        mut cmps: Vec<Compare>,
        ops: Vec<TxnOp>,
    ) -> Result<bool, CoordError> {
        let fence = self
            .fence
            .read()
            .expect("fence lock poisoned")
            .clone()
            .ok_or(CoordError::NotLeader)?;
        cmps.push(Compare::create_revision(
            fence.key.clone(),
            CompareOp::Equal,
            fence.rev,
        ));
        let mut c = self.client();
        if c.txn(Txn::new().when(cmps).and_then(ops))
            .await?
            .succeeded()
        {
            return Ok(true);
        }
        // Which guard failed? If our election key is gone or was re-created, we are deposed.
        let resp = c.get(fence.key.clone(), None).await?;
        match resp.kvs().first() {
            Some(kv) if kv.create_revision() == fence.rev => Ok(false),
            _ => {
                tracing::warn!("fenced write rejected: this instance no longer leads");
                self.set_fence(None);
                Err(CoordError::NotLeader)
            }
        }
    }

    /// The record of the keyed operation `key`, if one was applied (and has not expired).
    pub(crate) async fn operation(
        &self,
        key: &IdempotencyKey,
    ) -> Result<Option<OperationRecord>, CoordError> {
        let mut c = self.client();
        let resp = c.get(keys::operation(key.as_str()), None).await?;
        resp.kvs()
            .first()
            .map(|kv| {
                serde_json::from_slice(kv.value()).map_err(|e| {
                    CoordError::Internal(format!("unreadable operation record {key}: {e}"))
                })
            })
            .transpose()
    }

    /// The guard and the write that record `op` in a transaction: the key must not exist yet
    /// (a concurrent replay that won makes this transaction fail, and the retry finds its
    /// record), and it is written on a lease of [`OPERATION_TTL_S`].
    async fn operation_txn(
        &self,
        op: Option<&Operation>,
    ) -> Result<(Vec<Compare>, Vec<TxnOp>), CoordError> {
        let Some(op) = op else {
            return Ok((Vec::new(), Vec::new()));
        };
        let key = keys::operation(op.key.as_str());
        let mut c = self.client();
        let lease = c.lease_grant(OPERATION_TTL_S, None).await?.id();
        Ok((
            vec![Compare::version(key.clone(), CompareOp::Equal, 0)],
            vec![TxnOp::put(
                key,
                to_json(&op.record()),
                Some(PutOptions::new().with_lease(lease)),
            )],
        ))
    }

    /// Creates a product with its ledger (and initial grants), atomically.
    pub async fn create(&self, spec: &ProductSpec, ledger: &Ledger) -> Result<(), CoordError> {
        let now_ms = chrono::Utc::now().timestamp_millis();
        self.create_keyed(spec, ledger, None, now_ms).await
    }

    /// [`Store::create`] with the record of `op`, when the call is keyed, and the initial
    /// movable stock stamped `now_ms`.
    pub(crate) async fn create_keyed(
        &self,
        spec: &ProductSpec,
        ledger: &Ledger,
        op: Option<&Operation>,
        now_ms: i64,
    ) -> Result<(), CoordError> {
        let p = spec.product_id;
        let (mut cmps, mut ops) = self.operation_txn(op).await?;
        ops.extend([
            TxnOp::put(keys::product_spec(p), to_json(spec), None),
            TxnOp::put(keys::product_ledger(p), to_json(ledger), None),
        ]);
        for (r, g) in &ledger.granted {
            ops.push(TxnOp::put(keys::grant(r, p), g.to_string(), None));
        }
        let movable = initial_movable(ledger, now_ms);
        ops.push(TxnOp::put(
            keys::product_movable(p),
            to_json(&movable),
            None,
        ));
        cmps.push(Compare::create_revision(
            keys::product_spec(p),
            CompareOp::Equal,
            0,
        ));
        if !self.fenced_txn(cmps, ops).await? {
            return Err(CoordError::Conflict(format!("product {p} already exists")));
        }
        tracing::info!(product_id = p, total = spec.total, "product created");
        Ok(())
    }

    /// Writes a new ledger (and spec, if changed), the grants `G` that grew, and new release
    /// requests, iff the ledger is unchanged since `snap` (`Ok(false)` otherwise). Grants
    /// never shrink: a lower `G` is a bug and is refused.
    pub async fn write(
        &self,
        snap: &LedgerSnapshot,
        ledger: &Ledger,
        spec: Option<&ProductSpec>,
        requests: &BTreeMap<String, ReleaseRequest>,
    ) -> Result<bool, CoordError> {
        self.write_keyed(snap, ledger, spec, requests, None).await
    }

    /// [`Store::write`] with the record of `op` when the call is keyed (`Ok(false)` too if that
    /// record appeared meanwhile: the retry finds it and answers as a replay).
    pub(crate) async fn write_keyed(
        &self,
        snap: &LedgerSnapshot,
        ledger: &Ledger,
        spec: Option<&ProductSpec>,
        requests: &BTreeMap<String, ReleaseRequest>,
        op: Option<&Operation>,
    ) -> Result<bool, CoordError> {
        let p = snap.spec.product_id;
        let (mut cmps, mut ops) = self.operation_txn(op).await?;
        for (r, g) in &ledger.granted {
            let old = snap.grant(r);
            if *g < old {
                return Err(CoordError::Internal(format!(
                    "refusing to lower {r}'s grant from {old} to {g}"
                )));
            }
            if *g != old {
                ops.push(TxnOp::put(keys::grant(r, p), g.to_string(), None));
            }
        }
        for (r, req) in requests {
            ops.push(TxnOp::put(keys::release_request(r, p), to_json(req), None));
        }
        if let Some(spec) = spec {
            ops.push(TxnOp::put(keys::product_spec(p), to_json(spec), None));
        }
        ops.push(TxnOp::put(keys::product_ledger(p), to_json(ledger), None));
        cmps.push(Compare::mod_revision(
            keys::product_ledger(p),
            CompareOp::Equal,
            snap.revision,
        ));
        self.fenced_txn(cmps, ops).await
    }

    /// Publishes what could still move to each region (fenced; no CAS: last writer wins and
    /// only the leader writes).
    pub(crate) async fn put_movable(&self, product_id: i64, m: &Movable) -> Result<(), CoordError> {
        let put = TxnOp::put(keys::product_movable(product_id), to_json(m), None);
        self.fenced_txn(vec![], vec![put]).await?;
        Ok(())
    }

    /// The deployment's home-region list (empty when never set).
    pub(crate) async fn home_regions(&self) -> Result<HomeRegions, CoordError> {
        let mut c = self.client();
        let resp = c.get(keys::home_regions(), None).await?;
        resp.kvs()
            .first()
            .map(|kv| {
                serde_json::from_slice(kv.value())
                    .map_err(|e| CoordError::Internal(format!("unreadable home regions: {e}")))
            })
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// Replaces the deployment's home-region list (with the record of `op`, when keyed);
    /// `Ok(false)` when a keyed call's record appeared meanwhile.
    pub(crate) async fn set_home_regions(
        &self,
        homes: &HomeRegions,
        op: Option<&Operation>,
    ) -> Result<bool, CoordError> {
        let (cmps, mut ops) = self.operation_txn(op).await?;
        ops.push(TxnOp::put(keys::home_regions(), to_json(homes), None));
        self.fenced_txn(cmps, ops).await
    }

    /// Marks (or unmarks) a region as draining (with the record of `op`, when keyed);
    /// `Ok(false)` when a keyed call's record appeared meanwhile.
    pub(crate) async fn set_drain(
        &self,
        region: &str,
        on: bool,
        op: Option<&Operation>,
    ) -> Result<bool, CoordError> {
        let (cmps, mut ops) = self.operation_txn(op).await?;
        ops.push(if on {
            TxnOp::put(keys::drain(region), "1", None)
        } else {
            TxnOp::delete(keys::drain(region), None)
        });
        self.fenced_txn(cmps, ops).await
    }
}
