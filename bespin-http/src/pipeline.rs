//! The request pipeline: rate limit → CORS preflight → routing → body → handler (on the
//! runtime's worker, the database's writer thread or the blocking pool, as its route says) →
//! CORS and security headers and the request id → one log line ([`crate::request_log`]).

use crate::AppState;
use crate::config::ReadMetering;
use crate::error::ApiError;
use crate::extract::Req;
use crate::reply::Reply;
use crate::request_log::RequestLog;
use crate::router::{Found, RunOn};
use crate::{cors, headers};
use bespin_core::Principal;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

/// Handles one request; never fails (every failure is a response).
pub async fn handle(
    state: Arc<AppState>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let started = Instant::now();
    let method = req.method().clone();
    // A clone shares the request's bytes; the decoded path is borrowed unless it has escapes.
    let uri = req.uri().clone();
    let raw_path = uri.path();
    let path = percent_encoding::percent_decode_str(raw_path).decode_utf8_lossy();
    let origin = req.headers().get("origin").cloned();
    let mut log = RequestLog::start(req.headers());
    let (reply, route) = respond(&state, peer, req, &method, &path, &mut log).await;
    let status = reply.status;
    let mut response = Response::new(Full::new(reply.body));
    *response.status_mut() = reply.status;
    let h = response.headers_mut();
    // Room for what follows (content type, security and cache headers, CORS, X-Request-ID, the
    // reply's own): one allocation instead of regrowing the map.
    h.reserve(17 + reply.headers.len());
    if let Ok(v) = HeaderValue::from_str(reply.content_type) {
        h.insert(hyper::header::CONTENT_TYPE, v);
    }
    for (name, value) in reply.headers {
        if let Ok(v) = HeaderValue::from_str(&value) {
            h.append(HeaderName::from_static(name), v);
        }
    }
    cors::apply(&state.config, origin.as_ref(), h);
    headers::apply(&path, h);
    log.apply(h);
    let took = started.elapsed();
    state
        .metrics
        .observe(route.unwrap_or("-"), &method, status.as_u16(), took);
    log.finish(&method, raw_path, route, status.as_u16(), took);
    Ok(response)
}

async fn respond(
    state: &Arc<AppState>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
    method: &Method,
    path: &str,
    log: &mut RequestLog,
) -> (Reply, Option<&'static str>) {
    if method == Method::POST && path == "/v1/tenants" {
        let client = client_id(state, peer, req.headers());
        if let Err(wait) = state.limiter.check(&client, Instant::now()) {
            let s = state.limiter.settings();
            let body = serde_json::json!({
                "detail": format!("Rate limit exceeded. Maximum {} requests per {} seconds.", s.limit, s.window_secs),
                "error": "rate_limit_exceeded",
            });
            return (
                Reply::json(StatusCode::TOO_MANY_REQUESTS, &body)
                    .with_header("retry-after", wait.to_string()),
                None,
            );
        }
    }
    if let Some(reply) = cors::preflight(&state.config, method, req.headers()) {
        return (reply, None);
    }
    let (route, params) = match state.router.find(method, path) {
        Found::Handler(route, params) => (route, params),
        Found::MethodNotAllowed(allow) => {
            return (
                Reply::detail(StatusCode::METHOD_NOT_ALLOWED, "Method Not Allowed")
                    .with_header("allow", allow),
                None,
            );
        }
        Found::NotFound => {
            if let Some(stripped) = path
                .strip_suffix('/')
                .filter(|p| !p.is_empty() && state.router.has_path(p))
            {
                let reply = Reply::raw(
                    StatusCode::TEMPORARY_REDIRECT,
                    "text/plain; charset=utf-8",
                    Bytes::new(),
                )
                .with_header("location", stripped.to_owned());
                return (reply, None);
            }
            return (Reply::detail(StatusCode::NOT_FOUND, "Not Found"), None);
        }
    };
    let route_path = route.path;
    let handler = route.handler;
    let run_on = route.run_on;
    let (caller, taken) = authenticate(state, req.headers());
    log.tenant(caller.as_ref().map(Principal::tenant_id));
    let mut rate_headers = Vec::new();
    if let Some(taken) = taken {
        if !taken.allowed {
            let body = serde_json::json!({
                "detail": format!("Rate limit exceeded. Maximum {} requests per minute for this tenant.", taken.limit),
                "error": "rate_limit_exceeded",
            });
            let mut reply = Reply::json(StatusCode::TOO_MANY_REQUESTS, &body);
            reply.headers.extend(taken.headers());
            return (reply, Some(route_path));
        }
        rate_headers = taken.headers();
    }
    let (parts, body) = req.into_parts();
    let collected = tokio::time::timeout(
        state.config.body_read_timeout,
        Limited::new(body, state.config.max_body_bytes).collect(),
    )
    .await;
    let body = match collected {
        Err(_) => {
            return (
                Reply::detail(
                    StatusCode::REQUEST_TIMEOUT,
                    "Request body not received in time",
                )
                .with_header("connection", "close"),
                Some(route_path),
            );
        }
        Ok(Ok(b)) => b.to_bytes(),
        Ok(Err(e)) => {
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some()
            {
                return (
                    Reply::detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large"),
                    Some(route_path),
                );
            }
            return (
                Reply::detail(StatusCode::BAD_REQUEST, "Could not read the request body"),
                Some(route_path),
            );
        }
    };
    let query = parts.uri.query().unwrap_or("").to_owned();
    let request = Req {
        headers: parts.headers,
        query,
        params,
        body,
        caller,
    };
    let outcome = match run_on {
        RunOn::Worker => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(state, &request)))
                .map_err(|_| "handler panicked".to_owned())
        }
        RunOn::Blocking => {
            let state = state.clone();
            tokio::task::spawn_blocking(move || handler(&state, &request))
                .await
                .map_err(|e| e.to_string())
        }
        RunOn::Writer => on_writer(state, true, move |st| handler(st, &request)).await,
    };
    let outcome = match outcome {
        Ok(Ok(mut reply)) => match reply.after.take() {
            // A read that a write must accompany: the write runs on the writer.
            Some(write) => {
                let durable = state.config.read_metering == ReadMetering::Durable;
                on_writer(state, durable, move |st| (write.0)(st).map(|()| reply)).await
            }
            None => Ok(Ok(reply)),
        },
        other => other,
    };
    let mut reply = match outcome {
        Ok(Ok(reply)) => reply,
        Ok(Err(e)) => e.into_reply(),
        Err(e) => {
            tracing::error!("handler failed: {e}");
            Reply::internal()
        }
    };
    reply.headers.extend(rate_headers);
    (reply, Some(route_path))
}

/// Runs `work` on the database's writer thread and waits for its reply. With `durable`, the
/// writer sends it once the writes `work` made are durable (or their commit's error, if that
/// failed); without, as soon as `work` returns (see [`ReadMetering::Deferred`]).
async fn on_writer(
    state: &Arc<AppState>,
    durable: bool,
    work: impl FnOnce(&AppState) -> Result<Reply, ApiError> + Send + 'static,
) -> Result<Result<Reply, ApiError>, String> {
    let (send, reply) = tokio::sync::oneshot::channel();
    let st = state.clone();
    state
        .bespin
        .on_writer(move || {
            let out = work(&st);
            if !durable {
                let _ = send.send(out);
                return Box::new(|_| {});
            }
            Box::new(move |commit_error| {
                let out = match commit_error {
                    None => out,
                    Some(e) => Err(ApiError::from(e.clone())),
                };
                let _ = send.send(out);
            })
        })
        .map_err(|e| e.to_string())?;
    reply
        .await
        .map_err(|_| "handler panicked on the writer thread".to_owned())
}

/// Authenticates the tenant credentials, when the request carries all three, and takes a token
/// from the tenant's bucket when its plan has a request rate limit. Requests that fail
/// authentication are answered by their handler (in the contract's order) and use no token.
fn authenticate(
    state: &AppState,
    headers: &hyper::HeaderMap,
) -> (Option<Principal>, Option<crate::ratelimit::Taken>) {
    let h = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let (Some(t), Some(u), Some(k)) = (h("x-tenant-id"), h("x-user-id"), h("x-api-key")) else {
        return (None, None);
    };
    let Ok((who, limit)) = state
        .bespin
        .authenticate_with_rate_limit(&bespin_core::Credentials::new(Some(t), Some(u), Some(k)))
    else {
        return (None, None);
    };
    let taken = limit.map(|limit| state.buckets.take(who.tenant_id(), limit, Instant::now()));
    (Some(who), taken)
}

fn client_id(state: &AppState, peer: SocketAddr, headers: &hyper::HeaderMap) -> String {
    if state.config.trust_proxy
        && let Some(first) = headers
            .get("x-forwarded-for")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(',').next())
            .map(str::trim)
            .filter(|s| !s.is_empty())
    {
        return first.to_owned();
    }
    peer.ip().to_string()
}
