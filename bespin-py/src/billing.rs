//! Plans, credits and entitlements: the tenant reports (`Session.billing_*`) and the
//! platform-admin catalogue (`Admin`), core `billing`.

use crate::convert::{Body, date_arg};
use crate::handle::{PyAdmin, PySession, call_json};
use bespin_core::billing::catalog::{self, MeteredEventPatch, NewMeteredEvent, NewPlan, PlanPatch};
use bespin_core::billing::subscriptions::SubscriptionUpdate;
use bespin_core::time::Period;
use pyo3::prelude::*;

/// The month containing the optional `period_start` (a `date` or `YYYY-MM-DD`).
fn period_arg(period_start: Option<&Bound<'_, PyAny>>) -> PyResult<Option<Period>> {
    Ok(date_arg(period_start, "period_start")?.map(Period::of))
}

#[pymethods]
impl PySession {
    /// The tenant's subscription with its plan and granted capabilities.
    fn billing_plan(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.billing_plan(&self.principal))
    }

    /// Credits used in the month containing `period_start` (default: this month), by event.
    #[pyo3(signature = (period_start = None))]
    fn billing_usage(
        &self,
        py: Python<'_>,
        period_start: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let period = period_arg(period_start)?;
        call_json(py, &self.db, move |core| {
            core.billing_usage(&self.principal, period)
        })
    }

    /// Usage of the month containing `period_start` (default: this month) per UTC day and event
    /// key: `{"period_start", "period_end", "days": [{"date", "credits", "breakdown":
    /// [{"event_key", "raw_units", "credits"}]}]}`, days with usage only, oldest first.
    #[pyo3(signature = (period_start = None))]
    fn billing_usage_by_day(
        &self,
        py: Python<'_>,
        period_start: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let period = period_arg(period_start)?;
        call_json(py, &self.db, move |core| {
            core.billing_usage_by_day(&self.principal, period)
        })
    }

    /// Usage events of the month containing `period_start` (default: this month), newest
    /// first, at most `limit` (clamped to 1..1000).
    #[pyo3(signature = (period_start = None, limit = 200))]
    fn billing_ledger(
        &self,
        py: Python<'_>,
        period_start: Option<&Bound<'_, PyAny>>,
        limit: i64,
    ) -> PyResult<Py<PyAny>> {
        let period = period_arg(period_start)?;
        call_json(py, &self.db, move |core| {
            core.billing_ledger(&self.principal, period, limit)
        })
    }

    /// The active metered event types, sorted by key.
    fn billing_events(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.billing_events())
    }
}

#[pymethods]
impl PyAdmin {
    /// Every metered event type, active or not, sorted by key.
    fn metered_events(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.admin_metered_events())
    }

    /// Adds a metered event type. Raises `Conflict` if the key exists.
    #[pyo3(signature = (
        *,
        event_key,
        display_name,
        unit_name,
        credits_per_unit,
        list_price_per_credit,
        description = None,
        billable = None,
        active = None,
        capability = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_metered_event(
        &self,
        py: Python<'_>,
        event_key: &Bound<'_, PyAny>,
        display_name: &Bound<'_, PyAny>,
        unit_name: &Bound<'_, PyAny>,
        credits_per_unit: &Bound<'_, PyAny>,
        list_price_per_credit: &Bound<'_, PyAny>,
        description: Option<&Bound<'_, PyAny>>,
        billable: Option<&Bound<'_, PyAny>>,
        active: Option<&Bound<'_, PyAny>>,
        capability: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .opt("capability", capability)?
            .req("event_key", event_key)?
            .req("display_name", display_name)?
            .opt("description", description)?
            .req("unit_name", unit_name)?
            .req("credits_per_unit", credits_per_unit)?
            .req("list_price_per_credit", list_price_per_credit)?
            .opt("billable", billable)?
            .opt("active", active)?
            .json();
        call_json(py, &self.db, move |core| {
            core.admin_create_metered_event(NewMeteredEvent::from_json(&body)?)
        })
    }

    /// Changes a metered event type; `None` leaves a field unchanged. A new weight or price
    /// applies to later usage only. Raises `NotFound`.
    #[pyo3(signature = (
        event_key,
        *,
        display_name = None,
        description = None,
        unit_name = None,
        credits_per_unit = None,
        list_price_per_credit = None,
        billable = None,
        active = None,
        capability = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn update_metered_event(
        &self,
        py: Python<'_>,
        event_key: String,
        display_name: Option<&Bound<'_, PyAny>>,
        description: Option<&Bound<'_, PyAny>>,
        unit_name: Option<&Bound<'_, PyAny>>,
        credits_per_unit: Option<&Bound<'_, PyAny>>,
        list_price_per_credit: Option<&Bound<'_, PyAny>>,
        billable: Option<&Bound<'_, PyAny>>,
        active: Option<&Bound<'_, PyAny>>,
        capability: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .opt("capability", capability)?
            .opt("display_name", display_name)?
            .opt("description", description)?
            .opt("unit_name", unit_name)?
            .opt("credits_per_unit", credits_per_unit)?
            .opt("list_price_per_credit", list_price_per_credit)?
            .opt("billable", billable)?
            .opt("active", active)?
            .json();
        call_json(py, &self.db, move |core| {
            core.admin_update_metered_event(&event_key, MeteredEventPatch::from_json(&body)?)
        })
    }

    /// Every plan, sorted by id.
    fn plans(&self, py: Python<'_>) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, |core| core.admin_plans())
    }

    /// Adds a plan with no capabilities and no caps. Raises `Conflict` if the id exists.
    #[pyo3(signature = (*, plan_id, name, included_credits, overage_price_per_credit))]
    fn create_plan(
        &self,
        py: Python<'_>,
        plan_id: &Bound<'_, PyAny>,
        name: &Bound<'_, PyAny>,
        included_credits: &Bound<'_, PyAny>,
        overage_price_per_credit: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("plan_id", plan_id)?
            .req("name", name)?
            .req("included_credits", included_credits)?
            .req("overage_price_per_credit", overage_price_per_credit)?
            .json();
        call_json(py, &self.db, move |core| {
            core.admin_create_plan(NewPlan::from_json(&body)?)
        })
    }

    /// Changes a plan; `None` leaves a field unchanged; a new allowance applies at once.
    /// Raises `NotFound`.
    #[pyo3(signature = (plan_id, *, name = None, included_credits = None, overage_price_per_credit = None))]
    fn update_plan(
        &self,
        py: Python<'_>,
        plan_id: String,
        name: Option<&Bound<'_, PyAny>>,
        included_credits: Option<&Bound<'_, PyAny>>,
        overage_price_per_credit: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .opt("name", name)?
            .opt("included_credits", included_credits)?
            .opt("overage_price_per_credit", overage_price_per_credit)?
            .json();
        call_json(py, &self.db, move |core| {
            core.admin_update_plan(&plan_id, PlanPatch::from_json(&body)?)
        })
    }

    /// Replaces a plan's capability grants; returns them. Raises `NotFound` for the plan,
    /// `BadRequest` for an unknown capability, `ValidationError` for a repeated one.
    fn set_plan_capabilities(
        &self,
        py: Python<'_>,
        plan_id: String,
        capabilities: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new().req("capabilities", capabilities)?.json();
        call_json(py, &self.db, move |core| {
            core.admin_set_plan_capabilities(&plan_id, catalog::capabilities_from_json(&body)?)
        })
    }

    /// Replaces a plan's caps, given as dicts `{"event_key", "cap_raw_units", "period"?}`.
    /// Raises `NotFound` for the plan, `BadRequest` for an unknown event key.
    fn set_plan_caps(
        &self,
        py: Python<'_>,
        plan_id: String,
        caps: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new().req("caps", caps)?.json();
        call_json(py, &self.db, move |core| {
            core.admin_set_plan_caps(&plan_id, catalog::caps_from_json(&body)?)
        })
    }

    /// Creates or changes a tenant's subscription (`status` defaults to `"active"`).
    /// Raises `NotFound` for the tenant, then for the plan.
    #[pyo3(signature = (tenant_id, *, plan_id, status = None, period_start = None))]
    fn set_subscription(
        &self,
        py: Python<'_>,
        tenant_id: String,
        plan_id: &Bound<'_, PyAny>,
        status: Option<&Bound<'_, PyAny>>,
        period_start: Option<&Bound<'_, PyAny>>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("plan_id", plan_id)?
            .opt("status", status)?
            .opt("period_start", period_start)?
            .json();
        call_json(py, &self.db, move |core| {
            core.admin_set_subscription(&tenant_id, SubscriptionUpdate::from_json(&body)?)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
