"""Bad input from Python: TypeError or bespin.ValidationError, and nothing written."""

from __future__ import annotations

import datetime as dt
import decimal

import pytest

import bespin


def test_missing_and_none_required_arguments(db: bespin.Bespin) -> None:
    with pytest.raises(TypeError):
        db.create_tenant(name="Acme", region="eu")  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        db.create_tenant("Acme", "eu", "a@b.io")  # type: ignore[call-arg]
    with pytest.raises(bespin.ValidationError) as e:
        db.create_tenant(name=None, region="eu", admin_email="a@b.io")  # type: ignore[arg-type]
    assert e.value.detail[0]["loc"] == ["name"]


def test_non_json_values_are_type_errors(db: bespin.Bespin) -> None:
    for bad in (object(), {1, 2}, b"bytes", decimal.Decimal("1.5")):
        with pytest.raises(TypeError, match="included_credits"):
            db.admin.create_plan(plan_id="p", name="P", included_credits=bad, overage_price_per_credit=0)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="str keys"):
        db.admin.set_plan_caps("starter", [{1: "x"}])  # type: ignore[misc]
    with pytest.raises(TypeError, match=r"caps\.0\.cap_raw_units"):
        db.admin.set_plan_caps("starter", [{"event_key": "assistant_query", "cap_raw_units": object()}])  # type: ignore[typeddict-item]
    assert "p" not in [p["plan_id"] for p in db.admin.plans()]


def test_wrong_json_types_are_validation_errors(db: bespin.Bespin) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        db.admin.create_plan(plan_id=["p"], name=3, included_credits="many", overage_price_per_credit=-1)  # type: ignore[arg-type]
    assert [i["loc"][0] for i in e.value.detail] == ["plan_id", "name", "included_credits", "overage_price_per_credit"]
    with pytest.raises(bespin.ValidationError) as f:
        db.admin.create_plan(plan_id="p", name="P", included_credits=1, overage_price_per_credit=float("nan"))
    assert f.value.detail[0]["type"] == "finite_number"
    with pytest.raises(bespin.ValidationError) as g:
        db.admin.create_plan(plan_id="p", name="P", included_credits=2**70, overage_price_per_credit=0)
    assert g.value.detail[0]["loc"] == ["included_credits"]
    assert "p" not in [p["plan_id"] for p in db.admin.plans()]


def test_dates_and_datetimes(db: bespin.Bespin, admin: bespin.Session) -> None:
    naive = dt.datetime(2024, 1, 1, 12, 0)
    with pytest.raises(TypeError, match="naive"):
        db.admin.set_subscription(admin.tenant_id, plan_id="growth", period_start=naive)
    aware = dt.datetime(2024, 1, 1, 12, 0, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    # A datetime where the contract wants a date is the contract's validation error.
    with pytest.raises(bespin.ValidationError) as e:
        db.admin.set_subscription(admin.tenant_id, plan_id="growth", period_start=aware)
    assert e.value.detail[0]["input"] == "2024-01-01T10:00:00.000000Z"
    assert admin.billing_plan()["plan_id"] == "starter"
    sub = db.admin.set_subscription(admin.tenant_id, plan_id="growth", period_start="2024-03-01")
    assert sub["period_start"] == dt.date(2024, 3, 1)


def test_role_is_validated(admin: bespin.Session) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        admin.create_user(email="x@acme.io", role="owner")  # type: ignore[arg-type]
    assert e.value.detail[0]["loc"] == ["role"]
