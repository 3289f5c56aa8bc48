//! Daily briefs (20 §3): generation, idempotent materialization and reads.
//!
//! A brief summarises every KPI of a tenant as of the end of one UTC calendar date, using the
//! shared window rule ([`kpis::window`]) with the cut-off at the last microsecond of the date.
//! Briefs are stored under (tenant, date), one per date, never regenerated; the date is a real
//! `YYYY-MM-DD` date (spec README decision 3), so "latest" is the newest date.
//!
//! [`generate`] is shared with the daily-brief runner; [`Bespin::preview_brief`] exposes it
//! without storing anything.

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::idempotency::{self, Idempotency};
use crate::kpis::{self, PointView};
use crate::limits::{Activity, invalid_date};
use crate::metering::Meter;
use crate::store::{Flow, Key, Order, Reader, Record, WriteTx, tables};
use crate::time::{Date, Timestamp};
use crate::validate::{Bounds, Fields, Presence, got};
use crate::{Bespin, Ctx, audit, ids};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

/// The endpoint string idempotency records of materializations are scoped by.
pub const MATERIALIZE_ENDPOINT: &str = "/v1/briefs/materialize";

/// The threshold at or below which a KPI's `delta_pct` raises an alert.
pub const ALERT_THRESHOLD_PCT: f64 = -10.0;

/// A stored brief.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct BriefRec {
    pub brief_id: String,
    pub request_id: String,
    pub content: BriefContent,
    pub created_at: Timestamp,
}
impl Record for BriefRec {}

/// Counts of the KPIs a brief considered.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BriefSummary {
    /// KPIs with at least one point at or before the end of the brief date.
    pub kpis_considered: u64,
    /// Considered KPIs with `delta_abs > 0`.
    pub kpis_up: u64,
    /// Considered KPIs with `delta_abs < 0`.
    pub kpis_down: u64,
    /// Considered KPIs with `delta_abs == 0`.
    pub kpis_flat: u64,
}

/// One KPI in a brief's highlights.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Highlight {
    /// The KPI.
    pub kpi_id: String,
    /// Its name.
    pub name: String,
    /// Its unit.
    pub unit: Option<String>,
    /// The newest point at or before the end of the brief date.
    pub latest: PointView,
    /// The window's start point.
    pub start: PointView,
    /// `latest - start`.
    pub delta_abs: f64,
    /// `delta_abs / |start| × 100`; null when start is 0.
    pub delta_pct: Option<f64>,
}

/// A KPI whose `delta_pct` is at or below −10.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Alert {
    /// The KPI.
    pub kpi_id: String,
    /// Its name.
    pub name: String,
    /// Always `high`.
    pub severity: String,
    /// Always `delta_pct_below_threshold`.
    pub reason: String,
    /// The KPI's `delta_pct`.
    pub delta_pct: f64,
}

/// The content of a brief (keys in the contract's order).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BriefContent {
    /// The brief date, `YYYY-MM-DD`.
    pub date: String,
    /// Window length in days.
    pub window_days: u32,
    /// Maximum number of highlights.
    pub top_n: u32,
    /// Counts.
    pub summary: BriefSummary,
    /// Up to `top_n` KPIs by |delta_pct| descending (null counts as 0), ties in enumeration
    /// order.
    pub highlights: Vec<Highlight>,
    /// Every considered KPI with `delta_pct <= -10`, in enumeration order.
    pub alerts: Vec<Alert>,
}

/// A brief as the API returns it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Brief {
    /// The brief's id.
    pub brief_id: String,
    /// The request id of the materialization that generated it.
    pub request_id: String,
    /// The content.
    pub content: BriefContent,
}

/// Input of [`Bespin::materialize_brief`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MaterializeRequest {
    /// The brief date; today (UTC) when `None`.
    pub date: Option<Date>,
    /// 1–365, default 7.
    pub window_days: u32,
    /// 1–100, default 3.
    pub top_n: u32,
}

impl Default for MaterializeRequest {
    fn default() -> Self {
        MaterializeRequest {
            date: None,
            window_days: 7,
            top_n: 3,
        }
    }
}

impl MaterializeRequest {
    /// Validates a request body: `date` absent/null or a real `YYYY-MM-DD` date
    /// (`date_from_datetime_parsing` otherwise), `window_days` an integer 1–365 (default 7),
    /// `top_n` an integer 1–100 (default 3). Unknown members are ignored.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let date = match f.string("date", Presence::Optional, crate::validate::Len::ANY) {
            Some(Some(s)) => match Date::parse(&s) {
                Some(d) => Some(Some(d)),
                None => {
                    f.fail(
                        "date",
                        "date_from_datetime_parsing",
                        "Input should be a valid date in the format YYYY-MM-DD",
                        Value::String(s),
                    );
                    None
                }
            },
            Some(None) => Some(None),
            None => None,
        };
        let window_days = f.int("window_days", Presence::Optional, Bounds::range(1, 365));
        let top_n = f.int("top_n", Presence::Optional, Bounds::range(1, 100));
        f.finish()?;
        let small = |n: Option<i64>, default: u32| {
            n.map_or(Ok(default), |n| {
                u32::try_from(n).map_err(|_| Error::Internal("bounded integer".into()))
            })
        };
        Ok(MaterializeRequest {
            date: got(date)?,
            window_days: small(got(window_days)?, 7)?,
            top_n: small(got(top_n)?, 3)?,
        })
    }

    /// The normalised body the idempotency fingerprint covers, with the date resolved.
    pub fn normalized(&self, date: Date) -> Value {
        json!({"date": date.to_string(), "window_days": self.window_days, "top_n": self.top_n})
    }
}

fn brief_key(tenant_id: &str, date: Date) -> Key {
    Key::new().str(tenant_id).part(date)
}

fn view(rec: BriefRec) -> Brief {
    Brief {
        brief_id: rec.brief_id,
        request_id: rec.request_id,
        content: rec.content,
    }
}

/// Generates (does not store) the brief content of 20 §3.1 for `tenant_id` and `date`, with
/// parsed instants and the shared window rule:
///
/// 1. KPIs enumerated by name (byte order), equal names in creation order;
/// 2. per KPI, [`kpis::window`] with the cut-off at the end of `date` (UTC, inclusive);
///    KPIs without a point at or before it are skipped;
/// 3. summary by the sign of `delta_abs`; highlights by |delta_pct| descending (null as 0),
///    stable, first `top_n`; alerts for `delta_pct <= -10`, in enumeration order.
///
/// Costs two range scans per KPI. Errors: storage only.
pub(crate) fn generate(
    r: &impl Reader,
    tenant_id: &str,
    date: Date,
    window_days: u32,
    top_n: u32,
) -> Result<BriefContent> {
    let cutoff = Timestamp(date.start().0 + Timestamp::DAY_MICROS - 1);
    let mut summary = BriefSummary::default();
    let mut considered: Vec<Highlight> = Vec::new();
    for (kpi_id, rec) in kpis::by_name(r, tenant_id)? {
        let Some(w) = kpis::window(r, tenant_id, &kpi_id, Some(cutoff), u64::from(window_days))?
        else {
            continue;
        };
        summary.kpis_considered += 1;
        if w.delta_abs > 0.0 {
            summary.kpis_up += 1;
        } else if w.delta_abs < 0.0 {
            summary.kpis_down += 1;
        } else {
            summary.kpis_flat += 1;
        }
        considered.push(Highlight {
            kpi_id,
            name: rec.name,
            unit: rec.unit,
            latest: w.latest.view(),
            start: w.start.view(),
            delta_abs: w.delta_abs,
            delta_pct: w.delta_pct,
        });
    }
    let alerts = considered
        .iter()
        .filter_map(|h| match h.delta_pct {
            Some(p) if p <= ALERT_THRESHOLD_PCT => Some(Alert {
                kpi_id: h.kpi_id.clone(),
                name: h.name.clone(),
                severity: "high".into(),
                reason: "delta_pct_below_threshold".into(),
                delta_pct: p,
            }),
            _ => None,
        })
        .collect();
    let magnitude = |h: &Highlight| h.delta_pct.map_or(0.0, f64::abs);
    // `sort_by` is stable: ties keep enumeration order.
    considered.sort_by(|a, b| magnitude(b).total_cmp(&magnitude(a)));
    considered.truncate(usize::try_from(top_n).unwrap_or(usize::MAX));
    Ok(BriefContent {
        date: date.to_string(),
        window_days,
        top_n,
        summary,
        highlights: considered,
        alerts,
    })
}

/// Materializes the caller's tenant's brief for a date (20 §3.2), in one transaction:
///
/// 1. role `MaterializeBriefs` (`… to materialize briefs`); 2. entitlement `briefs`;
/// 3. resolve the date (today, UTC, when absent) and look up the idempotency key — a replay
///    returns the stored body and does nothing else, another body is a 409;
/// 4. an existing brief for the date is returned as stored, and the idempotency record is
///    written; nothing is checked or consumed;
/// 5. credits for `daily_brief_generated` × 1, then its daily limit;
/// 6. generate and store the brief; audit `briefs.materialize` (tool `daily_brief`); usage event
///    with the brief's request id; daily counter for today; idempotency record.
///
/// Errors: `MissingHeader` for a blank key, `Forbidden`, the entitlement errors,
/// `IdempotencyConflict`, `QuotaExceeded`, `DailyQuotaExceeded`, `UnknownEventType`,
/// `PlanMissing`. A failure writes nothing.
pub fn materialize(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    idempotency_key: &str,
    req: MaterializeRequest,
) -> Result<Brief> {
    if idempotency_key.trim().is_empty() {
        return Err(Error::MissingHeader("Idempotency-Key"));
    }
    caller.require(Permission::MaterializeBriefs, "materialize briefs")?;
    let tenant = caller.tenant_id();
    require_capability(tx, tenant, "briefs")?;
    let date = req.date.unwrap_or_else(|| ctx.now.date());
    let scope = Idempotency::new(MATERIALIZE_ENDPOINT, idempotency_key, &req.normalized(date));
    if let Some(stored) = idempotency::lookup::<Brief>(tx, ctx, tenant, &scope)? {
        return Ok(stored);
    }
    let key = brief_key(tenant, date);
    if let Some(existing) = tx.get(&tables::BRIEFS, &key)? {
        let brief = view(existing);
        idempotency::store(tx, ctx, tenant, &scope, &brief)?;
        return Ok(brief);
    }
    let permit = Meter::one("daily_brief_generated", "daily_brief")
        .with_daily(Activity::DailyBriefGenerated)
        .check(tx, ctx, tenant)?;
    let content = generate(tx, tenant, date, req.window_days, req.top_n)?;
    let rec = BriefRec {
        brief_id: ids::new_id(),
        request_id: ids::new_id(),
        content,
        created_at: ctx.now,
    };
    tx.put(&tables::BRIEFS, &key, &rec)?;
    audit::record(
        tx,
        ctx,
        caller,
        "briefs.materialize",
        Some("daily_brief"),
        &rec.request_id,
    )?;
    permit.record(tx, ctx, caller, &rec.request_id)?;
    let brief = view(rec);
    idempotency::store(tx, ctx, tenant, &scope, &brief)?;
    Ok(brief)
}

/// The tenant's stored brief for `date`, if any.
pub(crate) fn get(r: &impl Reader, tenant_id: &str, date: Date) -> Result<Option<Brief>> {
    Ok(r.get(&tables::BRIEFS, &brief_key(tenant_id, date))?
        .map(view))
}

impl Bespin {
    /// Materializes a brief idempotently (see [`materialize`]).
    pub fn materialize_brief(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        req: MaterializeRequest,
    ) -> Result<Brief> {
        self.write(|tx, ctx| materialize(tx, ctx, caller, idempotency_key, req))
    }

    /// The caller's tenant's brief for `date` (`GET /v1/briefs/{date}`). Checks, in order:
    /// `date` is a real `YYYY-MM-DD` date (422 at `["date"]`; the surface prefixes `"path"`),
    /// role `ReadBriefs` (`… to read briefs`), the brief exists (404
    /// `Brief for date '<date>' not found`). No entitlement check.
    pub fn brief(&self, caller: &Principal, date: &str) -> Result<Brief> {
        let d = Date::parse(date).ok_or_else(|| invalid_date(date, &["date"]))?;
        caller.require(Permission::ReadBriefs, "read briefs")?;
        self.read(|r, _| {
            get(r, caller.tenant_id(), d)?
                .ok_or_else(|| Error::NotFound(format!("Brief for date '{date}' not found")))
        })
    }

    /// Generates the caller's tenant's brief content for `date` without storing, metering or
    /// auditing anything (what [`materialize`] would store for a new date). Checks: role
    /// `ReadBriefs`.
    pub fn preview_brief(
        &self,
        caller: &Principal,
        date: Date,
        window_days: u32,
        top_n: u32,
    ) -> Result<BriefContent> {
        caller.require(Permission::ReadBriefs, "read briefs")?;
        self.read(|r, _| generate(r, caller.tenant_id(), date, window_days, top_n))
    }

    /// The caller's tenant's brief with the newest date (`GET /v1/briefs/latest`). Checks: role
    /// `ReadBriefs`; 404 `No briefs found for this tenant` when there is none.
    pub fn latest_brief(&self, caller: &Principal) -> Result<Brief> {
        caller.require(Permission::ReadBriefs, "read briefs")?;
        self.read(|r, _| {
            let mut found = None;
            r.scan(
                &tables::BRIEFS,
                &Key::new().str(caller.tenant_id()),
                Order::Desc,
                |_, rec: BriefRec| {
                    found = Some(view(rec));
                    Ok(Flow::Stop)
                },
            )?;
            found.ok_or_else(|| Error::NotFound("No briefs found for this tenant".into()))
        })
    }
}
