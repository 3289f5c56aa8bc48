#!/usr/bin/env bash
# The shared load script against two builds of the server, in alternating runs:
#   benches/load/ab.sh OLD_BINARY NEW_BINARY [rounds, default 3] [seconds, default 10] [connections, default 16]
# Each round starts each binary in turn (the order alternates from round to round) on a fresh
# database, runs shared/tools/load/run.sh against it, and stops it; then prints, per scenario,
# every round's req/s and p99 of both builds and their medians. Needs wrk, curl, jq, python3;
# uses port 8000 (PORT=… for another). OLD_DB / NEW_DB (a postgres:// URL) put that side on PostgreSQL, each run in
# a fresh schema (ab_<side>_<round>), instead of a fresh redb file: the same binary twice with
# NEW_DB set compares PostgreSQL with redb in one run (issue 19).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=$(cd "$root/../shared/tools/load" && pwd)
OLD=$1 NEW=$2 R=${3:-3} D=${4:-10} C=${5:-16} P=${PORT:-8000}
source "$here/lib.sh"
refuse_busy_port "$P" PORT=
work=$(mktemp -d)
pid=
cleanup() {
  [ -n "$pid" ] && kill "$pid" 2>/dev/null
  rm -rf "$work"
  # This run's PostgreSQL schemas (a load run leaves gigabytes in them).
  for url in ${OLD_DB:-} ${NEW_DB:-}; do
    for side in old new; do for r in $(seq "$R"); do
      psql -q -X "${url%%\?*}" -c "DROP SCHEMA IF EXISTS ab_${side}_${r}_$$ CASCADE" >/dev/null 2>&1 || true
    done; done
  done
}
trap cleanup EXIT
where() { # label round -> the database of that run
  url=""; [ "$1" = old ] && url="${OLD_DB:-}"; [ "$1" = new ] && url="${NEW_DB:-}"
  if [ -n "$url" ]; then
    case "$url" in *\?*) echo "$url&schema=ab_$1_$2_$$";; *) echo "$url?schema=ab_$1_$2_$$";; esac
  else
    echo "$work/$1-$2.redb"
  fi
}
run() { # label binary round
  PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
    "$2" serve --listen 127.0.0.1:$P --db "$(where "$1" "$3")" >"$work/$1-$3.log" 2>&1 &
  pid=$!
  for _ in $(seq 100); do curl -sf http://127.0.0.1:$P/healthz >/dev/null 2>&1 && break; sleep 0.1; done
  PLATFORM_ADMIN_KEY=adminkey "$shared/run.sh" http://127.0.0.1:$P "$D" "$C" | sed "s/^/$1 $3 /" >>"$work/results"
  kill "$pid"; wait "$pid" 2>/dev/null || true; pid=
}
for r in $(seq "$R"); do
  if [ $((r % 2)) -eq 1 ]; then run old "$OLD" "$r"; run new "$NEW" "$r"; else run new "$NEW" "$r"; run old "$OLD" "$r"; fi
done
python3 - "$work/results" <<'PY'
import re, statistics, sys
rows = {}
for line in open(sys.argv[1]):
    build, rnd, scen, *rest = line.split()
    f = dict(x.split("=", 1) for x in rest if "=" in x)
    p99 = f["p99"]
    ms = float(re.sub(r"[a-z]+", "", p99)) * {"us": 0.001, "ms": 1, "s": 1000}[re.sub(r"[0-9.]", "", p99)]
    rows.setdefault(scen, {}).setdefault(build, []).append((float(f["rps"]), ms, f["non2xx"]))
print(f"{'scenario':8} {'old req/s':>28} {'new req/s':>28} {'ratio':>6}  {'old p99 ms':>20} {'new p99 ms':>20}")
for scen, b in rows.items():
    o, n = b["old"], b["new"]
    mo, mn = statistics.median(x[0] for x in o), statistics.median(x[0] for x in n)
    po, pn = statistics.median(x[1] for x in o), statistics.median(x[1] for x in n)
    bad = sum(int(x[2]) for x in o + n)
    print(f"{scen:8} {' '.join(f'{x[0]:.0f}' for x in o):>20} ({mo:>6.0f}) {' '.join(f'{x[0]:.0f}' for x in n):>20} ({mn:>6.0f}) {mn/mo:6.3f}  {po:20.2f} {pn:20.2f}" + (f"  non2xx={bad}" if bad else ""))
PY
