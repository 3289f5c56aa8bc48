//! `POST /v1/jobs/daily-brief`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::briefs::MaterializeRequest;
use bespin_core::jobs::{self, RunReport};

pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/v1/jobs/daily-brief" => daily_brief as run_daily_brief, Doc::new("jobs", "Ensure the day's brief and notify opted-in users (idempotent; admin)", Auth::TenantIdempotent)
        .body(schema::<MaterializeRequest>).ok(200, schema::<RunReport>)),
    ]
}

fn daily_brief(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let key = r.idempotency_key()?;
    let caller = r.principal(s)?;
    let req = MaterializeRequest::from_json(&body)?;
    Ok(Reply::write(
        Op::on_with(caller, key, req, jobs::run_daily_brief),
        Reply::stored,
    ))
}
