//! Daily briefs (20 §3): generation, idempotent materialization and reads.
//!
//! A brief summarises every KPI of a tenant as of the end of one UTC calendar date, using the
//! shared window rule (`kpis::window`) with the cut-off at the last microsecond of the date.
//! Briefs are stored under (tenant, date), one per date, never regenerated; the date is a real
//! `YYYY-MM-DD` date (spec README decision 3), so "latest" is the newest date.
//!
//! `generate` is shared with the daily-brief runner; [`Bespin::preview_brief`] exposes it
//! without storing anything. [`Bespin::list_briefs`] pages through the stored dates, newest
//! first (what the workspace's date picker walks).

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::idempotency::{self, Idempotency, Stored};
use crate::kpis::{self, PointView};
use crate::limits::{Activity, invalid_date};
use crate::metering::Meter;
use crate::store::{Flow, Order, Prefix, Reader, Record, Table, TableInfo, WriteTx, key};
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

key! {
    /// (tenant, brief date).
    pub(crate) struct BriefKey<'a> { tenant_id: tenant, brief_date: date }
}

/// (tenant, brief date) → brief: one per tenant and date; dates sort chronologically.
pub(crate) const BRIEFS: Table<BriefKey<'static>, BriefRec> = Table::new("briefs");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&BRIEFS];

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

/// One stored brief in [`Bespin::list_briefs`]: its date and counts, not its content.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BriefListItem {
    /// The brief date, `YYYY-MM-DD`.
    pub date: String,
    /// The brief's id.
    pub brief_id: String,
    /// Its counts.
    pub summary: BriefSummary,
    /// How many alerts it raised.
    pub alerts: usize,
}

/// `GET /v1/briefs`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct BriefList {
    /// Newest date first.
    pub items: Vec<BriefListItem>,
}

/// Paging of [`Bespin::list_briefs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BriefPage {
    /// Only dates strictly before this one (none: from the newest).
    pub before: Option<Date>,
    /// 1–366 (default 31).
    pub limit: usize,
}

impl BriefPage {
    /// Validates the query strings: `before` a real `YYYY-MM-DD` date (422 at `["before"]`),
    /// `limit` an integer (`int_parsing`), clamped into 1..=366, default 31. The surface
    /// prefixes `"query"`.
    pub fn from_query(before: Option<&str>, limit: Option<&str>) -> Result<Self> {
        let limit = crate::validate::query_ints(|_| limit, &["limit"])?[0].unwrap_or(31);
        let before = match before {
            None => None,
            Some(s) => Some(Date::parse(s).ok_or_else(|| invalid_date(s, &["before"]))?),
        };
        Ok(Self::clamped(before, limit))
    }

    /// A page before `before` of `limit` briefs, clamped into 1..=366.
    pub fn clamped(before: Option<Date>, limit: i64) -> Self {
        BriefPage {
            before,
            limit: usize::try_from(limit.clamp(1, 366)).unwrap_or(31),
        }
    }
}

/// Input of [`Bespin::materialize_brief`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct MaterializeRequest {
    /// The brief date; today (UTC) when `None`.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub date: Option<Date>,
    /// 1–365, default 7.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub window_days: u32,
    /// 1–100, default 3.
    #[cfg_attr(feature = "openapi", schema(required = false))]
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
        let date = f.date("date", Presence::Optional);
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

fn brief_key(tenant_id: &str, date: Date) -> BriefKey<'_> {
    BriefKey::new(tenant_id, date)
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
) -> Result<Stored<Brief>> {
    idempotency::check_key(idempotency_key)?;
    caller.require(Permission::MaterializeBriefs, "materialize briefs")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "briefs")?;
    let date = req.date.unwrap_or_else(|| ctx.now.date());
    let scope = Idempotency::new(MATERIALIZE_ENDPOINT, idempotency_key, &req.normalized(date));
    idempotency::once(tx, ctx, tenant, &scope, |tx| {
        let key = Some(idempotency_key);
        Ok(ensure(tx, ctx, caller, key, date, req.window_days, req.top_n)?.0)
    })
}

/// The tenant's brief for `date`, generated now if there is none yet (steps 4–6 of
/// [`materialize`], shared with the daily-brief runner). Returns the brief and whether it was
/// created. An existing brief is returned as stored and costs nothing; a new one is checked
/// against credits and the daily limit, then stored, audited and metered under its own
/// request id (its audit row naming the request's `idempotency_key`).
pub(crate) fn ensure(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    idempotency_key: Option<&str>,
    date: Date,
    window_days: u32,
    top_n: u32,
) -> Result<(Brief, bool)> {
    let tenant = caller.tenant_id();
    let key = brief_key(tenant, date);
    if let Some(existing) = tx.get(&BRIEFS, &key)? {
        return Ok((view(existing), false));
    }
    let permit = Meter::one("daily_brief_generated", "daily_brief")
        .with_daily(Activity::DailyBriefGenerated)
        .check(tx, ctx, tenant)?;
    let content = generate(tx, tenant, date, window_days, top_n)?;
    let rec = BriefRec {
        brief_id: ids::new_id(),
        request_id: ids::new_id(),
        content,
        created_at: ctx.now,
    };
    tx.put(&BRIEFS, &key, &rec)?;
    let entry = audit::Entry::new(caller.user_id(), "briefs.materialize", &rec.request_id)
        .tool(Some("daily_brief"))
        .capability("briefs")
        .target("brief", &rec.brief_id)
        .units(permit.units())
        .idempotency_key(idempotency_key);
    audit::append(tx, ctx, tenant, entry)?;
    permit.record(tx, ctx, caller, &rec.request_id)?;
    let data = serde_json::json!({"brief_id": rec.brief_id, "brief_date": date.to_string()});
    events::emit(
        tx,
        ctx,
        caller,
        catalog::BRIEF_GENERATED,
        &rec.brief_id,
        &data,
    )?;
    Ok((view(rec), true))
}

/// The tenant's brief with the newest date, if any.
pub(crate) fn latest(r: &impl Reader, tenant_id: &str) -> Result<Option<Brief>> {
    let mut found = None;
    r.scan(
        &BRIEFS,
        &BRIEFS.prefix().tenant(tenant_id),
        Order::Desc,
        |_, rec: BriefRec| {
            found = Some(view(rec));
            Ok(Flow::Stop)
        },
    )?;
    Ok(found)
}

/// The tenant's stored brief for `date`, if any.
pub(crate) fn get(r: &impl Reader, tenant_id: &str, date: Date) -> Result<Option<Brief>> {
    Ok(r.get(&BRIEFS, &brief_key(tenant_id, date))?.map(view))
}

impl Bespin {
    /// Materializes a brief idempotently (see [`materialize`]).
    pub fn materialize_brief(
        &self,
        caller: &Principal,
        idempotency_key: &str,
        req: MaterializeRequest,
    ) -> Result<Stored<Brief>> {
        self.write_as(caller, |tx, ctx| {
            materialize(tx, ctx, caller, idempotency_key, req)
        })
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

    /// The caller's tenant's stored briefs, newest date first, before `page.before`, at most
    /// `page.limit`. Checks: role `ReadBriefs`. An empty list is not an error.
    pub fn list_briefs(&self, caller: &Principal, page: BriefPage) -> Result<BriefList> {
        caller.require(Permission::ReadBriefs, "read briefs")?;
        self.read(|r, _| {
            let t = caller.tenant_id();
            let to = page.before.map(|d| Prefix::of(&brief_key(t, d)));
            let mut items = Vec::new();
            r.scan_range(
                &BRIEFS,
                &BRIEFS.prefix().tenant(t),
                None,
                to.as_ref(),
                Order::Desc,
                &mut |_, rec: BriefRec| {
                    items.push(BriefListItem {
                        date: rec.content.date,
                        brief_id: rec.brief_id,
                        summary: rec.content.summary,
                        alerts: rec.content.alerts.len(),
                    });
                    Ok(if items.len() < page.limit {
                        Flow::Continue
                    } else {
                        Flow::Stop
                    })
                },
            )?;
            Ok(BriefList { items })
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
            latest(r, caller.tenant_id())?
                .ok_or_else(|| Error::NotFound("No briefs found for this tenant".into()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{db, kpi, tenant, trail};

    fn day(s: &str) -> Date {
        Date::parse(s).expect("date")
    }

    fn req(body: Value) -> MaterializeRequest {
        MaterializeRequest::from_json(&body).expect("valid")
    }

    #[test]
    fn stored_briefs_are_listed_newest_first_in_pages() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let (other, _) = tenant(&db);
        kpi(
            &db,
            &admin,
            "Down",
            &[("2026-01-01", 10.0), ("2026-01-03", 5.0)],
        );
        for d in ["2026-01-03", "2026-01-01", "2026-01-02"] {
            db.materialize_brief(&admin, d, req(json!({ "date": d })))
                .expect("brief");
        }
        db.materialize_brief(&other, "x", req(json!({"date": "2026-01-04"})))
            .expect("theirs");
        let page = |before: Option<&str>, limit: Option<&str>| {
            let p = BriefPage::from_query(before, limit).expect("page");
            let items = db.list_briefs(&member, p).expect("list").items;
            items
                .into_iter()
                .map(|i| (i.date, i.alerts))
                .collect::<Vec<_>>()
        };
        let all = page(None, None);
        let dates: Vec<&str> = all.iter().map(|(d, _)| d.as_str()).collect();
        assert_eq!(dates, ["2026-01-03", "2026-01-02", "2026-01-01"]);
        assert_eq!(all[0].1, 1, "the drop to 5 is an alert");
        assert_eq!(
            page(Some("2026-01-03"), Some("1")),
            [("2026-01-02".to_owned(), 0)]
        );
        assert_eq!(page(Some("2026-01-01"), None), []);
        assert_eq!(page(None, Some("0")).len(), 1, "limit clamped to 1");
        assert!(matches!(
            BriefPage::from_query(Some("2026-02-30"), None),
            Err(Error::Validation(_))
        ));
        assert!(matches!(
            BriefPage::from_query(None, Some("many")),
            Err(Error::Validation(_))
        ));
    }

    #[test]
    fn worked_example_of_the_contract() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let mrr = kpi(
            &db,
            &admin,
            "MRR",
            &[
                ("2026-01-20", 900.0),
                ("2026-01-24T00:00:00Z", 1000.0),
                ("2026-01-31", 1250.0),
                ("2026-02-05", 5000.0),
            ],
        );
        let down = kpi(
            &db,
            &admin,
            "Down",
            &[("2026-01-30", 3.0), ("2026-01-31", 2.0)],
        );
        kpi(
            &db,
            &admin,
            "Zero",
            &[("2026-01-30", 0.0), ("2026-01-31", 10.0)],
        );
        kpi(&db, &admin, "Later", &[("2026-02-02", 1.0)]);
        let c = db
            .preview_brief(&member, day("2026-02-01"), 7, 2)
            .expect("brief");
        assert_eq!(
            c.summary,
            BriefSummary {
                kpis_considered: 3,
                kpis_up: 2,
                kpis_down: 1,
                kpis_flat: 0
            }
        );
        let names: Vec<&str> = c.highlights.iter().map(|h| h.name.as_str()).collect();
        assert_eq!(names, ["Down", "MRR"]);
        assert_eq!(c.highlights[0].delta_pct, Some(-33.33333333333333));
        assert_eq!(c.highlights[1].kpi_id, mrr);
        assert_eq!(c.highlights[1].latest.ts, "2026-01-31T00:00:00Z");
        assert_eq!(c.highlights[1].start.ts, "2026-01-24T00:00:00Z");
        assert_eq!(
            (c.highlights[1].delta_abs, c.highlights[1].delta_pct),
            (250.0, Some(25.0))
        );
        assert_eq!(c.alerts.len(), 1);
        assert_eq!(
            serde_json::to_value(&c.alerts[0]).expect("json"),
            json!({"kpi_id": down, "name": "Down", "severity": "high",
                   "reason": "delta_pct_below_threshold", "delta_pct": -33.33333333333333})
        );
        let keys: Vec<String> = serde_json::to_value(&c)
            .expect("json")
            .as_object()
            .expect("object")
            .keys()
            .cloned()
            .collect();
        assert_eq!(keys.len(), 6);
    }

    #[test]
    fn ties_boundaries_and_edge_cases() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        // Enumeration is by name (byte order: upper case first), then creation order.
        kpi(
            &db,
            &admin,
            "b",
            &[("2026-01-01", 100.0), ("2026-01-02", 90.0)],
        ); // -10 exactly
        kpi(
            &db,
            &admin,
            "B",
            &[("2026-01-01", 100.0), ("2026-01-02", 110.0)],
        ); // +10
        kpi(
            &db,
            &admin,
            "b",
            &[("2026-01-01", 1000.0), ("2026-01-02", 900.1)],
        ); // -9.99
        kpi(
            &db,
            &admin,
            "Neg",
            &[("2026-01-01", -100.0), ("2026-01-02", -50.0)],
        ); // +50
        kpi(&db, &admin, "Single", &[("2026-01-02", 7.0)]);
        kpi(
            &db,
            &admin,
            "Zero",
            &[("2026-01-01", 0.0), ("2026-01-02", -5.0)],
        );
        let c = db
            .preview_brief(&admin, day("2026-01-02"), 7, 100)
            .expect("brief");
        let order: Vec<(String, Option<f64>)> = c
            .highlights
            .iter()
            .map(|h| (h.name.clone(), h.delta_pct))
            .collect();
        let expected: Vec<(String, Option<f64>)> = vec![
            ("Neg".into(), Some(50.0)),
            ("B".into(), Some(10.0)),
            ("b".into(), Some(-10.0)),
            ("b".into(), Some(-9.989999999999997)),
            ("Single".into(), Some(0.0)),
            ("Zero".into(), None),
        ];
        assert_eq!(order, expected, "top_n larger than the KPI count");
        assert_eq!(
            c.summary,
            BriefSummary {
                kpis_considered: 6,
                kpis_up: 2,
                kpis_down: 3,
                kpis_flat: 1
            }
        );
        let alerts: Vec<f64> = c.alerts.iter().map(|a| a.delta_pct).collect();
        assert_eq!(
            alerts,
            [-10.0],
            "exactly -10 alerts, -9.99 does not; null never"
        );
        let single = &c.highlights[4];
        assert_eq!(
            (single.start.clone(), single.delta_abs),
            (single.latest.clone(), 0.0)
        );
        // Before any point: nothing considered.
        let c = db
            .preview_brief(&admin, day("2025-12-31"), 7, 3)
            .expect("brief");
        assert_eq!(c.summary, BriefSummary::default());
        assert!(c.highlights.is_empty() && c.alerts.is_empty());
    }

    #[test]
    fn materialize_is_idempotent_and_meters_once() {
        let (db, clock) = db();
        let (admin, member) = tenant(&db);
        kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-30", 1.0), ("2026-01-31", 2.0)],
        );
        let before = trail(&db, &admin);
        let e = db
            .materialize_brief(&member, "k", req(json!({})))
            .expect_err("member");
        assert_eq!(
            e.to_string(),
            "Role 'member' is not authorized to materialize briefs"
        );
        let stored = db
            .materialize_brief(&admin, "k", req(json!({})))
            .expect("brief");
        let first = stored.clone().into_value().expect("brief");
        assert_eq!(first.content.date, "2026-01-31", "today by default");
        assert_eq!(first.content.summary.kpis_up, 1);
        assert_eq!(trail(&db, &admin), (before.0 + 1, before.1 + 1));
        let audit = db.audit_log(&admin, 1).expect("audit");
        assert_eq!(
            (audit[0].action.as_str(), audit[0].tool_name.as_deref()),
            ("briefs.materialize", Some("daily_brief"))
        );
        assert_eq!(audit[0].request_id, first.request_id);
        let ledger = db.billing_ledger(&admin, None, 1).expect("ledger");
        assert_eq!(ledger.items[0].event_key, "daily_brief_generated");
        assert_eq!(ledger.items[0].request_id, first.request_id);
        let after = trail(&db, &admin);
        // Replay: same body (date resolved), nothing written.
        let again = db
            .materialize_brief(
                &admin,
                "k",
                req(json!({"date": "2026-01-31", "window_days": 7})),
            )
            .expect("replay");
        assert!(again.replayed());
        assert_eq!(again.json(), stored.json(), "byte for byte");
        assert_eq!(trail(&db, &admin), after);
        let e = db
            .materialize_brief(&admin, "k", req(json!({"top_n": 4})))
            .expect_err("409");
        assert_eq!(
            e.to_string(),
            "Idempotency key 'k' was already used with a different request body"
        );
        // Existing brief, new key and other parameters: the stored brief, at no cost.
        let existing = db
            .materialize_brief(&admin, "k2", req(json!({"top_n": 9})))
            .expect("existing");
        assert_eq!(existing.into_value().expect("brief"), first);
        assert_eq!(trail(&db, &admin), after);
        assert!(matches!(
            db.materialize_brief(&admin, "k2", req(json!({"top_n": 8}))),
            Err(Error::IdempotencyConflict(_))
        ));
        // The reads.
        assert_eq!(db.brief(&member, "2026-01-31").expect("get"), first);
        clock.advance(Timestamp::DAY_MICROS);
        let next = db
            .materialize_brief(&admin, "k3", req(json!({})))
            .and_then(Stored::into_value)
            .expect("next day");
        assert_eq!(next.content.date, "2026-02-01");
        assert_eq!(db.latest_brief(&member).expect("latest"), next);
        let e = db.brief(&member, "2026-01-30").expect_err("404");
        assert_eq!(e.to_string(), "Brief for date '2026-01-30' not found");
        assert!(matches!(
            db.brief(&member, "2026-13-01"),
            Err(Error::Validation(_))
        ));
    }

    #[test]
    fn tenants_are_independent_and_bad_input_is_422() {
        let (db, _) = db();
        let (a, _) = tenant(&db);
        let (b, _) = tenant(&db);
        let e = db.latest_brief(&b).expect_err("none");
        assert_eq!(e.to_string(), "No briefs found for this tenant");
        kpi(&db, &a, "A", &[("2026-01-31", 1.0)]);
        let body = json!({"date": "2026-01-31"});
        let ba = db
            .materialize_brief(&a, "same", req(body.clone()))
            .and_then(Stored::into_value)
            .expect("a");
        let bb = db
            .materialize_brief(&b, "same", req(body))
            .and_then(Stored::into_value)
            .expect("b");
        assert_ne!(ba.brief_id, bb.brief_id);
        assert_eq!(
            (
                ba.content.summary.kpis_considered,
                bb.content.summary.kpis_considered
            ),
            (1, 0)
        );
        assert_eq!(db.brief(&b, "2026-01-31").expect("b").brief_id, bb.brief_id);
        for bad in [
            json!({"date": "2026-13-01"}),
            json!({"date": "2026-1-5"}),
            json!({"date": 5}),
            json!({"top_n": 0}),
            json!({"top_n": 101}),
            json!({"window_days": 366}),
            json!({"window_days": 1.5}),
        ] {
            assert!(
                matches!(
                    MaterializeRequest::from_json(&bad),
                    Err(Error::Validation(_))
                ),
                "{bad}"
            );
        }
        let ok = req(json!({"date": null, "window_days": "30", "top_n": 100, "x": 1}));
        assert_eq!((ok.date, ok.window_days, ok.top_n), (None, 30, 100));
    }
}
