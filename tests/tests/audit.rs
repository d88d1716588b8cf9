//! Issue 9 §3: an audit that can fail where it matters and does not where it should not.
//! Faults made by hand in a region's Postgres — an order row deleted, `sold` bumped without an
//! order, units applied in a region the ledger never granted, a release never published — each
//! make `quotactl audit` exit 1 naming the fault; and `quotactl audit --watch` run through a
//! whole sale raises no false alarm.

use std::time::Duration;

use quota_tests::{buy_all, by_status, Cluster, Sale};

/// Runs `quotactl audit <product>`: its exit code and everything it printed.
fn audit(c: &Cluster, product: i64) -> (Option<i32>, String) {
    let out = c.quotactl(&["audit", &product.to_string()]);
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.code(), text)
}

/// Asserts the audit of `product` fails (exit 1) with `words` in what it prints.
fn fails_naming(c: &Cluster, product: i64, words: &str) {
    let (code, text) = audit(c, product);
    assert_eq!(code, Some(1), "audit of {product} must fail: {text}");
    assert!(
        text.contains(words),
        "audit of {product} must name {words:?}: {text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn the_audit_fails_on_each_fault_made_by_hand() {
    let c = Cluster::builder(&["east", "south"])
        .coordinator_args(&["--audit-stuck-after-ms", "1500"])
        .start()
        .await;
    let east = c.region("east").node.url.clone();
    let (deleted, bumped, unheld, unpublished) = (2001, 2002, 2003, 2004);
    for p in [deleted, bumped, unheld, unpublished] {
        Sale::new(p, 10, "east=10").create(&c).await;
        assert_eq!(audit(&c, p).0, Some(0), "{p} balances before any fault");
    }
    let pg_east = c.pg_client("east").await;

    // An acknowledged order disappears.
    let out = buy_all(&east, deleted, vec![1, 2, 3], 3).await;
    assert_eq!(by_status(&out).get(&201), Some(&3));
    pg_east
        .execute(
            "DELETE FROM orders WHERE product_id = $1 AND user_id = 1",
            &[&deleted],
        )
        .await
        .unwrap();
    fails_naming(&c, deleted, "sold = 3 but its orders hold 2 units");

    // A unit counted as sold without any order.
    pg_east
        .execute(
            "UPDATE region_quota SET sold = sold + 1 WHERE product_id = $1",
            &[&bumped],
        )
        .await
        .unwrap();
    fails_naming(&c, bumped, "sold = 1 but its orders hold 0 units");

    // South holds units the ledger never granted it (G = 0: the old audit never read it).
    c.pg_client("south")
        .await
        .execute(
            "UPDATE region_quota SET granted = 5 WHERE product_id = $1",
            &[&unheld],
        )
        .await
        .unwrap();
    fails_naming(&c, unheld, "south: grant in transit is negative (-5)");

    // Units released in east that never reach the pool: the identity still balances (they
    // count as in transit), but they stay in transit.
    pg_east
        .execute(
            "UPDATE region_quota SET released = released + 3 WHERE product_id = $1",
            &[&unpublished],
        )
        .await
        .unwrap();
    fails_naming(&c, unpublished, "east: release stuck in transit");
}

/// A 3-region sale with buyers everywhere, audited back to back the whole time: every audit
/// that completes passes (the region's reads are under its quota row lock, so nothing commits
/// between them, and transfers in flight complete within the stuck bound). One the coordinator
/// cannot complete — the ledger kept moving under a busy sale — is inconclusive, not a failure.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn audits_through_a_whole_sale_raise_no_false_alarm() {
    let c = Cluster::builder(&["east", "south", "north"]).start().await;
    let p = 1001;
    Sale::new(p, 300, "east=100,south=100,north=100")
        .create(&c)
        .await;
    let watch = c.quotactl_spawn(&["audit", &p.to_string(), "--watch", "12"]);
    let urls: Vec<String> = ["east", "south", "north"]
        .iter()
        .map(|r| c.region(r).node.url.clone())
        .collect();
    // Skewed buyers, more than units: east gets most; units move to it while it sells.
    let mut sold = 0;
    for wave in 0..30i64 {
        let mut handles = Vec::new();
        for (i, url) in urls.iter().enumerate() {
            let n = [30, 8, 4][i];
            let first = wave * 1000 + i64::try_from(i).unwrap() * 100 + 1;
            let url = url.clone();
            handles.push(tokio::spawn(async move {
                buy_all(&url, p, (first..first + n).collect(), 16).await
            }));
        }
        for h in handles {
            sold += by_status(&h.await.unwrap()).get(&201).copied().unwrap_or(0);
        }
        if sold >= 300 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(150)).await;
    }
    assert_eq!(sold, 300, "the sale sells out");
    let out = tokio::task::spawn_blocking(move || watch.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        out.status.code(),
        Some(0),
        "an audit failed during the sale:\n{text}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains(" audits ok"), "{text}");
}
