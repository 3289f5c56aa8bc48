#!/usr/bin/env python3
"""Page weight and time to first chart of /app#kpis for a tenant with 50 KPIs × 1,000 points.

Starts the server (given by --server) on a free port with a fresh database, seeds the tenant
through the API (50 KPIs, 1,000 hourly points each, ending now), then loads /app#kpis in
headless Chromium with the browser cache disabled, --runs times, and reports per load:
- page weight: bytes transferred for the page and its assets, and for the API's JSON;
- time to first chart: from navigation start to the first sparkline drawn (the page's
  `first-chart` performance mark), and to all 50 drawn.
Medians and ranges over the runs are printed last. Nothing is asserted: it measures.
"""
import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "..", "bespin-http", "browser-test"))
from test_pages import call, free_port  # noqa: E402  (the browser test's helpers)

from selenium import webdriver  # noqa: E402
from selenium.webdriver.chrome.service import Service  # noqa: E402

KPIS, POINTS = 50, 1000


def seed(base):
    status, t = call(base, "POST", "/v1/tenants", {"name": "Bench", "region": "eu", "admin_email": "b@bench.io"})
    assert status == 201, t
    h = {"X-Tenant-ID": t["tenant_id"], "X-API-Key": t["api_key"], "X-User-ID": t["admin"]["user_id"]}
    now = int(time.time()) // 3600 * 3600
    for k in range(KPIS):
        status, kpi = call(base, "POST", "/v1/kpis", {"name": f"KPI {k:02d}", "unit": "EUR"}, h)
        assert status == 201, kpi
        pts = [{"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - (POINTS - i) * 3600)),
                "value": 1000 + k * 10 + (i % 24) * 1.5 + i * 0.25} for i in range(POINTS)]
        status, r = call(base, "POST", f"/v1/kpis/{kpi['kpi_id']}/points:bulk", {"points": pts}, h)
        assert status == 200, r
    return t


def browser(tmp):
    o = webdriver.ChromeOptions()
    o.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
    for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
              "--disable-background-networking", "--window-size=1400,900", f"--user-data-dir={tmp}/profile"]:
        o.add_argument(a)
    d = webdriver.Chrome(service=Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver"), options=o)
    d.execute_cdp_cmd("Network.enable", {})
    d.execute_cdp_cmd("Network.setCacheDisabled", {"cacheDisabled": True})
    return d


# Waits for all sparklines, then returns the timings and the bytes of every resource.
MEASURE = """
const done = arguments[arguments.length - 1], want = arguments[0];
const t0 = performance.now();
(function poll() {
  if (document.querySelectorAll('#kpi-grid .spark canvas').length >= want) {
    const nav = performance.getEntriesByType('navigation')[0];
    const first = performance.getEntriesByName('first-chart')[0];
    const res = performance.getEntriesByType('resource').map(r => [r.name, r.transferSize, r.initiatorType]);
    done({ first: first ? first.startTime : null, all: performance.now(), doc: nav.transferSize, res });
  } else if (performance.now() - t0 > 60000) { done(null); } else { requestAnimationFrame(poll); }
})();
"""


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    tmp = tempfile.mkdtemp(prefix="bespin-pagebench-")
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    env = dict(os.environ, PLAYGROUND_UI_ENABLED="1", RATE_LIMIT_DISABLED="1", RUST_LOG="warn")
    server = subprocess.Popen([args.server, "serve", "--listen", f"127.0.0.1:{port}", "--db", os.path.join(tmp, "db.redb")],
                              env=env, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
    d = None
    try:
        for _ in range(200):
            try:
                if call(base, "GET", "/healthz")[0] == 200:
                    break
            except OSError:
                time.sleep(0.05)
        t = seed(base)
        d = browser(tmp)
        d.get(base + "/app")
        d.execute_script("localStorage.setItem('playground_tenant_id', arguments[0]);"
                         "localStorage.setItem('playground_api_key', arguments[1]);"
                         "localStorage.setItem('playground_user_id', arguments[2]);",
                         t["tenant_id"], t["api_key"], t["admin"]["user_id"])
        d.set_script_timeout(90)
        rows = []
        for run in range(args.runs):
            d.get("about:blank")  # so the next load is a whole page load, not a fragment change
            d.get(base + "/app#kpis")
            m = d.execute_async_script(MEASURE, KPIS)
            assert m, "the 50 sparklines were not drawn within 60 s: " + d.find_element("id", "content").text[:500]
            static = m["doc"] + sum(r[1] for r in m["res"] if "/assets/" in r[0])
            api = sum(r[1] for r in m["res"] if "/v1/" in r[0])
            calls = sum(1 for r in m["res"] if "/v1/" in r[0])
            rows.append((static, api, calls, m["first"], m["all"]))
            print(f"run {run + 1}: page+assets {static / 1024:.1f} KiB, API JSON {api / 1024:.1f} KiB in {calls} calls, "
                  f"first chart {m['first']:.0f} ms, all {KPIS} charts {m['all']:.0f} ms")
        def fig(i, unit, scale=1.0):
            v = [r[i] / scale for r in rows]
            return f"median {statistics.median(v):.1f}{unit} (min {min(v):.1f}, max {max(v):.1f})"
        print(f"{KPIS} KPIs × {POINTS} points, {args.runs} cold loads of /app#kpis:")
        print(f"  page + assets transferred: {fig(0, ' KiB', 1024)}")
        print(f"  API JSON transferred:      {fig(1, ' KiB', 1024)} in {rows[0][2]} calls")
        print(f"  time to first chart:       {fig(3, ' ms')}")
        print(f"  time to all {KPIS} charts:     {fig(4, ' ms')}")
    finally:
        if d:
            d.quit()
        server.terminate()
        server.wait(10)
        shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
