#!/usr/bin/env bash
# Server CPU time per request of two builds, for a machine too busy for throughput figures:
#   benches/load/cpu-ab.sh OLD_BINARY NEW_BINARY SCENARIO [rounds, default 6] [seconds, default 3] [connections, default 16]
# Starts both builds side by side (ports 8001 and 8002, or PORT and PORT+1; refuses ports in
# use), each on a fresh database set up by the shared setup.sh, then runs the shared scenario
# against each in turn, the order alternating from round to round, and divides the CPU time the server process used during the run (user +
# system, from /proc) by the requests wrk completed. Time spent waiting (fsync, the queue) is
# not CPU time, so other load on the machine moves these figures far less than req/s; prints
# every round's microseconds per request, the medians and the median of the paired ratios.
# Needs wrk, curl, jq, bc and python3.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
shared=$(cd "$here/../../../shared/tools/load" && pwd)
OLD=$1 NEW=$2 S=$3 R=${4:-6} D=${5:-3} C=${6:-16}
work=$(mktemp -d); pids=()
trap 'kill "${pids[@]}" 2>/dev/null; rm -rf "$work"' EXIT
P=${PORT:-8001}
port() { [ "$1" = old ] && echo "$P" || echo $((P + 1)); }
source "$here/lib.sh"
for b in old new; do refuse_busy_port "$(port $b)" PORT=; done
for b in old new; do
  bin=$OLD; [ "$b" = new ] && bin=$NEW
  PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
    "$bin" serve --listen "127.0.0.1:$(port $b)" --db "$work/$b.redb" >"$work/$b.log" 2>&1 &
  pids+=($!)
  for _ in $(seq 100); do curl -sf "http://127.0.0.1:$(port $b)/healthz" >/dev/null 2>&1 && break; sleep 0.1; done
  PLATFORM_ADMIN_KEY=adminkey "$shared/setup.sh" "http://127.0.0.1:$(port $b)" >"$work/$b.env"
done
cpu() { awk '{print $14+$15}' "/proc/$1/stat"; }  # clock ticks (1/100 s)
one() { # build pid -> CPU microseconds per request
  local a n b
  a=$(cpu "$2")
  n=$( (eval "$(cat "$work/$1.env")"; export TENANT_ID API_KEY ADMIN_ID KPI_ID
        SCENARIO=$S wrk -t2 -c"$C" -d"${D}s" -s "$shared/scenario.lua" "http://127.0.0.1:$(port "$1")" 2>&1 |
        awk '/requests in/{print $1}') )
  b=$(cpu "$2")
  echo "scale=2; ($b-$a)*10000/$n" | bc
}
for r in $(seq "$R"); do
  if [ $((r % 2)) = 1 ]; then o=$(one old "${pids[0]}"); n=$(one new "${pids[1]}")
  else n=$(one new "${pids[1]}"); o=$(one old "${pids[0]}"); fi
  echo "$o $n"
done | python3 -c "
import sys, statistics
rows = [tuple(map(float, l.split())) for l in sys.stdin]
o = [r[0] for r in rows]; n = [r[1] for r in rows]; q = [r[1] / r[0] for r in rows]
print('$S c=$C CPU us/request old', ' '.join(f'{x:.0f}' for x in o), '| new', ' '.join(f'{x:.0f}' for x in n))
print('$S medians old %.1f new %.1f; median paired ratio %.3f (min %.3f, max %.3f)' % (statistics.median(o), statistics.median(n), statistics.median(q), min(q), max(q)))
"
