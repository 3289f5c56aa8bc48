//! Metering an embedder's own actions (core `metering`).

use crate::convert::{json_to_py, py_to_json};
use crate::errors;
use crate::handle::{PyAdmin, PySession, call, call_json};
use bespin_core::LocPart;
use bespin_core::limits::Activity;
use bespin_core::metering::Meter;
use bespin_core::metering::export::ExportQuery;
use bespin_core::metering::ingest::UsageEvents;
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

#[pymethods]
impl PySession {
    /// Records usage events reported by the tenant's own services (tenant admin): `events` is
    /// a list of 1–1,000 CloudEvents 1.0 as dicts (`specversion`, `id`, `source`, `type` = a
    /// metered event key, optional `subject` and `time`, `data: {"value": > 0}`), as
    /// `POST /v1/usage/events` takes them. Each is validated, de-duplicated by `(source, id)`,
    /// checked (time, type, capability, credits, cap) and recorded whole or refused alone.
    /// Returns `{"accepted", "duplicates", "rejected", "results": [{"index", "id", "status",
    /// "usage_id"?, "error"?: {"code", "body"}}]}`. Raises `ValidationError` when `events` is
    /// not such a list, `Forbidden` for a member.
    fn record_usage_events(
        &self,
        py: Python<'_>,
        events: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let value = py_to_json(events, &mut vec![LocPart::from("events")])?;
        let view = call(py, &self.db, move |core| {
            let report = core.record_usage_events(&self.principal, UsageEvents::batch(&value)?)?;
            Ok(report.view(|_| None, "events"))
        })?;
        json_to_py(py, &serde_json::to_value(view).unwrap_or(Value::Null))
    }

    /// The tenant's usage events as CloudEvents, oldest first by insertion, after `after`
    /// (the `next_cursor` of the last page; `None`: from the first), at most `limit`
    /// (1..1000): `{"events": [...], "next_cursor"}` (tenant admin).
    #[pyo3(signature = (after = None, limit = 100))]
    fn usage_export(
        &self,
        py: Python<'_>,
        after: Option<String>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.usage_export(&self.principal, export_query(core, after, limit)?)
        })
    }
}

#[pymethods]
impl PyAdmin {
    /// Every tenant's usage events as CloudEvents, oldest first by insertion (see
    /// `Session.usage_export`).
    #[pyo3(signature = (after = None, limit = 100))]
    fn usage_export(
        &self,
        py: Python<'_>,
        after: Option<String>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.admin_usage_export(export_query(core, after, limit)?)
        })
    }
}

/// The export's cursor and page size, validated as the HTTP query is (422 at `after`/`limit`).
fn export_query(
    core: &bespin_core::Bespin,
    after: Option<String>,
    limit: i64,
) -> bespin_core::Result<ExportQuery> {
    ExportQuery::parse(core, after.as_deref(), Some(&limit.to_string()))
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
