//! The request pipeline: rate limit → CORS preflight → routing → body size → authentication
//! → body → handler (on the runtime's worker, the blocking pool for routes that say so, or the
//! background lane for large bodies and broad searches) → the handler's operation, if it writes, on the database's writer thread →
//! CORS and security headers and the request id → one log line ([`crate::request_log`]).
//!
//! Nothing of a request runs on the writer but its operation: parsing, authentication and
//! rendering happen before and after, so an anonymous or malformed request never reaches it,
//! and the writer's bounded queue ([`bespin_core::Options::writer_queue`]) is answered with 503
//! and `Retry-After` when full.

use crate::AppState;
use crate::config::ReadMetering;
use crate::error::ApiError;
use crate::extract::Req;
use crate::lane::Refused;
use crate::openapi::Auth;
use crate::reply::{Made, Reply, WriteFn};
use crate::request_log::RequestLog;
use crate::router::{BodyLimit, Found, RunOn};
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

/// Bodies larger than this are parsed on the blocking pool, not on a runtime worker: a
/// megabyte of JSON takes milliseconds, which would hold up every request queued on that
/// worker.
pub const LARGE_BODY: usize = 64 * 1024;

/// Bodies larger than this, on the routes that write searchable text, are paced per tenant
/// (`Config::large_text_writes_per_sec`).
pub const PACED_BODY: usize = 4 * 1024;

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
        let client = crate::client::key(&state.config, peer, req.headers());
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
    let max_body = match route.body_limit {
        BodyLimit::Default => state.config.max_body_bytes,
        BodyLimit::Bulk => state.config.max_bulk_body_bytes,
    };
    if declared_length(req.headers()).is_some_and(|n| n > max_body as u64) {
        // Refused before a byte of it is read; the unread body makes the connection unusable.
        return (
            too_large().with_header("connection", "close"),
            Some(route_path),
        );
    }
    let (auth, taken) = authenticate(state, req.headers());
    log.tenant(
        auth.as_ref()
            .and_then(|a| a.as_ref().ok())
            .map(Principal::tenant_id),
    );
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
        Limited::new(body, max_body).collect(),
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
                return (too_large(), Some(route_path));
            }
            return (
                Reply::detail(StatusCode::BAD_REQUEST, "Could not read the request body"),
                Some(route_path),
            );
        }
    };
    if route.paced
        && body.len() > PACED_BODY
        && let Some(Ok(who)) = &auth
    {
        match state
            .large_text_writes
            .book(who.tenant_id(), Instant::now())
        {
            Ok(wait) if wait.is_zero() => {}
            Ok(wait) => tokio::time::sleep(wait).await,
            Err(secs) => {
                let reply = Reply::detail(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many large writes of searchable text for this tenant; retry later",
                )
                .with_header("retry-after", secs.to_string());
                return (reply, Some(route_path));
            }
        }
    }
    let query = parts.uri.query().unwrap_or("").to_owned();
    let body_unused = unused_body(&auth, route.doc.auth);
    let request = Req {
        body_unused,
        peer,
        headers: parts.headers,
        query,
        params,
        body,
        auth,
    };
    let run_on = if request.body.len() > LARGE_BODY {
        RunOn::Lane
    } else {
        route.run_on
    };
    let outcome = match run_on {
        RunOn::Worker => {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(state, &request)))
                .map_err(|_| "handler panicked".to_owned())
        }
        RunOn::Lane => {
            let mut request = request;
            if request.auth.is_none() {
                // Settled here: the lane then reads nothing that others wait on (see in_lane).
                request.auth = Some(state.bespin.authenticate(&request.credentials()));
                request.body_unused = unused_body(&request.auth, route.doc.auth);
            }
            let turn = lane_turn(state, peer, &request);
            let st = state.clone();
            in_lane(state, turn, move || handler(&st, &request)).await
        }
        RunOn::Blocking => {
            let state = state.clone();
            tokio::task::spawn_blocking(move || handler(&state, &request))
                .await
                .map_err(|e| e.to_string())
        }
    };
    // A handler that found its work expensive (a broad search) goes on in the lane.
    let outcome = match outcome {
        Ok(Ok(mut reply)) => match reply.later.take() {
            Some(later) => {
                let st = state.clone();
                in_lane(state, later.turn, move || (later.run)(&st)).await
            }
            None => Ok(Ok(reply)),
        },
        other => other,
    };
    let outcome = match outcome {
        Ok(Ok(mut reply)) => match reply.after.take() {
            // The operation of a write, or the write a read must be accompanied by: only this
            // runs on the writer.
            Some(write) => {
                let durable =
                    !write.metered_read || state.config.read_metering == ReadMetering::Durable;
                on_writer(state, durable, write.run)
                    .await
                    .map(|made| match made {
                        Ok(Made::Attached) => Ok(reply),
                        Ok(Made::Render(render)) => Ok(render()),
                        Err(e) => Err(ApiError::body(e)),
                    })
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

/// Runs `work` on the database's writer thread and waits for what it made. With `durable`,
/// the writer sends it once the writes `work` made are durable (or their commit's error, if
/// that failed); without, as soon as `work` returns (see [`ReadMetering::Deferred`]). A full
/// writer queue is `Error::Overloaded` (503); `Err` only when `work` panicked.
async fn on_writer(
    state: &Arc<AppState>,
    durable: bool,
    work: Box<WriteFn>,
) -> Result<bespin_core::Result<Made>, String> {
    let (send, made) = tokio::sync::oneshot::channel();
    let db = state.bespin.clone();
    let queued = state.bespin.on_writer(move || {
        let out = work(&db);
        if !durable {
            let _ = send.send(out);
            return Box::new(|_| {});
        }
        Box::new(move |commit_error| {
            let out = match commit_error {
                None => out,
                Some(e) => Err(e.clone()),
            };
            let _ = send.send(out);
        })
    });
    if let Err(e) = queued {
        return Ok(Err(e));
    }
    made.await
        .map_err(|_| "an operation panicked on the writer thread".to_owned())
}

/// Runs `work` in the lane in `turn`'s turn; a caller with too many jobs waiting gets 503 with
/// `Retry-After` (`Error::Overloaded`). Lane work is handed what it reads from the database
/// (the authentication outcome, a search's snapshot): a lane thread runs at the lowest
/// priority and may wait long for a core, so it must hold no lock that the workers or the
/// writer wait on, such as the one under which a fresh snapshot is taken.
async fn in_lane(
    state: &Arc<AppState>,
    turn: String,
    work: impl FnOnce() -> Result<Reply, ApiError> + Send + 'static,
) -> Result<Result<Reply, ApiError>, String> {
    match state.lane.run(turn, work).await {
        Ok(out) => Ok(out),
        Err(Refused::Busy) => Ok(Err(ApiError::body(bespin_core::Error::Overloaded))),
        Err(Refused::Panicked) => Err("handler panicked in the lane".to_owned()),
    }
}

/// Whose turn a request's lane work takes: its tenant's once authenticated, else its client's
/// (an unauthenticated body never shares a queue with a tenant's own requests).
pub(crate) fn lane_turn(state: &AppState, peer: SocketAddr, request: &Req) -> String {
    match request.caller() {
        Some(p) => p.tenant_id().to_owned(),
        None => format!(
            "client {}",
            crate::client::key(&state.config, peer, &request.headers)
        ),
    }
}

/// Whether a request's body will never be used: its route needs tenant credentials and they
/// failed (see [`Req::body_unused`]).
fn unused_body(auth: &Option<Result<Principal, bespin_core::Error>>, route: Auth) -> bool {
    matches!(auth, Some(Err(_))) && matches!(route, Auth::Tenant | Auth::TenantIdempotent)
}

/// The 413 of a body over its route's limit.
fn too_large() -> Reply {
    Reply::detail(StatusCode::PAYLOAD_TOO_LARGE, "Request body too large")
}

/// The body length a request declares (`Content-Length`), if it declares a valid one.
fn declared_length(headers: &hyper::HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Authenticates the tenant credentials, when the request carries all three, and takes a token
/// from the tenant's bucket when its plan has a request rate limit. A failure is kept for the
/// handler, which reports it in the contract's order, and uses no token.
fn authenticate(
    state: &AppState,
    headers: &hyper::HeaderMap,
) -> (
    Option<Result<Principal, bespin_core::Error>>,
    Option<crate::ratelimit::Taken>,
) {
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
    match state
        .bespin
        .authenticate_with_rate_limit(&bespin_core::Credentials::new(Some(t), Some(u), Some(k)))
    {
        Ok((who, limit)) => {
            let taken =
                limit.map(|limit| state.buckets.take(who.tenant_id(), limit, Instant::now()));
            (Some(Ok(who)), taken)
        }
        Err(e) => (Some(Err(e)), None),
    }
}
