//! `POST /v1/briefs/materialize`, `GET /v1/briefs`, `GET /v1/briefs/latest`, `GET /v1/briefs/{date}`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::briefs::{self, Brief, BriefList, BriefPage, MaterializeRequest};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("briefs", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/briefs/materialize" => materialize as materialize_brief, Doc::new("briefs", "Create (or return) the brief for a date (idempotent; admin)", Auth::TenantIdempotent)
            .body(schema::<MaterializeRequest>).ok(200, schema::<Brief>)),
        route!(GET "/v1/briefs" => list as list_briefs, d("The stored briefs' dates and counts, newest first")
            .query(&[("before", "YYYY-MM-DD: only earlier dates (the next page)"), ("limit", "1..366, default 31")]).ok(200, schema::<BriefList>)),
        route!(GET "/v1/briefs/latest" => latest as get_latest_brief, d("The brief with the newest date").ok(200, schema::<Brief>)),
        route!(GET "/v1/briefs/{date}" => by_date as get_brief, d("The brief for a date (YYYY-MM-DD)").ok(200, schema::<Brief>)),
    ]
}

fn materialize(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let key = r.idempotency_key()?;
    let caller = r.principal(s)?;
    let req = MaterializeRequest::from_json(&body)?;
    Ok(Reply::write(
        Op::on_with(caller, key, req, briefs::materialize),
        Reply::stored,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let page = BriefPage::from_query(
        q.get("before").map(String::as_str),
        q.get("limit").map(String::as_str),
    )
    .map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_briefs(&caller, page)?))
}

fn latest(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.latest_brief(&caller)?))
}

fn by_date(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    s.bespin
        .brief(&caller, r.param("date"))
        .map(|b| Reply::ok(&b))
        .map_err(ApiError::path)
}
