#!/usr/bin/env bash
# `GET /v1/search?q=pricing` over a tenant with 10,000 records (the issue-8 read target).
#   PLATFORM_ADMIN_KEY=... benches/load/search.sh http://127.0.0.1:8000 [seconds] [connections] [records]
# Makes the tenant with shared/tools/load/setup.sh, adds the records (tasks, decisions, meeting
# notes, memory facts and actions whose text is drawn from a 300-word vocabulary; about 1% of
# them mention "pricing"), then drives the shared scenario.lua's `search` scenario and prints
# one line like run.sh does. Needs wrk, curl, jq, python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
B=$1 D=${2:-10} C=${3:-16} N=${4:-10000}
eval "$("$here/../../../shared/tools/load/setup.sh" "$B")"
export TENANT_ID API_KEY ADMIN_ID KPI_ID
python3 - "$B" "$N" <<'PY'
import http.client, json, os, random, sys, urllib.parse
base, n = sys.argv[1], int(sys.argv[2])
u = urllib.parse.urlparse(base)
conn = http.client.HTTPConnection(u.hostname, u.port or 80)
h = {"Content-Type": "application/json", "X-Tenant-ID": os.environ["TENANT_ID"],
     "X-User-ID": os.environ["ADMIN_ID"], "X-API-Key": os.environ["API_KEY"]}
rnd = random.Random(8)
vocab = [f"w{i}{c}" for i in range(60) for c in "abcde"]  # 300 words that never match "pricing"
def text(k):
    words = [rnd.choice(vocab) for _ in range(k)]
    if rnd.random() < 0.01:
        words[rnd.randrange(k)] = "pricing"
    return " ".join(words)
kinds = [("/v1/tasks", lambda: {"title": text(5), "description": text(20), "priority": "medium"})] * 4 + \
        [("/v1/decisions", lambda: {"decision_date": "2026-11-30", "title": text(5), "decision": text(15), "context": text(15)})] * 2 + \
        [("/v1/meetings", lambda: {"meeting_date": "2026-11-30", "title": text(5), "notes": text(40)})] * 2 + \
        [("/v1/memory/facts", lambda: {"category": "other", "fact_key": text(3) + f" {rnd.random()}", "fact_value": text(10)})] + \
        [("/v1/actions", lambda: {"title": text(5), "description": text(20), "action_type": "outreach"})]
for i in range(n):
    path, body = kinds[i % len(kinds)]
    conn.request("POST", path, json.dumps(body()), h)
    r = conn.getresponse(); r.read()
    if r.status >= 300:
        sys.exit(f"{path}: {r.status}")
PY
out=$(SCENARIO=search wrk -t2 -c"$C" -d"${D}s" --latency -s "$here/../../../shared/tools/load/scenario.lua" "$B" 2>&1)
rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
p50=$(awk '$1=="50%"{print $2}' <<<"$out"); p99=$(awk '$1=="99%"{print $2}' <<<"$out")
bad=$(awk '/Non-2xx/{print $NF}' <<<"$out")
total=$(curl -sf "$B/v1/search?q=pricing" -H "X-Tenant-ID: $TENANT_ID" -H "X-User-ID: $ADMIN_ID" -H "X-API-Key: $API_KEY" | jq .total)
echo "search($N records, $total matches) rps=$rps p50=$p50 p99=$p99 non2xx=${bad:-0}"
