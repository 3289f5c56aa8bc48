//! Notification preferences, the outbox and acknowledgement (core `notifications`).

use crate::convert::{Body, date_arg};
use crate::handle::{PySession, call_json};
use bespin_core::notifications::{OutboxQuery, PrefsUpdate, parse_id};
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// The caller's notification preferences.
    fn notification_prefs(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| {
            core.notification_prefs(&self.principal)
        })
    }

    /// Saves the caller's preferences (an omitted `daily_brief_enabled` means `True`).
    #[pyo3(signature = (*, daily_brief_enabled = None, delivery_method = None))]
    fn set_notification_prefs(
        &self,
        py: Python<'_>,
        daily_brief_enabled: Option<&Bound<'_, PyAny>>,
        delivery_method: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .opt("daily_brief_enabled", daily_brief_enabled)?
            .opt("delivery_method", delivery_method)?
            .json();
        call_json(py, &self.db, move |core| {
            core.set_notification_prefs(&self.principal, PrefsUpdate::from_json(&body)?)
        })
    }

    /// The caller's notifications, newest first, optionally only those about `date` or with
    /// `status`; at most `limit` (clamped to 1..200, default 50).
    #[pyo3(signature = (*, date = None, status = None, limit = None))]
    fn outbox(
        &self,
        py: Python<'_>,
        date: Option<&Bound<'_, PyAny>>,
        status: Option<String>,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let q = OutboxQuery {
            date: date_arg(date, "date")?,
            status,
            limit,
        };
        call_json(py, &self.db, move |core| core.outbox(&self.principal, &q))
    }

    /// Marks one of the caller's notifications acknowledged (repeating is harmless).
    /// Raises `NotFound` for a missing id or someone else's notification.
    fn ack_notification(&self, py: Python<'_>, id: i64) -> PyResult<Py<PyAny>> {
        let id = parse_id(&id.to_string()).map_err(|e| crate::errors::to_py(py, &e))?;
        call_json(py, &self.db, move |core| {
            core.ack_notification(&self.principal, id)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
