from __future__ import annotations

import datetime as dt

import pytest

import bespin


def test_chat_intents_and_conversation(admin: bespin.Session, member: bespin.Session) -> None:
    k = admin.create_kpi(name="MRR", unit="EUR")
    admin.ingest_points(k["kpi_id"], [{"ts": "2024-01-03", "value": 100}, {"ts": "2024-01-10", "value": 120}])
    admin.materialize_brief(idempotency_key="b", date=dt.date(2024, 1, 10))
    r = member.chat("help")
    assert r["assistant_message"]["content"].startswith("Available commands")
    conv = r["conversation_id"]
    b = member.chat("today's brief", conversation_id=conv, date=dt.date(2024, 1, 10))
    assert b["conversation_id"] == conv
    card = b["assistant_message"]["cards"][0]
    assert card["type"] == "brief" and card["date"] == "2024-01-10"  # cards stay plain JSON
    kp = member.chat("kpis", conversation_id=conv)
    assert "1 KPI" in kp["assistant_message"]["content"]
    detail = member.conversation(conv)
    assert [m["role"] for m in detail["messages"]] == ["user", "assistant"] * 3
    assert isinstance(detail["messages"][0]["created_at"], dt.datetime)
    assert admin.daily_usage()["usage"][0] == {"activity_type": "assistant_query", "units": 3}


def test_chat_errors(db: bespin.Bespin, admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.NotFound):
        member.chat("help", conversation_id="nope")
    conv = admin.chat("help")["conversation_id"]
    with pytest.raises(bespin.NotFound):
        member.chat("help", conversation_id=conv)  # someone else's conversation
    with pytest.raises(bespin.ValidationError) as e:
        member.chat("", date="2024-13-01")
    assert [i["loc"] for i in e.value.detail] == [["message"], ["date"]]
    with pytest.raises(bespin.ValidationError):
        member.chat(None)  # type: ignore[arg-type]
    admin.set_limits(
        assistant_query_daily_limit=1,
        tool_invocation_daily_limit=1,
        daily_brief_generated_daily_limit=1,
        notification_enqueued_daily_limit=1,
    )
    with pytest.raises(bespin.QuotaExceeded) as q:
        member.chat("help")
    assert q.value.code == "daily_quota_exceeded"
    assert member.conversations()["items"] == []  # the refused exchange wrote nothing
