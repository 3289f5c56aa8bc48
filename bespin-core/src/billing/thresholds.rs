//! Usage thresholds (issue 20): when a metered operation takes the tenant's usage across 80%
//! or 100% of the period's included credits, or of an event type's monthly cap, a
//! `usage.threshold_crossed` event is emitted in the same transaction — once per period and
//! threshold, remembered in a small table so a later crossing of the same line (after a plan
//! change, say) does not repeat it.

use crate::Ctx;
use crate::billing::{catalog, subscriptions};
use crate::error::Result;
use crate::events::{self, Actor};
use crate::metering::{Limits, used_credits, used_units};
use crate::money::Amount;
use crate::store::{Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;

key! {
    /// (tenant, period start, `credits` or the capped event key, percent).
    pub(crate) struct ThresholdKey<'a> {
        tenant_id: tenant,
        period_start: date,
        limit: str,
        percent: u64,
    }
}

/// (tenant, period, limit, percent) → when it was crossed.
pub(crate) const THRESHOLDS: Table<ThresholdKey<'static>, Timestamp> =
    Table::new("usage_thresholds");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&THRESHOLDS];

/// The thresholds watched, in percent.
pub const PERCENTS: [u64; 2] = [80, 100];

/// One use just recorded, with the figures its quota check read (if it did).
pub(crate) struct Used<'a> {
    pub event_key: &'a str,
    pub credits: Amount,
    pub units: Amount,
    pub limits: Option<Limits>,
}

/// The lowest line of each limit a request's uses count against, worked out once for the
/// request: most uses stay below it, and telling so then costs a comparison instead of the
/// products [`crossed`] compares (700 instructions an ingested event on the writer, most of
/// them for that).
#[derive(Debug, Clone, Copy)]
pub(crate) struct Watch {
    /// The credit allowance's lowest line; `None` where [`crossed`] must always look (a limit
    /// not above zero, or a line the decimal cannot hold exactly).
    credits: Option<Amount>,
    /// The cap's, if there is a cap.
    cap: Option<Option<Amount>>,
}

impl Watch {
    /// The lines of the limits of `l` (its included credits and cap).
    pub(crate) fn of(l: &Limits) -> Watch {
        Watch {
            credits: lowest_line(l.included),
            cap: l.cap.map(|(cap, _)| lowest_line(cap)),
        }
    }

    /// Whether a use of `u.credits` and `u.units` that took its usage to `credits_after` and
    /// `units_after` may have crossed a line: false only where [`crossed`] would find nothing
    /// (each limit's usage after the use below its lowest line, or the use adds nothing to it).
    pub(crate) fn may_cross(
        &self,
        u: &Used<'_>,
        credits_after: Amount,
        units_after: Amount,
    ) -> bool {
        let credits = !u.credits.is_zero() && !below(self.credits, credits_after);
        let cap = match self.cap {
            Some(line) => !u.units.is_zero() && !below(line, units_after),
            None => false,
        };
        credits || cap
    }
}

/// Whether usage `after` lies below `lowest`, a limit's [`lowest_line`]: then it crosses none
/// of that limit's lines (the one rule [`crossed`] and [`Watch`] skip by).
fn below(lowest: Option<Amount>, after: Amount) -> bool {
    lowest.is_some_and(|l| after < l)
}

/// `value` × the lowest percent / 100, exactly, for a limit above zero: usage below it is
/// below every line (the lines grow with the percent); `None` where every use must be
/// compared line by line (a limit not above zero, or a line the decimal cannot hold).
fn lowest_line(value: Amount) -> Option<Amount> {
    if value.is_negative() || value.is_zero() {
        return None;
    }
    let pct = Amount::from_int(i64::try_from(PERCENTS[0]).ok()?);
    (value * pct).divided_by_100()
}

/// Emits a `usage.threshold_crossed` event for each threshold that `u` took the tenant
/// across, unless it fired already this period. Called by the metering of every operation,
/// after its rollups; from the quota check's figures when it has them (arithmetic only),
/// otherwise reading them.
pub(crate) fn crossed(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant: &str,
    actor: Actor<'_>,
    u: Used<'_>,
) -> Result<()> {
    // The period is made where it is needed: most uses come with their limits and cross
    // nothing (making it reads the calendar, as much as the rest of this check).
    let limits = match u.limits {
        Some(l) => l,
        None => {
            let period = ctx.now.period();
            let Some(sub) = subscriptions::get(tx, tenant)? else {
                return Ok(());
            };
            let Some(plan) = catalog::plan(tx, &sub.plan_id)? else {
                return Ok(());
            };
            let cap = match catalog::monthly_cap(tx, &sub.plan_id, u.event_key)? {
                Some(c) => Some((c, used_units(tx, tenant, period, u.event_key)? - u.units)),
                None => None,
            };
            Limits {
                included: Amount::from_int(plan.included_credits),
                used_credits: used_credits(tx, tenant, period)? - u.credits,
                cap,
            }
        }
    };
    let event_key = u.event_key;
    // At most two lines, kept on the stack (a list was an allocation per metered event).
    let credits_line = (!u.credits.is_zero()).then(|| {
        let before = limits.used_credits;
        ("credits", limits.included, before, before + u.credits)
    });
    let cap_line = match limits.cap {
        Some((cap, before)) if !u.units.is_zero() => {
            Some((event_key, cap, before, before + u.units))
        }
        _ => None,
    };
    for (limit, value, before, after) in [credits_line, cap_line].into_iter().flatten() {
        if value.is_zero() {
            continue;
        }
        // Most uses stay below the lowest line: nothing crossed, and no product is made.
        if below(lowest_line(value), after) {
            continue;
        }
        // Compared as usage × 100 against limit × percent: exact, no division.
        let hundred = Amount::from_int(100);
        let (before_100, after_100) = (before * hundred, after * hundred);
        for pct in PERCENTS {
            let line = value * Amount::from_int(i64::try_from(pct).unwrap_or(100));
            if !(before_100 < line && after_100 >= line) {
                continue;
            }
            let period = ctx.now.period();
            let key = ThresholdKey::new(tenant, period.start(), limit, pct);
            if !tx.insert_new(&THRESHOLDS, &key, &ctx.now)? {
                continue;
            }
            let data = serde_json::json!({
                "period_start": period.start().to_string(),
                "limit": if limit == "credits" { "credits" } else { "cap" },
                "event_key": event_key,
                "threshold_percent": pct,
                "limit_value": value.to_f64(),
                "used": after.to_f64(),
            });
            let t = events::catalog::USAGE_THRESHOLD_CROSSED;
            events::emit(tx, ctx, actor, t, limit, &data)?;
        }
    }
    Ok(())
}
