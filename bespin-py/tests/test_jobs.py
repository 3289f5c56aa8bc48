from __future__ import annotations

import datetime as dt

import pytest

import bespin

DAY = dt.date(2024, 1, 10)


def test_runner_notifies_opted_in_users(admin: bespin.Session, member: bespin.Session) -> None:
    member.set_notification_prefs(daily_brief_enabled=False)
    r = admin.run_daily_brief(idempotency_key="r1", date=DAY)
    assert r["date"] == DAY and r["brief_created"]
    assert r["notifications_inserted"] == 1 and r["notifications_ignored"] == 0
    assert r["notifications_suppressed_due_to_quota"] == 0
    assert admin.brief(DAY)["brief_id"] == r["brief_id"]
    (n,) = admin.outbox(date=DAY)["items"]
    assert n["notification_type"] == "daily_brief" and n["date"] == DAY
    assert member.outbox()["items"] == []
    # Another key: the brief exists, the admin was notified already.
    again = admin.run_daily_brief(idempotency_key="r2", date=DAY)
    assert not again["brief_created"] and again["notifications_ignored"] == 1


def test_runner_replay_and_conflict(admin: bespin.Session) -> None:
    first = admin.run_daily_brief(idempotency_key="r1", date=DAY)
    ledger = admin.billing_ledger()["items"]
    assert admin.run_daily_brief(idempotency_key="r1", date=DAY) == first
    assert admin.billing_ledger()["items"] == ledger
    assert len(admin.outbox()["items"]) == 1
    with pytest.raises(bespin.Conflict):
        admin.run_daily_brief(idempotency_key="r1", date=DAY, window_days=3)


def test_runner_errors(db: bespin.Bespin, admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.Forbidden):
        member.run_daily_brief(idempotency_key="r", date=DAY)
    admin.set_limits(
        assistant_query_daily_limit=10,
        tool_invocation_daily_limit=10,
        daily_brief_generated_daily_limit=10,
        notification_enqueued_daily_limit=1,
    )
    r = admin.run_daily_brief(idempotency_key="r", date=DAY)
    assert r["notifications_inserted"] == 1 and r["notifications_suppressed_due_to_quota"] == 1
    db.admin.create_plan(plan_id="nb", name="No briefs", included_credits=10, overage_price_per_credit=0)
    db.admin.set_subscription(admin.tenant_id, plan_id="nb")
    with pytest.raises(bespin.CapabilityDenied) as e:
        admin.run_daily_brief(idempotency_key="r3", date=DAY)
    assert e.value.detail["capability_key"] == "briefs"
