//! `GET /v1/search`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::coreos::search::{SearchQuery, SearchResults};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("search", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/search" => search as search, d("Search the tenant's actions, tasks, decisions, meeting notes and memory facts")
            .query(&[("q", "the text to find (required)"), ("types", "comma-separated: actions, tasks, decisions, meetings, memory; default all"),
                ("limit", "1..100, default 50")])
            .ok(200, schema::<SearchResults>)),
    ]
}

fn search(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = SearchQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    // The search reads a snapshot here; only its metering waits for the writer.
    let found = s.bespin.search_unmetered(&caller, &q)?;
    Ok(Reply::ok(&found).after_write(move |s| Ok(s.bespin.meter_search(&caller)?)))
}
