//! The daily-brief runner (core `jobs`).

use crate::briefs::materialize_body;
use crate::convert::idempotency_key;
use crate::handle::{PySession, call_json};
use bespin_core::briefs::MaterializeRequest;
use bespin_core::idempotency::Stored;
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// Runs the daily-brief job (admin) under `idempotency_key`: ensures the brief for `date`
    /// (default: today, UTC), then notifies every opted-in user within the notification
    /// allowance, in one transaction. Returns the run report. A replay returns the same report
    /// and writes nothing; the key with another body raises `Conflict`.
    #[pyo3(signature = (*, idempotency_key, date = None, window_days = None, top_n = None))]
    fn run_daily_brief(
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
            core.run_daily_brief(
                &self.principal,
                &idempotency_key,
                MaterializeRequest::from_json(&body)?,
            )
            .and_then(Stored::into_value)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
