from __future__ import annotations

import datetime as dt

import pytest

import bespin

UTC = dt.timezone.utc


def test_create_ingest_and_read(admin: bespin.Session, member: bespin.Session) -> None:
    k = admin.create_kpi(name="MRR", unit="EUR")
    assert k["unit"] == "EUR" and k["description"] is None
    res = admin.ingest_points(
        k["kpi_id"],
        [
            {"ts": dt.date(2024, 1, 1), "value": 100},
            {"ts": dt.datetime(2024, 1, 5, 2, tzinfo=dt.timezone(dt.timedelta(hours=2))), "value": 90},
            {"ts": "2024-01-08T00:00:00Z", "value": 80.5},
            {"ts": "2024-01-08", "value": 1},  # same instant: ignored
        ],
    )
    assert res == {"inserted": 3, "ignored": 1}
    latest = member.latest_point(k["kpi_id"])
    assert latest["ts"] == dt.datetime(2024, 1, 8, tzinfo=UTC) and latest["value"] == 80.5
    assert [x["kpi_id"] for x in member.list_kpis()] == [k["kpi_id"]]
    assert admin.list_kpis(limit=0, offset=-5) == admin.list_kpis()  # clamped


def test_window(admin: bespin.Session) -> None:
    k = admin.create_kpi(name="Users")
    assert admin.kpi_window(k["kpi_id"]) is None
    admin.ingest_points(
        k["kpi_id"],
        [{"ts": dt.date(2024, 1, d), "value": float(v)} for d, v in [(1, 50), (3, 40), (10, 60)]],
    )
    w = admin.kpi_window(k["kpi_id"])
    assert w is not None
    assert w["latest"]["ts"] == dt.datetime(2024, 1, 10, tzinfo=UTC)
    assert w["start"]["value"] == 40.0 and w["delta_abs"] == 20.0 and w["delta_pct"] == 50.0
    early = admin.kpi_window(k["kpi_id"], cutoff=dt.datetime(2024, 1, 5, tzinfo=UTC), window_days=30)
    assert early is not None and early["start"]["value"] == 50.0 and early["latest"]["value"] == 40.0
    assert admin.kpi_window(k["kpi_id"], cutoff="2023-12-31") is None
    with pytest.raises(bespin.ValidationError):
        admin.kpi_window(k["kpi_id"], window_days=0)
    with pytest.raises(bespin.ValidationError):
        admin.kpi_window(k["kpi_id"], cutoff="yesterday")
    with pytest.raises(TypeError, match="naive"):
        admin.kpi_window(k["kpi_id"], cutoff=dt.datetime(2024, 1, 5))


def test_bad_points_write_nothing(admin: bespin.Session) -> None:
    k = admin.create_kpi(name="MRR")
    with pytest.raises(TypeError, match=r"points\.1\.ts.*naive"):
        admin.ingest_points(
            k["kpi_id"],
            [{"ts": dt.date(2024, 1, 1), "value": 1}, {"ts": dt.datetime(2024, 1, 2), "value": 2}],
        )
    with pytest.raises(bespin.ValidationError) as e:
        admin.ingest_points(
            k["kpi_id"], [{"ts": "2024-01-01", "value": 1}, {"ts": "soon", "value": float("inf")}]
        )
    assert e.value.detail[0]["loc"] == ["points", 1, "value"]
    with pytest.raises(bespin.ValidationError) as f:
        admin.ingest_points(
            k["kpi_id"], [{"ts": "2024-01-01", "value": 1}, {"ts": "soon", "value": 2}]
        )
    assert f.value.detail[0]["loc"] == ["points", 1, "ts"]
    assert f.value.detail[0]["type"] == "datetime_parsing"
    with pytest.raises(bespin.ValidationError):
        admin.ingest_points(k["kpi_id"], [])
    with pytest.raises(bespin.NotFound):
        admin.latest_point(k["kpi_id"])


def test_kpi_errors(admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.Forbidden):
        member.create_kpi(name="MRR")
    with pytest.raises(bespin.ValidationError) as e:
        admin.create_kpi(name="")
    assert e.value.detail[0]["loc"] == ["name"]
    with pytest.raises(bespin.NotFound, match="nope"):
        admin.ingest_points("nope", [{"ts": "2024-01-01", "value": 1}])
    with pytest.raises(bespin.NotFound):
        member.latest_point("nope")
    with pytest.raises(bespin.NotFound):
        member.kpi_window("nope")
    assert admin.list_kpis() == []


def test_series_for_charts(admin: bespin.Session, member: bespin.Session) -> None:
    k = admin.create_kpi(name="Load")
    kid = k["kpi_id"]
    empty = member.kpi_series(kid)
    assert empty["points"] == [] and empty["from"] is None
    start = dt.datetime(2024, 1, 1, tzinfo=UTC)
    admin.ingest_points(
        kid,
        [{"ts": start + dt.timedelta(minutes=i), "value": 1e6 if i == 777 else float(i % 60)} for i in range(5000)],
    )
    s = member.kpi_series(kid, max_points=100)
    assert s["points_in_range"] == 5000 and s["downsampled"] and len(s["points"]) <= 100
    assert s["points"][0] == {"ts": start, "value": 0.0}
    assert max(p["value"] for p in s["points"]) == 1e6  # the spike survives
    assert s["from"] == start and s["to"] == start + dt.timedelta(minutes=4999)
    w = member.kpi_series(kid, start=start, end="2024-01-01T00:09:00Z")
    assert [p["value"] for p in w["points"]] == [float(i) for i in range(10)] and not w["downsampled"]
    day = member.kpi_series(kid, window_days=1)
    assert day["points_in_range"] == 1441  # the last 24 hours of minutes, both ends included
    assert member.kpi_series(kid, max_points=1)["points"][-1]["value"] == float(4999 % 60)
    with pytest.raises(bespin.ValidationError):
        member.kpi_series(kid, start="soon")
    with pytest.raises(bespin.ValidationError):
        member.kpi_series(kid, start=start, window_days=7)
    with pytest.raises(bespin.NotFound):
        member.kpi_series("ghost")
