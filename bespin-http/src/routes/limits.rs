//! `GET/PUT /v1/limits`, `GET /v1/usage/daily`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::limits::{self, DailyLimits, DailyUsage, TenantLimits, parse_date_param};

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/v1/limits" => get_limits as get_limits, Doc::new("limits", "The tenant's daily limits", Auth::Tenant).ok(200, schema::<TenantLimits>)),
        route!(PUT "/v1/limits" => put_limits as set_limits, Doc::new("limits", "Replace the daily limits (admin)", Auth::Tenant)
            .body(schema::<DailyLimits>).ok(200, schema::<TenantLimits>)),
        route!(GET "/v1/usage/daily" => daily_usage as get_daily_usage, Doc::new("limits", "Usage of the daily-limited activities on a UTC date", Auth::Tenant)
            .query(&[("date", "YYYY-MM-DD; default today (UTC)")]).ok(200, schema::<DailyUsage>)),
    ]
}

fn get_limits(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.limits(&caller)?))
}

fn put_limits(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let limits = DailyLimits::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, limits, limits::put_limits),
        Reply::ok,
    ))
}

fn daily_usage(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let today = s.bespin.ctx().now.date();
    let date = parse_date_param(q.get("date").map(String::as_str), today, &["date"])
        .map_err(ApiError::query)?;
    Ok(Reply::ok(&s.bespin.daily_usage(&caller, Some(date))?))
}
