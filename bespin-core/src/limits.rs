//! Daily limits: the per-UTC-day allowance for four activity types (20 §7, 30 §6.4).
//!
//! Each tenant has four limits (created with defaults at tenant creation) and a counter per
//! (UTC date, activity). A check refuses when `current + requested > limit`; the counter grows
//! only in the transaction of a successful operation.

use crate::auth::Principal;
use crate::error::{DailyQuotaExceeded, Error, Result};
use crate::events::{self, catalog};
use crate::store::{Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::{Date, Timestamp};
use crate::validate::{Bounds, Fields, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// The four activity types with a daily limit, in the contract's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Activity {
    /// Cofounder chat messages.
    AssistantQuery,
    /// Tool invocations.
    ToolInvocation,
    /// Newly generated briefs.
    DailyBriefGenerated,
    /// Enqueued notifications.
    NotificationEnqueued,
}

impl Activity {
    /// All four, in the order `GET /v1/usage/daily` lists them.
    pub const ALL: [Activity; 4] = [
        Activity::AssistantQuery,
        Activity::ToolInvocation,
        Activity::DailyBriefGenerated,
        Activity::NotificationEnqueued,
    ];

    /// The activity's name (equal to its metered event key).
    pub fn as_str(self) -> &'static str {
        match self {
            Activity::AssistantQuery => "assistant_query",
            Activity::ToolInvocation => "tool_invocation",
            Activity::DailyBriefGenerated => "daily_brief_generated",
            Activity::NotificationEnqueued => "notification_enqueued",
        }
    }
}

/// A tenant's stored limits.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct LimitsRec {
    pub assistant_query: i64,
    pub tool_invocation: i64,
    pub daily_brief_generated: i64,
    pub notification_enqueued: i64,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for LimitsRec {}

/// The four daily limits of a tenant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyLimits {
    /// Chat messages per day.
    pub assistant_query_daily_limit: i64,
    /// Tool invocations per day.
    pub tool_invocation_daily_limit: i64,
    /// New briefs per day.
    pub daily_brief_generated_daily_limit: i64,
    /// Enqueued notifications per day.
    pub notification_enqueued_daily_limit: i64,
}

impl Default for DailyLimits {
    fn default() -> Self {
        DailyLimits {
            assistant_query_daily_limit: 100,
            tool_invocation_daily_limit: 100,
            daily_brief_generated_daily_limit: 10,
            notification_enqueued_daily_limit: 500,
        }
    }
}

impl DailyLimits {
    /// Validates a full replacement body (all four fields required, integers ≥ 0).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let mut one = |name| f.int(name, Presence::Required, Bounds::ge(0)).flatten();
        let a = one("assistant_query_daily_limit");
        let t = one("tool_invocation_daily_limit");
        let b = one("daily_brief_generated_daily_limit");
        let n = one("notification_enqueued_daily_limit");
        f.finish()?;
        Ok(DailyLimits {
            assistant_query_daily_limit: got(a)?,
            tool_invocation_daily_limit: got(t)?,
            daily_brief_generated_daily_limit: got(b)?,
            notification_enqueued_daily_limit: got(n)?,
        })
    }

    /// The limit for one activity.
    pub fn of(&self, a: Activity) -> i64 {
        match a {
            Activity::AssistantQuery => self.assistant_query_daily_limit,
            Activity::ToolInvocation => self.tool_invocation_daily_limit,
            Activity::DailyBriefGenerated => self.daily_brief_generated_daily_limit,
            Activity::NotificationEnqueued => self.notification_enqueued_daily_limit,
        }
    }
}

impl From<&LimitsRec> for DailyLimits {
    fn from(r: &LimitsRec) -> Self {
        DailyLimits {
            assistant_query_daily_limit: r.assistant_query,
            tool_invocation_daily_limit: r.tool_invocation,
            daily_brief_generated_daily_limit: r.daily_brief_generated,
            notification_enqueued_daily_limit: r.notification_enqueued,
        }
    }
}

/// `GET/PUT /v1/limits`: the tenant id and its limits.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TenantLimits {
    /// The tenant.
    pub tenant_id: String,
    /// The limits, flattened into the object.
    #[serde(flatten)]
    pub limits: DailyLimits,
}

/// One activity's usage on a day.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActivityUsage {
    /// The activity type.
    pub activity_type: String,
    /// Units used that day.
    pub units: i64,
}

/// `GET /v1/usage/daily`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DailyUsage {
    /// The UTC date reported.
    pub date: String,
    /// The tenant's current limits.
    pub limits: TenantLimits,
    /// The four activities, always in the same order.
    pub usage: Vec<ActivityUsage>,
}

key! {
    /// (tenant).
    pub(crate) struct LimitsKey<'a> { tenant_id: tenant }
    /// (tenant, date, activity).
    pub(crate) struct DailyKey<'a> { tenant_id: tenant, date: date, activity_type: str }
}

/// (tenant) → daily limits.
pub(crate) const LIMITS: Table<LimitsKey<'static>, LimitsRec> = Table::new("limits").memo();
/// (tenant, date, activity) → units used that UTC day.
pub(crate) const DAILY_ROLLUPS: Table<DailyKey<'static>, i64> = Table::new("daily_rollups");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&LIMITS, &DAILY_ROLLUPS];

fn limits_key(tenant_id: &str) -> LimitsKey<'_> {
    LimitsKey::new(tenant_id)
}

pub(crate) fn rollup_key(tenant_id: &str, date: Date, a: Activity) -> DailyKey<'_> {
    DailyKey::new(tenant_id, date, a.as_str())
}

/// Writes the default limits for a new tenant.
pub(crate) fn create_defaults(tx: &mut WriteTx, ctx: &Ctx, tenant_id: &str) -> Result<()> {
    let d = DailyLimits::default();
    write_limits(tx, ctx, tenant_id, &d, ctx.now)
}

fn write_limits(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    l: &DailyLimits,
    created_at: Timestamp,
) -> Result<()> {
    let rec = LimitsRec {
        assistant_query: l.assistant_query_daily_limit,
        tool_invocation: l.tool_invocation_daily_limit,
        daily_brief_generated: l.daily_brief_generated_daily_limit,
        notification_enqueued: l.notification_enqueued_daily_limit,
        created_at,
        updated_at: ctx.now,
    };
    tx.put(&LIMITS, &limits_key(tenant_id), &rec)
}

/// The tenant's limits (defaults if it has no row).
pub(crate) fn limits_of(r: &impl Reader, tenant_id: &str) -> Result<DailyLimits> {
    crate::store::remember(r, &["daily_limits", tenant_id], || {
        Ok(r.get(&LIMITS, &limits_key(tenant_id))?
            .map(|rec| DailyLimits::from(&rec))
            .unwrap_or_default())
    })
}

/// Units of `a` the tenant used on `date`.
pub(crate) fn used_on(r: &impl Reader, tenant_id: &str, date: Date, a: Activity) -> Result<i64> {
    Ok(r.get(&DAILY_ROLLUPS, &rollup_key(tenant_id, date, a))?
        .unwrap_or(0))
}

/// Refuses with the daily 429 body when `requested` more units of `a` today would pass the limit.
pub(crate) fn check(
    r: &impl Reader,
    ctx: &Ctx,
    tenant_id: &str,
    a: Activity,
    requested: i64,
) -> Result<()> {
    let limit = limits_of(r, tenant_id)?.of(a);
    let current = used_on(r, tenant_id, ctx.now.date(), a)?;
    if current.saturating_add(requested) > limit {
        return Err(Error::DailyQuotaExceeded(DailyQuotaExceeded {
            error: "quota_exceeded",
            activity_type: a.as_str().to_owned(),
            limit,
            current,
            requested,
        }));
    }
    Ok(())
}

/// How many more units of `a` the tenant may use today (never negative).
pub(crate) fn remaining_today(
    r: &impl Reader,
    ctx: &Ctx,
    tenant_id: &str,
    a: Activity,
) -> Result<i64> {
    let limit = limits_of(r, tenant_id)?.of(a);
    Ok((limit - used_on(r, tenant_id, ctx.now.date(), a)?).max(0))
}

/// Adds `units` to today's counter for `a`.
pub fn consume(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    a: Activity,
    units: i64,
) -> Result<()> {
    let key = rollup_key(tenant_id, ctx.now.date(), a);
    // Held in the batch: every metered operation of the tenant today rewrites this counter.
    tx.update_held(&DAILY_ROLLUPS, &key, |current| current.unwrap_or(0) + units)
}

/// Replaces the tenant's limits (admin only).
pub fn put_limits(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    l: DailyLimits,
) -> Result<TenantLimits> {
    caller.require_admin_to("update limits")?;
    let created_at = tx
        .get(&LIMITS, &limits_key(caller.tenant_id()))?
        .map(|r| r.created_at)
        .unwrap_or(ctx.now);
    write_limits(tx, ctx, caller.tenant_id(), &l, created_at)?;
    let v = TenantLimits {
        tenant_id: caller.tenant_id().to_owned(),
        limits: l,
    };
    events::emit(tx, ctx, caller, catalog::LIMITS_CHANGED, &v.tenant_id, &v)?;
    Ok(v)
}

/// Validates a `date` query value: absent means today (UTC); otherwise it must be a real
/// `YYYY-MM-DD` date (422 at `loc`).
pub fn parse_date_param(date: Option<&str>, today: Date, loc: &[&str]) -> Result<Date> {
    match date {
        None => Ok(today),
        Some(s) => Date::parse(s).ok_or_else(|| invalid_date(s, loc)),
    }
}

/// The 422 for a string that is not a real `YYYY-MM-DD` date.
pub fn invalid_date(s: &str, loc: &[&str]) -> Error {
    Error::field(crate::FieldError::new(
        "date_from_datetime_parsing",
        loc.iter().map(|p| crate::LocPart::from(*p)).collect(),
        "Input should be a valid date in the format YYYY-MM-DD",
        Value::String(s.to_owned()),
    ))
}

impl Bespin {
    /// The caller's tenant's daily limits (any role).
    pub fn limits(&self, caller: &Principal) -> Result<TenantLimits> {
        self.read(|r, _| {
            Ok(TenantLimits {
                tenant_id: caller.tenant_id().to_owned(),
                limits: limits_of(r, caller.tenant_id())?,
            })
        })
    }

    /// Replaces the daily limits. Errors: `Forbidden` for non-admins.
    pub fn set_limits(&self, caller: &Principal, limits: DailyLimits) -> Result<TenantLimits> {
        self.write_as(caller, |tx, ctx| put_limits(tx, ctx, caller, limits))
    }

    /// Usage of the four activities on `date` (today, UTC, when `None`).
    pub fn daily_usage(&self, caller: &Principal, date: Option<Date>) -> Result<DailyUsage> {
        self.read(|r, ctx| {
            let date = date.unwrap_or_else(|| ctx.now.date());
            let t = caller.tenant_id();
            let usage = Activity::ALL
                .iter()
                .map(|&a| {
                    Ok(ActivityUsage {
                        activity_type: a.as_str().to_owned(),
                        units: used_on(r, t, date, a)?,
                    })
                })
                .collect::<Result<Vec<_>>>()?;
            Ok(DailyUsage {
                date: date.to_string(),
                limits: TenantLimits {
                    tenant_id: t.to_owned(),
                    limits: limits_of(r, t)?,
                },
                usage,
            })
        })
    }
}
