//! The event log (core `events`): `session.events(after=…, types=…, follow=…)` returns an
//! `EventStream`, an iterator of event dicts (`id`, `type`, `occurred_at`, `tenant_id`,
//! `actor_user_id`, `subject`, `data`), oldest first. Without `follow` it stops at the end of
//! the log; with it, it waits for new events with the GIL released, and stops on `close()`
//! (from any thread) or Ctrl-C (`KeyboardInterrupt` is raised within a fraction of a second).

use crate::convert;
use crate::errors;
use crate::handle::PySession;
use bespin_core::events::{self, EventQuery, Subscription, stream::Closer};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use std::sync::Mutex;
use std::time::Duration;

/// How long one wait lasts before Python's signals are checked again.
const SLICE: Duration = Duration::from_millis(200);

/// One turn of an iteration.
enum Step {
    Event(serde_json::Value),
    Nothing,
    Closed,
}

/// An iterator over a session's events (see the module documentation).
#[pyclass(frozen, name = "EventStream", module = "bespin")]
pub struct PyEventStream {
    sub: Mutex<Subscription>,
    closer: Closer,
    follow: bool,
}

#[pymethods]
impl PySession {
    /// The caller's events after `after` (an event id; `None`: from the oldest kept), of
    /// `types` (a list of catalogue names; `None`: every type the caller may see), as an
    /// `EventStream`. `follow=True` keeps waiting for new events. Raises `CursorExpired` when
    /// `after` is older than the retention, `ValidationError` for an unknown type or a
    /// malformed id.
    #[pyo3(signature = (*, after = None, types = None, follow = false))]
    fn events(
        &self,
        py: Python<'_>,
        after: Option<String>,
        types: Option<Vec<String>>,
        follow: bool,
    ) -> PyResult<PyEventStream> {
        let err = |e: bespin_core::Error| errors::to_py(py, &e);
        let after = after
            .map(|a| events::parse_cursor("after", &a))
            .transpose()
            .map_err(err)?;
        let types = types
            .map(|t| events::parse_types("types", &t.join(",")))
            .transpose()
            .map_err(err)?;
        let q = EventQuery {
            after,
            types,
            limit: None,
        };
        let caller = self.principal.clone();
        let sub = crate::handle::call(py, &self.db, move |db| db.subscribe(&caller, q))?;
        Ok(PyEventStream {
            closer: sub.closer(),
            sub: Mutex::new(sub),
            follow,
        })
    }
}

#[pymethods]
impl PyEventStream {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let wait = if self.follow { SLICE } else { Duration::ZERO };
        loop {
            // The lock is taken with the GIL released: a thread waiting for it never holds
            // the GIL the iterating thread needs back.
            let next = py
                .detach(|| {
                    let mut sub = self.sub.lock().unwrap_or_else(|p| p.into_inner());
                    if sub.is_closed() {
                        return Ok(Step::Closed);
                    }
                    Ok(match sub.next_timeout(wait)? {
                        Some(e) => Step::Event(convert::to_json(&e)?),
                        None => Step::Nothing,
                    })
                })
                .map_err(|e: bespin_core::Error| errors::to_py(py, &e))?;
            match next {
                Step::Event(v) => return convert::result_to_py(py, &v),
                Step::Closed => return Err(PyStopIteration::new_err(())),
                Step::Nothing if !self.follow => return Err(PyStopIteration::new_err(())),
                Step::Nothing => py.check_signals()?,
            }
        }
    }

    /// Ends the stream: a waiting iteration stops (from any thread).
    fn close(&self) {
        self.closer.close();
    }

    /// The id of the last event read from the log (resume with `after=`).
    #[getter]
    fn cursor(&self, py: Python<'_>) -> Option<String> {
        py.detach(|| self.sub.lock().unwrap_or_else(|p| p.into_inner()).cursor())
    }

    fn __enter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __exit__(
        &self,
        _t: Option<&Bound<'_, PyAny>>,
        _v: Option<&Bound<'_, PyAny>>,
        _tb: Option<&Bound<'_, PyAny>>,
    ) {
        self.close();
    }
}

/// Adds `EventStream`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyEventStream>()
}
