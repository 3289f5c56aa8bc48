//! The tool gateway: the registry and idempotent invocation (core `tools`).

use crate::convert::{Body, idempotency_key};
use crate::handle::{PySession, call_json};
use bespin_core::idempotency::Stored;
use bespin_core::tools::InvokeRequest;
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// The registered tools with their input schemas. Raises `CapabilityDenied` without the
    /// `tools` capability.
    fn tools(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.tools(&self.principal))
    }

    /// Invokes a tool under `idempotency_key`: a replay with the same body returns the stored
    /// answer (same `request_id`) and writes nothing; the same key with another body raises
    /// `Conflict`. Raises `NotFound` for an unknown tool, `QuotaExceeded`, `CapabilityDenied`.
    /// A tool-level problem is `{"error": ...}` inside `result`.
    #[pyo3(signature = (tool_name, payload = None, *, idempotency_key))]
    fn invoke_tool(
        &self,
        py: Python<'_>,
        tool_name: &Bound<'_, PyAny>,
        payload: Option<&Bound<'_, PyAny>>,
        idempotency_key: String,
    ) -> PyResult<Py<PyAny>> {
        self::idempotency_key(py, &idempotency_key)?;
        let body = Body::new()
            .req("tool_name", tool_name)?
            .opt("payload", payload)?
            .json();
        call_json(py, &self.db, move |core| {
            core.invoke_tool(
                &self.principal,
                &idempotency_key,
                InvokeRequest::from_json(&body)?,
            )
            .and_then(Stored::into_value)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
