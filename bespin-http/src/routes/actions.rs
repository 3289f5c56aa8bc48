//! The Action Center: `POST/GET /v1/actions`, `GET/PATCH /v1/actions/{action_id}`,
//! `POST /v1/actions/{action_id}/cancel|approve|reject|execute`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::actions::{
    self, Action, ActionDetail, ActionPage, ActionPatch, ActionQuery, ExecuteAction,
    ExecutionResult, NewAction, ReviewComment,
};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("actions", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/actions" => create as create_action, d("Propose an action").body(schema::<NewAction>).ok(201, schema::<Action>)).paced(),
        route!(GET "/v1/actions" => list as list_actions, d("The tenant's actions, newest first")
            .query(&[("status", "exact status, default proposed; all or empty: any"), ("created_by_user_id", "exact creator"),
                ("assigned_to_user_id", "exact assignee"), ("limit", "1..200, default 50"), ("offset", "default 0")])
            .ok(200, schema::<ActionPage>)),
        route!(GET "/v1/actions/{action_id}" => get as get_action, d("An action with its review and execution").ok(200, schema::<ActionDetail>)),
        route!(PATCH "/v1/actions/{action_id}" => update as update_action, d("Edit or cancel a proposed action (creator or admin)")
            .body(schema::<ActionPatch>).ok(200, schema::<Action>)).paced(),
        route!(POST "/v1/actions/{action_id}/cancel" => cancel as cancel_action, d("Cancel a proposed action (creator or admin)")
            .body(schema::<ReviewComment>).ok(200, schema::<Action>)),
        route!(POST "/v1/actions/{action_id}/approve" => approve as approve_action, d("Approve a proposed action (admin)")
            .body(schema::<ReviewComment>).ok(200, schema::<Action>)),
        route!(POST "/v1/actions/{action_id}/reject" => reject as reject_action, d("Reject a proposed action (admin)")
            .body(schema::<ReviewComment>).ok(200, schema::<Action>)),
        route!(POST "/v1/actions/{action_id}/execute" => execute as execute_action, d("Record the execution of an approved action (admin)")
            .body(schema::<ExecuteAction>).ok(200, schema::<ExecutionResult>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewAction::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, actions::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = ActionQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_actions(&caller, &q)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.get_action(&caller, r.param("action_id"))?,
    ))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = ActionPatch::from_json(&body)?;
    let action_id = r.param("action_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, action_id, patch, actions::update),
        Reply::ok,
    ))
}

fn cancel(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = ReviewComment::from_json(&body)?;
    let action_id = r.param("action_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, action_id, req, actions::cancel),
        Reply::ok,
    ))
}

fn approve(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = ReviewComment::from_json(&body)?;
    let action_id = r.param("action_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, action_id, req, actions::approve),
        Reply::ok,
    ))
}

fn reject(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = ReviewComment::from_json(&body)?;
    let action_id = r.param("action_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, action_id, req, actions::reject),
        Reply::ok,
    ))
}

fn execute(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = ExecuteAction::from_json(&body)?;
    let action_id = r.param("action_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, action_id, req, actions::execute),
        Reply::ok,
    ))
}
