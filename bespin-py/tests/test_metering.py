from __future__ import annotations

import threading
from typing import Any

import pytest

import bespin
from conftest import make_plan


def test_record_usage_returns_a_receipt(admin: bespin.Session) -> None:
    r = admin.record_usage("assistant_query", tool_name="my-host")
    assert set(r) == {"request_id"}
    item = admin.billing_ledger()["items"][0]
    assert item["request_id"] == r["request_id"] and item["tool_name"] == "my-host"


def test_bad_units_and_activity(admin: bespin.Session) -> None:
    for units in (0, -3):
        with pytest.raises(bespin.ValidationError) as e:
            admin.record_usage("assistant_query", units)
        assert e.value.detail[0]["loc"] == ["units"]
    with pytest.raises(bespin.ValidationError) as a:
        admin.record_usage("assistant_query", activity="dancing")  # type: ignore[arg-type]
    assert a.value.detail[0]["type"] == "literal_error"
    with pytest.raises(TypeError):
        admin.record_usage("assistant_query", "2")  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        admin.record_usage(None)  # type: ignore[arg-type]
    assert admin.billing_ledger()["items"] == []


def test_eight_threads_share_one_handle_against_credits(db: bespin.Bespin, admin: bespin.Session) -> None:
    # 30 credits; each call costs 1 credit; 8 threads × 10 attempts = 80 attempts.
    make_plan(db, "small", 30, ["chat"])
    db.admin.set_subscription(admin.tenant_id, plan_id="small")
    ok: list[str] = []
    refused: list[Any] = []
    other: list[BaseException] = []
    lock = threading.Lock()
    start = threading.Barrier(8)

    def worker() -> None:
        start.wait()
        for _ in range(10):
            try:
                r = admin.record_usage("assistant_query", capability="chat")
                with lock:
                    ok.append(r["request_id"])
            except bespin.QuotaExceeded as e:
                with lock:
                    refused.append(e.detail)
            except BaseException as e:  # pragma: no cover - reported below
                with lock:
                    other.append(e)

    threads = [threading.Thread(target=worker) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert other == []
    assert len(ok) == 30 and len(set(ok)) == 30
    assert len(refused) == 50
    assert all(d["used_credits"] == 30.0 for d in refused)
    usage = admin.billing_usage()
    assert usage["credits"]["used"] == 30.0 and usage["credits"]["remaining"] == 0.0
    assert len(admin.billing_ledger(limit=1000)["items"]) == 30


def test_eight_threads_against_a_cap(db: bespin.Bespin, admin: bespin.Session, member: bespin.Session) -> None:
    make_plan(db, "capped", 1000, ["chat"])
    db.admin.set_plan_caps("capped", [{"event_key": "tool_invocation", "cap_raw_units": 37}])
    db.admin.set_subscription(admin.tenant_id, plan_id="capped")
    sessions = [admin, member]
    counts = [0] * 8

    def worker(i: int) -> None:
        s = sessions[i % 2]
        for _ in range(10):
            try:
                s.record_usage("tool_invocation")
                counts[i] += 1
            except bespin.QuotaExceeded:
                pass

    threads = [threading.Thread(target=worker, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(counts) == 37
    b = admin.billing_usage()["breakdown"]
    assert b == [
        {
            "event_key": "tool_invocation",
            "unit_name": "call",
            "raw_units": 37.0,
            "credits": 74.0,
            "list_cost_estimate": b[0]["list_cost_estimate"],
        }
    ]
