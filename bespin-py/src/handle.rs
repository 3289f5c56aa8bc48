//! The three classes every area adds methods to, and the one way to call the core.
//!
//! - `bespin.Bespin`: an open database (`bespin.open(path)`, `bespin.open_in_memory()`), a
//!   context manager; `close()` closes it for every session made from it.
//! - `bespin.Session`: an authenticated principal of one tenant (`handle.session(...)`).
//! - `bespin.Admin`: the platform-admin catalogue (`handle.admin`). In-process there is no
//!   admin key: whoever holds the handle is the platform.
//!
//! All three are `frozen` and share one `Db`, so a handle and its sessions are safe to use from
//! many Python threads. Every core call goes through [`call`], which releases the GIL.

use crate::{convert, errors};
use bespin_core::{Credentials, Principal};
use pyo3::prelude::*;
use serde::Serialize;
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

/// The open core database, or `None` once closed.
pub struct Db {
    inner: RwLock<Option<bespin_core::Bespin>>,
    label: String,
}

impl Db {
    fn get(&self, py: Python<'_>) -> PyResult<bespin_core::Bespin> {
        let guard = self.inner.read().unwrap_or_else(|p| p.into_inner());
        guard.clone().ok_or_else(|| errors::closed(py))
    }
}

/// Runs `f` on the core with the GIL released and maps its error.
pub fn call<T: Send>(
    py: Python<'_>,
    db: &Db,
    f: impl FnOnce(&bespin_core::Bespin) -> bespin_core::Result<T> + Send,
) -> PyResult<T> {
    let core = db.get(py)?;
    py.detach(move || f(&core))
        .map_err(|e| errors::to_py(py, &e))
}

/// Like [`call`], for an operation whose result goes back to Python as plain data.
pub fn call_json<T: Serialize>(
    py: Python<'_>,
    db: &Db,
    f: impl FnOnce(&bespin_core::Bespin) -> bespin_core::Result<T> + Send,
) -> PyResult<Py<PyAny>> {
    let value = call(py, db, |core| convert::to_json(&f(core)?))?;
    convert::result_to_py(py, &value)
}

/// An open Bespin database.
#[pyclass(frozen, name = "Bespin", module = "bespin")]
pub struct PyBespin {
    pub db: Arc<Db>,
}

/// An authenticated user of one tenant; tenant-scoped operations are its methods.
#[pyclass(frozen, name = "Session", module = "bespin")]
pub struct PySession {
    pub db: Arc<Db>,
    pub principal: Principal,
}

/// The platform-admin catalogue operations.
#[pyclass(frozen, name = "Admin", module = "bespin")]
pub struct PyAdmin {
    pub db: Arc<Db>,
}

fn wrap(core: bespin_core::Bespin, label: String) -> PyBespin {
    PyBespin {
        db: Arc::new(Db {
            inner: RwLock::new(Some(core)),
            label,
        }),
    }
}

/// Opens (creating if missing) the database at `path`: a redb file, or a PostgreSQL URL
/// (`postgres://user@host/db?schema=bespin`) that other processes may share.
/// `event_retention_secs`: how long events are kept (default 30 days; a cursor older than
/// that raises `CursorExpired`); `purge_expired_events` removes the older ones.
#[pyfunction]
#[pyo3(signature = (path, *, event_retention_secs = None))]
fn open(py: Python<'_>, path: PathBuf, event_retention_secs: Option<u64>) -> PyResult<PyBespin> {
    let label = bespin_core::shown_db(&path);
    let mut options = bespin_core::Options::default();
    if let Some(secs) = event_retention_secs {
        if secs == 0 {
            return Err(pyo3::exceptions::PyValueError::new_err(
                "event_retention_secs must be positive",
            ));
        }
        options.event_retention_micros = i64::try_from(secs)
            .ok()
            .and_then(|s| s.checked_mul(1_000_000))
            .ok_or_else(|| {
                pyo3::exceptions::PyValueError::new_err("event_retention_secs is too large")
            })?;
    }
    let clock = std::sync::Arc::new(bespin_core::time::SystemClock);
    let core = py
        .detach(move || bespin_core::Bespin::open_with(&path, clock, options))
        .map_err(|e| errors::to_py(py, &e))?;
    Ok(wrap(core, label))
}

/// Opens a database held only in memory (gone when closed).
#[pyfunction]
fn open_in_memory(py: Python<'_>) -> PyResult<PyBespin> {
    let core = py
        .detach(bespin_core::Bespin::open_in_memory)
        .map_err(|e| errors::to_py(py, &e))?;
    Ok(wrap(core, ":memory:".into()))
}

#[pymethods]
impl PyBespin {
    /// Closes the database; later calls on it or its sessions raise `BespinError`
    /// (code `closed`). Closing twice is harmless. Calls already running finish first.
    fn close(&self, py: Python<'_>) {
        let old = {
            let mut guard = self.db.inner.write().unwrap_or_else(|p| p.into_inner());
            guard.take()
        };
        // Dropping the last reference closes the redb file; do it without the GIL.
        py.detach(move || drop(old));
    }

    /// Whether `close()` was called.
    #[getter]
    fn closed(&self) -> bool {
        self.db
            .inner
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .is_none()
    }

    fn __enter__(slf: Py<Self>) -> Py<Self> {
        slf
    }

    #[pyo3(signature = (*_args))]
    fn __exit__(&self, py: Python<'_>, _args: &Bound<'_, pyo3::types::PyTuple>) -> bool {
        self.close(py);
        false
    }

    fn __repr__(&self) -> String {
        let state = if self.closed() { " (closed)" } else { "" };
        format!("<bespin.Bespin {:?}{state}>", self.db.label)
    }

    /// Checks that the database answers a trivial read.
    fn health(&self, py: Python<'_>) -> PyResult<()> {
        call(py, &self.db, |core| core.health())
    }

    /// Deletes idempotency records older than the retention (24 h); returns how many went.
    fn purge_expired_idempotency(&self, py: Python<'_>) -> PyResult<usize> {
        call(py, &self.db, |core| core.purge_expired_idempotency())
    }

    /// Deletes up to `max` events older than the event retention, in one transaction; returns
    /// how many went (call again while it returns `max`). The server does this itself once a
    /// minute; a program embedding the database calls it on its own schedule.
    #[pyo3(signature = (max = 10_000))]
    fn purge_expired_events(&self, py: Python<'_>, max: usize) -> PyResult<usize> {
        call(py, &self.db, move |core| {
            core.purge_events(max.clamp(1, 100_000))
        })
    }

    /// Authenticates a tenant user and returns their session. Raises `BadRequest` for a blank
    /// credential, `Unauthorized` for an unknown tenant or wrong key, `Forbidden` for a user
    /// that is not in the tenant.
    fn session(
        &self,
        py: Python<'_>,
        tenant_id: String,
        user_id: String,
        api_key: String,
    ) -> PyResult<PySession> {
        let creds = Credentials::new(Some(&tenant_id), Some(&user_id), Some(&api_key));
        let principal = call(py, &self.db, move |core| core.authenticate(&creds))?;
        Ok(PySession {
            db: self.db.clone(),
            principal,
        })
    }

    /// The platform-admin catalogue operations.
    #[getter]
    fn admin(&self) -> PyAdmin {
        PyAdmin {
            db: self.db.clone(),
        }
    }
}

#[pymethods]
impl PySession {
    /// The caller's tenant.
    #[getter]
    fn tenant_id(&self) -> &str {
        self.principal.tenant_id()
    }

    /// The caller.
    #[getter]
    fn user_id(&self) -> &str {
        self.principal.user_id()
    }

    /// `"admin"` or `"member"`.
    #[getter]
    fn role(&self) -> &'static str {
        self.principal.role().as_str()
    }

    /// The caller's e-mail.
    #[getter]
    fn email(&self) -> &str {
        self.principal.email()
    }

    fn __repr__(&self) -> String {
        format!(
            "<bespin.Session tenant={} user={} role={}>",
            self.principal.tenant_id(),
            self.principal.user_id(),
            self.principal.role()
        )
    }
}

#[pymethods]
impl PyAdmin {
    fn __repr__(&self) -> String {
        format!("<bespin.Admin of {:?}>", self.db.label)
    }
}

/// Adds the classes and the `open` functions.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyBespin>()?;
    m.add_class::<PySession>()?;
    m.add_class::<PyAdmin>()?;
    m.add_function(wrap_pyfunction!(open, m)?)?;
    m.add_function(wrap_pyfunction!(open_in_memory, m)?)?;
    Ok(())
}
