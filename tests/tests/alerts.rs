//! The Prometheus alert rules (`deploy/prometheus/alerts.yml`) are valid and behave as their
//! unit tests (`alerts.test.yml`) say: `promtool check rules` and `promtool test rules`, and
//! every alert has a test where it fires and one where it does not. promtool comes with
//! Debian's `prometheus` package (`deploy/local/cluster.sh install`); without it these tests
//! fail, saying so — they never skip.

use std::path::PathBuf;
use std::process::Command;

use quota_tests::workspace_root;

fn rules_dir() -> PathBuf {
    workspace_root().join("deploy").join("prometheus")
}

/// Runs `promtool <args>` in the rules directory; panics with its output unless it exits 0,
/// and with how to install it when it is missing.
fn promtool(args: &[&str]) -> String {
    let out = Command::new("promtool")
        .args(args)
        .current_dir(rules_dir())
        .output()
        .unwrap_or_else(|e| {
            panic!(
                "promtool could not run ({e}): install Debian's `prometheus` package \
                 (`deploy/local/cluster.sh install`, or `apt-get install -y prometheus`)"
            )
        });
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "promtool {args:?} failed:\n{text}");
    text
}

/// The names after `- alert:` in alerts.yml.
fn alert_names() -> Vec<String> {
    let rules = std::fs::read_to_string(rules_dir().join("alerts.yml")).unwrap();
    rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("- alert:"))
        .map(|n| n.trim().to_string())
        .collect()
}

#[test]
fn the_alert_rules_are_valid() {
    let out = promtool(&["check", "rules", "alerts.yml"]);
    let n = alert_names().len();
    assert!(out.contains(&format!("SUCCESS: {n} rules found")), "{out}");
}

#[test]
fn the_alert_rules_pass_their_unit_tests() {
    let out = promtool(&["test", "rules", "alerts.test.yml"]);
    assert!(out.contains("SUCCESS"), "{out}");
}

/// Each alert the issue asks for exists, and the unit tests show each alert both firing
/// (`exp_alerts:` with entries) and not firing (`exp_alerts: []`).
#[test]
fn every_alert_is_tested_firing_and_not_firing() {
    let names = alert_names();
    for wanted in [
        "QuotaNoLeader",
        "QuotaRegionNotAlive",
        "QuotaRegionStockStuckInTransit",
        "QuotaAuditFailing",
        "QuotaAuditStale",
        "QuotaDependencyErrors",
        "QuotaRedisDrift",
        "QuotaSaleSellingSlowly",
    ] {
        assert!(names.iter().any(|n| n == wanted), "no alert {wanted}");
    }
    let tests = std::fs::read_to_string(rules_dir().join("alerts.test.yml")).unwrap();
    let mut fires = std::collections::BTreeSet::new();
    let mut quiet = std::collections::BTreeSet::new();
    let mut current = String::new();
    for line in tests.lines().map(str::trim) {
        if let Some(name) = line.strip_prefix("alertname:") {
            current = name.trim().to_string();
        } else if line == "exp_alerts: []" {
            quiet.insert(current.clone());
        } else if line == "exp_alerts:" {
            fires.insert(current.clone());
        }
    }
    for name in &names {
        assert!(fires.contains(name), "no test where {name} fires");
        assert!(quiet.contains(name), "no test where {name} stays quiet");
    }
}
