"""Usage in and out from Python: record_usage_events and usage_export (issue 22)."""

from __future__ import annotations

from typing import Any

import pytest

import bespin


def setup(db: bespin.Bespin, admin: bespin.Session, capability: str | None = None) -> None:
    db.admin.create_metered_event(
        event_key="llm_tokens", display_name="LLM tokens", unit_name="token",
        credits_per_unit=0.001, list_price_per_credit=0.02, capability=capability,
    )
    db.admin.create_plan(plan_id="metered", name="Metered", included_credits=1000,
                         overage_price_per_credit=0)
    db.admin.set_subscription(admin.tenant_id, plan_id="metered")


def event(i: str, value: Any) -> dict[str, Any]:
    return {"specversion": "1.0", "id": i, "source": "svc", "type": "llm_tokens",
            "data": {"value": value}}


def test_events_are_recorded_once_and_exported(db: bespin.Bespin, admin: bespin.Session) -> None:
    setup(db, admin)
    r = admin.record_usage_events([event("a", 1500), event("a", 1500), event("b", 0)])
    assert (r["accepted"], r["duplicates"], r["rejected"]) == (1, 1, 1)
    assert r["results"][0]["usage_id"] == r["results"][1]["usage_id"]
    bad = r["results"][2]["error"]
    assert bad["code"] == "validation_error"
    assert bad["body"]["detail"][0]["loc"] == ["events", 2, "data", "value"]
    page = admin.usage_export(limit=10)
    assert [e["data"]["origin_id"] for e in page["events"]] == ["a"]
    assert page["events"][0]["id"] == r["results"][0]["usage_id"]
    assert admin.usage_export(after=page["next_cursor"])["events"] == []
    assert db.admin.usage_export(limit=1000)["events"][-1]["id"] == page["events"][0]["id"]
    with pytest.raises(bespin.ValidationError):
        admin.usage_export(after="use_nope")


def test_members_and_capabilities_are_refused(
    db: bespin.Bespin, admin: bespin.Session, member: bespin.Session
) -> None:
    setup(db, admin, capability="kpi_ingest")
    tokens = [e for e in db.admin.metered_events() if e["event_key"] == "llm_tokens"]
    assert tokens[0].get("capability") == "kpi_ingest"
    with pytest.raises(bespin.Forbidden):
        member.record_usage_events([event("m", 1)])
    r = admin.record_usage_events([event("c", 1)])
    assert r["results"][0]["error"]["code"] == "capability_denied"
    with pytest.raises(bespin.ValidationError):
        admin.record_usage_events({"not": "a list"})  # type: ignore[arg-type]
