//! Issue 12: orders after the click, on real servers. A pending order is paid (the payments
//! token, idempotent by payment reference, the exact amount), cancelled (its buyer, or an
//! operator with the region-admin token) or expires after its payment window; every refused
//! change is a JSON 4xx that changes nothing; the units of a cancelled or expired order come
//! back exactly once — through a node killed right after the cancellation's commit, and
//! through two node processes sweeping expiries at once — and sell to the next buyer; the
//! audit holds throughout (`sold` = Σ order units, `returned` = Σ cancelled and expired units).

use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use quota_tests::{
    audit_ok, bin_path, buy, http, pid_alive, wait_for, workspace_root, Cluster, Sale,
};
use serde_json::{json, Value};

/// The payment system's token, as the nodes read it from `--payments-token-file`.
const PAYMENTS: &str = "payments-token-0123456789abcdef";

/// A cluster of one region whose nodes take [`PAYMENTS`] for payments and sweep expiries
/// every 100 ms, plus `extra` node flags.
async fn cluster(extra: &[&str]) -> Cluster {
    cluster_of(&["east"], extra).await.0
}

/// [`cluster`] of `regions`, and the payments token's file.
async fn cluster_of(regions: &[&str], extra: &[&str]) -> (Cluster, PathBuf) {
    let dir = quota_tests::test_dir();
    let file = dir.path().join("payments.token");
    std::fs::write(&file, format!("{PAYMENTS}\n")).unwrap();
    let path = file.display().to_string();
    let mut args = vec![
        "--payments-token-file",
        path.as_str(),
        "--expiry-sweep-ms",
        "100",
    ];
    args.extend_from_slice(extra);
    let c = Cluster::builder(regions).node_args(&args).start().await;
    // The token file must outlive the cluster's restarts: keep its directory with it.
    std::mem::forget(dir);
    (c, file)
}

/// One answer: status and JSON body (Null when none), and one header.
struct Answer {
    status: u16,
    body: Value,
    replayed: bool,
}

async fn post(url: String, token: Option<&str>, body: Option<Value>) -> Answer {
    let mut req = http().post(url);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    if let Some(b) = body {
        req = req.json(&b);
    }
    let resp = req.send().await.expect("the node answers");
    let status = resp.status().as_u16();
    let replayed = resp.headers().contains_key("idempotent-replayed");
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        replayed,
    }
}

async fn pay(
    node: &str,
    order: &str,
    token: Option<&str>,
    reference: &str,
    amount: &str,
) -> Answer {
    post(
        format!("{node}/v1/orders/{order}/pay"),
        token,
        Some(json!({ "payment_ref": reference, "amount": amount })),
    )
    .await
}

async fn cancel(node: &str, order: &str, user: i64) -> Answer {
    post(
        format!("{node}/v1/orders/{order}/cancel"),
        None,
        Some(json!({ "user_id": user })),
    )
    .await
}

/// The order ids of buyers `users` (each must get 201).
async fn orders_of(node: &str, product: i64, users: std::ops::RangeInclusive<i64>) -> Vec<String> {
    let client = http();
    let mut ids = Vec::new();
    for u in users {
        let o = buy(&client, node, product, u).await;
        assert_eq!(o.status, 201, "user {u}: {o:?}");
        ids.push(o.order_id.unwrap());
    }
    ids
}

/// `(status, quantity)` per order of the product, and the quota row's `sold`, `returned`.
async fn books(c: &Cluster, product: i64) -> (Vec<(String, i32)>, i64, i64) {
    let pg = c.pg_client("east").await;
    let orders = pg
        .query(
            "SELECT status, quantity FROM orders WHERE product_id = $1 ORDER BY created_at",
            &[&product],
        )
        .await
        .unwrap()
        .iter()
        .map(|r| (r.get(0), r.get(1)))
        .collect();
    let q = pg
        .query_one(
            "SELECT sold, returned FROM region_quota WHERE product_id = $1",
            &[&product],
        )
        .await
        .unwrap();
    (orders, q.get(0), q.get(1))
}

fn assert_refused(what: &str, a: &Answer, status: u16, code: &str) {
    assert_eq!(a.status, status, "{what}: {}", a.body);
    assert_eq!(a.body["error"]["code"], code, "{what}: {}", a.body);
}

/// Pay, replay, refuse; cancel as buyer and as operator; every refusal a JSON 4xx that
/// changes nothing; the two cancelled units sell again, to new buyers, and no more.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_are_paid_or_cancelled_and_cancelled_units_sell_again() {
    const P: i64 = 501;
    let c = cluster(&[]).await;
    Sale::new(P, 6, "east=6").create(&c).await;
    let node = c.region("east").node.url.clone();
    let ids = orders_of(&node, P, 1..=6).await;
    let client = http();
    assert_eq!(buy(&client, &node, P, 7).await.status, 410, "sold out");

    // A payment: the exact amount, once; the same reference again changes nothing.
    let paid = pay(&node, &ids[0], Some(PAYMENTS), "pay-1", "99.00").await;
    assert_eq!(paid.status, 200, "{}", paid.body);
    assert_eq!(paid.body["status"], "paid");
    let again = pay(&node, &ids[0], Some(PAYMENTS), "pay-1", "99.00").await;
    assert_eq!(
        (again.status, again.replayed),
        (200, true),
        "{}",
        again.body
    );

    // Refusals, each changing nothing.
    let (before, sold, returned) = books(&c, P).await;
    for (what, a, status, code) in [
        (
            "no token",
            pay(&node, &ids[1], None, "pay-2", "99.00").await,
            401,
            "unauthorized",
        ),
        (
            "the region-admin token",
            pay(&node, &ids[1], Some(&c.admin_token), "pay-2", "99.00").await,
            403,
            "forbidden_scope",
        ),
        (
            "a paid order, another reference",
            pay(&node, &ids[0], Some(PAYMENTS), "pay-9", "99.00").await,
            409,
            "order_not_pending",
        ),
        (
            "a reference that paid another order",
            pay(&node, &ids[1], Some(PAYMENTS), "pay-1", "99.00").await,
            409,
            "payment_ref_used",
        ),
        (
            "a wrong amount",
            pay(&node, &ids[1], Some(PAYMENTS), "pay-2", "98.99").await,
            422,
            "amount_mismatch",
        ),
        (
            "an amount as a number",
            post(
                format!("{node}/v1/orders/{}/pay", ids[1]),
                Some(PAYMENTS),
                Some(json!({"payment_ref": "pay-2", "amount": 99})),
            )
            .await,
            400,
            "invalid_request",
        ),
        (
            "an unknown order",
            pay(
                &node,
                "0190a000-0000-7000-8000-000000000000",
                Some(PAYMENTS),
                "pay-2",
                "99.00",
            )
            .await,
            404,
            "unknown_order",
        ),
        (
            "not a UUID",
            pay(&node, "order-1", Some(PAYMENTS), "pay-2", "99.00").await,
            400,
            "invalid_request",
        ),
        (
            "someone else's order",
            cancel(&node, &ids[1], 3).await,
            404,
            "unknown_order",
        ),
        (
            "a paid order",
            cancel(&node, &ids[0], 1).await,
            409,
            "order_not_pending",
        ),
        (
            "no buyer",
            post(format!("{node}/v1/orders/{}/cancel", ids[1]), None, None).await,
            400,
            "invalid_request",
        ),
        (
            "the operator route without its token",
            post(
                format!("{node}/v1/admin/orders/{}/cancel", ids[1]),
                Some(PAYMENTS),
                None,
            )
            .await,
            403,
            "forbidden_scope",
        ),
    ] {
        assert_refused(what, &a, status, code);
    }
    let wrong = pay(&node, &ids[1], Some(PAYMENTS), "pay-2", "1.00").await;
    assert_eq!(wrong.body["error"]["amount_due"], "99.00", "{}", wrong.body);
    assert_eq!(
        books(&c, P).await,
        (before, sold, returned),
        "a refusal changed something"
    );

    // The buyer cancels; then an operator (the region-admin token) cancels another.
    let gone = cancel(&node, &ids[1], 2).await;
    assert_eq!(gone.status, 200, "{}", gone.body);
    assert_eq!(gone.body["status"], "cancelled");
    let twice = cancel(&node, &ids[1], 2).await;
    assert_refused("cancelled twice", &twice, 409, "order_not_pending");
    assert_eq!(twice.body["error"]["status"], "cancelled");
    let late = pay(&node, &ids[1], Some(PAYMENTS), "pay-2", "99.00").await;
    assert_refused("paying a cancelled order", &late, 409, "order_not_pending");
    // An operator, through the coordinator (which finds the order's region and uses the
    // region-admin token): show it, cancel it; a second cancel and an unknown order are
    // refusals (exit 4).
    let shown = c.quotactl(&["order", "show", &ids[2], "--json"]);
    assert!(
        shown.status.success(),
        "{}",
        String::from_utf8_lossy(&shown.stderr)
    );
    let shown: Value = serde_json::from_slice(&shown.stdout).unwrap();
    assert_eq!(
        (shown["region"].as_str(), shown["status"].as_str()),
        (Some("east"), Some("pending"))
    );
    let op = c.quotactl(&["order", "cancel", &ids[2], "--json"]);
    assert!(
        op.status.success(),
        "{}",
        String::from_utf8_lossy(&op.stderr)
    );
    let op: Value = serde_json::from_slice(&op.stdout).unwrap();
    assert_eq!(op["status"], "cancelled", "{op}");
    for (args, word) in [
        (
            vec!["order", "cancel", ids[2].as_str()],
            "cancelled, not pending",
        ),
        (
            vec!["order", "show", "0190a000-0000-7000-8000-000000000000"],
            "unknown order",
        ),
    ] {
        let out = c.quotactl(&args);
        let said = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(4), "{args:?}: {said}");
        assert!(said.contains(word), "{args:?}: {said}");
    }

    // Exactly the two units come back: two new buyers get them, the third hears 410.
    let resold = wait_for_sale(&node, P, 8..=9).await;
    assert_eq!(resold, 2);
    assert_eq!(buy(&client, &node, P, 10).await.status, 410);
    let (orders, sold, returned) = books(&c, P).await;
    assert_eq!((sold, returned), (8, 2), "{orders:?}");
    let audit = audit_ok(&c, P).await;
    let east = &audit["products"][0]["regions"]["east"];
    assert_eq!(
        (east["sold"].as_i64(), east["returned"].as_i64()),
        (Some(8), Some(2)),
        "{audit}"
    );
    assert_eq!(
        audit["products"][0]["sold"], 6,
        "units in live orders: {audit}"
    );

    // The operator's report says the same, in units and money.
    let out = c.quotactl(&["report", &P.to_string(), "--json"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &report["totals"];
    let units = |k: &str| t[k].as_i64().unwrap_or(-1);
    assert_eq!(
        [
            units("sold"),
            units("paid"),
            units("pending"),
            units("cancelled"),
            units("expired"),
            units("returned"),
            units("resold"),
            units("available"),
        ],
        [8, 1, 5, 2, 0, 2, 2, 0],
        "{report}"
    );
    assert_eq!(t["revenue"], "99.00", "{report}");
    assert_eq!(report["audit"]["ok"], true, "{report}");
    let table = c.quotactl(&["report", &P.to_string()]);
    let text = String::from_utf8_lossy(&table.stdout);
    assert!(
        text.contains("RESOLD") && text.contains("audit: OK"),
        "{text}"
    );
}

/// Buys for `users` until each got a 201 (units come back within a reconcile pass: a buyer
/// may hear 410 for a moment before); returns how many bought.
async fn wait_for_sale(node: &str, product: i64, users: std::ops::RangeInclusive<i64>) -> usize {
    let client = http();
    let mut bought = 0;
    for u in users {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        loop {
            let o = buy(&client, node, product, u).await;
            if o.status == 201 {
                bought += 1;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "user {u} never bought: {o:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    bought
}

/// Orders not paid within the sale's payment window expire — found by two node processes
/// sweeping the same Postgres at once — and each gives its unit back exactly once: `returned`
/// equals the expired units, one `expired` event per order, a late payment is refused with
/// `expired`, and the units sell again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unpaid_orders_expire_once_with_two_sweepers_and_sell_again() {
    const P: i64 = 502;
    let c = cluster(&[]).await;
    let payments = c.dir.path().join("payments-2.token");
    std::fs::write(&payments, format!("{PAYMENTS}\n")).unwrap();
    let second = c
        .start_extra_node(
            "east",
            &[
                "--payments-token-file",
                &payments.display().to_string(),
                "--expiry-sweep-ms",
                "100",
            ],
        )
        .await;
    Sale::new(P, 40, "east=40")
        .payment_window(2)
        .create(&c)
        .await;
    let node = c.region("east").node.url.clone();
    let ids = orders_of(&node, P, 1..=40).await;
    // One of them is paid in time.
    let paid = pay(&second.url, &ids[0], Some(PAYMENTS), "in-time", "99.00").await;
    assert_eq!(paid.status, 200, "{}", paid.body);

    wait_for("the unpaid orders to expire", || {
        let c = &c;
        async move {
            let (orders, _, _) = books(c, P).await;
            orders.iter().filter(|(s, _)| s == "expired").count() == 39
        }
    })
    .await;
    let (orders, sold, returned) = books(&c, P).await;
    assert_eq!((sold, returned), (40, 39), "{orders:?}");
    let pg = c.pg_client("east").await;
    let expired_events: i64 = pg
        .query_one(
            "SELECT count(*) FROM order_events WHERE product_id = $1 AND kind = 'expired'",
            &[&P],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(expired_events, 39, "one event per expired order");
    let late = pay(&node, &ids[1], Some(PAYMENTS), "too-late", "99.00").await;
    assert_refused("a late payment", &late, 409, "order_not_pending");
    assert_eq!(late.body["error"]["status"], "expired");

    let resold = wait_for_sale(&node, P, 101..=139).await;
    assert_eq!(resold, 39);
    assert_eq!(buy(&http(), &node, P, 140).await.status, 410);
    audit_ok(&c, P).await;
    let out = c.quotactl(&["report", &P.to_string(), "--json"]);
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    let t = &report["totals"];
    assert_eq!(
        (
            t["expired"].as_i64(),
            t["resold"].as_i64(),
            t["paid"].as_i64()
        ),
        (Some(39), Some(39), Some(1)),
        "{report}"
    );
    drop(second);
}

/// A node killed right after a cancellation's commit — before it pokes the reconciler or
/// answers — loses nothing and doubles nothing: Postgres has the order cancelled and the unit
/// returned, the restarted node's Redis is derived from that, and exactly one more buyer gets
/// the unit.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_killed_after_a_cancel_commits_returns_the_unit_once() {
    const P: i64 = 503;
    let mut c = cluster(&["--failpoint", "crash_after_cancel_commit"]).await;
    Sale::new(P, 3, "east=3").create(&c).await;
    let node = c.region("east").node.url.clone();
    let ids = orders_of(&node, P, 1..=3).await;
    let resp = http()
        .post(format!("{node}/v1/orders/{}/cancel", ids[0]))
        .json(&json!({"user_id": 1}))
        .send()
        .await;
    assert!(resp.is_err(), "the node answered: {resp:?}");
    wait_for("east to crash at the failpoint", || {
        let alive = c.region("east").node.proc.pid().is_some_and(pid_alive);
        async move { !alive }
    })
    .await;
    let (orders, sold, returned) = books(&c, P).await;
    assert_eq!((sold, returned), (3, 1), "{orders:?}");
    assert_eq!(orders[0].0, "cancelled");
    {
        let east = &mut c.region_mut("east").node;
        let args = &mut east.proc.spec.args;
        let at = args.iter().position(|a| a == "--failpoint").unwrap();
        args.drain(at..at + 2);
        east.start_again().await;
    }
    let resold = wait_for_sale(&node, P, 4..=4).await;
    assert_eq!(resold, 1);
    assert_eq!(
        buy(&http(), &node, P, 5).await.status,
        410,
        "one unit, once"
    );
    let (_, sold, returned) = books(&c, P).await;
    assert_eq!((sold, returned), (4, 1));
    audit_ok(&c, P).await;
}

/// The demo's "after the click" phase, `deploy/local/orders-demo.sh`, on a two-region cluster:
/// orders paid, cancelled and left to expire, then exactly the returned units resold in each
/// region, the report and the audit agreeing (the script checks each and exits 0 only then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_orders_demo_resells_every_returned_unit_once() {
    let (c, payments) = cluster_of(&["east", "south"], &[]).await;
    let out = tokio::task::spawn_blocking({
        let mut cmd = Command::new("bash");
        cmd.arg("deploy/local/orders-demo.sh")
            .args(["--product", "504", "--window", "2", "--per-region", "5"])
            .current_dir(workspace_root())
            .env("COORDINATOR_URL", &c.coordinator().url)
            .env("ADMIN_TOKEN", &c.admin_token)
            .env("REGIONS", "east,south")
            .env("REGION_EAST_URL", &c.region("east").node.url)
            .env("REGION_SOUTH_URL", &c.region("south").node.url)
            .env("PAYMENTS_TOKEN_FILE", &payments)
            .env("QUOTACTL", bin_path("quotactl"))
            .env("XDG_CONFIG_HOME", c.dir.path())
            .env_remove("COORDINATOR_URLS");
        move || cmd.output()
    })
    .await
    .unwrap()
    .expect("bash runs");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(out.status.success(), "orders-demo.sh failed:\n{text}");
    assert!(text.contains("orders demo: ok"), "{text}");
}
