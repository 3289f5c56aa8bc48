//! The seeded catalogue (30 §3): the 13 capabilities, 24 metered event types (the contract's 23 and `webhook_delivered`), three plans and
//! the starter plan's caps, inserted when missing each time a database opens.

use super::{
    CapKey, CapRec, EventKey, GrantKey, METERED_EVENTS, MeteredEventRec, PLAN_CAPABILITIES,
    PLAN_CAPS, PLANS, PlanKey, PlanRec,
};
use crate::Ctx;
use crate::error::Result;
use crate::money::Amount;
use crate::store::WriteTx;

/// The 13 capability keys, with their descriptions. There is no API to add others.
pub const CAPABILITIES: [(&str, &str); 13] = [
    ("chat", "Access to chat with assistant"),
    ("tools", "Access to tool invocation API"),
    ("briefs", "Access to daily briefs"),
    ("notifications", "Access to notifications"),
    ("kpi_ingest", "Access to create KPIs and ingest data"),
    ("kpi_read", "Access to read KPI data"),
    (
        "action_center",
        "Access to Action Center for proposed actions",
    ),
    ("tasks", "Access to Tasks in Work OS"),
    ("decisions", "Access to Decisions log"),
    ("meetings", "Access to Meeting notes"),
    ("memory", "Access to Governed Memory (facts)"),
    ("timeline", "Access to Unified Timeline"),
    ("search", "Access to Global Search"),
];

/// The seeded metered event types: key, display name, description, unit, credits per unit.
pub const SEEDED_EVENTS: [(&str, &str, &str, &str, &str); 24] = [
    (
        "assistant_query",
        "Assistant Query",
        "Chat message to the assistant",
        "call",
        "1.0",
    ),
    (
        "tool_invocation",
        "Tool Invocation",
        "Tool invoked via the API",
        "call",
        "2.0",
    ),
    (
        "daily_brief_generated",
        "Daily Brief Generated",
        "Daily brief materialized for tenant",
        "brief",
        "5.0",
    ),
    (
        "notification_enqueued",
        "Notification Enqueued",
        "Notification added to outbox",
        "notification",
        "0.2",
    ),
    (
        "kpi_definition_created",
        "KPI Definition Created",
        "New KPI definition created",
        "kpi",
        "0.5",
    ),
    (
        "kpi_points_ingested",
        "KPI Points Ingested",
        "KPI data points ingested",
        "row",
        "0.001",
    ),
    (
        "action_created",
        "Action Created",
        "Proposed action created in Action Center",
        "record",
        "0.2",
    ),
    (
        "action_updated",
        "Action Updated",
        "Action record updated",
        "record",
        "0.1",
    ),
    (
        "action_approved",
        "Action Approved",
        "Action approved by admin",
        "event",
        "0.2",
    ),
    (
        "action_rejected",
        "Action Rejected",
        "Action rejected by admin",
        "event",
        "0.1",
    ),
    (
        "action_executed",
        "Action Executed",
        "Action executed (stub)",
        "event",
        "0.3",
    ),
    (
        "task_created",
        "Task Created",
        "Task created in Work OS",
        "record",
        "0.1",
    ),
    (
        "task_updated",
        "Task Updated",
        "Task record updated",
        "record",
        "0.05",
    ),
    (
        "task_completed",
        "Task Completed",
        "Task marked as done",
        "event",
        "0.05",
    ),
    (
        "decision_created",
        "Decision Created",
        "Decision recorded",
        "record",
        "0.2",
    ),
    (
        "decision_updated",
        "Decision Updated",
        "Decision record updated",
        "record",
        "0.1",
    ),
    (
        "meeting_note_created",
        "Meeting Note Created",
        "Meeting note created",
        "record",
        "0.1",
    ),
    (
        "meeting_note_updated",
        "Meeting Note Updated",
        "Meeting note updated",
        "record",
        "0.05",
    ),
    (
        "memory_fact_created",
        "Memory Fact Created",
        "Governed memory fact created",
        "record",
        "0.2",
    ),
    (
        "memory_fact_updated",
        "Memory Fact Updated",
        "Governed memory fact updated",
        "record",
        "0.1",
    ),
    (
        "memory_fact_superseded",
        "Memory Fact Superseded",
        "Governed memory fact superseded with new version",
        "event",
        "0.1",
    ),
    (
        "evidence_link_created",
        "Evidence Link Created",
        "Evidence/provenance link created",
        "record",
        "0.05",
    ),
    (
        "search_query",
        "Search Query",
        "Global search query executed",
        "call",
        "0.05",
    ),
    // Issue 20, an addition to the contract's 23 keys (30 §3.1): one webhook delivery
    // acknowledged with a 2xx by the receiver.
    (
        "webhook_delivered",
        "Webhook Delivered",
        "Event delivered to a webhook endpoint (2xx answer)",
        "delivery",
        "0.01",
    ),
];

/// The seeded plans: id, name, included credits, overage price per credit.
pub const SEEDED_PLANS: [(&str, &str, i64, &str); 3] = [
    ("starter", "Starter", 500, "0.02"),
    ("growth", "Growth", 2000, "0.015"),
    ("scale", "Scale", 10000, "0.01"),
];

/// The seeded caps: plan, event key, period, raw units.
pub const SEEDED_CAPS: [(&str, &str, &str, i64); 2] = [
    ("starter", "daily_brief_generated", "monthly", 50),
    ("starter", "tool_invocation", "monthly", 2000),
];

fn amount(s: &str) -> Amount {
    Amount::parse(s).unwrap_or(Amount::ZERO)
}

/// Seeds the default catalogue, insert-if-missing by natural key; existing rows are never
/// changed. A seeded plan's grants and caps are created together with the plan, so grants or
/// caps an admin removed later stay removed across restarts.
pub(crate) fn seed(tx: &mut WriteTx, ctx: &Ctx) -> Result<()> {
    let price = amount("0.02");
    for (key, display, desc, unit, weight) in SEEDED_EVENTS {
        let rec = MeteredEventRec {
            display_name: display.into(),
            description: Some(desc.into()),
            unit_name: unit.into(),
            credits_per_unit: amount(weight),
            list_price_per_credit: price,
            billable: true,
            active: true,
            created_at: ctx.now,
            updated_at: ctx.now,
            capability: None,
        };
        tx.insert_new(&METERED_EVENTS, &EventKey::new(key), &rec)?;
    }
    for (id, name, included, overage) in SEEDED_PLANS {
        let rec = PlanRec {
            name: name.into(),
            included_credits: included,
            overage_price_per_credit: amount(overage),
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        if tx.insert_new(&PLANS, &PlanKey::new(id), &rec)? {
            for (cap, _) in CAPABILITIES {
                tx.put(&PLAN_CAPABILITIES, &GrantKey::new(id, cap), &())?;
            }
            for (plan, event, period, units) in SEEDED_CAPS.iter().filter(|c| c.0 == id) {
                tx.put(
                    &PLAN_CAPS,
                    &CapKey::new(plan, event, period),
                    &CapRec {
                        cap_raw_units: Amount::from_int(*units),
                    },
                )?;
            }
        }
    }
    Ok(())
}
