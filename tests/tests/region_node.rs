//! Issue 2: the region node against real etcd, Redis and Postgres — the purchase path, grants,
//! bad input, the read endpoints and every purchase strategy. Faults mid-sale live in
//! `region_node_faults.rs`.

use std::time::Duration;

use quota_tests::{
    assert_safe, buy, buy_all, by_status, drain, http, redis_stock, truth, wait_for, Cluster, Sale,
    Truth,
};
use serde_json::Value;

const P: i64 = 1001;

/// 100 units, 1,000 distinct users each sending 2 concurrent purchases (2,000 requests in
/// flight together): exactly 100 orders, every other answer 409/410, Postgres sold = 100 = order
/// count, Redis stock 0, no user with two orders.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn flash_sale_sells_exactly_the_stock() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 100, "east=100").create(&c).await;
    let users: Vec<i64> = (1..=1000).flat_map(|u| [u, u]).collect();
    let out = buy_all(&c.region("east").node.url, P, users, 2000).await;

    let counts = by_status(&out);
    eprintln!("flash sale answers by status: {counts:?}");
    assert_eq!(counts.get(&201), Some(&100), "{counts:?}");
    for o in &out {
        assert!(
            matches!(o.status, 201 | 409 | 410),
            "unexpected answer {o:?} (all: {counts:?})"
        );
    }
    let pg = c.pg_client("east").await;
    let t = truth(&pg, P).await;
    assert_safe(&t, &out);
    assert_eq!((t.sold, t.orders), (100, 100));
    let mut r = c.redis_conn("east").await;
    assert_eq!(redis_stock(&mut r, P).await, Some(0));
    // A user's second request never became a second order.
    let winners: std::collections::HashSet<i64> = out
        .iter()
        .filter(|o| o.status == 201)
        .map(|o| o.user_id)
        .collect();
    assert_eq!(winners.len(), 100);
}

/// Grants applied twice, out of order and after a restart all give the same `g`
/// (`g := max(g, G)`), and Redis admits exactly `g − sold`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_are_idempotent_and_order_insensitive() {
    let mut c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 100, "east=10").create(&c).await;
    // From here the test plays the coordinator (the only writer of grants), writing them
    // straight into etcd — re-delivered, late, out of order — so the real one must be stopped.
    c.coordinators[0].kill9();
    let mut etcd = c.etcd_client().await;
    let key = quota_shared::keys::grant("east", P);
    let pg = c.pg_client("east").await;
    // Re-delivery of the same grant, then an older (smaller) one arriving late.
    for v in ["50", "50", "30", "10"] {
        etcd.put(key.clone(), v, None).await.unwrap();
    }
    wait_for("g = 50", || async { truth(&pg, P).await.granted == 50 }).await;
    // Give the node time to see the stale ones too, then check it stayed at the maximum.
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(truth(&pg, P).await.granted, 50);
    let mut r = c.redis_conn("east").await;
    wait_for("Redis stock = 50", || {
        let mut r = r.clone();
        async move { redis_stock(&mut r, P).await == Some(50) }
    })
    .await;
    // A restart re-reads every grant from etcd: same g, same stock.
    c.region_mut("east").node.restart().await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(truth(&pg, P).await.granted, 50);
    assert_eq!(redis_stock(&mut r, P).await, Some(50));
    // And a sale against it sells exactly 50.
    let out = buy_all(&c.region("east").node.url, P, (1..=80).collect(), 40).await;
    assert_eq!(by_status(&out).get(&201), Some(&50));
    assert_safe(&truth(&pg, P).await, &out);
}

/// Every bad input gets its status and error code, as JSON, and changes nothing in Postgres or
/// Redis.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_is_refused_and_changes_nothing() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    // A product whose sale has not started yet.
    let later = (chrono::Utc::now() + chrono::Duration::hours(1)).to_rfc3339();
    let out = c.quotactl(&[
        "product", "create", "2002", "--name", "later", "--total", "5", "--price", "1.00",
        "--start", &later, "--split", "east=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let node = c.region("east").node.url.clone();
    let client = http();
    // One real purchase so the 409 case has something to conflict with.
    let first = buy(&client, &node, P, 7).await;
    assert_eq!(first.status, 201);
    wait_for("product 2002 known", || {
        let u = format!("{node}/v1/products/2002");
        async move { reqwest::get(u).await.is_ok_and(|r| r.status() == 200) }
    })
    .await;

    let big = format!("{{\"user_id\":1,\"pad\":\"{}\"}}", "x".repeat(8192));
    let p = format!("/v1/products/{P}/purchase");
    let cases: Vec<(&str, String, String, u16, &str)> = vec![
        ("POST", p.clone(), "{".into(), 400, "invalid_request"),
        ("POST", p.clone(), String::new(), 400, "invalid_request"),
        ("POST", p.clone(), "[1]".into(), 400, "invalid_request"),
        ("POST", p.clone(), "{}".into(), 400, "invalid_request"),
        (
            "POST",
            p.clone(),
            r#"{"user_id":0}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":-5}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":1.5}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":"12"}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":12,"quantity":0}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":12,"quantity":2}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":12,"quantity":-1}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":12,"color":"red"}"#.into(),
            400,
            "invalid_request",
        ),
        ("POST", p.clone(), big, 413, "payload_too_large"),
        (
            "POST",
            "/v1/products/abc/purchase".into(),
            r#"{"user_id":12}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/products/0/purchase".into(),
            r#"{"user_id":12}"#.into(),
            400,
            "invalid_request",
        ),
        (
            "POST",
            "/v1/products/424242/purchase".into(),
            r#"{"user_id":12}"#.into(),
            404,
            "unknown_product",
        ),
        (
            "POST",
            "/v1/products/2002/purchase".into(),
            r#"{"user_id":12}"#.into(),
            403,
            "sale_not_active",
        ),
        (
            "POST",
            p.clone(),
            r#"{"user_id":7}"#.into(),
            409,
            "already_purchased",
        ),
        ("GET", p.clone(), String::new(), 405, "method_not_allowed"),
        (
            "GET",
            "/v1/products/424242".into(),
            String::new(),
            404,
            "unknown_product",
        ),
        (
            "GET",
            "/v1/orders/not-a-uuid".into(),
            String::new(),
            400,
            "invalid_request",
        ),
        (
            "GET",
            format!("/v1/orders/{}", uuid::Uuid::new_v4()),
            String::new(),
            404,
            "unknown_order",
        ),
        (
            "GET",
            "/v1/users/-1/orders".into(),
            String::new(),
            400,
            "invalid_request",
        ),
        ("GET", "/nope".into(), String::new(), 404, "not_found"),
    ];
    let pg = c.pg_client("east").await;
    let mut r = c.redis_conn("east").await;
    // Let the first purchase's bookkeeping settle before taking the baseline.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let before = snapshot(&pg, &mut r, &[P, 2002]).await;
    for (method, path, body, status, code) in &cases {
        let url = format!("{node}{path}");
        let req = match *method {
            "POST" => client
                .post(&url)
                .header("content-type", "application/json")
                .body(body.clone()),
            _ => client.get(&url),
        };
        let resp = req.send().await.unwrap();
        assert_eq!(
            resp.status().as_u16(),
            *status,
            "{method} {path} {body:.60}"
        );
        let v: Value = resp
            .json()
            .await
            .unwrap_or_else(|_| panic!("{method} {path}: body is not JSON"));
        assert_eq!(v["error"]["code"], *code, "{method} {path} {body:.60}: {v}");
        assert!(v["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
        if *code == "already_purchased" {
            assert_eq!(v["error"]["order_id"].as_str(), first.order_id.as_deref());
        }
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let after = snapshot(&pg, &mut r, &[P, 2002]).await;
    assert_eq!(before, after, "a refused request changed state");

    // Rate limit: one user hammering gets 429 with Retry-After, and nothing changes either.
    let mut saw_429 = false;
    for _ in 0..20 {
        let resp = client
            .post(format!("{node}/v1/products/424242/purchase"))
            .json(&serde_json::json!({"user_id": 99}))
            .send()
            .await
            .unwrap();
        if resp.status() == 429 {
            assert!(resp.headers().get("retry-after").is_some());
            let v: Value = resp.json().await.unwrap();
            assert_eq!(v["error"]["code"], "rate_limited");
            saw_429 = true;
            break;
        }
    }
    assert!(saw_429, "per-user rate limit never triggered");
    assert_eq!(snapshot(&pg, &mut r, &[P, 2002]).await, after);
}

/// The read endpoints, health, metrics and the OpenAPI document.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn read_endpoints_and_operability() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    let node = c.region("east").node.url.clone();
    let client = http();
    let o = buy(&client, &node, P, 5).await;
    assert_eq!(o.status, 201);
    let id = o.order_id.unwrap();
    let order: Value = reqwest::get(format!("{node}/v1/orders/{id}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(order["user_id"], 5);
    assert_eq!(order["price"], "99.00");
    assert_eq!(order["status"], "pending");
    assert_eq!(order["region"], "east");
    let list: Value = reqwest::get(format!("{node}/v1/users/5/orders"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["orders"][0]["order_id"], id.as_str());
    let prod: Value = reqwest::get(format!("{node}/v1/products/{P}"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        (prod["sold"].as_i64(), prod["available"].as_i64()),
        (Some(1), Some(9))
    );
    assert_eq!(prod["name"], "phone");
    let ready = reqwest::get(format!("{node}/readyz")).await.unwrap();
    assert_eq!(ready.status(), 200);
    let metrics = reqwest::get(format!("{node}/metrics"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("quota_purchase_requests_total{region=\"east\",outcome=\"created\"} 1"),
        "{metrics}"
    );
    assert!(metrics.contains("quota_purchase_duration_seconds_bucket"));
    assert!(metrics.contains("quota_pg_pool_connections"));
    let api: Value = reqwest::get(format!("{node}/openapi.json"))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    for path in [
        "/v1/products/{product_id}/purchase",
        "/v1/orders/{order_id}",
        "/readyz",
    ] {
        assert!(api["paths"][path].is_object(), "{path} undocumented");
    }
}

/// Everything a refused request could have changed: Postgres truth of the products and every
/// Redis key with its value.
async fn snapshot(
    pg: &tokio_postgres::Client,
    r: &mut redis::aio::MultiplexedConnection,
    products: &[i64],
) -> (Vec<Truth>, Vec<(String, Value)>) {
    let mut truths = Vec::new();
    for p in products {
        truths.push(truth(pg, *p).await);
    }
    let keys: Vec<String> = redis::cmd("KEYS").arg("*").query_async(r).await.unwrap();
    let mut state = Vec::new();
    for k in keys.iter().filter(|k| !k.contains("staging")) {
        let t: String = redis::cmd("TYPE").arg(k).query_async(r).await.unwrap();
        let v: Value = match t.as_str() {
            "string" => Value::from(
                redis::cmd("GET")
                    .arg(k)
                    .query_async::<String>(r)
                    .await
                    .unwrap(),
            ),
            "hash" => Value::from(
                redis::cmd("HGETALL")
                    .arg(k)
                    .query_async::<Vec<String>>(r)
                    .await
                    .unwrap(),
            ),
            "zset" => Value::from(
                redis::cmd("ZRANGE")
                    .arg(k)
                    .arg(0)
                    .arg(-1)
                    .query_async::<Vec<String>>(r)
                    .await
                    .unwrap(),
            ),
            other => Value::from(other),
        };
        state.push((k.clone(), v));
    }
    state.sort_by(|a, b| a.0.cmp(&b.0));
    (truths, state)
}

/// Every purchase strategy (v1 pessimistic, v2 optimistic, v3 Redis + conditional update, v4
/// group commit) and isolation level sells exactly the stock, never a unit more, no buyer
/// twice, every acknowledged order in Postgres.
async fn strategy_sells_exactly(strategy: &str, isolation: &str) {
    let c = Cluster::builder(&["east"])
        .node_args(&["--strategy", strategy, "--isolation", isolation])
        .start()
        .await;
    Sale::new(P, 60, "east=60").create(&c).await;
    let node = c.region("east").node.url.clone();
    let users: Vec<i64> = (1..=300).flat_map(|u| [u, u]).collect();
    let mut out = buy_all(&node, P, users, 600).await;
    for o in &out {
        assert!(
            matches!(o.status, 201 | 409 | 410 | 503),
            "{strategy}/{isolation}: {o:?}"
        );
    }
    let pg = c.pg_client("east").await;
    out.extend(drain(&node, &pg, P, 100_000).await);
    let t = truth(&pg, P).await;
    eprintln!("{strategy}/{isolation}: {:?}", by_status(&out));
    assert_safe(&t, &out);
    assert_eq!(t.sold, 60, "{strategy}/{isolation}: {t:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategy_v1_pessimistic() {
    strategy_sells_exactly("v1", "read-committed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategy_v2_optimistic() {
    strategy_sells_exactly("v2", "read-committed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategy_v4_group_commit() {
    strategy_sells_exactly("v4", "read-committed").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn strategy_v3_repeatable_read_and_v2_serializable() {
    strategy_sells_exactly("v3", "repeatable-read").await;
    strategy_sells_exactly("v2", "serializable").await;
}
