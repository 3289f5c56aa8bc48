//! Metering: the billing quota (credits and caps), usage events and period rollups, and the
//! daily-limit layer, as one reusable piece.
//!
//! An endpoint describes what it consumes with a [`Meter`] (event key, raw units, tool label,
//! optional daily activity) and, inside its write transaction:
//!
//! 1. calls [`Meter::check`] — credit allowance, then the plan's monthly cap, then the daily
//!    limit, refusing with the contract's 429 bodies — and gets a [`Permit`];
//! 2. does its own work;
//! 3. calls [`Permit::record`], which writes the usage event (credits at the weight in force
//!    now), adds it to the period rollup and, if the meter has a daily activity, to today's
//!    counter.
//!
//! Because all of it happens in the operation's one transaction, concurrent requests can never
//! jointly exceed an allowance (they are serialised by the single writer), and a request that
//! fails after step 1 leaves no trace.

use crate::auth::Principal;
use crate::billing::{catalog, subscriptions};
use crate::error::{Error, QuotaExceeded, Result};
use crate::limits::{self, Activity};
use crate::money::Amount;
use crate::store::{Flow, Key, Order, Reader, Record, Table, WriteTx, tables};
use crate::time::{Date, Period, Timestamp};
use crate::{Ctx, ids};
use serde::{Deserialize, Serialize};

/// A stored usage event.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct UsageEventRec {
    pub user_id: String,
    pub event_key: String,
    pub raw_units: Amount,
    pub credits: Amount,
    pub list_cost_estimate: Amount,
    pub tool_name: Option<String>,
    pub request_id: String,
    pub created_at: Timestamp,
}
impl Record for UsageEventRec {}

/// A stored period rollup for (tenant, period, event key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollupRec {
    pub raw_units: Amount,
    pub credits: Amount,
    pub list_cost_estimate: Amount,
    pub first_used: Timestamp,
}
impl Record for RollupRec {}

/// What one successful operation consumes.
#[derive(Debug, Clone, Copy)]
pub struct Meter<'a> {
    /// The metered event key.
    pub event_key: &'a str,
    /// Raw units requested.
    pub units: u64,
    /// The label stored on the usage event.
    pub tool_name: Option<&'a str>,
    /// The daily activity also checked and counted, if any.
    pub daily: Option<Activity>,
}

impl<'a> Meter<'a> {
    /// One unit of `event_key`, labelled `tool_name`, with no daily activity.
    pub fn one(event_key: &'a str, tool_name: &'a str) -> Self {
        Meter {
            event_key,
            units: 1,
            tool_name: Some(tool_name),
            daily: None,
        }
    }

    /// The same meter, also checked against and counted in a daily limit.
    pub fn with_daily(mut self, a: Activity) -> Self {
        self.daily = Some(a);
        self
    }

    /// The same meter with `units` raw units.
    pub fn units(mut self, units: u64) -> Self {
        self.units = units;
        self
    }

    /// Runs the quota checks for this meter in the caller's tenant (credits, then cap, then
    /// daily limit). Errors: `PlanMissing`, `UnknownEventType`, `QuotaExceeded`,
    /// `DailyQuotaExceeded`, and the subscription errors.
    pub(crate) fn check(self, r: &impl Reader, ctx: &Ctx, tenant_id: &str) -> Result<Permit<'a>> {
        let price = check_quota(r, ctx, tenant_id, self.event_key, self.units)?;
        if let Some(a) = self.daily {
            limits::check(
                r,
                ctx,
                tenant_id,
                a,
                i64::try_from(self.units).unwrap_or(i64::MAX),
            )?;
        }
        Ok(Permit { meter: self, price })
    }
}

impl<'a> Meter<'a> {
    /// [`Meter::check`] inside an open write transaction (for callers composing operations
    /// with [`crate::Bespin::transaction`]).
    pub fn check_in(self, tx: &WriteTx, ctx: &Ctx, tenant_id: &str) -> Result<Permit<'a>> {
        self.check(tx, ctx, tenant_id)
    }
}

/// The weight and price of an event type at the moment of a check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    pub credits_per_unit: Amount,
    pub list_price_per_credit: Amount,
}

/// Proof that a [`Meter`] passed its checks; recording it writes the usage.
#[derive(Debug, Clone, Copy)]
#[must_use = "a permit does nothing until recorded"]
pub struct Permit<'a> {
    meter: Meter<'a>,
    price: Price,
}

impl Permit<'_> {
    /// Writes the usage event (for `caller`, under `request_id`), the period rollup and the
    /// daily counter.
    pub fn record(
        self,
        tx: &mut WriteTx,
        ctx: &Ctx,
        caller: &Principal,
        request_id: &str,
    ) -> Result<()> {
        emit(
            tx,
            ctx,
            caller,
            self.meter.event_key,
            self.meter.units,
            self.price,
            self.meter.tool_name,
            request_id,
        )?;
        if let Some(a) = self.meter.daily {
            limits::consume(
                tx,
                ctx,
                caller.tenant_id(),
                a,
                i64::try_from(self.meter.units).unwrap_or(i64::MAX),
            )?;
        }
        Ok(())
    }

    /// Records with a fresh request id (for endpoints whose usage id is not returned).
    pub fn record_fresh(self, tx: &mut WriteTx, ctx: &Ctx, caller: &Principal) -> Result<()> {
        self.record(tx, ctx, caller, &ids::new_id())
    }
}

/// Credits used by the tenant in `period`, over all event types.
pub(crate) fn used_credits(r: &impl Reader, tenant_id: &str, period: Period) -> Result<Amount> {
    let mut total = Amount::ZERO;
    r.scan(
        &tables::PERIOD_ROLLUPS,
        &Key::new().str(tenant_id).part(period.start()),
        Order::Asc,
        |_, roll: RollupRec| {
            total += roll.credits;
            Ok(Flow::Continue)
        },
    )?;
    Ok(total)
}

pub(crate) fn rollup_key(tenant_id: &str, period: Period, event_key: &str) -> Key {
    Key::new()
        .str(tenant_id)
        .part(period.start())
        .str(event_key)
}

/// Raw units of `event_key` used by the tenant in `period`.
pub(crate) fn used_units(
    r: &impl Reader,
    tenant_id: &str,
    period: Period,
    event_key: &str,
) -> Result<Amount> {
    Ok(r.get(
        &tables::PERIOD_ROLLUPS,
        &rollup_key(tenant_id, period, event_key),
    )?
    .map(|x| x.raw_units)
    .unwrap_or_default())
}

/// The billing quota of 30 §6.2 for `units` raw units of `event_key` in the current period.
pub(crate) fn check_quota(
    r: &impl Reader,
    ctx: &Ctx,
    tenant_id: &str,
    event_key: &str,
    units: u64,
) -> Result<Price> {
    let sub = subscriptions::get(r, tenant_id)?.ok_or(Error::NoSubscription)?;
    if sub.status != "active" {
        return Err(Error::SubscriptionSuspended { status: sub.status });
    }
    let plan = catalog::plan(r, &sub.plan_id)?.ok_or_else(|| Error::PlanMissing {
        plan_id: sub.plan_id.clone(),
    })?;
    let event = catalog::event(r, event_key)?
        .filter(|e| e.active)
        .ok_or_else(|| Error::UnknownEventType {
            event_key: event_key.to_owned(),
        })?;
    let period = ctx.now.period();
    let requested_units = Amount::from_int(i64::try_from(units).unwrap_or(i64::MAX));
    let requested = requested_units * event.credits_per_unit;
    let used = used_credits(r, tenant_id, period)?;
    let refusal = |cap: Option<Amount>, used_units: Option<Amount>| {
        Error::QuotaExceeded(Box::new(QuotaExceeded {
            error: "quota_exceeded",
            period_start: period.start().to_string(),
            event_key: event_key.to_owned(),
            limit_credits: plan.included_credits,
            used_credits: used.to_f64(),
            requested_credits: requested.to_f64(),
            cap_raw_units: cap.map(Amount::to_f64),
            used_raw_units: used_units.map(Amount::to_f64),
            requested_raw_units: units,
        }))
    };
    if used + requested > Amount::from_int(plan.included_credits) {
        return Err(refusal(None, None));
    }
    if let Some(cap) = catalog::monthly_cap(r, &sub.plan_id, event_key)? {
        let used_units = used_units(r, tenant_id, period, event_key)?;
        if used_units + requested_units > cap {
            return Err(refusal(Some(cap), Some(used_units)));
        }
    }
    Ok(Price {
        credits_per_unit: event.credits_per_unit,
        list_price_per_credit: event.list_price_per_credit,
    })
}

impl<'a> Meter<'a> {
    /// How many single units of this meter the tenant may still use now — the notification
    /// allowance of 30 §6.3: `min(credits left / weight, cap left, daily limit left)`, in exact
    /// decimal arithmetic (0.6 credits at 0.2 allow 3). A zero weight means the credits do not
    /// limit it. Also returns a one-unit permit to record each unit used; `(0, None)` when the
    /// tenant has no active subscription or plan, or the event type is missing or inactive.
    pub(crate) fn allowance(
        self,
        r: &impl Reader,
        ctx: &Ctx,
        tenant_id: &str,
    ) -> Result<(u64, Option<Permit<'a>>)> {
        let Some(sub) = subscriptions::get(r, tenant_id)?.filter(|s| s.status == "active") else {
            return Ok((0, None));
        };
        let Some(plan) = catalog::plan(r, &sub.plan_id)? else {
            return Ok((0, None));
        };
        let Some(event) = catalog::event(r, self.event_key)?.filter(|e| e.active) else {
            return Ok((0, None));
        };
        let whole = |a: Amount| {
            a.div_floor(Amount::from_int(1))
                .map(|n| u64::try_from(n).unwrap_or(0))
                .unwrap_or(0)
        };
        let period = ctx.now.period();
        let remaining = (Amount::from_int(plan.included_credits)
            - used_credits(r, tenant_id, period)?)
        .clamp_zero();
        let by_credits = match remaining.div_floor(event.credits_per_unit) {
            _ if event.credits_per_unit.is_zero() => u64::MAX,
            Some(n) => u64::try_from(n).unwrap_or(0),
            None => 0,
        };
        let by_cap = match catalog::monthly_cap(r, &sub.plan_id, self.event_key)? {
            Some(cap) => {
                whole((cap - used_units(r, tenant_id, period, self.event_key)?).clamp_zero())
            }
            None => u64::MAX,
        };
        let by_day = match self.daily {
            Some(a) => u64::try_from(limits::remaining_today(r, ctx, tenant_id, a)?).unwrap_or(0),
            None => u64::MAX,
        };
        let price = Price {
            credits_per_unit: event.credits_per_unit,
            list_price_per_credit: event.list_price_per_credit,
        };
        Ok((
            by_credits.min(by_cap).min(by_day),
            Some(Permit {
                meter: self.units(1),
                price,
            }),
        ))
    }
}

/// Writes one usage event and adds it to its (tenant, current period, event) and (tenant, today,
/// event) rollups.
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    event_key: &str,
    units: u64,
    price: Price,
    tool_name: Option<&str>,
    request_id: &str,
) -> Result<()> {
    let tenant_id = caller.tenant_id();
    let raw_units = Amount::from_int(i64::try_from(units).unwrap_or(i64::MAX));
    let credits = raw_units * price.credits_per_unit;
    let cost = credits * price.list_price_per_credit;
    let seq = tx.next_seq("usage")?;
    let rec = UsageEventRec {
        user_id: caller.user_id().to_owned(),
        event_key: event_key.to_owned(),
        raw_units,
        credits,
        list_cost_estimate: cost,
        tool_name: tool_name.map(str::to_owned),
        request_id: request_id.to_owned(),
        created_at: ctx.now,
    };
    tx.put(
        &tables::USAGE_EVENTS,
        &Key::new().str(tenant_id).ts(ctx.now).u64(seq),
        &rec,
    )?;
    let add = Sums {
        raw_units,
        credits,
        cost,
        at: ctx.now,
    };
    let period = rollup_key(tenant_id, ctx.now.period(), event_key);
    add.to(tx, &tables::PERIOD_ROLLUPS, &period)?;
    add.to(
        tx,
        &tables::DAY_ROLLUPS,
        &day_rollup_key(tenant_id, ctx.now.date(), event_key),
    )
}

/// One usage event's amounts, added to a rollup.
struct Sums {
    raw_units: Amount,
    credits: Amount,
    cost: Amount,
    at: Timestamp,
}

impl Sums {
    /// Adds to the rollup at `key` of `table` (creating it, first used now).
    fn to(&self, tx: &mut WriteTx, table: &Table<RollupRec>, key: &Key) -> Result<()> {
        let roll = match tx.get(table, key)? {
            Some(mut r) => {
                r.raw_units += self.raw_units;
                r.credits += self.credits;
                r.list_cost_estimate += self.cost;
                r
            }
            None => RollupRec {
                raw_units: self.raw_units,
                credits: self.credits,
                list_cost_estimate: self.cost,
                first_used: self.at,
            },
        };
        tx.put(table, key, &roll)
    }
}

/// The key of the (tenant, UTC date, event) rollup of [`tables::DAY_ROLLUPS`].
pub(crate) fn day_rollup_key(tenant_id: &str, date: Date, event_key: &str) -> Key {
    Key::new().str(tenant_id).part(date).str(event_key)
}

/// Builds the day rollups of every tenant from the usage events (the upgrade to layout 6, whose
/// databases have events but no day rollups). One pass over the events.
pub(crate) fn rebuild_day_rollups(tx: &mut WriteTx) -> Result<()> {
    let mut sums: std::collections::BTreeMap<Vec<u8>, (Key, Sums)> = Default::default();
    tx.scan(
        &tables::USAGE_EVENTS,
        &Key::new(),
        Order::Asc,
        |k, e: UsageEventRec| {
            let tenant = crate::store::read_str(k, 0)
                .map(|(t, _)| t)
                .unwrap_or_default();
            let key = day_rollup_key(&tenant, e.created_at.date(), &e.event_key);
            let (_, s) = sums.entry(key.as_bytes().to_vec()).or_insert_with(|| {
                let zero = Sums {
                    raw_units: Amount::ZERO,
                    credits: Amount::ZERO,
                    cost: Amount::ZERO,
                    at: e.created_at,
                };
                (key, zero)
            });
            s.raw_units += e.raw_units;
            s.credits += e.credits;
            s.cost += e.list_cost_estimate;
            Ok(Flow::Continue)
        },
    )?;
    tx.clear_unlogged(&tables::DAY_ROLLUPS)?;
    for (key, s) in sums.values() {
        s.to(tx, &tables::DAY_ROLLUPS, key)?;
    }
    Ok(())
}

/// Receipt of a [`Bespin::record_usage`] call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReceipt {
    /// The request id stored on the usage event.
    pub request_id: String,
}

impl crate::Bespin {
    /// Meters one action of the caller outside the built-in endpoints (for embedders with their
    /// own event types): checks the capability (if given), then the credit allowance, cap and
    /// daily limit of `meter`, and records the usage, all in one transaction.
    /// Errors: the entitlement errors, `UnknownEventType`, `QuotaExceeded`, `DailyQuotaExceeded`.
    pub fn record_usage(
        &self,
        caller: &Principal,
        capability: Option<&str>,
        meter: Meter<'_>,
    ) -> Result<UsageReceipt> {
        self.write(|tx, ctx| {
            if let Some(cap) = capability {
                crate::billing::require_capability(tx, caller.tenant_id(), cap)?;
            }
            let permit = meter.check(tx, ctx, caller.tenant_id())?;
            let request_id = ids::new_id();
            permit.record(tx, ctx, caller, &request_id)?;
            Ok(UsageReceipt { request_id })
        })
    }
}
