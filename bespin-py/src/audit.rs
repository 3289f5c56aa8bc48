//! The audit log (core `audit`): `session.audit_log(...)` (a page, newest first),
//! `audit_stats(group_by, ...)`, `audit_export(...)` (an `AuditExport`, an iterator of row
//! dicts, oldest first, read a page at a time from one snapshot), `audit_proof(from_, to)`;
//! `handle.audit_public_key()` and `handle.audit_verify()` (every chain recomputed). The query
//! values are validated by the HTTP API's parsers, so errors are the same `ValidationError`s
//! (`loc` without the `"query"` prefix).

use crate::convert::{self, Body};
use crate::errors;
use crate::handle::{PyBespin, PySession, call, call_json};
use bespin_core::audit::checkpoint::ProofQuery;
use bespin_core::audit::{AuditExport, AuditQuery, ExportQuery, StatsQuery};
use pyo3::exceptions::PyStopIteration;
use pyo3::prelude::*;
use std::collections::VecDeque;
use std::sync::Mutex;

#[pymethods]
impl PySession {
    /// A page of the tenant's audit rows, newest first (tenant admins): `{"items", "next_cursor"}`;
    /// pass `next_cursor` as `cursor` for the next (older) page. `since` (inclusive) and
    /// `until` (exclusive) take an aware `datetime`, a `date` or an ISO string; `outcome` is
    /// `success`, `denied` or `quota`; `limit` 1..200 (default 50).
    #[pyo3(signature = (
        *,
        actor_user_id = None,
        action = None,
        target_type = None,
        target_id = None,
        outcome = None,
        since = None,
        until = None,
        cursor = None,
        limit = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn audit_log(
        &self,
        py: Python<'_>,
        actor_user_id: Option<&Bound<'_, PyAny>>,
        action: Option<&Bound<'_, PyAny>>,
        target_type: Option<&Bound<'_, PyAny>>,
        target_id: Option<&Bound<'_, PyAny>>,
        outcome: Option<&Bound<'_, PyAny>>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
        cursor: Option<&Bound<'_, PyAny>>,
        limit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let q = Body::new()
            .opt("actor_user_id", actor_user_id)?
            .opt("action", action)?
            .opt("target_type", target_type)?
            .opt("target_id", target_id)?
            .opt("outcome", outcome)?
            .opt("since", since)?
            .opt("until", until)?
            .opt("cursor", cursor)?
            .opt("limit", limit)?
            .json();
        call_json(py, &self.db, move |core| {
            core.audit_page(&self.principal, &AuditQuery::from_json(&q)?)
        })
    }

    /// Counts of the tenant's audit rows per `group_by` (`action`, `actor`, `outcome`, `day`)
    /// over `[since, until)` (tenant admins; at most 100,000 rows).
    #[pyo3(signature = (group_by, *, since = None, until = None))]
    fn audit_stats(
        &self,
        py: Python<'_>,
        group_by: &Bound<'_, PyAny>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let q = Body::new()
            .req("group_by", group_by)?
            .opt("since", since)?
            .opt("until", until)?
            .json();
        call_json(py, &self.db, move |core| {
            core.audit_stats(&self.principal, &StatsQuery::from_json(&q)?)
        })
    }

    /// The tenant's audit rows of `[since, until)` as an `AuditExport` iterator of row dicts,
    /// oldest first, each with what a verifier needs to rehash it (tenant admins; at most
    /// 1,000,000 rows, two exports of a tenant at once: `BespinError` for a third).
    #[pyo3(signature = (*, since = None, until = None))]
    fn audit_export(
        &self,
        py: Python<'_>,
        since: Option<&Bound<'_, PyAny>>,
        until: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<PyAuditExport> {
        let q = Body::new().opt("since", since)?.opt("until", until)?.json();
        let export = call(py, &self.db, move |core| {
            core.audit_export(&self.principal, &ExportQuery::from_json(&q)?)
        })?;
        Ok(PyAuditExport {
            state: Mutex::new((Some(export), VecDeque::new())),
        })
    }

    /// What a client needs to verify the tenant's audit rows `from_..=to` offline (tenant
    /// admins; at most 2,000 rows): their hashed fields, the hash before them, and the first
    /// signed checkpoint covering them with the rows up to it.
    #[pyo3(signature = (from_, to))]
    fn audit_proof(
        &self,
        py: Python<'_>,
        from_: &Bound<'_, PyAny>,
        to: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let q = Body::new().req("from", from_)?.req("to", to)?.json();
        call_json(py, &self.db, move |core| {
            core.audit_proof(&self.principal, ProofQuery::from_json(&q)?)
        })
    }
}

#[pymethods]
impl PyBespin {
    /// The Ed25519 key that signs audit checkpoints: `{"name", "verifier_key",
    /// "ed25519_public_key", "algorithm"}`.
    fn audit_public_key(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.audit_public_key())
    }

    /// Recomputes every tenant's audit chain: `{"chains", "rows", "findings",
    /// "total_findings"}`, each finding with `tenant_id`, `n`, `fault` and `description`.
    fn audit_verify(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.audit_verify())
    }
}

/// An iterator over an audit export's rows (see [`PySession::audit_export`]); it holds its
/// snapshot until it is exhausted or closed.
#[pyclass(frozen, name = "AuditExport", module = "bespin")]
pub struct PyAuditExport {
    /// The export (`None` once done or closed) and the rows of the page read last.
    state: Mutex<(Option<AuditExport>, VecDeque<serde_json::Value>)>,
}

#[pymethods]
impl PyAuditExport {
    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        let next = py
            .detach(|| {
                let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
                let (export, rows) = &mut *st;
                if rows.is_empty()
                    && let Some(x) = export
                {
                    let mut out = Vec::new();
                    if x.next_page(&mut out)? {
                        for line in out.split(|&b| b == b'\n').filter(|l| !l.is_empty()) {
                            rows.push_back(serde_json::from_slice(line).map_err(|e| {
                                bespin_core::Error::Internal(format!("audit export: {e}"))
                            })?);
                        }
                    } else {
                        *export = None;
                    }
                }
                Ok(rows.pop_front())
            })
            .map_err(|e: bespin_core::Error| errors::to_py(py, &e))?;
        match next {
            Some(v) => convert::result_to_py(py, &v),
            None => Err(PyStopIteration::new_err(())),
        }
    }

    /// Rows not yet read from the database (the current page's excluded).
    #[getter]
    fn remaining(&self) -> u64 {
        let st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        st.0.as_ref().map_or(0, AuditExport::remaining)
    }

    /// Ends the export and releases its snapshot.
    fn close(&self) {
        let mut st = self.state.lock().unwrap_or_else(|p| p.into_inner());
        *st = (None, VecDeque::new());
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

/// Adds `AuditExport`.
pub fn register(m: &Bound<'_, PyModule>) -> PyResult<()> {
    m.add_class::<PyAuditExport>()
}
