#!/usr/bin/env bash
# The README's first command: a local cluster, a flash sale, and its books checked.
#
#   deploy/local/demo.sh [--regions east,south,north] [--buyers N] [--keep]
#
# Starts etcd, a coordinator and per region its own Redis, Postgres and region node
# (deploy/local/cluster.sh up), creates a sale with quotactl split evenly across the regions,
# lets N buyers (default 3 × the stock) hit the regions at once with curl, then checks from each
# region's Postgres that nothing was oversold, no buyer holds two orders, sold = order count,
# and total = pool + Σ (sold + available). --keep leaves the cluster running afterwards.
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
bash deploy/local/cluster.sh up --regions "$REGIONS"
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
region_pg() { local v="REGION_$(echo "$1" | tr 'a-z-' 'A-Z_')_PG_URL"; echo "${!v}"; }

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

say "$BUYERS buyers at once, spread over the regions"
export PRODUCT
for u in $(seq 2 $((BUYERS + 1))); do
  r="${regions[$((u % n))]}"
  echo "$(region_url "$r") $u"
done | xargs -P 64 -n 2 sh -c \
  'curl -s -o /dev/null -w "%{http_code}\n" -X POST "$0/v1/products/$PRODUCT/purchase" -H "content-type: application/json" -d "{\"user_id\": $1}"' |
  sort | uniq -c | awk '{printf "  HTTP %s: %s\n", $2, $1}'

say "books"
ledger=$("$QUOTACTL" product show "$PRODUCT" --json)
pool=$(echo "$ledger" | python3 -c 'import json,sys; print(json.load(sys.stdin)["pool"])')
sum=0
ok=1
printf '  %-10s %6s %9s %7s %9s\n' REGION SOLD AVAILABLE ORDERS DUP_USERS
for r in "${regions[@]}"; do
  pg=$(region_pg "$r")
  read -r sold avail orders dups < <(psql "$pg" -At -F ' ' -c "
    SELECT q.sold, q.granted - q.released - q.sold,
           (SELECT count(*) FROM orders WHERE product_id = $PRODUCT),
           (SELECT count(*) FROM (SELECT user_id FROM orders WHERE product_id = $PRODUCT
                                  GROUP BY user_id HAVING count(*) > 1) d)
      FROM region_quota q WHERE q.product_id = $PRODUCT")
  printf '  %-10s %6s %9s %7s %9s\n' "$r" "$sold" "$avail" "$orders" "$dups"
  sum=$((sum + sold + avail))
  [[ "$sold" -eq "$orders" && "$dups" -eq 0 ]] || ok=0
done
echo "  pool $pool  total $TOTAL  pool + Σ(sold + available) = $((pool + sum))"
[[ $((pool + sum)) -eq $TOTAL ]] || ok=0
if [[ $ok -eq 1 ]]; then
  echo "  audit: ok (no oversell, no duplicate buyer, sold = orders, conservation exact)"
else
  echo "  audit: FAILED"; exit 1
fi
if [[ $KEEP -eq 1 ]]; then
  say "cluster left running"
  echo "  source target/cluster/cluster.env; $QUOTACTL --help"
  echo "  deploy/local/cluster.sh status | down"
fi
