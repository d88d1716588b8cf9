//! Issue 9, the nemesis suite's short run: one fixed seed (4: its draw kills an etcd member,
//! then the whole store), 20 s of buyers at three regions on a three-member etcd, with
//! security on, while faults strike (kills of nodes, Redis, Postgres, the leader and etcd
//! members; the leader paused past its lease; a region or the leader cut off from etcd;
//! Redis flushed). Every acknowledged order must be in Postgres exactly once, nothing
//! oversold, every unit sold after healing, no buyer over the limit, the audit exact, no
//! region left dead. The long run is `deploy/local/chaos.sh --runs 20`.

use std::time::Duration;

use quota_tests::{run_nemesis, NemesisConfig};

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_short_nemesis_run_finds_no_anomaly() {
    let report = run_nemesis(NemesisConfig {
        seed: 4,
        load: Duration::from_secs(20),
        rate: 30,
        etcd_members: 3,
    })
    .await;
    eprintln!("{report}");
    assert!(report.faults.len() >= 3, "faults were injected: {report}");
    assert!(
        report.statuses.get(&201).copied().unwrap_or(0) > 0,
        "buyers were served: {report}"
    );
    assert!(report.clean(), "{report}");
}
