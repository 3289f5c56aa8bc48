"""Webhooks against the real server, checked by an independent implementation.

1. Signatures: a receiver verifies every delivery with the PyPI `standardwebhooks` package
   (Svix's reference implementation) under the endpoint's secret; after a rotation the next
   delivery verifies under the old secret alone and under the new one alone (both signatures
   are sent); a wrong secret fails verification (so the check can fail).
2. TLS: a receiver over https whose certificate chains to a CA given in
   BESPIN_WEBHOOK_CA_FILE gets its delivery; one whose certificate another CA signed gets nothing,
   and the attempt records the certificate error (so the check can fail).
3. Crash: tasks are written by several threads while the receiver is down; the server is
   SIGKILLed mid-way, restarted on the same database, and the receiver started. Every
   acknowledged task's task.created event must reach the receiver at least once, and every
   event received must be of a task that exists (no event without its committed change).

Usage: webhooks.py BINARY WORKDIR
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

from standardwebhooks import Webhook, WebhookVerificationError
from testcerts import make_certs

BINARY, WORK = sys.argv[1], sys.argv[2]
DB = os.path.join(WORK, "db.redb")
CA = os.path.join(WORK, "ca.pem")


def free_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return int(port)


class Receiver:
    """A local receiver that keeps every delivery and verifies it with `standardwebhooks`."""

    def __init__(self, port: int, cert: str | None = None) -> None:
        self.port = port
        self.cert = cert
        self.got: list[tuple[dict[str, str], bytes]] = []
        self.lock = threading.Lock()
        self.server: http.server.ThreadingHTTPServer | None = None

    def start(self) -> None:
        outer = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802
                body = self.rfile.read(int(self.headers.get("content-length", "0")))
                with outer.lock:
                    outer.got.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(200)
                self.send_header("content-length", "2")
                self.end_headers()
                self.wfile.write(b"ok")

            def log_message(self, *args: Any) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        if self.cert is not None:
            ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            ctx.load_cert_chain(os.path.join(WORK, self.cert + ".pem"), os.path.join(WORK, self.cert + ".key"))
            self.server.socket = ctx.wrap_socket(self.server.socket, server_side=True)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def deliveries(self) -> list[tuple[dict[str, str], bytes]]:
        with self.lock:
            return list(self.got)


class Server:
    def __init__(self) -> None:
        self.port = free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        env = dict(os.environ, BESPIN_WEBHOOK_ALLOW="127.0.0.1", BESPIN_WEBHOOK_LEASE_SECS="2",
                   BESPIN_WEBHOOK_CA_FILE=CA,
                   RATE_LIMIT_DISABLED="1")
        log = open(os.path.join(WORK, "server.log"), "ab")
        self.proc = subprocess.Popen(
            [BINARY, "serve", "--listen", f"127.0.0.1:{self.port}", "--db", DB],
            env=env, stdout=log, stderr=log)
        deadline = time.time() + 30
        while time.time() < deadline:
            try:
                urllib.request.urlopen(self.base + "/readyz", timeout=1)
                return
            except Exception:
                time.sleep(0.05)
        raise SystemExit("the server did not start")

    def kill(self) -> None:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            self.proc.wait()

    def call(self, method: str, path: str, headers: dict[str, str], body: Any = None,
             timeout: float = 10) -> tuple[int, Any]:
        data = None if body is None else json.dumps(body).encode()
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers=dict(headers, **{"content-type": "application/json"}))
        try:
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, json.loads(e.read() or b"null")


def wait(what: str, cond: Any, seconds: float = 60) -> None:
    deadline = time.time() + seconds
    while not cond():
        if time.time() > deadline:
            raise SystemExit(f"timed out: {what}")
        time.sleep(0.05)


def verify(secret: str, headers: dict[str, str], body: bytes) -> bool:
    try:
        Webhook(secret).verify(body, headers)
        return True
    except WebhookVerificationError:
        return False


def main() -> None:
    make_certs(WORK)
    server = Server()
    server.start()
    status, t = server.call("POST", "/v1/tenants", {}, {"name": "Acme", "region": "eu", "admin_email": "a@x.io"})
    assert status == 201, t
    h = {"x-tenant-id": t["tenant_id"], "x-user-id": t["admin"]["user_id"], "x-api-key": t["api_key"]}
    rport = free_port()
    receiver = Receiver(rport)
    receiver.start()
    status, ep = server.call("POST", "/v1/webhooks/endpoints", h,
                             {"url": f"http://127.0.0.1:{rport}/hook", "event_types": ["task.created", "webhook.test"]})
    assert status == 201, ep
    old = ep["secret"]

    # 1. Signatures, checked by standardwebhooks.
    server.call("POST", "/v1/tasks", h, {"title": "signed"})
    wait("a delivery", lambda: len(receiver.deliveries()) >= 1)
    headers, body = receiver.deliveries()[0]
    assert verify(old, headers, body), "standardwebhooks rejected our signature"
    assert not verify("whsec_" + "A" * 32, headers, body), "a wrong secret must fail"
    assert json.loads(body)["id"] == headers["webhook-id"]
    status, rotated = server.call("POST", f"/v1/webhooks/endpoints/{ep['endpoint_id']}/rotate", h)
    assert status == 200, rotated
    server.call("POST", f"/v1/webhooks/endpoints/{ep['endpoint_id']}/test", h)
    wait("the test delivery", lambda: len(receiver.deliveries()) >= 2)
    headers, body = receiver.deliveries()[1]
    assert verify(old, headers, body) and verify(rotated["secret"], headers, body), headers
    print("signatures: verified by standardwebhooks (one secret, then both after rotation)")

    # 2. TLS: the CA of BESPIN_WEBHOOK_CA_FILE is trusted, another CA is not.
    tls = {name: Receiver(free_port(), name) for name in ("trusted", "rogue")}
    eps: dict[str, str] = {}
    secrets: dict[str, str] = {}
    for name, r in tls.items():
        r.start()
        status, e = server.call("POST", "/v1/webhooks/endpoints", h,
                                {"url": f"https://127.0.0.1:{r.port}/hook", "event_types": ["task.created"]})
        assert status == 201, e
        eps[name] = e["endpoint_id"]
        secrets[name] = e["secret"]
    server.call("POST", "/v1/tasks", h, {"title": "over tls"})
    wait("the delivery over TLS", lambda: len(tls["trusted"].deliveries()) >= 1)
    headers, body = tls["trusted"].deliveries()[0]
    assert verify(secrets["trusted"], headers, body), "the TLS delivery's signature"
    assert json.loads(body)["data"]["title"] == "over tls"

    def rogue_error() -> str:
        _, a = server.call("GET", f"/v1/webhooks/endpoints/{eps['rogue']}/attempts", h)
        items = a["items"]
        return (items[0].get("error") or "") if items else ""

    wait("the refused certificate's attempt", lambda: rogue_error() != "")
    assert "certificate" in rogue_error().lower(), rogue_error()
    assert tls["rogue"].deliveries() == [], "nothing may reach a receiver whose certificate is not trusted"
    refused = rogue_error()
    for name, r in tls.items():
        server.call("DELETE", f"/v1/webhooks/endpoints/{eps[name]}", h)
        assert r.server is not None
        r.server.shutdown()
    print(f"tls: delivered to a receiver signed by the configured CA; one of another CA refused ({refused})")

    # 3. Crash: the receiver is down while tasks are written and the server is killed.
    assert receiver.server is not None
    receiver.server.shutdown()
    receiver.server.server_close()
    acked: list[str] = []
    lock = threading.Lock()
    stop = threading.Event()

    def writer(n: int) -> None:
        i = 0
        while not stop.is_set():
            i += 1
            try:
                status, task = server.call("POST", "/v1/tasks", h, {"title": f"w{n}-{i}"}, timeout=2)
            except Exception:
                continue
            if status == 201:
                with lock:
                    acked.append(task["task_id"])

    threads = [threading.Thread(target=writer, args=(n,)) for n in range(4)]
    for th in threads:
        th.start()
    time.sleep(1.5)
    server.kill()
    stop.set()
    for th in threads:
        th.join()
    server.start()
    receiver = Receiver(rport)
    receiver.start()

    def received() -> set[str]:
        ids = set()
        for _, b in receiver.deliveries():
            e = json.loads(b)
            if e["type"] == "task.created":
                ids.add(e["data"]["task_id"])
        return ids

    wait(f"all {len(acked)} acknowledged tasks delivered", lambda: set(acked) <= received(), 90)
    for task_id in received():
        status, _ = server.call("GET", f"/v1/tasks/{task_id}", h)
        assert status == 200, f"an event was delivered for task {task_id}, which did not commit"
    dupes = len([1 for _, b in receiver.deliveries() if json.loads(b)["type"] == "task.created"]) - len(received())
    print(f"crash: {len(acked)} acknowledged tasks, all delivered after SIGKILL and restart "
          f"({len(received())} received, {dupes} duplicate deliveries); none without its task")
    server.stop()


if __name__ == "__main__":
    main()
