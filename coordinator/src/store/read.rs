//! Reads of the ledger and of what regions published, with every key recognised through
//! [`Key::parse`] (the schema's one parser) instead of by its text.

use std::collections::{BTreeMap, BTreeSet};

use etcd_client::{GetOptions, KeyValue, Txn, TxnOp, TxnOpResponse};
use quota_shared::keys::{self, Key};
use quota_shared::model::{merge_reports, Ledger, ProductSpec, RegionInfo, RegionReport};
use quota_shared::wire::RegionView;

use super::Store;
use crate::error::CoordError;
use crate::snapshot::LedgerSnapshot;

fn parse_json<T: serde::de::DeserializeOwned>(kv: &KeyValue) -> Result<T, CoordError> {
    serde_json::from_slice(kv.value()).map_err(|e| {
        let key = String::from_utf8_lossy(kv.key());
        CoordError::Internal(format!("unreadable value at {key}: {e}"))
    })
}

/// Reads every key under `prefix`, inside a transaction.
fn get_prefix(prefix: String) -> TxnOp {
    TxnOp::get(prefix, Some(GetOptions::new().with_prefix()))
}

impl Store {
    /// Every registered region, with liveness (any node process alive), the URL of a live
    /// process, and the age of its latest report.
    pub(crate) async fn regions(&self) -> Result<Vec<RegionView>, CoordError> {
        let mut c = self.client();
        let opts = GetOptions::new().with_prefix();
        let resp = c.get(keys::regions_prefix(), Some(opts)).await?;
        let now_ms = chrono::Utc::now().timestamp_millis();
        let mut infos: BTreeMap<String, RegionView> = BTreeMap::new();
        // Live processes' URLs per region, in process-name order.
        let mut alive: BTreeMap<String, Vec<String>> = BTreeMap::new();
        let mut last_report: BTreeMap<String, i64> = BTreeMap::new();
        for kv in resp.kvs() {
            match Key::parse_bytes(kv.key()) {
                Some(Key::RegionInfo(region)) => {
                    let info: RegionInfo = parse_json(kv)?;
                    let view = RegionView {
                        region: region.clone(),
                        url: info.url,
                        alive: false,
                        processes: 0,
                        last_report_ms: None,
                    };
                    infos.insert(region, view);
                }
                Some(Key::RegionAlive { region, .. }) => {
                    let url = String::from_utf8_lossy(kv.value()).into_owned();
                    alive.entry(region).or_default().push(url);
                }
                Some(Key::RegionReport { region, .. }) => {
                    if let Ok(r) = serde_json::from_slice::<RegionReport>(kv.value()) {
                        let e = last_report.entry(region).or_insert(i64::MIN);
                        *e = (*e).max(r.at_ms);
                    }
                }
                _ => {}
            }
        }
        for (r, v) in &mut infos {
            let live = alive.get(r).map_or(&[][..], Vec::as_slice);
            v.alive = !live.is_empty();
            v.processes = live.len();
            // The registration names whichever process registered last, which may be gone.
            if let Some(url) = live.iter().find(|u| !u.is_empty()) {
                v.url.clone_from(url);
            }
            v.last_report_ms = last_report.get(r).map(|at| (now_ms - at).max(0));
        }
        Ok(infos.into_values().collect())
    }

    /// Reads one product and everything regions published about it, in one transaction.
    pub async fn read(&self, product_id: i64) -> Result<LedgerSnapshot, CoordError> {
        let mut c = self.client();
        let txn = Txn::new().and_then(vec![
            TxnOp::get(keys::product_spec(product_id), None),
            TxnOp::get(keys::product_ledger(product_id), None),
            TxnOp::get(keys::product_movable(product_id), None),
            get_prefix(keys::regions_prefix()),
            get_prefix(keys::release_requests_root()),
            get_prefix(keys::drains_prefix()),
        ]);
        let resp = c.txn(txn).await?;
        let etcd_revision = resp
            .header()
            .map_or(0, etcd_client::ResponseHeader::revision);
        let gets: Vec<_> = resp
            .op_responses()
            .into_iter()
            .filter_map(|r| match r {
                TxnOpResponse::Get(g) => Some(g),
                _ => None,
            })
            .collect();
        let [spec, ledger, movable, regions, requests, drains] = gets.as_slice() else {
            return Err(CoordError::Internal("short etcd transaction reply".into()));
        };
        let Some(spec_kv) = spec.kvs().first() else {
            return Err(CoordError::UnknownProduct(product_id));
        };
        let spec: ProductSpec = parse_json(spec_kv)?;
        let ledger_kv = ledger.kvs().first().ok_or_else(|| {
            CoordError::Internal(format!("product {product_id} has a spec but no ledger"))
        })?;
        let ledger_doc: Ledger = parse_json(ledger_kv)?;
        let mut snap = LedgerSnapshot {
            spec,
            ledger: ledger_doc,
            revision: ledger_kv.mod_revision(),
            published: BTreeMap::new(),
            reports: BTreeMap::new(),
            requests: BTreeMap::new(),
            alive: BTreeSet::new(),
            known: BTreeSet::new(),
            draining: BTreeSet::new(),
            etcd_revision,
            coordinator_writes: ledger_kv.version()
                + movable.kvs().first().map_or(0, KeyValue::version),
        };
        let mut reports: BTreeMap<String, Vec<RegionReport>> = BTreeMap::new();
        let kvs = regions
            .kvs()
            .iter()
            .chain(requests.kvs())
            .chain(drains.kvs());
        for kv in kvs {
            let Some(key) = Key::parse_bytes(kv.key()) else {
                continue;
            };
            if key.product_id().is_some_and(|p| p != product_id) {
                continue;
            }
            match key {
                Key::RegionRelease { region, .. } => {
                    snap.published.insert(region, parse_json(kv)?);
                }
                Key::RegionReport { region, .. } => {
                    reports.entry(region).or_default().push(parse_json(kv)?);
                }
                Key::ReleaseRequest { region, .. } => {
                    snap.requests.insert(region, parse_json(kv)?);
                }
                Key::RegionAlive { region, .. } => {
                    snap.alive.insert(region);
                }
                Key::RegionInfo(region) => {
                    snap.known.insert(region);
                }
                Key::Drain(region) => {
                    snap.draining.insert(region);
                }
                Key::ProductSpec(_)
                | Key::ProductLedger(_)
                | Key::ProductMovable(_)
                | Key::Grant { .. } => {}
            }
        }
        // Several node processes per region each report; the policy sees one region.
        snap.reports = reports
            .into_iter()
            .filter_map(|(r, rs)| merge_reports(&rs).map(|m| (r, m)))
            .collect();
        Ok(snap)
    }

    /// Every product id with a spec.
    pub(crate) async fn product_ids(&self) -> Result<Vec<i64>, CoordError> {
        let mut c = self.client();
        let opts = GetOptions::new().with_prefix().with_keys_only();
        let resp = c.get(keys::products_prefix(), Some(opts)).await?;
        let mut ids: Vec<i64> = resp
            .kvs()
            .iter()
            .filter_map(|kv| match Key::parse_bytes(kv.key()) {
                Some(Key::ProductSpec(p)) => Some(p),
                _ => None,
            })
            .collect();
        ids.sort_unstable();
        Ok(ids)
    }
}
