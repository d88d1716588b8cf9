#!/usr/bin/env bash
# The nemesis suite's long run: seeded chaos against fresh local 3-region clusters.
#
#   deploy/local/chaos.sh [--runs N] [--seed S] [--secs S] [--rate R] [--etcd-members M]
#
# Each run starts its own cluster (a three-member etcd, two coordinators, per region Redis, Postgres and a node,
# every region reaching etcd through the fault proxy), sends buyers to their home regions for
# --secs seconds while faults drawn from the seed strike one after another (kill -9 of a node,
# Redis, Postgres, the leader, one etcd member or all; the leader paused past its lease; a region cut off from
# etcd; Redis flushed), heals, sells the rest and checks: every acknowledged order in Postgres
# exactly once, nothing oversold, every unit sold, no buyer over the limit, the audit exact, no
# region left dead. It prints each run's faults and verdict, then a table. Exit 1 if any run
# found an anomaly; rerun that seed with --seed N --runs 1 to see the same faults again.
# Defaults: 20 runs from seed 1, 30 s of load, 40 buyers/s per region, 3 etcd members (about
# 1 minute a run).
set -euo pipefail
cd "$(dirname "$0")/../.."

runs=20 seed=1 secs=30 rate=40 members=3
while [[ $# -gt 0 ]]; do
  case "$1" in
    --runs) runs="${2:?--runs needs a value}"; shift 2 ;;
    --seed) seed="${2:?--seed needs a value}"; shift 2 ;;
    --secs) secs="${2:?--secs needs a value}"; shift 2 ;;
    --rate) rate="${2:?--rate needs a value}"; shift 2 ;;
    --etcd-members) members="${2:?--etcd-members needs a value}"; shift 2 ;;
    -h|--help) sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "chaos.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done

bash deploy/local/cluster.sh install
if [[ -z "${QUOTA_BIN_DIR:-}" ]]; then
  cargo build --workspace --bins --locked
  export QUOTA_BIN_DIR="$PWD/target/debug"
fi
exec "$QUOTA_BIN_DIR/quota-chaos" --seed "$seed" --runs "$runs" --secs "$secs" --rate "$rate" --etcd-members "$members"
