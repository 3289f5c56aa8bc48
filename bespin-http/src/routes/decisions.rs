//! Decisions: `POST/GET /v1/decisions`, `GET/PATCH /v1/decisions/{decision_id}`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::decisions::{
    self, Decision, DecisionPage, DecisionPatch, NewDecision, paging_from_json,
};
use bespin_core::coreos::deletion::Deleted;

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("decisions", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/decisions" => create as create_decision, d("Record a decision (admin)").body(schema::<NewDecision>).ok(201, schema::<Decision>)).paced(),
        route!(GET "/v1/decisions" => list as list_decisions, d("The tenant's decisions, newest decision date first")
            .query(&[("limit", "1..100, default 50"), ("offset", "default 0")]).ok(200, schema::<DecisionPage>)),
        route!(DELETE "/v1/decisions/{decision_id}" => delete as delete_decision, d("Delete a decision (admin): gone from lists and search at once; its timeline stays").ok(200, schema::<Deleted>)),
        route!(GET "/v1/decisions/{decision_id}" => get as get_decision, d("A decision").ok(200, schema::<Decision>)),
        route!(PATCH "/v1/decisions/{decision_id}" => update as update_decision, d("Edit a decision (admin)")
            .body(schema::<DecisionPatch>).ok(200, schema::<Decision>)).paced(),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewDecision::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, decisions::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let paging = paging_from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_decisions(&caller, paging)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.get_decision(&caller, r.param("decision_id"))?,
    ))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = DecisionPatch::from_json(&body)?;
    let decision_id = r.param("decision_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, decision_id, patch, decisions::update),
        Reply::ok,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("decision_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, decisions::delete),
        Reply::ok,
    ))
}
