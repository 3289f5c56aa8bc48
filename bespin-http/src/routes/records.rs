//! `GET /v1/records/{entity_type}/{entity_id}`: the record explorer.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::coreos::records::RecordView;

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("records", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/records/{entity_type}/{entity_id}" => record as get_record,
            d("A record (action, task, decision, meeting, memory_fact) with its evidence and 20 newest timeline events")
            .ok(200, schema::<RecordView>)),
    ]
}

fn record(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.record(
        &caller,
        r.param("entity_type"),
        r.param("entity_id"),
    )?))
}
