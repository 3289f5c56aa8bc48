//! The billing catalogue: metered event types, capabilities, plans, grants and caps (30 §3).
//!
//! This file holds the records and tables and the reads every request makes (entitlements,
//! caps, prices); `seed.rs` the seeded defaults, `admin.rs` the platform-admin operations on the
//! catalogue (30 §8.3) and `parse.rs` their request bodies.

mod admin;
mod parse;
mod seed;

pub use admin::{
    create_metered_event, create_plan, set_plan_capabilities, set_plan_caps, update_metered_event,
    update_plan,
};
pub use parse::{
    MeteredEventPatch, NewMeteredEvent, NewPlan, PlanPatch, capabilities_from_json, caps_from_json,
};
pub(crate) use seed::seed;
pub use seed::{CAPABILITIES, SEEDED_CAPS, SEEDED_EVENTS, SEEDED_PLANS};

use crate::Bespin;
use crate::error::Result;
use crate::money::Amount;
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, key};
use crate::time::Timestamp;
use serde::{Deserialize, Serialize};

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
    /// The plan capability a tenant needs to report this event over `POST /v1/usage/events`
    /// (none: any plan). Added in version 2.
    pub capability: Option<String>,
}

/// Version 1 of [`MeteredEventRec`], before the capability.
#[derive(Deserialize)]
struct MeteredEventRecV1 {
    display_name: String,
    description: Option<String>,
    unit_name: String,
    credits_per_unit: Amount,
    list_price_per_credit: Amount,
    billable: bool,
    active: bool,
    created_at: Timestamp,
    updated_at: Timestamp,
}

impl Record for MeteredEventRec {
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self> {
        if version != 1 {
            return Err(crate::error::Error::Storage(format!(
                "metered event record version {version} is unknown"
            )));
        }
        let v: MeteredEventRecV1 = postcard::from_bytes(body)
            .map_err(|e| crate::error::Error::Storage(format!("decode: {e}")))?;
        Ok(MeteredEventRec {
            display_name: v.display_name,
            description: v.description,
            unit_name: v.unit_name,
            credits_per_unit: v.credits_per_unit,
            list_price_per_credit: v.list_price_per_credit,
            billable: v.billable,
            active: v.active,
            created_at: v.created_at,
            updated_at: v.updated_at,
            capability: None,
        })
    }
}

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
    /// The plan capability a tenant needs to report this event over `POST /v1/usage/events`;
    /// absent when any plan may (the default).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub capability: Option<String>,
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
        capability: r.capability.clone(),
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

key! {
    /// Global: (event key).
    pub(crate) struct EventKey<'a> { event_key: str }
    /// Global: (plan).
    pub(crate) struct PlanKey<'a> { plan_id: str }
    /// Global: (plan, capability).
    pub(crate) struct GrantKey<'a> { plan_id: str, capability_key: str }
    /// Global: (plan, event key, period).
    pub(crate) struct CapKey<'a> { plan_id: str, event_key: str, period: str }
}

/// Global: (event key) → metered event type.
pub(crate) const METERED_EVENTS: Table<EventKey<'static>, MeteredEventRec> =
    Table::new("metered_events").memo();
/// Global: (plan) → plan.
pub(crate) const PLANS: Table<PlanKey<'static>, PlanRec> = Table::new("plans").memo();
/// Global: (plan) → requests per minute: the plan's per-tenant request rate limit, if any.
/// (A table of its own so that stored plan records keep their layout.)
pub(crate) const PLAN_RATE_LIMITS: Table<PlanKey<'static>, u64> =
    Table::new("plan_rate_limits").memo();
/// Global: (plan, capability) → grant.
pub(crate) const PLAN_CAPABILITIES: Table<GrantKey<'static>, ()> =
    Table::new("plan_capabilities").memo();
/// Global: (plan, event key, period) → cap.
pub(crate) const PLAN_CAPS: Table<CapKey<'static>, CapRec> = Table::new("plan_caps").memo();

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[
    &METERED_EVENTS,
    &PLANS,
    &PLAN_RATE_LIMITS,
    &PLAN_CAPABILITIES,
    &PLAN_CAPS,
];

/// The request rate limit of the tenant's current plan (`None`: no limit, or no subscription).
pub(crate) fn tenant_rate_limit(r: &impl Reader, tenant_id: &str) -> Result<Option<u32>> {
    // Usually no plan has a limit: one probe of the small table answers for every tenant, on
    // every request, without reading the tenant's subscription.
    let mut any = false;
    r.scan(
        &PLAN_RATE_LIMITS,
        &PLAN_RATE_LIMITS.prefix(),
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
    Ok(r.get(&PLAN_RATE_LIMITS, &PlanKey::new(plan_id))?
        .and_then(|n| u32::try_from(n).ok()))
}

/// The stored event type, if any (active or not).
pub(crate) fn event(r: &impl Reader, key: &str) -> Result<Option<MeteredEventRec>> {
    r.get(&METERED_EVENTS, &EventKey::new(key))
}

/// The stored plan, if any.
pub(crate) fn plan(r: &impl Reader, id: &str) -> Result<Option<PlanRec>> {
    r.get(&PLANS, &PlanKey::new(id))
}

/// Whether `plan_id` grants `capability`.
pub(crate) fn grants(r: &impl Reader, plan_id: &str, capability: &str) -> Result<bool> {
    r.contains(&PLAN_CAPABILITIES, &GrantKey::new(plan_id, capability))
}

/// The plan's granted capability keys, sorted ascending.
pub(crate) fn capabilities_of(r: &impl Reader, plan_id: &str) -> Result<Vec<String>> {
    let mut out = Vec::new();
    let prefix = PLAN_CAPABILITIES.prefix().str(plan_id);
    r.scan(&PLAN_CAPABILITIES, &prefix, Order::Asc, |k, ()| {
        if let Some(k) = GrantKey::decode(k) {
            out.push(k.capability_key.into_owned());
        }
        Ok(Flow::Continue)
    })?;
    Ok(out)
}

/// The plan's monthly cap for `event_key`, if any. Remembered for a write batch
/// ([`crate::store::remember`]).
pub(crate) fn monthly_cap(
    r: &impl Reader,
    plan_id: &str,
    event_key: &str,
) -> Result<Option<Amount>> {
    crate::store::remember(r, &["monthly_cap", plan_id, event_key], || {
        Ok(
            r.get(&PLAN_CAPS, &CapKey::new(plan_id, event_key, "monthly"))?
                .map(|c| c.cap_raw_units),
        )
    })
}

fn all_events(r: &impl Reader, only_active: bool) -> Result<Vec<MeteredEvent>> {
    let mut out = Vec::new();
    r.scan(
        &METERED_EVENTS,
        &METERED_EVENTS.prefix(),
        Order::Asc,
        |k, rec: MeteredEventRec| {
            if (!only_active || rec.active)
                && let Some(k) = EventKey::decode(k)
            {
                out.push(event_view(&k.event_key, &rec));
            }
            Ok(Flow::Continue)
        },
    )?;
    Ok(out)
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

    /// Every plan, sorted by id (platform admin).
    pub fn admin_plans(&self) -> Result<Vec<Plan>> {
        self.read(|r, _| {
            let mut out = Vec::new();
            r.scan(&PLANS, &PLANS.prefix(), Order::Asc, |k, rec: PlanRec| {
                if let Some(k) = PlanKey::decode(k) {
                    out.push((k.plan_id.into_owned(), rec));
                }
                Ok(Flow::Continue)
            })?;
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
}
