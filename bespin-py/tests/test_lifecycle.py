"""Keys and data over their lifetime: bound keys, rotation, users, deletes, export, erasure."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

import bespin


def test_a_bound_key_session_until_it_is_revoked(
    db: bespin.Bespin, admin: bespin.Session, member: bespin.Session
) -> None:
    made = admin.create_api_key(user_id=member.user_id, name="ci")
    assert made["api_key"].startswith("bsk_")
    session = db.session_for_key(made["api_key"])
    assert session.user_id == member.user_id
    session.create_conversation(title="mine")
    listed = admin.api_keys()
    assert [k["key_id"] for k in listed] == [made["key_id"]]
    assert "api_key" not in listed[0]
    admin.revoke_api_key(made["key_id"])
    with pytest.raises(bespin.Unauthorized):
        session.create_conversation(title="after")
    with pytest.raises(bespin.Unauthorized):
        db.session_for_key(made["api_key"])


def test_read_only_keys_and_rotation(db: bespin.Bespin, admin: bespin.Session, tenant: Any) -> None:
    ro = admin.create_api_key(user_id=admin.user_id, name="ro", scopes=["read_only"])
    reader = db.session_for_key(ro["api_key"])
    assert reader.me()["user_id"] == admin.user_id
    with pytest.raises(bespin.Forbidden):
        reader.create_task(title="no")
    rotated = admin.rotate_tenant_key(grace_seconds=0)
    with pytest.raises(bespin.Unauthorized):
        db.session(tenant["tenant_id"], admin.user_id, tenant["api_key"])
    db.session(tenant["tenant_id"], admin.user_id, rotated["api_key"])


def test_users_pages_and_the_last_admin(admin: bespin.Session, member: bespin.Session) -> None:
    page = admin.users(limit=1)
    assert len(page["items"]) == 1 and page["next_cursor"] is not None
    rest = admin.users(limit=1, cursor=page["next_cursor"])
    assert rest["items"][0]["user_id"] == member.user_id
    with pytest.raises(bespin.Conflict):
        admin.update_user(admin.user_id, role="member")
    off = admin.update_user(member.user_id, deactivated=True)
    assert off["deactivated"] is True
    assert admin.user(member.user_id)["deactivated_at"] is not None


def test_deletes_export_and_erasure(db: bespin.Bespin, admin: bespin.Session, tmp_path: Path) -> None:
    task = admin.create_task(title="pangolin")
    kpi = admin.create_kpi(name="MRR")
    admin.delete_task(task["task_id"])
    admin.delete_kpi(kpi["kpi_id"])
    with pytest.raises(bespin.NotFound):
        admin.delete_task(task["task_id"])
    out = tmp_path / "export.jsonl"
    done = admin.export_tenant(out)
    lines = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(lines) == done["rows"] > 0
    assert not any(line["table"] == "co_tasks" for line in lines)
    erased = db.admin.erase_tenant(admin.tenant_id, confirm=admin.tenant_id)
    assert erased["state"] == "erasing"
    while (step := db.admin.erase_step()) is not None and step["state"] == "erasing":
        pass
    state = db.admin.erasure(admin.tenant_id)
    assert state is not None and state["state"] == "erased"
    with pytest.raises(bespin.NotFound):
        db.admin.erase_tenant(admin.tenant_id, confirm=admin.tenant_id)
