//! The billing catalogue: metered event types, capabilities, plans, grants and caps, with the
//! seeded defaults (30 §3) and the platform-admin operations on them (30 §8.3).

use crate::error::{Error, Result};
use crate::money::Amount;
use crate::store::{Flow, Key, Order, Reader, Record, WriteTx, tables};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, FieldError, LocPart};
use serde::{Deserialize, Serialize};
use serde_json::Value;

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
pub const SEEDED_EVENTS: [(&str, &str, &str, &str, &str); 23] = [
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

/// A stored metered event type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct MeteredEventRec {
    pub display_name: String,
    pub description: Option<String>,
    pub unit_name: String,
    pub credits_per_unit: Amount,
    pub list_price_per_credit: Amount,
    pub billable: bool,
    pub active: bool,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for MeteredEventRec {}

/// A stored plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct PlanRec {
    pub name: String,
    pub included_credits: i64,
    pub overage_price_per_credit: Amount,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for PlanRec {}

/// A stored per-plan event cap.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct CapRec {
    pub cap_raw_units: Amount,
}
impl Record for CapRec {}

/// A metered event type as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeteredEvent {
    /// The key usage events carry.
    pub event_key: String,
    /// Display name.
    pub display_name: String,
    /// Description.
    pub description: Option<String>,
    /// Name of one raw unit.
    pub unit_name: String,
    /// Weight: credits per raw unit.
    pub credits_per_unit: f64,
    /// List price of one credit.
    pub list_price_per_credit: f64,
    /// Informational flag.
    pub billable: bool,
    /// Inactive types refuse metering (400 `unknown_event_type`).
    pub active: bool,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

/// A plan as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Plan {
    /// The plan id.
    pub plan_id: String,
    /// Display name.
    pub name: String,
    /// Credits included each month (a hard allowance).
    pub included_credits: i64,
    /// Reporting price of credits beyond the allowance.
    pub overage_price_per_credit: f64,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
    /// Per-tenant request rate limit of the plan (requests per minute, token bucket); absent
    /// when the plan has none (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub requests_per_minute: Option<u32>,
}

/// A cap as `PUT /v1/admin/plans/{id}/caps` echoes it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanCap {
    /// The capped event.
    pub event_key: String,
    /// The cap's period (only `monthly` is enforced).
    pub period: String,
    /// Raw units allowed per period.
    pub cap_raw_units: f64,
}

pub(crate) fn event_view(key: &str, r: &MeteredEventRec) -> MeteredEvent {
    MeteredEvent {
        event_key: key.to_owned(),
        display_name: r.display_name.clone(),
        description: r.description.clone(),
        unit_name: r.unit_name.clone(),
        credits_per_unit: r.credits_per_unit.to_f64(),
        list_price_per_credit: r.list_price_per_credit.to_f64(),
        billable: r.billable,
        active: r.active,
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

pub(crate) fn plan_view(id: &str, r: &PlanRec, requests_per_minute: Option<u32>) -> Plan {
    Plan {
        requests_per_minute,
        plan_id: id.to_owned(),
        name: r.name.clone(),
        included_credits: r.included_credits,
        overage_price_per_credit: r.overage_price_per_credit.to_f64(),
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

/// The request rate limit of the tenant's current plan (`None`: no limit, or no subscription).
pub(crate) fn tenant_rate_limit(r: &impl Reader, tenant_id: &str) -> Result<Option<u32>> {
    // Usually no plan has a limit: one probe of the small table answers for every tenant, on
    // every request, without reading the tenant's subscription.
    let mut any = false;
    r.scan(
        &tables::PLAN_RATE_LIMITS,
        &Key::new(),
        Order::Asc,
        |_, _: u64| {
            any = true;
            Ok(Flow::Stop)
        },
    )?;
    if !any {
        return Ok(None);
    }
    match super::subscriptions::get(r, tenant_id)? {
        Some(sub) => plan_rate_limit(r, &sub.plan_id),
        None => Ok(None),
    }
}

/// The plan's request rate limit (requests per minute), if it has one.
pub(crate) fn plan_rate_limit(r: &impl Reader, plan_id: &str) -> Result<Option<u32>> {
    Ok(r.get(&tables::PLAN_RATE_LIMITS, &plan_key(plan_id))?
        .and_then(|n| u32::try_from(n).ok()))
}

fn set_plan_rate_limit(tx: &mut WriteTx, plan_id: &str, rpm: Option<u32>) -> Result<()> {
    match rpm {
        Some(n) => tx.put(&tables::PLAN_RATE_LIMITS, &plan_key(plan_id), &u64::from(n)),
        None => tx
            .delete(&tables::PLAN_RATE_LIMITS, &plan_key(plan_id))
            .map(|_| ()),
    }
}

pub(crate) fn event_key(key: &str) -> Key {
    Key::new().str(key)
}

pub(crate) fn plan_key(id: &str) -> Key {
    Key::new().str(id)
}

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
        };
        tx.insert_new(&tables::METERED_EVENTS, &event_key(key), &rec)?;
    }
    for (id, name, included, overage) in SEEDED_PLANS {
        let rec = PlanRec {
            name: name.into(),
            included_credits: included,
            overage_price_per_credit: amount(overage),
            created_at: ctx.now,
            updated_at: ctx.now,
        };
        if tx.insert_new(&tables::PLANS, &plan_key(id), &rec)? {
            for (cap, _) in CAPABILITIES {
                tx.put(
                    &tables::PLAN_CAPABILITIES,
                    &Key::new().str(id).str(cap),
                    &(),
                )?;
            }
            for (plan, event, period, units) in SEEDED_CAPS.iter().filter(|c| c.0 == id) {
                let key = Key::new().str(plan).str(event).str(period);
                tx.put(
                    &tables::PLAN_CAPS,
                    &key,
                    &CapRec {
                        cap_raw_units: Amount::from_int(*units),
                    },
                )?;
            }
        }
    }
    Ok(())
}

/// The stored event type, if any (active or not).
pub(crate) fn event(r: &impl Reader, key: &str) -> Result<Option<MeteredEventRec>> {
    r.get(&tables::METERED_EVENTS, &event_key(key))
}

/// The stored plan, if any.
pub(crate) fn plan(r: &impl Reader, id: &str) -> Result<Option<PlanRec>> {
    r.get(&tables::PLANS, &plan_key(id))
}

/// Whether `plan_id` grants `capability`.
pub(crate) fn grants(r: &impl Reader, plan_id: &str, capability: &str) -> Result<bool> {
    r.contains(
        &tables::PLAN_CAPABILITIES,
        &Key::new().str(plan_id).str(capability),
    )
}

/// The plan's granted capability keys, sorted ascending.
pub(crate) fn capabilities_of(r: &impl Reader, plan_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let prefix = Key::new().str(plan_id);
    let plen = prefix.as_bytes().len();
    r.scan(&tables::PLAN_CAPABILITIES, &prefix, Order::Asc, |k, ()| {
        if let Some((cap, _)) = crate::store::read_str(k, plen) {
            out.push(cap);
        }
        Ok(Flow::Continue)
    })?;
    Ok(out)
}

/// The plan's monthly cap for `event_key`, if any.
pub(crate) fn monthly_cap(
    r: &impl Reader,
    plan_id: &str,
    event_key: &str,
) -> Result<Option<Amount>> {
    Ok(r.get(
        &tables::PLAN_CAPS,
        &Key::new().str(plan_id).str(event_key).str("monthly"),
    )?
    .map(|c| c.cap_raw_units))
}

fn all_events(r: &impl Reader, only_active: bool) -> Result<Vec<MeteredEvent>> {
    let mut out = Vec::new();
    r.scan(
        &tables::METERED_EVENTS,
        &Key::new(),
        Order::Asc,
        |k, rec: MeteredEventRec| {
            if (!only_active || rec.active)
                && let Some((key, _)) = crate::store::read_str(k, 0)
            {
                out.push(event_view(&key, &rec));
            }
            Ok(Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Input of [`Bespin::admin_create_metered_event`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewMeteredEvent {
    /// 1–100 characters.
    pub event_key: String,
    /// 1–255 characters.
    pub display_name: String,
    /// Optional description.
    pub description: Option<String>,
    /// 1–50 characters.
    pub unit_name: String,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub credits_per_unit: Amount,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub list_price_per_credit: Amount,
    /// Default true.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub billable: bool,
    /// Default true.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub active: bool,
}

fn amount_field(f: &mut Fields<'_>, name: &str, presence: Presence) -> Option<Option<Amount>> {
    let n = f.number(name, presence, Some(0.0))?;
    match n {
        None => Some(None),
        Some(x) => match Amount::from_f64(x) {
            Some(a) => Some(Some(a)),
            None => {
                f.fail(
                    name,
                    "finite_number",
                    "Input should be a finite number",
                    serde_json::json!(x),
                );
                None
            }
        },
    }
}

impl NewMeteredEvent {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let event_key = f.req_string("event_key", Len::between(1, 100));
        let display_name = f.req_string("display_name", Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let unit_name = f.req_string("unit_name", Len::between(1, 50));
        let credits = amount_field(&mut f, "credits_per_unit", Presence::Required);
        let price = amount_field(&mut f, "list_price_per_credit", Presence::Required);
        let billable = f.boolean("billable", Presence::Optional);
        let active = f.boolean("active", Presence::Optional);
        f.finish()?;
        Ok(NewMeteredEvent {
            event_key: got(event_key)?,
            display_name: got(display_name)?,
            description: got(description)?,
            unit_name: got(unit_name)?,
            credits_per_unit: got(credits.flatten())?,
            list_price_per_credit: got(price.flatten())?,
            billable: got(billable)?.unwrap_or(true),
            active: got(active)?.unwrap_or(true),
        })
    }
}

/// Input of [`Bespin::admin_update_metered_event`]: absent or null fields stay unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MeteredEventPatch {
    /// New display name (1–255).
    pub display_name: Option<String>,
    /// New description.
    pub description: Option<String>,
    /// New unit name (1–50).
    pub unit_name: Option<String>,
    /// New weight (≥ 0); applies to later emissions only.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub credits_per_unit: Option<Amount>,
    /// New list price (≥ 0); applies to later emissions only.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub list_price_per_credit: Option<Amount>,
    /// New billable flag.
    pub billable: Option<bool>,
    /// New active flag.
    pub active: Option<bool>,
}

impl MeteredEventPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let display_name = f.string("display_name", Presence::Optional, Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let unit_name = f.string("unit_name", Presence::Optional, Len::between(1, 50));
        let credits = amount_field(&mut f, "credits_per_unit", Presence::Optional);
        let price = amount_field(&mut f, "list_price_per_credit", Presence::Optional);
        let billable = f.boolean("billable", Presence::Optional);
        let active = f.boolean("active", Presence::Optional);
        f.finish()?;
        Ok(MeteredEventPatch {
            display_name: got(display_name)?,
            description: got(description)?,
            unit_name: got(unit_name)?,
            credits_per_unit: got(credits)?,
            list_price_per_credit: got(price)?,
            billable: got(billable)?,
            active: got(active)?,
        })
    }
}

/// Input of [`Bespin::admin_create_plan`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPlan {
    /// 1–100 characters.
    pub plan_id: String,
    /// 1–255 characters.
    pub name: String,
    /// ≥ 0.
    pub included_credits: i64,
    /// ≥ 0.
    #[cfg_attr(feature = "openapi", schema(value_type = f64))]
    pub overage_price_per_credit: Amount,
    /// Optional per-tenant request rate limit, 1–1 000 000 requests per minute (absent or
    /// null: no limit).
    pub requests_per_minute: Option<u32>,
}

impl NewPlan {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let plan_id = f.req_string("plan_id", Len::between(1, 100));
        let name = f.req_string("name", Len::between(1, 255));
        let included = f.int(
            "included_credits",
            Presence::Required,
            crate::validate::Bounds::ge(0),
        );
        let overage = amount_field(&mut f, "overage_price_per_credit", Presence::Required);
        let rpm = rate_field(&mut f);
        f.finish()?;
        Ok(NewPlan {
            plan_id: got(plan_id)?,
            name: got(name)?,
            included_credits: got(included.flatten())?,
            overage_price_per_credit: got(overage.flatten())?,
            requests_per_minute: got(rpm)?,
        })
    }
}

/// Input of [`Bespin::admin_update_plan`]: absent or null fields stay unchanged.
#[derive(Debug, Clone, Default, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanPatch {
    /// New name (1–255).
    pub name: Option<String>,
    /// New allowance (≥ 0); applies at once to the current period.
    pub included_credits: Option<i64>,
    /// New overage price (≥ 0).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<f64>))]
    pub overage_price_per_credit: Option<Amount>,
    /// New request rate limit: `Some(Some(n))` sets it (1–1 000 000 per minute),
    /// `Some(None)` (JSON `null`) removes it, `None` (absent) leaves it.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<u32>))]
    pub requests_per_minute: Option<Option<u32>>,
}

impl PlanPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let name = f.string("name", Presence::Optional, Len::between(1, 255));
        let included = f.int(
            "included_credits",
            Presence::Optional,
            crate::validate::Bounds::ge(0),
        );
        let overage = amount_field(&mut f, "overage_price_per_credit", Presence::Optional);
        let clear_rpm = v.get("requests_per_minute").is_some_and(Value::is_null);
        let rpm = rate_field(&mut f);
        f.finish()?;
        Ok(PlanPatch {
            name: got(name)?,
            included_credits: got(included)?,
            overage_price_per_credit: got(overage)?,
            requests_per_minute: if clear_rpm {
                Some(None)
            } else {
                got(rpm)?.map(Some)
            },
        })
    }
}

/// The optional `requests_per_minute` member (1–1 000 000).
fn rate_field(f: &mut Fields<'_>) -> Option<Option<u32>> {
    f.int(
        "requests_per_minute",
        Presence::Optional,
        crate::validate::Bounds::range(1, 1_000_000),
    )
    .map(|o| o.and_then(|n| u32::try_from(n).ok()))
}

/// Validates `{"capabilities": [string, …]}`; a repeated key is a 422 at its position.
pub fn capabilities_from_json(v: &Value) -> Result<Vec<String>> {
    let mut f = Fields::new(v)?;
    let items = f.list("capabilities", Presence::Required, 0);
    let mut out = Vec::new();
    if let Some(Some(items)) = items {
        let base = f.loc_of("capabilities");
        let mut errs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut loc = base.clone();
            loc.push(LocPart::Index(i));
            match item {
                Value::String(s) if out.contains(s) => errs.push(FieldError::new(
                    "unique_items",
                    loc,
                    format!("Capability '{s}' is listed more than once"),
                    item.clone(),
                )),
                Value::String(s) => out.push(s.clone()),
                other => errs.push(FieldError::new(
                    "string_type",
                    loc,
                    "Input should be a valid string",
                    other.clone(),
                )),
            }
        }
        f.extend(errs);
    }
    f.finish()?;
    Ok(out)
}

/// Validates `{"caps": [{"event_key", "period"?, "cap_raw_units"}, …]}`; a repeated
/// (event_key, period) is a 422 at its position.
pub fn caps_from_json(v: &Value) -> Result<Vec<(String, String, Amount)>> {
    let mut f = Fields::new(v)?;
    let items = f.list("caps", Presence::Required, 0);
    let mut out: Vec<(String, String, Amount)> = Vec::new();
    if let Some(Some(items)) = items {
        let base = f.loc_of("caps");
        let mut errs = Vec::new();
        for (i, item) in items.iter().enumerate() {
            let mut loc = base.clone();
            loc.push(LocPart::Index(i));
            let mut g = match Fields::at(item, loc.clone()) {
                Ok(g) => g,
                Err(Error::Validation(e)) => {
                    errs.extend(e);
                    continue;
                }
                Err(e) => return Err(e),
            };
            let key = g.req_string("event_key", Len::ANY);
            let period = g.string("period", Presence::Optional, Len::ANY);
            let units = amount_field(&mut g, "cap_raw_units", Presence::Required);
            match g.finish() {
                Ok(()) => {
                    let key = got(key)?;
                    let period = got(period)?.unwrap_or_else(|| "monthly".into());
                    if out.iter().any(|(k, p, _)| *k == key && *p == period) {
                        errs.push(FieldError::new(
                            "unique_items",
                            loc,
                            format!("Cap for ('{key}', '{period}') is listed more than once"),
                            item.clone(),
                        ));
                    } else {
                        out.push((key, period, got(units.flatten())?));
                    }
                }
                Err(Error::Validation(e)) => errs.extend(e),
                Err(e) => return Err(e),
            }
        }
        f.extend(errs);
    }
    f.finish()?;
    Ok(out)
}

fn plan_not_found(id: &str) -> Error {
    Error::NotFound(format!("Plan '{id}' not found"))
}

impl Bespin {
    /// Active metered event types, sorted by key (any tenant user).
    pub fn billing_events(&self) -> Result<Vec<MeteredEvent>> {
        self.read(|r, _| all_events(r, true))
    }

    /// Every metered event type, active or not, sorted by key (platform admin).
    pub fn admin_metered_events(&self) -> Result<Vec<MeteredEvent>> {
        self.read(|r, _| all_events(r, false))
    }

    /// Adds an event type. Errors: `Conflict` if the key exists.
    pub fn admin_create_metered_event(&self, req: NewMeteredEvent) -> Result<MeteredEvent> {
        self.write(|tx, ctx| {
            let rec = MeteredEventRec {
                display_name: req.display_name,
                description: req.description,
                unit_name: req.unit_name,
                credits_per_unit: req.credits_per_unit,
                list_price_per_credit: req.list_price_per_credit,
                billable: req.billable,
                active: req.active,
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            if !tx.insert_new(&tables::METERED_EVENTS, &event_key(&req.event_key), &rec)? {
                return Err(Error::Conflict(format!(
                    "Event type '{}' already exists",
                    req.event_key
                )));
            }
            Ok(event_view(&req.event_key, &rec))
        })
    }

    /// Changes an event type; a new weight or price applies to later emissions only.
    /// Errors: `NotFound`.
    pub fn admin_update_metered_event(
        &self,
        key: &str,
        patch: MeteredEventPatch,
    ) -> Result<MeteredEvent> {
        self.write(|tx, ctx| {
            let mut rec = event(tx, key)?
                .ok_or_else(|| Error::NotFound(format!("Event type '{key}' not found")))?;
            if let Some(v) = patch.display_name {
                rec.display_name = v;
            }
            if let Some(v) = patch.description {
                rec.description = Some(v);
            }
            if let Some(v) = patch.unit_name {
                rec.unit_name = v;
            }
            if let Some(v) = patch.credits_per_unit {
                rec.credits_per_unit = v;
            }
            if let Some(v) = patch.list_price_per_credit {
                rec.list_price_per_credit = v;
            }
            if let Some(v) = patch.billable {
                rec.billable = v;
            }
            if let Some(v) = patch.active {
                rec.active = v;
            }
            rec.updated_at = ctx.now;
            tx.put(&tables::METERED_EVENTS, &event_key(key), &rec)?;
            Ok(event_view(key, &rec))
        })
    }

    /// Every plan, sorted by id (platform admin).
    pub fn admin_plans(&self) -> Result<Vec<Plan>> {
        self.read(|r, _| {
            let mut out = Vec::new();
            r.scan(
                &tables::PLANS,
                &Key::new(),
                Order::Asc,
                |k, rec: PlanRec| {
                    if let Some((id, _)) = crate::store::read_str(k, 0) {
                        out.push((id, rec));
                    }
                    Ok(Flow::Continue)
                },
            )?;
            out.into_iter()
                .map(|(id, rec)| Ok(plan_view(&id, &rec, plan_rate_limit(r, &id)?)))
                .collect()
        })
    }

    /// The request rate limit (requests per minute) of the tenant's current plan, `None` when
    /// the plan has none or the tenant has no subscription. One small read: meant to be called
    /// on every request.
    pub fn tenant_rate_limit(&self, tenant_id: &str) -> Result<Option<u32>> {
        self.read(|r, _| tenant_rate_limit(r, tenant_id))
    }

    /// Adds a plan with no capabilities and no caps. Errors: `Conflict` if the id exists.
    pub fn admin_create_plan(&self, req: NewPlan) -> Result<Plan> {
        self.write(|tx, ctx| {
            let rec = PlanRec {
                name: req.name,
                included_credits: req.included_credits,
                overage_price_per_credit: req.overage_price_per_credit,
                created_at: ctx.now,
                updated_at: ctx.now,
            };
            if !tx.insert_new(&tables::PLANS, &plan_key(&req.plan_id), &rec)? {
                return Err(Error::Conflict(format!(
                    "Plan '{}' already exists",
                    req.plan_id
                )));
            }
            set_plan_rate_limit(tx, &req.plan_id, req.requests_per_minute)?;
            Ok(plan_view(&req.plan_id, &rec, req.requests_per_minute))
        })
    }

    /// Changes a plan; a new allowance applies at once. Errors: `NotFound`.
    pub fn admin_update_plan(&self, plan_id: &str, patch: PlanPatch) -> Result<Plan> {
        self.write(|tx, ctx| {
            let mut rec = plan(tx, plan_id)?.ok_or_else(|| plan_not_found(plan_id))?;
            if let Some(v) = patch.name {
                rec.name = v;
            }
            if let Some(v) = patch.included_credits {
                rec.included_credits = v;
            }
            if let Some(v) = patch.overage_price_per_credit {
                rec.overage_price_per_credit = v;
            }
            rec.updated_at = ctx.now;
            tx.put(&tables::PLANS, &plan_key(plan_id), &rec)?;
            if let Some(rpm) = patch.requests_per_minute {
                set_plan_rate_limit(tx, plan_id, rpm)?;
            }
            Ok(plan_view(plan_id, &rec, plan_rate_limit(tx, plan_id)?))
        })
    }

    /// Replaces a plan's capability grants; returns the list as given. Errors: `NotFound` for
    /// the plan, `BadRequest` for a key that is not one of the 13 capabilities (nothing changes).
    pub fn admin_set_plan_capabilities(
        &self,
        plan_id: &str,
        caps: Vec<String>,
    ) -> Result<Vec<String>> {
        self.write(|tx, _| {
            plan(tx, plan_id)?.ok_or_else(|| plan_not_found(plan_id))?;
            if let Some(bad) = caps
                .iter()
                .find(|c| !CAPABILITIES.iter().any(|(k, _)| k == c))
            {
                return Err(Error::BadRequest(format!("Capability '{bad}' not found")));
            }
            tx.delete_prefix(&tables::PLAN_CAPABILITIES, &Key::new().str(plan_id))?;
            for c in &caps {
                tx.put(
                    &tables::PLAN_CAPABILITIES,
                    &Key::new().str(plan_id).str(c),
                    &(),
                )?;
            }
            Ok(caps)
        })
    }

    /// Replaces a plan's caps; returns them in request order. Errors: `NotFound` for the plan,
    /// `BadRequest` for an event key not in the catalogue (nothing changes).
    pub fn admin_set_plan_caps(
        &self,
        plan_id: &str,
        caps: Vec<(String, String, Amount)>,
    ) -> Result<Vec<PlanCap>> {
        self.write(|tx, _| {
            plan(tx, plan_id)?.ok_or_else(|| plan_not_found(plan_id))?;
            for (key, _, _) in &caps {
                if event(tx, key)?.is_none() {
                    return Err(Error::BadRequest(format!("Event type '{key}' not found")));
                }
            }
            tx.delete_prefix(&tables::PLAN_CAPS, &Key::new().str(plan_id))?;
            let mut out = Vec::new();
            for (key, period, units) in caps {
                let k = Key::new().str(plan_id).str(&key).str(&period);
                tx.put(
                    &tables::PLAN_CAPS,
                    &k,
                    &CapRec {
                        cap_raw_units: units,
                    },
                )?;
                out.push(PlanCap {
                    event_key: key,
                    period,
                    cap_raw_units: units.to_f64(),
                });
            }
            Ok(out)
        })
    }
}
