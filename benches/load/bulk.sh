#!/usr/bin/env bash
# KPI bulk ingest over HTTP: 10,000-point bodies posted to fresh KPIs.
#   PLATFORM_ADMIN_KEY=... benches/load/bulk.sh http://127.0.0.1:8000 [seconds] [connections]
# Needs wrk, curl, jq, python3; uses shared/tools/load/setup.sh for the tenant.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B=$1 D=${2:-5} C=${3:-4}
work=$(mktemp -d)
eval "$("$here/../../../shared/tools/load/setup.sh" "$B")"
export TENANT_ID API_KEY ADMIN_ID KPIS_FILE="$work/kpis.txt" BODY_FILE="$work/bulk.json"
python3 - "$BODY_FILE" <<'PY'
import json, sys, datetime as d
s = d.datetime(2020, 1, 1)
pts = [{"ts": (s + d.timedelta(minutes=i)).strftime("%Y-%m-%dT%H:%M:%SZ"), "value": i * 1.5} for i in range(10000)]
open(sys.argv[1], "w").write(json.dumps({"points": pts}))
PY
for _ in $(seq 1 $((D * 200))); do
  curl -sf -X POST "$B/v1/kpis" -H 'Content-Type: application/json' -H "X-Tenant-ID: $TENANT_ID" \
    -H "X-User-ID: $ADMIN_ID" -H "X-API-Key: $API_KEY" -d '{"name":"bulk"}' | jq -r .kpi_id >> "$KPIS_FILE"
done
out=$(wrk -t2 -c"$C" -d"${D}s" --latency -s "$here/bulk.lua" "$B" 2>&1)
rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
echo "bulk rps=$rps points/s=$(python3 -c "print(int(float('$rps') * 10000))") p50=$(awk '$1=="50%"{print $2}' <<<"$out") $(grep -o 'Non-2xx.*' <<<"$out" || true)"
rm -rf "$work"
