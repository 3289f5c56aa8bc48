//! Tenant subscriptions: exactly one per tenant, created as `starter`/`active` with the tenant,
//! changed only through the platform-admin API. The stored period is informational; enforcement
//! always uses the current UTC month.

use super::catalog;
use crate::error::{Error, Result};
use crate::events;
use crate::store::{Reader, Record, Table, TableInfo, WriteTx, key};
use crate::tenancy::{TENANTS, TenantKey};
use crate::time::{Date, Timestamp, next_month_start};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// A stored subscription.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct SubscriptionRec {
    pub plan_id: String,
    pub status: String,
    pub period_start: Date,
    pub period_end: Date,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for SubscriptionRec {}

key! {
    /// (tenant).
    pub(crate) struct SubscriptionKey<'a> { tenant_id: tenant }
}

/// (tenant) → subscription.
pub(crate) const SUBSCRIPTIONS: Table<SubscriptionKey<'static>, SubscriptionRec> =
    Table::new("subscriptions").memo();

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&SUBSCRIPTIONS];

/// A subscription as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Subscription {
    /// The tenant.
    pub tenant_id: String,
    /// The plan.
    pub plan_id: String,
    /// `active` or `suspended`.
    pub status: String,
    /// Stored period start (`YYYY-MM-DD`).
    pub period_start: String,
    /// Stored period end (`YYYY-MM-DD`).
    pub period_end: String,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

pub(crate) fn view(tenant_id: &str, r: &SubscriptionRec) -> Subscription {
    Subscription {
        tenant_id: tenant_id.to_owned(),
        plan_id: r.plan_id.clone(),
        status: r.status.clone(),
        period_start: r.period_start.to_string(),
        period_end: r.period_end.to_string(),
        created_at: r.created_at.to_rfc3339(),
        updated_at: r.updated_at.to_rfc3339(),
    }
}

fn key(tenant_id: &str) -> SubscriptionKey<'_> {
    SubscriptionKey::new(tenant_id)
}

/// The tenant's subscription, if any.
pub(crate) fn get(r: &impl Reader, tenant_id: &str) -> Result<Option<SubscriptionRec>> {
    r.get(&SUBSCRIPTIONS, &key(tenant_id))
}

/// Subscribes a new tenant to `starter` for the current month.
pub(crate) fn create_default(tx: &mut WriteTx, ctx: &Ctx, tenant_id: &str) -> Result<()> {
    let period = ctx.now.period();
    let rec = SubscriptionRec {
        plan_id: "starter".into(),
        status: "active".into(),
        period_start: period.start(),
        period_end: period.end(),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    tx.put(&SUBSCRIPTIONS, &key(tenant_id), &rec)
}

/// Input of [`Bespin::admin_set_subscription`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct SubscriptionUpdate {
    /// The plan to move to (1–100 characters; must exist).
    pub plan_id: String,
    /// `active` (default) or `suspended`.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub status: String,
    /// A new stored period start (a real date); the end becomes the first of the next month.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub period_start: Option<Date>,
}

impl SubscriptionUpdate {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let plan_id = f.req_string("plan_id", Len::between(1, 100));
        let status = f.choice(
            "status",
            Presence::Optional,
            &["active", "suspended"],
            "^(active|suspended)$",
        );
        let period_start = f.date("period_start", Presence::Optional);
        f.finish()?;
        Ok(SubscriptionUpdate {
            plan_id: got(plan_id)?,
            status: got(status)?.unwrap_or_else(|| "active".into()),
            period_start: got(period_start)?,
        })
    }
}

/// Creates or changes a tenant's subscription (platform admin) in the open transaction: see
/// [`Bespin::admin_set_subscription`].
pub fn set(
    tx: &mut WriteTx,
    ctx: &Ctx,
    tenant_id: &str,
    req: SubscriptionUpdate,
) -> Result<Subscription> {
    if !tx.contains(&TENANTS, &TenantKey::new(tenant_id))? {
        return Err(Error::NotFound(format!("Tenant '{tenant_id}' not found")));
    }
    if catalog::plan(tx, &req.plan_id)?.is_none() {
        return Err(Error::NotFound(format!("Plan '{}' not found", req.plan_id)));
    }
    let rec = match get(tx, tenant_id)? {
        Some(mut rec) => {
            rec.plan_id = req.plan_id;
            rec.status = req.status;
            if let Some(start) = req.period_start {
                rec.period_start = start;
                rec.period_end = next_month_start(start);
            }
            rec.updated_at = ctx.now;
            rec
        }
        None => {
            let start = req.period_start.unwrap_or_else(|| ctx.now.period().start());
            SubscriptionRec {
                plan_id: req.plan_id,
                status: req.status,
                period_start: start,
                period_end: next_month_start(start),
                created_at: ctx.now,
                updated_at: ctx.now,
            }
        }
    };
    tx.put(&SUBSCRIPTIONS, &key(tenant_id), &rec)?;
    let v = view(tenant_id, &rec);
    let actor = events::Actor::Platform(tenant_id);
    events::emit(
        tx,
        ctx,
        actor,
        events::catalog::SUBSCRIPTION_CHANGED,
        tenant_id,
        &v,
    )?;
    Ok(v)
}

impl Bespin {
    /// Creates or changes a tenant's subscription (platform admin). `status` is always set (an
    /// omitted status means `active`); a given `period_start` is stored with its derived end.
    /// Errors: `NotFound` for the tenant, then for the plan.
    pub fn admin_set_subscription(
        &self,
        tenant_id: &str,
        req: SubscriptionUpdate,
    ) -> Result<Subscription> {
        self.write(|tx, ctx| set(tx, ctx, tenant_id, req))
    }
}
