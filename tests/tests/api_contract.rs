//! Issue 11 §5: the API contract, checked from outside. Schemathesis (PyPI; installed by
//! `deploy/local/api-contract.sh` into a venv under `target/`, pinned) reads the `/openapi.json`
//! each service derives from its Rust types, generates requests from it — examples, coverage,
//! fuzzing, and the stateful phase that follows the document's links (a purchase to its order
//! and its buyer's orders; a created product to every operation on it) — and checks every
//! answer against it. Run against a real one-region cluster (security on, buyer tokens on), on
//! the region API with a buyer token and a product that sells, and on the coordinator's admin
//! API with the operator token; both runs must report no failure. Without Python's venv or
//! PyPI the test fails and says why: a contract check that skips proves nothing.
//!
//! Every check runs (`all`), with each check's accepted statuses set below where the API
//! answers a well-formed request with a refusal by design. The coordinator is fuzzed after the
//! region (it may end, restock or drain what it is handed), on a product of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use quota_tests::jwt::hs256_bearer;
use quota_tests::{http, wait_for, workspace_root, Cluster};
use serde_json::{json, Value};

/// The product the region API is checked with (a million units, per-user limit 100: every
/// quantity the document allows is one the product allows).
const P: i64 = 1001;
/// The product the admin API is checked with (ended, restocked, re-split by the fuzzer).
const Q: i64 = 2002;
const SECRET: &str = "api-contract-buyer-token-secret-0123456789";

/// Creates a product through the admin API.
async fn create(c: &Cluster, body: Value) {
    let resp = http()
        .post(format!("{}/v1/admin/products", c.coordinator().url))
        .bearer_auth(&c.admin_token)
        .json(&body)
        .send()
        .await
        .expect("create the product");
    let status = resp.status();
    assert_eq!(status, 201, "{}", resp.text().await.unwrap_or_default());
}

/// Runs Schemathesis with `config` against the document at `schema`; its output, after
/// asserting it found nothing. Bounded at 10 minutes so a hung run cannot hang the suite.
async fn schemathesis(name: &str, config: &Path, schema: &str) -> String {
    let script = workspace_root().join("deploy/local/api-contract.sh");
    let mut cmd = tokio::process::Command::new("bash");
    cmd.arg(&script)
        .arg(config)
        .arg(schema)
        .current_dir(workspace_root())
        .kill_on_drop(true)
        .stdin(Stdio::null());
    let out = tokio::time::timeout(Duration::from_secs(600), cmd.output())
        .await
        .unwrap_or_else(|_| panic!("{name}: schemathesis did not finish within 10 minutes"))
        .expect("run deploy/local/api-contract.sh");
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr);
    println!("===== schemathesis: {name} =====\n{stdout}");
    assert!(
        out.status.success(),
        "{name}: schemathesis reported failures (exit {:?}); stderr:\n{stderr}",
        out.status.code()
    );
    assert!(stdout.contains("passed"), "{name}: no summary in\n{stdout}");
    stdout
}

/// Writes a Schemathesis config to `dir/name`.
fn config(dir: &Path, name: &str, toml: &str) -> PathBuf {
    let p = dir.join(name);
    std::fs::write(&p, toml).unwrap();
    p
}

/// What both runs share: a fixed seed (a failure reproduces), one worker (two cores shared
/// with the servers), a bound on cases per operation and stateful scenario steps, and nothing
/// kept between runs (no cache or example database in the work tree).
const COMMON: &str = r#"
seed = 11
workers = 1
[cache]
enabled = false
[generation]
max-examples = 300
database = "none"
[phases.stateful]
max-steps = 10
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn both_apis_keep_their_contract() {
    let dir = tempfile::tempdir().unwrap();
    let secret = dir.path().join("buyer-token.secret");
    std::fs::write(&secret, format!("{SECRET}\n")).unwrap();
    let secret = secret.display().to_string();
    let c = Cluster::builder(&["east"])
        .node_args(&[
            "--buyer-token-hs256-secret-file",
            &secret,
            "--buyer-token-issuer",
            "shop",
            "--buyer-token-audience",
            "quota",
        ])
        .start()
        .await;
    create(
        &c,
        json!({"product_id": P, "name": "phone", "total": 1_000_000, "price": "99.00",
               "per_user_limit": 100, "split": {"east": 1_000_000}}),
    )
    .await;
    create(
        &c,
        json!({"product_id": Q, "name": "tablet", "total": 1000, "price": "10.00"}),
    )
    .await;
    let node = c.region("east").node.url.clone();
    let client = http();
    wait_for("the node sells the product", || async {
        let Ok(r) = client.get(format!("{node}/v1/products/{P}")).send().await else {
            return false;
        };
        r.json::<Value>()
            .await
            .is_ok_and(|v| v["available"].as_i64().unwrap_or(0) > 0)
    })
    .await;

    // The region API. A well-formed purchase may be refused by design: 403 (the body names
    // another user than the token's), 409 (already bought), 429 (the per-user rate limit);
    // 410 and 421 cannot happen here (a million units, no home regions) but are answers to
    // well-formed requests too. 400 is not accepted: every range the document gives is the
    // one the node checks.
    let region = config(
        dir.path(),
        "region.toml",
        &format!(
            r#"base-url = "{node}"
{COMMON}
[checks]
enabled = true
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "401", "403", "404", "409", "410", "421", "429"]
[auth.openapi.buyerToken]
bearer = "{token}"
[auth.openapi.adminToken]
bearer = "{admin}"
[parameters]
"path.product_id" = {P}
"#,
            token = hs256_bearer(SECRET, 42, "shop", "quota", 3600).trim_start_matches("Bearer "),
            admin = c.admin_token,
        ),
    );
    schemathesis("region node", &region, &format!("{node}/openapi.json")).await;

    // The admin API. Its bodies have rules across fields that a JSON schema cannot say (the
    // end after the start, a split within the total, regions that exist) and an idempotency
    // key names one call only, so a well-formed change may be refused with 400
    // invalid_request or 422 idempotency_key_reused, by design; 409 is a product that exists.
    let coordinator = c.coordinator().url.clone();
    let admin = config(
        dir.path(),
        "admin.toml",
        &format!(
            r#"base-url = "{coordinator}"
{COMMON}
[checks]
enabled = true
[checks.positive_data_acceptance]
expected-statuses = ["2xx", "400", "401", "403", "404", "409", "422", "429"]
[auth.openapi.adminToken]
bearer = "{admin}"
[parameters]
"path.id" = {Q}
"path.region" = "east"
"#,
            admin = c.admin_token,
        ),
    );
    schemathesis(
        "coordinator admin API",
        &admin,
        &format!("{coordinator}/openapi.json"),
    )
    .await;
}
