//! Usage thresholds (issue 20): when a metered operation takes the tenant's usage across 80%
//! or 100% of the period's included credits, or of an event type's monthly cap, a
//! `usage.threshold_crossed` event is emitted in the same transaction — once per period and
//! threshold, remembered in a small table so a later crossing of the same line (after a plan
//! change, say) does not repeat it.

use crate::billing::{catalog, subscriptions};
use crate::error::Result;
use crate::events::{self, Actor};
use crate::metering::{used_credits, used_units};
use crate::money::Amount;
use crate::store::{Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::{Ctx, Principal};

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

/// Emits a `usage.threshold_crossed` event for each threshold that usage of `event_key`
/// (`credits` and `units` just recorded) took the tenant across, unless it fired already this
/// period. Called by the metering of every operation, after its rollups.
pub(crate) fn crossed(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    event_key: &str,
    credits: Amount,
    units: Amount,
) -> Result<()> {
    let tenant = caller.tenant_id();
    let Some(sub) = subscriptions::get(tx, tenant)? else {
        return Ok(());
    };
    let period = ctx.now.period();
    let mut lines: Vec<(&str, Amount, Amount, Amount)> = Vec::with_capacity(2);
    if let Some(plan) = catalog::plan(tx, &sub.plan_id)?
        && !credits.is_zero()
    {
        let after = used_credits(tx, tenant, period)?;
        let limit = Amount::from_int(plan.included_credits);
        lines.push(("credits", limit, after - credits, after));
    }
    if let Some(cap) = catalog::monthly_cap(tx, &sub.plan_id, event_key)?
        && !units.is_zero()
    {
        let after = used_units(tx, tenant, period, event_key)?;
        lines.push((event_key, cap, after - units, after));
    }
    for (limit, value, before, after) in lines {
        for pct in PERCENTS {
            // Compared as usage × 100 against limit × percent: exact, no division.
            let hundred = Amount::from_int(100);
            let line = value * Amount::from_int(i64::try_from(pct).unwrap_or(100));
            if !(before * hundred < line && after * hundred >= line) || value.is_zero() {
                continue;
            }
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
            events::emit(tx, ctx, Actor::User(caller), t, limit, &data)?;
        }
    }
    Ok(())
}
