#!/usr/bin/env bash
# The noisy-neighbour benchmark (issue 17): tenant A runs the shared load script's scenarios at
# 16 connections while tenant B sends the worst requests it can, as fast as it can; A's
# throughput and p99 are compared with A alone, in the same run.
#   benches/load/noisy.sh [seconds per measurement, default 10] [rounds, default 2]
# B: six wrk clients of B_CONNECTIONS (default 1) connections each, one per kind of request
# (hostile.lua): searches that read their whole budget, tasks at the text limits, 1 MiB bodies
# with bad credentials, a payload nested 126 deep replayed, 1 MiB of "[", declared 10 MiB
# bodies — plus slow_bodies.py holding
# SLOW_CONNECTIONS (default 64) connections that send a byte a second. B's records first get
# more index entries starting with "a" than a search may read. /healthz is probed every 10 ms
# throughout (probe.lua). Each round measures every scenario alone and with B, in alternating
# order; the table gives the medians over the rounds and the ratios. Targets: A keeps >= 80%
# of its throughput, its p99 stays under 2x, /healthz p99 under 10 ms.
# KINDS (default "1 2 3 4 5 6") picks B's kinds, SCENARIOS A's (default all five).
# B_RPM=n puts B on a plan with `requests_per_minute` n (A's plan has none).
# Needs wrk (installed from Debian's package when missing), curl, jq, python3; uses PORT
# (default 8000).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
root=$(cd "$here/../.." && pwd)
shared=$(cd "$root/../shared/tools/load" && pwd)
D=${1:-10} ROUNDS=${2:-2} PORT=${PORT:-8000}
BC=${B_CONNECTIONS:-1} SLOW=${SLOW_CONNECTIONS:-64} B_RPM=${B_RPM:-}
KINDS=${KINDS:-1 2 3 4 5 6} SCENARIOS=${SCENARIOS:-latest invoke chat task search}
if ! command -v wrk >/dev/null; then
  apt-get install -y -q wrk >/dev/null || { echo "noisy.sh needs wrk" >&2; exit 2; }
fi
for tool in curl jq python3; do
  command -v "$tool" >/dev/null || { echo "noisy.sh needs $tool" >&2; exit 2; }
done
cd "$root"
source "$here/lib.sh"
build_release -p bespin-http
work=$(mktemp -d)
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -n "${KEEP:-}" ] && echo "kept $work" >&2 || rm -rf "$work"; }
trap cleanup EXIT
B=http://127.0.0.1:$PORT

PLATFORM_ADMIN_KEY=adminkey RATE_LIMIT_DISABLED=1 RUST_LOG=warn \
  target/release/bespin serve --listen "127.0.0.1:$PORT" --db "$work/noisy.redb" >"$work/server.log" 2>&1 &
pids+=("$!")
for _ in $(seq 100); do curl -sf "$B/healthz" >/dev/null && break; sleep 0.1; done

# Tenant A as the load script makes it; tenant B the same way, then its hostile records.
eval "$(PLATFORM_ADMIN_KEY=adminkey "$shared/setup.sh" "$B")"
export TENANT_ID API_KEY ADMIN_ID KPI_ID
B_VARS=$(PLATFORM_ADMIN_KEY=adminkey "$shared/setup.sh" "$B")
B_TENANT=$(sed -E 's/.*TENANT_ID=([^ ]+).*/\1/' <<<"$B_VARS")
B_KEY=$(sed -E 's/.*API_KEY=([^ ]+).*/\1/' <<<"$B_VARS")
B_USER=$(sed -E 's/.*ADMIN_ID=([^ ]+).*/\1/' <<<"$B_VARS")
export B_TENANT B_KEY B_USER
if [ -n "$B_RPM" ]; then
  # B on a plan with a request rate (requests_per_minute), A's plan unchanged.
  P=(-H "X-Platform-Admin-Key: adminkey" -H 'Content-Type: application/json')
  curl -sf -X POST "$B/v1/admin/plans" "${P[@]}" -d "{\"plan_id\":\"paced\",\"name\":\"Paced\",\"included_credits\":1000000000,\"overage_price_per_credit\":0.01,\"requests_per_minute\":$B_RPM}" >/dev/null
  curl -sf -X PUT "$B/v1/admin/plans/paced/capabilities" "${P[@]}" -d '{"capabilities":["tools","kpi_ingest","kpi_read","tasks","search"]}' >/dev/null
  curl -sf -X PUT "$B/v1/admin/tenants/$B_TENANT/subscription" "${P[@]}" -d '{"plan_id":"paced"}' >/dev/null
fi
python3 - "$B" <<'PY'
import http.client, json, os, sys, urllib.parse
u = urllib.parse.urlparse(sys.argv[1])
c = http.client.HTTPConnection(u.hostname, u.port)
h = {"Content-Type": "application/json", "X-Tenant-ID": os.environ["B_TENANT"],
     "X-User-ID": os.environ["B_USER"], "X-API-Key": os.environ["B_KEY"]}
for i in range(30):  # 30 x 1,000 distinct words starting with "a": more than a search reads
    desc = " ".join(f"a{i:02d}{j:03x}" for j in range(1000))[:10000]
    c.request("POST", "/v1/tasks", json.dumps({"title": f"a{i}", "description": desc}), h)
    r = c.getresponse(); r.read()
    if r.status != 201:
        sys.exit(f"hostile records: {r.status}")
PY

# measure NAME SCENARIO WITH_B: one A run (and the probe), B around it when WITH_B=1.
measure() {
  local name=$1 scenario=$2 with_b=$3 hostile=() slow=""
  if [ "$with_b" = 1 ]; then
    # B starts a second before A and stops a second after: one wrk per kind of request.
    for kind in $KINDS; do
      KIND=$kind wrk -t1 -c"$BC" -d"$((D + 2))s" -s "$here/hostile.lua" "$B" >"$work/b-$name-$kind.txt" 2>&1 &
      hostile+=("$!")
    done
    python3 "$here/slow_bodies.py" 127.0.0.1 "$PORT" "$SLOW" 2>/dev/null &
    slow=$!
    sleep 1
  fi
  wrk -t1 -c1 -d"${D}s" --latency -s "$here/probe.lua" "$B/healthz" >"$work/p-$name.txt" 2>&1 &
  local probe=$!
  SCENARIO=$scenario wrk -t2 -c16 -d"${D}s" --latency -s "$shared/scenario.lua" "$B" >"$work/a-$name.txt" 2>&1
  wait "$probe"
  if [ -n "$slow" ]; then
    for p in "${hostile[@]}"; do wait "$p" || true; done
    kill "$slow" 2>/dev/null || true
    wait "$slow" 2>/dev/null || true
  fi
}

echo "measuring: ${ROUNDS} rounds x 5 scenarios, alone and with B (${D} s each) ..." >&2
for r in $(seq 1 "$ROUNDS"); do
  for s in $SCENARIOS; do
    if [ $((r % 2)) = 1 ]; then order="0 1"; else order="1 0"; fi
    for with_b in $order; do
      measure "$s-$r-$with_b" "$s" "$with_b"
    done
  done
done

python3 - "$work" "$ROUNDS" "$SCENARIOS" "$KINDS" <<'PY'
import re, statistics, sys, os
work, rounds = sys.argv[1], int(sys.argv[2])
scenarios, kinds_run = sys.argv[3].split(), [int(k) for k in sys.argv[4].split()]
def ms(v):
    m = re.fullmatch(r"([\d.]+)(us|ms|s)", v)
    return float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)] if m else float("nan")
def wrk(path):
    t = open(path).read()
    m = re.search(r"Requests/sec:\s+([\d.]+)", t)
    rps = float(m.group(1)) if m else 0.0
    m = re.search(r"^\s+99%\s+(\S+)", t, re.M)
    p99 = ms(m.group(1)) if m else float("nan")
    bad = re.search(r"Non-2xx or 3xx responses: (\d+)", t)
    return rps, p99, int(bad.group(1)) if bad else 0
med = statistics.median
print(f"{'scenario':<8}{'A alone':>10}{'p99':>8}{'A with B':>10}{'p99':>8}{'kept':>7}{'p99 x':>7}"
      f"{'healthz p99 alone/with B':>26}{'B req/s':>9}")
worst_kept, worst_p99, worst_health = 1e9, 0.0, 0.0
for s in scenarios:
    alone = [wrk(f"{work}/a-{s}-{r}-0.txt") for r in range(1, rounds + 1)]
    withb = [wrk(f"{work}/a-{s}-{r}-1.txt") for r in range(1, rounds + 1)]
    h0 = med(wrk(f"{work}/p-{s}-{r}-0.txt")[1] for r in range(1, rounds + 1))
    h1 = med(wrk(f"{work}/p-{s}-{r}-1.txt")[1] for r in range(1, rounds + 1))
    brps = med(sum(wrk(f"{work}/b-{s}-{r}-1-{k}.txt")[0] for k in kinds_run)
               for r in range(1, rounds + 1))
    a_rps, a_p99 = med(x[0] for x in alone), med(x[1] for x in alone)
    b_rps, b_p99 = med(x[0] for x in withb), med(x[1] for x in withb)
    kept, grow = b_rps / a_rps, b_p99 / a_p99
    worst_kept, worst_p99, worst_health = min(worst_kept, kept), max(worst_p99, grow), max(worst_health, h1)
    bad = sum(x[2] for x in alone + withb)
    print(f"{s:<8}{a_rps:>10,.0f}{a_p99:>8.2f}{b_rps:>10,.0f}{b_p99:>8.2f}{kept:>7.0%}{grow:>7.2f}"
          f"{h0:>13.2f} / {h1:<10.2f}{brps:>9,.0f}" + (f"  A non-2xx: {bad}" if bad else ""))
kinds = ["hostile search", "max-text task", "1 MiB bad key", "deep replay", "1 MiB of [",
         "10 MiB declared"]
for k in kinds_run:
    rps = med(wrk(f"{work}/b-{s}-{r}-1-{k}.txt")[0] for s in scenarios
              for r in range(1, rounds + 1))
    m = re.search(r"B statuses (.*)", open(f"{work}/b-{scenarios[0]}-1-1-{k}.txt").read())
    print(f"B {kinds[k-1]:<16} {rps:>8,.0f} req/s (median); answers in one run: {m.group(1) if m else '-'}")
print(f"worst: A kept {worst_kept:.0%} (target >= 80%), p99 x{worst_p99:.2f} (target < 2), "
      f"/healthz p99 {worst_health:.2f} ms with B (target < 10)")
PY
