//! Meeting notes: `POST/GET /v1/meetings`, `GET/PATCH /v1/meetings/{meeting_id}`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::coreos::deletion::Deleted;
use bespin_core::coreos::meetings::{
    self, MeetingNote, MeetingPage, MeetingPatch, MeetingQuery, NewMeeting,
};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("meetings", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/meetings" => create as create_meeting, d("Create a meeting note (linked_entity_type + linked_entity_id optionally link a record)")
            .body(schema::<NewMeeting>).ok(201, schema::<MeetingNote>)).paced(),
        route!(GET "/v1/meetings" => list as list_meetings, d("The tenant's meeting notes, newest meeting date first")
            .query(&[("from", "YYYY-MM-DD, inclusive"), ("to", "YYYY-MM-DD, inclusive"), ("limit", "1..100, default 50"), ("offset", "default 0")])
            .ok(200, schema::<MeetingPage>)),
        route!(DELETE "/v1/meetings/{meeting_id}" => delete as delete_meeting, d("Delete a meeting note (its creator or an admin): gone from lists and search at once").ok(200, schema::<Deleted>)),
        route!(GET "/v1/meetings/{meeting_id}" => get as get_meeting, d("A meeting note").ok(200, schema::<MeetingNote>)),
        route!(PATCH "/v1/meetings/{meeting_id}" => update as update_meeting, d("Edit a meeting note (creator or admin); both link fields null clear the link")
            .body(schema::<MeetingPatch>).ok(200, schema::<MeetingNote>)).paced(),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewMeeting::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, meetings::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = MeetingQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_meetings(&caller, &q)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.get_meeting(&caller, r.param("meeting_id"))?,
    ))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = MeetingPatch::from_json(&body)?;
    let meeting_id = r.param("meeting_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, meeting_id, patch, meetings::update),
        Reply::ok,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("meeting_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, meetings::delete),
        Reply::ok,
    ))
}
