//! Helpers shared by the integration tests: create a sale, fire purchases, read the truth.
#![allow(dead_code)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use quota_tests::Cluster;
use serde_json::Value;
use tokio::sync::Semaphore;

/// One purchase answer as the client saw it (status 0 = transport error).
#[derive(Debug, Clone)]
pub struct Outcome {
    pub user_id: i64,
    pub status: u16,
    pub code: Option<String>,
    pub order_id: Option<String>,
    /// When the answer arrived.
    pub at: Instant,
}

/// An HTTP client sized for a flash sale.
pub fn http() -> reqwest::Client {
    reqwest::Client::builder()
        .pool_max_idle_per_host(1024)
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap()
}

/// POST one purchase.
pub async fn buy(client: &reqwest::Client, node: &str, product: i64, user: i64) -> Outcome {
    let resp = client
        .post(format!("{node}/v1/products/{product}/purchase"))
        .json(&serde_json::json!({ "user_id": user }))
        .send()
        .await;
    let Ok(resp) = resp else {
        return Outcome {
            user_id: user,
            status: 0,
            code: None,
            order_id: None,
            at: Instant::now(),
        };
    };
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap_or(Value::Null);
    Outcome {
        user_id: user,
        status,
        code: body["error"]["code"].as_str().map(str::to_string),
        order_id: if status == 201 {
            body["order_id"].as_str().map(str::to_string)
        } else {
            None
        },
        at: Instant::now(),
    }
}

/// Fires one purchase per entry of `users` (repeat a user to send it twice), at most
/// `concurrency` at once, all released together.
pub async fn buy_all(
    node: &str,
    product: i64,
    users: Vec<i64>,
    concurrency: usize,
) -> Vec<Outcome> {
    let client = http();
    let gate = Arc::new(Semaphore::new(concurrency));
    let handles: Vec<_> = users
        .into_iter()
        .map(|u| {
            let client = client.clone();
            let node = node.to_string();
            let gate = Arc::clone(&gate);
            tokio::spawn(async move {
                let _permit = gate.acquire().await.unwrap();
                buy(&client, &node, product, u).await
            })
        })
        .collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

/// Creates a sale through quotactl and waits until every region named in `split` has applied
/// its grant (the region node's product view shows it).
pub async fn create_sale(c: &Cluster, product: i64, total: i64, split: &str) {
    let out = c.quotactl(&[
        "product",
        "create",
        &product.to_string(),
        "--name",
        "phone",
        "--total",
        &total.to_string(),
        "--price",
        "99.00",
        "--original-price",
        "199.00",
        "--split",
        split,
    ]);
    assert!(
        out.status.success(),
        "quotactl failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for item in split.split(',') {
        let (region, units) = item.split_once('=').unwrap();
        let units: i64 = units.parse().unwrap();
        let url = format!("{}/v1/products/{product}", c.region(region).node.url);
        wait_for(&format!("{region} to apply its grant"), || {
            let url = url.clone();
            async move {
                let Ok(r) = reqwest::get(&url).await else {
                    return false;
                };
                let v: Value = r.json().await.unwrap_or(Value::Null);
                v["available"].as_i64() == Some(units)
            }
        })
        .await;
        // Postgres has the grant; the region sells once Redis admits against it too.
        let r = c.redis_conn(region).await;
        wait_for(&format!("{region}'s Redis to admit its grant"), || {
            let mut r = r.clone();
            async move { redis_stock(&mut r, product).await == Some(units) }
        })
        .await;
    }
}

/// Polls `probe` every 50 ms until it holds; panics after 30 s (a liveness bound, not a timing
/// assertion: it only stops a broken run from hanging).
pub async fn wait_for<F, Fut>(what: &str, mut probe: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if probe().await {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for {what}");
}

/// What a region's Postgres says about a product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Truth {
    pub granted: i64,
    pub released: i64,
    pub sold: i64,
    pub order_units: i64,
    pub orders: i64,
    pub duplicate_buyers: i64,
    pub order_ids: HashSet<String>,
}

pub async fn truth(pg: &tokio_postgres::Client, product: i64) -> Truth {
    let q = pg
        .query_one(
            "SELECT granted, released, sold FROM region_quota WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap();
    let o = pg
        .query_one(
            "SELECT count(*), coalesce(sum(quantity), 0)::BIGINT FROM orders WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap();
    let dups = pg
        .query_one(
            "SELECT count(*) FROM (SELECT user_id FROM orders WHERE product_id = $1
                                   GROUP BY user_id HAVING count(*) > 1) d",
            &[&product],
        )
        .await
        .unwrap();
    let ids = pg
        .query(
            "SELECT order_id::TEXT FROM orders WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| r.get::<_, String>(0))
        .collect();
    Truth {
        granted: q.get(0),
        released: q.get(1),
        sold: q.get(2),
        orders: o.get(0),
        order_units: o.get(1),
        duplicate_buyers: dups.get(0),
        order_ids: ids,
    }
}

/// The safety invariants of one region after a run: sold = Σ order units ≤ what it holds, no
/// duplicate buyer, and every acknowledged (201) order is in Postgres.
pub fn assert_safe(t: &Truth, outcomes: &[Outcome]) {
    assert_eq!(
        t.sold, t.order_units,
        "sold must equal the order units: {t:?}"
    );
    assert!(t.sold <= t.granted - t.released, "oversold: {t:?}");
    assert_eq!(t.duplicate_buyers, 0, "a user holds two orders");
    for o in outcomes.iter().filter(|o| o.status == 201) {
        let id = o.order_id.as_ref().expect("201 carries an order id");
        assert!(
            t.order_ids.contains(id),
            "acknowledged order {id} is missing from Postgres"
        );
    }
    let acked: HashSet<_> = outcomes.iter().filter_map(|o| o.order_id.clone()).collect();
    assert_eq!(
        acked.len(),
        outcomes.iter().filter(|o| o.status == 201).count(),
        "order ids unique"
    );
}

/// Redis admission stock for a product (None when its state is not built).
pub async fn redis_stock(
    conn: &mut redis::aio::MultiplexedConnection,
    product: i64,
) -> Option<i64> {
    let (gen, stock): (Option<String>, Option<i64>) = redis::pipe()
        .get(format!("quota:{{{product}}}:gen"))
        .get(format!("quota:{{{product}}}:stock"))
        .query_async(conn)
        .await
        .unwrap();
    gen.map(|_| stock.unwrap_or(0))
}

/// Count of answers by status.
pub fn by_status(outcomes: &[Outcome]) -> HashMap<u16, usize> {
    let mut m = HashMap::new();
    for o in outcomes {
        *m.entry(o.status).or_insert(0) += 1;
    }
    m
}

/// Buys with fresh users until the region answers sold out; returns every outcome.
/// Used after a fault to prove no unit was stranded: the region must sell exactly what it holds.
pub async fn drain(
    node: &str,
    pg: &tokio_postgres::Client,
    product: i64,
    first_user: i64,
) -> Vec<Outcome> {
    let client = http();
    let mut out = Vec::new();
    let mut user = first_user;
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        assert!(Instant::now() < deadline, "region never reached sold out");
        let batch: Vec<_> = (0..20)
            .map(|i| {
                let c = client.clone();
                let n = node.to_string();
                tokio::spawn(async move { buy(&c, &n, product, user + i).await })
            })
            .collect();
        user += 20;
        let mut sold_out = false;
        for h in batch {
            let o = h.await.unwrap();
            sold_out |= o.status == 410;
            out.push(o);
        }
        if sold_out {
            // Units may still be held by tickets whose outcome was unknown (they come back when
            // the reconciler settles them): only a sold-out answer that Postgres agrees with
            // (available = 0) ends the drain.
            let t = truth(pg, product).await;
            if t.granted - t.released - t.sold == 0 {
                return out;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// Runs `quotactl` and parses its `--json` output; panics with stderr on failure.
pub fn quotactl_json(c: &Cluster, args: &[&str]) -> Value {
    let mut a: Vec<&str> = args.to_vec();
    a.push("--json");
    let out = c.quotactl(&a);
    assert!(
        out.status.success(),
        "quotactl {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("quotactl --json prints JSON")
}

/// Runs `quotactl audit` until it exits 0 (regions report and settle asynchronously), and
/// returns the JSON report; panics with the last report after 30 s.
pub async fn audit_ok(c: &Cluster, product: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.quotactl(&["audit", &product.to_string(), "--json"]);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        if Instant::now() > deadline {
            panic!(
                "audit never passed (exit {:?}): {}{}",
                out.status.code(),
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Σ sold over regions, from each region's Postgres.
pub async fn total_sold(c: &Cluster, regions: &[&str], product: i64) -> i64 {
    let mut sum = 0;
    for r in regions {
        sum += truth(&c.pg_client(r).await, product).await.sold;
    }
    sum
}
