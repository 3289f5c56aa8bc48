//! Conversations and their messages (core `conversations`).

use crate::convert::Body;
use crate::handle::{PySession, call_json};
use bespin_core::conversations::NewConversation;
use pyo3::prelude::*;

#[pymethods]
impl PySession {
    /// Creates a conversation owned by the caller.
    #[pyo3(signature = (title = None))]
    fn create_conversation(
        &self,
        py: Python<'_>,
        title: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new().opt("title", title)?.json();
        call_json(py, &self.db, move |core| {
            core.create_conversation(&self.principal, NewConversation::from_json(&body)?)
        })
    }

    /// The caller's conversations, newest first (`limit` clamped to 1..200, default 50).
    #[pyo3(signature = (*, limit = None, offset = None))]
    fn conversations(
        &self,
        py: Python<'_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.conversations(&self.principal, limit, offset)
        })
    }

    /// One of the caller's conversations with its messages. Raises `NotFound`.
    fn conversation(&self, py: Python<'_>, conversation_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.conversation(&self.principal, &conversation_id)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
