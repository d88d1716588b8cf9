//! The nemesis: a seeded chaos run against a real 3-region cluster. Buyers arrive open-loop at
//! their home regions (some twice at once, every one retrying 503s and transport errors a few
//! times) while faults drawn from the seed strike one after another — `kill -9` of a node,
//! Redis, Postgres, the leading coordinator, one etcd member or all of them; the leader paused past its lease; a region
//! cut off from etcd, a node cut off from its Postgres, the leader cut off from etcd (bytes
//! dropped, as a partition does); Redis flushed — each healed before the next. Then everything is healed,
//! the rest of the stock is sold, and the run checks what must hold under any interleaving:
//! every acknowledged order is in its region's Postgres, exactly once; nothing is oversold and
//! every unit sells; `sold` = order units everywhere; no buyer holds more than the per-user
//! limit across regions; the audit is exact; no region is left dead.
//!
//! `quota-chaos --runs 20` (and `deploy/local/chaos.sh`) is the long run; the test suite runs
//! one short fixed seed (`tests/tests/nemesis.rs`).

mod faults;
mod schedule;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_shared::admission::home_region;
use serde_json::Value;

pub use schedule::{schedule, Fault, Planned};

use crate::cluster::Cluster;
use crate::sale::{buy, http, truth, Outcome, Sale};

/// The product every run sells.
const PRODUCT: i64 = 4242;
/// The regions of a run.
const REGIONS: [&str; 3] = ["east", "south", "north"];

/// One run's knobs.
#[derive(Debug, Clone, Copy)]
pub struct NemesisConfig {
    /// Picks the faults (and nothing else: buyers are the same every run).
    pub seed: u64,
    /// How long buyers arrive (faults strike during it).
    pub load: Duration,
    /// Buyers per second per region.
    pub rate: u32,
    /// etcd members (3 by default in the long run: a member can die while the store stays up).
    pub etcd_members: usize,
}

/// What one run did and found.
#[derive(Debug, Clone)]
pub struct NemesisReport {
    /// The seed.
    pub seed: u64,
    /// Faults injected, with when they struck (seconds into the load).
    pub faults: Vec<(f64, String)>,
    /// Purchase requests sent (load and drain).
    pub requests: usize,
    /// Answers by HTTP status (0: no answer).
    pub statuses: BTreeMap<u16, usize>,
    /// Units on sale.
    pub total: i64,
    /// Units sold in the end (Σ over regions' Postgres).
    pub sold: i64,
    /// Everything that must not happen, and did. Empty: the run is clean.
    pub anomalies: Vec<String>,
    /// Wall time of the whole run.
    pub elapsed: Duration,
}

impl NemesisReport {
    /// No anomaly.
    pub fn clean(&self) -> bool {
        self.anomalies.is_empty()
    }
}

impl fmt::Display for NemesisReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: {} faults, {} requests, sold {}/{}, {} anomalies, {:.0} s — {}",
            self.seed,
            self.faults.len(),
            self.requests,
            self.sold,
            self.total,
            self.anomalies.len(),
            self.elapsed.as_secs_f64(),
            if self.clean() { "CLEAN" } else { "FAILED" }
        )?;
        for (at, fault) in &self.faults {
            writeln!(f, "  {at:>6.1} s  {fault}")?;
        }
        writeln!(f, "  answers: {:?}", self.statuses)?;
        for a in &self.anomalies {
            writeln!(f, "  ANOMALY: {a}")?;
        }
        Ok(())
    }
}

/// Runs one nemesis run on a fresh cluster (see the module docs).
pub async fn run(cfg: NemesisConfig) -> NemesisReport {
    let started = Instant::now();
    let mut c = Cluster::builder(&REGIONS)
        .coordinators(2)
        .etcd_members(cfg.etcd_members)
        .fault_links()
        .node_args(&["--ticket-expiry-ms", "3000"])
        .start()
        .await;
    // Fewer units than buyers, but enough that the sale is still on when the last fault
    // strikes; what the load leaves, the drain sells after healing.
    let total = i64::from(cfg.rate) * 3 * i64::try_from(cfg.load.as_secs()).unwrap_or(1) * 4 / 5;
    let share = total / 3;
    let split = format!("east={share},south={share},north={share}");
    Sale::new(PRODUCT, total, &split)
        .home_regions("east,north,south")
        .create(&c)
        .await;
    let homes: Vec<String> = {
        let mut h: Vec<String> = REGIONS.iter().map(ToString::to_string).collect();
        h.sort();
        h
    };
    let urls: BTreeMap<String, String> = REGIONS
        .iter()
        .map(|r| (r.to_string(), c.region(r).node.url.clone()))
        .collect();
    let users = Arc::new(AtomicI64::new(1));
    let plan = schedule(cfg.seed, &homes, cfg.etcd_members, cfg.load);

    let load = buyers(&urls, &homes, cfg, Arc::clone(&users));
    let nemesis = faults::inject(&mut c, &plan);
    let (mut outcomes, applied) = tokio::join!(load, nemesis);
    faults::heal_all(&mut c).await;
    outcomes.extend(drain(&c, &urls, &homes, total, &users).await);

    let mut report = NemesisReport {
        seed: cfg.seed,
        faults: applied,
        requests: outcomes.len(),
        statuses: BTreeMap::new(),
        total,
        sold: 0,
        anomalies: Vec::new(),
        elapsed: Duration::ZERO,
    };
    for (_, o) in &outcomes {
        *report.statuses.entry(o.status).or_insert(0) += 1;
    }
    check(&c, &outcomes, &mut report).await;
    report.elapsed = started.elapsed();
    report
}

/// Open-loop buyers for the load: every 50 ms each region gets its share of fresh buyers homed
/// there; one in ten sends a second request at once; each retries a 503, 429 or transport
/// error up to 3 times. Returns (region, final answer) of every request.
async fn buyers(
    urls: &BTreeMap<String, String>,
    homes: &[String],
    cfg: NemesisConfig,
    users: Arc<AtomicI64>,
) -> Vec<(String, Outcome)> {
    let client = http();
    let started = Instant::now();
    let mut handles = Vec::new();
    let per_tick = f64::from(cfg.rate) * 3.0 / 20.0;
    let mut owed = 0.0;
    while started.elapsed() < cfg.load {
        owed += per_tick;
        while owed >= 1.0 {
            owed -= 1.0;
            let user = users.fetch_add(1, Ordering::Relaxed);
            let region = home_region(user, homes).unwrap_or("east").to_string();
            let copies = if user % 10 == 0 { 2 } else { 1 };
            for _ in 0..copies {
                let (client, url, region) = (client.clone(), urls[&region].clone(), region.clone());
                handles.push(tokio::spawn(async move {
                    (region, buy_retrying(&client, &url, user).await)
                }));
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.expect("buyer task"));
    }
    out
}

/// One buyer: the purchase, retried (same user) on 503, 429 and no answer, at most 3 times.
async fn buy_retrying(client: &reqwest::Client, url: &str, user: i64) -> Outcome {
    let mut o = buy(client, url, PRODUCT, user).await;
    for attempt in 1..=3u64 {
        if !matches!(o.status, 0 | 429 | 503) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(250 * attempt)).await;
        o = buy(client, url, PRODUCT, user).await;
    }
    o
}

/// After healing: fresh buyers at every region until everything is sold (or two minutes
/// pass — then the check reports the units that never sold).
async fn drain(
    c: &Cluster,
    urls: &BTreeMap<String, String>,
    homes: &[String],
    total: i64,
    users: &AtomicI64,
) -> Vec<(String, Outcome)> {
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut out = Vec::new();
    while Instant::now() < deadline && sold(c).await < total {
        let mut handles = Vec::new();
        for _ in 0..30 {
            let user = users.fetch_add(1, Ordering::Relaxed);
            let region = home_region(user, homes).unwrap_or("east").to_string();
            let (client, url) = (client.clone(), urls[&region].clone());
            handles.push(tokio::spawn(async move {
                (region, buy_retrying(&client, &url, user).await)
            }));
        }
        for h in handles {
            out.push(h.await.expect("drain task"));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    out
}

/// Σ sold over the regions' Postgres.
async fn sold(c: &Cluster) -> i64 {
    let mut n = 0;
    for r in REGIONS {
        n += truth(&c.pg_client(r).await, PRODUCT).await.sold;
    }
    n
}

/// Every check of the module docs; each failure is one anomaly in words.
async fn check(c: &Cluster, outcomes: &[(String, Outcome)], report: &mut NemesisReport) {
    let mut per_user: BTreeMap<i64, (i64, Vec<&str>)> = BTreeMap::new();
    let mut all_ids = BTreeMap::new();
    for r in REGIONS {
        let pg = c.pg_client(r).await;
        let t = truth(&pg, PRODUCT).await;
        report.sold += t.sold;
        if t.sold != t.order_units {
            report.anomalies.push(format!(
                "{r}: sold = {} but its orders hold {} units",
                t.sold, t.order_units
            ));
        }
        for (region, o) in outcomes
            .iter()
            .filter(|(region, o)| region == r && o.status == 201)
        {
            let id = o.order_id.clone().unwrap_or_default();
            if !t.order_ids.contains(&id) {
                report.anomalies.push(format!(
                    "{region}: acknowledged order {id} of user {} is not in Postgres",
                    o.user_id
                ));
            }
        }
        for id in &t.order_ids {
            if let Some(other) = all_ids.insert(id.clone(), r) {
                report
                    .anomalies
                    .push(format!("order {id} is in both {other} and {r}"));
            }
        }
        let rows = pg
            .query(
                "SELECT user_id, sum(quantity)::BIGINT FROM orders WHERE product_id = $1 \
                 GROUP BY user_id",
                &[&PRODUCT],
            )
            .await
            .expect("orders by user");
        for row in rows {
            let e = per_user.entry(row.get(0)).or_default();
            e.0 += row.get::<_, i64>(1);
            e.1.push(r);
        }
    }
    if report.sold > report.total {
        report.anomalies.push(format!(
            "oversold: {} sold of {}",
            report.sold, report.total
        ));
    } else if report.sold < report.total {
        report.anomalies.push(format!(
            "{} units never sold after healing",
            report.total - report.sold
        ));
    }
    let over: Vec<String> = per_user
        .iter()
        .filter(|(_, (units, _))| *units > 1)
        .map(|(u, (units, regions))| format!("user {u}: {units} units in {}", regions.join(", ")))
        .collect();
    if !over.is_empty() {
        report.anomalies.push(format!(
            "{} buyers over the per-user limit, e.g. {}",
            over.len(),
            over[0]
        ));
    }
    if let Err(e) = audit_settles(c).await {
        report.anomalies.push(e);
    }
    if let Err(e) = regions_alive(c).await {
        report.anomalies.push(e);
    }
}

/// The audit passes within a minute of healing (regions report and settle asynchronously).
async fn audit_settles(c: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let out = c.quotactl(&["audit", &PRODUCT.to_string()]);
        if out.status.success() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!(
                "audit never passed after healing (exit {:?}): {}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}

/// Every region alive again within half a minute of healing (none stuck dead).
async fn regions_alive(c: &Cluster) -> Result<(), String> {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.quotactl(&["region", "list", "--json"]);
        let list: Value = serde_json::from_slice(&out.stdout).unwrap_or(Value::Null);
        let dead: Vec<String> = list
            .as_array()
            .into_iter()
            .flatten()
            .filter(|r| r["alive"] != true)
            .map(|r| r["region"].as_str().unwrap_or("?").to_string())
            .collect();
        if out.status.success() && dead.is_empty() {
            return Ok(());
        }
        if Instant::now() > deadline {
            return Err(format!("regions still dead after healing: {dead:?}"));
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
}
