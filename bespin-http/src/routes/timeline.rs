//! `GET /v1/timeline`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::coreos::timeline::{TimelinePage, TimelineQuery};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("timeline", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/timeline" => list as list_timeline, d("The tenant's Core OS events, newest first")
            .query(&[("entity_type", "exact entity type"), ("entity_id", "exact entity id"),
                ("before", "an event_id: only older events (stable paging cursor)"), ("limit", "1..200, default 50"), ("offset", "default 0")])
            .ok(200, schema::<TimelinePage>)),
    ]
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = TimelineQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.timeline(&caller, &q)?))
}
