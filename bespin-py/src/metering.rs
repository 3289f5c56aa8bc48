//! Metering an embedder's own actions (core `metering`).

use crate::errors;
use crate::handle::{PySession, call_json};
use bespin_core::LocPart;
use bespin_core::limits::Activity;
use bespin_core::metering::Meter;
use pyo3::prelude::*;
use serde_json::{Value, json};

#[pymethods]
impl PySession {
    /// Meters `units` of `event_key` for the caller in one transaction: the capability (if
    /// given), the credit allowance and monthly cap, and the daily limit of `activity` (if
    /// given: `assistant_query`, `tool_invocation`, `daily_brief_generated`,
    /// `notification_enqueued`). Returns `{"request_id"}`. Raises `CapabilityDenied`,
    /// `BadRequest` (unknown event type) or `QuotaExceeded` and then records nothing.
    #[pyo3(signature = (event_key, units = 1, *, tool_name = None, capability = None, activity = None))]
    fn record_usage(
        &self,
        py: Python<'_>,
        event_key: String,
        units: i64,
        tool_name: Option<String>,
        capability: Option<String>,
        activity: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        let units = u64::try_from(units)
            .ok()
            .filter(|u| *u >= 1)
            .ok_or_else(|| {
                errors::invalid_arg(
                    py,
                    vec![LocPart::from("units")],
                    "greater_than_equal",
                    "Input should be greater than or equal to 1",
                    json!(units),
                )
            })?;
        let daily = match activity {
            None => None,
            Some(a) => Some(
                Activity::ALL
                    .into_iter()
                    .find(|x| x.as_str() == a)
                    .ok_or_else(|| {
                        errors::invalid_arg(
                            py,
                            vec![LocPart::from("activity")],
                            "literal_error",
                            "Input should be 'assistant_query', 'tool_invocation', \
                             'daily_brief_generated' or 'notification_enqueued'",
                            Value::String(a),
                        )
                    })?,
            ),
        };
        call_json(py, &self.db, move |core| {
            let meter = Meter {
                event_key: &event_key,
                units,
                tool_name: tool_name.as_deref(),
                daily,
            };
            core.record_usage(&self.principal, capability.as_deref(), meter)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
