from __future__ import annotations

import datetime as dt

import pytest

import bespin


def test_prefs_default_save_and_replay(admin: bespin.Session, member: bespin.Session) -> None:
    assert admin.notification_prefs() == {"daily_brief_enabled": True, "delivery_method": "in_app"}
    off = admin.set_notification_prefs(daily_brief_enabled=False)
    assert off["daily_brief_enabled"] is False
    assert admin.set_notification_prefs(daily_brief_enabled=False) == off  # idempotent
    assert admin.notification_prefs() == off
    assert member.notification_prefs()["daily_brief_enabled"] is True  # per user
    assert admin.set_notification_prefs()["daily_brief_enabled"] is True  # omitted = default


def test_prefs_validation(admin: bespin.Session) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        admin.set_notification_prefs(delivery_method="email")  # type: ignore[arg-type]
    assert e.value.detail[0]["loc"] == ["delivery_method"]
    with pytest.raises(bespin.ValidationError):
        admin.set_notification_prefs(daily_brief_enabled="perhaps")  # type: ignore[arg-type]
    assert admin.notification_prefs()["daily_brief_enabled"] is True


def test_outbox_and_ack(admin: bespin.Session) -> None:
    assert admin.outbox() == {"items": []}
    assert admin.outbox(date=dt.date(2024, 1, 1), status="queued", limit=5) == {"items": []}
    with pytest.raises(bespin.NotFound) as e:
        admin.ack_notification(42)
    assert e.value.code == "not_found"
    with pytest.raises(bespin.ValidationError):
        admin.ack_notification(-1)
    with pytest.raises(TypeError):
        admin.ack_notification("42")  # type: ignore[arg-type]
    with pytest.raises(bespin.ValidationError):
        admin.outbox(date="yesterday")
