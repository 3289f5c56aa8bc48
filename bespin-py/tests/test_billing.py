from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import bespin
from conftest import make_plan


def test_plan_usage_and_events(admin: bespin.Session) -> None:
    plan = admin.billing_plan()
    assert plan["plan_id"] == "starter" and plan["status"] == "active"
    assert plan["plan"]["included_credits"] == 500
    assert "chat" in plan["capabilities"]
    assert isinstance(plan["period_start"], dt.date)
    usage = admin.billing_usage()
    assert usage["credits"]["used"] == 0.0
    assert usage["period_start"].day == 1
    keys = [e["event_key"] for e in admin.billing_events()]
    assert keys == sorted(keys) and "assistant_query" in keys


def test_usage_and_ledger_follow_metering(admin: bespin.Session) -> None:
    admin.record_usage("tool_invocation", 3, tool_name="crm.lookup")
    admin.record_usage("assistant_query")
    usage = admin.billing_usage()
    assert usage["credits"]["used"] == 7.0  # 3 × 2.0 + 1 × 1.0
    assert [b["event_key"] for b in usage["breakdown"]] == ["assistant_query", "tool_invocation"]
    ledger = admin.billing_ledger()
    assert [i["event_key"] for i in ledger["items"]] == ["assistant_query", "tool_invocation"]
    assert ledger["items"][1]["tool_name"] == "crm.lookup"
    assert isinstance(ledger["items"][0]["created_at"], dt.datetime)
    assert len(admin.billing_ledger(limit=1)["items"]) == 1
    past = admin.billing_usage(dt.date(2001, 5, 17))
    assert past["period_start"] == dt.date(2001, 5, 1)
    assert past["breakdown"] == []
    assert admin.billing_ledger("2001-05-01")["items"] == []
    by_day = admin.billing_usage_by_day()
    (today,) = by_day["days"]
    assert today["date"] == dt.datetime.now(dt.timezone.utc).date() and today["credits"] == 7.0
    assert [(i["event_key"], i["raw_units"]) for i in today["breakdown"]] == [
        ("assistant_query", 1.0),
        ("tool_invocation", 3.0),
    ]
    assert admin.billing_usage_by_day("2001-05-01")["days"] == []


def test_admin_metered_events(db: bespin.Bespin, admin: bespin.Session) -> None:
    ev = db.admin.create_metered_event(
        event_key="report_export",
        display_name="Report export",
        unit_name="report",
        credits_per_unit=2.5,
        list_price_per_credit=0.01,
    )
    assert ev["active"] and ev["billable"] and ev["description"] is None
    assert isinstance(ev["updated_at"], dt.datetime)
    with pytest.raises(bespin.Conflict) as c:
        db.admin.create_metered_event(
            event_key="report_export",
            display_name="x",
            unit_name="x",
            credits_per_unit=1,
            list_price_per_credit=0,
        )
    assert c.value.code == "conflict"
    admin.record_usage("report_export", 2)
    assert admin.billing_usage()["credits"]["used"] == 5.0
    up = db.admin.update_metered_event("report_export", credits_per_unit=1, active=False)
    assert up["credits_per_unit"] == 1.0 and not up["active"]
    assert "report_export" not in [e["event_key"] for e in admin.billing_events()]
    assert "report_export" in [e["event_key"] for e in db.admin.metered_events()]
    with pytest.raises(bespin.BadRequest) as b:
        admin.record_usage("report_export")
    assert b.value.code == "unknown_event_type"
    assert b.value.detail == {"error": "unknown_event_type", "event_key": "report_export"}
    with pytest.raises(bespin.NotFound):
        db.admin.update_metered_event("nope", display_name="x")


def test_admin_plans_caps_and_subscription(db: bespin.Bespin, admin: bespin.Session) -> None:
    make_plan(db, "tiny", 10, ["chat"])
    assert "tiny" in [p["plan_id"] for p in db.admin.plans()]
    p = db.admin.update_plan("tiny", included_credits=20)
    assert p["included_credits"] == 20 and p["name"] == "Tiny"
    caps = db.admin.set_plan_caps("tiny", [{"event_key": "assistant_query", "cap_raw_units": 3}])
    assert caps == [{"event_key": "assistant_query", "period": "monthly", "cap_raw_units": 3.0}]
    sub = db.admin.set_subscription(admin.tenant_id, plan_id="tiny", period_start=dt.date(2024, 1, 1))
    assert sub["plan_id"] == "tiny" and sub["status"] == "active"
    assert sub["period_start"] == dt.date(2024, 1, 1)
    assert sub["period_end"] == dt.date(2024, 2, 1)
    assert admin.billing_plan()["capabilities"] == ["chat"]
    # Replaying the same admin change gives the same state.
    assert db.admin.set_plan_capabilities("tiny", ["chat"]) == ["chat"]
    assert admin.billing_plan()["capabilities"] == ["chat"]
    with pytest.raises(bespin.NotFound):
        db.admin.update_plan("nope", name="x")
    with pytest.raises(bespin.NotFound):
        db.admin.set_subscription("no-tenant", plan_id="tiny")
    with pytest.raises(bespin.NotFound):
        db.admin.set_subscription(admin.tenant_id, plan_id="nope")
    with pytest.raises(bespin.BadRequest):
        db.admin.set_plan_capabilities("tiny", ["teleport"])
    with pytest.raises(bespin.BadRequest):
        db.admin.set_plan_caps("tiny", [{"event_key": "nope", "cap_raw_units": 1}])
    with pytest.raises(bespin.ValidationError) as v:
        db.admin.set_plan_capabilities("tiny", ["chat", "chat"])
    assert v.value.detail[0]["loc"] == ["capabilities", 1]
    assert v.value.detail[0]["type"] == "unique_items"


def test_credit_and_cap_refusals(db: bespin.Bespin, admin: bespin.Session) -> None:
    make_plan(db, "tiny", 3, ["chat"])
    db.admin.set_subscription(admin.tenant_id, plan_id="tiny")
    admin.record_usage("assistant_query", 2)
    with pytest.raises(bespin.QuotaExceeded) as e:
        admin.record_usage("assistant_query", 2)
    d: Any = e.value.detail
    assert e.value.code == "quota_exceeded"
    assert d["error"] == "quota_exceeded" and d["event_key"] == "assistant_query"
    assert d["limit_credits"] == 3 and d["used_credits"] == 2.0 and d["requested_credits"] == 2.0
    assert d["cap_raw_units"] is None and d["requested_raw_units"] == 2
    assert isinstance(d["period_start"], str)  # details stay plain JSON data
    db.admin.set_plan_caps("tiny", [{"event_key": "assistant_query", "cap_raw_units": 2}])
    with pytest.raises(bespin.QuotaExceeded) as cap:
        admin.record_usage("assistant_query", 1)
    assert cap.value.detail["cap_raw_units"] == 2.0
    assert cap.value.detail["used_raw_units"] == 2.0
    assert admin.billing_usage()["credits"]["used"] == 2.0  # refusals wrote nothing


def test_capability_refusals(db: bespin.Bespin, admin: bespin.Session) -> None:
    make_plan(db, "bare", 100, [])
    db.admin.set_subscription(admin.tenant_id, plan_id="bare")
    with pytest.raises(bespin.CapabilityDenied) as e:
        admin.record_usage("assistant_query", capability="chat")
    assert isinstance(e.value, bespin.Forbidden)
    assert e.value.code == "capability_denied"
    assert e.value.detail["capability_key"] == "chat"
    assert e.value.detail["plan_id"] == "bare"
    db.admin.set_subscription(admin.tenant_id, plan_id="starter", status="suspended")
    with pytest.raises(bespin.CapabilityDenied) as s:
        admin.record_usage("assistant_query", capability="chat")
    assert s.value.code == "subscription_suspended"
    assert s.value.detail["status"] == "suspended"
    assert admin.billing_ledger()["items"] == []
