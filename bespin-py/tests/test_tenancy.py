from __future__ import annotations

import datetime as dt
from typing import Any

import pytest

import bespin


def test_create_tenant_returns_the_contract_fields(tenant: Any) -> None:
    assert set(tenant) == {"tenant_id", "name", "region", "api_key", "created_at", "admin"}
    assert tenant["api_key"].startswith("bsk_")
    assert tenant["admin"]["role"] == "admin"
    created = tenant["created_at"]
    assert isinstance(created, dt.datetime)
    assert created.tzinfo is not None and created.utcoffset() == dt.timedelta(0)


def test_session_and_me(admin: bespin.Session, tenant: Any) -> None:
    assert admin.tenant_id == tenant["tenant_id"]
    assert admin.user_id == tenant["admin"]["user_id"]
    assert admin.role == "admin"
    assert admin.email == "ada@acme.io"
    assert admin.me() == {
        "user_id": admin.user_id,
        "tenant_id": admin.tenant_id,
        "email": "ada@acme.io",
        "role": "admin",
    }


def test_create_user_fills_the_tenant(admin: bespin.Session) -> None:
    u = admin.create_user(email="  Max@Acme.io ", role="member")
    assert u["tenant_id"] == admin.tenant_id
    assert u["role"] == "member"
    assert u["email"] == "Max@acme.io"  # the domain is normalised, the local part kept
    assert isinstance(u["created_at"], dt.datetime)


def test_members_may_not_create_users(member: bespin.Session) -> None:
    with pytest.raises(bespin.Forbidden) as e:
        member.create_user(email="x@acme.io", role="member")
    assert e.value.code == "forbidden"
    assert "member" in str(e.value)


def test_bad_credentials(db: bespin.Bespin, tenant: Any) -> None:
    t, u, k = tenant["tenant_id"], tenant["admin"]["user_id"], tenant["api_key"]
    with pytest.raises(bespin.Unauthorized) as e:
        db.session(t, u, "bsk_wrong")
    assert e.value.code == "invalid_credentials"
    with pytest.raises(bespin.Unauthorized):
        db.session("00000000-0000-0000-0000-000000000000", u, k)
    with pytest.raises(bespin.Forbidden) as f:
        db.session(t, "no-such-user", k)
    assert f.value.code == "user_not_found"
    with pytest.raises(bespin.BadRequest) as b:
        db.session(t, u, "  ")
    assert b.value.code == "missing_header"


def test_user_of_another_tenant(db: bespin.Bespin, tenant: Any) -> None:
    other = db.create_tenant(name="Other", region="us", admin_email="o@other.io")
    with pytest.raises(bespin.Forbidden) as e:
        db.session(tenant["tenant_id"], other["admin"]["user_id"], tenant["api_key"])
    assert e.value.code == "user_not_in_tenant"
