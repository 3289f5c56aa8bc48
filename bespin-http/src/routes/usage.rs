//! `POST /v1/usage/events` (usage reported as CloudEvents, OpenMeter-compatible),
//! `GET /v1/usage/export` and `GET /v1/admin/usage/export` (usage out as CloudEvents).

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, SchemaFn, list_of, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::metering::export::{ExportPage, ExportQuery, UsageCloudEvent};
use bespin_core::metering::ingest::{
    self, CloudEventIn, IngestReport, IngestView, Outcome, UsageEvents,
};
use bespin_core::metering::typed::TypedEvents;
use bespin_core::{Error, Op};
use hyper::StatusCode;

/// A CloudEvents batch's media type.
pub const BATCH: &str = "application/cloudevents-batch+json";
/// A single CloudEvent's media type (structured mode).
pub const SINGLE: &str = "application/cloudevents+json";
/// The response header holding the cursor of the next page.
pub const NEXT_CURSOR: &str = "bespin-next-cursor";

const INGEST_TYPES: &[(&str, SchemaFn)] = &[
    (BATCH, list_of::<CloudEventIn>),
    (SINGLE, schema::<CloudEventIn>),
];
const EXPORT_QUERY: &[(&str, &str)] = &[
    (
        "after",
        "the id of the last event read (the Bespin-Next-Cursor of the last page); absent: from the first event",
    ),
    ("limit", "1..1000, default 100"),
];

pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/v1/usage/events" => ingest as ingest_usage_events, Doc::new("usage", "Report usage events as CloudEvents (admin): one (application/cloudevents+json) or a batch of up to 1,000 \
            (application/cloudevents-batch+json, or application/json); type is a metered event key, data.value the raw units; a repeated (source, id) is a duplicate", Auth::Tenant)
            .body(list_of::<CloudEventIn>).body_as(INGEST_TYPES).ok(200, schema::<IngestView>), bulk),
        route!(GET "/v1/usage/export" => export as export_usage, Doc::new("usage", "The tenant's usage events as CloudEvents, oldest first by insertion, after a cursor (admin)", Auth::Tenant)
            .query(EXPORT_QUERY).ok_as(200, BATCH, list_of::<UsageCloudEvent>)),
        route!(GET "/v1/admin/usage/export" => admin_export as admin_export_usage, Doc::new("admin", "Every tenant's usage events as CloudEvents, oldest first by insertion, after a cursor", Auth::PlatformAdmin)
            .query(EXPORT_QUERY).ok_as(200, BATCH, list_of::<UsageCloudEvent>)),
    ]
}

fn ingest(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let media = r
        .header("content-type")
        .unwrap_or_default()
        .to_ascii_lowercase();
    // Valid events are read straight from the text; what that leaves (an event to diagnose,
    // a body it does not read) takes the `Value` path, whose answers, and order, they stay.
    let body = match typed(r, &media).map(TypedEvents::complete) {
        Some(Ok(events)) => Body::Read(events),
        Some(Err(partly)) => Body::Partly(partly, r.json()?),
        None => Body::Value(r.json()?),
    };
    let caller = r.principal(s)?;
    let mut req = match body {
        Body::Read(events) => events,
        Body::Partly(partly, body) => partly.with_value(&body)?,
        Body::Value(body) => {
            // The media type names the framing; without a CloudEvents type, the body's shape does.
            if single(&media, body.is_object()) {
                UsageEvents::single(&body)?
            } else {
                UsageEvents::batch(&body)?
            }
        }
    };
    s.bespin.look_ahead_usage(&caller, &mut req);
    Ok(Reply::write(
        Op::with(caller, req, ingest::record_usage_events),
        render,
    ))
}

/// A request's events: read typed, partly (the rest from the parsed body), or from the body.
enum Body {
    Read(UsageEvents),
    Partly(TypedEvents, serde_json::Value),
    Value(serde_json::Value),
}

/// Whether the request holds one event rather than a batch.
fn single(media: &str, object: bool) -> bool {
    media.starts_with(SINGLE) || (!media.starts_with(BATCH) && object)
}

/// The body's events read typed, when it is framed as the `Value` path would read it (an
/// object for one event, an array for a batch) and its credentials passed (else
/// [`Req::json`] only checks its syntax).
fn typed(r: &Req, media: &str) -> Option<TypedEvents> {
    if r.body_unused {
        return None;
    }
    let text = std::str::from_utf8(&r.body).ok()?;
    let first = text.bytes().find(|b| !b.is_ascii_whitespace())?;
    match (single(media, first == b'{'), first) {
        (true, b'{') => TypedEvents::read(text, false),
        (false, b'[') => TypedEvents::read(text, true),
        _ => None,
    }
}

/// A batch's report, or a single event's: its refusal is the request's answer.
fn render(report: &IngestReport) -> Reply {
    if !report.batch
        && let Some(Outcome::Rejected(e)) = report.results.first().map(|r| &r.outcome)
    {
        return ApiError::body(e.clone()).into_reply();
    }
    Reply::ok(&report.view(status_of, "body"))
}

fn status_of(e: &Error) -> Option<u16> {
    Some(ApiError::status(e.kind()).as_u16())
}

fn export(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let q = query(s, r)?;
    Ok(page(s.bespin.usage_export(&caller, q)?))
}

fn admin_export(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    r.require_platform_admin(s)?;
    let q = query(s, r)?;
    Ok(page(s.bespin.admin_usage_export(q)?))
}

fn query(s: &AppState, r: &Req) -> Result<ExportQuery, ApiError> {
    let q = r.query_map();
    let (after, limit) = (q.get("after"), q.get("limit"));
    ExportQuery::parse(
        &s.bespin,
        after.map(String::as_str),
        limit.map(String::as_str),
    )
    .map_err(ApiError::query)
}

/// The events as a CloudEvents batch; the next cursor in a header (and in `Link`).
fn page(p: ExportPage) -> Reply {
    let body = match serde_json::to_vec(&p.events) {
        Ok(b) => b,
        Err(_) => return Reply::internal(),
    };
    let reply = Reply::raw(StatusCode::OK, BATCH, body);
    match p.next_cursor {
        Some(c) => reply.with_header(NEXT_CURSOR, c),
        None => reply,
    }
}
