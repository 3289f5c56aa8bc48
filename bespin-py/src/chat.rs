//! The deterministic cofounder chat (core `chat`).

use crate::convert::Body;
use crate::handle::{PySession, call_json};
use bespin_core::chat::ChatRequest;
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// One chat exchange, in one transaction: stores the caller's message and the assistant's
    /// reply in `conversation_id` (a new conversation when `None`). `date` picks the brief of
    /// that date for the brief intent. Returns `{"request_id", "conversation_id",
    /// "assistant_message"}`. Raises `NotFound` (conversation), `CapabilityDenied`,
    /// `QuotaExceeded`, `ValidationError`.
    #[pyo3(signature = (message, *, conversation_id = None, date = None))]
    fn chat(
        &self,
        py: Python<'_>,
        message: &Bound<'_, PyAny>,
        conversation_id: Option<&Bound<'_, PyAny>>,
        date: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("message", message)?
            .opt("conversation_id", conversation_id)?
            .opt("date", date)?
            .json();
        call_json(py, &self.db, move |core| {
            core.chat(&self.principal, ChatRequest::from_json(&body)?)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
