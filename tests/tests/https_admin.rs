//! Issue 10 §3: the coordinator's admin API and the region node's API (its admin audit endpoint
//! included) can serve HTTPS. `quotactl --cacert` trusts the private CA; the coordinator's
//! audit reads the regions over HTTPS, trusting it through `--tls-ca-file`; a client that does
//! not trust the CA, or speaks plain HTTP to the HTTPS port, gets nothing — so the admin
//! tokens never cross the network in clear.

use std::path::Path;
use std::time::Duration;

use quota_tests::{buy, wait_for, Cluster, TestCa};

const P: i64 = 55;

fn trusting(ca: &Path) -> reqwest::Client {
    quota_serve::client_with_ca(Some(ca))
        .unwrap()
        .timeout(Duration::from_secs(5))
        .build()
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn admin_and_buyers_speak_https_and_only_to_clients_trusting_the_ca() {
    let c = Cluster::builder(&["east", "south"]).https().start().await;
    let coordinator = c.coordinator().url.clone();
    let east = c.region("east").node.url.clone();
    assert!(coordinator.starts_with("https://") && east.starts_with("https://"));
    let ca = c.etcd.ca.as_ref().unwrap().cert.clone();

    // quotactl (with --cacert, added by the harness for an https URL) creates the sale.
    let out = c.quotactl(&[
        "product",
        "create",
        &P.to_string(),
        "--name",
        "tls",
        "--total",
        "10",
        "--price",
        "1.00",
        "--split",
        "east=5,south=5",
    ]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );

    // A buyer trusting the CA buys over HTTPS.
    let client = trusting(&ca);
    wait_for("east to sell over HTTPS", || {
        let (client, url) = (client.clone(), format!("{east}/v1/products/{P}"));
        async move {
            let Ok(r) = client.get(url).send().await else {
                return false;
            };
            let v: serde_json::Value = r.json().await.unwrap_or_default();
            v["available"].as_i64() == Some(5)
        }
    })
    .await;
    assert_eq!(buy(&client, &east, P, 1).await.status, 201);

    // The audit: the coordinator reads both regions' audit endpoints over HTTPS.
    let audit = c.quotactl(&["audit", &P.to_string()]);
    assert!(
        audit.status.success(),
        "{}",
        String::from_utf8_lossy(&audit.stdout)
    );

    // quotactl without the CA: refused by its own certificate check, before any token is sent.
    let bare = std::process::Command::new(quota_tests::bin_path("quotactl"))
        .args(["status", "--url", &coordinator])
        .env("ADMIN_TOKEN", &c.admin_token)
        .current_dir(c.dir.path())
        .output()
        .unwrap();
    assert!(!bare.status.success());
    let said = String::from_utf8_lossy(&bare.stderr).to_lowercase();
    assert!(
        said.contains("certificate") || said.contains("reach"),
        "{said}"
    );

    // Trusting another CA, or plain HTTP to the HTTPS port: no answer.
    let other = TestCa::new(&c.dir.path().join("other-ca"));
    let stranger = trusting(&other.cert);
    assert!(stranger
        .get(format!("{coordinator}/readyz"))
        .send()
        .await
        .is_err());
    assert!(stranger.get(format!("{east}/readyz")).send().await.is_err());
    let plain = coordinator.replacen("https://", "http://", 1);
    let answer = reqwest::Client::new()
        .get(format!("{plain}/v1/admin/status"))
        .bearer_auth(&c.admin_token)
        .timeout(Duration::from_secs(5))
        .send()
        .await;
    assert!(
        !matches!(&answer, Ok(r) if r.status().is_success()),
        "plain HTTP answered: {answer:?}"
    );
}
