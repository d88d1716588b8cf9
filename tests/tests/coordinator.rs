//! Issue 3: the coordinator — ledger, election, rebalancing, releases, audits — against real
//! etcd, Redis and Postgres.

use std::collections::HashMap;
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_tests::{
    assert_safe, audit_ok, buy, buy_all, by_status, http, quotactl_json, total_sold, truth,
    wait_for, Cluster, Outcome, Sale,
};
use serde_json::Value;

const P: i64 = 1001;
const REGIONS: [&str; 3] = ["east", "south", "north"];

/// Buyers arrive open-loop at `rates` (per second, per region) with fresh user ids until the
/// product is sold out everywhere (or `limit` elapses). Returns every outcome per region.
async fn sale(
    c: &Cluster,
    rates: &[(&str, u32)],
    limit: Duration,
    next_user: Arc<AtomicI64>,
) -> HashMap<String, Vec<Outcome>> {
    let client = http();
    let started = Instant::now();
    let mut handles: Vec<(String, tokio::task::JoinHandle<Outcome>)> = Vec::new();
    let tick = Duration::from_millis(20);
    let mut owed: HashMap<&str, f64> = HashMap::new();
    let mut sold_out_checks = 0u32;
    while started.elapsed() < limit {
        for (region, rate) in rates {
            let due = owed.entry(region).or_insert(0.0);
            *due += f64::from(*rate) * tick.as_secs_f64();
            while *due >= 1.0 {
                *due -= 1.0;
                let user = next_user.fetch_add(1, Ordering::Relaxed);
                let url = c.region(region).node.url.clone();
                let cl = client.clone();
                handles.push((
                    region.to_string(),
                    tokio::spawn(async move { buy(&cl, &url, P, user).await }),
                ));
            }
        }
        tokio::time::sleep(tick).await;
        sold_out_checks += 1;
        if sold_out_checks.is_multiple_of(25) {
            let names: Vec<&str> = rates.iter().map(|(r, _)| *r).collect();
            let sold = total_sold(c, &names, P).await;
            let total = quotactl_json(c, &["product", "show", &P.to_string()])["total"]
                .as_i64()
                .unwrap();
            if sold >= total {
                break;
            }
        }
    }
    let mut out: HashMap<String, Vec<Outcome>> = HashMap::new();
    for (r, h) in handles {
        out.entry(r).or_default().push(h.await.unwrap());
    }
    out
}

/// 3 regions, 1,000 units split evenly, demand 70/20/10 from more buyers than units: the sale
/// sells out completely (0 stranded), nothing is oversold, the audit passes, and the hot
/// region sold more than its initial share.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn demand_rebalancing_sells_out_completely() {
    let c = Cluster::builder(&REGIONS).start().await;
    Sale::new(P, 1000, "east=334,south=333,north=333")
        .create(&c)
        .await;
    let users = Arc::new(AtomicI64::new(1));
    let started = Instant::now();
    let out = sale(
        &c,
        &[("east", 350), ("south", 100), ("north", 50)],
        Duration::from_secs(60),
        users,
    )
    .await;
    let elapsed = started.elapsed();
    let mut sold = HashMap::new();
    for r in REGIONS {
        let pg = c.pg_client(r).await;
        let t = truth(&pg, P).await;
        assert_safe(&t, &out[r]);
        eprintln!(
            "{r}: sold {} of its initial share ~333; answers {:?}",
            t.sold,
            by_status(&out[r])
        );
        sold.insert(r, t.sold);
    }
    let total: i64 = sold.values().sum();
    eprintln!("sold out {total} units in {elapsed:?}");
    // Demand shift → quota arrival: from east's first sold-out answer (its initial share gone,
    // demand still there) to the next unit it sold (quota moved in by the rebalancer).
    let mut east = out["east"].clone();
    east.sort_by_key(|o| o.at);
    if let Some(first_410) = east.iter().find(|o| o.status == 410).map(|o| o.at) {
        if let Some(next_201) = east.iter().find(|o| o.status == 201 && o.at > first_410) {
            eprintln!(
                "east sold out first at +{:?}; quota arrived (next 201) {:?} later",
                first_410 - started,
                next_201.at - first_410
            );
        }
    }
    assert_eq!(total, 1000, "0 stranded and 0 oversold");
    assert!(
        sold["east"] > 334,
        "the hot region must receive quota: {sold:?}"
    );
    let audit = audit_ok(&c, P).await;
    assert_eq!(audit["products"][0]["sold"], 1000);
    assert_eq!(audit["products"][0]["pool"], 0);
}

/// Kill -9 the leading coordinator mid-sale: the standby takes over from etcd alone and the
/// books still balance exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn leader_failover_mid_sale() {
    let mut c = Cluster::builder(&["east", "south"])
        .coordinators(2)
        .start()
        .await;
    Sale::new(P, 400, "east=200,south=200").create(&c).await;
    let leader = quotactl_json(&c, &["status"])["leader"]
        .as_str()
        .unwrap()
        .to_string();
    let users = Arc::new(AtomicI64::new(1));
    let first = sale(
        &c,
        &[("east", 200), ("south", 20)],
        Duration::from_secs(1),
        users.clone(),
    )
    .await;
    let idx = c.coordinators.iter().position(|x| x.id == leader).unwrap();
    c.coordinators[idx].kill9();
    let killed_at = Instant::now();
    wait_for("a standby to lead", || async {
        let s = quotactl_json(&c, &["status"]);
        s["leader"].as_str().is_some_and(|l| l != leader)
    })
    .await;
    eprintln!("standby leads {:?} after the kill", killed_at.elapsed());
    let rest = sale(
        &c,
        &[("east", 200), ("south", 20)],
        Duration::from_secs(40),
        users,
    )
    .await;
    for r in ["east", "south"] {
        let mut all = first.get(r).cloned().unwrap_or_default();
        all.extend(rest.get(r).cloned().unwrap_or_default());
        assert_safe(&truth(&c.pg_client(r).await, P).await, &all);
    }
    assert_eq!(total_sold(&c, &["east", "south"], P).await, 400);
    audit_ok(&c, P).await;
}

/// A region node killed between its Postgres release and its etcd publish: the released units
/// are "in transit" (never granted twice), and after a restart the region re-publishes and the
/// books balance exactly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn region_crash_between_release_and_publish() {
    let mut c = Cluster::builder(&["east", "south"]).start().await;
    Sale::new(P, 100, "east=60,south=40").create(&c).await;
    // Restart east with the crash point armed.
    {
        let east = &mut c.region_mut("east").node;
        east.stop().await;
        let extra = ["--failpoint", "crash_after_release_commit"];
        east.proc.spec = east.proc.spec.clone().args(extra);
        east.start_again().await;
    }
    let _ = quotactl_json(&c, &["quota", "policy", &P.to_string(), "static"]);
    let out = c.quotactl(&["region", "drain", "east"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    wait_for("east to crash at the failpoint", || {
        let running = c
            .region("east")
            .node
            .proc
            .pid()
            .is_some_and(quota_tests::pid_alive);
        async move { !running }
    })
    .await;
    // Postgres has the release, etcd does not: the units are in transit, not in the pool.
    let t = truth(&c.pg_client("east").await, P).await;
    assert_eq!(t.released, 60, "{t:?}");
    let shown = quotactl_json(&c, &["product", "show", &P.to_string()]);
    assert_eq!(
        shown["pool"], 0,
        "unpublished releases must not reach the pool: {shown}"
    );
    // The audit cannot read east: exit 3 (inconclusive), naming it.
    let out = c.quotactl(&["audit", &P.to_string()]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("east"));
    // Restart without the failpoint: it re-publishes R, and the books balance.
    let _ = quotactl_json(&c, &["region", "drain", "east", "--stop"]);
    let _ = quotactl_json(&c, &["quota", "policy", &P.to_string(), "demand"]);
    {
        let east = &mut c.region_mut("east").node;
        let args = &mut east.proc.spec.args;
        let at = args
            .iter()
            .position(|a| a == "--failpoint")
            .expect("the failpoint is armed");
        args.drain(at..at + 2);
        east.start_again().await;
    }
    // The restarted session re-publishes R; an audit may pass just before (a release in
    // transit for less than the stuck bound is not a violation), so wait for the one after.
    let mut audit = audit_ok(&c, P).await;
    let deadline = Instant::now() + Duration::from_secs(30);
    while audit["products"][0]["regions"]["east"]["release_in_transit"] != 0 {
        assert!(Instant::now() < deadline, "never re-published: {audit}");
        tokio::time::sleep(Duration::from_millis(200)).await;
        audit = audit_ok(&c, P).await;
    }
    let east = &audit["products"][0]["regions"]["east"];
    assert_eq!(east["released_published"], 60, "{audit}");
    // Nothing was lost or duplicated: the 60 units are sellable again somewhere.
    let users = Arc::new(AtomicI64::new(1));
    let _ = sale(&c, &[("south", 100)], Duration::from_secs(30), users).await;
    let total = total_sold(&c, &["east", "south"], P).await;
    assert_eq!(total, 100, "every unit sells exactly once");
    audit_ok(&c, P).await;
}

/// Two coordinators that both believe they lead: the deposed one (paused past its lease, then
/// resumed) cannot write — its fenced transactions fail — and the books stay exact.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn paused_leader_is_fenced() {
    let c = Cluster::builder(&["east", "south"])
        .coordinators(2)
        .start()
        .await;
    Sale::new(P, 200, "east=100,south=100").create(&c).await;
    let leader = quotactl_json(&c, &["status"])["leader"]
        .as_str()
        .unwrap()
        .to_string();
    let old = c.coordinators.iter().find(|x| x.id == leader).unwrap();
    let standby = c.coordinators.iter().find(|x| x.id != leader).unwrap();
    c.use_coordinator(Some(&standby.url));
    let pid = old.proc.pid().unwrap() as i32;
    unsafe { libc::kill(pid, libc::SIGSTOP) };
    wait_for("the standby to lead", || async {
        quotactl_json(&c, &["status"])["leader"]
            .as_str()
            .is_some_and(|l| l != leader)
    })
    .await;
    // Meanwhile demand shifts: the new leader moves quota.
    let users = Arc::new(AtomicI64::new(1));
    let _ = sale(&c, &[("east", 150)], Duration::from_secs(2), users.clone()).await;
    unsafe { libc::kill(pid, libc::SIGCONT) };
    // The old leader resumes believing it leads; its next write must be refused by the fence.
    let old_url = old.url.clone();
    let client = reqwest::Client::new();
    let resp = client
        .put(format!("{old_url}/v1/admin/products/{P}/policy"))
        .bearer_auth(&c.admin_token)
        .json(&serde_json::json!({"policy": "even"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    // Either it already knew it was deposed and forwarded to the new leader (200), or its
    // fenced write failed (503 not_leader). What it must never do is write on its own.
    assert!(matches!(status, 200 | 503), "unexpected {status}");
    wait_for("the old leader to step down", || {
        let u = format!("{old_url}/readyz");
        async move {
            let v: Value = reqwest::get(u).await.unwrap().json().await.unwrap();
            v["leader"] == false
        }
    })
    .await;
    let _ = sale(
        &c,
        &[("east", 150), ("south", 50)],
        Duration::from_secs(30),
        users,
    )
    .await;
    assert_eq!(total_sold(&c, &["east", "south"], P).await, 200);
    audit_ok(&c, P).await;
}

/// The fence itself, against real etcd: a store whose election key is gone cannot write, and
/// the ledger is untouched.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fenced_write_is_rejected_by_etcd() {
    use coordinator::{Fence, Store};
    let dir = quota_tests::test_dir();
    let etcd = quota_tests::Etcd::start(dir.path()).await;
    let endpoints = etcd.endpoints();
    let old = Store::connect(&endpoints, quota_etcd::EtcdOptions::default())
        .await
        .unwrap();
    let new = Store::connect(&endpoints, quota_etcd::EtcdOptions::default())
        .await
        .unwrap();
    let mut c = old.client();
    let election = quota_shared::keys::election();
    // Old leader wins, then its lease is revoked (as if it expired while paused).
    let lease_a = c.lease_grant(30, None).await.unwrap().id();
    let mut won = c.campaign(election.clone(), "{}", lease_a).await.unwrap();
    let key_a = won.take_leader().unwrap();
    old.set_fence(Some(Fence {
        key: key_a.key().to_vec(),
        rev: key_a.rev(),
    }));
    let spec = quota_shared::model::ProductSpec {
        payment_window_s: None,
        product_id: 7,
        total: 10,
        ..quota_shared::round::fixture::snapshot().spec
    };
    let ledger = quota_shared::model::Ledger {
        total: 10,
        ..Default::default()
    };
    old.create(&spec, &ledger)
        .await
        .expect("the leader can write");
    c.lease_revoke(lease_a).await.unwrap();
    let mut c2 = new.client();
    let lease_b = c2.lease_grant(30, None).await.unwrap().id();
    let mut won = c2.campaign(election, "{}", lease_b).await.unwrap();
    let key_b = won.take_leader().unwrap();
    new.set_fence(Some(Fence {
        key: key_b.key().to_vec(),
        rev: key_b.rev(),
    }));
    // The deposed store still holds its fence; etcd refuses its write.
    let read = old.read(7).await.unwrap();
    let mut bigger = read.ledger.clone();
    bigger.granted.insert("east".into(), 10);
    let err = old
        .write(&read, &bigger, None, &Default::default())
        .await
        .expect_err("a deposed leader must not write");
    assert!(matches!(err, coordinator::CoordError::NotLeader), "{err}");
    assert!(!old.is_leader(), "it steps down");
    assert_eq!(
        new.read(7).await.unwrap().ledger,
        read.ledger,
        "ledger untouched"
    );
    // The new leader can.
    assert!(new
        .write(&read, &bigger, None, &Default::default())
        .await
        .unwrap());
}

/// A region cut off from etcd keeps selling its own quota, and rejoins cleanly.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn region_cut_off_from_etcd_keeps_selling() {
    let mut c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 50, "east=50").create(&c).await;
    c.etcd.stop().await;
    let node = c.region("east").node.url.clone();
    // Buyers retry a transient 503 (e.g. an overloaded test machine); every unit must sell.
    let client = http();
    let mut codes = Vec::new();
    for user in 1..=30 {
        let mut o = buy(&client, &node, P, user).await;
        for _ in 0..3 {
            if o.status != 503 {
                break;
            }
            codes.push(o.code.clone());
            tokio::time::sleep(Duration::from_millis(200)).await;
            o = buy(&client, &node, P, user).await;
        }
        assert_eq!(
            o.status, 201,
            "user {user} while etcd is down: {o:?} (503s seen: {codes:?})"
        );
    }
    c.etcd.start_again().await;
    wait_for("east to rejoin", || async {
        let out = c.quotactl(&["region", "list", "--json"]);
        out.status.success()
            && serde_json::from_slice::<Value>(&out.stdout).unwrap()[0]["alive"] == true
    })
    .await;
    let out2 = buy_all(&node, P, (31..=80).collect(), 10).await;
    assert_eq!(
        by_status(&out2).get(&201),
        Some(&20),
        "{:?}",
        by_status(&out2)
    );
    let audit = audit_ok(&c, P).await;
    assert_eq!(audit["products"][0]["sold"], 50);
}

/// Global per-user limit with home regions: a purchase outside the user's home region is
/// answered 421 naming it, and the audit finds no user over the limit across regions.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn home_region_enforces_the_global_per_user_limit() {
    let c = Cluster::builder(&["east", "south"]).start().await;
    Sale::new(P, 100, "east=50,south=50")
        .home_regions("east,south")
        .create(&c)
        .await;
    let regions = vec!["east".to_string(), "south".to_string()];
    let client = http();
    for user in 1..=20i64 {
        let home = quota_shared::admission::home_region(user, &regions).unwrap();
        let away = if home == "east" { "south" } else { "east" };
        let o = buy(&client, &c.region(away).node.url, P, user).await;
        assert_eq!(o.status, 421, "user {user} away from {home}");
        let resp: Value = client
            .post(format!(
                "{}/v1/products/{P}/purchase",
                c.region(away).node.url
            ))
            .json(&serde_json::json!({"user_id": user}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        assert_eq!(resp["error"]["home_region"], home);
        assert_eq!(
            buy(&client, &c.region(home).node.url, P, user).await.status,
            201
        );
    }
    audit_ok(&c, P).await;
}

/// quotactl bad input: clear message, non-zero exit, nothing changed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn quotactl_bad_input_changes_nothing() {
    let c = Cluster::builder(&["east", "south"]).start().await;
    Sale::new(P, 100, "east=50,south=50").create(&c).await;
    let before = quotactl_json(&c, &["product", "list"]);
    let cases: &[(&[&str], i32, &str)] = &[
        (&["product", "show", "999"], 4, "unknown product"),
        (
            &[
                "product", "create", "5", "--name", "x", "--total", "-5", "--price", "1",
            ],
            2,
            "total",
        ),
        (
            &[
                "product",
                "create",
                "5",
                "--name",
                "x",
                "--total",
                "10",
                "--price",
                "1",
                "--split",
                "east=8,south=8",
            ],
            4,
            "more than the total",
        ),
        (
            &[
                "product", "create", "5", "--name", "x", "--total", "10", "--price", "1",
                "--split", "west=1",
            ],
            4,
            "unknown region",
        ),
        (
            &[
                "product", "create", "5", "--name", "x", "--total", "10", "--price", "-1",
            ],
            4,
            "price",
        ),
        (
            &[
                "product",
                "create",
                &P.to_string(),
                "--name",
                "dup",
                "--total",
                "1",
                "--price",
                "1",
            ],
            4,
            "already exists",
        ),
        (
            &[
                "product", "create", "0", "--name", "x", "--total", "1", "--price", "1",
            ],
            2,
            "0",
        ),
        (
            &["quota", "set", &P.to_string(), "east=80,south=80"],
            4,
            "more than the total",
        ),
        (
            &["quota", "set", &P.to_string(), "east=eighty"],
            2,
            "integer",
        ),
        (
            &["quota", "set", &P.to_string(), "mars=1"],
            4,
            "unknown region",
        ),
        (&["quota", "set", "999", "east=1"], 4, "unknown product"),
        (&["quota", "policy", &P.to_string(), "random"], 2, "random"),
        (&["product", "restock", &P.to_string(), "0"], 2, "0"),
        (
            &[
                "product",
                "restock",
                &P.to_string(),
                "5",
                "--idempotency-key",
                "a/b",
            ],
            2,
            "idempotency key",
        ),
        (&["region", "drain", "mars"], 4, "unknown region"),
        (
            &["region", "homes", "--set", "east,mars"],
            4,
            "unknown home region",
        ),
        (
            &["region", "homes", "--set", "east,,south"],
            2,
            "expected regions",
        ),
        (&["rebalance", "999"], 4, "unknown product"),
        (&["audit", "999"], 4, "unknown product"),
    ];
    for (args, code, word) in cases {
        let out = c.quotactl(args);
        let err = String::from_utf8_lossy(&out.stderr).to_lowercase();
        assert_eq!(out.status.code(), Some(*code), "{args:?}: {err}");
        assert!(
            err.contains(&word.to_lowercase()),
            "{args:?}: message {err:?} should mention {word:?}"
        );
    }
    let after = quotactl_json(&c, &["product", "list"]);
    assert_eq!(before, after, "a refused command changed the ledger");
    // Wrong token: refused.
    let out = std::process::Command::new(quota_tests::bin_path("quotactl"))
        .args(["product", "list"])
        .env("COORDINATOR_URL", &c.coordinator().url)
        .env("ADMIN_TOKEN", "wrong-token-wrong-token")
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(4), "refused");
    assert!(String::from_utf8_lossy(&out.stderr).contains("unauthorized"));
}

/// Issue 9 §5: a change sent again under the same idempotency key — a client's retry, or an
/// operator rerunning a command whose answer was lost — is applied once, through either
/// coordinator instance (the standby forwards the key to the leader); the same key on another
/// change is refused, a malformed key is a 400, and neither changes anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_change_sent_twice_with_one_key_is_applied_once() {
    let c = Cluster::builder(&["east"]).coordinators(2).start().await;
    Sale::new(P, 100, "east=100").create(&c).await;
    let total = || quotactl_json(&c, &["product", "show", &P.to_string()])["total"].clone();
    let (a, b) = (c.coordinators[0].url.clone(), c.coordinators[1].url.clone());
    let restock = |via: &str, units: &str, key: &str| {
        c.quotactl_via(
            via,
            &[
                "product",
                "restock",
                &P.to_string(),
                units,
                "--idempotency-key",
                key,
            ],
        )
    };

    // The operator reruns a restock, once through each instance: one of them is the standby.
    let first = restock(&a, "50", "rerun-1");
    assert!(first.status.success(), "{first:?}");
    let again = restock(&b, "50", "rerun-1");
    assert!(again.status.success(), "{again:?}");
    assert!(
        String::from_utf8_lossy(&again.stderr).contains("already been applied"),
        "{again:?}"
    );
    assert_eq!(total(), 150, "applied once");

    // The same key on a different change: refused, nothing changes.
    let other = restock(&a, "7", "rerun-1");
    assert_eq!(other.status.code(), Some(4), "{other:?}");
    assert!(
        String::from_utf8_lossy(&other.stderr).contains("idempotency_key_reused"),
        "{other:?}"
    );
    assert_eq!(total(), 150);

    // Without a key each invocation gets a fresh one: two runs are two changes.
    for _ in 0..2 {
        let out = c.quotactl(&["product", "restock", &P.to_string(), "10"]);
        assert!(out.status.success(), "{out:?}");
    }
    assert_eq!(total(), 170);

    // An API client's own key, over HTTP: the replay says so in a header.
    let client = http();
    let post = |via: String, path: String, key: &'static str, body: Value| {
        let (client, token) = (client.clone(), c.admin_token.clone());
        async move {
            client
                .post(format!("{via}{path}"))
                .bearer_auth(token)
                .header("Idempotency-Key", key)
                .json(&body)
                .send()
                .await
                .unwrap()
        }
    };
    let path = format!("/v1/admin/products/{P}/restock");
    let body = serde_json::json!({"units": 30});
    let r1 = post(a.clone(), path.clone(), "api-1", body.clone()).await;
    assert_eq!(r1.status(), 200);
    assert!(r1.headers().get("idempotent-replayed").is_none());
    let r2 = post(b.clone(), path.clone(), "api-1", body.clone()).await;
    assert_eq!(r2.status(), 200);
    assert_eq!(r2.headers()["idempotent-replayed"], "true");
    assert_eq!(total(), 200);

    // A malformed key is refused before anything runs.
    let bad = post(a.clone(), path.clone(), "no/slashes", body).await;
    assert_eq!(bad.status(), 400);
    let err: Value = bad.json().await.unwrap();
    assert_eq!(err["error"]["code"], "invalid_request", "{err}");
    assert_eq!(total(), 200);

    // Creation too: the second create with the key answers the product instead of 409.
    let create = serde_json::json!({
        "product_id": P + 1, "name": "twice", "total": 10, "price": "1.00",
        "split": {"east": 10}
    });
    let products = "/v1/admin/products".to_string();
    let c1 = post(a.clone(), products.clone(), "create-1", create.clone()).await;
    assert_eq!(c1.status(), 201);
    let c2 = post(b.clone(), products.clone(), "create-1", create).await;
    assert_eq!(c2.status(), 201);
    assert_eq!(c2.headers()["idempotent-replayed"], "true");
    let view: Value = c2.json().await.unwrap();
    assert_eq!(view["total"], 10, "{view}");
    audit_ok(&c, P).await;
}

/// Issue 9 §8: ending a sale that has not started yet. The old rule moved its end to one
/// millisecond after its start, leaving that millisecond to sell in; the sale is now marked
/// ended, in etcd and in every region's Postgres, and refused at every instant after.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_sale_ended_before_its_start_never_sells() {
    let c = Cluster::builder(&["east"]).start().await;
    let start = (chrono::Utc::now() + chrono::Duration::seconds(2)).to_rfc3339();
    let created = quotactl_json(
        &c,
        &[
            "product",
            "create",
            &P.to_string(),
            "--name",
            "later",
            "--total",
            "5",
            "--price",
            "1.00",
            "--start",
            &start,
            "--split",
            "east=5",
        ],
    );
    assert_eq!(created["spec"]["ended"], false, "{created}");
    let ended = quotactl_json(&c, &["product", "end", &P.to_string()]);
    assert_eq!(ended["spec"]["ended"], true, "{ended}");
    let pg = c.pg_client("east").await;
    wait_for("east to learn the sale ended", || {
        let pg = &pg;
        async move {
            pg.query_opt(
                "SELECT 1 FROM products WHERE product_id = $1 AND ended",
                &[&P],
            )
            .await
            .unwrap()
            .is_some()
        }
    })
    .await;
    let node = c.region("east").node.url.clone();
    let client = http();
    let deadline = Instant::now() + Duration::from_secs(4);
    let mut user = 1;
    while Instant::now() < deadline {
        let o = buy(&client, &node, P, user).await;
        assert_eq!(o.status, 403, "{o:?}");
        assert_eq!(o.code.as_deref(), Some("sale_not_active"), "{o:?}");
        user += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(truth(&pg, P).await.orders, 0);
}

/// Issue 9 §1: home regions come from one source and never re-home a sale's buyers. The
/// deployment's list was a per-node flag: adding a region (or a rolling restart with mixed
/// lists) moved users who had already bought to a new home whose database had no order of
/// theirs, and they bought again. Now the list lives in etcd and each sale keeps the list it
/// was created with: after north is added, the first sale's buyers still have their old homes
/// (north answers them 421, their home 409), while a new sale takes the new list. Buyers sent
/// to the wrong region are not counted as that region's demand.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_changed_home_list_never_rehomes_the_buyers_of_a_sale_on() {
    let c = Cluster::builder(&["east", "south", "north"]).start().await;
    let homes = quotactl_json(&c, &["region", "homes", "--set", "east,south"]);
    assert_eq!(homes["regions"], serde_json::json!(["east", "south"]));
    Sale::new(P, 60, "east=30,south=30").create(&c).await;
    let shown = quotactl_json(&c, &["product", "show", &P.to_string()]);
    assert_eq!(
        shown["spec"]["home_regions"],
        serde_json::json!(["east", "south"])
    );
    let two: Vec<String> = vec!["east".into(), "south".into()];
    let three: Vec<String> = vec!["east".into(), "north".into(), "south".into()];
    let client = http();
    let url = |r: &str| c.region(r).node.url.clone();
    let buyers: Vec<i64> = (1..=40).collect();
    for &u in &buyers {
        let home = quota_shared::admission::home_region(u, &two).unwrap();
        assert_eq!(buy(&client, &url(home), P, u).await.status, 201, "user {u}");
    }

    // The deployment grows: north joins the list.
    quotactl_json(&c, &["region", "homes", "--set", "east,south,north"]);
    let moved: Vec<i64> = buyers
        .iter()
        .copied()
        .filter(|&u| quota_shared::admission::home_region(u, &three) == Some("north"))
        .collect();
    assert!(!moved.is_empty(), "some buyers would be re-homed to north");
    let mut again = Vec::new();
    for &u in &buyers {
        for r in ["east", "south", "north"] {
            again.push((u, r, buy(&client, &url(r), P, u).await.status));
        }
    }
    let bought_twice: Vec<_> = again.iter().filter(|(_, _, s)| *s == 201).collect();
    assert!(bought_twice.is_empty(), "bought twice: {bought_twice:?}");
    for &u in &moved {
        let north = again
            .iter()
            .find(|(b, r, _)| *b == u && *r == "north")
            .unwrap();
        assert_eq!(north.2, 421, "user {u} keeps their old home for this sale");
    }
    // North heard only buyers it may not serve: none of them is its demand.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let status = quotactl_json(&c, &["status", &P.to_string()]);
    let north_demand = status["products"][0]["regions"]["north"]["demand"].as_f64();
    assert_eq!(north_demand.unwrap_or(0.0), 0.0, "{status}");

    // A sale created now takes the new list: the moved buyers buy it in north.
    let p2 = P + 1;
    Sale::new(p2, 60, "east=20,south=20,north=20")
        .create(&c)
        .await;
    for &u in &moved {
        assert_eq!(
            buy(&client, &url("north"), p2, u).await.status,
            201,
            "user {u}"
        );
    }
    audit_ok(&c, P).await;
    audit_ok(&c, p2).await;
}
