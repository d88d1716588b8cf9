#!/usr/bin/env bash
# The README's first command: a local cluster, a flash sale, and its books checked.
#
#   deploy/local/demo.sh [--regions east,south,north] [--buyers N] [--keep]
#
# Starts etcd, two coordinators and per region its own Redis, Postgres and region node
# (deploy/local/cluster.sh up), creates a sale with quotactl split evenly across the regions,
# lets N buyers (default 3 × the stock) hit the regions at once with curl — 70 % of them in the
# first region, 20 % in the second, 10 % in the rest — so the coordinator must move quota to
# where the buyers are; then prints `quotactl status` and runs `quotactl audit` (the exact
# conservation identity, sold = orders, no oversell, no user over the limit).
# --keep leaves the cluster running afterwards.
set -euo pipefail
cd "$(dirname "$0")/../.."

REGIONS="east,south,north"
KEEP=0
TOTAL=300
BUYERS=""
while [[ $# -gt 0 ]]; do
  case "$1" in
    --regions) REGIONS="$2"; shift 2 ;;
    --buyers) BUYERS="$2"; shift 2 ;;
    --total) TOTAL="$2"; shift 2 ;;
    --keep) KEEP=1; shift ;;
    -h|--help) sed -n '2,11p' "$0"; exit 0 ;;
    *) echo "demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
BUYERS="${BUYERS:-$((TOTAL * 3))}"
PRODUCT=1001

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }

bash deploy/local/cluster.sh down >/dev/null 2>&1 || true
if [[ $KEEP -eq 0 ]]; then
  trap 'bash deploy/local/cluster.sh down >/dev/null 2>&1 || true' EXIT
fi
say "starting a local cluster: regions $REGIONS"
bash deploy/local/cluster.sh up --regions "$REGIONS" --coordinators 2
# shellcheck disable=SC1091
source target/cluster/cluster.env
QUOTACTL=target/debug/quotactl

IFS=, read -r -a regions <<<"$REGIONS"
n=${#regions[@]}
split=""
for i in "${!regions[@]}"; do
  share=$((TOTAL / n + (i < TOTAL % n ? 1 : 0)))
  split+="${split:+,}${regions[$i]}=$share"
done

say "creating sale $PRODUCT: $TOTAL units at 99.00, split $split"
"$QUOTACTL" product create "$PRODUCT" --name "demo phone" --total "$TOTAL" \
  --price 99.00 --original-price 199.00 --split "$split"

region_url() { local v="REGION_$(echo "$1" | tr 'a-z-' 'A-Z_')_URL"; echo "${!v}"; }

for r in "${regions[@]}"; do
  for _ in $(seq 1 100); do
    avail=$(curl -fsS "$(region_url "$r")/v1/products/$PRODUCT" 2>/dev/null |
      python3 -c 'import json,sys; print(json.load(sys.stdin)["available"])' 2>/dev/null || echo 0)
    [[ "$avail" -gt 0 ]] && break
    sleep 0.1
  done
done

first="${regions[0]}"
say "one purchase in $first, then the same buyer again"
curl -sS -X POST "$(region_url "$first")/v1/products/$PRODUCT/purchase" \
  -H 'content-type: application/json' -d '{"user_id": 1}'; echo
curl -sS -X POST "$(region_url "$first")/v1/products/$PRODUCT/purchase" \
  -H 'content-type: application/json' -d '{"user_id": 1}'; echo

say "$BUYERS buyers at once: 70 % in ${regions[0]}, 20 % in ${regions[1]:-${regions[0]}}, 10 % elsewhere"
export PRODUCT
pick_region() {
  local d=$(($1 % 10))
  if [[ $n -eq 1 || $d -lt 7 ]]; then echo "${regions[0]}"
  elif [[ $n -eq 2 || $d -lt 9 ]]; then echo "${regions[1]}"
  else echo "${regions[$((2 + $1 % (n - 2)))]}"; fi
}
for u in $(seq 2 $((BUYERS + 1))); do
  echo "$(region_url "$(pick_region "$u")") $u"
done | xargs -P 64 -n 2 sh -c \
  'curl -s -o /dev/null -w "%{http_code}\n" -X POST "$0/v1/products/$PRODUCT/purchase" -H "content-type: application/json" -d "{\"user_id\": $1}"' |
  sort | uniq -c | awk '{printf "  HTTP %s: %s\n", $2, $1}'

say "status (quota moved to where the buyers were)"
sleep 1
"$QUOTACTL" status "$PRODUCT"

say "audit"
"$QUOTACTL" audit "$PRODUCT"
if [[ $KEEP -eq 1 ]]; then
  say "cluster left running"
  echo "  source target/cluster/cluster.env; $QUOTACTL --help"
  echo "  deploy/local/cluster.sh status | down"
fi
