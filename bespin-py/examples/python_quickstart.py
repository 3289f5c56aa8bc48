"""Bespin in-process, end to end: a tenant, its users, metering against a small plan, the
billing reports and the platform catalogue. No server involved.

    pip install ./bespin-py
    python bespin-py/examples/python_quickstart.py [path/to/bespin.redb]
"""

from __future__ import annotations

import datetime as dt
import sys
import tempfile
from pathlib import Path

import bespin
from bespin.types import Usage


def report(usage: Usage) -> str:
    c = usage["credits"]
    return f"{usage['period_start']:%B %Y}: {c['used']:g} of {c['included']} credits used"


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


if __name__ == "__main__":
    if len(sys.argv) > 1:
        main(Path(sys.argv[1]))
    else:
        with tempfile.TemporaryDirectory() as tmp:
            main(Path(tmp) / "bespin.redb")
