from __future__ import annotations

import datetime as dt

import pytest

import bespin


def test_create_list_and_get(admin: bespin.Session) -> None:
    a = admin.create_conversation("Launch plan")
    b = admin.create_conversation()
    assert a["title"] == "Launch plan" and b["title"] is None
    assert isinstance(a["created_at"], dt.datetime)
    items = admin.conversations()["items"]
    assert [c["conversation_id"] for c in items] == [b["conversation_id"], a["conversation_id"]]
    assert len(admin.conversations(limit=1)["items"]) == 1
    assert admin.conversations(offset=1)["items"][0]["conversation_id"] == a["conversation_id"]
    detail = admin.conversation(a["conversation_id"])
    assert detail["messages"] == [] and detail["title"] == "Launch plan"


def test_conversations_are_private(admin: bespin.Session, member: bespin.Session) -> None:
    c = admin.create_conversation("mine")
    assert member.conversations()["items"] == []
    with pytest.raises(bespin.NotFound) as e:
        member.conversation(c["conversation_id"])
    assert str(e.value) == "Conversation not found"
    assert e.value.detail == "Conversation not found"


def test_title_must_be_text(admin: bespin.Session) -> None:
    with pytest.raises(bespin.ValidationError) as e:
        admin.create_conversation(12)  # type: ignore[arg-type]
    assert e.value.detail[0]["loc"] == ["title"]
    with pytest.raises(TypeError):
        admin.create_conversation(object())  # type: ignore[arg-type]
    assert admin.conversations()["items"] == []
