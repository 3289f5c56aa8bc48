from __future__ import annotations

import datetime as dt

import pytest

import bespin

FOUR = dict(
    assistant_query_daily_limit=1,
    tool_invocation_daily_limit=2,
    daily_brief_generated_daily_limit=3,
    notification_enqueued_daily_limit=4,
)


def test_defaults_and_replace(admin: bespin.Session) -> None:
    assert admin.limits()["assistant_query_daily_limit"] == 100
    out = admin.set_limits(**FOUR)
    assert out == {"tenant_id": admin.tenant_id, **FOUR}
    assert admin.limits() == out
    # Setting the same limits again is idempotent.
    assert admin.set_limits(**FOUR) == out


def test_members_may_read_but_not_set(member: bespin.Session) -> None:
    assert member.limits()["tenant_id"] == member.tenant_id
    with pytest.raises(bespin.Forbidden):
        member.set_limits(**FOUR)


def test_daily_usage_counts_activity(admin: bespin.Session) -> None:
    admin.record_usage("assistant_query", 2, activity="assistant_query")
    today = admin.daily_usage()
    assert isinstance(today["date"], dt.date)
    usage = {u["activity_type"]: u["units"] for u in today["usage"]}
    assert usage["assistant_query"] == 2
    assert admin.daily_usage(today["date"].isoformat()) == today
    other = admin.daily_usage(dt.date(2000, 1, 1))
    assert other["date"] == dt.date(2000, 1, 1)
    assert all(u["units"] == 0 for u in other["usage"])


def test_daily_limit_refusal(admin: bespin.Session) -> None:
    admin.set_limits(**FOUR)
    admin.record_usage("assistant_query", activity="assistant_query")
    with pytest.raises(bespin.QuotaExceeded) as e:
        admin.record_usage("assistant_query", activity="assistant_query")
    assert e.value.code == "daily_quota_exceeded"
    assert e.value.detail == {
        "error": "quota_exceeded",
        "activity_type": "assistant_query",
        "limit": 1,
        "current": 1,
        "requested": 1,
    }


def test_bad_dates(admin: bespin.Session) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        admin.daily_usage("2024-02-30")
    assert e.value.detail[0]["loc"] == ["date"]
    with pytest.raises(TypeError, match="datetime"):
        admin.daily_usage(dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    with pytest.raises(TypeError):
        admin.daily_usage(20240101)  # type: ignore[arg-type]
