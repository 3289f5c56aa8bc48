#!/usr/bin/env bash
# One server against two on one PostgreSQL database, same run (issue 19):
#   benches/load/two.sh BINARY postgres://…/db [seconds, default 10] [connections, default 64] [rounds, default 2]
# Starts two servers on one fresh schema (ports 8000 and 8001), prepares the shared load
# script's tenant through the first, then per scenario and round runs the contract's wrk
# scenario against the first server alone with all connections, and against both at once with
# half the connections each (the order flips from round to round); prints each run's req/s
# (the sum over both servers) and p99 (the worse of the two). Needs wrk, curl, jq, python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=$(cd "$root/../shared/tools/load" && pwd)
BIN=$1 DB=$2 D=${3:-10} C=${4:-64} R=${5:-2}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  rm -rf "$work"
  # The run's PostgreSQL schema (a load run leaves gigabytes in it).
  psql -q -X "${DB%%\?*}" -c "DROP SCHEMA IF EXISTS two_$$ CASCADE" >/dev/null 2>&1 || true
}
trap cleanup EXIT
case "$DB" in *\?*) url="$DB&schema=two_$$";; *) url="$DB?schema=two_$$";; esac
for port in 8000 8001; do
  PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
    "$BIN" serve --listen 127.0.0.1:$port --db "$url" >"$work/$port.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$port/healthz >/dev/null 2>&1 && break; sleep 0.1; done
done
eval "$(PLATFORM_ADMIN_KEY=adminkey "$shared/setup.sh" http://127.0.0.1:8000)"
export TENANT_ID API_KEY ADMIN_ID KPI_ID
# The scenario's idempotency keys are made of the start second and the thread's number: give
# each wrk its own, or two started together would replay each other's keys.
sed 's/tostring(os.time())/tostring(os.time()) .. (os.getenv("SIDE") or "")/' \
  "$shared/scenario.lua" >"$work/scenario.lua"
wrk_one() { # side port connections threads -> "rps p99ms"
  out=$(SIDE=$1 SCENARIO=$s wrk -t"$4" -c"$3" -d"${D}s" --latency -s "$work/scenario.lua" \
    "http://127.0.0.1:$2" 2>&1)
  rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
  p99=$(awk '$1=="99%"{print $2}' <<<"$out")
  bad=$(awk '/Non-2xx/{print $NF}' <<<"$out")
  python3 -c 'import re,sys; v=sys.argv[2]; u=re.sub(r"[0-9.]","",v); print(sys.argv[1], float(re.sub(r"[a-z]+","",v))*{"us":0.001,"ms":1,"s":1000}[u], sys.argv[3])' "$rps" "$p99" "${bad:-0}"
}
one() { read -r rps p99 bad <<<"$(wrk_one a 8000 "$C" 2)"; echo "$s one $r $rps $p99 $bad" >>"$work/results"; }
two() {
  wrk_one b 8000 $((C / 2)) 1 >"$work/b" & w=$!
  wrk_one c 8001 $((C / 2)) 1 >"$work/c"
  wait "$w"
  read -r r1 p1 b1 <"$work/b"; read -r r2 p2 b2 <"$work/c"
  python3 -c 'import sys; a=sys.argv[1:]; print(a[0], "two", a[1], float(a[2])+float(a[5]), max(float(a[3]),float(a[6])), int(a[4])+int(a[7]))' \
    "$s" "$r" "$r1" "$p1" "$b1" "$r2" "$p2" "$b2" >>"$work/results"
}
for s in latest invoke chat task search; do
  for r in $(seq "$R"); do
    if [ $((r % 2)) -eq 1 ]; then one; two; else two; one; fi
  done
done
python3 - "$work/results" <<'PY'
import statistics, sys
rows = {}
for line in open(sys.argv[1]):
    scen, mode, rnd, rps, p99, bad = line.split()
    rows.setdefault(scen, {}).setdefault(mode, []).append((float(rps), float(p99), int(bad)))
print(f"{'scenario':8} {'one server req/s':>24} {'two servers req/s':>24} {'ratio':>6} {'p99 one':>8} {'p99 two':>8}")
for scen, m in rows.items():
    o, t = m["one"], m["two"]
    mo, mt = statistics.median(x[0] for x in o), statistics.median(x[0] for x in t)
    po, pt = statistics.median(x[1] for x in o), statistics.median(x[1] for x in t)
    bad = sum(x[2] for x in o + t)
    print(f"{scen:8} {' '.join(f'{x[0]:.0f}' for x in o):>16} ({mo:>6.0f}) {' '.join(f'{x[0]:.0f}' for x in t):>16} ({mt:>6.0f}) {mt/mo:6.2f} {po:8.2f} {pt:8.2f}" + (f"  non2xx={bad}" if bad else ""))
PY
