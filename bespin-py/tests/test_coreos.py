"""The Core OS through the Python API: state machine, PATCH semantics, links, memory versions,
evidence, timeline, search and the record explorer."""

from __future__ import annotations

import datetime as dt

import pytest

import bespin
from conftest import make_plan


def test_action_lifecycle(admin: bespin.Session, member: bespin.Session) -> None:
    a = member.create_action(title="Raise prices", action_type="pricing", payload={"pct": 10})
    assert a["status"] == "proposed" and a["source"] == "user" and a["payload"] == {"pct": 10}
    assert isinstance(a["created_at"], dt.datetime)
    with pytest.raises(bespin.Forbidden):
        member.approve_action(a["action_id"])
    approved = admin.approve_action(a["action_id"], "go")
    assert approved["status"] == "approved"
    assert admin.approve_action(a["action_id"])["status"] == "approved"  # repeat: no-op
    with pytest.raises(bespin.Conflict):
        admin.reject_action(a["action_id"])
    with pytest.raises(bespin.Forbidden, match="Can only update proposed actions"):
        member.update_action(a["action_id"], title="x")
    done = admin.execute_action(a["action_id"], execution_status="succeeded", result={"ok": True})
    assert done["action"]["status"] == "executed"
    assert done["execution"]["result"] == {"ok": True}
    replay = admin.execute_action(a["action_id"], execution_status="failed")
    with pytest.raises(bespin.Conflict) as refused:
        admin.execute_action(member.create_action(title="B", action_type="t")["action_id"], execution_status="skipped")
    assert refused.value.code == "invalid_status_transition"
    assert refused.value.detail == {
        "error": "invalid_status_transition",
        "current_status": "proposed",
        "message": "Cannot execute action with status 'proposed'. Only 'approved' actions can be executed.",
    }
    assert replay["execution"] == done["execution"]
    d = member.get_action(a["action_id"])
    assert d["review"] is not None and d["review"]["comment"] == "go"
    assert d["execution"] is not None and d["execution"]["execution_status"] == "succeeded"


def test_action_patch_cancel_and_lists(admin: bespin.Session, member: bespin.Session) -> None:
    a = member.create_action(title="A", action_type="t", description="d", assigned_to_user_id=admin.user_id)
    b = admin.create_action(title="B", action_type="t", source="agent", source_ref="run-1")
    up = member.update_action(a["action_id"], description=None, assigned_to_user_id=None, payload={"x": 1})
    assert up["description"] is None and up["assigned_to_user_id"] is None and up["payload"] == {"x": 1}
    assert up["title"] == "A"  # omitted: unchanged
    with pytest.raises(bespin.ValidationError) as e:
        member.update_action(a["action_id"], title=None)  # type: ignore[arg-type]
    assert e.value.detail[0]["loc"] == ["title"]
    with pytest.raises(TypeError, match="unexpected keyword argument 'titel'"):
        member.update_action(a["action_id"], titel="x")  # type: ignore[call-arg]
    with pytest.raises(bespin.Forbidden):
        member.cancel_action(b["action_id"])
    assert member.cancel_action(a["action_id"], "nope")["status"] == "cancelled"
    assert member.cancel_action(a["action_id"])["status"] == "cancelled"
    admin.reject_action(b["action_id"], "no")
    assert admin.list_actions()["total"] == 0  # default status: proposed
    every = admin.list_actions(status="all", limit=1)
    assert every["total"] == 2 and every["limit"] == 1 and len(every["items"]) == 1
    assert [x["title"] for x in admin.list_actions(status="all", created_by_user_id=member.user_id)["items"]] == ["A"]
    assert admin.list_actions(status="rejected")["items"][0]["action_id"] == b["action_id"]
    with pytest.raises(bespin.ValidationError):
        admin.list_actions(limit=201)
    with pytest.raises(bespin.NotFound, match="Assigned user"):
        admin.create_action(title="C", action_type="t", assigned_to_user_id="ghost")
    with pytest.raises(bespin.NotFound):
        admin.get_action("nope")
    with pytest.raises(bespin.ValidationError) as v:
        admin.execute_action(b["action_id"], execution_status="maybe")  # type: ignore[arg-type]
    assert v.value.detail[0]["loc"] == ["execution_status"]


def test_tasks(admin: bespin.Session, member: bespin.Session) -> None:
    a = admin.create_action(title="Launch", action_type="t")
    t1 = member.create_task(
        title="Write copy",
        due_date=dt.date(2024, 2, 1),
        priority="high",
        linked_entity_type="action",
        linked_entity_id=a["action_id"],
    )
    assert t1["due_date"] == dt.date(2024, 2, 1) and t1["status"] == "todo"
    t2 = admin.create_task(title="Later", assigned_to_user_id=member.user_id)
    assert t2["due_date"] is None and t2["priority"] == "medium"
    up = member.update_task(t1["task_id"], due_date=None, status="doing")
    assert up["due_date"] is None and up["status"] == "doing" and up["priority"] == "high"
    up = member.update_task(t1["task_id"], due_date="2024-03-01")
    assert up["due_date"] == dt.date(2024, 3, 1)
    with pytest.raises(bespin.Forbidden):
        member.complete_task(t1["task_id"])  # the creator is not the assignee
    assert member.complete_task(t2["task_id"])["status"] == "done"
    assert admin.complete_task(t1["task_id"])["status"] == "done"
    assert [t["task_id"] for t in admin.list_tasks(due_before=dt.date(2024, 3, 1))["items"]] == [t1["task_id"]]
    assert admin.list_tasks(status="done")["total"] == 2
    assert admin.list_tasks(assigned_to_user_id=member.user_id)["items"][0]["title"] == "Later"
    assert member.get_task(t2["task_id"])["status"] == "done"
    with pytest.raises(bespin.ValidationError) as e:
        admin.create_task(title="x", due_date="2024-02-30", linked_entity_type="action")
    assert {i["loc"][0] for i in e.value.detail} == {"due_date", "linked_entity_id"}
    with pytest.raises(bespin.NotFound, match="Action not found"):
        admin.create_task(title="x", linked_entity_type="action", linked_entity_id="ghost")
    with pytest.raises(TypeError, match="naive"):
        admin.create_task(title="x", due_date=dt.datetime(2024, 1, 1))
    assert admin.list_tasks(status="all")["total"] == 2  # nothing written by the failures


def test_decisions_and_meetings(admin: bespin.Session, member: bespin.Session) -> None:
    with pytest.raises(bespin.Forbidden):
        member.create_decision(decision_date="2024-01-02", title="T", decision="D")
    d = admin.create_decision(decision_date=dt.date(2024, 1, 2), title="Go EU", decision="Yes", context="c")
    assert d["decision_date"] == dt.date(2024, 1, 2) and d["status"] == "active"
    up = admin.update_decision(d["decision_id"], context=None, rationale="cheaper")
    assert up["context"] is None and up["rationale"] == "cheaper" and up["title"] == "Go EU"
    assert member.list_decisions()["items"] == [up]
    assert member.get_decision(d["decision_id"]) == up
    m = member.create_meeting(
        meeting_date="2024-01-03",
        title="Weekly",
        notes="We decided.",
        linked_entity_type="decision",
        linked_entity_id=d["decision_id"],
    )
    assert m["meeting_date"] == dt.date(2024, 1, 3) and m["linked_entity_type"] == "decision"
    admin.create_meeting(meeting_date=dt.date(2024, 2, 1), title="Feb", notes="n")
    jan = member.list_meetings(from_=dt.date(2024, 1, 1), to="2024-01-31")
    assert [x["title"] for x in jan["items"]] == ["Weekly"]
    cleared = member.update_meeting(m["meeting_id"], linked_entity_type=None, linked_entity_id=None)
    assert cleared["linked_entity_type"] is None and cleared["linked_entity_id"] is None
    assert member.get_meeting(m["meeting_id"])["notes"] == "We decided."
    with pytest.raises(bespin.ValidationError):
        member.list_meetings(from_="January")


def test_memory_supersede_chain(admin: bespin.Session, member: bespin.Session) -> None:
    f1 = admin.create_memory_fact(category="pricing", fact_key="price", fact_value="10")
    with pytest.raises(bespin.Conflict):
        admin.create_memory_fact(category="pricing", fact_key="price", fact_value="11")
    with pytest.raises(bespin.Forbidden):
        member.create_memory_fact(category="icp", fact_key="who", fact_value="SMBs")
    fixed = admin.update_memory_fact(f1["fact_id"], fact_value="10 EUR")
    assert fixed["fact_id"] == f1["fact_id"] and fixed["fact_value"] == "10 EUR"
    f2 = admin.supersede_memory_fact(f1["fact_id"], fact_value="12 EUR")
    f3 = admin.supersede_memory_fact(f2["fact_id"], fact_value="14 EUR")
    assert f3["supersedes_fact_id"] == f2["fact_id"]
    old = member.get_memory_fact(f1["fact_id"])
    assert old["status"] == "superseded" and old["superseded_by_fact_id"] == f2["fact_id"]
    with pytest.raises(bespin.BadRequest, match="Can only supersede active facts"):
        admin.supersede_memory_fact(f1["fact_id"], fact_value="x")
    # A superseded version can be edited in place (contract: PATCH does not check the status).
    assert admin.update_memory_fact(f1["fact_id"], fact_value="x")["status"] == "superseded"
    assert [f["fact_id"] for f in member.list_memory_facts()["items"]] == [f3["fact_id"]]
    assert member.list_memory_facts(status="all", category="pricing")["total"] == 3
    assert member.list_memory_facts(status="superseded")["total"] == 2
    with pytest.raises(bespin.ValidationError):
        admin.create_memory_fact(category="gossip", fact_key="k", fact_value="v")  # type: ignore[arg-type]


def test_evidence_timeline_search_and_records(admin: bespin.Session, member: bespin.Session) -> None:
    a = member.create_action(title="Discount for annual plans", action_type="pricing", description="Offer 15% off")
    e = member.create_evidence(
        entity_type="action",
        entity_id=a["action_id"],
        source_type="kpi",
        source_ref={"kpi_id": "k1", "created_at": "2024-01-01T00:00:00Z"},
        snippet="churn is up",
    )
    assert e["source_ref"] == {"kpi_id": "k1", "created_at": "2024-01-01T00:00:00Z"}  # free-form
    assert member.list_evidence("action", a["action_id"])["items"] == [e]
    with pytest.raises(bespin.NotFound):
        member.list_evidence("task", "ghost")
    with pytest.raises(bespin.ValidationError):
        member.create_evidence(entity_type="meeting", entity_id="x", source_type="kpi", source_ref={})  # type: ignore[arg-type]
    admin.approve_action(a["action_id"])
    tl = member.timeline(entity_type="action", entity_id=a["action_id"])
    kinds = ["action_approved", "evidence_link_created", "action_created"]
    assert [ev["event_type"] for ev in tl["items"]] == kinds
    assert isinstance(tl["items"][0]["created_at"], dt.datetime)
    older = member.timeline(before=tl["items"][0]["event_id"], entity_type="action")
    assert [ev["event_type"] for ev in older["items"]] == kinds[1:]
    with pytest.raises(bespin.NotFound):
        member.timeline(before="ghost")
    hits = member.search("annual", types=["actions", "tasks"])
    assert hits["total"] == 1 and hits["results"][0]["entity_id"] == a["action_id"]
    assert member.search("annual", types="tasks")["total"] == 0
    with pytest.raises(bespin.ValidationError):
        member.search("")
    with pytest.raises(TypeError):
        member.search("x", types=3)  # type: ignore[arg-type]
    rec = member.record("action", a["action_id"])
    assert rec["entity"]["action_id"] == a["action_id"] and rec["entity"]["status"] == "approved"
    assert rec["evidence"] == [e] and len(rec["timeline"]) == 3
    with pytest.raises(bespin.BadRequest):
        member.record("gadget", a["action_id"])  # type: ignore[arg-type]
    with pytest.raises(bespin.NotFound):
        member.record("task", a["action_id"])


def test_tenants_are_isolated(db: bespin.Bespin, admin: bespin.Session) -> None:
    other = db.create_tenant(name="Globex", region="us-east-1", admin_email="hank@globex.io")
    hank = db.session(other["tenant_id"], other["admin"]["user_id"], other["api_key"])
    a = admin.create_action(title="Secret plan", action_type="t")
    with pytest.raises(bespin.NotFound):
        hank.get_action(a["action_id"])
    with pytest.raises(bespin.NotFound):
        hank.approve_action(a["action_id"])
    assert hank.search("secret")["total"] == 0
    assert hank.timeline()["total"] == 0


def test_capabilities_gate_each_area(db: bespin.Bespin, admin: bespin.Session) -> None:
    make_plan(db, "tasks-only", 100, ["tasks"])
    db.admin.set_subscription(admin.tenant_id, plan_id="tasks-only")
    admin.create_task(title="ok")
    with pytest.raises(bespin.CapabilityDenied) as e:
        admin.create_action(title="x", action_type="t")
    assert e.value.detail["capability_key"] == "action_center"
    with pytest.raises(bespin.CapabilityDenied):
        admin.timeline()
    with pytest.raises(bespin.CapabilityDenied):
        admin.list_memory_facts()
