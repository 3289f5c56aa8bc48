//! `GET /v1/search`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::coreos::search::{self, SearchQuery, SearchResults};
use bespin_core::{Op, Principal};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("search", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/search" => search as search, d("Search the tenant's actions, tasks, decisions, meeting notes and memory facts")
            .query(&[("q", "the text to find (required; at most 512 characters and 16 distinct words, each at most 64 characters)"), ("types", "comma-separated: actions, tasks, decisions, meetings, memory; default all"),
                ("limit", "1..100, default 50")])
            .ok(200, schema::<SearchResults>)),
    ]
}

/// Index entries a search may read on the runtime's worker; one that needs more goes on in the
/// background lane, up to the server's search budget (`BESPIN_SEARCH_MAX_SCAN`), so that a
/// broad search costs its own tenant time, not everyone's.
const QUICK_SCAN: usize = 1_000;

fn search(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    // The contract's order: the query's values are validated first, like every request's
    // (10 §0.3 step 3: a missing or empty q is 422 whatever the plan), then capability and
    // quota (`search_within` checks both before it reads the index), then the search: a tenant
    // out of credits is refused before its search costs anything.
    let q = SearchQuery::from_json(&r.query_json()).map_err(ApiError::query)?;
    run(
        s,
        caller,
        q,
        |found| Reply::ok(&found),
        ApiError::into_reply,
    )
}

/// Runs a validated search for `caller` and answers `render(results)` once its usage event
/// is written: on the worker up to its first index entries, else in the background lane, where
/// a search past the whole budget is answered `refused(error)` (a 422 of the query), as is a
/// metering the writer refuses. (The
/// REST route and the MCP tool `search_records`, which answers refusals as tool errors.)
pub(crate) fn run(
    s: &AppState,
    caller: Principal,
    q: SearchQuery,
    render: impl FnOnce(SearchResults) -> Reply + Send + 'static,
    refused: impl FnOnce(ApiError) -> Reply + Clone + Send + 'static,
) -> Result<Reply, ApiError> {
    // The search reads a snapshot here or in the lane; only its metering waits for the writer
    // (and a metering refused there, by a quota another request used up meanwhile, is
    // answered by `refused` too).
    let metered = caller.clone();
    let unmetered = refused.clone();
    let meter = move |found: SearchResults| {
        render(found).after_write_or(Op::for_read(metered, search::meter), move |e| {
            unmetered(ApiError::body(e))
        })
    };
    let quick = s
        .bespin
        .search_within(&caller, &q, QUICK_SCAN)
        .map_err(ApiError::query)?;
    match quick {
        Some(found) => Ok(meter(found)),
        None => {
            // On this snapshot, taken here: the lane reads nothing else.
            let search = s.bespin.search_deferred(&caller, q)?;
            Ok(Reply::in_lane(caller.tenant_id().to_owned(), move |_| {
                // Past the whole budget: a 422 of the query.
                Ok(match search.run() {
                    Ok(found) => meter(found),
                    Err(e) => refused(ApiError::query(e)),
                })
            }))
        }
    }
}
