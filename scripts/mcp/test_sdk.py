"""The official MCP Python SDK (`mcp` 2.x) against a running Bespin (scripts/mcp-clients.sh).

Each test connects as a real client would: `mcp.Client` over `streamable_http_client` with an
httpx2 client carrying the tenant's headers, in `auto` mode (server/discover, 2026-07-28) and
held to the handshake revision (`mode="legacy"`: initialize and Mcp-Session-Id).
"""

from __future__ import annotations

import json
import os
import urllib.request
import uuid
from typing import Any

import anyio
import httpx2
import pytest
from mcp import Client
from mcp.client.streamable_http import streamable_http_client

BASE = os.environ["BESPIN_BASE"]
ADMIN_KEY = os.environ["BESPIN_ADMIN_KEY"]


def rest(method: str, path: str, body: Any = None, headers: dict[str, str] | None = None) -> Any:
    req = urllib.request.Request(
        BASE + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Content-Type": "application/json", **(headers or {})},
    )
    with urllib.request.urlopen(req) as r:
        return json.load(r)


def tenant(name: str) -> dict[str, str]:
    t = rest("POST", "/v1/tenants", {"name": name, "region": "eu", "admin_email": f"{name}@example.com"})
    return {"X-Tenant-ID": t["tenant_id"], "X-User-ID": t["admin"]["user_id"], "X-API-Key": t["api_key"]}


def member_of(admin: dict[str, str]) -> dict[str, str]:
    body = {"tenant_id": admin["X-Tenant-ID"], "email": f"m{uuid.uuid4().hex[:8]}@example.com", "role": "member"}
    u = rest("POST", "/v1/users", body, admin)
    return {"X-Tenant-ID": admin["X-Tenant-ID"], "X-User-ID": u["user_id"], "X-API-Key": admin["X-API-Key"]}


def run(headers: dict[str, str], mode: str, body):  # type: ignore[no-untyped-def]
    async def main() -> Any:
        async with httpx2.AsyncClient(headers=headers, timeout=30) as http:
            async with Client(streamable_http_client(BASE + "/mcp", http_client=http), mode=mode) as client:
                return await body(client)

    return anyio.run(main)


@pytest.fixture(scope="module")
def admin() -> dict[str, str]:
    h = tenant("mcpadmin")
    kpi = rest("POST", "/v1/kpis", {"name": "MRR", "unit": "EUR"}, h)
    rest(
        "POST",
        f"/v1/kpis/{kpi['kpi_id']}/points:bulk",
        {"points": [{"ts": "2026-11-01T00:00:00Z", "value": 100.0}, {"ts": "2026-11-20T00:00:00Z", "value": 120.0}]},
        h,
    )
    h["kpi_id"] = kpi["kpi_id"]
    return h


def creds(h: dict[str, str]) -> dict[str, str]:
    return {k: v for k, v in h.items() if k.startswith("X-")}


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_tools_resources_and_prompts(admin: dict[str, str], mode: str) -> None:
    key = f"task-{mode}-{uuid.uuid4().hex[:6]}"

    async def body(client: Client) -> None:
        expected = "2026-07-28" if mode == "auto" else "2025-11-25"
        assert client.protocol_version == expected
        names = {t.name for t in (await client.list_tools()).tools}
        assert {"kpi_summary", "echo", "create_task", "record_decision", "search_records"} <= names
        summary = await client.call_tool(
            "kpi_summary", {"kpi_id": admin["kpi_id"], "idempotency_key": f"sum-{mode}"}
        )
        assert not summary.is_error
        assert summary.structured_content is not None
        assert summary.structured_content["result"]["latest"]["value"] == 120.0, summary.structured_content
        created = await client.call_tool("create_task", {"title": f"Call Bob ({mode})", "idempotency_key": key})
        assert not created.is_error, created
        task = created.structured_content
        assert task is not None and task["title"] == f"Call Bob ({mode})"
        # A retry with the same key is the first answer, not a second task.
        again = await client.call_tool("create_task", {"title": f"Call Bob ({mode})", "idempotency_key": key})
        assert again.structured_content == task
        resources = await client.list_resources()
        assert any(r.uri == f"bespin://kpis/{admin['kpi_id']}" for r in resources.resources)
        read = await client.read_resource(f"bespin://task/{task['task_id']}")
        text = read.contents[0].text  # type: ignore[union-attr]
        assert task["task_id"] in json.dumps(json.loads(text)["entity"])
        prompt = await client.get_prompt("daily_review")
        assert "Open tasks" in prompt.messages[0].content.text  # type: ignore[union-attr]

    run(creds(admin), mode, body)
    listed = rest("GET", "/v1/tasks?status=todo", headers=creds(admin))
    assert sum(1 for t in listed["items"] if t["title"] == f"Call Bob ({mode})") == 1


@pytest.mark.parametrize("mode", ["auto", "legacy"])
def test_member_sees_no_admin_tools_and_refusals_are_tool_errors(admin: dict[str, str], mode: str) -> None:
    member = member_of(creds(admin))

    async def body(client: Client) -> None:
        names = {t.name for t in (await client.list_tools()).tools}
        assert "create_task" in names
        assert not names & {"record_decision", "add_memory_fact", "supersede_memory_fact", "kpi_summary", "echo"}
        refused = await client.call_tool(
            "record_decision", {"title": "x", "decision": "y", "decision_date": "2026-12-01", "idempotency_key": "d1"}
        )
        assert refused.is_error
        assert refused.structured_content is not None and refused.structured_content["status"] == 403

    run(member, mode, body)


def test_capability_error_is_a_tool_error() -> None:
    h = tenant("mcpnocaps")
    # A plan without `decisions`: the tenant's decision tool is refused with the REST 403.
    platform = {"X-Platform-Admin-Key": ADMIN_KEY}
    plan = rest("GET", "/v1/billing/plan", headers=h)
    plan_id = plan["plan_id"]
    every = plan["capabilities"]
    rest(
        "PUT",
        f"/v1/admin/plans/{plan_id}/capabilities",
        {"capabilities": [c for c in every if c != "decisions"]},
        platform,
    )
    try:

        async def body(client: Client) -> None:
            refused = await client.call_tool(
                "record_decision", {"title": "x", "decision": "y", "decision_date": "2026-12-01", "idempotency_key": "d1"}
            )
            assert refused.is_error
            sc = refused.structured_content
            assert sc is not None and sc["status"] == 403, sc
            assert "decisions" in json.dumps(sc)

        run(h, "auto", body)
    finally:
        rest("PUT", f"/v1/admin/plans/{plan_id}/capabilities", {"capabilities": every}, platform)


def test_listen_announces_a_followed_record_change(admin: dict[str, str]) -> None:
    """2026-07-28's subscriptions/listen through the SDK's own driver: the acknowledgment names
    what is followed, and completing the followed task (a tool call on the same client) arrives
    as a ResourceUpdated for its URI."""
    from mcp.client.subscriptions import ResourceUpdated

    task = rest("POST", "/v1/tasks", {"title": "Followed"}, creds(admin))
    uri = f"bespin://task/{task['task_id']}"

    async def body(client: Client) -> None:
        async with client.listen(resource_subscriptions=[uri]) as sub:
            assert sub.honored.resource_subscriptions == [uri]
            done = await client.call_tool(
                "complete_task", {"task_id": task["task_id"], "idempotency_key": uuid.uuid4().hex}
            )
            assert not done.is_error, done
            with anyio.fail_after(10):
                event = await sub.__anext__()
            assert event == ResourceUpdated(uri=uri)

    run(creds(admin), "auto", body)
