#!/usr/bin/env bash
# `kpi_summary` over MCP (`tools/call`, 2026-07-28) against `POST /v1/tools/invoke`, in one run:
# ROUNDS rounds, each running both for SECONDS at CONNECTIONS connections in alternating order
# (the order flips from round to round), on one release server and one load tenant
# (shared/tools/load/setup.sh). Prints every round's req/s, p99 and the server's CPU time per
# request of both, the medians, MCP's share of REST's throughput (issue 21's target: at least
# 80%) and REST's CPU per request over MCP's (the share MCP would reach where CPU bounds both).
#   benches/load/mcp.sh [seconds] [connections] [rounds]
# Needs wrk, curl, jq, python3 and a release build (cargo build --release -p bespin-http).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
D=${1:-10} C=${2:-16} R=${3:-5}
work=$(mktemp -d)
PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
    "$root/target/release/bespin" serve --listen 127.0.0.1:0 --db "$work/db.redb" 2>"$work/log" &
server=$!
trap 'kill $server 2>/dev/null; wait $server 2>/dev/null; rm -rf "$work"' EXIT
for _ in $(seq 1 200); do [ -s "$work/db.redb.control" ] && break; sleep 0.05; done
B="http://$(head -n1 "$work/db.redb.control")"
eval "$(PLATFORM_ADMIN_KEY=adminkey "$root/../shared/tools/load/setup.sh" "$B")"
export TENANT_ID API_KEY ADMIN_ID KPI_ID
# The server's CPU time so far (user + system, clock ticks): its CPU per request is what an
# MCP call costs beyond a REST call whatever else the machine is doing, which throughput is not.
cpu() { awk '{print $14 + $15}' "/proc/$server/stat"; }
tick=$(getconf CLK_TCK)
run() {
    local out before after
    before=$(cpu)
    out=$(MODE=$1 wrk -t2 -c"$C" -d"${D}s" --latency -s "$here/mcp.lua" "$B" 2>&1)
    after=$(cpu)
    local bad rps p99 n
    bad=$(awk '/^bad /{print $2}' <<<"$out")
    [ "$bad" = 0 ] || { echo "$1: $bad bad answers" >&2; echo "$out" >&2; exit 1; }
    rps=$(awk '/Requests\/sec/{print $2}' <<<"$out")
    p99=$(awk '$1=="99%"{print $2}' <<<"$out")
    n=$(awk '/requests in/{print $1}' <<<"$out")
    echo "$rps $p99 $(( (after - before) * 1000000 / tick / n ))"
}
rest=() mcp=() rest_cpu=() mcp_cpu=()
for i in $(seq 1 "$R"); do
    if [ $((i % 2)) = 1 ]; then order="rest mcp"; else order="mcp rest"; fi
    for m in $order; do
        read -r rps p99 us < <(run "$m")
        echo "round $i $m: $rps req/s, p99 $p99, server CPU $us µs/request"
        if [ "$m" = rest ]; then rest+=("$rps"); rest_cpu+=("$us"); else mcp+=("$rps"); mcp_cpu+=("$us"); fi
    done
done
python3 - "${rest[*]}" "${mcp[*]}" "${rest_cpu[*]}" "${mcp_cpu[*]}" <<'PY'
import statistics, sys
rest, mcp, rest_cpu, mcp_cpu = ([float(x) for x in a.split()] for a in sys.argv[1:5])
ratios = [m / r for r, m in zip(rest, mcp)]
cpu = [r / m for r, m in zip(rest_cpu, mcp_cpu)]
print(f"median: REST {statistics.median(rest):.0f} req/s, MCP {statistics.median(mcp):.0f} req/s; "
      f"MCP/REST per round {min(ratios):.0%}-{max(ratios):.0%}, median {statistics.median(ratios):.0%}")
print(f"server CPU per request: REST {statistics.median(rest_cpu):.0f} µs, MCP {statistics.median(mcp_cpu):.0f} µs "
      f"(medians); REST/MCP per round {min(cpu):.0%}-{max(cpu):.0%}, median {statistics.median(cpu):.0%}")
PY
