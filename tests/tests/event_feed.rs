//! Issue 12 §4: the buyer's event feed, `GET /v1/users/{user_id}/events`, on a real node with
//! buyer tokens on — the token's own user only, events in seq order, paged with `after` and
//! `next_after`. Tokens are HS256 JWTs signed with the `openssl` CLI (independent of the
//! node's verifier), as in `buyer_auth.rs`.

use quota_tests::jwt::hs256_bearer;
use quota_tests::{buy, http, Cluster, Sale};
use serde_json::{json, Value};

const P: i64 = 1001;
const Q: i64 = 1002;
const ISS: &str = "https://shop.example";
const AUD: &str = "quota";
const SECRET: &str = "event-feed-buyer-token-secret-0123456789";

/// `Bearer <HS256 JWT for user sub>`, valid for 10 minutes.
fn bearer(sub: i64) -> String {
    hs256_bearer(SECRET, sub, ISS, AUD, 600)
}

/// GET `path` on `node` with `authorization`: status and JSON body.
async fn get(node: &str, path: &str, authorization: Option<&str>) -> (u16, Value) {
    let mut req = http().get(format!("{node}{path}"));
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap_or(Value::Null))
}

/// User 7 buys two products and one of those orders is cancelled; user 8 buys one. With a
/// token, user 7 reads exactly their three events in seq order (created, created, cancelled,
/// the cancelled one of the cancelled order), with every field; a page of 2 then one of 1
/// then an empty one with `next_after` unchanged. Another user's token is 403
/// `user_mismatch`, none is 401, a bad `limit` or `after` is 400. User 8 sees only their own.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_event_feed_pages_a_users_own_events() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    Sale::new(Q, 10, "east=10").create(&c).await;
    let secret_file = c.dir.path().join("buyer-token.secret");
    std::fs::write(&secret_file, format!("{SECRET}\n")).unwrap();
    let node = c
        .start_extra_node(
            "east",
            &[
                "--buyer-token-hs256-secret-file",
                secret_file.to_str().unwrap(),
                "--buyer-token-issuer",
                ISS,
                "--buyer-token-audience",
                AUD,
            ],
        )
        .await;
    // Purchases through the cluster's own node (tokens off there).
    let plain = &c.region("east").node.url;
    let client = http();
    for (user, product) in [(7, P), (8, P), (7, Q)] {
        assert_eq!(buy(&client, plain, product, user).await.status, 201);
    }
    let pg = c.pg_client("east").await;
    let cancelled = pg
        .execute(
            "UPDATE orders SET status = 'cancelled' WHERE user_id = 7 AND product_id = $1",
            &[&P],
        )
        .await
        .unwrap();
    assert_eq!(cancelled, 1);

    let url = &node.url;
    let seven = bearer(7);
    let (status, all) = get(url, "/v1/users/7/events", Some(&seven)).await;
    assert_eq!(status, 200, "{all}");
    assert_eq!(all["user_id"], 7);
    let events = all["events"].as_array().unwrap();
    let shown: Vec<(i64, &str)> = events
        .iter()
        .map(|e| {
            (
                e["product_id"].as_i64().unwrap(),
                e["kind"].as_str().unwrap(),
            )
        })
        .collect();
    assert_eq!(shown, [(P, "created"), (Q, "created"), (P, "cancelled")]);
    let seqs: Vec<i64> = events.iter().map(|e| e["seq"].as_i64().unwrap()).collect();
    assert!(seqs.windows(2).all(|w| w[0] < w[1]), "{seqs:?}");
    assert_eq!(all["next_after"], seqs[2]);
    for e in events {
        assert_eq!(e["user_id"], 7);
        assert_eq!(e["region"], "east");
        assert_eq!(e["quantity"], 1);
        assert_eq!(e["price"], "99.00");
        for field in ["event_id", "order_id", "at"] {
            assert!(e[field].is_string(), "{field}: {e}");
        }
    }
    assert_eq!(events[0]["order_id"], events[2]["order_id"]);

    // Paging: 2, then 1, then none (the cursor stays where it is).
    let (_, first) = get(url, "/v1/users/7/events?limit=2", Some(&seven)).await;
    assert_eq!(first["events"].as_array().unwrap().len(), 2);
    assert_eq!(first["next_after"], seqs[1]);
    let (_, second) = get(
        url,
        &format!("/v1/users/7/events?limit=2&after={}", seqs[1]),
        Some(&seven),
    )
    .await;
    assert_eq!(second["events"].as_array().unwrap().len(), 1);
    assert_eq!(second["events"][0], events[2]);
    assert_eq!(second["next_after"], seqs[2]);
    let (_, empty) = get(
        url,
        &format!("/v1/users/7/events?after={}", seqs[2]),
        Some(&seven),
    )
    .await;
    assert_eq!(empty["events"], json!([]));
    assert_eq!(empty["next_after"], seqs[2]);

    // Only one's own events.
    let (status, body) = get(url, "/v1/users/7/events", Some(&bearer(8))).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (403, Some("user_mismatch"))
    );
    let (status, body) = get(url, "/v1/users/7/events", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("token_missing"))
    );
    for bad in ["limit=0", "limit=501", "after=-1", "after=x"] {
        let (status, body) = get(url, &format!("/v1/users/7/events?{bad}"), Some(&seven)).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (400, Some("invalid_request")),
            "{bad}"
        );
    }
    let (_, eight) = get(url, "/v1/users/8/events", Some(&bearer(8))).await;
    let kinds: Vec<&str> = eight["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["created"]);
    assert_eq!(eight["events"][0]["user_id"], 8);
}
