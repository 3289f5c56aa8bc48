"""The audit log through the Python API: pages and filters, statistics, an export read as an
iterator, a proof, the public key and the verifier."""

from __future__ import annotations

import datetime

import pytest

import bespin


def test_audit_log_stats_export_proof_and_verify(
    db: bespin.Bespin, admin: bespin.Session, member: bespin.Session
) -> None:
    for i in range(3):
        admin.chat(f"hello {i}")
    member.chat("hi")
    page = admin.audit_log(limit=2)
    assert [r["n"] for r in page["items"]] == [3, 2]
    assert page["items"][0]["user_id"] == member.user_id
    assert page["items"][0]["capability"] == "chat"
    assert page["items"][0]["target_type"] == "conversation"
    assert isinstance(page["items"][0]["created_at"], datetime.datetime)
    older = admin.audit_log(limit=2, cursor=page["next_cursor"])
    assert [r["n"] for r in older["items"]] == [1, 0]
    assert older["next_cursor"] is None
    mine = admin.audit_log(actor_user_id=member.user_id, since=datetime.date(2000, 1, 1))
    assert [r["n"] for r in mine["items"]] == [3]
    with pytest.raises(bespin.ValidationError):
        admin.audit_log(limit=0)
    with pytest.raises(bespin.Forbidden):
        member.audit_log()

    stats = admin.audit_stats("actor")
    assert stats["total"] == 4
    assert stats["groups"][0] == {"key": admin.user_id, "count": 3}
    with pytest.raises(bespin.ValidationError):
        admin.audit_stats("tool")  # type: ignore[arg-type]

    with admin.audit_export(since="2000-01-01") as export:
        assert export.remaining == 4
        rows = list(export)
    assert [r["n"] for r in rows] == [0, 1, 2, 3]
    assert all(b["prev_hash"] == a["row_hash"] for a, b in zip(rows, rows[1:]))
    assert rows[0]["tenant_id"] == admin.tenant_id
    assert list(admin.audit_export(since="2999-01-01")) == []

    proof = admin.audit_proof(1, 2)
    assert [r["n"] for r in proof["rows"]][:2] == [1, 2]
    assert proof["prev_hash"] == rows[0]["row_hash"]
    key = db.audit_public_key()
    assert proof["public_key"] == key
    assert key["verifier_key"].startswith("bespin-audit+")

    report = db.audit_verify()
    assert report["total_findings"] == 0
    assert (report["chains"], report["rows"]) == (1, 4)
