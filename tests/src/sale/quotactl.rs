//! `quotactl` as the tests read it: JSON out, and the audit retried until it settles.

use std::time::{Duration, Instant};

use serde_json::Value;

use crate::cluster::Cluster;

/// Runs `quotactl` and parses its `--json` output; panics with stderr on failure.
pub fn quotactl_json(c: &Cluster, args: &[&str]) -> Value {
    let mut a: Vec<&str> = args.to_vec();
    a.push("--json");
    let out = c.quotactl(&a);
    assert!(
        out.status.success(),
        "quotactl {args:?} failed ({:?}): {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("quotactl --json prints JSON")
}

/// Runs `quotactl audit` until it exits 0 (regions report and settle asynchronously), and
/// returns the JSON report; panics with the last report after 30 s.
pub async fn audit_ok(c: &Cluster, product: i64) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let out = c.quotactl(&["audit", &product.to_string(), "--json"]);
        if out.status.success() {
            return serde_json::from_slice(&out.stdout).unwrap();
        }
        assert!(
            Instant::now() <= deadline,
            "audit never passed (exit {:?}): {}{}",
            out.status.code(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}
