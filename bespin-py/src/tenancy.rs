//! Tenants, users and the caller's identity (core `tenancy`).

use crate::convert::Body;
use crate::handle::{PyBespin, PySession, call_json};
use bespin_core::tenancy::{NewTenant, NewUser};
use pyo3::prelude::*;

#[pymethods]
impl PyBespin {
    /// Creates a tenant with its bootstrap admin, default limits and a `starter` subscription.
    /// The returned dict holds `api_key`, shown this once.
    #[pyo3(signature = (*, name, region, admin_email))]
    fn create_tenant(
        &self,
        py: Python<'_>,
        name: &Bound<'_, PyAny>,
        region: &Bound<'_, PyAny>,
        admin_email: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("name", name)?
            .req("region", region)?
            .req("admin_email", admin_email)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_tenant(NewTenant::from_json(&body)?)
        })
    }
}

#[pymethods]
impl PySession {
    /// The caller's own identity (`GET /v1/me`).
    fn me(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| Ok(core.me(&self.principal)))
    }

    /// Creates a user in the caller's tenant (admins only).
    #[pyo3(signature = (*, email, role))]
    fn create_user(
        &self,
        py: Python<'_>,
        email: &Bound<'_, PyAny>,
        role: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .set("tenant_id", self.principal.tenant_id())
            .req("email", email)?
            .req("role", role)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_user(&self.principal, NewUser::from_json(&body)?)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
