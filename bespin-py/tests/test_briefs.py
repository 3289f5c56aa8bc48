from __future__ import annotations

import datetime as dt

import pytest

import bespin

DAY = dt.date(2024, 1, 10)


def seed(admin: bespin.Session) -> str:
    k = admin.create_kpi(name="MRR", unit="EUR")
    admin.ingest_points(
        k["kpi_id"], [{"ts": dt.date(2024, 1, 3), "value": 100}, {"ts": DAY, "value": 85}]
    )
    return k["kpi_id"]


def test_preview_materialize_and_read(admin: bespin.Session, member: bespin.Session) -> None:
    kpi_id = seed(admin)
    preview = member.preview_brief(date=DAY)
    assert preview["date"] == DAY and preview["window_days"] == 7 and preview["top_n"] == 3
    assert preview["summary"]["kpis_down"] == 1
    h = preview["highlights"][0]
    assert h["kpi_id"] == kpi_id and h["delta_pct"] == -15.0
    assert h["latest"]["ts"] == dt.datetime(2024, 1, 10, tzinfo=dt.timezone.utc)
    assert preview["alerts"][0]["reason"] == "delta_pct_below_threshold"
    with pytest.raises(bespin.NotFound):
        member.latest_brief()  # previews store nothing
    b = admin.materialize_brief(idempotency_key="b1", date=DAY)
    assert b["content"] == preview
    assert member.brief(DAY) == b and member.brief("2024-01-10") == b
    assert member.latest_brief() == b
    assert admin.billing_usage()["breakdown"][0]["event_key"] == "daily_brief_generated"


def test_idempotent_replay_and_conflict(admin: bespin.Session) -> None:
    seed(admin)
    first = admin.materialize_brief(idempotency_key="b1", date=DAY, top_n=1)
    ledger = admin.billing_ledger()["items"]
    again = admin.materialize_brief(idempotency_key="b1", date="2024-01-10", top_n=1)
    assert again == first and again["request_id"] == first["request_id"]
    assert admin.billing_ledger()["items"] == ledger
    with pytest.raises(bespin.Conflict):
        admin.materialize_brief(idempotency_key="b1", date=DAY, top_n=2)
    # Another key for the same date returns the stored brief and charges nothing.
    other = admin.materialize_brief(idempotency_key="b2", date=DAY)
    assert other["brief_id"] == first["brief_id"]
    assert admin.billing_ledger()["items"] == ledger


def test_brief_errors(admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.Forbidden):
        member.materialize_brief(idempotency_key="k", date=DAY)
    with pytest.raises(bespin.NotFound, match="2024-01-10"):
        member.brief(DAY)
    with pytest.raises(bespin.ValidationError) as e:
        member.brief("2024-02-30")
    assert e.value.detail[0]["loc"] == ["date"]
    with pytest.raises(TypeError):
        member.brief(20240110)  # type: ignore[arg-type]
    with pytest.raises(bespin.ValidationError) as v:
        admin.materialize_brief(idempotency_key="k", date="10/01/2024", window_days=0, top_n=101)
    assert [i["loc"] for i in v.value.detail] == [["date"], ["window_days"], ["top_n"]]
    with pytest.raises(bespin.ValidationError):
        admin.preview_brief(window_days=366)
    with pytest.raises(TypeError, match="naive"):
        admin.materialize_brief(idempotency_key="k", date=dt.datetime(2024, 1, 10))
    with pytest.raises(bespin.NotFound):
        admin.latest_brief()


def test_default_date_is_today(admin: bespin.Session) -> None:
    today = dt.datetime.now(dt.timezone.utc).date()
    assert admin.preview_brief()["date"] == today
    assert admin.materialize_brief(idempotency_key="t")["content"]["date"] == today


def test_list_briefs(admin: bespin.Session, member: bespin.Session) -> None:
    seed(admin)
    assert member.list_briefs() == {"items": []}
    for d in (dt.date(2024, 1, 8), DAY, dt.date(2024, 1, 9)):
        admin.materialize_brief(idempotency_key=str(d), date=d)
    items = member.list_briefs()["items"]
    assert [i["date"] for i in items] == [DAY, dt.date(2024, 1, 9), dt.date(2024, 1, 8)]
    assert items[0]["alerts"] == 1 and items[0]["summary"]["kpis_down"] == 1
    assert [i["date"] for i in member.list_briefs(before=DAY, limit=1)["items"]] == [dt.date(2024, 1, 9)]
    with pytest.raises(bespin.ValidationError):
        member.list_briefs(before="2024-02-30")
