//! Issue 12 §4 (result notification): the region's order events delivered to a webhook — a
//! receiver in this test, on a loopback port, that fails and recovers or always fails — and
//! read back by the buyer through `GET /v1/users/{user_id}/events`, against a real node,
//! Postgres, Redis and etcd (security on).
//!
//! Orders are made by purchases (`created` events) and cancelled by SQL (the trigger writes the
//! `cancelled` event and gives the units back). Signatures are checked with
//! `quota_shared::webhook::verify`, whose own unit test pins it to `openssl dgst -hmac`.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use axum::routing::post;
use axum::Router;
use quota_shared::webhook::{verify, EVENT_ID_HEADER, SIGNATURE_HEADER};
use quota_tests::{buy, http, test_dir, wait_for, Cluster, Sale, TempDir};
use serde_json::Value;

const P: i64 = 1001;
const SECRET: &str = "order-events-webhook-secret-0123456789abcdef";

/// One request the receiver got, and whether it answered 2xx.
#[derive(Debug, Clone)]
struct Received {
    event_id_header: String,
    signature: String,
    body: Vec<u8>,
    accepted: bool,
}

impl Received {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).expect("a JSON body")
    }
}

/// The test's webhook receiver: records every request, answers 500 while `failing`.
#[derive(Default)]
struct Receiver {
    failing: AtomicBool,
    seen: Mutex<Vec<Received>>,
}

impl Receiver {
    fn seen(&self) -> Vec<Received> {
        self.seen.lock().unwrap().clone()
    }
}

async fn receive(State(r): State<Arc<Receiver>>, headers: HeaderMap, body: Bytes) -> StatusCode {
    let header = |name: &str| {
        headers
            .get(name)
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_string()
    };
    let accepted = !r.failing.load(Ordering::SeqCst);
    r.seen.lock().unwrap().push(Received {
        event_id_header: header(EVENT_ID_HEADER),
        signature: header(SIGNATURE_HEADER),
        body: body.to_vec(),
        accepted,
    });
    if accepted {
        StatusCode::NO_CONTENT
    } else {
        StatusCode::INTERNAL_SERVER_ERROR
    }
}

/// Starts a receiver on a free loopback port; its URL.
async fn start_receiver(failing: bool) -> (Arc<Receiver>, String) {
    let r = Arc::new(Receiver::default());
    r.failing.store(failing, Ordering::SeqCst);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/hook", listener.local_addr().unwrap());
    let app = Router::new()
        .route("/hook", post(receive))
        .with_state(Arc::clone(&r));
    tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
    (r, url)
}

/// A one-region cluster whose node delivers to `url` with `extra` webhook flags; the secret
/// file lives in the returned directory.
async fn cluster_with_webhook(url: &str, extra: &[&str]) -> (Cluster, TempDir) {
    let dir = test_dir();
    let secret = dir.path().join("webhook.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.to_str().unwrap().to_string();
    let mut args = vec![
        "--webhook-url",
        url,
        "--webhook-secret-file",
        &secret,
        "--webhook-poll-ms",
        "50",
    ];
    args.extend_from_slice(extra);
    let c = Cluster::builder(&["east"]).node_args(&args).start().await;
    (c, dir)
}

/// Buys `P` for `users` (each must get its order), then cancels the orders of the users in
/// `cancel` straight in Postgres (the trigger writes their `cancelled` events).
async fn sell_and_cancel(c: &Cluster, users: &[i64], cancel: &[i64]) {
    let client = http();
    let node = &c.region("east").node.url;
    for &u in users {
        let o = buy(&client, node, P, u).await;
        assert_eq!(o.status, 201, "{o:?}");
    }
    let pg = c.pg_client("east").await;
    let n = pg
        .execute(
            "UPDATE orders SET status = 'cancelled', closed_at = now(), closed_by = 'operator'
              WHERE product_id = $1 AND user_id = ANY($2)",
            &[&P, &cancel],
        )
        .await
        .unwrap();
    assert_eq!(n, cancel.len() as u64);
}

/// Every row of the outbox: (event_id, order_id, kind, attempts, delivered, dead, last_error).
async fn outbox(c: &Cluster) -> Vec<(String, String, String, i32, bool, bool, Option<String>)> {
    let pg = c.pg_client("east").await;
    pg.query(
        "SELECT event_id::text, order_id::text, kind, attempts, delivered_at IS NOT NULL,
                dead_at IS NOT NULL, last_error FROM order_events ORDER BY seq",
        &[],
    )
    .await
    .unwrap()
    .iter()
    .map(|r| {
        (
            r.get(0),
            r.get(1),
            r.get(2),
            r.get(3),
            r.get(4),
            r.get(5),
            r.get(6),
        )
    })
    .collect()
}

/// Outbox rows matching `cond` (an SQL condition on `order_events`).
async fn count_where(c: &Cluster, cond: &str) -> i64 {
    let pg = c.pg_client("east").await;
    pg.query_one(
        &format!("SELECT count(*) FROM order_events WHERE {cond}"),
        &[],
    )
    .await
    .unwrap()
    .get(0)
}

/// The value of the node's series `name` (no labels but `region`).
async fn metric(c: &Cluster, name: &str) -> f64 {
    let text = reqwest::get(format!("{}/metrics", c.region("east").node.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let prefix = format!("{name}{{region=\"east\"}} ");
    text.lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .unwrap_or_else(|| panic!("{name} missing from /metrics:\n{text}"))
        .parse()
        .unwrap()
}

/// Every request carries a signature that verifies with the secret over its exact body, and
/// an `X-Quota-Event-Id` that is the body's `event_id`.
fn assert_signed(seen: &[Received]) {
    let now = chrono::Utc::now().timestamp();
    for r in seen {
        verify(SECRET.as_bytes(), &r.signature, &r.body, now, 300)
            .unwrap_or_else(|e| panic!("{e}: {r:?}"));
        assert_eq!(r.json()["event_id"], r.event_id_header.as_str(), "{r:?}");
    }
}

/// A receiver that fails (500) for a while, then recovers: 12 buyers, 4 orders cancelled
/// while it fails. Every event in the outbox is delivered in the end (none dead); the receiver
/// saw every event id; every redelivery of an event carries the same id and the identical
/// body; no `cancelled` event of an order was sent before its `created` one had been taken;
/// every request is signed; and the node's counters agree with what the receiver saw.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_survive_a_failing_receiver_in_order_and_signed() {
    let (receiver, url) = start_receiver(true).await;
    let (c, _secret_dir) = cluster_with_webhook(
        &url,
        &[
            "--webhook-backoff-ms",
            "20",
            "--webhook-backoff-max-ms",
            "200",
            "--webhook-max-attempts",
            "1000",
        ],
    )
    .await;
    Sale::new(P, 100, "east=100").create(&c).await;
    let users: Vec<i64> = (1..=12).collect();
    let cancelled = [3, 6, 9, 12];
    sell_and_cancel(&c, &users, &cancelled).await;

    // Every `created` event has failed at least twice: the receiver has been down a while.
    wait_for("every created event failed twice", || async {
        count_where(&c, "kind = 'created' AND attempts < 2").await == 0
    })
    .await;
    receiver.failing.store(false, Ordering::SeqCst);
    wait_for("every event delivered", || async {
        count_where(&c, "delivered_at IS NULL").await == 0
    })
    .await;

    let rows = outbox(&c).await;
    assert_eq!(rows.len(), users.len() + cancelled.len(), "{rows:?}");
    assert!(
        rows.iter().all(|r| r.4 && !r.5),
        "delivered, none dead: {rows:?}"
    );
    let seen = receiver.seen();
    assert_signed(&seen);
    let ids: HashSet<&str> = seen.iter().map(|r| r.event_id_header.as_str()).collect();
    let in_db: HashSet<&str> = rows.iter().map(|r| r.0.as_str()).collect();
    assert_eq!(ids, in_db, "the receiver saw every event, and nothing else");

    // Duplicates: same id, identical body; and there were some (each failure is redelivered).
    let mut bodies: HashMap<&str, &[u8]> = HashMap::new();
    for r in &seen {
        let first = bodies.entry(&r.event_id_header).or_insert(&r.body);
        assert_eq!(*first, &r.body[..], "a redelivery changed the body");
    }
    assert!(seen.len() > ids.len(), "no event was delivered twice");

    // In order per order: a `cancelled` is sent only after its `created` was accepted.
    let mut created_taken: HashSet<String> = HashSet::new();
    for r in &seen {
        let body = r.json();
        let order = body["order_id"].as_str().unwrap().to_string();
        match body["kind"].as_str().unwrap() {
            "created" if r.accepted => {
                created_taken.insert(order);
            }
            "created" => {}
            kind => assert!(
                created_taken.contains(&order),
                "{kind} of {order} sent before its created event was taken"
            ),
        }
    }
    let kinds: Vec<String> = seen
        .iter()
        .map(|r| r.json()["kind"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(
        kinds.iter().filter(|k| *k == "cancelled").count(),
        cancelled.len()
    );

    let refused = seen.iter().filter(|r| !r.accepted).count();
    assert_eq!(
        metric(&c, "quota_outbox_failed_attempts_total").await,
        refused as f64
    );
    assert_eq!(
        metric(&c, "quota_outbox_delivered_total").await,
        rows.len() as f64
    );
    assert_eq!(metric(&c, "quota_outbox_dead_total").await, 0.0);
    wait_for("the backlog gauge drains to 0", || async {
        metric(&c, "quota_outbox_backlog_events").await == 0.0
    })
    .await;
}

/// A receiver that always fails: each `created` event is tried exactly `--webhook-max-attempts`
/// (3) times and dead-lettered; each `cancelled` event follows its order's dead `created` one
/// into the dead letters without ever being sent. The dead counter counts them all, failed
/// attempts are 3 per order, the backlog gauge shows nothing pending. Then the operator's
/// retry (`POST /v1/admin/events/retry`: one order's, then the rest) with the receiver back
/// delivers every one, created before cancelled.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_that_always_fails_dead_letters_after_max_attempts() {
    let (receiver, url) = start_receiver(true).await;
    let (c, _secret_dir) = cluster_with_webhook(
        &url,
        &[
            "--webhook-backoff-ms",
            "10",
            "--webhook-backoff-max-ms",
            "40",
            "--webhook-max-attempts",
            "3",
        ],
    )
    .await;
    Sale::new(P, 100, "east=100").create(&c).await;
    let users: Vec<i64> = (1..=6).collect();
    let cancelled = [2, 4];
    sell_and_cancel(&c, &users, &cancelled).await;
    wait_for("nothing pending", || async {
        count_where(&c, "delivered_at IS NULL AND dead_at IS NULL").await == 0
    })
    .await;

    let rows = outbox(&c).await;
    assert_eq!(rows.len(), users.len() + cancelled.len());
    for (_, _, kind, attempts, delivered, dead, error) in &rows {
        assert!(*dead && !*delivered, "{kind}: dead, not delivered");
        match kind.as_str() {
            "created" => {
                assert_eq!(*attempts, 3, "created: tried max-attempts times");
                assert!(error.as_deref().unwrap().contains("500"), "{error:?}");
            }
            _ => {
                assert_eq!(*attempts, 0, "{kind}: never sent");
                assert!(
                    error
                        .as_deref()
                        .unwrap()
                        .contains("an earlier event of this order"),
                    "{error:?}"
                );
            }
        }
    }
    let seen = receiver.seen();
    assert_signed(&seen);
    assert_eq!(seen.len(), 3 * users.len(), "3 attempts per created event");
    assert!(seen.iter().all(|r| r.json()["kind"] == "created"));
    assert_eq!(
        metric(&c, "quota_outbox_dead_total").await,
        rows.len() as f64
    );
    assert_eq!(
        metric(&c, "quota_outbox_failed_attempts_total").await,
        seen.len() as f64
    );
    assert_eq!(metric(&c, "quota_outbox_delivered_total").await, 0.0);
    wait_for("the backlog gauge shows nothing pending", || async {
        metric(&c, "quota_outbox_backlog_events").await == 0.0
    })
    .await;

    // The operator's retry, once the receiver is back (`POST /v1/admin/events/retry`, the
    // region-admin token): first one cancelled order's two events, then every other one.
    receiver.failing.store(false, Ordering::SeqCst);
    let retry = format!("{}/v1/admin/events/retry", c.region("east").node.url);
    let client = http();
    let refused = client.post(&retry).send().await.unwrap();
    assert_eq!(
        refused.status(),
        401,
        "the retry needs the region-admin token"
    );
    let one_order = rows.iter().find(|r| r.2 == "cancelled").unwrap().1.clone();
    let retried = |query: String| {
        let req = client
            .post(format!("{retry}{query}"))
            .bearer_auth(&c.admin_token);
        async move {
            let resp = req.send().await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.json::<Value>().await.unwrap()["retried"]
                .as_u64()
                .unwrap()
        }
    };
    assert_eq!(retried(format!("?order_id={one_order}")).await, 2);
    wait_for("the retried order delivered", || async {
        count_where(&c, "delivered_at IS NOT NULL").await == 2
    })
    .await;
    assert_eq!(retried(String::new()).await, rows.len() as u64 - 2);
    wait_for("every retried event delivered", || async {
        count_where(&c, "delivered_at IS NULL").await == 0
    })
    .await;
    let accepted: Vec<Value> = receiver
        .seen()
        .iter()
        .filter(|r| r.accepted)
        .map(Received::json)
        .collect();
    assert_eq!(accepted.len(), rows.len());
    for cancel in accepted.iter().filter(|e| e["kind"] == "cancelled") {
        let at = |kind: &str| {
            accepted
                .iter()
                .position(|e| e["order_id"] == cancel["order_id"] && e["kind"] == kind)
                .unwrap()
        };
        assert!(at("created") < at("cancelled"), "{cancel}");
    }
}

/// Two node processes of one region deliver from the one outbox (claims with `FOR UPDATE
/// SKIP LOCKED` and a lease): with a receiver that always takes them, every event arrives
/// exactly once — no event is sent by both — and the two processes' delivered counters add
/// up to the events.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_node_processes_share_the_outbox_without_sending_twice() {
    let (receiver, url) = start_receiver(false).await;
    let (c, secret_dir) = cluster_with_webhook(&url, &[]).await;
    let secret = secret_dir.path().join("webhook.secret");
    let second = c
        .start_extra_node(
            "east",
            &[
                "--webhook-url",
                &url,
                "--webhook-secret-file",
                secret.to_str().unwrap(),
                "--webhook-poll-ms",
                "50",
            ],
        )
        .await;
    Sale::new(P, 100, "east=100").create(&c).await;
    let users: Vec<i64> = (1..=40).collect();
    let cancelled: Vec<i64> = (1..=40).filter(|u| u % 4 == 0).collect();
    sell_and_cancel(&c, &users, &cancelled).await;
    wait_for("every event delivered", || async {
        count_where(&c, "delivered_at IS NULL").await == 0
    })
    .await;

    let rows = outbox(&c).await;
    assert_eq!(rows.len(), users.len() + cancelled.len());
    let seen = receiver.seen();
    assert_signed(&seen);
    let mut times: HashMap<&str, usize> = HashMap::new();
    for r in &seen {
        *times.entry(&r.event_id_header).or_default() += 1;
    }
    assert_eq!(times.len(), rows.len(), "every event arrived");
    assert!(
        times.values().all(|n| *n == 1),
        "an event was sent twice: {times:?}"
    );
    let scrape = |base: String| async move {
        let text = reqwest::get(format!("{base}/metrics"))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        text.lines()
            .find_map(|l| l.strip_prefix("quota_outbox_delivered_total{region=\"east\"} "))
            .unwrap()
            .parse::<f64>()
            .unwrap()
    };
    let first = scrape(c.region("east").node.url.clone()).await;
    let other = scrape(second.url.clone()).await;
    assert_eq!(first + other, rows.len() as f64, "{first} + {other}");
}
