//! Issue 9 §7 and §2: a region stays alive while it is merely slow, and while any of its node
//! processes is. Its etcd lease is kept on a task of
//! its own (Postgres work in the session's loop cannot starve it), and no transaction of a
//! stalled or paused node process can hold the hot quota row lock for longer than twice the
//! statement timeout.

use std::time::Duration;

use etcd_client::GetOptions;
use quota_tests::{
    audit_ok, buy_all, by_status, quotactl_json, total_sold, truth, wait_for, Cluster, Sale,
};

const P: i64 = 1001;

/// Whether etcd holds any heartbeat of `region`.
async fn alive(etcd: &mut etcd_client::Client, region: &str) -> bool {
    let prefix = format!("/quota/v1/regions/{region}/alive");
    let opts = GetOptions::new().with_prefix().with_count_only();
    etcd.get(prefix, Some(opts)).await.unwrap().count() > 0
}

/// The quota row is locked (by this test) for twice the region's lease TTL while a grant waits
/// to be applied under it. The session's loop waits all that time in Postgres; the region's
/// heartbeat must not: it stays registered as alive throughout, and the grant is applied once
/// the lock goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_slow_postgres_does_not_lapse_the_regions_lease() {
    let c = Cluster::builder(&["east"])
        .node_args(&["--lease-ttl-s", "2", "--pg-timeout-ms", "8000"])
        .start()
        .await;
    Sale::new(P, 10, "east=5").create(&c).await;
    let mut etcd = c.etcd_client().await;
    assert!(alive(&mut etcd, "east").await);

    let mut blocker = c.pg_client("east").await;
    let tx = blocker.transaction().await.unwrap();
    tx.execute(
        "SELECT 1 FROM region_quota WHERE product_id = $1 FOR UPDATE",
        &[&P],
    )
    .await
    .unwrap();
    // A grant east can only apply under the row lock.
    quotactl_json(&c, &["quota", "set", &P.to_string(), "east=10"]);
    let mut missing = 0;
    for _ in 0..40 {
        if !alive(&mut etcd, "east").await {
            missing += 1;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tx.commit().await.unwrap();
    assert_eq!(
        missing, 0,
        "east's heartbeat was missing in {missing} of 40 looks while Postgres was slow"
    );
    let pg = c.pg_client("east").await;
    wait_for("east to apply the grant once the lock is gone", || {
        let pg = &pg;
        async move { truth(pg, P).await.granted == 10 }
    })
    .await;
}

/// A release stalls while holding the quota row lock (failpoint: idle in its transaction for a
/// minute, which is what Postgres sees of a paused process). The server ends that transaction
/// after twice the statement timeout, so anyone else waiting for the row gets it — here an
/// update by the test that would otherwise wait out its own 30 s lock timeout and fail.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_stalled_transaction_cannot_hold_the_row_lock() {
    let c = Cluster::builder(&["east"])
        .node_args(&[
            "--failpoint",
            "stall_in_release:60000",
            "--pg-timeout-ms",
            "1000",
        ])
        .start()
        .await;
    Sale::new(P, 10, "east=10").create(&c).await;
    // Draining asks east to release everything: the release takes the row lock and stalls.
    let out = c.quotactl(&["region", "drain", "east"]);
    assert!(out.status.success(), "{out:?}");
    let pg = c.pg_client("east").await;
    wait_for("east's release to stall in its transaction", || {
        let pg = &pg;
        async move {
            pg.query_opt(
                "SELECT 1 FROM pg_stat_activity
                  WHERE application_name = 'region-node' AND state = 'idle in transaction'",
                &[],
            )
            .await
            .unwrap()
            .is_some()
        }
    })
    .await;
    pg.batch_execute("SET lock_timeout = '30s'").await.unwrap();
    let updated = pg
        .execute(
            "UPDATE region_quota SET updated_at = now() WHERE product_id = $1",
            &[&P],
        )
        .await;
    assert_eq!(
        updated.map_err(|e| e.to_string()),
        Ok(1),
        "the stalled transaction must not hold the row lock"
    );
}

/// How many heartbeats / reports of `product` `region`'s node processes etcd holds.
async fn count(etcd: &mut etcd_client::Client, prefix: String) -> i64 {
    let opts = GetOptions::new().with_prefix().with_count_only();
    etcd.get(prefix, Some(opts)).await.unwrap().count()
}

/// Issue 9 §2: two node processes serve east. While both run, each keeps its own heartbeat
/// and its own report (the coordinator merges them; nothing is overwritten). Killing the one
/// that registered first used to delete the region's only heartbeat key while the survivor
/// never rewrote it, so east was dead for good: now east stays alive, the region list points
/// at the survivor, and the sale goes on — grants reach east, every unit sells, and the audit
/// (which reads east through the survivor) passes.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_region_stays_alive_while_any_of_its_processes_is() {
    let mut c = Cluster::builder(&["east", "south"]).start().await;
    let survivor = c
        .start_extra_node("east", &["--process-id", "east-b"])
        .await;
    Sale::new(P, 40, "east=10,south=10").create(&c).await;
    let mut etcd = c.etcd_client().await;
    let heartbeats = || "/quota/v1/regions/east/alive/".to_string();
    let reports = format!("/quota/v1/regions/east/reports/{P}/");
    wait_for("both east processes to report", || {
        let (mut etcd, reports) = (etcd.clone(), reports.clone());
        async move { count(&mut etcd, reports).await == 2 }
    })
    .await;
    assert_eq!(count(&mut etcd, heartbeats()).await, 2);

    c.region_mut("east").node.kill9();
    wait_for("the killed process's heartbeat to expire", || {
        let mut etcd = etcd.clone();
        async move { count(&mut etcd, heartbeats()).await == 1 }
    })
    .await;
    let regions = quotactl_json(&c, &["region", "list"]);
    let east = regions
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["region"] == "east")
        .unwrap()
        .clone();
    assert_eq!(east["alive"], true, "{east}");
    assert_eq!(east["processes"], 1, "{east}");
    assert_eq!(east["url"], survivor.url.as_str(), "{east}");

    // The pool's 20 units still reach east: buyers there take every unit.
    let south = c.region("south").node.url.clone();
    let mut sold = 0;
    for round in 0..100 {
        let users = (round * 100 + 1..=round * 100 + 20).collect();
        let out = buy_all(&survivor.url, P, users, 20).await;
        sold += by_status(&out).get(&201).copied().unwrap_or(0);
        if sold >= 30 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let rest = buy_all(&south, P, (100_001..=100_020).collect(), 20).await;
    sold += by_status(&rest).get(&201).copied().unwrap_or(0);
    assert_eq!(
        total_sold(&c, &["east", "south"], P).await,
        i64::try_from(sold).unwrap()
    );
    assert_eq!(sold, 40, "every unit sells");
    audit_ok(&c, P).await;
}

/// Found by the nemesis: east's node is cut off from its Postgres mid-sale (every byte dropped,
/// as a partition or a frozen server does). The connections whose requests or answers were lost
/// used to wait for ever after the partition healed — the reconciler, releases and purchases
/// stalled and the rest of the stock never sold. Every operation is now bounded on the client
/// side and a connection abandoned mid-operation is verified before reuse, so once the link
/// heals east sells exactly what it holds.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_node_cut_off_from_its_postgres_recovers_when_the_link_heals() {
    let c = Cluster::builder(&["east"])
        .fault_links()
        .node_args(&["--pg-timeout-ms", "500", "--ticket-expiry-ms", "2000"])
        .start()
        .await;
    Sale::new(P, 200, "east=200").create(&c).await;
    let east = c.region("east").node.url.clone();
    let first = buy_all(&east, P, (1..=50).collect(), 10).await;
    assert_eq!(by_status(&first).get(&201), Some(&50));
    // Cut while purchases are in flight, so some connections lose their bytes mid-request.
    let during = tokio::spawn({
        let east = east.clone();
        async move { buy_all(&east, P, (51..=150).collect(), 20).await }
    });
    tokio::time::sleep(Duration::from_millis(50)).await;
    c.set_link("pg-east", "blackhole").await.unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    c.set_link("pg-east", "pass").await.unwrap();
    let during = during.await.unwrap();
    assert!(
        during.iter().all(|o| o.status != 500),
        "{:?}",
        by_status(&during)
    );
    // Every unit still sells: fresh buyers until Postgres says none is left.
    let pg = c.pg_client("east").await;
    let mut user = 1_000;
    wait_for("east to sell everything after the partition", || {
        let (pg, east) = (&pg, east.clone());
        user += 20;
        let users: Vec<i64> = (user..user + 20).collect();
        async move {
            buy_all(&east, P, users, 20).await;
            let t = truth(pg, P).await;
            t.sold == 200
        }
    })
    .await;
    let t = truth(&pg, P).await;
    assert_eq!(
        (t.sold, t.order_units, t.duplicate_buyers),
        (200, 200, 0),
        "{t:?}"
    );
    audit_ok(&c, P).await;
}

/// `quota_dependency_errors_total{dependency="etcd"}` of a node: how many etcd sessions ended.
async fn etcd_session_ends(node_url: &str) -> u64 {
    let text = reqwest::get(format!("{node_url}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with("quota_dependency_errors_total") && l.contains("\"etcd\""))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse::<f64>().ok())
        .map_or(0, |v| v as u64)
}

/// Each of three etcd members is killed in turn (so whichever member a process talks to dies
/// once) and restarted. While it is down: a sale is created (ledger and grants written by the
/// coordinator, applied by both regions) and both regions sell it; and each region's session
/// ends at most twice per dead member (once on the dead member, once more if it lands on a
/// member still waiting for a new Raft leader) — it moves to a member of the quorum instead of
/// failing the share of requests a client balanced over all three members keeps sending to
/// the dead one (several session ends a second, backing off to one every 3 s). The audit is exact
/// at the end.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn every_process_rides_out_the_death_of_an_etcd_member() {
    let mut c = Cluster::builder(&["east", "south"])
        .etcd_members(3)
        .coordinators(2)
        .node_args(&["--lease-ttl-s", "2"])
        .start()
        .await;
    Sale::new(P, 60, "east=10,south=10").create(&c).await;
    let client = quota_tests::http();
    let mut user = 1;
    for i in 0..3 {
        let before = [
            etcd_session_ends(&c.region("east").node.url).await,
            etcd_session_ends(&c.region("south").node.url).await,
        ];
        c.etcd.members[i].kill9();
        // A sale created while member n{i+1} is down: the coordinator writes its ledger and
        // grants, both regions apply them (`create` waits for that) and sell.
        let p = P + 1 + i64::try_from(i).unwrap();
        Sale::new(p, 10, "east=5,south=5").create(&c).await;
        for r in ["east", "south"] {
            let url = c.region(r).node.url.clone();
            let outcome = quota_tests::buy(&client, &url, p, user).await;
            user += 1;
            assert_eq!(
                outcome.status,
                201,
                "{r} sells with etcd member n{} down",
                i + 1
            );
        }
        // Let many report periods and lease TTLs pass on the surviving members.
        tokio::time::sleep(Duration::from_secs(6)).await;
        let after = [
            etcd_session_ends(&c.region("east").node.url).await,
            etcd_session_ends(&c.region("south").node.url).await,
        ];
        for (k, r) in ["east", "south"].iter().enumerate() {
            assert!(
                after[k] - before[k] <= 2,
                "{r}'s etcd session ended {} times while one member of three was down",
                after[k] - before[k]
            );
        }
        c.etcd.start_again().await;
    }
    for p in P..=P + 3 {
        audit_ok(&c, p).await;
    }
}
