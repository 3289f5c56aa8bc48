"""The event log through the Python API: pages, filters, follow with close() from another
thread, a cursor older than the retention (CursorExpired), and Ctrl-C during a follow."""

from __future__ import annotations

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import bespin
from conftest import database


def test_events_page_and_follow(admin: bespin.Session, member: bespin.Session) -> None:
    t = admin.create_task(title="One")
    seen = [e for e in member.events(types=["task.created"])]
    assert [e["data"]["title"] for e in seen] == ["One"]
    assert seen[0]["subject"] == {"type": "task", "id": t["task_id"]}
    assert seen[0]["actor_user_id"] == admin.user_id
    assert all(e["type"] != "user.created" for e in member.events())
    assert any(e["type"] == "user.created" for e in admin.events())
    with pytest.raises(bespin.ValidationError):
        admin.events(types=["task.exploded"])

    stream = member.events(after=seen[-1]["id"], types=["task.created"], follow=True)
    got: list[str] = []

    def follow() -> None:
        for e in stream:
            got.append(e["data"]["title"])

    reader = threading.Thread(target=follow)
    reader.start()
    for title in ["Two", "Three"]:
        admin.create_task(title=title)
    deadline = time.monotonic() + 10
    while len(got) < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    stream.close()
    reader.join(5)
    assert not reader.is_alive()
    assert got == ["Two", "Three"]
    assert stream.cursor is not None and stream.cursor > seen[-1]["id"]


def test_a_cursor_older_than_the_retention_raises_cursor_expired(tmp_path: Path) -> None:
    with bespin.open(database(tmp_path), event_retention_secs=1) as db:
        t = db.create_tenant(name="Acme", region="eu", admin_email="a@acme.io")
        admin = db.session(t["tenant_id"], t["admin"]["user_id"], t["api_key"])
        admin.create_task(title="old")
        first = next(iter(admin.events()))["id"]
        admin.create_task(title="older still")
        time.sleep(1.2)
        assert db.purge_expired_events() >= 2
        with pytest.raises(bespin.CursorExpired) as caught:
            admin.events(after=first)
        assert caught.value.code == "cursor_expired", caught.value.code
        assert isinstance(caught.value, bespin.BespinError)
        # A new stream from the oldest kept event is fine.
        assert list(admin.events()) == []
    with pytest.raises(ValueError):
        bespin.open(database(tmp_path), event_retention_secs=0)


def test_ctrl_c_ends_a_following_iteration(admin: bespin.Session) -> None:
    """A real SIGINT while the main thread waits in a follow=True stream raises
    KeyboardInterrupt promptly (the wait releases the GIL and checks signals between slices)."""
    stream = admin.events(follow=True)
    timer = threading.Timer(0.3, lambda: os.kill(os.getpid(), signal.SIGINT))
    started = time.monotonic()
    timer.start()
    with pytest.raises(KeyboardInterrupt):
        for _ in stream:
            pass
    assert time.monotonic() - started < 5
    stream.close()
