#!/usr/bin/env bash
# Checks a running API against its own OpenAPI document with Schemathesis
# (tests/tests/api_contract.rs runs it against a test cluster's region node and coordinator):
#
#   bash deploy/local/api-contract.sh CONFIG.toml SCHEMA_URL [st run options…]
#
# CONFIG.toml is a Schemathesis config (base URL, credentials, pinned parameters, checks);
# every phase runs (examples, coverage, fuzzing, stateful). Exit status is Schemathesis's: 0
# only when no check failed.
#
# Schemathesis lives in a venv under target/api-contract-venv, installed once from PyPI
# (pinned below); after that it runs offline.
set -euo pipefail

cd "$(dirname "$0")/../.."
VENV=target/api-contract-venv
REQUIREMENTS="schemathesis==4.32.5"

die() { echo "deploy/local/api-contract.sh: $*" >&2; exit 1; }

[ $# -ge 2 ] || die "usage: api-contract.sh CONFIG.toml SCHEMA_URL [st run options…]"
CONFIG=$1
SCHEMA=$2
shift 2

# shellcheck source=deploy/local/python-tools.sh
. deploy/local/python-tools.sh
python_tools "$VENV" $REQUIREMENTS  # one word per requirement
[ -x "$VENV/bin/st" ] || die "$VENV/bin/st missing after the install"

# Run beside the config, so whatever Schemathesis or Hypothesis leave behind stays out of the
# work tree.
ST="$PWD/$VENV/bin/st"
CONFIG_DIR=$(cd "$(dirname "$CONFIG")" && pwd)
cd "$CONFIG_DIR"
exec "$ST" --config-file "$CONFIG_DIR/$(basename "$CONFIG")" run "$SCHEMA" --no-color "$@"
