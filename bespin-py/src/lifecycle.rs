//! Keys and data over their lifetime (core `tenancy::keys`, `tenancy::users`,
//! `tenancy::export`, `tenancy::erasure`, and the deletes of `coreos::deletion`): user-bound
//! keys and their sessions, rotation, users, deletes, the tenant export and erasure.

use crate::convert::Body;
use crate::handle::{PyAdmin, PyBespin, PySession, call, call_json};
use bespin_core::Credentials;
use bespin_core::coreos::evidence::EvidenceQuery;
use bespin_core::tenancy::erasure::ConfirmErasure;
use bespin_core::tenancy::keys::{NewApiKey, Rotation};
use bespin_core::tenancy::users::{UserPatch, UserQuery};
use pyo3::prelude::*;
use std::io::Write;

type Arg<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

#[pymethods]
impl PyBespin {
    /// A session of a user-bound key (`create_api_key`): the key alone names its tenant and
    /// user; `tenant_id` and `user_id`, if given, must be the key's. Raises `Unauthorized`
    /// (unknown, revoked or expired key, deactivated user), `Forbidden` (another user).
    #[pyo3(signature = (api_key, *, tenant_id = None, user_id = None))]
    fn session_for_key(
        &self,
        py: Python<'_>,
        api_key: String,
        tenant_id: Option<String>,
        user_id: Option<String>,
    ) -> PyResult<PySession> {
        let bearer = format!("Bearer {api_key}");
        let creds = Credentials::new(tenant_id.as_deref(), user_id.as_deref(), None)
            .with_authorization(Some(&bearer));
        let principal = call(py, &self.db, move |core| core.authenticate(&creds))?;
        Ok(PySession {
            db: self.db.clone(),
            principal,
        })
    }
}

#[pymethods]
impl PySession {
    /// Makes a key bound to `user_id` (admin): `scopes` `["read_only"]`, a list of plan
    /// capabilities, or `None` for everything the user may do; `expires_at` an RFC 3339
    /// instant. The returned dict's `api_key` is shown this once.
    #[pyo3(signature = (*, user_id, name, scopes = None, expires_at = None))]
    fn create_api_key(
        &self,
        py: Python<'_>,
        user_id: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        scopes: Arg<'_, '_>,
        expires_at: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("user_id", user_id)?
            .req("name", name)?
            .opt("scopes", scopes)?
            .opt("expires_at", expires_at)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_api_key(&self.principal, NewApiKey::from_json(&body)?)
        })
    }

    /// The tenant's user-bound keys (admin: all; member: their own), never a secret.
    fn api_keys(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.list_api_keys(&self.principal))
    }

    /// Revokes a key (admin, or its own user): nothing authenticated by it writes after.
    fn revoke_api_key(&self, py: Python<'_>, key_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.revoke_api_key(&self.principal, &key_id)
        })
    }

    /// Rotates the tenant key (admin); the old one works `grace_seconds` more (0 to 604800).
    #[pyo3(signature = (*, grace_seconds = 0))]
    fn rotate_tenant_key(&self, py: Python<'_>, grace_seconds: i64) -> PyResult<Py<PyAny>> {
        let body = serde_json::json!({ "grace_seconds": grace_seconds });
        call_json(py, &self.db, move |core| {
            core.rotate_tenant_key(&self.principal, Rotation::from_json(&body)?)
        })
    }

    /// The tenant's users in creation order, a page at a time (admin): `limit` 1..200
    /// (default 50), `cursor` the previous page's `next_cursor`.
    #[pyo3(signature = (*, limit = None, cursor = None))]
    fn users(
        &self,
        py: Python<'_>,
        limit: Option<i64>,
        cursor: Option<String>,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            let cursor = match cursor.as_deref() {
                None | Some("") => None,
                Some(c) => Some(c.parse::<i64>().map_err(|_| {
                    bespin_core::Error::BadRequest("cursor is not a cursor".into())
                })?),
            };
            core.list_users(&self.principal, UserQuery::new(limit, cursor)?)
        })
    }

    /// One user (admin, or the user themself). Raises `NotFound`.
    fn user(&self, py: Python<'_>, user_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_user(&self.principal, &user_id)
        })
    }

    /// Changes a user's `role` and/or `deactivated` (admin). Raises `Conflict` for the last
    /// active admin.
    #[pyo3(signature = (user_id, *, role = None, deactivated = None))]
    fn update_user(
        &self,
        py: Python<'_>,
        user_id: String,
        role: Arg<'_, '_>,
        deactivated: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .opt("role", role)?
            .opt("deactivated", deactivated)?
            .json();
        call_json(py, &self.db, move |core| {
            core.update_user(&self.principal, &user_id, UserPatch::from_json(&body)?)
        })
    }

    /// Deletes a task (its creator or an admin).
    fn delete_task(&self, py: Python<'_>, task_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_task(&self.principal, &task_id)
        })
    }

    /// Deletes a decision (admin).
    fn delete_decision(&self, py: Python<'_>, decision_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_decision(&self.principal, &decision_id)
        })
    }

    /// Deletes a meeting note (its creator or an admin).
    fn delete_meeting(&self, py: Python<'_>, meeting_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_meeting(&self.principal, &meeting_id)
        })
    }

    /// Deletes a memory fact with every version of its supersede chain (admin).
    fn delete_memory_fact(&self, py: Python<'_>, fact_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_memory_fact(&self.principal, &fact_id)
        })
    }

    /// Deletes an evidence link of the record (`entity_type`, `entity_id`).
    #[pyo3(signature = (evidence_id, *, entity_type, entity_id))]
    fn delete_evidence(
        &self,
        py: Python<'_>,
        evidence_id: String,
        entity_type: &Bound<'_, PyAny>,
        entity_id: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("entity_type", entity_type)?
            .req("entity_id", entity_id)?
            .json();
        call_json(py, &self.db, move |core| {
            let target = EvidenceQuery::from_json(&body)?;
            core.delete_evidence(&self.principal, &evidence_id, target)
        })
    }

    /// Deletes one of the caller's conversations with its messages.
    fn delete_conversation(&self, py: Python<'_>, conversation_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_conversation(&self.principal, &conversation_id)
        })
    }

    /// Deletes a KPI with its points (admin).
    fn delete_kpi(&self, py: Python<'_>, kpi_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.delete_kpi(&self.principal, &kpi_id)
        })
    }

    /// Writes everything the tenant owns to the file `path` as JSON Lines (admin), from one
    /// snapshot, a chunk at a time; returns `{"rows", "tables"}`.
    fn export_tenant(&self, py: Python<'_>, path: std::path::PathBuf) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            let io = |e: std::io::Error| bespin_core::Error::Internal(format!("export: {e}"));
            let mut out = std::io::BufWriter::new(std::fs::File::create(&path).map_err(io)?);
            let done =
                core.export_tenant(&self.principal, |chunk| out.write_all(&chunk).map_err(io))?;
            out.flush().map_err(io)?;
            Ok(serde_json::json!({"rows": done.rows, "tables": done.tables}))
        })
    }
}

#[pymethods]
impl PyAdmin {
    /// Erases a tenant: `confirm` must repeat its id. Its sessions fail from now on; its rows
    /// go with `erase_step` (call until it returns `None`).
    #[pyo3(signature = (tenant_id, *, confirm))]
    fn erase_tenant(
        &self,
        py: Python<'_>,
        tenant_id: String,
        confirm: String,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.erase_tenant(&tenant_id, ConfirmErasure { confirm })
        })
    }

    /// One bounded step of the first erasure still running; `None` when none is.
    fn erase_step(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.erase_step())
    }

    /// Where the erasure of `tenant_id` stands; `None` if it was never erased.
    fn erasure(&self, py: Python<'_>, tenant_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| core.erasure(&tenant_id))
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
