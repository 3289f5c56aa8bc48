from __future__ import annotations

import threading
from pathlib import Path

import pytest

import bespin


def test_open_creates_and_reopens_the_file(tmp_path: Path) -> None:
    path = tmp_path / "db.redb"
    with bespin.open(path) as db:
        t = db.create_tenant(name="Acme", region="eu", admin_email="ada@acme.io")
        assert not db.closed
    assert db.closed
    assert path.exists()
    with bespin.open(str(path)) as db:
        s = db.session(t["tenant_id"], t["admin"]["user_id"], t["api_key"])
        assert s.me()["email"] == "ada@acme.io"


def test_in_memory_handle() -> None:
    db = bespin.open_in_memory()
    db.health()
    assert "memory" in repr(db)
    db.close()
    db.close()  # harmless
    assert "closed" in repr(db)


def test_closed_handle_and_its_sessions_refuse(db: bespin.Bespin, admin: bespin.Session) -> None:
    db.close()
    with pytest.raises(bespin.BespinError) as e:
        db.health()
    assert e.value.code == "closed"
    with pytest.raises(bespin.BespinError):
        admin.me()
    with pytest.raises(bespin.BespinError):
        db.admin.plans()


def test_second_open_of_one_file_is_an_error(tmp_path: Path) -> None:
    with bespin.open(tmp_path / "db.redb"):
        with pytest.raises(bespin.BespinError) as e:
            bespin.open(tmp_path / "db.redb")
        assert type(e.value) is bespin.BespinError


def test_context_manager_closes_on_error(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError):
        with bespin.open(tmp_path / "db.redb") as db:
            raise RuntimeError("boom")
    assert db.closed


def test_classes_are_not_constructible_and_frozen(db: bespin.Bespin) -> None:
    with pytest.raises(TypeError):
        bespin.Bespin()
    with pytest.raises(AttributeError):
        db.foo = 1  # type: ignore[attr-defined]


def test_purge_expired_idempotency(db: bespin.Bespin) -> None:
    assert db.purge_expired_idempotency() == 0


def test_calls_release_the_gil(db: bespin.Bespin, admin: bespin.Session) -> None:
    # A Python thread keeps running while others are inside core calls.
    ticks = 0
    stop = threading.Event()

    def spin() -> None:
        nonlocal ticks
        while not stop.is_set():
            ticks += 1

    t = threading.Thread(target=spin)
    t.start()
    for _ in range(50):
        admin.create_conversation("x")
    stop.set()
    t.join()
    assert ticks > 0


def test_two_handles_on_one_postgresql_database_share_it(postgres_url: str) -> None:
    # Two processes' worth of handles on one database: a write through either is read back
    # through the other at once, and ids never collide.
    with bespin.open(postgres_url) as one, bespin.open(postgres_url) as two:
        a = one.create_tenant(name="Acme", region="eu", admin_email="ada@acme.io")
        b = two.create_tenant(name="Beta", region="eu", admin_email="bo@beta.io")
        assert a["tenant_id"] != b["tenant_id"]
        s = two.session(a["tenant_id"], a["admin"]["user_id"], a["api_key"])
        assert s.me()["email"] == "ada@acme.io"
        assert "***" not in repr(one) and "postgres" in repr(one)
