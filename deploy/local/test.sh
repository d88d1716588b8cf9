#!/usr/bin/env bash
# Runs every test of the project — the README's second command, and what CI runs.
#
# 1. installs the servers the tests start (etcd, Redis, Postgres) and protoc, if missing;
# 2. checks formatting and lints (warnings are errors);
# 3. builds the binaries the integration tests spawn;
# 4. runs unit, property and integration tests. Integration tests start their own etcd, Redis
#    and Postgres on free loopback ports and tear them down; two at a time fit this 2-core box.
set -euo pipefail
cd "$(dirname "$0")/../.."

bash deploy/local/cluster.sh install
cargo fmt --all -- --check
cargo clippy --workspace --all-targets --locked -- -D warnings
cargo build --workspace --bins --locked
cargo test --workspace --locked --no-fail-fast -- --test-threads "${QUOTA_TEST_THREADS:-2}"
