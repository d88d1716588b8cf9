//! Issue 10 (security): verified buyers and trusted proxies on a real region node against real
//! etcd, Redis and Postgres.
//!
//! Buyer tokens are minted here with the `openssl` CLI (keys, HMAC and signatures) and put
//! together by hand — an implementation independent of the node's verifier. Key files go into
//! the cluster's directory, so the verifying node is a second node process of the region
//! (`start_extra_node`) started once they exist; every request of these tests goes to it.

use std::path::Path;

use quota_tests::jwt::{jwt, key_pair, Sig};
use quota_tests::{http, redis_stock, refused_to_start, test_dir, truth, Cluster, Sale};
use serde_json::{json, Value};

const P: i64 = 1001;
const ISS: &str = "https://shop.example";
const AUD: &str = "quota";

/// The claims of a token for `sub`, expiring `exp_in_s` from now.
fn claims(sub: &str, exp_in_s: i64) -> Value {
    let exp = chrono::Utc::now().timestamp() + exp_in_s;
    json!({"sub": sub, "exp": exp, "iss": ISS, "aud": AUD, "iat": exp - 600})
}

fn with(mut c: Value, field: &str, v: &str) -> Value {
    c[field] = json!(v);
    c
}

/// An answer: status, `error.code` (or `user_id` of a 201), the `WWW-Authenticate` header.
#[derive(Debug)]
struct Answer {
    status: u16,
    body: Value,
    challenge: Option<String>,
}

impl Answer {
    fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }
}

async fn send(req: reqwest::RequestBuilder, authorization: Option<&str>) -> Answer {
    let req = match authorization {
        Some(a) => req.header("authorization", a),
        None => req,
    };
    let resp = req.send().await.expect("the node answers");
    let status = resp.status().as_u16();
    let challenge = resp
        .headers()
        .get("www-authenticate")
        .and_then(|v| v.to_str().ok())
        .map(str::to_string);
    let body = resp.json().await.unwrap_or(Value::Null);
    Answer {
        status,
        body,
        challenge,
    }
}

fn as_strs(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// POST a purchase of `P` for body `user`.
async fn purchase(node: &str, user: i64, authorization: Option<&str>) -> Answer {
    let req = http()
        .post(format!("{node}/v1/products/{P}/purchase"))
        .json(&json!({ "user_id": user }));
    send(req, authorization).await
}

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Postgres and Redis are as the sale left them: no order, nothing sold, `stock` in Redis.
async fn assert_untouched(c: &Cluster, stock: i64, what: &str) {
    let t = truth(&c.pg_client("east").await, P).await;
    assert_eq!((t.orders, t.sold), (0, 0), "{what} changed Postgres: {t:?}");
    let mut r = c.redis_conn("east").await;
    assert_eq!(
        redis_stock(&mut r, P).await,
        Some(stock),
        "{what} changed Redis"
    );
}

/// The users holding orders of `P` in east.
async fn buyers_in_postgres(c: &Cluster) -> Vec<i64> {
    let pg = c.pg_client("east").await;
    let rows = pg
        .query(
            "SELECT user_id FROM orders WHERE product_id = $1 ORDER BY user_id",
            &[&P],
        )
        .await
        .unwrap();
    rows.iter().map(|r| r.get(0)).collect()
}

/// With an HS256 secret, every unacceptable request — no token, not a bearer token, a
/// malformed, expired, foreign-issuer, foreign-audience, wrongly signed or unsigned
/// (`alg: none`) token, a `sub` that is no user id — is refused 401 with its code and a
/// `WWW-Authenticate: Bearer` challenge, and a valid token for another user than the body's is
/// refused 403; none of them changes Postgres or Redis. Then a valid token buys, and the order
/// is its `sub`'s. The user's orders are readable with that user's token only, and so is one
/// order: without a token 401, with another user's token 404 exactly as for an order that does
/// not exist. A body without `user_id` buys as the token's `sub` (and without tokens, on the
/// cluster's own node, is still a 400).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_buyer_tokens_change_nothing_and_a_valid_one_buys() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    let secret = format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    );
    let secret_file = c.dir.path().join("buyer-token.secret");
    std::fs::write(&secret_file, format!("{secret}\n")).unwrap();
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
    let url = node.url.clone();
    let key = Sig::Hs256(secret.as_bytes());
    let token = |c: &Value| bearer(&jwt(&key, c));

    let cases: Vec<(&str, Option<String>, u16, &str)> = vec![
        ("no Authorization header", None, 401, "token_missing"),
        (
            "another scheme",
            Some("Basic YnV5ZXI6cHc=".into()),
            401,
            "token_missing",
        ),
        ("not a JWT", Some(bearer("not.a.jwt")), 401, "token_invalid"),
        (
            "expired",
            Some(token(&claims("42", -3600))),
            401,
            "token_expired",
        ),
        (
            "wrong issuer",
            Some(token(&with(
                claims("42", 600),
                "iss",
                "https://evil.example",
            ))),
            401,
            "token_invalid",
        ),
        (
            "wrong audience",
            Some(token(&with(claims("42", 600), "aud", "someone-else"))),
            401,
            "token_invalid",
        ),
        (
            "bad signature",
            Some(bearer(&jwt(
                &Sig::Hs256(b"another-secret-of-at-least-32-bytes!"),
                &claims("42", 600),
            ))),
            401,
            "token_invalid",
        ),
        (
            "alg none",
            Some(bearer(&jwt(&Sig::None, &claims("42", 600)))),
            401,
            "token_invalid",
        ),
        (
            "non-numeric sub",
            Some(token(&claims("alice", 600))),
            401,
            "token_invalid",
        ),
        (
            "body names another user than the token",
            Some(token(&claims("43", 600))),
            403,
            "user_mismatch",
        ),
    ];
    for (what, authorization, status, code) in &cases {
        let a = purchase(&url, 42, authorization.as_deref()).await;
        assert_eq!((a.status, a.code()), (*status, *code), "{what}: {a:?}");
        assert!(
            a.body["error"]["message"].as_str().is_some(),
            "{what}: a JSON error body: {a:?}"
        );
        if *status == 401 {
            let challenge = a.challenge.as_deref().unwrap_or("");
            assert!(challenge.starts_with("Bearer"), "{what}: {a:?}");
        }
        assert_untouched(&c, 10, what).await;
    }

    // A user's orders: only with that user's token.
    let orders = format!("{url}/v1/users/42/orders");
    let a = send(http().get(&orders), None).await;
    assert_eq!((a.status, a.code()), (401, "token_missing"), "{a:?}");
    let a = send(http().get(&orders), Some(&token(&claims("43", 600)))).await;
    assert_eq!((a.status, a.code()), (403, "user_mismatch"), "{a:?}");

    // A valid token buys, as its `sub`.
    let good = token(&claims("42", 600));
    let a = purchase(&url, 42, Some(&good)).await;
    assert_eq!(a.status, 201, "{a:?}");
    assert_eq!(a.body["user_id"], json!(42), "{a:?}");
    assert_eq!(buyers_in_postgres(&c).await, vec![42]);
    let t = truth(&c.pg_client("east").await, P).await;
    assert_eq!((t.orders, t.sold), (1, 1), "{t:?}");
    let a = send(http().get(&orders), Some(&good)).await;
    assert_eq!(a.status, 200, "{a:?}");
    assert_eq!(a.body["orders"][0]["user_id"], json!(42), "{a:?}");
    let order_id = a.body["orders"][0]["order_id"]
        .as_str()
        .unwrap()
        .to_string();

    // One order: the token's own user's only; anyone else's looks like no order at all.
    let order = format!("{url}/v1/orders/{order_id}");
    let a = send(http().get(&order), None).await;
    assert_eq!((a.status, a.code()), (401, "token_missing"), "{a:?}");
    let a = send(http().get(&order), Some(&bearer("not.a.jwt"))).await;
    assert_eq!((a.status, a.code()), (401, "token_invalid"), "{a:?}");
    let other = token(&claims("43", 600));
    let theirs = send(http().get(&order), Some(&other)).await;
    let nowhere = format!("{url}/v1/orders/{}", uuid::Uuid::now_v7());
    let missing = send(http().get(&nowhere), Some(&other)).await;
    assert_eq!(
        (theirs.status, theirs.code()),
        (404, "unknown_order"),
        "{theirs:?}"
    );
    assert_eq!(
        (missing.status, missing.code()),
        (404, "unknown_order"),
        "{missing:?}"
    );
    assert_eq!(
        theirs.body["error"]["message"]
            .as_str()
            .map(|m| m.replace(&order_id, "ID")),
        missing.body["error"]["message"]
            .as_str()
            .map(|m| m.replace(nowhere.rsplit('/').next().unwrap(), "ID")),
        "another user's order and no order are answered alike"
    );
    let a = send(http().get(&order), Some(&good)).await;
    assert_eq!((a.status, &a.body["user_id"]), (200, &json!(42)), "{a:?}");

    // A body without user_id buys as the token's sub.
    let t44 = token(&claims("44", 600));
    let req = http()
        .post(format!("{url}/v1/products/{P}/purchase"))
        .json(&json!({"quantity": 1}));
    let a = send(req, Some(&t44)).await;
    assert_eq!((a.status, &a.body["user_id"]), (201, &json!(44)), "{a:?}");
    assert_eq!(buyers_in_postgres(&c).await, vec![42, 44]);
    // Without buyer tokens (the cluster's own node) the body must name the buyer.
    let plain = c.region("east").node.url.clone();
    let req = http()
        .post(format!("{plain}/v1/products/{P}/purchase"))
        .json(&json!({}));
    let a = send(req, None).await;
    assert_eq!((a.status, a.code()), (400, "invalid_request"), "{a:?}");
}

/// Public keys: an RS256 node (the default algorithm) and an ES256 node each accept their own
/// algorithm's tokens only — an HS256 token "signed" with the RSA public key (the HS/RS
/// confusion), the other public-key algorithm and `alg: none` are refused — and each sells to
/// its token's `sub`.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn public_key_tokens_buy_and_other_algorithms_are_refused() {
    let c = Cluster::builder(&["east"]).start().await;
    Sale::new(P, 10, "east=10").create(&c).await;
    let dir = c.dir.path();
    let (rsa, rsa_pub) = key_pair(dir, "rsa");
    let (ec, ec_pub) = key_pair(dir, "ec");
    let node = |public: &Path, alg: Option<&'static str>| {
        let mut args = vec![
            "--buyer-token-public-key-file".to_string(),
            public.to_str().unwrap().to_string(),
            "--buyer-token-issuer".into(),
            ISS.into(),
            "--buyer-token-audience".into(),
            AUD.into(),
        ];
        if let Some(alg) = alg {
            args.extend(["--buyer-token-alg".into(), alg.into()]);
        }
        args
    };
    let rs_args = node(&rsa_pub, None);
    let es_args = node(&ec_pub, Some("ES256"));
    let rs_node = c.start_extra_node("east", &as_strs(&rs_args)).await;
    let es_node = c.start_extra_node("east", &as_strs(&es_args)).await;

    let rsa_pem = std::fs::read(&rsa_pub).unwrap();
    let refused = [
        (
            "HS256 signed with the RSA public key",
            &rs_node.url,
            jwt(&Sig::Hs256(&rsa_pem), &claims("7", 600)),
        ),
        (
            "ES256 at the RS256 node",
            &rs_node.url,
            jwt(&Sig::Es256(&ec), &claims("7", 600)),
        ),
        (
            "alg none at the RS256 node",
            &rs_node.url,
            jwt(&Sig::None, &claims("7", 600)),
        ),
        (
            "RS256 at the ES256 node",
            &es_node.url,
            jwt(&Sig::Rs256(&rsa), &claims("8", 600)),
        ),
        (
            "expired ES256",
            &es_node.url,
            jwt(&Sig::Es256(&ec), &claims("8", -3600)),
        ),
    ];
    for (what, url, token) in &refused {
        let user = if url == &&rs_node.url { 7 } else { 8 };
        let a = purchase(url, user, Some(&bearer(token))).await;
        assert_eq!(a.status, 401, "{what}: {a:?}");
        assert!(a.code().starts_with("token_"), "{what}: {a:?}");
        assert_untouched(&c, 10, what).await;
    }

    let a = purchase(
        &rs_node.url,
        7,
        Some(&bearer(&jwt(&Sig::Rs256(&rsa), &claims("7", 600)))),
    )
    .await;
    assert_eq!((a.status, &a.body["user_id"]), (201, &json!(7)), "{a:?}");
    let a = purchase(
        &es_node.url,
        8,
        Some(&bearer(&jwt(&Sig::Es256(&ec), &claims("8", 600)))),
    )
    .await;
    assert_eq!((a.status, &a.body["user_id"]), (201, &json!(8)), "{a:?}");
    assert_eq!(buyers_in_postgres(&c).await, vec![7, 8]);
    let t = truth(&c.pg_client("east").await, P).await;
    assert_eq!((t.orders, t.sold), (2, 2), "{t:?}");
}

/// A node whose buyer-token settings are incomplete or unsafe refuses to start, saying why
/// (and before it reaches for any backend: the URLs here lead nowhere).
#[test]
fn unsafe_buyer_token_settings_refuse_to_start() {
    let dir = test_dir();
    let d = dir.path();
    let short = d.join("short.secret");
    std::fs::write(&short, "only-31-bytes-long-secret-here!\n").unwrap();
    let long = d.join("long.secret");
    std::fs::write(&long, "a-secret-that-is-long-enough-for-hs256\n").unwrap();
    let (private, public) = key_pair(d, "rsa");
    let path = |p: &Path| p.to_str().unwrap().to_string();
    let cases: Vec<(&str, Vec<String>, &str)> = vec![
        (
            "a short secret",
            vec![
                "--buyer-token-hs256-secret-file".into(),
                path(&short),
                "--buyer-token-issuer".into(),
                ISS.into(),
                "--buyer-token-audience".into(),
                AUD.into(),
            ],
            "at least 32",
        ),
        (
            "a key without issuer and audience",
            vec!["--buyer-token-hs256-secret-file".into(), path(&long)],
            "--buyer-token-issuer",
        ),
        (
            "both keys",
            vec![
                "--buyer-token-hs256-secret-file".into(),
                path(&long),
                "--buyer-token-public-key-file".into(),
                path(&public),
                "--buyer-token-issuer".into(),
                ISS.into(),
                "--buyer-token-audience".into(),
                AUD.into(),
            ],
            "--buyer-token-public-key-file",
        ),
        (
            "a private key",
            vec![
                "--buyer-token-public-key-file".into(),
                path(&private),
                "--buyer-token-issuer".into(),
                ISS.into(),
                "--buyer-token-audience".into(),
                AUD.into(),
            ],
            "private key",
        ),
        (
            "an RSA key said to be ES256",
            vec![
                "--buyer-token-public-key-file".into(),
                path(&public),
                "--buyer-token-alg".into(),
                "ES256".into(),
                "--buyer-token-issuer".into(),
                ISS.into(),
                "--buyer-token-audience".into(),
                AUD.into(),
            ],
            "ES256",
        ),
        (
            "an issuer but no key",
            vec!["--buyer-token-issuer".into(), ISS.into()],
            "no key",
        ),
    ];
    for (what, extra, says) in cases {
        let mut args = vec![
            "serve",
            "--region",
            "east",
            "--listen",
            "127.0.0.1:0",
            "--redis-url",
            "redis://127.0.0.1:1/",
            "--pg-url",
            "postgres://quota@127.0.0.1:1/quota",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
        ];
        args.extend(extra.iter().map(String::as_str));
        // Bounded: a node that accepted the settings would wait for its backends for ever.
        let (ok, stderr) = refused_to_start("region-node", &args);
        assert!(!ok, "{what}: exit 0");
        assert!(stderr.contains(says), "{what}: {stderr}");
        assert!(
            !stderr.contains("a-secret-that-is-long-enough"),
            "{what}: the secret was printed: {stderr}"
        );
    }
}

/// The status of one purchase request (an empty body: refused 400 after the rate limits, so
/// nothing is bought) that a proxy at 127.0.0.1 forwards for `client`.
async fn forwarded(client: &reqwest::Client, node: &str, xff: &str) -> u16 {
    client
        .post(format!("{node}/v1/products/{P}/purchase"))
        .header("x-forwarded-for", xff)
        .body("{}")
        .send()
        .await
        .expect("the node answers")
        .status()
        .as_u16()
}

/// Sends for `xff` until the per-IP limit refuses (429); how many got through first.
async fn until_limited(client: &reqwest::Client, node: &str, xff: &str) -> usize {
    for passed in 0..100 {
        let s = forwarded(client, node, xff).await;
        if s == 429 {
            return passed;
        }
        assert_eq!(s, 400, "a request under the limit reaches validation");
    }
    panic!("the per-IP limit never refused {xff}");
}

/// `--ip-rate-limit 1` (burst 2). With `--trusted-proxies 127.0.0.1/32` the test (at
/// 127.0.0.1) is a trusted proxy, and two forwarded clients get a bucket each: after the
/// first is refused, the second still has its whole burst. A node without the flag ignores the
/// header: the second client shares the first one's spent bucket and is refused at once.
/// (Only counts, no timing: a bucket refills one token a second, which can only add passes.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trusted_proxies_give_each_forwarded_client_its_own_bucket() {
    let c = Cluster::builder(&["east"])
        .node_args(&["--ip-rate-limit", "1", "--trusted-proxies", "127.0.0.1/32"])
        .start()
        .await;
    let client = http();
    let (a, b) = ("198.51.100.1", "198.51.100.2");

    let trusting = c.region("east").node.url.clone();
    until_limited(&client, &trusting, a).await;
    for i in 0..2 {
        let s = forwarded(&client, &trusting, b).await;
        assert_eq!(
            s, 400,
            "request {i} of the second client has its own bucket"
        );
    }

    let ignoring = c.start_extra_node("east", &["--ip-rate-limit", "1"]).await;
    until_limited(&client, &ignoring.url, a).await;
    let mut refused = 0;
    for _ in 0..5 {
        if forwarded(&client, &ignoring.url, b).await == 429 {
            refused += 1;
        }
    }
    assert!(
        refused > 0,
        "without trusted proxies every request shares the peer's bucket"
    );
}
