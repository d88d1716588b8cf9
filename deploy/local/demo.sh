#!/usr/bin/env bash
# The README's first command: a multi-region flash sale on this machine, played by the load
# generator, with its report and conservation audit.
#
#   deploy/local/demo.sh [--keep] [--json FILE] [--total N] [--rate N] [--debug]
#
# 1. installs what is missing (etcd, Redis, Postgres, protoc, curl) and builds in release mode;
# 2. starts etcd, two coordinators, and three regions — east, south, north, each with its own
#    Redis, Postgres and region node — that reach etcd through a delay proxy at 5, 40 and 80 ms
#    one way (the modelled distance);
# 3. creates a sale split evenly across the regions (demand rebalancing on);
# 4. runs quota-loadgen: an opening spike, then steady open-loop arrivals, demand 70/20/10 that
#    shifts to 10/20/70 mid-sale, every buyer retrying a bounded number of times;
# 5. prints the report — oversold and lost orders (must be 0), then the sale's quality as the
#    project defines it once (quota_shared::quality): time to sell-out, FCFS inversions (count
#    and % of buyers), stranded units, false 410s, 503 awaiting_stock answers per order,
#    buyer-perceived p50/p99 per region (arrival → final answer), units moved — then latency
#    per region and status, and `quotactl status` and `quotactl audit`;
# 6. after the click (deploy/local/orders-demo.sh): a second, small sale whose orders are paid,
#    cancelled or left to expire, and whose returned units sell again — `quotactl report`;
# 7. shuts everything down — unless --keep, which leaves the cluster up for quotactl.
#
# Exit status 0 only when nothing was oversold, no acknowledged order is missing, every returned
# unit sold again exactly once, and the audit holds. --json FILE also writes the report as JSON
# (oversold, lost_orders, audit, and the `quality` object: sellout_s, fcfs_inversions, stranded,
# false_sold_outs, …; a measure the run had no source for is null).
set -euo pipefail
cd "$(dirname "$0")/../.."

KEEP=0
JSON=""
TOTAL=3000
RATE=1200
PROFILE=release
while [[ $# -gt 0 ]]; do
  case "$1" in
    --keep) KEEP=1; shift ;;
    --json) JSON="${2:?--json needs a file}"; shift 2 ;;
    --total) TOTAL="${2:?}"; shift 2 ;;
    --rate) RATE="${2:?}"; shift 2 ;;
    --debug) PROFILE=debug; shift ;;
    -h|--help) sed -n '2,26p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
[[ "$TOTAL" =~ ^[1-9][0-9]*$ && "$RATE" =~ ^[1-9][0-9]*$ ]] || { echo "demo: --total and --rate must be positive integers" >&2; exit 2; }

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
OUT=target/demo
mkdir -p "$OUT"

bash deploy/local/cluster.sh down >/dev/null 2>&1 || true
if [[ $KEEP -eq 0 ]]; then
  trap 'bash deploy/local/cluster.sh down >/dev/null 2>&1 || true' EXIT
fi

say "starting: etcd, 2 coordinators, regions east/south/north at 5/40/80 ms from etcd ($PROFILE build)"
up_args=(--regions east,south,north --coordinators 2 --latency east=5,south=40,north=80)
[[ "$PROFILE" == release ]] && up_args+=(--release)
bash deploy/local/cluster.sh up "${up_args[@]}"
# shellcheck disable=SC1091
source target/cluster/cluster.env
BIN="target/$PROFILE"
Q="$BIN/quotactl"

share=$((TOTAL / 3))
split="east=$share,south=$share,north=$((TOTAL - 2 * share))"
say "sale 1001: $TOTAL units at 99.00, split $split, policy demand"
"$Q" product create 1001 --name "demo phone" --total "$TOTAL" --price 99.00 \
  --original-price 199.00 --split "$split" --policy demand

# Each region learns the sale through its (delayed) link to etcd: wait until all of them sell it.
for url in "$REGION_EAST_URL" "$REGION_SOUTH_URL" "$REGION_NORTH_URL"; do
  for _ in $(seq 1 100); do
    curl -fsS "$url/v1/products/1001" 2>/dev/null | grep -q '"available":[1-9]' && break
    sleep 0.1
  done
done

say "flash sale: spike $((RATE * 3))/s for 1 s, then $RATE/s; demand 70/20/10 shifting to 10/20/70 after 3 s"
# The regions' Postgres want TLS and a password (cluster.sh is secure by default).
pg_auth=()
if [[ -n "${TLS_CA_FILE:-}" ]]; then
  pg_auth=(--pg-ca-file "$TLS_CA_FILE" --pg-password-file "east=$REGION_EAST_PG_PASSWORD_FILE"
    --pg-password-file "south=$REGION_SOUTH_PG_PASSWORD_FILE"
    --pg-password-file "north=$REGION_NORTH_PG_PASSWORD_FILE")
fi
set +e
"$BIN/quota-loadgen" --product 1001 \
  --region "east=$REGION_EAST_URL" --region "south=$REGION_SOUTH_URL" --region "north=$REGION_NORTH_URL" \
  --coordinator "$COORDINATOR_URL" --token "$ADMIN_TOKEN" \
  --pg "east=$REGION_EAST_PG_URL" --pg "south=$REGION_SOUTH_PG_URL" --pg "north=$REGION_NORTH_PG_URL" \
  "${pg_auth[@]}" \
  --rate "$RATE" --spike-rate "$((RATE * 3))" --spike-secs 1 --duration 60 \
  --weights east=70,south=20,north=10 --shift-at 3 --shift-weights east=10,south=20,north=70 \
  --retries 3 --retry-backoff-ms 100 \
  --json "$OUT/report.json" --svg "$OUT/chart.svg"
loadgen_rc=$?
set -e

say "status"
"$Q" status 1001
say "audit"
set +e
"$Q" audit 1001
audit_rc=$?
set -e

say "after the click: orders paid, cancelled and expired; the units that come back sell again"
set +e
QUOTACTL="$Q" bash deploy/local/orders-demo.sh --product 1002
orders_rc=$?
set -e

if [[ -n "$JSON" ]]; then
  cp "$OUT/report.json" "$JSON"
fi
say "report: $OUT/report.json   chart: $OUT/chart.svg${JSON:+   copy: $JSON}"
if [[ $KEEP -eq 1 ]]; then
  echo "cluster left running:  source target/cluster/cluster.env; $Q --help"
  echo "                       deploy/local/cluster.sh status | down"
fi
if [[ $loadgen_rc -ne 0 || $audit_rc -ne 0 || $orders_rc -ne 0 ]]; then
  echo "demo: FAILED (loadgen exit $loadgen_rc, audit exit $audit_rc, orders exit $orders_rc)" >&2
  exit 1
fi
echo "demo: ok — nothing oversold, no acknowledged order lost, returned units resold once, audit exact"
