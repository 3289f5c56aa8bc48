//! Metering: the billing quota (credits and caps), usage events and period rollups, and the
//! daily-limit layer, as one reusable piece.
//!
//! An endpoint describes what it consumes with a [`Meter`] (event key, raw units, tool label,
//! optional daily activity) and, inside its write transaction:
//!
//! 1. calls `Meter::check` — credit allowance, then the plan's monthly cap, then the daily
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
use crate::check::Checker;
use crate::error::{Error, QuotaExceeded, Result};
use crate::limits::{self, Activity};
use crate::money::Amount;
use crate::store::{
    Flow, KeyDef, Order, Reader, Record, Table, TableInfo, WriteTx, key, remember_shared,
};
use crate::time::{Date, Period, Timestamp};
use crate::{Ctx, ids};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::Arc;

pub(crate) mod chunk;
#[cfg(test)]
mod chunk_tests;
pub(crate) mod claims;
pub mod export;
pub mod ingest;
#[cfg(test)]
mod ingest_tests;
mod purge;
pub mod typed;

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
    /// When the usage happened: now for Bespin's own metering, the CloudEvent's `time` for an
    /// ingested event (which may lie in the past).
    pub created_at: Timestamp,
    /// Where an ingested event came from (none for Bespin's own metering). Added in version 2.
    pub origin: Option<Box<Origin>>,
}

/// The CloudEvent attributes of an ingested usage event that Bespin keeps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct Origin {
    /// The CloudEvent `source`.
    pub source: String,
    /// The CloudEvent `id` (unique per source).
    pub id: String,
    /// The CloudEvent `subject` (what the usage is of: a customer, a user of the tenant's
    /// service), if given.
    pub subject: Option<String>,
}

/// Version 1 of [`UsageEventRec`], before ingested events.
#[derive(Deserialize)]
struct UsageEventRecV1 {
    user_id: String,
    event_key: String,
    raw_units: Amount,
    credits: Amount,
    list_cost_estimate: Amount,
    tool_name: Option<String>,
    request_id: String,
    created_at: Timestamp,
}

impl Record for UsageEventRec {
    const VERSION: u8 = 2;

    fn decode_older(version: u8, body: &[u8]) -> Result<Self> {
        if version != 1 {
            return Err(Error::Storage(format!(
                "usage event record version {version} is unknown"
            )));
        }
        let v: UsageEventRecV1 =
            postcard::from_bytes(body).map_err(|e| Error::Storage(format!("decode: {e}")))?;
        Ok(UsageEventRec {
            user_id: v.user_id,
            event_key: v.event_key,
            raw_units: v.raw_units,
            credits: v.credits,
            list_cost_estimate: v.list_cost_estimate,
            tool_name: v.tool_name,
            request_id: v.request_id,
            created_at: v.created_at,
            origin: None,
        })
    }
}

/// A stored period rollup for (tenant, period, event key).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct RollupRec {
    pub raw_units: Amount,
    pub credits: Amount,
    pub list_cost_estimate: Amount,
    pub first_used: Timestamp,
}
impl Record for RollupRec {}

key! {
    /// (tenant, emitted at, sequence).
    pub(crate) struct UsageKey<'a> { tenant_id: tenant, emitted_at: ts, seq: u64 }
    /// (tenant, period start, event key).
    pub(crate) struct PeriodRollupKey<'a> { tenant_id: tenant, period_start: date, event_key: str }
    /// (tenant, UTC date, event key).
    pub(crate) struct DayRollupKey<'a> { tenant_id: tenant, date: date, event_key: str }
}

/// (tenant, emitted at, sequence) → usage event.
pub(crate) const USAGE_EVENTS: Table<UsageKey<'static>, UsageEventRec> = Table::new("usage_events");
/// (tenant, period start, event key) → period rollup.
pub(crate) const PERIOD_ROLLUPS: Table<PeriodRollupKey<'static>, RollupRec> =
    Table::new("period_rollups");
/// (tenant, UTC date, event key) → the same sums for one day: what a chart of usage per day
/// reads (≤ 31 × event keys rows a month) instead of the month's usage events.
pub(crate) const DAY_ROLLUPS: Table<DayRollupKey<'static>, RollupRec> = Table::new("day_rollups");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&USAGE_EVENTS, &PERIOD_ROLLUPS, &DAY_ROLLUPS];

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
    /// `Meter::check` inside an open write transaction (for callers composing operations
    /// with [`crate::Bespin::transaction`]).
    pub fn check_in(self, tx: &WriteTx, ctx: &Ctx, tenant_id: &str) -> Result<Permit<'a>> {
        self.check(tx, ctx, tenant_id)
    }
}

/// What a quota check found: the period's included credits and the credits used before
/// this use, and the event's monthly cap with the units used before, if it has one.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Limits {
    pub included: Amount,
    pub used_credits: Amount,
    pub cap: Option<(Amount, Amount)>,
}

/// The weight and price of an event type at the moment of a check.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Price {
    pub credits_per_unit: Amount,
    pub list_price_per_credit: Amount,
    /// The figures the quota check read, when it read them for this one use: what the
    /// threshold events are computed from without reading them again.
    pub limits: Option<Limits>,
}

/// Proof that a [`Meter`] passed its checks; recording it writes the usage.
#[derive(Debug, Clone, Copy)]
#[must_use = "a permit does nothing until recorded"]
pub struct Permit<'a> {
    meter: Meter<'a>,
    price: Price,
}

impl Permit<'_> {
    /// The raw units the permit was checked for.
    pub fn units(&self) -> u64 {
        self.meter.units
    }

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
        &PERIOD_ROLLUPS,
        &PERIOD_ROLLUPS
            .prefix()
            .tenant(tenant_id)
            .date(period.start()),
        Order::Asc,
        |_, roll: RollupRec| {
            total += roll.credits;
            Ok(Flow::Continue)
        },
    )?;
    Ok(total)
}

pub(crate) fn rollup_key<'a>(
    tenant_id: &'a str,
    period: Period,
    event_key: &'a str,
) -> PeriodRollupKey<'a> {
    PeriodRollupKey::new(tenant_id, period.start(), event_key)
}

/// Raw units of `event_key` used by the tenant in `period`.
pub(crate) fn used_units(
    r: &impl Reader,
    tenant_id: &str,
    period: Period,
    event_key: &str,
) -> Result<Amount> {
    Ok(
        r.get(&PERIOD_ROLLUPS, &rollup_key(tenant_id, period, event_key))?
            .map(|x| x.raw_units)
            .unwrap_or_default(),
    )
}

/// The billing quota of 30 §6.2 for `units` raw units of `event_key` in the current period.
pub(crate) fn check_quota(
    r: &impl Reader,
    ctx: &Ctx,
    tenant_id: &str,
    event_key: &str,
    units: u64,
) -> Result<Price> {
    let plan = active_plan(r, tenant_id)?;
    let event = active_event(r, event_key)?;
    let period = ctx.now.period();
    let requested_units = Amount::from_int(i64::try_from(units).unwrap_or(i64::MAX));
    let used = used_credits(r, tenant_id, period)?;
    let cap = match catalog::monthly_cap(r, &plan.plan_id, event_key)? {
        Some(cap) => Some((cap, used_units(r, tenant_id, period, event_key)?)),
        None => None,
    };
    let limits = Limits {
        included: Amount::from_int(plan.plan.included_credits),
        used_credits: used,
        cap,
    };
    limits.admit(period, event_key, requested_units, event.credits_per_unit)?;
    Ok(Price {
        credits_per_unit: event.credits_per_unit,
        list_price_per_credit: event.list_price_per_credit,
        limits: Some(limits),
    })
}

/// A tenant's plan, when its subscription is active.
#[derive(Clone)]
pub(crate) struct ActivePlan {
    pub plan_id: String,
    pub plan: catalog::PlanRec,
}

/// The tenant's subscribed plan. Errors: `NoSubscription`, `SubscriptionSuspended`,
/// `PlanMissing`. Remembered for a write batch ([`remember_shared`]).
pub(crate) fn active_plan(r: &impl Reader, tenant_id: &str) -> Result<Arc<ActivePlan>> {
    remember_shared(r, &["active_plan", tenant_id], || {
        read_active_plan(r, tenant_id)
    })
}

fn read_active_plan(r: &impl Reader, tenant_id: &str) -> Result<ActivePlan> {
    let sub = subscriptions::get(r, tenant_id)?.ok_or(Error::NoSubscription)?;
    if sub.status != "active" {
        return Err(Error::SubscriptionSuspended { status: sub.status });
    }
    let plan = catalog::plan(r, &sub.plan_id)?.ok_or_else(|| Error::PlanMissing {
        plan_id: sub.plan_id.clone(),
    })?;
    Ok(ActivePlan {
        plan_id: sub.plan_id,
        plan,
    })
}

/// The event type, when it exists and is active. Errors: `UnknownEventType`. Remembered for
/// a write batch ([`remember_shared`]).
pub(crate) fn active_event(
    r: &impl Reader,
    event_key: &str,
) -> Result<Arc<catalog::MeteredEventRec>> {
    remember_shared(r, &["active_event", event_key], || {
        catalog::event(r, event_key)?
            .filter(|e| e.active)
            .ok_or_else(|| Error::UnknownEventType {
                event_key: event_key.to_owned(),
            })
    })
}

impl Limits {
    /// The credit allowance, then the event's cap, for `units` more raw units at
    /// `credits_per_unit`: the one rule of 30 §6.2 that Bespin's own metering and ingested
    /// events share. Errors: `QuotaExceeded` with the contract's body.
    pub(crate) fn admit(
        &self,
        period: Period,
        event_key: &str,
        units: Amount,
        credits_per_unit: Amount,
    ) -> Result<()> {
        self.admit_credits(period, event_key, units, units * credits_per_unit)
    }

    /// [`Limits::admit`] of `units` whose credits, `requested`, the caller has worked out
    /// already (units × the weight: an ingest records them next, and makes the product once).
    pub(crate) fn admit_credits(
        &self,
        period: Period,
        event_key: &str,
        units: Amount,
        requested: Amount,
    ) -> Result<()> {
        let refusal = |cap: Option<(Amount, Amount)>| {
            Error::QuotaExceeded(Box::new(QuotaExceeded {
                error: "quota_exceeded",
                period_start: period.start().to_string(),
                event_key: event_key.to_owned(),
                limit_credits: self.included.div_floor(Amount::from_int(1)).unwrap_or(0),
                used_credits: self.used_credits.to_f64(),
                requested_credits: requested.to_f64(),
                cap_raw_units: cap.map(|c| c.0.to_f64()),
                used_raw_units: cap.map(|c| c.1.to_f64()),
                requested_raw_units: units.to_json_number(),
            }))
        };
        if self.used_credits + requested > self.included {
            return Err(refusal(None));
        }
        if let Some((cap, used)) = self.cap
            && used + units > cap
        {
            return Err(refusal(Some((cap, used))));
        }
        Ok(())
    }
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
        // One permit records many units here: the figures would be stale after the first.
        let price = Price {
            credits_per_unit: event.credits_per_unit,
            list_price_per_credit: event.list_price_per_credit,
            limits: None,
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
    let who = (caller.tenant_id(), caller.user_id(), caller.into());
    emit_as(tx, ctx, who, event_key, units, price, tool_name, request_id)
}

/// Records `units` of `event_key` at its weight for `who`, without quota checks: usage that
/// already happened (a webhook delivered). Nothing when the type is missing or inactive.
pub(crate) fn record_after_the_fact(
    tx: &mut WriteTx,
    ctx: &Ctx,
    who: Who<'_>,
    event_key: &str,
    units: u64,
) -> Result<()> {
    let Some(e) = catalog::event(tx, event_key)?.filter(|e| e.active) else {
        return Ok(());
    };
    let price = Price {
        credits_per_unit: e.credits_per_unit,
        list_price_per_credit: e.list_price_per_credit,
        limits: None,
    };
    emit_as(tx, ctx, who, event_key, units, price, None, &ids::new_id())
}

/// Who a usage event is for: tenant, user, and who the events it may cause name as actor.
pub(crate) type Who<'a> = (&'a str, &'a str, crate::events::Actor<'a>);

/// [`emit`] for a tenant and user named directly (usage the platform records for a tenant,
/// such as a webhook delivered).
#[allow(clippy::too_many_arguments)]
pub(crate) fn emit_as(
    tx: &mut WriteTx,
    ctx: &Ctx,
    (tenant_id, user_id, actor): Who<'_>,
    event_key: &str,
    units: u64,
    price: Price,
    tool_name: Option<&str>,
    request_id: &str,
) -> Result<()> {
    let raw_units = Amount::from_int(i64::try_from(units).unwrap_or(i64::MAX));
    let credits = raw_units * price.credits_per_unit;
    let cost = credits * price.list_price_per_credit;
    let rec = UsageEventRec {
        user_id: user_id.to_owned(),
        event_key: event_key.to_owned(),
        raw_units,
        credits,
        list_cost_estimate: cost,
        tool_name: tool_name.map(str::to_owned),
        request_id: request_id.to_owned(),
        created_at: ctx.now,
        origin: None,
    };
    write_event(tx, tenant_id, &rec)?;
    let add = Sums {
        raw_units,
        credits,
        cost,
        at: ctx.now,
    };
    let period = rollup_key(tenant_id, ctx.now.period(), event_key);
    add.to(tx, &PERIOD_ROLLUPS, &period)?;
    add.to(
        tx,
        &DAY_ROLLUPS,
        &day_rollup_key(tenant_id, ctx.now.date(), event_key),
    )?;
    let used = crate::billing::thresholds::Used {
        event_key,
        credits,
        units: raw_units,
        limits: price.limits,
    };
    crate::billing::thresholds::crossed(tx, ctx, tenant_id, actor, used)
}

/// Writes a usage event under the next usage sequence number, with its rows in the export's
/// insertion order ([`export`]); returns the number.
pub(crate) fn write_event(tx: &mut WriteTx, tenant_id: &str, rec: &UsageEventRec) -> Result<u64> {
    let seq = tx.next_seq("usage")?;
    write_numbered(tx, tenant_id, seq, rec)?;
    Ok(seq)
}

/// Writes a usage event under `seq`, a number [`WriteTx::next_seq`] gave for `usage` in this
/// operation, with its rows in the export's insertion order.
pub(crate) fn write_numbered(
    tx: &mut WriteTx,
    tenant_id: &str,
    seq: u64,
    rec: &UsageEventRec,
) -> Result<()> {
    tx.put(
        &USAGE_EVENTS,
        &UsageKey::new(tenant_id, rec.created_at, seq),
        rec,
    )?;
    let reported = rec.origin.is_some();
    export::index(tx, tenant_id, seq, rec.created_at, reported)
}

/// One usage event's amounts, added to a rollup.
#[derive(Clone, Copy)]
pub(crate) struct Sums {
    raw_units: Amount,
    credits: Amount,
    cost: Amount,
    at: Timestamp,
}

impl Sums {
    /// Adds another event's amounts (the earlier instant is kept).
    pub(crate) fn add(&mut self, other: &Sums) {
        self.raw_units += other.raw_units;
        self.credits += other.credits;
        self.cost += other.cost;
        self.at = self.at.min(other.at);
    }

    /// Adds to the rollup at `key` of `table` (creating it, first used at `self.at`). The
    /// rollup is held in the batch ([`WriteTx::update_held`]): every metered operation of a
    /// tenant rewrites the same one, which the batch then writes once.
    pub(crate) fn to<K: KeyDef>(
        &self,
        tx: &mut WriteTx,
        table: &Table<K, RollupRec>,
        key: &K::Of<'_>,
    ) -> Result<()> {
        tx.update_held(table, key, |roll| match roll {
            Some(mut r) => {
                r.raw_units += self.raw_units;
                r.credits += self.credits;
                r.list_cost_estimate += self.cost;
                // An ingested event may be older than the rollup's first.
                r.first_used = r.first_used.min(self.at);
                r
            }
            None => RollupRec {
                raw_units: self.raw_units,
                credits: self.credits,
                list_cost_estimate: self.cost,
                first_used: self.at,
            },
        })
    }
}

/// The key of the (tenant, UTC date, event) rollup of [`DAY_ROLLUPS`].
pub(crate) fn day_rollup_key<'a>(
    tenant_id: &'a str,
    date: Date,
    event_key: &'a str,
) -> DayRollupKey<'a> {
    DayRollupKey::new(tenant_id, date, event_key)
}

/// Builds the day rollups of every tenant from the usage events (the upgrade to layout 6, whose
/// databases have events but no day rollups). One pass over the events.
pub(crate) fn rebuild_day_rollups(tx: &mut WriteTx) -> Result<()> {
    let mut sums: BTreeMap<Vec<u8>, (DayRollupKey<'static>, Sums)> = BTreeMap::new();
    tx.scan(
        &USAGE_EVENTS,
        &USAGE_EVENTS.prefix(),
        Order::Asc,
        |k, e: UsageEventRec| {
            let tenant = UsageKey::decode(k).map(|k| k.tenant_id).unwrap_or_default();
            let key = day_rollup_key(&tenant, e.created_at.date(), &e.event_key).into_owned();
            let (_, s) = sums.entry(key.encode()).or_insert_with(|| {
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
    tx.clear_unlogged(&DAY_ROLLUPS)?;
    for (key, s) in sums.values() {
        s.to(tx, &DAY_ROLLUPS, key)?;
    }
    Ok(())
}

/// Checks usage against its rollups: every usage event (of a row of its own, keyed by its
/// instant, or of a chunk) counted exactly once in its period rollup and once in its day
/// rollup (per key, the sums of raw units, credits and list cost equal the rollup exactly, `first_used` is the earliest event,
/// no rollup exists without events), and no daily counter above the units metered that day.
/// Returns (tenant, request id) of every event.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<HashSet<(String, String)>> {
    let mut periods: BTreeMap<Vec<u8>, RollupRec> = BTreeMap::new();
    let mut days: BTreeMap<Vec<u8>, RollupRec> = BTreeMap::new();
    let mut per_day: HashMap<(String, Date), Amount> = HashMap::new();
    let mut requests = HashSet::new();
    chunk::check(r, c)?;
    for x in chunk::all_events(r, c)? {
        let (t, e) = (x.tenant.as_str(), &x.rec);
        requests.insert((t.to_owned(), e.request_id.clone()));
        let period = rollup_key(t, e.created_at.period(), &e.event_key).encode();
        let day = day_rollup_key(t, e.created_at.date(), &e.event_key).encode();
        for (sums, key) in [(&mut periods, period), (&mut days, day)] {
            let s = sums.entry(key).or_insert_with(|| RollupRec {
                raw_units: Amount::ZERO,
                credits: Amount::ZERO,
                list_cost_estimate: Amount::ZERO,
                first_used: e.created_at,
            });
            s.raw_units += e.raw_units;
            s.credits += e.credits;
            s.list_cost_estimate += e.list_cost_estimate;
            s.first_used = s.first_used.min(e.created_at);
        }
        *per_day
            .entry((t.to_owned(), e.created_at.date()))
            .or_default() += e.raw_units;
    }
    check_rollups(r, c, &PERIOD_ROLLUPS, &periods)?;
    check_rollups(r, c, &DAY_ROLLUPS, &days)?;
    // Daily counters: each unit counted was metered by an event of that tenant on that day.
    let mut expected_daily: HashMap<Vec<u8>, Amount> = HashMap::new();
    for ((t, d), units) in &per_day {
        for a in Activity::ALL {
            expected_daily.insert(limits::rollup_key(t, *d, a).encode(), *units);
        }
    }
    let table = limits::DAILY_ROLLUPS.name();
    for x in c.rows(r, &limits::DAILY_ROLLUPS)? {
        let (k, n) = (&x.bytes, x.value);
        if n < 0 {
            c.violation(table, k, format!("negative counter {n}"));
            continue;
        }
        match expected_daily.get(k) {
            Some(max) if Amount::from_int(n) <= *max => c.ok(),
            Some(max) => c.violation(
                table,
                k,
                format!("daily counter {n} exceeds the {max} units metered that day"),
            ),
            None if n == 0 => c.ok(),
            None => c.violation(
                table,
                k,
                format!("daily counter {n} without any usage event that day"),
            ),
        }
    }
    Ok(requests)
}

/// The rollups of `table` against the sums of their usage events (`expected`, by key): each
/// equal, none without events, no events uncounted.
fn check_rollups<K: KeyDef>(
    r: &impl Reader,
    c: &mut Checker,
    table: &Table<K, RollupRec>,
    expected: &BTreeMap<Vec<u8>, RollupRec>,
) -> Result<()> {
    let name = table.name();
    let mut seen = HashSet::new();
    for x in c.rows(r, table)? {
        let (k, r) = (&x.bytes, &x.value);
        seen.insert(k.clone());
        let Some(s) = expected.get(k) else {
            c.violation(name, k, "rollup without any usage event");
            continue;
        };
        let mut diff = Vec::new();
        if r.raw_units != s.raw_units {
            diff.push(format!(
                "raw units {} ≠ events {}",
                r.raw_units, s.raw_units
            ));
        }
        if r.credits != s.credits {
            diff.push(format!("credits {} ≠ events {}", r.credits, s.credits));
        }
        if r.list_cost_estimate != s.list_cost_estimate {
            let cost = s.list_cost_estimate;
            diff.push(format!("cost {} ≠ events {cost}", r.list_cost_estimate));
        }
        if r.first_used != s.first_used {
            diff.push("first_used is not the earliest event".into());
        }
        if diff.is_empty() {
            c.ok();
        } else {
            c.violation(name, k, diff.join("; "));
        }
    }
    for k in expected.keys() {
        if !seen.contains(k) {
            c.violation(name, k, "usage events not counted in any rollup");
        }
    }
    Ok(())
}

/// Receipt of a [`crate::Bespin::record_usage`] call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct UsageReceipt {
    /// The request id stored on the usage event.
    pub request_id: String,
}

/// Meters one action of the caller outside the built-in endpoints, in the open transaction:
/// see [`crate::Bespin::record_usage`]. (Not of the standard shapes: the meter borrows its
/// event key, and embedders call it in their own transactions.)
pub fn record_usage(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    capability: Option<&str>,
    meter: Meter<'_>,
) -> Result<UsageReceipt> {
    if let Some(cap) = capability {
        crate::billing::require_capability(tx, caller, cap)?;
    }
    let permit = meter.check(tx, ctx, caller.tenant_id())?;
    let request_id = ids::new_id();
    permit.record(tx, ctx, caller, &request_id)?;
    Ok(UsageReceipt { request_id })
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
        self.write_as(caller, |tx, ctx| {
            record_usage(tx, ctx, caller, capability, meter)
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::check::testing::{caught, first_key, populated};

    #[test]
    fn a_lost_usage_event_breaks_its_rollup() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &USAGE_EVENTS);
            tx.delete_stored(&USAGE_EVENTS, &k).map(|_| ())
        });
        caught(&db, "period_rollups", "");
    }

    #[test]
    fn a_rollup_off_by_one_credit_is_caught() {
        let (db, _, _) = populated();
        db.tamper(|tx| {
            let k = first_key(tx, &PERIOD_ROLLUPS);
            let k = PeriodRollupKey::decode(&k).unwrap();
            let mut r = tx.get(&PERIOD_ROLLUPS, &k)?.unwrap();
            r.credits += Amount::from_int(1);
            tx.put(&PERIOD_ROLLUPS, &k, &r)
        });
        caught(&db, "period_rollups", "credits");
    }
}
