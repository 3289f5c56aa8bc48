"""Bespin in-process, end to end: a tenant, its users, metering against a small plan, the
billing reports and the platform catalogue; then KPIs, a daily brief, the runner, the cofounder
chat and a Core OS action from proposal to execution. No server involved.

    pip install ./bespin-py
    python bespin-py/examples/python_quickstart.py [path/to/bespin.redb]
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import bespin
from bespin.types import Brief, Usage


def report(usage: Usage) -> str:
    c = usage["credits"]
    return f"{usage['period_start']:%B %Y}: {c['used']:g} of {c['included']} credits used"


def headline(brief: Brief) -> str:
    c = brief["content"]
    s = c["summary"]
    return f"brief {c['date']:%d %b}: {s['kpis_up']} up, {s['kpis_down']} down, {len(c['alerts'])} alert(s)"


def operate(ada: bespin.Session, max_: bespin.Session) -> None:
    """KPIs → brief → runner → chat → a Core OS action, as the tenant's admin and a member."""
    today = dt.datetime.now(dt.timezone.utc).date()
    mrr = ada.create_kpi(name="MRR", unit="EUR", description="monthly recurring revenue")
    signups = ada.create_kpi(name="Signups")
    # Instants: aware datetimes, dates (midnight UTC) or ISO strings; naive datetimes are refused.
    now = dt.datetime.now(dt.timezone.utc)
    got = ada.ingest_points(
        mrr["kpi_id"],
        [{"ts": now - dt.timedelta(days=d), "value": 1000.0 - 20 * d} for d in range(7, -1, -1)],
    )
    ada.ingest_points(
        signups["kpi_id"],
        [{"ts": today - dt.timedelta(days=6), "value": 40}, {"ts": today.isoformat(), "value": 30}],
    )
    print(f"MRR: {got['inserted']} points, latest", ada.latest_point(mrr["kpi_id"])["value"])
    window = max_.kpi_window(signups["kpi_id"], window_days=7)
    if window is not None:
        print(f"signups over {window['window_days']} days: {window['delta_pct']:+.0f}%")

    # A preview costs nothing; materializing is idempotent per key.
    print("preview highlights:", [h["name"] for h in max_.preview_brief(top_n=2)["highlights"]])
    brief = ada.materialize_brief(idempotency_key=f"brief-{today}")
    again = ada.materialize_brief(idempotency_key=f"brief-{today}")
    assert again["request_id"] == brief["request_id"]  # a replay writes nothing
    print(headline(brief))

    # The runner notifies every opted-in user (the brief exists, so it is reused).
    max_.set_notification_prefs(daily_brief_enabled=True)
    run = ada.run_daily_brief(idempotency_key=f"run-{today}")
    print(f"runner: brief created={run['brief_created']}, {run['notifications_inserted']} notified")
    print("max's outbox:", [n["notification_type"] for n in max_.outbox()["items"]])

    reply = max_.chat("today's brief")
    print("cofounder:", reply["assistant_message"]["content"])
    print("cofounder:", max_.chat("kpis", conversation_id=reply["conversation_id"])["assistant_message"]["content"])

    # The Core OS: a member proposes, the admin approves and records the execution.
    action = max_.create_action(
        title="Win back churned accounts",
        action_type="campaign",
        payload={"segment": "churned-30d"},
    )
    ada.create_evidence(
        entity_type="action",
        entity_id=action["action_id"],
        source_type="brief",
        source_ref={"brief_id": brief["brief_id"]},
        snippet="signups down",
    )
    ada.approve_action(action["action_id"], "worth a try")
    done = ada.execute_action(action["action_id"], execution_status="succeeded", result={"emails": 42})
    print(f"action {done['action']['status']} at {done['execution']['created_at']:%H:%M:%S}")
    task = ada.create_task(
        title="Review campaign results",
        assigned_to_user_id=max_.user_id,
        due_date=today + dt.timedelta(days=7),
        linked_entity_type="action",
        linked_entity_id=action["action_id"],
    )
    max_.update_task(task["task_id"], status="doing")
    record = max_.record("action", action["action_id"])
    print("timeline:", [e["event_type"] for e in record["timeline"]])
    print("search 'churned':", [h["title"] for h in max_.search("churned")["results"]])


def main(path: Path) -> None:
    with bespin.open(path) as db:
        # A tenant comes with its admin, default daily limits and the `starter` plan. The API
        # key is shown once; Bespin stores only its digest.
        t = db.create_tenant(name="Acme", region="eu-west-1", admin_email="ada@acme.io")
        ada = db.session(t["tenant_id"], t["admin"]["user_id"], t["api_key"])
        print(f"tenant {t['name']} created at {t['created_at']:%Y-%m-%d %H:%M} UTC")

        user = ada.create_user(email="max@acme.io", role="member")
        max_ = db.session(t["tenant_id"], user["user_id"], t["api_key"])
        print(f"{max_.email} is a {max_.role}")

        # The platform catalogue: a host-specific event type and a tiny plan with a cap.
        db.admin.create_metered_event(
            event_key="report_export",
            display_name="Report export",
            unit_name="report",
            credits_per_unit=2,
            list_price_per_credit=0.01,
        )
        db.admin.create_plan(
            plan_id="tiny", name="Tiny", included_credits=10, overage_price_per_credit=0.02
        )
        db.admin.set_plan_capabilities("tiny", ["chat", "tools"])
        db.admin.set_plan_caps("tiny", [{"event_key": "report_export", "cap_raw_units": 3}])
        db.admin.set_subscription(t["tenant_id"], plan_id="tiny", period_start=dt.date.today())

        # Meter the host's own actions: checked and recorded in one transaction.
        for who in (ada, max_, ada, max_):
            try:
                who.record_usage("report_export", tool_name="exporter", capability="tools")
            except bespin.QuotaExceeded as e:
                print("refused:", e.detail["event_key"], "cap", e.detail["cap_raw_units"])

        print(report(ada.billing_usage()))
        for item in ada.billing_ledger(limit=5)["items"]:
            print(f"  {item['created_at']:%H:%M:%S} {item['event_key']} {item['credits']:g}")

        conv = max_.create_conversation("Pricing ideas")
        print("conversations of max:", len(max_.conversations()["items"]), conv["title"])
        print("today:", {u["activity_type"]: u["units"] for u in ada.daily_usage()["usage"]})

        try:
            max_.set_limits(
                assistant_query_daily_limit=1,
                tool_invocation_daily_limit=1,
                daily_brief_generated_daily_limit=1,
                notification_enqueued_daily_limit=1,
            )
        except bespin.Forbidden as e:
            print("as expected:", e)

        # Back to a plan with every capability for the rest of the tour.
        db.admin.set_subscription(t["tenant_id"], plan_id="growth")
        operate(ada, max_)
        print(report(ada.billing_usage()))


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "bespin.redb")
