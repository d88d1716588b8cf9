#!/usr/bin/env bash
# Side-by-side benchmarks: every variant of a scenario in one run, so the table's ratios compare
# like with like on this (shared, noisy) machine.
#
#   deploy/local/bench.sh strategies|regions|scale|all [--json FILE] [--quick] [--runs N]
#
# strategies  one region, flash sale: v1 pessimistic, v2 optimistic, v3 Redis + conditional
#             update, v4 group commit, and isolation levels, each at its capacity (the offered
#             rate doubles, then bisects, until attempts/s stops growing), with node CPU-seconds
#             per 1,000 attempts next to a bare axum endpoint's and the generator's own CPU;
#             plus sold-out rejections on the node vs the bare endpoint
# regions     3 regions at 5/40/80 ms from etcd, demand 70/20/10 shifting to 10/20/70:
#             escrow (this project) vs static split vs one central counter, each design
#             --runs times (default 3) on fresh clusters: median and worst of every measure
# scale       offered load doubling per step; which process saturates
#
# Builds release binaries, then runs target/release/quota-bench with the test harness starting
# real etcd, Redis and Postgres on free loopback ports (everything stops by itself).
set -euo pipefail
cd "$(dirname "$0")/../.."

scenario="${1:-}"
[[ -n "$scenario" ]] || { sed -n '2,18p' "$0"; exit 2; }
shift
case "$scenario" in
  strategies|regions|scale|all) ;;
  -h|--help) sed -n '2,18p' "$0"; exit 0 ;;
  *) echo "bench: unknown scenario '$scenario' (strategies, regions, scale, all)" >&2; exit 2 ;;
esac

bash deploy/local/cluster.sh install
profile="${QUOTA_BENCH_PROFILE:-release}"
if [[ "$profile" == release ]]; then
  cargo build --release --bins --locked
else
  cargo build --bins --locked
fi
export QUOTA_BIN_DIR="$PWD/target/$profile"
if [[ "$scenario" == all ]]; then
  json=""
  rest=()
  while [[ $# -gt 0 ]]; do
    case "$1" in --json) json="$2"; shift 2 ;; *) rest+=("$1"); shift ;; esac
  done
  for s in strategies regions scale; do
    "$QUOTA_BIN_DIR/quota-bench" "$s" ${json:+--json "${json%.json}-$s.json"} "${rest[@]}"
  done
else
  exec "$QUOTA_BIN_DIR/quota-bench" "$scenario" "$@"
fi
