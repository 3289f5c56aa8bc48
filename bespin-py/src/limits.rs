//! Daily limits and daily usage (core `limits`).

use crate::convert::{Body, date_arg};
use crate::handle::{PySession, call_json};
use bespin_core::limits::DailyLimits;
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// The tenant's daily limits.
    fn limits(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.limits(&self.principal))
    }

    /// Replaces the tenant's daily limits (admins only; all four are required, each >= 0).
    #[pyo3(signature = (
        *,
        assistant_query_daily_limit,
        tool_invocation_daily_limit,
        daily_brief_generated_daily_limit,
        notification_enqueued_daily_limit,
    ))]
    fn set_limits(
        &self,
        py: Python<'_>,
        assistant_query_daily_limit: &Bound<'_, PyAny>,
        tool_invocation_daily_limit: &Bound<'_, PyAny>,
        daily_brief_generated_daily_limit: &Bound<'_, PyAny>,
        notification_enqueued_daily_limit: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("assistant_query_daily_limit", assistant_query_daily_limit)?
            .req("tool_invocation_daily_limit", tool_invocation_daily_limit)?
            .req(
                "daily_brief_generated_daily_limit",
                daily_brief_generated_daily_limit,
            )?
            .req(
                "notification_enqueued_daily_limit",
                notification_enqueued_daily_limit,
            )?
            .json();
        call_json(py, &self.db, move |core| {
            core.set_limits(&self.principal, DailyLimits::from_json(&body)?)
        })
    }

    /// Usage of each daily activity on `date` (UTC; default today) with the limits.
    #[pyo3(signature = (date = None))]
    fn daily_usage(&self, py: Python<'_>, date: Option<&Bound<'_, PyAny>>) -> PyResult<Py<PyAny>> {
        let date = date_arg(date, "date")?;
        call_json(py, &self.db, move |core| {
            core.daily_usage(&self.principal, date)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
