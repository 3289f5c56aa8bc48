//! `GET /v1/billing/events|plan|usage|usage/daily|ledger`: the tenant's view of its billing.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Req, query_ints};
use crate::openapi::{Auth, Doc, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::billing::catalog::MeteredEvent;
use bespin_core::billing::usage::{Ledger, PlanInfo, Usage, UsageByDay};
use bespin_core::limits::invalid_date;
use bespin_core::time::{Date, Period};
use std::collections::HashMap;

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/v1/billing/events" => events as list_billing_events, Doc::new("billing", "Active metered event types", Auth::Tenant).ok(200, list_of::<MeteredEvent>)),
        route!(GET "/v1/billing/plan" => plan as get_billing_plan, Doc::new("billing", "The tenant's subscription and plan", Auth::Tenant).ok(200, schema::<PlanInfo>)),
        route!(GET "/v1/billing/usage" => usage as get_billing_usage, Doc::new("billing", "Credits used in a period, by event", Auth::Tenant)
            .query(&[("period_start", "YYYY-MM-DD in the month to report; default the current month")]).ok(200, schema::<Usage>)),
        route!(GET "/v1/billing/usage/daily" => usage_by_day as get_billing_usage_by_day, Doc::new("billing", "Credits and units used per UTC day of a period, by event", Auth::Tenant)
            .query(&[("period_start", "YYYY-MM-DD in the month to report; default the current month")]).ok(200, schema::<UsageByDay>)),
        route!(GET "/v1/billing/ledger" => ledger as get_billing_ledger, Doc::new("billing", "Usage events of a period, newest first", Auth::Tenant)
            .query(&[("period_start", "YYYY-MM-DD in the month to report"), ("limit", "1..1000, default 200")]).ok(200, schema::<Ledger>)),
    ]
}

/// `period_start`: absent means the current month; otherwise a real date, whose month is meant.
fn period(q: &HashMap<String, String>) -> Result<Option<Period>, ApiError> {
    match q.get("period_start") {
        None => Ok(None),
        Some(s) => Date::parse(s)
            .map(|d| Some(Period::of(d)))
            .ok_or_else(|| ApiError::query(invalid_date(s, &["period_start"]))),
    }
}

fn events(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.principal(s)?;
    Ok(Reply::ok(&s.bespin.billing_events()?))
}

fn plan(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.billing_plan(&caller)?))
}

fn usage(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let period = period(&r.query_map())?;
    Ok(Reply::ok(&s.bespin.billing_usage(&caller, period)?))
}

fn usage_by_day(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let period = period(&r.query_map())?;
    Ok(Reply::ok(&s.bespin.billing_usage_by_day(&caller, period)?))
}

fn ledger(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let limit = query_ints(&q, &["limit"])?[0].unwrap_or(200);
    let period = period(&q)?;
    Ok(Reply::ok(&s.bespin.billing_ledger(&caller, period, limit)?))
}
