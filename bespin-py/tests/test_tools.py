from __future__ import annotations

import threading

import pytest

import bespin
from conftest import make_plan


def test_registry_and_invoke(admin: bespin.Session) -> None:
    tools = {t["name"]: t for t in admin.tools()}
    assert set(tools) == {"echo", "kpi_summary"}
    assert tools["echo"]["input_schema"]["type"] == "object"
    r = admin.invoke_tool("echo", {"n": 1, "s": "é"}, idempotency_key="k1")
    assert r["result"] == {"echo": {"n": 1, "s": "é"}}
    assert admin.invoke_tool("echo", idempotency_key="k2")["result"] == {"echo": {}}
    usage = admin.billing_usage()
    assert usage["credits"]["used"] == 4.0  # 2 × tool_invocation at 2 credits


def test_replay_returns_the_stored_answer_and_writes_nothing(admin: bespin.Session) -> None:
    first = admin.invoke_tool("echo", {"a": [1, 2]}, idempotency_key="same")
    again = admin.invoke_tool("echo", {"a": [1, 2]}, idempotency_key="same")
    assert again == first
    assert len(admin.billing_ledger()["items"]) == 1
    with pytest.raises(bespin.Conflict) as c:
        admin.invoke_tool("echo", {"a": [1, 3]}, idempotency_key="same")
    assert c.value.code == "idempotency_conflict"
    assert len(admin.billing_ledger()["items"]) == 1


def test_tool_errors(admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.NotFound, match="teleport"):
        admin.invoke_tool("teleport", idempotency_key="k")
    with pytest.raises(bespin.Forbidden):
        member.invoke_tool("echo", idempotency_key="k")
    with pytest.raises(bespin.ValidationError) as v:
        admin.invoke_tool("echo", [1], idempotency_key="k")  # type: ignore[arg-type]
    assert v.value.detail[0]["loc"] == ["payload"]
    with pytest.raises(bespin.ValidationError) as b:
        admin.invoke_tool("echo", idempotency_key="  ")
    assert b.value.detail[0]["loc"] == ["idempotency_key"]
    with pytest.raises(TypeError):
        admin.invoke_tool("echo")  # type: ignore[call-arg]
    # A tool-level problem is an answer, not an exception.
    r = admin.invoke_tool("kpi_summary", {}, idempotency_key="ks")
    assert "error" in r["result"]
    assert admin.billing_ledger()["items"][0]["tool_name"] == "kpi_summary"


def test_capability_denied(db: bespin.Bespin, admin: bespin.Session) -> None:
    make_plan(db, "chat-only", 100, ["chat"])
    db.admin.set_subscription(admin.tenant_id, plan_id="chat-only")
    with pytest.raises(bespin.CapabilityDenied) as e:
        admin.tools()
    assert e.value.detail["capability_key"] == "tools"
    with pytest.raises(bespin.CapabilityDenied):
        admin.invoke_tool("echo", idempotency_key="k")


def test_eight_threads_share_idempotency_keys(admin: bespin.Session) -> None:
    results: list[str] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker(i: int) -> None:
        start.wait()
        for j in range(5):
            r = admin.invoke_tool("echo", {"j": j}, idempotency_key=f"key-{j}")
            with lock:
                results.append(r["request_id"])

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(results) == 40 and len(set(results)) == 5
    assert admin.billing_usage()["credits"]["used"] == 10.0
