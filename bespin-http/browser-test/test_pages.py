#!/usr/bin/env python3
"""The browser pages tried as a new user would, in headless Chromium (Selenium + chromedriver).

Starts the real server on a free port with a fresh database, creates a tenant through the API,
then: /ui (save credentials, `kpis` and `help` with their replies and cards with sparklines, a
new conversation), /app (propose, approve and execute an action, search, open a record; the
KPIs, Brief and Usage charts: a 100,000-point KPI drawn from a bounded number of points, hover
showing a point's exact value, window selector and zoom, empty states), /console (key once, then
the session cookie), and a stored-XSS probe (also as a KPI name and unit) that must render as
text everywhere. Any JavaScript dialog or browser console error fails the test. Screenshots go
to --screenshots.
"""
import argparse
import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request

from selenium import webdriver
from selenium.common.exceptions import NoAlertPresentException
from selenium.webdriver.common.action_chains import ActionChains
from selenium.webdriver.chrome.service import Service
from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support import expected_conditions as EC
from selenium.webdriver.support.ui import WebDriverWait

XSS = "<img src=x onerror=alert(1)>"


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def call(base, method, path, body=None, headers=None):
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(base + path, data=data, method=method)
    req.add_header("Content-Type", "application/json")
    for k, v in (headers or {}).items():
        req.add_header(k, v)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, json.loads(r.read() or b"null")
    except urllib.error.HTTPError as e:
        raw = e.read()
        try:
            return e.code, json.loads(raw)
        except ValueError:
            return e.code, raw.decode(errors="replace")


class Run:
    def __init__(self, args):
        self.args = args
        self.tmp = tempfile.mkdtemp(prefix="bespin-browser-")
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.console_key = secrets.token_urlsafe(24)
        self.shots = args.screenshots
        os.makedirs(self.shots, exist_ok=True)
        self.server = None
        self.driver = None

    # ---- set-up ----
    def start_server(self):
        env = dict(os.environ, PLAYGROUND_UI_ENABLED="1", DEV_CONSOLE_ENABLED="1",
                   DEV_CONSOLE_KEY=self.console_key, RATE_LIMIT_DISABLED="1", RUST_LOG="warn")
        env.pop("PLATFORM_ADMIN_KEY", None)
        self.log = open(os.path.join(self.tmp, "server.log"), "w")
        self.server = subprocess.Popen(
            [self.args.server, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", os.path.join(self.tmp, "db.redb")],
            env=env, stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(200):
            try:
                if call(self.base, "GET", "/healthz")[0] == 200:
                    return
            except OSError:
                pass
            if self.server.poll() is not None:
                raise SystemExit("server exited at start-up")
            time.sleep(0.05)
        raise SystemExit("server did not answer /healthz")

    def start_browser(self):
        o = webdriver.ChromeOptions()
        o.binary_location = shutil.which("chromium") or "/usr/bin/chromium"
        for a in ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--window-size=1400,900", f"--user-data-dir={os.path.join(self.tmp, 'profile')}"]:
            o.add_argument(a)
        o.set_capability("goog:loggingPrefs", {"browser": "ALL"})
        o.set_capability("unhandledPromptBehavior", "ignore")
        svc = Service(executable_path=shutil.which("chromedriver") or "/usr/bin/chromedriver")
        self.driver = webdriver.Chrome(service=svc, options=o)
        self.driver.set_page_load_timeout(20)

    def stop(self):
        if self.driver:
            self.driver.quit()
        if self.server:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
        shutil.rmtree(self.tmp, ignore_errors=True)

    # ---- helpers ----
    def go(self, path):
        self.driver.get(self.base + path)

    def wait(self, cond, timeout=10):
        return WebDriverWait(self.driver, timeout).until(cond)

    def find(self, css):
        return self.wait(EC.presence_of_element_located((By.CSS_SELECTOR, css)))

    def click(self, css):
        self.wait(EC.element_to_be_clickable((By.CSS_SELECTOR, css))).click()

    def text_in(self, css, text, timeout=10):
        self.wait(EC.text_to_be_present_in_element((By.CSS_SELECTOR, css), text), timeout)

    def count(self, css):
        return len(self.driver.find_elements(By.CSS_SELECTOR, css))

    def no_dialog(self, where):
        try:
            a = self.driver.switch_to.alert
            text = a.text
            a.dismiss()
            raise AssertionError(f"{where}: unexpected JavaScript dialog: {text!r}")
        except NoAlertPresentException:
            pass

    def no_console_errors(self, where):
        bad = [e for e in self.driver.get_log("browser")
               if e["level"] == "SEVERE" and "favicon.ico" not in e["message"]]
        assert not bad, f"{where}: browser console errors: {bad}"

    def shot(self, name):
        path = os.path.join(self.shots, name + ".png")
        self.driver.save_screenshot(path)
        print(f"  screenshot {path}")

    def step(self, name):
        self.steps = getattr(self, "steps", 0) + 1
        print(f"- {name}", flush=True)

    # ---- the scenario ----
    def run(self):
        self.start_server()
        status, t = call(self.base, "POST", "/v1/tenants",
                         {"name": "Acme " + XSS, "region": "eu-west-1", "admin_email": "ada@acme.io"})
        assert status == 201, (status, t)
        self.tenant, self.key, self.user = t["tenant_id"], t["api_key"], t["admin"]["user_id"]
        h = {"X-Tenant-ID": self.tenant, "X-API-Key": self.key, "X-User-ID": self.user}
        status, kpi = call(self.base, "POST", "/v1/kpis", {"name": "MRR", "unit": "USD"}, h)
        assert status == 201, (status, kpi)
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        status, _ = call(self.base, "POST", f"/v1/kpis/{kpi['kpi_id']}/points:bulk",
                         {"points": [{"ts": now, "value": 12500}]}, h)
        assert status in (200, 201), status
        status, task = call(self.base, "POST", "/v1/tasks", {"title": XSS, "priority": "high"}, h)
        assert status == 201, (status, task)
        self.seed_charts(h)
        self.start_browser()
        self.ui()
        self.app()
        self.app_charts()
        self.console()
        self.docs()
        print("browser test: OK")

    def ui(self):
        d = self.driver
        self.step("/ui: save credentials")
        self.go("/ui")
        self.find("#tenant").send_keys(self.tenant)
        self.find("#apikey").send_keys(self.key)
        self.find("#user").send_keys(self.user)
        self.click("#save")
        self.text_in("#status", "Connected")
        self.text_in("#usage", "Chat: 0/")
        self.text_in("#billing", "Credits:")
        # The key is kept for this tab only, in a password input, unless "remember" is ticked.
        assert self.find("#apikey").get_attribute("type") == "password"
        assert d.execute_script("return sessionStorage.getItem('playground_api_key')") == self.key
        assert d.execute_script("return localStorage.getItem('playground_api_key')") is None

        self.step("/ui: kpis and help, replies and cards")
        self.click(".quick .pill[data-msg='kpis']")
        self.wait(lambda _: self.count("#messages .msg.assistant") >= 1)
        self.text_in("#messages", "kpis")
        assert self.count("#messages .card-box") >= 1, "the kpis reply renders a card"
        self.step("/ui: the kpis cards carry the KPIs view's sparkline, names as text")
        self.wait(lambda _: self.count("#messages .card-chart .spark canvas") == 4, 20)
        self.text_in("#messages .card-box", XSS)
        assert self.count("#messages img") == 0
        self.shot("ui-kpi-cards")
        self.click(".quick .pill[data-msg='help']")
        self.wait(lambda _: self.count("#messages .msg.assistant") >= 2)
        users = [b.text for b in d.find_elements(By.CSS_SELECTOR, "#messages .msg.user .bubble")]
        assert users == ["kpis", "help"], users
        self.text_in("#messages", "kpis")
        self.wait(lambda _: self.count("#conversations li.conv") == 1)
        self.text_in("#usage", "Chat: 2/")
        self.no_dialog("/ui")
        self.shot("ui")

        self.step("/ui: new conversation (and a message that must stay text)")
        self.click("#new-conv")
        self.text_in("#messages", "New conversation")
        box = self.find("#msg")
        box.send_keys(XSS)
        box.send_keys(Keys.ENTER)
        self.wait(lambda _: self.count("#conversations li.conv") == 2)
        self.wait(lambda _: self.count("#messages .msg.assistant") >= 1)
        bubbles = [b.text for b in d.find_elements(By.CSS_SELECTOR, "#messages .msg.user .bubble")]
        assert XSS in bubbles, bubbles
        assert self.count("#messages img") == 0
        assert self.count("#conversations li.active") == 1
        self.no_dialog("/ui new conversation")
        self.no_console_errors("/ui")
        self.shot("ui-new-conversation")

    def app(self):
        d = self.driver
        self.step("/app: connects from the saved credentials")
        self.go("/app")
        self.text_in("#status", "Connected")
        assert self.find("#apikey").get_attribute("type") == "password"
        self.step("/app: remembering the key is opt-in")
        self.click("#remember")
        self.click("#connect")
        self.text_in("#status", "Connected")
        assert d.execute_script("return localStorage.getItem('playground_api_key')") == self.key
        self.click("#remember")
        self.click("#connect")
        self.text_in("#status", "Connected")
        assert d.execute_script("return localStorage.getItem('playground_api_key')") is None
        self.text_in("#userlabel", "Role: admin")
        self.text_in("#content", "Tasks Due Soon")
        self.shot("app-today")

        self.step("/app: the stored-XSS task title renders as text")
        self.click(".sections a[data-section='tasks']")
        self.text_in("#content", XSS)
        assert self.count("#content img") == 0
        self.no_dialog("/app tasks")
        self.shot("app-tasks")

        self.step("/app: propose, approve and execute an action")
        self.click(".sections a[data-section='actions']")
        self.click("#new-action")
        self.find("#f-title").send_keys("Launch the pricing page")
        self.find("#f-desc").send_keys("Ship the new pricing page " + XSS)
        payload = self.find("#f-payload")
        payload.clear()
        payload.send_keys('{"url": "/pricing"}')
        self.click("#f-submit")
        self.text_in("#modal-title", "Action: Launch the pricing page")
        self.text_in("#modal-body", "Ship the new pricing page " + XSS)
        self.text_in("#diag-body", "200 OK")  # the last wrapped call: the detail GET
        self.shot("app-action-detail")
        self.click("#modal-close")
        self.text_in("#content", "Launch the pricing page")
        self.text_in("#content .badge", "proposed")
        self.click("#content button[data-act='approve']")
        self.text_in("#modal-title", "Approve Action")
        self.find("#f-comment").send_keys("Looks good")
        self.click("#f-submit")
        self.text_in("#content .badge", "approved")
        self.click("#content button[data-act='execute']")
        self.text_in("#modal-title", "Execute Action")
        self.click("#f-submit")
        self.text_in("#content .badge", "executed")
        self.no_dialog("/app actions")
        self.shot("app-actions")

        self.step("/app: search and record drill-down")
        self.click(".sections a[data-section='search']")
        q = self.find("#search-q")
        q.send_keys("pricing")
        q.send_keys(Keys.ENTER)
        self.text_in("#search-results", "Launch the pricing page")
        self.shot("app-search")
        d.find_element(By.CSS_SELECTOR, "#search-results td a").click()
        self.text_in("#modal-title", "Action Details")
        self.text_in("#modal-body", "Timeline")
        self.shot("app-record")
        self.click("#modal-close")

        self.step("/app: timeline")
        self.click(".sections a[data-section='timeline']")
        self.text_in("#content", "action_executed")
        self.step("/app: the live timeline shows a task created through the API without a reload")
        self.text_in("#live-status", "live")
        h = {"X-Tenant-ID": self.tenant, "X-API-Key": self.key, "X-User-ID": self.user}
        status, _ = call(self.base, "POST", "/v1/tasks", {"title": "Live from the stream " + XSS}, h)
        assert status == 201, status
        self.text_in("#live-events", "task.created")
        self.text_in("#live-events", "Live from the stream " + XSS)
        self.no_dialog("/app")
        self.no_console_errors("/app")
        self.shot("app-timeline")

    # ---- charts ----
    def seed_charts(self, h):
        """KPIs with daily points for 120 days up to today (one named and united with the XSS
        probe, one falling by more than 10% in its last week), a 100,000-point KPI, and briefs
        for today and two earlier dates."""
        self.h = h
        day = 86400
        today = int(time.time()) // day * day

        def kpi(name, unit, points):
            status, k = call(self.base, "POST", "/v1/kpis", {"name": name, "unit": unit}, h)
            assert status == 201, (status, k)
            for i in range(0, len(points), 10000):
                status, r = call(self.base, "POST", f"/v1/kpis/{k['kpi_id']}/points:bulk", {"points": points[i:i + 10000]}, h)
                assert status == 200, (status, r)
            return k["kpi_id"]

        def iso(t):
            return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(t))

        daily = lambda f: [{"ts": iso(today - d * day), "value": f(d)} for d in range(120)]
        self.revenue = kpi("Revenue", "USD", daily(lambda d: round(50000 - d * 123.457, 3)))
        kpi(XSS, XSS, daily(lambda d: 10 + (d % 7)))
        kpi("Active users", None, daily(lambda d: 900 if d < 5 else 1200))
        now = int(time.time())
        self.big = kpi("Sensor (100k points)", "ms",
                       [{"ts": iso(now - (100000 - i) * 60), "value": (i % 1440) / 10 + (500 if i == 50000 else 0)}
                        for i in range(100000)])
        for back in (10, 3, 0):
            d = time.strftime("%Y-%m-%d", time.gmtime(today - back * day))
            status, r = call(self.base, "POST", "/v1/briefs/materialize", {"date": d, "top_n": 5},
                             dict(h, **{"Idempotency-Key": "brief-" + d}))
            assert status == 200, (status, r)
        self.brief_dates = [time.strftime("%Y-%m-%d", time.gmtime(today - b * day)) for b in (0, 3, 10)]

    def section(self, name):
        self.click(f".sections a[data-section='{name}']")

    def app_charts(self):
        d = self.driver
        self.step("/app KPIs: a card with a sparkline per KPI, user text as text")
        if self.find("#diag-toggle").text == "_":
            self.click("#diag-toggle")  # minimised, so the screenshots show the charts whole
        self.section("kpis")
        self.wait(lambda _: self.count("#kpi-grid .kpi-card") == 5)
        self.wait(lambda _: self.count("#kpi-grid .spark canvas") == 4, 20)  # MRR has one point
        self.text_in("#kpi-grid", XSS)
        assert self.count("#content img") == 0
        spark = d.find_element(By.CSS_SELECTOR, f".kpi-card[data-kpi='{self.big}'] .spark")
        assert 0 < int(spark.get_attribute("data-points")) <= 120, spark.get_attribute("data-points")
        self.text_in(f".kpi-card[data-kpi='{self.revenue}']", "50,000 USD")
        self.shot("app-kpis")

        self.step("/app KPI chart: 100,000 points drawn from a bounded number")
        self.click(f".kpi-card[data-kpi='{self.big}']")
        self.find("#kpi-chart canvas")
        self.text_in("#kpi-status", "point(s)")
        self.click("button[data-window='all']")
        self.text_in("#kpi-status", "100000 point(s) — showing")
        drawn = int(self.find("#kpi-chart").get_attribute("data-points"))
        assert 4 <= drawn <= 1000, drawn
        assert self.count("#kpi-points tbody tr") == drawn
        self.shot("app-kpi-100k")

        self.step("/app KPI chart: drag to zoom reads the range again")
        over = self.find("#kpi-chart .u-over")
        w = over.size["width"]
        ActionChains(d).move_to_element_with_offset(over, -w // 2 + 20, 0).click_and_hold() \
            .move_by_offset(w // 6, 0).release().perform()
        self.wait(EC.visibility_of_element_located((By.ID, "kpi-reset")))
        self.wait(lambda _: "point(s)" in self.find("#kpi-status").text and "100000 point(s)" not in self.find("#kpi-status").text)
        total = int(self.find("#kpi-status").text.split(": ")[1].split(" ")[0])
        assert total < 100000, self.find("#kpi-status").text
        assert int(self.find("#kpi-chart").get_attribute("data-points")) <= 1000
        self.shot("app-kpi-zoomed")

        self.step("/app KPI chart: hover shows the exact value and instant; window selector")
        self.click("#kpi-back")
        self.click(f".kpi-card[data-kpi='{self.revenue}']")
        self.find("#kpi-chart canvas")
        self.text_in("#kpi-status", "91 point(s)")  # 90 days back from the latest, inclusive
        over = self.find("#kpi-chart .u-over")
        ActionChains(d).move_to_element_with_offset(over, 37, 0).perform()
        self.wait(lambda _: self.find("#kpi-chart .readout").get_attribute("data-idx"))
        readout = self.find("#kpi-chart .readout")
        idx = int(readout.get_attribute("data-idx"))
        status, series = call(self.base, "GET", f"/v1/kpis/{self.revenue}/series?window_days=90&max_points=1000", headers=self.h)
        assert status == 200, series
        p = series["points"][idx]
        ts, shown = readout.text.split(" · ")
        assert ts == p["ts"], (readout.text, p)
        assert float(shown.replace(" USD", "").replace(",", "")) == p["value"], (readout.text, p)
        tip = self.find("#kpi-chart .tip")
        assert tip.is_displayed() and tip.text == shown, tip.text
        self.shot("app-kpi-hover")
        self.click("button[data-window='7']")
        self.text_in("#kpi-status", "8 point(s)")
        assert self.find("#kpi-chart").get_attribute("data-points") == "8"

        self.step("/app Brief: cards with direction, deltas, a chart each, alerts marked; date picker")
        self.section("brief")
        self.text_in("#content h2", "Brief for " + self.brief_dates[0])
        self.wait(lambda _: self.count(".brief-card") == 5)
        self.wait(lambda _: self.count(".brief-card .spark canvas") >= 3, 20)
        # "Active users" fell from 1,200 to 900 five days ago: -25% over the 7-day window.
        assert self.count(".brief-card.alert .alert-badge") == 1
        self.text_in(".brief-grid", XSS)
        self.text_in(".brief-grid", "Δ%")
        assert self.count("#content img") == 0
        self.shot("app-brief")
        self.click("#brief-older")
        self.text_in("#content h2", "Brief for " + self.brief_dates[1])
        self.click("#brief-older")
        self.text_in("#content h2", "Brief for " + self.brief_dates[2])
        # Ten days ago nothing had fallen yet; Revenue rises throughout.
        self.wait(lambda _: self.count(".brief-card .brief-dir.up") >= 1)
        assert self.count(".brief-card.alert") == 0
        assert d.find_element(By.ID, "brief-older").get_attribute("disabled")
        self.shot("app-brief-older")

        self.step("/app Usage: credits against the allowance, usage per day, daily limits")
        self.section("usage")
        self.find("#usage-chart canvas")
        self.text_in("#content", "Credits used:")
        assert self.count("[data-activity] .progress-row") == 4
        assert d.execute_script("return [level(79.9), level(80), level(100), level(250)]") == ["ok", "amber", "red", "red"]
        self.text_in(".bar-plot .u-legend", "kpi_points_ingested")
        self.shot("app-usage")

        self.step("/app charts: empty states say what to do next")
        status, t = call(self.base, "POST", "/v1/tenants", {"name": "Empty", "region": "eu", "admin_email": "e@e.io"})
        assert status == 201, t
        d.execute_script("localStorage.setItem('playground_tenant_id', arguments[0]);"
                         "sessionStorage.setItem('playground_api_key', arguments[1]);"
                         "localStorage.setItem('playground_user_id', arguments[2]);",
                         t["tenant_id"], t["api_key"], t["admin"]["user_id"])
        d.get("about:blank")  # from /app, /app#kpis alone would only change the fragment
        self.go("/app#kpis")  # a link straight to a section
        self.text_in("#status", "Connected")
        self.text_in(".sections a.active", "KPIs")
        self.text_in("#content", "No KPIs yet — define one with POST /v1/kpis")
        self.section("brief")
        self.text_in("#content", "No briefs yet — run POST /v1/jobs/daily-brief")
        self.section("usage")
        self.text_in("#content", "No usage yet this period")
        self.shot("app-usage-empty")
        self.no_dialog("/app charts")
        self.no_console_errors("/app charts")

    def console(self):
        d = self.driver
        self.step("/console: a wrong key is a plain 404")
        status, body = call(self.base, "GET", "/console?key=wrong")
        assert status == 404 and body == {"detail": "Not Found"}, (status, body)
        self.step("/console: the key once, then the session cookie")
        self.go("/console?key=" + self.console_key)
        self.text_in("h1", "Overview")
        assert "key=" not in d.current_url, d.current_url
        cookie = d.get_cookie("console_session")
        assert cookie and cookie["httpOnly"] and cookie["value"] != self.console_key, cookie
        assert self.console_key not in d.page_source
        self.shot("console")
        self.go("/console/tenants")
        self.text_in("main", "Acme " + XSS)
        assert self.count("main img") == 0
        self.shot("console-tenants")
        d.find_element(By.XPATH, "//main//tr[td[starts-with(normalize-space(.), 'Acme')]]//td/a").click()
        self.text_in("h1", "Tenant: Acme " + XSS)
        self.shot("console-tenant")
        self.go("/console/core-os")
        self.text_in("main", XSS)
        self.text_in("main", "Launch the pricing page")
        assert self.count("main img") == 0
        self.shot("console-core-os")
        self.go("/console/db/tenants")
        self.text_in("h1", "Table: tenants")
        src = d.page_source
        assert self.key not in src and "digest" not in src, "the console shows a credential"
        self.shot("console-table")
        self.go("/console/billing")
        self.text_in("h1", "Billing Overview")
        self.shot("console-billing")
        self.no_dialog("/console")
        self.no_console_errors("/console")


    def docs(self):
        self.step("/docs: Swagger UI works under its Content-Security-Policy")
        self.go("/docs/")
        self.wait(lambda _: self.count(".opblock") > 10)
        self.no_console_errors("/docs")
        self.shot("docs")


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--server", required=True)
    p.add_argument("--screenshots", required=True)
    args = p.parse_args()
    r = Run(args)
    started = time.time()
    ok = False
    try:
        r.run()
        ok = True
    except Exception:
        if r.driver:
            try:
                r.shot("failure")
            except Exception:
                pass
        print(open(os.path.join(r.tmp, "server.log")).read()[-4000:] if os.path.exists(os.path.join(r.tmp, "server.log")) else "", file=sys.stderr)
        raise
    finally:
        r.stop()
        print(f"browser test took {time.time() - started:.1f}s")
    if ok:
        # A closing line CI can read: every step is a check that passed.
        print(f"browser: {getattr(r, 'steps', 0)} passed, 0 failed")


if __name__ == "__main__":
    main()
