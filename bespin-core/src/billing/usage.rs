//! The tenant-facing billing reports: plan, usage for a period, usage per day of a period, and
//! the usage ledger (30 §8.2). Any role may read them; they are not gated and not metered.

use super::{catalog, subscriptions};
use crate::Bespin;
use crate::auth::Principal;
use crate::error::{Error, Result};
use crate::metering::{DAY_ROLLUPS, DayRollupKey, PERIOD_ROLLUPS, PeriodRollupKey, USAGE_EVENTS};
use crate::metering::{RollupRec, UsageEventRec};
use crate::money::Amount;
use crate::store::{Flow, Order, Reader};
use crate::time::Period;
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

/// One event key's usage on one day.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DayItem {
    /// The event key.
    pub event_key: String,
    /// Raw units used that day.
    pub raw_units: f64,
    /// Credits used that day (at the weights in force when each event was recorded).
    pub credits: f64,
}

/// One day's usage.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageDay {
    /// The UTC date, `YYYY-MM-DD`.
    pub date: String,
    /// Credits used that day, over all event keys.
    pub credits: f64,
    /// Per event key, sorted by key; only keys with usage.
    pub breakdown: Vec<DayItem>,
}

/// `GET /v1/billing/usage/daily`: a period's usage per UTC day and event key.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct UsageByDay {
    /// First day of the period.
    pub period_start: String,
    /// First day of the next period.
    pub period_end: String,
    /// Days with usage, oldest first (at most 31).
    pub days: Vec<UsageDay>,
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
            let prefix = PERIOD_ROLLUPS
                .prefix()
                .tenant(caller.tenant_id())
                .date(period.start());
            let mut rows = Vec::new();
            r.scan(
                &PERIOD_ROLLUPS,
                &prefix,
                Order::Asc,
                |k, roll: RollupRec| {
                    if let Some(k) = PeriodRollupKey::decode(k) {
                        rows.push((k.event_key.into_owned(), roll));
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

    /// Usage of `period` (the current one when `None`) per UTC day and event key, from the day
    /// rollups: at most 31 × event keys rows, however many events the period holds. Sums are
    /// exact (decimal) until written as JSON numbers, so a period's days add up to its
    /// [`Bespin::billing_usage`] breakdown.
    pub fn billing_usage_by_day(
        &self,
        caller: &Principal,
        period: Option<Period>,
    ) -> Result<UsageByDay> {
        self.read(|r, ctx| {
            let period = period.unwrap_or_else(|| ctx.now.period());
            let t = caller.tenant_id();
            let prefix = DAY_ROLLUPS.prefix().tenant(t);
            let from = prefix.clone().date(period.start());
            let to = prefix.clone().date(period.end());
            let mut days: Vec<(String, Amount, Vec<DayItem>)> = Vec::new();
            r.scan_range(
                &DAY_ROLLUPS,
                &prefix,
                Some(&from),
                Some(&to),
                Order::Asc,
                &mut |k, roll: RollupRec| {
                    let Some(k) = DayRollupKey::decode(k) else {
                        return Ok(Flow::Continue);
                    };
                    let (date, event_key) = (k.date.to_string(), k.event_key.into_owned());
                    if days.last().is_none_or(|(d, _, _)| *d != date) {
                        days.push((date, Amount::ZERO, Vec::new()));
                    }
                    if let Some((_, total, items)) = days.last_mut() {
                        *total += roll.credits;
                        items.push(DayItem {
                            event_key,
                            raw_units: roll.raw_units.to_f64(),
                            credits: roll.credits.to_f64(),
                        });
                    }
                    Ok(Flow::Continue)
                },
            )?;
            Ok(UsageByDay {
                period_start: period.start().to_string(),
                period_end: period.end().to_string(),
                days: days
                    .into_iter()
                    .map(|(date, credits, breakdown)| UsageDay {
                        date,
                        credits: credits.to_f64(),
                        breakdown,
                    })
                    .collect(),
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
            let prefix = USAGE_EVENTS.prefix().tenant(t);
            let from = prefix.clone().ts(period.start().start());
            let to = prefix.clone().ts(period.end().start());
            // The events of rows of their own (Bespin's metering, events reported before
            // chunks) and of chunks (reported ones), each newest first, merged.
            let mut found = Vec::new();
            r.scan_range(
                &USAGE_EVENTS,
                &prefix,
                Some(&from),
                Some(&to),
                Order::Desc,
                &mut |k, e: UsageEventRec| {
                    let seq = crate::metering::UsageKey::decode(k).map_or(0, |k| k.seq);
                    found.push((e.created_at, seq, e));
                    Ok(if found.len() >= limit {
                        Flow::Stop
                    } else {
                        Flow::Continue
                    })
                },
            )?;
            let (start, end) = (period.start().start(), period.end().start());
            found.extend(crate::metering::chunk::newest(r, t, start, end, limit)?);
            found.sort_by_key(|f| std::cmp::Reverse((f.0, f.1)));
            found.truncate(limit);
            let items = found
                .into_iter()
                .map(|(_, _, e)| LedgerItem {
                    event_key: e.event_key,
                    raw_units: e.raw_units.to_f64(),
                    credits: e.credits.to_f64(),
                    list_cost_estimate: e.list_cost_estimate.to_f64(),
                    tool_name: e.tool_name,
                    request_id: e.request_id,
                    created_at: e.created_at.to_rfc3339(),
                })
                .collect();
            Ok(Ledger {
                period_start: period.start().to_string(),
                items,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use crate::testutil::{db, kpi, tenant};
    use crate::time::{Date, Period, Timestamp};

    #[test]
    fn usage_by_day_adds_up_to_the_period_and_stays_in_its_tenant() {
        let (db, clock) = db();
        let (admin, member) = tenant(&db);
        let (other, _) = tenant(&db);
        // 2026-01-31: the tenants (their KPI definitions); then two KPIs on 02-01, one ingest on
        // 02-03 (next period).
        kpi(&db, &other, "theirs", &[]);
        clock.advance(Timestamp::DAY_MICROS);
        kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-01", 1.0), ("2026-01-02", 2.0)],
        );
        kpi(&db, &admin, "Churn", &[]);
        clock.advance(2 * Timestamp::DAY_MICROS);
        kpi(&db, &admin, "Later", &[("2026-01-01", 1.0)]);

        let feb = db.billing_usage_by_day(&member, None).expect("by day");
        assert_eq!(
            (feb.period_start.as_str(), feb.period_end.as_str()),
            ("2026-02-01", "2026-03-01")
        );
        let dates: Vec<&str> = feb.days.iter().map(|d| d.date.as_str()).collect();
        assert_eq!(dates, ["2026-02-01", "2026-02-03"]);
        let keys: Vec<(&str, f64)> = feb.days[0]
            .breakdown
            .iter()
            .map(|i| (i.event_key.as_str(), i.raw_units))
            .collect();
        assert_eq!(
            keys,
            [
                ("kpi_definition_created", 2.0),
                ("kpi_points_ingested", 2.0)
            ]
        );
        // Every event key's days add up to its period breakdown, and the day totals to the
        // period's credits.
        let period = db.billing_usage(&member, None).expect("usage");
        for b in &period.breakdown {
            let sum: f64 = feb
                .days
                .iter()
                .flat_map(|d| &d.breakdown)
                .filter(|i| i.event_key == b.event_key)
                .map(|i| i.credits)
                .sum();
            assert!((sum - b.credits).abs() < 1e-9, "{}", b.event_key);
        }
        let total: f64 = feb.days.iter().map(|d| d.credits).sum();
        assert!((total - period.credits.used).abs() < 1e-9);

        // January holds only the tenant's creation day; the other tenant's KPI is not there.
        let jan = Period::of(Date::parse("2026-01-15").expect("date"));
        let jan = db.billing_usage_by_day(&admin, Some(jan)).expect("january");
        assert!(jan.days.iter().all(|d| d.date == "2026-01-31"));
        assert!(
            jan.days
                .iter()
                .flat_map(|d| &d.breakdown)
                .all(|i| i.event_key != "kpi_definition_created")
        );
    }
}
