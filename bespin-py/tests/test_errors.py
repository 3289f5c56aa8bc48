"""The exception hierarchy and its mapping from the core's error kinds."""

from __future__ import annotations

from typing import Any

import pytest

import bespin

ALL = [
    bespin.ValidationError,
    bespin.BadRequest,
    bespin.Unauthorized,
    bespin.Forbidden,
    bespin.CapabilityDenied,
    bespin.NotFound,
    bespin.Conflict,
    bespin.QuotaExceeded,
]


def test_hierarchy() -> None:
    for cls in ALL:
        assert issubclass(cls, bespin.BespinError)
        assert cls.__module__ == "bespin"
    assert issubclass(bespin.BespinError, Exception)
    assert issubclass(bespin.ValidationError, ValueError)
    assert issubclass(bespin.BadRequest, ValueError)
    assert issubclass(bespin.CapabilityDenied, bespin.Forbidden)
    assert not issubclass(bespin.NotFound, ValueError)
    e = bespin.NotFound("x")
    assert e.code == "bespin_error" and e.detail is None


def _raises(fn: Any, cls: type[bespin.BespinError], code: str) -> bespin.BespinError:
    with pytest.raises(cls) as e:
        fn()
    assert type(e.value) is cls, type(e.value)
    assert e.value.code == code
    assert e.value.detail is not None
    return e.value


def test_each_kind_maps_to_its_class(db: bespin.Bespin, tenant: Any, admin: bespin.Session, member: bespin.Session) -> None:
    t, u = tenant["tenant_id"], tenant["admin"]["user_id"]
    _raises(lambda: db.create_tenant(name="", region="eu", admin_email="a@b.io"), bespin.ValidationError, "validation_error")
    _raises(lambda: admin.record_usage("no_such_event"), bespin.BadRequest, "unknown_event_type")
    _raises(lambda: db.session(t, u, "bsk_nope"), bespin.Unauthorized, "invalid_credentials")
    _raises(lambda: member.set_limits(assistant_query_daily_limit=1, tool_invocation_daily_limit=1, daily_brief_generated_daily_limit=1, notification_enqueued_daily_limit=1), bespin.Forbidden, "forbidden")
    db.admin.create_plan(plan_id="none", name="None", included_credits=5, overage_price_per_credit=0)
    db.admin.set_subscription(t, plan_id="none")
    _raises(lambda: admin.record_usage("assistant_query", capability="chat"), bespin.CapabilityDenied, "capability_denied")
    _raises(lambda: admin.conversation("nope"), bespin.NotFound, "not_found")
    _raises(lambda: db.admin.create_plan(plan_id="none", name="x", included_credits=1, overage_price_per_credit=0), bespin.Conflict, "conflict")
    q = _raises(lambda: admin.record_usage("assistant_query", 6), bespin.QuotaExceeded, "quota_exceeded")
    assert q.detail["limit_credits"] == 5


def test_validation_detail_lists_every_field(db: bespin.Bespin) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        db.create_tenant(name="", region="x" * 51, admin_email="not-an-email")
    locs = [item["loc"] for item in e.value.detail]
    assert locs == [["name"], ["region"], ["admin_email"]]
    for item in e.value.detail:
        assert {"type", "loc", "msg", "input"} <= set(item)
    assert "name" in str(e.value)
