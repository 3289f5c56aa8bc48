#!/usr/bin/env bash
# The issue-8 load figures in one run, every ratio taken within that run:
#   benches/load/report.sh [seconds per scenario, default 10]
# Builds the release binaries, then on fresh databases in a temporary directory: the bare hyper
# comparison server (before and after), the shared run.sh at 16 and at 64 connections, the
# search over a tenant with 10,000 records (search.sh), and the single-writer ceiling (criterion,
# `record_usage/durable_file`). Prints one table: reads as a share of bare hyper, writes at 64
# connections as a multiple of the ceiling, p99 at 16 connections against 5 ms.
# Needs wrk, curl, jq and python3; uses ports 8000 (Bespin) and 8099 (bare hyper).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=$(cd "$root/../shared/tools/load" && pwd)
D=${1:-10}
for tool in wrk curl jq python3; do
  command -v "$tool" >/dev/null || { echo "report.sh needs $tool" >&2; exit 2; }
done
cd "$root"
source "$here/lib.sh"
build_release -p bespin-http -p bespin-benches
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; rm -rf "$work"; }
trap cleanup EXIT

refuse_busy_port 8000
refuse_busy_port 8099
wait_for() { for _ in $(seq 100); do curl -sf "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1" >&2; exit 1; }
bare_rps() { wrk -t2 -c16 -d"$D"s http://127.0.0.1:8099/ | awk '/Requests\/sec/{print $2}'; }
# bespin_run NAME COMMAND...: a fresh Bespin on its own database while COMMAND runs.
bespin_run() {
  local name=$1; shift
  PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
    target/release/bespin serve --listen 127.0.0.1:8000 --db "$work/$name.redb" >"$work/$name.log" 2>&1 &
  local pid=$!
  pids+=("$pid")
  wait_for http://127.0.0.1:8000/healthz
  PLATFORM_ADMIN_KEY=adminkey "$@"
  kill "$pid"; wait "$pid" 2>/dev/null || true
}

target/release/bare_hyper 127.0.0.1:8099 2>/dev/null &
pids+=("$!")
wait_for http://127.0.0.1:8099/
echo "measuring: bare hyper, run.sh at 16 and 64 connections, search over 10,000 records, the ceiling (${D} s each) ..." >&2
bare1=$(bare_rps)
bespin_run c16 "$shared/run.sh" http://127.0.0.1:8000 "$D" 16 >"$work/c16.txt"
bespin_run c64 "$shared/run.sh" http://127.0.0.1:8000 "$D" 64 >"$work/c64.txt"
bespin_run s10k "$here/search.sh" http://127.0.0.1:8000 "$D" 16 10000 >"$work/s10k.txt"
bare2=$(bare_rps)
ceiling=$(cargo bench -q -p bespin-benches --bench platform -- record_usage/durable_file 2>/dev/null |
  awk '/time:/{gsub(/\[/,""); print $4, $5; exit}')

python3 - "$bare1" "$bare2" "$ceiling" "$work/c16.txt" "$work/c64.txt" "$work/s10k.txt" <<'PY'
import re, sys
bare1, bare2, ceiling = float(sys.argv[1]), float(sys.argv[2]), sys.argv[3].split()
unit = {"ns": 1e-9, "µs": 1e-6, "us": 1e-6, "ms": 1e-3, "s": 1.0}
commit_s = float(ceiling[0]) * unit[ceiling[1]]
ceiling_rps = 1 / commit_s
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
def rows(path):
    out = {}
    for line in open(path):
        f = dict(kv.split("=", 1) for kv in line.split()[1:] if "=" in kv)
        out[line.split()[0].split("(")[0]] = (float(f["rps"]), ms(f["p50"]), ms(f["p99"]), f.get("non2xx", "0"))
    return out
c16, c64, s10k = rows(sys.argv[4]), rows(sys.argv[5]), rows(sys.argv[6])
lo, hi = min(bare1, bare2), max(bare1, bare2)
print(f"bare hyper: {bare1:,.0f} then {bare2:,.0f} req/s; ceiling: one durable commit {commit_s*1e6:,.0f} µs = {ceiling_rps:,.0f} commits/s")
print(f"{'scenario':<12}{'c=16 req/s':>12}{'p99 ms':>8}{'c=64 req/s':>12}  target")
for name in ["latest", "invoke", "chat", "task", "search"]:
    r16, r64 = c16[name], c64[name]
    if name == "latest":
        verdict = f"{r16[0]/hi:.0%}-{r16[0]/lo:.0%} of bare hyper (>= 40%)"
    elif name == "search":
        verdict = f"{r16[0]/hi:.0%}-{r16[0]/lo:.0%} of bare hyper (20 matches; the target is search 10k)"
    else:
        verdict = f"{r64[0]/ceiling_rps:.1f}x the ceiling at 64 (>= 3x)"
    p99 = "ok" if r16[2] < 5 else "over 5 ms"
    print(f"{name:<12}{r16[0]:>12,.0f}{r16[2]:>8.2f}{r64[0]:>12,.0f}  {verdict}; p99 {p99}")
r = s10k["search"]
print(f"{'search 10k':<12}{r[0]:>12,.0f}{r[2]:>8.2f}{'':>12}  {r[0]/hi:.1%}-{r[0]/lo:.1%} of bare hyper (>= 40%)")
bad = [n for t in (c16, c64, s10k) for n, v in t.items() if v[3] not in ("0", "")]
if bad:
    print("non-2xx answers in:", ", ".join(bad))
PY
