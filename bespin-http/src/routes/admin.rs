//! The platform-admin API under `/v1/admin` (30 §8.3): without the admin key every route answers
//! the same 404 as an unknown path. As the contract's order of checks has it (10 §3.2, 30 §8.1),
//! routing (405 for a wrong method) and JSON parsing (422 for malformed JSON) come first.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::billing::catalog::{
    self, MeteredEvent, MeteredEventPatch, NewMeteredEvent, NewPlan, Plan, PlanCap, PlanPatch,
};
use bespin_core::billing::subscriptions::{self, Subscription, SubscriptionUpdate};
use bespin_core::tenancy::erasure::{self, ConfirmErasure, Erasure};
use serde_json::Value;

pub fn routes() -> Vec<Route> {
    let a = |summary| Doc::new("admin", summary, Auth::PlatformAdmin);
    vec![
        route!(GET "/v1/admin/metered-events" => list_events as admin_list_metered_events, a("All metered event types").ok(200, list_of::<MeteredEvent>)),
        route!(POST "/v1/admin/metered-events" => create_event as admin_create_metered_event, a("Add a metered event type").body(schema::<NewMeteredEvent>).ok(201, schema::<MeteredEvent>)),
        route!(PUT "/v1/admin/metered-events/{event_key}" => update_event as admin_update_metered_event, a("Change a metered event type").body(schema::<MeteredEventPatch>).ok(200, schema::<MeteredEvent>)),
        route!(GET "/v1/admin/plans" => list_plans as admin_list_plans, a("All plans").ok(200, list_of::<Plan>)),
        route!(POST "/v1/admin/plans" => create_plan as admin_create_plan, a("Add a plan").body(schema::<NewPlan>).ok(201, schema::<Plan>)),
        route!(PUT "/v1/admin/plans/{plan_id}" => update_plan as admin_update_plan, a("Change a plan").body(schema::<PlanPatch>).ok(200, schema::<Plan>)),
        route!(PUT "/v1/admin/plans/{plan_id}/capabilities" => set_capabilities as admin_set_plan_capabilities, a("Replace a plan's capabilities").ok(200, list_of::<String>)),
        route!(PUT "/v1/admin/plans/{plan_id}/caps" => set_caps as admin_set_plan_caps, a("Replace a plan's event caps").ok(200, list_of::<PlanCap>)),
        route!(DELETE "/v1/admin/tenants/{tenant_id}" => erase_tenant as admin_erase_tenant, a("Erase a tenant: {\"confirm\": \"<tenant id>\"}; its requests fail at once, its rows go in the background, its id is never reused")
            .body(schema::<ConfirmErasure>).ok(202, schema::<Erasure>)),
        route!(GET "/v1/admin/tenants/{tenant_id}/erasure" => erasure as admin_get_tenant_erasure, a("Where a tenant's erasure stands (404 for a tenant never erased)")
            .ok(200, schema::<Erasure>)),
        route!(PUT "/v1/admin/tenants/{tenant_id}/subscription" => set_subscription as admin_set_subscription, a("Set a tenant's plan and status")
            .body(schema::<SubscriptionUpdate>).ok(200, schema::<Subscription>)),
    ]
}

/// Parses the body, then checks the admin key (30 §8.1: malformed JSON is a 422 before the key
/// check; a body that is JSON but invalid is a 404 without the key).
fn admin_body(s: &AppState, r: &Req) -> Result<Value, ApiError> {
    let body = r.json()?;
    r.require_platform_admin(s)?;
    Ok(body)
}

fn list_events(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.require_platform_admin(s)?;
    Ok(Reply::ok(&s.bespin.admin_metered_events()?))
}

fn create_event(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let req = NewMeteredEvent::from_json(&admin_body(s, r)?)?;
    Ok(Reply::write(
        Op::admin(req, catalog::create_metered_event),
        Reply::created,
    ))
}

fn update_event(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let patch = MeteredEventPatch::from_json(&admin_body(s, r)?)?;
    let event_key = r.param("event_key").to_owned();
    Ok(Reply::write(
        Op::admin_on(event_key, patch, catalog::update_metered_event),
        Reply::ok,
    ))
}

fn list_plans(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.require_platform_admin(s)?;
    Ok(Reply::ok(&s.bespin.admin_plans()?))
}

fn create_plan(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let req = NewPlan::from_json(&admin_body(s, r)?)?;
    Ok(Reply::write(
        Op::admin(req, catalog::create_plan),
        Reply::created,
    ))
}

fn update_plan(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let patch = PlanPatch::from_json(&admin_body(s, r)?)?;
    let plan_id = r.param("plan_id").to_owned();
    Ok(Reply::write(
        Op::admin_on(plan_id, patch, catalog::update_plan),
        Reply::ok,
    ))
}

fn set_capabilities(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caps = catalog::capabilities_from_json(&admin_body(s, r)?)?;
    let plan_id = r.param("plan_id").to_owned();
    Ok(Reply::write(
        Op::admin_on(plan_id, caps, catalog::set_plan_capabilities),
        Reply::ok,
    ))
}

fn set_caps(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caps = catalog::caps_from_json(&admin_body(s, r)?)?;
    let plan_id = r.param("plan_id").to_owned();
    Ok(Reply::write(
        Op::admin_on(plan_id, caps, catalog::set_plan_caps),
        Reply::ok,
    ))
}

fn set_subscription(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let req = SubscriptionUpdate::from_json(&admin_body(s, r)?)?;
    let tenant_id = r.param("tenant_id").to_owned();
    Ok(Reply::write(
        Op::admin_on(tenant_id, req, subscriptions::set),
        Reply::ok,
    ))
}

fn erase_tenant(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let req = ConfirmErasure::from_json(&admin_body(s, r)?)?;
    let tenant_id = r.param("tenant_id").to_owned();
    Ok(Reply::write(
        Op::admin_on(tenant_id, req, erasure::erase_tenant),
        |e| Reply::json(hyper::StatusCode::ACCEPTED, e),
    ))
}

fn erasure(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.require_platform_admin(s)?;
    match s.bespin.erasure(r.param("tenant_id"))? {
        Some(e) => Ok(Reply::ok(&e)),
        None => Err(ApiError::body(bespin_core::Error::NotFound(
            "No erasure of this tenant".into(),
        ))),
    }
}
