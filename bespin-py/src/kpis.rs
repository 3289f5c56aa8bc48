//! KPI definitions, bulk point ingest, the newest point and the window rule (core `kpis`).
//!
//! Point instants (`ts`) go in as aware `datetime` objects, `date` objects (midnight UTC) or
//! RFC 3339 / `YYYY-MM-DD` strings, and come out as aware `datetime` objects (UTC).

use crate::convert::{Body, py_to_json, to_json};
use crate::errors;
use crate::handle::{PySession, call_json};
use bespin_core::LocPart;
use bespin_core::kpis::{KpiPage, NewKpi, PointsBulk, parse_point_ts};
use bespin_core::tools::kpi_summary::MAX_WINDOW_DAYS;
use pyo3::prelude::*;
use serde_json::{Value, json};

#[pymethods]
impl PySession {
    /// Creates a KPI definition. Raises `Forbidden` (members), `CapabilityDenied`,
    /// `QuotaExceeded`, `ValidationError`.
    #[pyo3(signature = (*, name, unit = None, description = None))]
    fn create_kpi(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        unit: Option<&Bound<'_, PyAny>>,
        description: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("name", name)?
            .opt("unit", unit)?
            .opt("description", description)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_kpi(&self.principal, NewKpi::from_json(&body)?)
        })
    }

    /// Stores points `[{"ts": datetime | date | str, "value": float}, ...]` in one
    /// transaction; a point whose instant is already stored (or repeated earlier in the list)
    /// is ignored. Returns `{"inserted", "ignored"}`. A naive `datetime` is a `TypeError`; any
    /// invalid point is a `ValidationError` and nothing is stored. Raises `NotFound`.
    fn ingest_points(
        &self,
        py: Python<'_>,
        kpi_id: String,
        points: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new().req("points", points)?.json();
        call_json(py, &self.db, move |core| {
            core.ingest_points(&self.principal, &kpi_id, PointsBulk::from_json(&body)?)
        })
    }

    /// The tenant's KPIs, newest first (`limit` clamped to 1..500, default 100).
    #[pyo3(signature = (*, limit = 100, offset = 0))]
    fn list_kpis(&self, py: Python<'_>, limit: i64, offset: i64) -> PyResult<Py<PyAny>> {
        let page = KpiPage::clamped(limit, offset);
        call_json(py, &self.db, move |core| {
            core.list_kpis(&self.principal, page)
        })
    }

    /// The newest point `{"kpi_id", "ts", "value"}`. Raises `NotFound` for an unknown KPI or
    /// one without points.
    fn latest_point(&self, py: Python<'_>, kpi_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.latest_point(&self.principal, &kpi_id)
        })
    }

    /// The window rule (what briefs and the `kpi_summary` tool use): the newest point at or
    /// before `cutoff` (default: no cut-off; a `date` means its midnight UTC) and the oldest
    /// point at most `window_days` days before it. Returns `{"kpi_id", "window_days",
    /// "latest", "start", "delta_abs", "delta_pct"}` or `None` when there is no such point.
    /// Raises `NotFound` for an unknown KPI.
    #[pyo3(signature = (kpi_id, *, window_days = 7, cutoff = None))]
    fn kpi_window(
        &self,
        py: Python<'_>,
        kpi_id: String,
        window_days: i64,
        cutoff: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let days = u64::try_from(window_days)
            .ok()
            .filter(|d| (1..=MAX_WINDOW_DAYS).contains(d))
            .ok_or_else(|| {
                errors::invalid_arg(
                    py,
                    vec![LocPart::from("window_days")],
                    "int_range",
                    &format!("Input should be between 1 and {MAX_WINDOW_DAYS}"),
                    json!(window_days),
                )
            })?;
        let cutoff = match cutoff.filter(|c| !c.is_none()) {
            None => None,
            Some(c) => {
                let v = py_to_json(c, &mut vec![LocPart::from("cutoff")])?;
                let parsed = v.as_str().and_then(parse_point_ts);
                Some(parsed.ok_or_else(|| {
                    errors::invalid_arg(
                        py,
                        vec![LocPart::from("cutoff")],
                        "datetime_parsing",
                        "Input should be an RFC 3339 date-time or a YYYY-MM-DD date",
                        v.clone(),
                    )
                })?)
            }
        };
        call_json(py, &self.db, move |core| {
            let w = core.kpi_window(&self.principal, &kpi_id, cutoff, days)?;
            Ok(match w {
                None => Value::Null,
                Some(w) => json!({
                    "kpi_id": kpi_id,
                    "window_days": days,
                    "latest": to_json(&w.latest.view())?,
                    "start": to_json(&w.start.view())?,
                    "delta_abs": w.delta_abs,
                    "delta_pct": w.delta_pct,
                }),
            })
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
