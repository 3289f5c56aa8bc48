//! KPI definitions and their time series (10 §10.8–§10.11, spec README decisions 2, 4 and 5).
//!
//! A KPI definition belongs to one tenant. Its points are stored in chunks of up to 128
//! consecutive points, keyed (tenant, kpi, instant of the chunk's first point) (`series`),
//! so "latest" and the start of a window are one seek and a look inside one chunk, and a bulk
//! ingest of n points writes about n / 128 rows. Two indexes order a tenant's definitions: by
//! creation (newest-first listing) and by name (brief enumeration).
//!
//! Ingest semantics do not depend on the chunking: within one request the first point for an
//! instant wins; an instant already stored keeps its stored value; only new points are counted
//! (`inserted`) and metered, and the quota is checked before anything is written.
//!
//! Point timestamps are parsed, never compared as text: a `ts` is an RFC 3339 date-time (any
//! offset) or a bare `YYYY-MM-DD` date (midnight UTC), stored as a UTC instant and written back
//! as `YYYY-MM-DDTHH:MM:SSZ` (with `.ffffff` only when the sub-second part is non-zero).
//!
//! `window` is the one window rule of decision 4, shared by the `kpi_summary` tool, the brief
//! generator and (later) the chat `kpi:<name>` intent. `chart` reads a range of a series for
//! a chart, downsampled to a bounded number of points.

use crate::auth::{Permission, Principal};
use crate::billing::require_capability;
use crate::check::{Checker, Expected};
use crate::error::{Error, FieldError, LocPart, Result};
use crate::events::{self, catalog};
use crate::metering::Meter;
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, ids};
use chrono::DateTime;
use serde::{Deserialize, Serialize};
use serde_json::Value;

mod chart;
pub(crate) mod series;

pub use chart::{DeferredSeries, Series, SeriesQuery, SeriesRead};

/// A stored KPI definition.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct KpiRec {
    pub name: String,
    pub unit: Option<String>,
    pub description: Option<String>,
    pub created_at: Timestamp,
    /// Creation sequence (database-wide), the tie-breaker of both indexes.
    pub seq: u64,
}
impl Record for KpiRec {}

/// A point as layouts 1 to 3 stored it, one row per point in [`series::LEGACY_POINTS`] (the
/// instant is in the key). Read by the upgrade to layout 4 ([`series::chunk_legacy_points`]);
/// the console still shows each point in this shape.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub(crate) struct PointRec {
    pub value: f64,
    pub created_at: Timestamp,
}
impl Record for PointRec {}

/// Input of [`Bespin::create_kpi`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewKpi {
    /// Display name, 1–255 characters; need not be unique.
    pub name: String,
    /// Unit label, at most 50 characters.
    pub unit: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

impl NewKpi {
    /// Validates a request body (`name`, optional `unit` and `description`).
    /// Errors: `Validation` with one item per failing field.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let name = f.req_string("name", Len::between(1, 255));
        let unit = f.string("unit", Presence::Optional, Len::at_most(50));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        f.finish()?;
        Ok(NewKpi {
            name: got(name)?,
            unit: got(unit)?,
            description: got(description)?,
        })
    }
}

/// A KPI definition as the API shows it (no `created_at`, no `tenant_id`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Kpi {
    /// The KPI id (UUID v4).
    pub kpi_id: String,
    /// Display name.
    pub name: String,
    /// Unit label.
    pub unit: Option<String>,
    /// Free text.
    pub description: Option<String>,
}

/// One point of a bulk-ingest request, already parsed.
#[derive(Debug, Clone, Copy, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewPoint {
    /// The point's instant (UTC).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub ts: Timestamp,
    /// A finite value.
    pub value: f64,
}

/// Input of [`Bespin::ingest_points`]: at least one point.
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointsBulk {
    /// The points, in request order (the first point for an instant wins).
    pub points: Vec<NewPoint>,
}

impl PointsBulk {
    /// Validates a request body `{"points":[{"ts","value"},…]}`: at least one item; each `ts`
    /// an RFC 3339 date-time or a `YYYY-MM-DD` date (else `datetime_parsing` at
    /// `["points", i, "ts"]`); each `value` a finite number (numeric strings and booleans
    /// coerced; `NaN`/`Infinity` refused with `finite_number`).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let items = f.list("points", Presence::Required, 1);
        let mut points = Vec::new();
        let mut nested: Vec<FieldError> = Vec::new();
        if let Some(Some(items)) = items {
            points.reserve(items.len());
            for (i, item) in items.iter().enumerate() {
                let mut loc = f.loc_of("points");
                loc.push(LocPart::Index(i));
                let mut g = match Fields::at(item, loc) {
                    Ok(g) => g,
                    Err(Error::Validation(errs)) => {
                        nested.extend(errs);
                        continue;
                    }
                    Err(e) => return Err(e),
                };
                let ts = g.req_string("ts", Len::ANY);
                let ts = match ts {
                    Some(s) => match parse_point_ts(&s) {
                        Some(t) => Some(t),
                        None => {
                            g.fail(
                                "ts",
                                "datetime_parsing",
                                "Input should be an RFC 3339 date-time or a YYYY-MM-DD date",
                                Value::String(s),
                            );
                            None
                        }
                    },
                    None => None,
                };
                let value = g.number("value", Presence::Required, None).flatten();
                match g.finish() {
                    Ok(()) => {
                        if let (Some(ts), Some(value)) = (ts, value) {
                            points.push(NewPoint { ts, value });
                        }
                    }
                    Err(Error::Validation(errs)) => nested.extend(errs),
                    Err(e) => return Err(e),
                }
            }
        }
        f.extend(nested);
        f.finish()?;
        Ok(PointsBulk { points })
    }
}

/// The answer to a bulk ingest: `inserted + ignored` equals the number of points sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct IngestResult {
    /// Points newly stored.
    pub inserted: u64,
    /// Points whose instant was already stored, or repeated earlier in the same request.
    pub ignored: u64,
}

/// Paging of [`Bespin::list_kpis`], already clamped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KpiPage {
    /// 1–500 (default 100).
    pub limit: usize,
    /// ≥ 0 (default 0).
    pub offset: usize,
}

impl Default for KpiPage {
    fn default() -> Self {
        KpiPage {
            limit: 100,
            offset: 0,
        }
    }
}

impl KpiPage {
    /// Clamps raw values the way the contract does: `limit` into [1, 500], negative `offset`
    /// to 0.
    pub fn clamped(limit: i64, offset: i64) -> Self {
        KpiPage {
            limit: usize::try_from(limit.clamp(1, 500)).unwrap_or(100),
            offset: usize::try_from(offset.max(0)).unwrap_or(0),
        }
    }

    /// Validates the query strings `limit` and `offset` (integer literals; absent means the
    /// default) and clamps them. Errors: `Validation` (`int_parsing` at `["limit"]` /
    /// `["offset"]`; the surface prefixes `"query"`).
    pub fn from_query(limit: Option<&str>, offset: Option<&str>) -> Result<Self> {
        let v = crate::validate::query_ints(
            |n| if n == "limit" { limit } else { offset },
            &["limit", "offset"],
        )?;
        Ok(Self::clamped(v[0].unwrap_or(100), v[1].unwrap_or(0)))
    }
}

/// A point as the API shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct PointView {
    /// `YYYY-MM-DDTHH:MM:SSZ`, with `.ffffff` when the sub-second part is non-zero.
    pub ts: String,
    /// The value.
    pub value: f64,
}

/// `GET /v1/kpis/{kpi_id}/latest`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct LatestPoint {
    /// The KPI.
    pub kpi_id: String,
    /// Instant of the newest point.
    pub ts: String,
    /// Its value.
    pub value: f64,
}

/// A stored point read back: instant and value.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    /// The instant.
    pub ts: Timestamp,
    /// The value.
    pub value: f64,
}

impl Point {
    /// The API view of the point.
    pub fn view(self) -> PointView {
        PointView {
            ts: format_point_ts(self.ts),
            value: self.value,
        }
    }
}

/// The result of the window rule (`window`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Window {
    /// The newest point at or before the cut-off.
    pub latest: Point,
    /// The oldest point with `ts >= latest - window_days × 24 h` (at worst `latest` itself).
    pub start: Point,
    /// `latest.value - start.value`.
    pub delta_abs: f64,
    /// `delta_abs / |start.value| × 100`; `None` when the start value is 0.
    pub delta_pct: Option<f64>,
}

/// Parses a point timestamp: an RFC 3339 date-time with any offset, or a bare `YYYY-MM-DD`
/// date meaning midnight UTC. Sub-microsecond digits are truncated. `None` for anything else.
pub fn parse_point_ts(s: &str) -> Option<Timestamp> {
    if let Ok(dt) = DateTime::parse_from_rfc3339(s) {
        return Some(Timestamp(dt.timestamp_micros()));
    }
    crate::time::Date::parse(s).map(|d| d.start())
}

/// Formats a point instant: `YYYY-MM-DDTHH:MM:SSZ`, plus `.ffffff` when the sub-second part is
/// non-zero.
pub fn format_point_ts(t: Timestamp) -> String {
    t.format(crate::time::Fraction::WhenNonZero)
}

key! {
    /// (tenant, kpi).
    pub(crate) struct KpiKey<'a> { tenant_id: tenant, kpi_id: ext_id }
    /// (tenant, created at, sequence).
    pub(crate) struct KpiCreationKey<'a> { tenant_id: tenant, created_at: ts, seq: u64 }
    /// (tenant, name, sequence).
    pub(crate) struct KpiNameKey<'a> { tenant_id: tenant, name: str, seq: u64 }
}

/// (tenant, kpi) → KPI definition.
pub(crate) const KPIS: Table<KpiKey<'static>, KpiRec> = Table::new("kpis");
/// (tenant, created at, sequence) → kpi id: definitions in creation order.
pub(crate) const KPIS_BY_CREATION: Table<KpiCreationKey<'static>, String> =
    Table::new("kpis_by_creation");
/// (tenant, name, sequence) → kpi id: definitions by name (byte order), then creation order.
pub(crate) const KPIS_BY_NAME: Table<KpiNameKey<'static>, String> = Table::new("kpis_by_name");

/// The tables of this module (the series' are in [`series`]).
pub(crate) const TABLES: &[&dyn TableInfo] = &[&KPIS, &KPIS_BY_CREATION, &KPIS_BY_NAME];

pub(crate) fn kpi_key<'a>(tenant_id: &'a str, kpi_id: &'a str) -> KpiKey<'a> {
    KpiKey::new(tenant_id, kpi_id)
}

/// Whether the tenant has the KPI `kpi_id` (without decoding its definition).
pub(crate) fn kpi_exists(r: &impl Reader, tenant_id: &str, kpi_id: &str) -> Result<bool> {
    r.contains(&KPIS, &kpi_key(tenant_id, kpi_id))
}

/// The KPI `kpi_id` of the tenant, if it exists there.
pub(crate) fn get_kpi(r: &impl Reader, tenant_id: &str, kpi_id: &str) -> Result<Option<KpiRec>> {
    r.get(&KPIS, &kpi_key(tenant_id, kpi_id))
}

/// `Ok` when the tenant has the KPI `kpi_id`, else 404.
fn require_kpi(r: &impl Reader, tenant_id: &str, kpi_id: &str) -> Result<()> {
    if kpi_exists(r, tenant_id, kpi_id)? {
        Ok(())
    } else {
        Err(kpi_not_found(kpi_id))
    }
}

fn kpi_not_found(kpi_id: &str) -> Error {
    Error::NotFound(format!("KPI '{kpi_id}' not found"))
}

fn no_points(kpi_id: &str) -> Error {
    Error::NotFound(format!("No data points found for KPI '{kpi_id}'"))
}

/// The newest point of the KPI at or before `cutoff` (inclusive; `None` = no cut-off).
pub(crate) fn latest_at(
    r: &impl Reader,
    tenant_id: &str,
    kpi_id: &str,
    cutoff: Option<Timestamp>,
) -> Result<Option<Point>> {
    series::latest_at(r, &series::Series::new(tenant_id, kpi_id), cutoff)
}

/// The window rule of spec README decision 4, for one KPI of one tenant:
///
/// - latest = the newest point at or before `cutoff` (no cut-off when `None`);
/// - start = the oldest point with `ts >= latest.ts - window_days × 24 h` (inclusive), which is
///   at worst `latest` itself;
/// - `delta_abs = latest - start`; `delta_pct = delta_abs / |start| × 100`, `None` when start
///   is 0, so the sign of `delta_pct` always follows the direction of change.
///
/// Two seeks into the KPI's chunks (three when the window starts past the end of a chunk);
/// the arithmetic saturates, so no input can make it fail. Returns `Ok(None)` when the KPI has
/// no point at or before the cut-off. It does not check that the KPI exists.
pub(crate) fn window(
    r: &impl Reader,
    tenant_id: &str,
    kpi_id: &str,
    cutoff: Option<Timestamp>,
    window_days: u64,
) -> Result<Option<Window>> {
    let Some(latest) = latest_at(r, tenant_id, kpi_id, cutoff)? else {
        return Ok(None);
    };
    let span = i64::try_from(window_days)
        .unwrap_or(i64::MAX)
        .saturating_mul(Timestamp::DAY_MICROS);
    let from = Timestamp(latest.ts.0.saturating_sub(span));
    // `from <= latest.ts`, so the oldest point at or after it is at worst `latest`.
    let start = series::first_from(r, &series::Series::new(tenant_id, kpi_id), from)?
        .filter(|p| p.ts <= latest.ts)
        .unwrap_or(latest);
    Ok(Some(compute(latest, start)))
}

/// The deltas of a (latest, start) pair under the window rule.
pub fn compute(latest: Point, start: Point) -> Window {
    let delta_abs = latest.value - start.value;
    let delta_pct = if start.value == 0.0 {
        None
    } else {
        Some(delta_abs / start.value.abs() * 100.0)
    };
    Window {
        latest,
        start,
        delta_abs,
        delta_pct,
    }
}

/// Creates a KPI definition in the caller's tenant. Checks, in order: role (`KpiWrite`,
/// `Role '<role>' is not authorized to create KPIs`), entitlement `kpi_ingest`, billing quota
/// for one `kpi_definition_created`. Writes the definition, its two index rows and one usage
/// event (tool name null, a fresh request id). No audit row.
pub fn create_kpi(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, req: NewKpi) -> Result<Kpi> {
    caller.require(Permission::KpiWrite, "create KPIs")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "kpi_ingest")?;
    let permit = kpi_meter("kpi_definition_created", 1).check(tx, ctx, tenant)?;
    let kpi_id = ids::new_id();
    let seq = tx.next_seq("kpis")?;
    let rec = KpiRec {
        name: req.name,
        unit: req.unit,
        description: req.description,
        created_at: ctx.now,
        seq,
    };
    tx.put(&KPIS, &kpi_key(tenant, &kpi_id), &rec)?;
    let by_creation = KpiCreationKey::new(tenant, ctx.now, seq);
    tx.put(&KPIS_BY_CREATION, &by_creation, &kpi_id)?;
    tx.put(
        &KPIS_BY_NAME,
        &KpiNameKey::new(tenant, &rec.name, seq),
        &kpi_id,
    )?;
    permit.record_fresh(tx, ctx, caller)?;
    Ok(Kpi {
        kpi_id,
        name: rec.name,
        unit: rec.unit,
        description: rec.description,
    })
}

fn kpi_meter(event_key: &str, units: u64) -> Meter<'_> {
    Meter {
        event_key,
        units,
        tool_name: None,
        daily: None,
    }
}

/// Adds points to a KPI of the caller's tenant. Checks, in order: role (`KpiWrite`,
/// `… to ingest KPI points`), entitlement `kpi_ingest`, the KPI exists in the tenant (404
/// `KPI '<id>' not found`), then — only when at least one point is new — the billing quota
/// for `kpi_points_ingested` × new points. A point whose instant is already stored, or that
/// repeats an instant earlier in the request, is ignored (first wins; stored values never
/// change). Writes the new points and one usage event with units = inserted (none when
/// nothing was inserted), all in the caller's transaction; a refused quota writes nothing.
/// No audit row.
pub fn ingest_points(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    kpi_id: &str,
    req: PointsBulk,
) -> Result<IngestResult> {
    caller.require(Permission::KpiWrite, "ingest KPI points")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "kpi_ingest")?;
    require_kpi(tx, tenant, kpi_id)?;
    let total = req.points.len() as u64;
    let series = series::Series::new(tenant, kpi_id);
    // Merge first (reads only), so the charge for what is new is checked before any write.
    let plan = series::plan(tx, &series, req.points, ctx.now)?;
    if plan.inserted > 0 {
        let permit = kpi_meter("kpi_points_ingested", plan.inserted).check(tx, ctx, tenant)?;
        plan.apply(tx, &series)?;
        permit.record_fresh(tx, ctx, caller)?;
        let data = serde_json::json!({
            "kpi_id": kpi_id,
            "count": plan.inserted,
            "ignored": total - plan.inserted,
        });
        events::emit(tx, ctx, caller, catalog::KPI_POINTS_INGESTED, kpi_id, &data)?;
    }
    Ok(IngestResult {
        inserted: plan.inserted,
        ignored: total - plan.inserted,
    })
}

/// The caller's tenant's KPI definitions, newest first (creation order descending), after
/// `page.offset` and at most `page.limit`. Walks the creation index, not a sort of a full scan.
pub(crate) fn list(r: &impl Reader, tenant_id: &str, page: KpiPage) -> Result<Vec<Kpi>> {
    let ids: Vec<String> = r.list(
        &KPIS_BY_CREATION,
        &KPIS_BY_CREATION.prefix().tenant(tenant_id),
        Order::Desc,
        page.offset,
        page.limit,
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for kpi_id in ids {
        if let Some(rec) = get_kpi(r, tenant_id, &kpi_id)? {
            out.push(Kpi {
                kpi_id,
                name: rec.name,
                unit: rec.unit,
                description: rec.description,
            });
        }
    }
    Ok(out)
}

/// The tenant's KPIs as (id, record), by name (byte order), equal names in creation order.
pub(crate) fn by_name(r: &impl Reader, tenant_id: &str) -> Result<Vec<(String, KpiRec)>> {
    let mut ids = Vec::new();
    r.scan(
        &KPIS_BY_NAME,
        &KPIS_BY_NAME.prefix().tenant(tenant_id),
        Order::Asc,
        |_, id: String| {
            ids.push(id);
            Ok(Flow::Continue)
        },
    )?;
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        if let Some(rec) = get_kpi(r, tenant_id, &id)? {
            out.push((id, rec));
        }
    }
    Ok(out)
}

/// Checks the KPI definitions' indexes by creation and by name (both ways), then the series
/// ([`series::check`]).
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let kpis = c.rows(r, &KPIS)?;
    let (mut by_creation, mut by_name) = (Expected::new(), Expected::new());
    for x in &kpis {
        let (t, id, rec) = (x.key.tenant_id.as_ref(), &x.key.kpi_id, &x.value);
        let id = id.to_string();
        by_creation.add(&KpiCreationKey::new(t, rec.created_at, rec.seq), &id);
        by_name.add(&KpiNameKey::new(t, &rec.name, rec.seq), &id);
    }
    c.index(r, &KPIS_BY_CREATION, by_creation, "KPI")?;
    c.index(r, &KPIS_BY_NAME, by_name, "KPI")?;
    let ids = kpis.into_iter().map(|x| x.key).collect();
    series::check(r, c, &ids)
}

/// Deletes a KPI with its whole series (admin: the `KpiWrite` permission, capability
/// `kpi_ingest`). Its definition, both indexes and every chunk of points go in one
/// transaction; audited, with `kpi.deleted`; usage of past ingests stays, and briefs already
/// made keep the figures they showed. Order: role (403) → capability → 404 → write.
pub fn delete_kpi(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    kpi_id: &str,
) -> Result<crate::coreos::deletion::Deleted> {
    caller.require(Permission::KpiWrite, "delete KPIs")?;
    let tenant = caller.tenant_id();
    require_capability(tx, caller, "kpi_ingest")?;
    let rec =
        get_kpi(tx, tenant, kpi_id)?.ok_or_else(|| Error::NotFound("KPI not found".into()))?;
    tx.delete(&KPIS, &kpi_key(tenant, kpi_id))?;
    tx.delete(
        &KPIS_BY_CREATION,
        &KpiCreationKey::new(tenant, rec.created_at, rec.seq),
    )?;
    tx.delete(&KPIS_BY_NAME, &KpiNameKey::new(tenant, &rec.name, rec.seq))?;
    let chunks = series::KPI_CHUNKS.prefix().tenant(tenant).ext_id(kpi_id);
    tx.delete_prefix(&series::KPI_CHUNKS, &chunks)?;
    let out = crate::coreos::deletion::Deleted::new("kpi", kpi_id, ctx.now);
    events::emit(tx, ctx, caller, catalog::KPI_DELETED, kpi_id, &out)?;
    crate::audit::record(tx, ctx, caller, "kpis.delete", ("kpi", kpi_id))?;
    Ok(out)
}

impl Bespin {
    /// Deletes a KPI with its points ([`delete_kpi`]).
    pub fn delete_kpi(
        &self,
        caller: &Principal,
        kpi_id: &str,
    ) -> Result<crate::coreos::deletion::Deleted> {
        self.write_as(caller, |tx, ctx| delete_kpi(tx, ctx, caller, kpi_id))
    }

    /// Creates a KPI definition (see [`create_kpi`]). Errors: `Forbidden`, the entitlement
    /// errors, `QuotaExceeded`, `UnknownEventType`, `PlanMissing`.
    pub fn create_kpi(&self, caller: &Principal, req: NewKpi) -> Result<Kpi> {
        self.write_as(caller, |tx, ctx| create_kpi(tx, ctx, caller, req))
    }

    /// Bulk-ingests points into a KPI in one transaction (see [`ingest_points`]). Errors:
    /// `Forbidden`, the entitlement errors, `NotFound`, `QuotaExceeded`.
    pub fn ingest_points(
        &self,
        caller: &Principal,
        kpi_id: &str,
        req: PointsBulk,
    ) -> Result<IngestResult> {
        self.write_as(caller, |tx, ctx| {
            ingest_points(tx, ctx, caller, kpi_id, req)
        })
    }

    /// Lists the caller's tenant's KPIs, newest first. Checks: role (`KpiRead`,
    /// `… to read KPIs`), entitlement `kpi_read`.
    pub fn list_kpis(&self, caller: &Principal, page: KpiPage) -> Result<Vec<Kpi>> {
        caller.require(Permission::KpiRead, "read KPIs")?;
        self.read(|r, _| {
            require_capability(r, caller, "kpi_read")?;
            list(r, caller.tenant_id(), page)
        })
    }

    /// The window rule (`window`) for a KPI of the caller's tenant, with an optional
    /// inclusive cut-off. Checks: role `KpiRead`, KPI exists (404 `KPI '<id>' not found`).
    /// `Ok(None)` when the KPI has no point at or before the cut-off.
    pub fn kpi_window(
        &self,
        caller: &Principal,
        kpi_id: &str,
        cutoff: Option<Timestamp>,
        window_days: u64,
    ) -> Result<Option<Window>> {
        caller.require(Permission::KpiRead, "read KPIs")?;
        self.read(|r, _| {
            require_kpi(r, caller.tenant_id(), kpi_id)?;
            window(r, caller.tenant_id(), kpi_id, cutoff, window_days)
        })
    }

    /// The newest point of a KPI of the caller's tenant. Checks: role (`KpiRead`), entitlement
    /// `kpi_read`, KPI exists (404 `KPI '<id>' not found`), it has a point (404
    /// `No data points found for KPI '<id>'`).
    pub fn latest_point(&self, caller: &Principal, kpi_id: &str) -> Result<LatestPoint> {
        caller.require(Permission::KpiRead, "read KPIs")?;
        self.read(|r, _| {
            let tenant = caller.tenant_id();
            require_capability(r, caller, "kpi_read")?;
            require_kpi(r, tenant, kpi_id)?;
            let p = latest_at(r, tenant, kpi_id, None)?.ok_or_else(|| no_points(kpi_id))?;
            Ok(LatestPoint {
                kpi_id: kpi_id.to_owned(),
                ts: format_point_ts(p.ts),
                value: p.value,
            })
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testutil::{db, kpi, tenant, trail};
    use serde_json::json;

    fn errors(r: Result<PointsBulk>) -> Vec<FieldError> {
        match r {
            Err(Error::Validation(v)) => v,
            other => panic!("expected a validation error, got {other:?}"),
        }
    }

    fn ts(s: &str) -> Timestamp {
        parse_point_ts(s).expect("ts")
    }

    #[test]
    fn timestamps_are_parsed_as_instants_and_formatted_canonically() {
        assert_eq!(ts("2026-01-01"), ts("2026-01-01T00:00:00Z"));
        assert_eq!(ts("2026-01-01T02:00:00+02:00"), ts("2026-01-01T00:00:00Z"));
        assert_eq!(format_point_ts(ts("2026-01-01")), "2026-01-01T00:00:00Z");
        assert_eq!(
            format_point_ts(ts("2026-01-01T00:00:00.5Z")),
            "2026-01-01T00:00:00.500000Z"
        );
        assert_eq!(
            format_point_ts(ts("2025-12-31T23:00:00.000001-01:00")),
            "2026-01-01T00:00:00.000001Z"
        );
        for bad in [
            "not-a-date",
            "2026-13-01",
            "2026-02-30",
            "2026-1-5",
            "",
            "2026-01-01T25:00:00Z",
        ] {
            assert!(parse_point_ts(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn bulk_validation_reports_every_bad_point() {
        let e = errors(PointsBulk::from_json(&json!({"points": [
            {"ts": "2026-01-01", "value": 1},
            {"ts": "2026-13-01", "value": 1},
            {"ts": "2026-01-02", "value": "NaN"},
            {"ts": "2026-01-03", "value": "Infinity"},
            5,
            {"value": 1}
        ]})));
        let locs: Vec<Value> = e.iter().map(|x| json!(x.loc)).collect();
        assert_eq!(
            locs,
            vec![
                json!(["points", 1, "ts"]),
                json!(["points", 2, "value"]),
                json!(["points", 3, "value"]),
                json!(["points", 4]),
                json!(["points", 5, "ts"]),
            ]
        );
        assert_eq!(e[0].kind, "datetime_parsing");
        assert_eq!(e[1].kind, "finite_number");
        assert_eq!(e[3].kind, "model_attributes_type");
        assert_eq!(e[4].kind, "missing");
        let e = errors(PointsBulk::from_json(&json!({"points": []})));
        assert_eq!(e[0].kind, "too_short");
        let e = errors(PointsBulk::from_json(&json!({})));
        assert_eq!(e[0].kind, "missing");
        let ok = PointsBulk::from_json(&json!({"points": [{"ts": "2026-01-01", "value": " 2.5 "}, {"ts": "2026-01-02", "value": true}]}))
            .expect("valid");
        assert_eq!(ok.points[0].value, 2.5);
        assert_eq!(ok.points[1].value, 1.0);
    }

    #[test]
    fn create_validates_and_refuses_members() {
        let e = NewKpi::from_json(&json!({"name": "", "unit": "x".repeat(51)})).expect_err("bad");
        let Error::Validation(items) = e else {
            panic!("validation")
        };
        assert_eq!(items.len(), 2);
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let req = NewKpi::from_json(&json!({"name": "MRR", "unit": "GBP"})).expect("valid");
        let err = db.create_kpi(&member, req.clone()).expect_err("member");
        assert_eq!(
            err.to_string(),
            "Role 'member' is not authorized to create KPIs"
        );
        let k = db.create_kpi(&admin, req).expect("created");
        assert_eq!(
            serde_json::to_value(&k).expect("json"),
            json!({"kpi_id": k.kpi_id, "name": "MRR", "unit": "GBP", "description": null})
        );
        let ledger = db.billing_ledger(&admin, None, 10).expect("ledger");
        assert_eq!(ledger.items.len(), 1);
        assert_eq!(ledger.items[0].event_key, "kpi_definition_created");
        assert_eq!(ledger.items[0].tool_name, None);
        assert_eq!(trail(&db, &admin).0, 0, "no audit row");
    }

    #[test]
    fn ingest_ignores_stored_and_repeated_instants_first_wins() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let id = kpi(&db, &admin, "MRR", &[("2026-01-01", 100.0)]);
        let bulk = PointsBulk::from_json(&json!({"points": [
            {"ts": "2026-01-01T00:00:00+00:00", "value": 999},
            {"ts": "2026-01-02T00:00:00Z", "value": 1},
            {"ts": "2026-01-02", "value": 2},
            {"ts": "2026-01-03T01:00:00+01:00", "value": 3}
        ]}))
        .expect("valid");
        let before = trail(&db, &admin);
        let err = db
            .ingest_points(&member, &id, bulk.clone())
            .expect_err("member");
        assert_eq!(
            err.to_string(),
            "Role 'member' is not authorized to ingest KPI points"
        );
        let r = db.ingest_points(&admin, &id, bulk.clone()).expect("ingest");
        assert_eq!(
            r,
            IngestResult {
                inserted: 2,
                ignored: 2
            }
        );
        let ledger = db.billing_ledger(&admin, None, 10).expect("ledger");
        assert_eq!(ledger.items.len(), before.1 + 1);
        assert_eq!(ledger.items[0].event_key, "kpi_points_ingested");
        assert_eq!(ledger.items[0].raw_units, 2.0);
        // Everything again: all ignored, nothing metered.
        let r = db.ingest_points(&admin, &id, bulk).expect("ingest");
        assert_eq!(
            r,
            IngestResult {
                inserted: 0,
                ignored: 4
            }
        );
        assert_eq!(trail(&db, &admin).1, before.1 + 1);
        let w = db
            .kpi_window(&admin, &id, None, 365)
            .expect("window")
            .expect("points");
        assert_eq!(w.start.value, 100.0, "the stored value is not replaced");
        assert_eq!(w.latest.view().ts, "2026-01-03T00:00:00Z");
        let p = db.latest_point(&member, &id).expect("latest");
        assert_eq!(
            serde_json::to_value(p).expect("json"),
            json!({"kpi_id": id, "ts": "2026-01-03T00:00:00Z", "value": 3.0})
        );
    }

    #[test]
    fn ten_thousand_points_are_one_transaction_and_one_usage_event() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let id = kpi(&db, &admin, "Big", &[]);
        let base = ts("2025-01-01").0;
        let points = (0..10_000i64)
            .map(|i| NewPoint {
                ts: Timestamp(base + i * 60_000_000),
                value: i as f64,
            })
            .collect();
        let r = db
            .ingest_points(&admin, &id, PointsBulk { points })
            .expect("ingest");
        assert_eq!(
            r,
            IngestResult {
                inserted: 10_000,
                ignored: 0
            }
        );
        let ledger = db.billing_ledger(&admin, None, 10).expect("ledger");
        assert_eq!(ledger.items.len(), 2);
        assert_eq!(ledger.items[0].raw_units, 10_000.0);
        let p = db.latest_point(&admin, &id).expect("latest");
        assert_eq!(p.value, 9_999.0);
    }

    #[test]
    fn unknown_and_foreign_kpis_are_404_and_store_nothing() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let (other, _) = tenant(&db);
        let theirs = kpi(&db, &other, "Theirs", &[]);
        let bulk = PointsBulk::from_json(&json!({"points": [{"ts": "2026-01-01", "value": 1}]}))
            .expect("valid");
        let before = trail(&db, &admin);
        for id in ["nope", theirs.as_str()] {
            let e = db.ingest_points(&admin, id, bulk.clone()).expect_err("404");
            assert_eq!(e.to_string(), format!("KPI '{id}' not found"));
            let e = db.latest_point(&admin, id).expect_err("404");
            assert_eq!(e.to_string(), format!("KPI '{id}' not found"));
        }
        assert_eq!(trail(&db, &admin), before);
        assert_eq!(trail(&db, &other).1, 1, "only the KPI creation");
        let empty = kpi(&db, &admin, "Empty", &[]);
        let e = db.latest_point(&admin, &empty).expect_err("404");
        assert_eq!(
            e.to_string(),
            format!("No data points found for KPI '{empty}'")
        );
    }

    #[test]
    fn list_is_newest_first_with_clamped_paging() {
        let (db, clock) = db();
        let (admin, member) = tenant(&db);
        let (other, _) = tenant(&db);
        kpi(&db, &other, "Other", &[]);
        let mut ids = Vec::new();
        for name in ["a", "b", "c"] {
            ids.push(kpi(&db, &admin, name, &[]));
            clock.advance(1);
        }
        let names = |page: KpiPage| -> Vec<String> {
            db.list_kpis(&member, page)
                .expect("list")
                .into_iter()
                .map(|k| k.name)
                .collect()
        };
        assert_eq!(names(KpiPage::default()), ["c", "b", "a"]);
        assert_eq!(names(KpiPage::clamped(0, -5)), ["c"]);
        assert_eq!(names(KpiPage::clamped(2, 1)), ["b", "a"]);
        assert!(names(KpiPage::clamped(1000, 3)).is_empty());
        assert_eq!(KpiPage::clamped(1000, 0).limit, 500);
        assert_eq!(
            KpiPage::from_query(Some("7"), None).expect("ok"),
            KpiPage {
                limit: 7,
                offset: 0
            }
        );
        let e = KpiPage::from_query(Some("1.5"), Some("x")).expect_err("422");
        let Error::Validation(items) = e else {
            panic!("validation")
        };
        assert_eq!(items.len(), 2);
        assert_eq!(items[0].kind, "int_parsing");
    }

    #[test]
    fn window_rule_matches_the_worked_examples() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let id = kpi(
            &db,
            &admin,
            "MRR",
            &[
                ("2026-01-01T00:00:00Z", 100.0),
                ("2026-01-03T00:00:00Z", 110.0),
                ("2026-01-08T00:00:00Z", 150.0),
                ("2026-01-10T00:00:00Z", 160.0),
            ],
        );
        let w = |days, cutoff: Option<&str>| {
            db.kpi_window(&admin, &id, cutoff.map(ts), days)
                .expect("window")
                .expect("some")
        };
        let seven = w(7, None);
        assert_eq!(seven.start.view().ts, "2026-01-03T00:00:00Z");
        assert_eq!(
            (seven.delta_abs, seven.delta_pct),
            (50.0, Some(45.45454545454545))
        );
        let nine = w(9, None);
        assert_eq!(
            (nine.start.value, nine.delta_abs, nine.delta_pct),
            (100.0, 60.0, Some(60.0))
        );
        let one = w(1, None);
        assert_eq!(
            (one.start, one.delta_abs, one.delta_pct),
            (one.latest, 0.0, Some(0.0))
        );
        // Cut-off is inclusive; the window start is inclusive.
        let cut = w(5, Some("2026-01-08T00:00:00Z"));
        assert_eq!((cut.latest.value, cut.start.value), (150.0, 110.0));
        let cut = w(7, Some("2026-01-07T23:59:59.999999Z"));
        assert_eq!((cut.latest.value, cut.start.value), (110.0, 100.0));
        assert!(
            db.kpi_window(&admin, &id, Some(ts("2025-12-31")), 7)
                .expect("window")
                .is_none()
        );
        assert_eq!(
            w(u64::MAX, None).start.value,
            100.0,
            "saturates, never fails"
        );
    }

    #[test]
    fn zero_and_negative_starts() {
        let z = compute(
            Point {
                ts: Timestamp(1),
                value: 100.0,
            },
            Point {
                ts: Timestamp(0),
                value: 0.0,
            },
        );
        assert_eq!((z.delta_abs, z.delta_pct), (100.0, None));
        let n = compute(
            Point {
                ts: Timestamp(1),
                value: -5.0,
            },
            Point {
                ts: Timestamp(0),
                value: -10.0,
            },
        );
        assert_eq!(
            (n.delta_abs, n.delta_pct),
            (5.0, Some(50.0)),
            "sign follows the change"
        );
        let d = compute(
            Point {
                ts: Timestamp(1),
                value: -20.0,
            },
            Point {
                ts: Timestamp(0),
                value: -10.0,
            },
        );
        assert_eq!(d.delta_pct, Some(-100.0));
    }
}
