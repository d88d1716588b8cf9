//! Issue 10 §3 (admin API): scoped admin tokens on real coordinators and region nodes.
//!
//! The cluster runs with three tokens: the operator's (the harness's `--admin-token`), the
//! auditor's (`--auditor-token-file`) and the region-admin one (`--region-admin-token-file` on
//! the coordinators and the nodes). The tests check every refusal on the wire (401 with a
//! `WWW-Authenticate: Bearer` challenge, 403 `forbidden_scope` naming the scope needed), that
//! a refused change changes nothing, and that the audit works end to end with the
//! coordinator presenting the region-admin token — the only one a node takes.

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use quota_tests::{
    bin_path, http, http_ok, refused_to_start, test_dir, Cluster, CmdSpec, Proc, Sale,
    READY_TIMEOUT,
};
use serde_json::{json, Value};

const P: i64 = 1001;

/// A fresh random token (64 hex digits).
fn fresh_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// Writes `content` (plus a newline) to `dir/name`, mode 0600; its path.
fn token_file(dir: &Path, name: &str, content: &str) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let p = dir.join(name);
    std::fs::write(&p, format!("{content}\n")).unwrap();
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o600)).unwrap();
    p
}

fn arg(p: &Path) -> &str {
    p.to_str().unwrap()
}

/// An answer: status, body, `WWW-Authenticate`.
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

/// Sends `method url` with `authorization` (the whole header value) and `body` (JSON).
async fn send(
    method: &str,
    url: &str,
    authorization: Option<&str>,
    body: Option<&Value>,
) -> Answer {
    let mut req = http().request(method.parse().unwrap(), url);
    if let Some(a) = authorization {
        req = req.header("authorization", a);
    }
    if let Some(b) = body {
        req = req.json(b);
    }
    let resp = req.send().await.expect("the server answers");
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

fn bearer(token: &str) -> String {
    format!("Bearer {token}")
}

/// Asserts `a` is the refusal `(status, code)`: a JSON error body, a `Bearer` challenge on a
/// 401, and on a 403 the scope needed named in the body.
fn assert_refused(what: &str, a: &Answer, status: u16, code: &str, needed: Option<&str>) {
    assert_eq!((a.status, a.code()), (status, code), "{what}: {a:?}");
    assert!(
        a.body["error"]["message"].as_str().is_some(),
        "{what}: a JSON error body: {a:?}"
    );
    if status == 401 {
        let c = a.challenge.as_deref().unwrap_or("");
        assert!(c.starts_with("Bearer"), "{what}: a Bearer challenge: {a:?}");
    }
    if let Some(scope) = needed {
        assert_eq!(
            a.body["error"]["required_scope"],
            json!(scope),
            "{what}: {a:?}"
        );
        let m = a.body["error"]["message"].as_str().unwrap();
        assert!(m.contains(&format!("{scope} scope")), "{what}: {m}");
    }
}

/// `quotactl` run directly (not through [`Cluster::quotactl`], which sends the operator's
/// token): no token in its environment, `args` decide.
fn quotactl(c: &Cluster, args: &[&str]) -> Output {
    Command::new(bin_path("quotactl"))
        .args(args)
        .env("COORDINATOR_URL", &c.coordinator().url)
        .env_remove("ADMIN_TOKEN")
        .env_remove("QUOTA_ADMIN_TOKEN_FILE")
        .current_dir(c.dir.path())
        .stdin(Stdio::null())
        .output()
        .expect("run quotactl")
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// Runs `quotactl audit P` with `token_args` until it exits 0 (a region settles after its
/// grant); panics with the last output after 30 s.
async fn audit_passes(c: &Cluster, token_args: &[&str]) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut args = vec!["audit", "1001"];
    args.extend_from_slice(token_args);
    loop {
        let out = quotactl(c, &args);
        if out.status.success() {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "quotactl {args:?} never passed ({:?}): {}",
            out.status.code(),
            text(&out)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Every admin endpoint with every kind of token: no token or an unknown one is 401; the
/// auditor reads (products, status, regions, home regions, the audit) but every change is
/// 403 `forbidden_scope` naming the operator scope, and changes nothing; the region-admin
/// token is 403 on the coordinator; the operator may do everything. On the region node's
/// audit endpoint only the region-admin token is taken (the node's `--admin-token`, the
/// operator's, is 403 there; the auditor's, unknown to it, 401). `quotactl audit` passes with
/// the operator's and with the auditor's token, so the coordinator presents the region-admin
/// token to the region; `quotactl` with the auditor's token on a change says which scope it
/// needs and exits 1.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_admin_token_does_what_its_scope_allows_and_nothing_more() {
    let files = test_dir();
    let (auditor, region) = (fresh_token(), fresh_token());
    let auditor_file = token_file(files.path(), "auditor.token", &auditor);
    let region_file = token_file(files.path(), "region-admin.token", &region);
    let c = Cluster::builder(&["east"])
        .coordinator_args(&[
            "--auditor-token-file",
            arg(&auditor_file),
            "--region-admin-token-file",
            arg(&region_file),
        ])
        .node_args(&["--region-admin-token-file", arg(&region_file)])
        .start()
        .await;
    let operator = c.admin_token.clone();
    Sale::new(P, 10, "east=10").create(&c).await;
    let coord = c.coordinator().url.clone();
    let at = |path: &str| format!("{coord}{path}");
    let before = send(
        "GET",
        &at("/v1/admin/products/1001"),
        Some(&bearer(&operator)),
        None,
    )
    .await;
    assert_eq!(before.status, 200, "{before:?}");

    // 401: no token, not a bearer token, a token nobody issued; on a read and on a change.
    let unauthenticated: [(&str, Option<String>); 4] = [
        ("no Authorization header", None),
        ("another scheme", Some("Basic b3BlcmF0b3I6cHc=".into())),
        ("an empty bearer token", Some("Bearer ".into())),
        ("a wrong token", Some(bearer(&fresh_token()))),
    ];
    for (what, authorization) in &unauthenticated {
        for (method, path) in [
            ("GET", "/v1/admin/products"),
            ("POST", "/v1/admin/products/1001/end"),
        ] {
            let a = send(method, &at(path), authorization.as_deref(), None).await;
            assert_refused(
                &format!("{what}, {method} {path}"),
                &a,
                401,
                "unauthorized",
                None,
            );
        }
    }

    // The check runs before routing: an unknown admin path is 401 too, not 404; the health
    // endpoints need no token.
    let a = send("GET", &at("/v1/admin/no-such-thing"), None, None).await;
    assert_refused("an unknown admin path", &a, 401, "unauthorized", None);
    for path in ["/healthz", "/readyz"] {
        assert_eq!(
            send("GET", &at(path), None, None).await.status,
            200,
            "{path}"
        );
    }

    // The auditor reads everything, running the audit included.
    let auditor_h = bearer(&auditor);
    for path in [
        "/v1/admin/products",
        "/v1/admin/products/1001",
        "/v1/admin/status",
        "/v1/admin/status?product=1001",
        "/v1/admin/regions",
        "/v1/admin/home-regions",
        "/v1/admin/audit?product=1001",
    ] {
        let a = send("GET", &at(path), Some(&auditor_h), None).await;
        assert_eq!(a.status, 200, "auditor GET {path}: {a:?}");
    }

    // Every change with the auditor's token: 403 naming the operator scope.
    let create = json!({"product_id": 1002, "name": "x", "total": 5, "price": "1.00"});
    let changes: Vec<(&str, &str, Option<Value>)> = vec![
        ("POST", "/v1/admin/products", Some(create)),
        (
            "PUT",
            "/v1/admin/products/1001/quota",
            Some(json!({"split": {"east": 3}})),
        ),
        (
            "PUT",
            "/v1/admin/products/1001/policy",
            Some(json!({"policy": "even"})),
        ),
        (
            "POST",
            "/v1/admin/products/1001/restock",
            Some(json!({"units": 5})),
        ),
        ("POST", "/v1/admin/products/1001/end", None),
        ("POST", "/v1/admin/products/1001/rebalance", None),
        (
            "POST",
            "/v1/admin/regions/east/drain",
            Some(json!({"on": true})),
        ),
        (
            "PUT",
            "/v1/admin/home-regions",
            Some(json!({"regions": ["east"]})),
        ),
    ];
    for (method, path, body) in &changes {
        let a = send(method, &at(path), Some(&auditor_h), body.as_ref()).await;
        assert_refused(
            &format!("auditor {method} {path}"),
            &a,
            403,
            "forbidden_scope",
            Some("operator"),
        );
    }
    // The region-admin token is for region nodes: refused here, even for a read.
    let region_h = bearer(&region);
    for (method, path) in [
        ("GET", "/v1/admin/products"),
        ("GET", "/v1/admin/audit"),
        ("POST", "/v1/admin/products/1001/end"),
    ] {
        let a = send(method, &at(path), Some(&region_h), None).await;
        let needed = if method == "GET" {
            "auditor"
        } else {
            "operator"
        };
        assert_refused(
            &format!("region-admin {method} {path}"),
            &a,
            403,
            "forbidden_scope",
            Some(needed),
        );
    }

    // Nothing changed: the product as it was, no product 1002, no home regions, no drain.
    let op = Some(bearer(&operator));
    let after = send("GET", &at("/v1/admin/products/1001"), op.as_deref(), None).await;
    assert_eq!(
        after.body, before.body,
        "a refused change changed the product"
    );
    let a = send("GET", &at("/v1/admin/products/1002"), op.as_deref(), None).await;
    assert_eq!((a.status, a.code()), (404, "unknown_product"), "{a:?}");
    let a = send("GET", &at("/v1/admin/home-regions"), op.as_deref(), None).await;
    assert_eq!(a.body["regions"], json!([]), "{a:?}");
    let a = send(
        "GET",
        &at("/v1/admin/status?product=1001"),
        op.as_deref(),
        None,
    )
    .await;
    assert!(!a.body.to_string().contains("\"draining\":true"), "{a:?}");

    // The region node's audit endpoint takes the region-admin token only.
    let node_audit = format!("{}/v1/admin/products/1001/audit", c.region("east").node.url);
    let a = send("GET", &node_audit, None, None).await;
    assert_refused("node audit, no token", &a, 401, "unauthorized", None);
    let a = send("GET", &node_audit, Some(&auditor_h), None).await;
    assert_refused(
        "node audit, the auditor's token",
        &a,
        401,
        "unauthorized",
        None,
    );
    let a = send("GET", &node_audit, op.as_deref(), None).await;
    assert_refused(
        "node audit, the operator's token",
        &a,
        403,
        "forbidden_scope",
        Some("region-admin"),
    );
    let a = send("GET", &node_audit, Some(&region_h), None).await;
    assert_eq!(a.status, 200, "node audit, the region-admin token: {a:?}");
    assert_eq!(
        (a.body["region"].as_str(), a.body["granted"].as_i64()),
        (Some("east"), Some(10))
    );

    // quotactl: the audit with either the operator's or the auditor's token reaches the
    // region through the coordinator's region-admin token.
    audit_passes(&c, &["--token", &operator]).await;
    audit_passes(&c, &["--token-file", arg(&auditor_file)]).await;
    let out = quotactl(&c, &["status", "1001", "--token-file", arg(&auditor_file)]);
    assert!(out.status.success(), "auditor status: {}", text(&out));
    // A change with the auditor's token: refused, named, exit 4, nothing changed.
    let out = quotactl(
        &c,
        &["product", "end", "1001", "--token-file", arg(&auditor_file)],
    );
    let said = text(&out);
    assert_eq!(out.status.code(), Some(4), "{said}");
    assert!(
        said.contains("operator scope") && said.contains("forbidden_scope"),
        "{said}"
    );
    assert!(
        !said.contains(&auditor),
        "quotactl printed the token: {said}"
    );
    let a = send("GET", &at("/v1/admin/products/1001"), op.as_deref(), None).await;
    assert_eq!(a.body["spec"]["ended"], json!(false), "{a:?}");
    // The region-admin token through quotactl: refused on a read too.
    let out = quotactl(&c, &["status", "--token-file", arg(&region_file)]);
    assert_eq!(out.status.code(), Some(4), "{}", text(&out));
    assert!(text(&out).contains("auditor scope"), "{}", text(&out));

    // The operator may change things.
    let a = send(
        "POST",
        &at("/v1/admin/products/1001/restock"),
        op.as_deref(),
        Some(&json!({"units": 5})),
    )
    .await;
    assert_eq!((a.status, &a.body["total"]), (200, &json!(15)), "{a:?}");
    let out = quotactl(&c, &["product", "end", "1001", "--token", &operator]);
    assert!(out.status.success(), "operator end: {}", text(&out));
}

/// A coordinator given its operator token by file only (`--admin-token-file`, no
/// `--admin-token`), next to one with the harness's token: each takes its own operator token
/// and refuses the other's with 401; `quotactl --token-file` works against it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_operator_token_can_come_from_a_file() {
    let c = Cluster::builder(&["east"]).start().await;
    let operator = fresh_token();
    let file = token_file(c.dir.path(), "operator.token", &operator);
    let port = quota_tests::free_port();
    let url = format!("http://127.0.0.1:{port}");
    let mut args = vec![
        "serve".to_string(),
        "--id".into(),
        "coordinator-file".into(),
        "--listen".into(),
        format!("127.0.0.1:{port}"),
        "--etcd-endpoints".into(),
        c.etcd.endpoints_arg(),
        "--admin-token-file".into(),
        arg(&file).into(),
    ];
    args.extend(c.etcd.user_args(quota_etcd::rbac::COORDINATOR_USER));
    let spec = CmdSpec::new(bin_path("coordinator")).args(args);
    let mut proc = Proc::spawn(
        "coordinator-file",
        spec,
        c.dir.path().join("coordinator-file.log"),
    );
    let ready = format!("{url}/readyz");
    proc.wait_until("ready (/readyz 200)", READY_TIMEOUT, || http_ok(&ready))
        .await;

    let products = format!("{url}/v1/admin/products");
    let a = send("GET", &products, Some(&bearer(&operator)), None).await;
    assert_eq!(a.status, 200, "{a:?}");
    let a = send("GET", &products, Some(&bearer(&c.admin_token)), None).await;
    assert_refused(
        "the other coordinator's token",
        &a,
        401,
        "unauthorized",
        None,
    );
    let out = Command::new(bin_path("quotactl"))
        .args(["region", "list", "--token-file", arg(&file)])
        .env("COORDINATOR_URL", &url)
        .env_remove("ADMIN_TOKEN")
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", text(&out));
    assert!(text(&out).contains("east"), "{}", text(&out));
    // Its log never shows the token.
    let log = std::fs::read_to_string(c.dir.path().join("coordinator-file.log")).unwrap();
    assert!(!log.contains(&operator), "the log shows the token");
    proc.kill9();
}

/// Token files that are missing, empty, too short or shared by two scopes stop the
/// coordinator and the region node at start with a sentence naming the flag — never the
/// token.
#[test]
fn unusable_admin_token_files_refuse_to_start() {
    let dir = test_dir();
    let d = dir.path();
    let good = token_file(d, "good.token", "a-good-token-of-enough-length");
    let short = token_file(d, "short.token", "tiny-token");
    let empty = d.join("empty.token");
    std::fs::write(&empty, "").unwrap();
    let missing = d.join("missing.token");
    let coordinator = |extra: &[&str]| {
        let mut args = vec![
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--etcd-endpoints",
            "http://127.0.0.1:1",
        ];
        args.extend_from_slice(extra);
        refused_to_start("coordinator", &args)
    };
    let node = |extra: &[&str]| {
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
        args.extend_from_slice(extra);
        refused_to_start("region-node", &args)
    };
    let cases: Vec<(&str, (bool, String), &str)> = vec![
        (
            "coordinator: a short auditor token",
            coordinator(&[
                "--admin-token-file",
                arg(&good),
                "--auditor-token-file",
                arg(&short),
            ]),
            "--auditor-token-file",
        ),
        (
            "coordinator: an empty operator token file",
            coordinator(&["--admin-token-file", arg(&empty)]),
            "is empty",
        ),
        (
            "coordinator: a missing region-admin token file",
            coordinator(&[
                "--admin-token-file",
                arg(&good),
                "--region-admin-token-file",
                arg(&missing),
            ]),
            "--region-admin-token-file",
        ),
        (
            "coordinator: one token for two scopes",
            coordinator(&[
                "--admin-token-file",
                arg(&good),
                "--auditor-token-file",
                arg(&good),
            ]),
            "same",
        ),
        (
            "coordinator: both operator flags",
            coordinator(&[
                "--admin-token",
                "a-good-token-of-enough-length",
                "--admin-token-file",
                arg(&good),
            ]),
            "--admin-token-file",
        ),
        (
            "coordinator: a short --admin-token",
            coordinator(&["--admin-token", "tiny-token"]),
            "at least 16",
        ),
        (
            "node: a short region-admin token",
            node(&["--region-admin-token-file", arg(&short)]),
            "--region-admin-token-file",
        ),
        (
            "node: --admin-token the same as the region-admin token",
            node(&[
                "--admin-token",
                "a-good-token-of-enough-length",
                "--region-admin-token-file",
                arg(&good),
            ]),
            "same token",
        ),
    ];
    for (what, (ok, stderr), says) in cases {
        assert!(!ok, "{what}: exit 0");
        assert!(stderr.contains(says), "{what}: {stderr}");
        for secret in ["a-good-token-of-enough-length", "tiny-token"] {
            assert!(
                !stderr.contains(secret),
                "{what}: the token was printed: {stderr}"
            );
        }
    }
}
