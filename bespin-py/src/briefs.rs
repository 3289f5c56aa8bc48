//! Daily briefs: idempotent materialization, reads and previews (core `briefs`).

use crate::convert::{Body, date_arg, idempotency_key, py_to_json};
use crate::handle::{PySession, call_json};
use bespin_core::LocPart;
use bespin_core::briefs::{BriefPage, MaterializeRequest};
use bespin_core::idempotency::Stored;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;

/// The body shared by `materialize_brief`, `preview_brief` and `run_daily_brief`.
pub fn materialize_body(
    date: Option<&Bound<'_, PyAny>>,
    window_days: Option<&Bound<'_, PyAny>>,
    top_n: Option<&Bound<'_, PyAny>>,
) -> PyResult<serde_json::Value> {
    Ok(Body::new()
        .opt("date", date)?
        .opt("window_days", window_days)?
        .opt("top_n", top_n)?
        .json())
}

#[pymethods]
impl PySession {
    /// Generates and stores the tenant's brief for `date` (default: today, UTC) under
    /// `idempotency_key`; an existing brief for the date is returned as stored. A replay
    /// returns the same body and writes nothing; the key with another body raises `Conflict`.
    /// Raises `Forbidden` (members), `CapabilityDenied`, `QuotaExceeded`, `ValidationError`.
    #[pyo3(signature = (*, idempotency_key, date = None, window_days = None, top_n = None))]
    fn materialize_brief(
        &self,
        py: Python<'_>,
        idempotency_key: String,
        date: Option<&Bound<'_, PyAny>>,
        window_days: Option<&Bound<'_, PyAny>>,
        top_n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        self::idempotency_key(py, &idempotency_key)?;
        let body = materialize_body(date, window_days, top_n)?;
        call_json(py, &self.db, move |core| {
            core.materialize_brief(
                &self.principal,
                &idempotency_key,
                MaterializeRequest::from_json(&body)?,
            )
            .and_then(Stored::into_value)
        })
    }

    /// The stored brief for `date` (a `date` or `"YYYY-MM-DD"`). Raises `NotFound`,
    /// `ValidationError` for a malformed date.
    fn brief(&self, py: Python<'_>, date: &Bound<'_, PyAny>) -> PyResult<Py<PyAny>> {
        let v = py_to_json(date, &mut vec![LocPart::from("date")])?;
        let Some(date) = v.as_str().map(str::to_owned) else {
            return Err(PyTypeError::new_err(
                "'date' must be a datetime.date or a 'YYYY-MM-DD' str",
            ));
        };
        call_json(py, &self.db, move |core| core.brief(&self.principal, &date))
    }

    /// The stored briefs' dates and counts, newest first: `{"items": [{"date", "brief_id",
    /// "summary", "alerts"}]}`, only dates before `before` (a `date` or `YYYY-MM-DD`), at most
    /// `limit` (clamped to 1..366).
    #[pyo3(signature = (*, before = None, limit = 31))]
    fn list_briefs(
        &self,
        py: Python<'_>,
        before: Option<&Bound<'_, PyAny>>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let page = BriefPage::clamped(date_arg(before, "before")?, limit);
        call_json(py, &self.db, move |core| {
            core.list_briefs(&self.principal, page)
        })
    }

    /// The stored brief with the newest date. Raises `NotFound` when there is none.
    fn latest_brief(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.latest_brief(&self.principal))
    }

    /// The brief content `materialize_brief` would store for `date` (default: today, UTC),
    /// without storing, metering or auditing anything.
    #[pyo3(signature = (*, date = None, window_days = None, top_n = None))]
    fn preview_brief(
        &self,
        py: Python<'_>,
        date: Option<&Bound<'_, PyAny>>,
        window_days: Option<&Bound<'_, PyAny>>,
        top_n: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = materialize_body(date, window_days, top_n)?;
        call_json(py, &self.db, move |core| {
            let req = MaterializeRequest::from_json(&body)?;
            let date = req.date.unwrap_or_else(|| core.ctx().now.date());
            core.preview_brief(&self.principal, date, req.window_days, req.top_n)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
