//! `POST/GET /v1/kpis`, `POST /v1/kpis/{kpi_id}/points:bulk`, `GET /v1/kpis/{kpi_id}/latest`,
//! `GET /v1/kpis/{kpi_id}/series`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::kpis::{
    self, IngestResult, Kpi, KpiPage, LatestPoint, NewKpi, PointsBulk, Series, SeriesQuery,
    SeriesRead,
};
use bespin_core::{Op, Principal};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("kpis", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/kpis" => create as create_kpi, d("Define a KPI (admin)").body(schema::<NewKpi>).ok(201, schema::<Kpi>)),
        route!(GET "/v1/kpis" => list as list_kpis, d("The tenant's KPIs, newest first")
            .query(&[("limit", "1..500, default 100"), ("offset", "default 0")]).ok(200, list_of::<Kpi>)),
        route!(POST "/v1/kpis/{kpi_id}/points:bulk" => ingest as ingest_kpi_points, d("Add points to a KPI; points at an already stored instant are ignored (admin)")
            .body(schema::<PointsBulk>).ok(200, schema::<IngestResult>), bulk),
        route!(DELETE "/v1/kpis/{kpi_id}" => delete as delete_kpi, d("Delete a KPI with all its points (admin)").ok(200, schema::<bespin_core::coreos::deletion::Deleted>)),
        route!(GET "/v1/kpis/{kpi_id}/latest" => latest as get_latest_kpi_point, d("The KPI's newest point").ok(200, schema::<LatestPoint>)),
        route!(GET "/v1/kpis/{kpi_id}/series" => series as get_kpi_series, d("The KPI's points over a range, oldest first, at most max_points: stored points only, downsampled \
            on the server when more fall in the range (each of max_points/4 equal spans keeps its first, lowest, highest and last point)")
            .query(&[("from", "RFC 3339 date-time or YYYY-MM-DD, inclusive; default: to minus window_days, else the first point"),
                ("to", "inclusive; default the latest point"),
                ("window_days", "integer >= 1, not with from: the window rule's range (as kpi_summary and briefs)"),
                ("max_points", "4..5000 (clamped), default 1000")])
            .ok(200, schema::<Series>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewKpi::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, req, kpis::create_kpi),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let page = KpiPage::from_query(
        q.get("limit").map(String::as_str),
        q.get("offset").map(String::as_str),
    )
    .map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.list_kpis(&caller, page)?))
}

fn ingest(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = PointsBulk::from_json(&body)?;
    let kpi_id = r.param("kpi_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, kpi_id, req, kpis::ingest_points),
        Reply::ok,
    ))
}

fn latest(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.latest_point(&caller, r.param("kpi_id"))?,
    ))
}

/// Points a series may read on the runtime's worker (about 0.4 ms); a range holding more is
/// read in the background lane, so a tenant charting millions of points costs its own turn
/// there, not everyone's worker time (as a broad search).
const QUICK_POINTS: u64 = 20_000;

fn series(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let query =
        SeriesQuery::from_query(|n| q.get(n).map(String::as_str)).map_err(ApiError::query)?;
    let render = |found: Series| Reply::ok(&found);
    series_reply(
        s,
        &caller,
        r.param("kpi_id"),
        query,
        render,
        ApiError::into_reply,
    )
}

/// A KPI's series for `caller`, answered by `render`: read on the worker up to
/// `QUICK_POINTS`, else in the background lane, where a failed read is answered by
/// `refused`. (The REST route, the MCP tool `get_kpi_series` and the KPI resource.)
pub(crate) fn series_reply(
    s: &AppState,
    caller: &Principal,
    kpi_id: &str,
    query: SeriesQuery,
    render: impl FnOnce(Series) -> Reply + Send + 'static,
    refused: impl FnOnce(ApiError) -> Reply + Send + 'static,
) -> Result<Reply, ApiError> {
    match s
        .bespin
        .kpi_series_within(caller, kpi_id, query, QUICK_POINTS)?
    {
        SeriesRead::Done(found) => Ok(render(found)),
        // On the snapshot the checks ran on: the lane reads nothing else.
        SeriesRead::Deferred(rest) => {
            Ok(Reply::in_lane(caller.tenant_id().to_owned(), move |_| {
                Ok(match rest.run() {
                    Ok(found) => render(found),
                    Err(e) => refused(ApiError::body(e)),
                })
            }))
        }
    }
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("kpi_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, bespin_core::kpis::delete_kpi),
        Reply::ok,
    ))
}
