//! Issue 10 §1: etcd authentication with a role per party, on in every test cluster. A
//! region's credentials cannot write another region's keys, a grant, a ledger, a spec, a
//! release request or the election, and cannot read another region's grants; the
//! coordinator's cannot write a region's keys; no credentials or a wrong password get nothing.
//! The bootstrap is idempotent. etcd speaks only TLS, to clients that trust its CA.

use etcd_client::{Client, GetOptions};
use quota_etcd::rbac::{region_user, COORDINATOR_USER};
use quota_shared::keys;
use quota_tests::{Cluster, Sale};

const P: i64 = 77;

fn denied(r: Result<impl std::fmt::Debug, etcd_client::Error>) -> bool {
    match r {
        Err(e) => e.to_string().contains("permission denied"),
        Ok(_) => false,
    }
}

async fn put(c: &mut Client, key: &str) -> Result<(), etcd_client::Error> {
    c.put(key, "{}", None).await.map(|_| ())
}

async fn get_prefix(c: &mut Client, prefix: &str) -> Result<usize, etcd_client::Error> {
    let opts = GetOptions::new().with_prefix();
    c.get(prefix, Some(opts)).await.map(|r| r.kvs().len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_party_may_touch_only_its_own_keys() {
    let c = Cluster::builder(&["east", "south"]).start().await;
    Sale::new(P, 10, "east=5,south=5").create(&c).await;

    let mut east = c.etcd.client_as(&region_user("east")).await.unwrap();
    for key in [
        keys::region_info("south"),
        keys::region_alive("south", "p"),
        keys::region_release("south", P),
        keys::grant("east", P),
        keys::grant("south", P),
        keys::product_ledger(P),
        keys::product_spec(P),
        keys::product_movable(P),
        keys::release_request("east", P),
        keys::drain("east"),
        keys::home_regions(),
        keys::election(),
        keys::operation("k"),
    ] {
        assert!(denied(put(&mut east, &key).await), "east wrote {key}");
    }
    // What a region must read and write, it may.
    put(&mut east, &keys::region_report("east", P, "probe"))
        .await
        .unwrap();
    assert!(
        get_prefix(&mut east, &keys::products_prefix())
            .await
            .unwrap()
            > 0
    );
    assert_eq!(
        get_prefix(&mut east, &keys::grants_prefix("east"))
            .await
            .unwrap(),
        1
    );
    get_prefix(&mut east, &keys::release_requests_prefix("east"))
        .await
        .unwrap();
    // Another region's grants and requests are not its business.
    assert!(denied(
        get_prefix(&mut east, &keys::grants_prefix("south")).await
    ));
    assert!(denied(
        get_prefix(&mut east, &keys::release_requests_prefix("south")).await
    ));
    // Nor is deleting the region keys of another region or the whole tree.
    assert!(denied(east.delete(keys::region_info("south"), None).await));

    let mut coordinator = c.etcd.client_as(COORDINATOR_USER).await.unwrap();
    for key in [
        keys::region_info("east"),
        keys::region_alive("east", "p"),
        keys::region_release("east", P),
        keys::region_report("south", P, "p"),
    ] {
        assert!(
            denied(put(&mut coordinator, &key).await),
            "the coordinator wrote {key}"
        );
    }
    assert!(
        get_prefix(&mut coordinator, &keys::regions_prefix())
            .await
            .unwrap()
            > 0
    );

    // No credentials, or a wrong password: nothing.
    let mut anonymous = Client::connect(c.etcd.endpoints(), None).await.unwrap();
    assert!(anonymous.get(keys::product_spec(P), None).await.is_err());
    let wrong = etcd_client::ConnectOptions::new().with_user(region_user("east"), "not-it");
    assert!(Client::connect(c.etcd.endpoints(), Some(wrong))
        .await
        .is_err());
}

#[tokio::test]
async fn the_bootstrap_changes_nothing_when_run_again() {
    let c = Cluster::builder(&["east"]).start().await;
    let dir = c.etcd.credentials_dir.clone().unwrap();
    let before = std::fs::read_to_string(dir.join("quota-region-east.password")).unwrap();
    let out = std::process::Command::new(quota_tests::bin_path("coordinator"))
        .args([
            "setup-etcd-auth",
            "--etcd-endpoints",
            &c.etcd.endpoints_arg(),
        ])
        .args(c.etcd.ca_args())
        .args(["--regions", "east,west"])
        .arg("--credentials-dir")
        .arg(&dir)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let said = String::from_utf8_lossy(&out.stdout);
    // Only the new region's role and user are created; nothing else changes.
    let changes: Vec<&str> = said
        .lines()
        .filter(|l| !l.starts_with("etcd authentication"))
        .collect();
    assert!(
        !changes.is_empty() && changes.iter().all(|l| l.contains("quota-region-west")),
        "{said}"
    );
    assert_eq!(
        std::fs::read_to_string(dir.join("quota-region-east.password")).unwrap(),
        before,
        "an existing password is kept"
    );
    // The new user works, with its own role.
    let mut west = c.etcd.client_as(&region_user("west")).await.unwrap();
    let info = r#"{"region":"west","url":"http://127.0.0.1:9"}"#;
    west.put(keys::region_info("west"), info, None)
        .await
        .unwrap();
    assert!(denied(put(&mut west, &keys::region_info("east")).await));
    // And the running region was not disturbed.
    let out = c.quotactl(&["region", "list"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[tokio::test]
async fn etcd_speaks_only_tls_and_only_to_clients_trusting_its_ca() {
    let c = Cluster::builder(&["east"]).start().await;
    let member = &c.etcd.members[0];
    assert!(
        member.endpoint.starts_with("https://"),
        "{}",
        member.endpoint
    );
    let password = std::fs::read_to_string(
        c.etcd
            .credentials_dir
            .as_ref()
            .unwrap()
            .join("quota-region-east.password"),
    )
    .unwrap();
    let user =
        || etcd_client::ConnectOptions::new().with_user(region_user("east"), password.trim_end());

    // Plain text to the TLS port: no answer that counts.
    let plain = format!("http://127.0.0.1:{}", member.port);
    let timeout = etcd_client::ConnectOptions::new()
        .with_connect_timeout(std::time::Duration::from_secs(2))
        .with_timeout(std::time::Duration::from_secs(2));
    if let Ok(mut client) = Client::connect([plain.as_str()], Some(timeout)).await {
        assert!(client.get(keys::product_spec(P), None).await.is_err());
    }
    // TLS, but trusting another CA: the handshake fails before any password is sent.
    let other = quota_tests::TestCa::new(&c.dir.path().join("other-ca"));
    let pem = std::fs::read(&other.cert).unwrap();
    let wrong_ca = user().with_tls(
        etcd_client::TlsOptions::new().ca_certificate(etcd_client::Certificate::from_pem(pem)),
    );
    let err = Client::connect(c.etcd.endpoints(), Some(wrong_ca))
        .await
        .err();
    assert!(
        err.as_ref()
            .is_some_and(|e| e.to_string().contains("invalid peer certificate")),
        "{err:?}"
    );
    // The right CA and the region's password: in.
    let right = c.etcd.client_as(&region_user("east")).await.unwrap();
    drop(right);
}

/// The threat model's worst region: east is compromised and, with its own credentials, claims
/// to have given back a million units (it may write `regions/east/releases/`). The pool counts
/// at most what the coordinator asked east to give back (nothing yet), so the claim mints
/// nothing for the other regions — an operator's split asking for more than the real pool
/// gets the real pool — and the audit names east. Before this, the pool read 1,000,050 after
/// the write, and every region could have been granted from it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_claiming_unasked_releases_mints_nothing() {
    let c = Cluster::builder(&["east", "south"]).start().await;
    Sale::new(P, 100, "east=40,south=10")
        .policy("static")
        .create(&c)
        .await;
    let show = || quota_tests::quotactl_json(&c, &["product", "show", &P.to_string()]);
    assert_eq!(show()["pool"], 50);

    let mut east = c.etcd.client_as(&region_user("east")).await.unwrap();
    let forged = quota_shared::model::ReleasePublished {
        released: 1_000_000,
        last_request: None,
        handled: 0,
    };
    east.put(
        keys::region_release("east", P),
        serde_json::to_string(&forged).unwrap(),
        None,
    )
    .await
    .unwrap();

    // East still counts as holding its 40: the pool is unchanged, and an operator's split
    // asking 70 for south gets what the pool really has (50 more), not 60.
    assert_eq!(show()["pool"], 50);
    let out = c.quotactl(&["quota", "set", &P.to_string(), "south=70"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let shown = show();
    assert_eq!(shown["regions"]["south"]["granted"], 60, "{shown}");
    assert_eq!(shown["pool"], 0, "{shown}");
    assert_eq!(shown["regions"]["east"]["holds"], 40, "{shown}");

    // The audit holds the raw claim against the ledger and names east.
    let out = c.quotactl(&["audit", &P.to_string()]);
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(out.status.code(), Some(1), "{said}");
    assert!(
        said.contains("east: published R = 1000000, more than it was ever asked to release"),
        "{said}"
    );
}
