//! The daily-brief runner (20 §5): ensure the brief for a date, then notify every opted-in
//! user of the tenant within the notification allowance — in one transaction, idempotent per
//! `Idempotency-Key`.
//!
//! Recipients are the tenant's users **in creation order** (the bootstrap admin first), minus
//! those whose saved preference turns the daily brief off; users without a saved preference
//! receive it. Users already notified for the date are counted as ignored and cost nothing.
//! The allowance is `min(credits allowance, cap allowance, daily allowance)` computed in exact
//! decimals (a zero-weight `notification_enqueued` is not limited by credits); recipients past
//! it are counted as suppressed, in the same stable order on every run.

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::briefs::{self, MaterializeRequest};
use crate::error::Result;
use crate::idempotency::{self, Idempotency, Stored};
use crate::limits::Activity;
use crate::metering::Meter;
use crate::notifications::{self, DAILY_BRIEF};
use crate::store::WriteTx;
use crate::{Bespin, Ctx, audit, ids, tenancy};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The endpoint path that scopes the runner's idempotency keys.
pub const DAILY_BRIEF_ENDPOINT: &str = "/v1/jobs/daily-brief";

/// What a run did (`POST /v1/jobs/daily-brief`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct RunReport {
    /// The brief date.
    pub date: String,
    /// The brief used (new or stored).
    pub brief_id: String,
    /// Whether this run generated the brief.
    pub brief_created: bool,
    /// Notifications enqueued now.
    pub notifications_inserted: u64,
    /// Recipients already notified for the date.
    pub notifications_ignored: u64,
    /// Recipients left out because the allowance ran out.
    pub notifications_suppressed_due_to_quota: u64,
}

/// Runs the daily-brief job for the caller's tenant (admin). Order: role (`… to run jobs`),
/// capabilities `briefs` then `notifications`, idempotency (replay / 409), brief (credits and
/// daily limit only when it must be generated), notifications within the allowance, one audit
/// row `notifications.enqueue` when there was any recipient. Errors: `MissingHeader`,
/// `Forbidden`, the entitlement errors, `IdempotencyConflict`, `QuotaExceeded` and
/// `DailyQuotaExceeded` for the brief (never for notifications). A failure writes nothing.
pub fn run_daily_brief(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    idempotency_key: &str,
    req: MaterializeRequest,
) -> Result<Stored<RunReport>> {
    idempotency::check_key(idempotency_key)?;
    caller.require(Permission::RunJobs, "run jobs")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "briefs")?;
    require_capability(tx, caller, "notifications")?;
    let date = req.date.unwrap_or_else(|| ctx.now.date());
    let scope = Idempotency::new(DAILY_BRIEF_ENDPOINT, idempotency_key, &req.normalized(date));
    let key = Some(idempotency_key);
    idempotency::once(tx, ctx, tenant, &scope, |tx| {
        let (brief, brief_created) =
            briefs::ensure(tx, ctx, caller, key, date, req.window_days, req.top_n)?;
        let payload = json!({
            "title": "Daily Brief",
            "date": brief.content.date,
            "summary": brief.content.summary,
            "highlights": brief.content.highlights,
        });
        let meter = Meter::one("notification_enqueued", "daily_brief")
            .with_daily(Activity::NotificationEnqueued);
        let (mut allowance, permit) = meter.allowance(tx, ctx, tenant)?;
        let run_id = ids::new_id();
        let (mut inserted, mut ignored, mut suppressed) = (0u64, 0u64, 0u64);
        for user in tenancy::users_in_creation_order(tx, tenant)? {
            if notifications::saved_pref(tx, tenant, &user)? == Some(false) {
                continue;
            }
            if notifications::already_notified(tx, tenant, &user, DAILY_BRIEF, date)? {
                ignored += 1;
                continue;
            }
            match permit {
                Some(p) if allowance > 0 => {
                    notifications::enqueue(tx, ctx, tenant, &user, date, &payload, &run_id)?;
                    p.record(tx, ctx, caller, &run_id)?;
                    allowance -= 1;
                    inserted += 1;
                }
                _ => suppressed += 1,
            }
        }
        if inserted + ignored + suppressed > 0 {
            // Units: the notifications enqueued (each metered as one).
            let entry = audit::Entry::new(caller.user_id(), "notifications.enqueue", &run_id)
                .tool(Some("daily_brief"))
                .capability("notifications")
                .target("brief", &brief.brief_id)
                .units(inserted)
                .idempotency_key(key);
            audit::append(tx, ctx, tenant, entry)?;
        }
        Ok(RunReport {
            date: date.to_string(),
            brief_id: brief.brief_id,
            brief_created,
            notifications_inserted: inserted,
            notifications_ignored: ignored,
            notifications_suppressed_due_to_quota: suppressed,
        })
    })
}

impl Bespin {
    /// Runs the daily-brief job, in one transaction (see [`run_daily_brief`]).
    pub fn run_daily_brief(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        req: MaterializeRequest,
    ) -> Result<Stored<RunReport>> {
        self.write_as(caller, |tx, ctx| {
            run_daily_brief(tx, ctx, caller, idempotency_key, req)
        })
    }
}
