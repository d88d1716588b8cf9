//! Applying a schedule's faults to a live cluster, and healing everything afterwards.

use std::time::{Duration, Instant};

use serde_json::Value;

use super::schedule::{Fault, Planned};
use crate::cluster::Cluster;

/// Plays `plan` from now on: each fault strikes at its offset, stays for its `down`, and is
/// healed before the next. Returns what was applied, with when (seconds); a fault that could
/// not be applied (e.g. no leader known at that moment) is listed as skipped.
pub(super) async fn inject(c: &mut Cluster, plan: &[Planned]) -> Vec<(f64, String)> {
    let started = Instant::now();
    let mut applied = Vec::new();
    for p in plan {
        if let Some(wait) = p.at.checked_sub(started.elapsed()) {
            tokio::time::sleep(wait).await;
        }
        let at = started.elapsed().as_secs_f64();
        let done = strike(c, &p.fault, p.down).await;
        let what = match done {
            Ok(()) => p.fault.to_string(),
            Err(why) => format!("{} (skipped: {why})", p.fault),
        };
        applied.push((at, what));
    }
    applied
}

/// One fault, then its heal.
async fn strike(c: &mut Cluster, fault: &Fault, down: Duration) -> Result<(), String> {
    match fault {
        Fault::KillNode(r) => {
            c.region_mut(r).node.kill9();
            tokio::time::sleep(down).await;
            c.region_mut(r).node.start_again().await;
        }
        Fault::KillRedis(r) => {
            c.region_mut(r).redis.kill9();
            tokio::time::sleep(down).await;
            c.region_mut(r).redis.start_again().await;
        }
        Fault::KillPostgres(r) => {
            c.region_mut(r).pg.kill9();
            tokio::time::sleep(down).await;
            c.region_mut(r).pg.start_again().await;
        }
        Fault::FlushRedis(r) => {
            let mut conn = c.redis_conn(r).await;
            let _: () = redis::cmd("FLUSHALL")
                .query_async(&mut conn)
                .await
                .map_err(|e| e.to_string())?;
        }
        Fault::KillLeader => {
            let i = leader(c)?;
            c.coordinators[i].kill9();
            tokio::time::sleep(down).await;
            c.coordinators[i].start_again().await;
        }
        Fault::PauseLeader => {
            let i = leader(c)?;
            let pid = c.coordinators[i].proc.pid().ok_or("leader not running")?;
            let pid = i32::try_from(pid).map_err(|e| e.to_string())?;
            // SAFETY: plain signals to a child process this harness spawned.
            unsafe { libc::kill(pid, libc::SIGSTOP) };
            tokio::time::sleep(down).await;
            // SAFETY: as above.
            unsafe { libc::kill(pid, libc::SIGCONT) };
        }
        Fault::PartitionRegion(r) => {
            c.set_link(r, "blackhole").await?;
            tokio::time::sleep(down).await;
            c.set_link(r, "pass").await?;
        }
        Fault::PartitionPostgres(r) => {
            let id = format!("pg-{r}");
            c.set_link(&id, "blackhole").await?;
            tokio::time::sleep(down).await;
            c.set_link(&id, "pass").await?;
        }
        Fault::PartitionLeader => {
            let id = c.coordinators[leader(c)?].id.clone();
            c.set_link(&id, "blackhole").await?;
            tokio::time::sleep(down).await;
            c.set_link(&id, "pass").await?;
        }
        Fault::KillEtcd => {
            c.etcd.kill9();
            tokio::time::sleep(down).await;
            c.etcd.start_again().await;
        }
        Fault::KillEtcdMember(i) => {
            let member = c.etcd.members.get_mut(*i).ok_or("no such etcd member")?;
            member.kill9();
            tokio::time::sleep(down).await;
            member.start_again().await;
        }
    }
    Ok(())
}

/// Index of the leading coordinator, from `quotactl status`.
fn leader(c: &Cluster) -> Result<usize, String> {
    let out = c.quotactl(&["status", "--json"]);
    let v: Value = serde_json::from_slice(&out.stdout).map_err(|_| "no status")?;
    let id = v["leader"].as_str().ok_or("no leader elected")?;
    c.coordinators
        .iter()
        .position(|k| k.id == id)
        .ok_or_else(|| format!("unknown leader {id}"))
}

/// Everything up and connected again: every process running, every link passing.
pub(super) async fn heal_all(c: &mut Cluster) {
    if !c.etcd.all_running() {
        c.etcd.start_again().await;
    }
    for i in 0..c.coordinators.len() {
        if !c.coordinators[i].proc.is_running() {
            c.coordinators[i].start_again().await;
        }
    }
    let ids: Vec<String> = c.coordinators.iter().map(|k| k.id.clone()).collect();
    for id in &ids {
        let _ = c.set_link(id, "pass").await;
    }
    let names: Vec<String> = c.regions.iter().map(|r| r.name.clone()).collect();
    for r in &names {
        let _ = c.set_link(r, "pass").await;
        let _ = c.set_link(&format!("pg-{r}"), "pass").await;
        let stack = c.region_mut(r);
        if !stack.redis.proc.is_running() {
            stack.redis.start_again().await;
        }
        if !stack.pg.proc.is_running() {
            stack.pg.start_again().await;
        }
        if !stack.node.proc.is_running() {
            stack.node.start_again().await;
        }
    }
}
