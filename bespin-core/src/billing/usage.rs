//! The tenant-facing billing reports: plan, usage for a period, and the usage ledger
//! (30 §8.2). Any role may read them; they are not gated and not metered.

use super::{catalog, subscriptions};
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::metering::{RollupRec, UsageEventRec};
use crate::money::Amount;
use crate::store::{Flow, Key, Order, Reader, tables};
use crate::time::Period;
use crate::{Bespin, store};
use serde::Serialize;

/// `GET /v1/billing/plan`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PlanInfo {
    /// The tenant.
    pub tenant_id: String,
    /// The subscribed plan.
    pub plan_id: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Stored period start (informational).
    pub period_start: String,
    /// Stored period end (informational).
    pub period_end: String,
    /// The plan.
    pub plan: catalog::Plan,
    /// Granted capability keys, sorted.
    pub capabilities: Vec<String>,
}

/// Credit totals of a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Credits {
    /// The plan's allowance.
    pub included: i64,
    /// Credits used.
    pub used: f64,
    /// `max(0, included − used)`.
    pub remaining: f64,
    /// `max(0, used − included)`.
    pub overage_credits: f64,
    /// `overage_credits × overage price`.
    pub estimated_overage_cost: f64,
    /// Sum of list cost estimates.
    pub estimated_list_cost: f64,
}

/// One event key's usage in a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BreakdownItem {
    /// The event key.
    pub event_key: String,
    /// Its current unit name (`unit` if the type no longer exists).
    pub unit_name: String,
    /// Raw units used.
    pub raw_units: f64,
    /// Credits used.
    pub credits: f64,
    /// List cost estimate.
    pub list_cost_estimate: f64,
}

/// `GET /v1/billing/usage`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Usage {
    /// First day of the period.
    pub period_start: String,
    /// First day of the next period.
    pub period_end: String,
    /// The tenant's current plan.
    pub plan: catalog::Plan,
    /// Totals.
    pub credits: Credits,
    /// Per event key, sorted by key; only keys with usage.
    pub breakdown: Vec<BreakdownItem>,
}

/// One usage event in the ledger.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LedgerItem {
    /// The event key.
    pub event_key: String,
    /// Raw units.
    pub raw_units: f64,
    /// Credits at the weight in force at emission.
    pub credits: f64,
    /// List cost at the price in force at emission.
    pub list_cost_estimate: f64,
    /// The label of the emitting endpoint.
    pub tool_name: Option<String>,
    /// The request the event belongs to.
    pub request_id: String,
    /// Emission instant (RFC 3339, UTC).
    pub created_at: String,
}

/// `GET /v1/billing/ledger`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Ledger {
    /// First day of the period.
    pub period_start: String,
    /// Newest first.
    pub items: Vec<LedgerItem>,
}

fn current_plan(
    r: &impl Reader,
    tenant_id: &str,
) -> Result<(subscriptions::SubscriptionRec, catalog::Plan)> {
    let sub = subscriptions::get(r, tenant_id)?
        .ok_or_else(|| Error::NotFound("No subscription found for tenant".into()))?;
    let plan = catalog::plan(r, &sub.plan_id)?.ok_or_else(|| Error::PlanMissing {
        plan_id: sub.plan_id.clone(),
    })?;
    let view = catalog::plan_view(
        &sub.plan_id,
        &plan,
        catalog::plan_rate_limit(r, &sub.plan_id)?,
    );
    Ok((sub, view))
}

impl Bespin {
    /// The caller's subscription with its plan and granted capabilities.
    /// Errors: `NotFound` without a subscription.
    pub fn billing_plan(&self, caller: &Principal) -> Result<PlanInfo> {
        self.read(|r, _| {
            let (sub, plan) = current_plan(r, caller.tenant_id())?;
            Ok(PlanInfo {
                tenant_id: caller.tenant_id().to_owned(),
                capabilities: catalog::capabilities_of(r, &sub.plan_id)?,
                plan_id: sub.plan_id,
                status: sub.status,
                period_start: sub.period_start.to_string(),
                period_end: sub.period_end.to_string(),
                plan,
            })
        })
    }

    /// Usage of `period` (the current one when `None`), with the tenant's current plan.
    pub fn billing_usage(&self, caller: &Principal, period: Option<Period>) -> Result<Usage> {
        self.read(|r, ctx| {
            let period = period.unwrap_or_else(|| ctx.now.period());
            let (_, plan) = current_plan(r, caller.tenant_id())?;
            let overage_price = catalog::plan(r, &plan.plan_id)?
                .map(|p| p.overage_price_per_credit)
                .unwrap_or_default();
            let mut breakdown = Vec::new();
            let (mut used, mut list) = (Amount::ZERO, Amount::ZERO);
            let prefix = Key::new().str(caller.tenant_id()).part(period.start());
            let plen = prefix.as_bytes().len();
            let mut rows = Vec::new();
            r.scan(
                &tables::PERIOD_ROLLUPS,
                &prefix,
                Order::Asc,
                |k, roll: RollupRec| {
                    if let Some((key, _)) = store::read_str(k, plen) {
                        rows.push((key, roll));
                    }
                    Ok(Flow::Continue)
                },
            )?;
            for (key, roll) in rows {
                used += roll.credits;
                list += roll.list_cost_estimate;
                let unit_name = catalog::event(r, &key)?
                    .map(|e| e.unit_name)
                    .unwrap_or_else(|| "unit".into());
                breakdown.push(BreakdownItem {
                    event_key: key,
                    unit_name,
                    raw_units: roll.raw_units.to_f64(),
                    credits: roll.credits.to_f64(),
                    list_cost_estimate: roll.list_cost_estimate.to_f64(),
                });
            }
            let included = Amount::from_int(plan.included_credits);
            let overage = (used - included).clamp_zero();
            Ok(Usage {
                period_start: period.start().to_string(),
                period_end: period.end().to_string(),
                credits: Credits {
                    included: plan.included_credits,
                    used: used.to_f64(),
                    remaining: (included - used).clamp_zero().to_f64(),
                    overage_credits: overage.to_f64(),
                    estimated_overage_cost: (overage * overage_price).to_f64(),
                    estimated_list_cost: list.to_f64(),
                },
                plan,
                breakdown,
            })
        })
    }

    /// The tenant's usage events of `period` (current when `None`), newest first, at most
    /// `limit` (clamped to 1..=1000).
    pub fn billing_ledger(
        &self,
        caller: &Principal,
        period: Option<Period>,
        limit: i64,
    ) -> Result<Ledger> {
        self.read(|r, ctx| {
            let period = period.unwrap_or_else(|| ctx.now.period());
            let limit = usize::try_from(limit.clamp(1, 1000)).unwrap_or(1000);
            let t = caller.tenant_id();
            let prefix = Key::new().str(t);
            let from = Key::new().str(t).ts(period.start().start());
            let to = Key::new().str(t).ts(period.end().start());
            let mut items = Vec::new();
            r.scan_range(
                &tables::USAGE_EVENTS,
                &prefix,
                Some(&from),
                Some(&to),
                Order::Desc,
                &mut |_, e: UsageEventRec| {
                    items.push(LedgerItem {
                        event_key: e.event_key,
                        raw_units: e.raw_units.to_f64(),
                        credits: e.credits.to_f64(),
                        list_cost_estimate: e.list_cost_estimate.to_f64(),
                        tool_name: e.tool_name,
                        request_id: e.request_id,
                        created_at: e.created_at.to_rfc3339(),
                    });
                    Ok(if items.len() >= limit {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    })
                },
            )?;
            Ok(Ledger {
                period_start: period.start().to_string(),
                items,
            })
        })
    }
}
