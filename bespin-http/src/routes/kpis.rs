//! `POST/GET /v1/kpis`, `POST /v1/kpis/{kpi_id}/points:bulk`, `GET /v1/kpis/{kpi_id}/latest`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::kpis::{IngestResult, Kpi, KpiPage, LatestPoint, NewKpi, PointsBulk};

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("kpis", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/kpis" => create, d("Define a KPI (admin)").body(schema::<NewKpi>).ok(201, schema::<Kpi>)),
        route!(GET "/v1/kpis" => list, d("The tenant's KPIs, newest first")
            .query(&[("limit", "1..500, default 100"), ("offset", "default 0")]).ok(200, list_of::<Kpi>)),
        route!(POST "/v1/kpis/{kpi_id}/points:bulk" => ingest, d("Add points to a KPI; points at an already stored instant are ignored (admin)")
            .body(schema::<PointsBulk>).ok(200, schema::<IngestResult>), bulk),
        route!(GET "/v1/kpis/{kpi_id}/latest" => latest, d("The KPI's newest point").ok(200, schema::<LatestPoint>)),
    ]
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewKpi::from_json(&body)?;
    Ok(Reply::write(
        move |db| db.create_kpi(&caller, req),
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
        move |db| db.ingest_points(&caller, &kpi_id, req),
        Reply::ok,
    ))
}

fn latest(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(
        &s.bespin.latest_point(&caller, r.param("kpi_id"))?,
    ))
}
