"""The event log through the Python API: pages, filters, follow with close() from another
thread, and a stale cursor."""

from __future__ import annotations

import threading
import time

import pytest

import bespin


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
