//! `GET/PUT /v1/notifications/prefs`, `GET /v1/notifications/outbox`,
//! `POST /v1/notifications/{notification_id}/ack`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Req, query_ints};
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::Op;
use bespin_core::limits::invalid_date;
use bespin_core::notifications::{
    self, Notification, Outbox, OutboxQuery, Prefs, PrefsUpdate, parse_id,
};
use bespin_core::time::Date;

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("notifications", summary, Auth::Tenant);
    vec![
        route!(GET "/v1/notifications/prefs" => get_prefs as get_notification_prefs, d("The caller's notification preferences").ok(200, schema::<Prefs>)),
        route!(PUT "/v1/notifications/prefs" => put_prefs as set_notification_prefs, d("Replace the caller's notification preferences").body(schema::<PrefsUpdate>).ok(200, schema::<Prefs>)),
        route!(GET "/v1/notifications/outbox" => outbox as list_notifications, d("The caller's notifications, newest first")
            .query(&[("date", "YYYY-MM-DD"), ("status", "queued | acked"), ("limit", "1..200, default 50")]).ok(200, schema::<Outbox>)),
        route!(POST "/v1/notifications/{notification_id}/ack" => ack as ack_notification, d("Acknowledge one of the caller's notifications").ok(200, schema::<Notification>)),
    ]
}

fn get_prefs(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.notification_prefs(&caller)?))
}

fn put_prefs(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let update = PrefsUpdate::from_json(&body)?;
    Ok(Reply::write(
        Op::with(caller, update, notifications::set_prefs),
        Reply::ok,
    ))
}

fn outbox(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = r.query_map();
    let limit = query_ints(&q, &["limit"])?[0];
    let date = match q.get("date").filter(|d| !d.is_empty()) {
        Some(d) => Some(Date::parse(d).ok_or_else(|| ApiError::query(invalid_date(d, &["date"])))?),
        None => None,
    };
    let status = q.get("status").filter(|s| !s.is_empty()).cloned();
    Ok(Reply::ok(&s.bespin.outbox(
        &caller,
        &OutboxQuery {
            date,
            status,
            limit,
        },
    )?))
}

fn ack(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = parse_id(r.param("notification_id")).map_err(ApiError::path)?;
    Ok(Reply::write(
        Op::with(caller, id, notifications::ack),
        Reply::ok,
    ))
}
