//! KPI definitions, bulk point ingest, the newest point, the window rule and a range of points
//! for a chart (core `kpis`).
//!
//! Point instants (`ts`) go in as aware `datetime` objects, `date` objects (midnight UTC) or
//! RFC 3339 / `YYYY-MM-DD` strings, and come out as aware `datetime` objects (UTC).

use crate::convert::{Body, py_to_json, to_json};
use crate::errors;
use crate::handle::{PySession, call_json};
use bespin_core::LocPart;
use bespin_core::kpis::{KpiPage, NewKpi, PointsBulk, SeriesQuery, parse_point_ts};
use bespin_core::time::Timestamp;
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
        let cutoff = instant_arg(py, cutoff, "cutoff")?;
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

    /// A range of the KPI's points for a chart, as `GET /v1/kpis/{kpi_id}/series` returns it:
    /// `{"kpi_id", "from", "to", "points_in_range", "downsampled", "points"}`, points oldest
    /// first, at most `max_points` (clamped to 4..5000): all of the range when they fit, else
    /// the first, lowest, highest and last point of each of `max_points / 4` equal spans.
    /// `start` and `end` (inclusive; the HTTP `from` and `to`) are instants like point `ts`,
    /// defaulting to the series' first and latest points; `window_days` (not with `start`)
    /// makes the range the window rule's. Raises `NotFound` for an unknown KPI and
    /// `ValidationError` for a bad argument.
    #[pyo3(signature = (kpi_id, *, start = None, end = None, window_days = None, max_points = 1000))]
    fn kpi_series(
        &self,
        py: Python<'_>,
        kpi_id: String,
        start: Option<&Bound<'_, PyAny>>,
        end: Option<&Bound<'_, PyAny>>,
        window_days: Option<i64>,
        max_points: i64,
    ) -> PyResult<Py<PyAny>> {
        let (from, to) = (
            instant_arg(py, start, "start")?,
            instant_arg(py, end, "end")?,
        );
        let bad = |name: &str, msg: &str, input: Value| {
            errors::invalid_arg(py, vec![LocPart::from(name)], "value_error", msg, input)
        };
        if let (Some(f), Some(t)) = (from, to)
            && f > t
        {
            return Err(bad("start", "start must not be after end", json!(null)));
        }
        let window_days = match window_days {
            Some(d) if d < 1 => {
                return Err(bad("window_days", "Input should be at least 1", json!(d)));
            }
            Some(d) if from.is_some() => {
                return Err(bad(
                    "window_days",
                    "window_days and start cannot be combined",
                    json!(d),
                ));
            }
            d => d.and_then(|d| u64::try_from(d).ok()),
        };
        let q = SeriesQuery {
            from,
            to,
            window_days,
            max_points: SeriesQuery::clamp_points(max_points),
        };
        call_json(py, &self.db, move |core| {
            core.kpi_series(&self.principal, &kpi_id, q)
        })
    }
}

/// An optional instant argument (aware `datetime`, `date`, RFC 3339 or `YYYY-MM-DD` string);
/// `ValidationError` at `[name]` for anything else.
fn instant_arg(
    py: Python<'_>,
    v: Option<&Bound<'_, PyAny>>,
    name: &str,
) -> PyResult<Option<Timestamp>> {
    let Some(v) = v.filter(|v| !v.is_none()) else {
        return Ok(None);
    };
    let json = py_to_json(v, &mut vec![LocPart::from(name)])?;
    match json.as_str().and_then(parse_point_ts) {
        Some(t) => Ok(Some(t)),
        None => Err(errors::invalid_arg(
            py,
            vec![LocPart::from(name)],
            "datetime_parsing",
            "Input should be an RFC 3339 date-time or a YYYY-MM-DD date",
            json,
        )),
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
