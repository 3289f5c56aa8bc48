"""Usage in and out against the real server, checked by the PyPI `cloudevents` SDK.

1. In: usage events made and serialised by the SDK (`CloudEvent`, `JSONFormat`) are posted to
   `POST /v1/usage/events`, one structured event and batches; a repeat is a duplicate.
2. Out, OpenMeter format: `bespin export-usage --once` pushes the platform export to a local
   receiver that parses every event of every batch with the SDK (which validates the required
   attributes and `time`) and answers 503 to the first two POSTs (retried with backoff). Every
   usage event of the export arrives at least once, with the export's ids.
3. SIGTERM: a pusher started against a slow receiver stops at once and cleanly (exit 0); a
   second run resumes from its state file, and nothing is lost.
4. Lago format: `--format lago` posts `{"events": [...]}` with transaction_id,
   external_subscription_id (the tenant), code (the event key), timestamp and properties.
5. TLS: an https receiver whose certificate an internal CA signed gets the export when that CA
   is given with `--ca-file`; without it, or for a certificate of another CA, the pusher sends
   nothing and keeps retrying (its state file untouched) until stopped.

Usage: export_usage.py BINARY WORKDIR
"""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from typing import Any

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent
from testcerts import make_certs

BINARY, WORK = sys.argv[1], sys.argv[2]
ADMIN_KEY = "export-usage-test-admin-key"
FMT = JSONFormat()


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class Receiver:
    """Keeps what it is sent, after checking it; fails the first `fail` POSTs with 503."""

    def __init__(self, fail: int = 0, delay: float = 0.0, cert: str | None = None) -> None:
        self.port = free_port()
        self.scheme = "http" if cert is None else "https"
        self.fail = fail
        self.delay = delay
        self.ids: list[str] = []
        self.lago: list[dict[str, Any]] = []
        self.posts = 0
        self.errors: list[str] = []
        self.lock = threading.Lock()
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.posts += 1
                    failing = outer.posts <= outer.fail
                time.sleep(outer.delay)
                if failing:
                    self.answer(503)
                    return
                try:
                    outer.take(self.path, self.headers.get("content-type", ""), body)
                except Exception as e:  # a payload the SDK refuses is a failure of the test
                    with outer.lock:
                        outer.errors.append(f"{type(e).__name__}: {e}")
                    self.answer(400)
                    return
                self.answer(202)

            def answer(self, code: int) -> None:
                self.send_response(code)
                self.send_header("content-length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(WORK, cert + ".pem"), os.path.join(WORK, cert + ".key"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def take(self, path: str, content_type: str, body: bytes) -> None:
        if path == "/api/v1/events/batch":
            events = json.loads(body)["events"]
            for e in events:
                assert set(e) == {"transaction_id", "external_subscription_id", "code",
                                  "timestamp", "properties"}, e
                assert isinstance(e["timestamp"], (int, float)) and e["timestamp"] > 1.7e9, e
                assert e["properties"]["tenant_id"] == e["external_subscription_id"], e
            with self.lock:
                self.lago.extend(events)
            return
        assert content_type == "application/cloudevents-batch+json", content_type
        parsed = [FMT.read(CloudEvent, json.dumps(item).encode()) for item in json.loads(body)]
        for ev in parsed:
            assert ev.get_specversion() == "1.0"
            assert ev.get_source().startswith("bespin/"), ev.get_source()
            assert ev.get_time() is not None
            data = ev.get_data()
            assert isinstance(data, dict) and data["value"] > 0, data
        with self.lock:
            self.ids.extend(ev.get_id() for ev in parsed)

    def url(self, path: str = "/api/v1/events") -> str:
        return f"{self.scheme}://127.0.0.1:{self.port}{path}"


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PLATFORM_ADMIN_KEY=ADMIN_KEY, RATE_LIMIT_DISABLED="1")
        log = open(os.path.join(WORK, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", f"127.0.0.1:{self.port}",
             "--db", os.path.join(WORK, "db.redb")], env=env, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("the server did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait()

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None,
             raw: bytes | None = None, content_type: str = "application/json") -> tuple[int, Any]:
        data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict(headers, **{"content-type": content_type}))
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def sdk_event(i: int, value: float) -> CloudEvent:
    return CloudEvent({"id": f"evt-{i}", "source": "//chat-service", "type": "llm_tokens",
                       "subject": f"customer-{i % 7}"}, {"value": value})


def pusher(server: Server, receiver: Receiver, state: str, *extra: str) -> subprocess.Popen[bytes]:
    env = dict(os.environ, PLATFORM_ADMIN_KEY=ADMIN_KEY, RUST_LOG="warn")
    args = [BINARY, "export-usage", "--from", server.base, "--state", state, *extra]
    if "--to" not in extra:
        args += ["--to", receiver.url()]
    return subprocess.Popen(args, env=env)


def main() -> None:
    server = Server()
    try:
        run(server)
    finally:
        server.stop()


def run(server: Server) -> None:
    admin = {"X-Platform-Admin-Key": ADMIN_KEY}
    status, t = server.call("POST", "/v1/tenants", {}, {"name": "Acme", "region": "eu",
                                                         "admin_email": "a@x.io"})
    assert status == 201, t
    h = {"X-Tenant-ID": t["tenant_id"], "X-User-ID": t["admin"]["user_id"], "X-API-Key": t["api_key"]}
    for path, body in [
        ("/v1/admin/metered-events", {"event_key": "llm_tokens", "display_name": "LLM tokens",
                                      "unit_name": "token", "credits_per_unit": 0.001,
                                      "list_price_per_credit": 0.02}),
        ("/v1/admin/plans", {"plan_id": "metered", "name": "Metered", "included_credits": 100000,
                             "overage_price_per_credit": 0}),
    ]:
        status, r = server.call("POST", path, admin, body)
        assert status == 201, r
    status, r = server.call("PUT", f"/v1/admin/tenants/{t['tenant_id']}/subscription", admin,
                            {"plan_id": "metered"})
    assert status == 200, r

    # 1. In, as the SDK writes events: one structured, then batches (and a repeat).
    one = FMT.write(sdk_event(0, 12.5))
    status, r = server.call("POST", "/v1/usage/events", h, raw=one,
                            content_type="application/cloudevents+json")
    assert status == 200 and r["results"][0]["status"] == "accepted", r
    for start in range(1, 250, 100):
        batch = b"[" + b",".join(FMT.write(sdk_event(i, i)) for i in range(start, start + 100)) + b"]"
        status, r = server.call("POST", "/v1/usage/events", h, raw=batch,
                                content_type="application/cloudevents-batch+json")
        assert status == 200 and r["rejected"] == 0, r
    status, r = server.call("POST", "/v1/usage/events", h, raw=one,
                            content_type="application/cloudevents+json")
    assert r["results"][0]["status"] == "duplicate", r
    status, everything = server.call("GET", "/v1/admin/usage/export?limit=1000", admin)
    assert status == 200 and len(everything) == 301, len(everything)
    expected = {e["id"] for e in everything}

    # 2. Out (OpenMeter format), through two refusals.
    rx = Receiver(fail=2)
    state = os.path.join(WORK, "cursor.json")
    p = pusher(server, rx, state, "--once", "--batch", "100")
    assert p.wait(timeout=60) == 0
    assert not rx.errors, rx.errors
    assert set(rx.ids) == expected, (len(rx.ids), len(expected))
    assert json.load(open(state))["cursor"] == everything[-1]["id"]

    # 3. SIGTERM against a slow receiver, then resume: nothing lost.
    for start in range(1000, 1300, 100):
        batch = b"[" + b",".join(FMT.write(sdk_event(i, 1)) for i in range(start, start + 100)) + b"]"
        server.call("POST", "/v1/usage/events", h, raw=batch,
                    content_type="application/cloudevents-batch+json")
    slow = Receiver(delay=0.3)
    p = pusher(server, slow, state, "--batch", "50")
    deadline = time.time() + 30
    while not slow.ids and time.time() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGTERM)
    started = time.time()
    assert p.wait(timeout=10) == 0
    assert time.time() - started < 2, "SIGTERM did not stop the pusher at once"
    assert len(slow.ids) < 300, "it should have been stopped mid-way"
    p = pusher(server, slow, state, "--once", "--batch", "50")
    assert p.wait(timeout=60) == 0
    status, everything = server.call("GET", "/v1/admin/usage/export?limit=1000", admin)
    new = {e["id"] for e in everything} - expected
    assert len(new) == 300 and new <= set(slow.ids), (len(new), len(set(slow.ids) & new))
    assert not slow.errors, slow.errors

    # 4. Lago's batch events API.
    lago = Receiver()
    p = pusher(server, lago, os.path.join(WORK, "lago.json"), "--once", "--format", "lago",
               "--to", lago.url("/api/v1/events/batch"))
    assert p.wait(timeout=60) == 0
    assert not lago.errors, lago.errors
    assert {e["transaction_id"] for e in lago.lago} == {e["id"] for e in everything}
    tokens = [e for e in lago.lago if e["code"] == "llm_tokens"]
    assert len(tokens) == 601 and all(e["external_subscription_id"] == t["tenant_id"] for e in tokens)

    # 5. An https receiver behind an internal CA: trusted with --ca-file, refused (and retried,
    # nothing sent) without it or with a certificate of another CA.
    ca = make_certs(WORK)
    for cert, extra, delivered in (("trusted", [], False), ("rogue", ["--ca-file", ca], False),
                                   ("trusted", ["--ca-file", ca], True)):
        tls = Receiver(cert=cert)
        state = os.path.join(WORK, f"tls-{cert}-{len(extra)}.json")
        p = pusher(server, tls, state, "--once", "--batch", "1000", *extra)
        if delivered:
            assert p.wait(timeout=60) == 0
            assert not tls.errors, tls.errors
            assert set(tls.ids) == {e["id"] for e in everything}, len(tls.ids)
        else:
            time.sleep(2)
            assert p.poll() is None, "an untrusted receiver must be retried, not skipped"
            p.send_signal(signal.SIGTERM)
            assert p.wait(timeout=10) == 0
            assert tls.posts == 0 and not tls.ids and not os.path.exists(state), (cert, extra)
    print(f"export-usage: {len(everything)} usage events pushed as CloudEvents (SDK-validated), "
          f"resumed after SIGTERM, to Lago, and over https to a receiver of an internal CA")


if __name__ == "__main__":
    main()
