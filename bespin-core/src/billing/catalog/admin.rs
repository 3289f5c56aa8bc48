//! The platform-admin operations on the catalogue (30 §8.3), each an operation over an open
//! transaction (so several can share one), with the `Bespin` methods that run one.

use super::{
    CAPABILITIES, CapKey, CapRec, EventKey, GrantKey, METERED_EVENTS, MeteredEvent,
    MeteredEventPatch, MeteredEventRec, NewMeteredEvent, NewPlan, PLAN_CAPABILITIES, PLAN_CAPS,
    PLAN_RATE_LIMITS, PLANS, Plan, PlanCap, PlanKey, PlanPatch, PlanRec, event, event_view, plan,
    plan_rate_limit, plan_view,
};
use crate::error::{Error, Result};
use crate::money::Amount;
use crate::store::WriteTx;
use crate::{Bespin, Ctx};

fn plan_not_found(id: &str) -> Error {
    Error::NotFound(format!("Plan '{id}' not found"))
}

fn set_plan_rate_limit(tx: &mut WriteTx, plan_id: &str, rpm: Option<u32>) -> Result<()> {
    match rpm {
        Some(n) => tx.put(&PLAN_RATE_LIMITS, &PlanKey::new(plan_id), &u64::from(n)),
        None => tx
            .delete(&PLAN_RATE_LIMITS, &PlanKey::new(plan_id))
            .map(|_| ()),
    }
}

/// `BadRequest` unless `c` is one of the catalogue's capabilities (the message of
/// [`set_plan_capabilities`]).
fn known_capability(c: &str) -> Result<()> {
    if CAPABILITIES.iter().any(|(k, _)| *k == c) {
        Ok(())
    } else {
        Err(Error::BadRequest(format!("Capability '{c}' not found")))
    }
}

/// Adds an event type (platform admin). Errors: `Conflict` if the key exists, `BadRequest` for
/// a capability that is not one of the catalogue's.
pub fn create_metered_event(
    tx: &mut WriteTx,
    ctx: &Ctx,
    req: NewMeteredEvent,
) -> Result<MeteredEvent> {
    if let Some(c) = &req.capability {
        known_capability(c)?;
    }
    let rec = MeteredEventRec {
        capability: req.capability,
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
    if !tx.insert_new(&METERED_EVENTS, &EventKey::new(&req.event_key), &rec)? {
        return Err(Error::Conflict(format!(
            "Event type '{}' already exists",
            req.event_key
        )));
    }
    Ok(event_view(&req.event_key, &rec))
}

/// Changes an event type (platform admin); a new weight or price applies to later
/// emissions only. Errors: `NotFound`.
pub fn update_metered_event(
    tx: &mut WriteTx,
    ctx: &Ctx,
    key: &str,
    patch: MeteredEventPatch,
) -> Result<MeteredEvent> {
    let mut rec =
        event(tx, key)?.ok_or_else(|| Error::NotFound(format!("Event type '{key}' not found")))?;
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
    if let Some(v) = patch.capability {
        // An empty string clears the mapping (null leaves it, as for every field here).
        if !v.is_empty() {
            known_capability(&v)?;
        }
        rec.capability = Some(v).filter(|v| !v.is_empty());
    }
    rec.updated_at = ctx.now;
    tx.put(&METERED_EVENTS, &EventKey::new(key), &rec)?;
    Ok(event_view(key, &rec))
}

/// Adds a plan with no capabilities and no caps (platform admin). Errors: `Conflict` if the
/// id exists.
pub fn create_plan(tx: &mut WriteTx, ctx: &Ctx, req: NewPlan) -> Result<Plan> {
    let rec = PlanRec {
        name: req.name,
        included_credits: req.included_credits,
        overage_price_per_credit: req.overage_price_per_credit,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    if !tx.insert_new(&PLANS, &PlanKey::new(&req.plan_id), &rec)? {
        return Err(Error::Conflict(format!(
            "Plan '{}' already exists",
            req.plan_id
        )));
    }
    set_plan_rate_limit(tx, &req.plan_id, req.requests_per_minute)?;
    Ok(plan_view(&req.plan_id, &rec, req.requests_per_minute))
}

/// Changes a plan (platform admin); a new allowance applies at once. Errors: `NotFound`.
pub fn update_plan(tx: &mut WriteTx, ctx: &Ctx, plan_id: &str, patch: PlanPatch) -> Result<Plan> {
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
    tx.put(&PLANS, &PlanKey::new(plan_id), &rec)?;
    if let Some(rpm) = patch.requests_per_minute {
        set_plan_rate_limit(tx, plan_id, rpm)?;
    }
    Ok(plan_view(plan_id, &rec, plan_rate_limit(tx, plan_id)?))
}

/// Replaces a plan's capability grants (platform admin); returns the list as given.
/// Errors: `NotFound` for the plan, `BadRequest` for a key that is not one of the 13
/// capabilities (nothing changes).
pub fn set_plan_capabilities(
    tx: &mut WriteTx,
    _ctx: &Ctx,
    plan_id: &str,
    caps: Vec<String>,
) -> Result<Vec<String>> {
    plan(tx, plan_id)?.ok_or_else(|| plan_not_found(plan_id))?;
    for c in &caps {
        known_capability(c)?;
    }
    tx.delete_prefix(&PLAN_CAPABILITIES, &PLAN_CAPABILITIES.prefix().str(plan_id))?;
    for c in &caps {
        tx.put(&PLAN_CAPABILITIES, &GrantKey::new(plan_id, c), &())?;
    }
    Ok(caps)
}

/// Replaces a plan's caps (platform admin); returns them in request order. Errors:
/// `NotFound` for the plan, `BadRequest` for an event key not in the catalogue (nothing
/// changes).
pub fn set_plan_caps(
    tx: &mut WriteTx,
    _ctx: &Ctx,
    plan_id: &str,
    caps: Vec<(String, String, Amount)>,
) -> Result<Vec<PlanCap>> {
    plan(tx, plan_id)?.ok_or_else(|| plan_not_found(plan_id))?;
    for (key, _, _) in &caps {
        if event(tx, key)?.is_none() {
            return Err(Error::BadRequest(format!("Event type '{key}' not found")));
        }
    }
    tx.delete_prefix(&PLAN_CAPS, &PLAN_CAPS.prefix().str(plan_id))?;
    let mut out = Vec::new();
    for (key, period, units) in caps {
        tx.put(
            &PLAN_CAPS,
            &CapKey::new(plan_id, &key, &period),
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
}

impl Bespin {
    /// Adds an event type. Errors: `Conflict` if the key exists.
    pub fn admin_create_metered_event(&self, req: NewMeteredEvent) -> Result<MeteredEvent> {
        self.write(|tx, ctx| create_metered_event(tx, ctx, req))
    }

    /// Changes an event type; a new weight or price applies to later emissions only.
    /// Errors: `NotFound`.
    pub fn admin_update_metered_event(
        &self,
        key: &str,
        patch: MeteredEventPatch,
    ) -> Result<MeteredEvent> {
        self.write(|tx, ctx| update_metered_event(tx, ctx, key, patch))
    }

    /// Adds a plan with no capabilities and no caps. Errors: `Conflict` if the id exists.
    pub fn admin_create_plan(&self, req: NewPlan) -> Result<Plan> {
        self.write(|tx, ctx| create_plan(tx, ctx, req))
    }

    /// Changes a plan; a new allowance applies at once. Errors: `NotFound`.
    pub fn admin_update_plan(&self, plan_id: &str, patch: PlanPatch) -> Result<Plan> {
        self.write(|tx, ctx| update_plan(tx, ctx, plan_id, patch))
    }

    /// Replaces a plan's capability grants; returns the list as given. Errors: `NotFound` for
    /// the plan, `BadRequest` for a key that is not one of the 13 capabilities (nothing changes).
    pub fn admin_set_plan_capabilities(
        &self,
        plan_id: &str,
        caps: Vec<String>,
    ) -> Result<Vec<String>> {
        self.write(|tx, ctx| set_plan_capabilities(tx, ctx, plan_id, caps))
    }

    /// Replaces a plan's caps; returns them in request order. Errors: `NotFound` for the plan,
    /// `BadRequest` for an event key not in the catalogue (nothing changes).
    pub fn admin_set_plan_caps(
        &self,
        plan_id: &str,
        caps: Vec<(String, String, Amount)>,
    ) -> Result<Vec<PlanCap>> {
        self.write(|tx, ctx| set_plan_caps(tx, ctx, plan_id, caps))
    }
}
