//! Webhook endpoints (tenant admins): `POST/GET /v1/webhooks/endpoints`,
//! `GET/PATCH/DELETE /v1/webhooks/endpoints/{endpoint_id}`, `POST …/{endpoint_id}/rotate`,
//! `POST …/{endpoint_id}/test`, `GET …/{endpoint_id}/attempts`,
//! `POST …/{endpoint_id}/messages/{event_id}/retry`.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, schema};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::webhooks::delivery::{self, AttemptList};
use bespin_core::webhooks::{
    self, Endpoint, EndpointList, EndpointPatch, EndpointWithSecret, NewEndpoint,
};
use bespin_core::{Error, FieldError, LocPart, Op};
use hyper::StatusCode;

pub fn routes() -> Vec<Route> {
    let d = |summary| Doc::new("webhooks", summary, Auth::Tenant);
    vec![
        route!(POST "/v1/webhooks/endpoints" => create as create_webhook_endpoint, d("Register a webhook endpoint (tenant admin); the answer's secret (whsec_…) is shown this once")
            .body(schema::<NewEndpoint>).ok(201, schema::<EndpointWithSecret>)),
        route!(GET "/v1/webhooks/endpoints" => list as list_webhook_endpoints, d("The tenant's webhook endpoints (tenant admin)")
            .ok(200, schema::<EndpointList>)),
        route!(GET "/v1/webhooks/endpoints/{endpoint_id}" => get as get_webhook_endpoint, d("A webhook endpoint (tenant admin)")
            .ok(200, schema::<Endpoint>)),
        route!(PATCH "/v1/webhooks/endpoints/{endpoint_id}" => update as update_webhook_endpoint, d("Change a webhook endpoint: url, event_types, description, enabled (tenant admin)")
            .body(schema::<EndpointPatch>).ok(200, schema::<Endpoint>)),
        route!(DELETE "/v1/webhooks/endpoints/{endpoint_id}" => delete as delete_webhook_endpoint, d("Delete a webhook endpoint (tenant admin)")
            .ok(200, schema::<Endpoint>)),
        route!(POST "/v1/webhooks/endpoints/{endpoint_id}/rotate" => rotate as rotate_webhook_secret, d("A new signing secret, shown this once; the old one keeps signing (a second signature) for 24 h")
            .ok(200, schema::<EndpointWithSecret>)),
        route!(POST "/v1/webhooks/endpoints/{endpoint_id}/test" => test as test_webhook_endpoint, d("Send a webhook.test event to this endpoint alone; answers its event id")),
        route!(GET "/v1/webhooks/endpoints/{endpoint_id}/attempts" => attempts as list_webhook_attempts, d("The endpoint's delivery attempts, newest first (status, latency, response code, first 1 KiB of the body, next retry)")
            .ok(200, schema::<AttemptList>)),
        route!(POST "/v1/webhooks/endpoints/{endpoint_id}/messages/{event_id}/retry" => retry as retry_webhook_message, d("Deliver an event to this endpoint again, now")),
    ]
}

/// A URL the server will never deliver to is refused at once (422 at `url`): plain http to a
/// host that is not allow-listed.
fn check_url(s: &AppState, url: Option<&str>) -> Result<(), ApiError> {
    let Some(url) = url else { return Ok(()) };
    let refusal = |reason: &str| {
        ApiError::from(Error::field(FieldError::value_error(
            vec![LocPart::from("url")],
            url.into(),
            reason,
        )))
    };
    let uri: hyper::Uri = url.parse().map_err(|_| refusal("not a valid URL"))?;
    let host = uri.host().unwrap_or_default();
    if host.is_empty() {
        return Err(refusal("the URL has no host"));
    }
    if uri.scheme_str() == Some("http")
        && !crate::webhooks::allowed_host(&s.config.webhook_allow, host)
    {
        return Err(refusal(
            "only https:// URLs, unless the host is allow-listed (BESPIN_WEBHOOK_ALLOW)",
        ));
    }
    Ok(())
}

fn create(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let req = NewEndpoint::from_json(&body)?;
    check_url(s, Some(&req.url))?;
    Ok(Reply::write(
        Op::with(caller, req, webhooks::create),
        Reply::created,
    ))
}

fn list(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    Ok(Reply::ok(&s.bespin.webhook_endpoints(&caller)?))
}

fn get(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id");
    Ok(Reply::ok(&s.bespin.webhook_endpoint(&caller, id)?))
}

fn update(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let body = r.json()?;
    let caller = r.principal(s)?;
    let patch = EndpointPatch::from_json(&body)?;
    check_url(s, patch.url.as_deref())?;
    let id = r.param("endpoint_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, id, patch, webhooks::update),
        Reply::ok,
    ))
}

fn delete(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, webhooks::delete),
        Reply::ok,
    ))
}

fn rotate(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, webhooks::rotate),
        Reply::ok,
    ))
}

fn test(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id").to_owned();
    Ok(Reply::write(
        Op::on(caller, id, delivery::test),
        |event_id| {
            Reply::json(
                StatusCode::ACCEPTED,
                &serde_json::json!({ "event_id": event_id }),
            )
        },
    ))
}

fn attempts(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id");
    Ok(Reply::ok(&s.bespin.webhook_attempts(&caller, id)?))
}

fn retry(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let caller = r.principal(s)?;
    let id = r.param("endpoint_id").to_owned();
    let event = r.param("event_id").to_owned();
    Ok(Reply::write(
        Op::on_with(caller, id, event, delivery::retry),
        |()| Reply::json(StatusCode::ACCEPTED, &serde_json::json!({ "queued": true })),
    ))
}
