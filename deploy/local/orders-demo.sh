#!/usr/bin/env bash
# Orders after the click, on a running cluster: units of cancelled and expired orders come
# back exactly once and sell to the next buyers.
#
#   deploy/local/orders-demo.sh [--product ID] [--window SECONDS] [--per-region N]
#
# Against the cluster of target/cluster/cluster.env (deploy/local/cluster.sh up; demo.sh runs
# this after its sale), or of the variables already set: COORDINATOR_URL(S), ADMIN_TOKEN,
# REGIONS, REGION_<R>_URL, PAYMENTS_TOKEN_FILE, and QUOTACTL (default target/debug/quotactl).
#
# 1. a sale of N units per region (static split, per-user limit 1, payment window SECONDS);
# 2. N buyers per region buy; 40 % of the orders are paid (the payment system's token), 20 %
#    are cancelled by their buyers, the rest are left unpaid;
# 3. the unpaid orders expire when the window passes; `quotactl report` shows every unit's fate;
# 4. new buyers buy exactly the units that came back (cancelled + expired), and no more;
# 5. `quotactl report` again: resold = returned in every region, and the audit holds.
# Exit status 0 only when all of that is so.
set -euo pipefail
cd "$(dirname "$0")/../.."

PRODUCT=1002
WINDOW=4
PER_REGION=10
while [[ $# -gt 0 ]]; do
  case "$1" in
    --product) PRODUCT="${2:?}"; shift 2 ;;
    --window) WINDOW="${2:?}"; shift 2 ;;
    --per-region) PER_REGION="${2:?}"; shift 2 ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "orders-demo: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
done
for v in "$PRODUCT" "$WINDOW" "$PER_REGION"; do
  [[ "$v" =~ ^[1-9][0-9]*$ ]] || { echo "orders-demo: options take positive integers" >&2; exit 2; }
done
(( PER_REGION >= 5 )) || { echo "orders-demo: --per-region must be at least 5" >&2; exit 2; }
if [[ -z "${COORDINATOR_URL:-}" && -f target/cluster/cluster.env ]]; then
  # shellcheck disable=SC1091
  source target/cluster/cluster.env
fi
: "${REGIONS:?no cluster: run deploy/local/cluster.sh up (or set REGIONS and REGION_<R>_URL)}"
: "${PAYMENTS_TOKEN_FILE:?PAYMENTS_TOKEN_FILE is not set (cluster.sh up writes it)}"
Q="${QUOTACTL:-target/debug/quotactl}"
PAY_TOKEN="$(head -n 1 "$PAYMENTS_TOKEN_FILE")"
IFS=',' read -r -a regions <<<"$REGIONS"

say() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
fail() { echo "orders-demo: FAILED: $*" >&2; exit 1; }
url_of() { local v="REGION_${1^^}_URL"; echo "${!v:?no $v}"; }
json() { python3 -c "import json,sys; d=json.load(sys.stdin); print($1)"; }
# POST JSON; prints "STATUS BODY".
post() {
  local url="$1" body="$2"; shift 2
  curl -sS -o /tmp/orders-demo.$$ -w '%{http_code}' -X POST "$url" \
    -H 'content-type: application/json' "$@" -d "$body"
  printf ' %s\n' "$(cat /tmp/orders-demo.$$)"
}
trap 'rm -f /tmp/orders-demo.$$' EXIT

paid=$((PER_REGION * 2 / 5)); cancelled=$((PER_REGION / 5))
unpaid=$((PER_REGION - paid - cancelled)); back=$((cancelled + unpaid))
split=""; for r in "${regions[@]}"; do split+="${split:+,}$r=$PER_REGION"; done
say "sale $PRODUCT: $PER_REGION units per region ($split), payment window ${WINDOW} s"
"$Q" product create "$PRODUCT" --name "after the click" --total $((PER_REGION * ${#regions[@]})) \
  --price 49.90 --split "$split" --policy static --home-regions none --payment-window "$WINDOW"
for r in "${regions[@]}"; do
  for _ in $(seq 1 100); do
    curl -fsS "$(url_of "$r")/v1/products/$PRODUCT" 2>/dev/null \
      | grep -q "\"available\":$PER_REGION" && break
    sleep 0.1
  done
done

say "buyers: $PER_REGION per region buy; $paid pay, $cancelled cancel, $unpaid never pay"
user=0
for r in "${regions[@]}"; do
  node="$(url_of "$r")"
  for k in $(seq 1 "$PER_REGION"); do
    user=$((user + 1))
    read -r status body < <(post "$node/v1/products/$PRODUCT/purchase" "{\"user_id\": $user}")
    [[ "$status" == 201 ]] || fail "user $user in $r: HTTP $status $body"
    order="$(json 'd["order_id"]' <<<"$body")"
    if (( k <= paid )); then
      read -r status body < <(post "$node/v1/orders/$order/pay" \
        "{\"payment_ref\": \"demo-$order\", \"amount\": \"49.90\"}" -H "authorization: Bearer $PAY_TOKEN")
      [[ "$status" == 200 ]] || fail "paying $order: HTTP $status $body"
    elif (( k <= paid + cancelled )); then
      read -r status body < <(post "$node/v1/orders/$order/cancel" "{\"user_id\": $user}")
      [[ "$status" == 200 ]] || fail "cancelling $order: HTTP $status $body"
    fi
  done
done
"$Q" report "$PRODUCT" || true

say "waiting ${WINDOW} s for the unpaid orders to expire"
for _ in $(seq 1 $(( (WINDOW + 10) * 5 ))); do
  pending="$("$Q" report "$PRODUCT" -o json | json 'd["totals"]["pending"]')"
  [[ "$pending" == 0 ]] && break
  sleep 0.2
done
[[ "$pending" == 0 ]] || fail "$pending units still pending after the window"

say "new buyers: the $back units per region that came back sell again, and no more"
for r in "${regions[@]}"; do
  node="$(url_of "$r")"; sold=0
  for k in $(seq 1 "$back"); do
    user=$((user + 1))
    for _ in $(seq 1 50); do   # a returned unit reaches Redis within a reconcile pass
      read -r status body < <(post "$node/v1/products/$PRODUCT/purchase" "{\"user_id\": $user}")
      [[ "$status" == 201 ]] && { sold=$((sold + 1)); break; }
      sleep 0.1
    done
  done
  (( sold == back )) || fail "$r resold $sold of $back returned units"
  user=$((user + 1))
  read -r status body < <(post "$node/v1/products/$PRODUCT/purchase" "{\"user_id\": $user}")
  [[ "$status" == 410 ]] || fail "$r sold a unit it does not have: HTTP $status $body"
done

say "report"
"$Q" report "$PRODUCT"
report="$("$Q" report "$PRODUCT" -o json)"
for r in "${regions[@]}"; do
  got="$(json "d['regions']['$r']['resold'], d['regions']['$r']['returned'], d['regions']['$r']['paid']" <<<"$report")"
  [[ "$got" == "$back $back $paid" ]] \
    || fail "$r: resold, returned, paid = $got, expected $back $back $paid"
done
[[ "$(json 'd["audit"]["ok"]' <<<"$report")" == True ]] || fail "the audit does not hold"
echo "orders demo: ok — every cancelled and expired unit came back once and sold again; audit exact"
