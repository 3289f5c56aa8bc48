//! The request pipeline, in named stages:
//!
//! 1. [`admit`]: the limits kept per client before anything else (tenant creation's rate);
//!    then the CORS preflight;
//! 2. [`find_route`]: the handler, or 404 / 405 / the redirect of a trailing slash;
//! 3. [`check`] and [`settle`]: the body's declared size against the route's limit (413
//!    before a byte of it is read), the tenant credentials once (a failure is kept for the
//!    handler, which answers it in the contract's order; repeated failures are slowed by the
//!    [`crate::tarpit`]; a large body whose credentials already failed is not read at all),
//!    the tenant's request rate, the key's scope;
//! 4. [`read_body`]: the body, within its limit and the body timeout; then [`pace`] for large
//!    writes of searchable text;
//! 5. [`dispatch`]: the handler on the runtime's worker, the blocking pool or the background
//!    lane; the core operation it returns ([`Reply::write`]) submitted to the database's writer
//!    thread and awaited; the reply rendered here.
//!
//! Where reads block (PostgreSQL), no thread waits for a request's snapshot
//! ([`snapshot_later`]), and stages 3 and 5 run on the worker without waiting
//! ([`check_without_waiting`], [`on_worker_first`]), going to the blocking pool only for what
//! the row cache does not hold; a read request without a body carries the snapshot its
//! credentials were read on to its handler's first read. Then CORS and security headers and the
//! request id, and one log line ([`crate::request_log`]). Every refusal is an [`ApiError`],
//! answered by its one mapping.
//!
//! Nothing of the server runs on the writer: handlers hand it core operations ([`bespin_core::Op`])
//! only, so an anonymous or malformed request never reaches it, and the writer's bounded queue
//! ([`bespin_core::Options::writer_queue`]) is answered with 503 and `Retry-After` when full.

use crate::AppState;
use crate::body::Body;
use crate::config::ReadMetering;
use crate::error::{ApiError, Refusal};
use crate::extract::Req;
use crate::lane::Refused;
use crate::openapi::Auth;
use crate::reply::Reply;
use crate::request_log::RequestLog;
use crate::router::{BodyLimit, Found, Handler, Route, RunOn};
use crate::tarpit::Verdict;
use crate::{cors, headers};
use bespin_core::audit::refused::Refusal as AuditRefusal;
use bespin_core::tenancy::keys;
use bespin_core::{Error, Principal, RequestSnapshot};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::header::{HeaderName, HeaderValue};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use std::collections::HashMap;
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
) -> Result<Response<Body>, Infallible> {
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
    let body = match reply.stream {
        Some(rx) => Body::Stream(rx),
        None => Body::Full(Full::new(reply.body)),
    };
    let mut response = Response::new(body);
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
    if let Err(e) = admit(state, peer, method, path, req.headers()) {
        return (e.into_reply(), None);
    }
    if let Some(reply) = cors::preflight(&state.config, method, req.headers()) {
        return (reply, None);
    }
    let (route, params) = match find_route(state, method, path) {
        Routed::Handler(route, params) => (route, params),
        Routed::Redirect(to) => {
            let reply = Reply::raw(
                StatusCode::TEMPORARY_REDIRECT,
                "text/plain; charset=utf-8",
                Bytes::new(),
            );
            return (reply.with_header("location", to), None);
        }
        Routed::Refused(e) => return (e.into_reply(), None),
    };
    let reply = match serve(state, peer, req, route, params, log).await {
        Ok(reply) => reply,
        Err(e) => e.into_reply(),
    };
    (reply, Some(route.path))
}

/// Stage 1: the limits kept per client before anything else — the rate of tenant creation
/// (10 §7: 429 with `Retry-After`).
fn admit(
    state: &AppState,
    peer: SocketAddr,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
) -> Result<(), ApiError> {
    if method == Method::POST && path == "/v1/tenants" {
        let client = crate::client::key(&state.config, peer, headers);
        if let Err(wait) = state.limiter.check(&client, Instant::now()) {
            let s = state.limiter.settings();
            let detail = format!(
                "Rate limit exceeded. Maximum {} requests per {} seconds.",
                s.limit, s.window_secs
            );
            return Err(ApiError::refused(Refusal::RateLimited(detail))
                .with_header("retry-after", wait.to_string()));
        }
    }
    Ok(())
}

/// What routing found.
enum Routed<'a> {
    /// The route and its path parameters.
    Handler(&'a Route, HashMap<String, String>),
    /// A routed path with a trailing slash: the path without it (307).
    Redirect(String),
    /// 405 with `Allow`, or 404.
    Refused(ApiError),
}

/// Stage 2: the route and its path parameters, the redirect of a routed path with a trailing
/// slash, or the refusal (405 with `Allow`, 404).
fn find_route<'a>(state: &'a AppState, method: &Method, path: &str) -> Routed<'a> {
    match state.router.find(method, path) {
        Found::Handler(route, params) => Routed::Handler(route, params),
        Found::MethodNotAllowed(allow) => Routed::Refused(
            ApiError::refused(Refusal::MethodNotAllowed).with_header("allow", allow),
        ),
        Found::NotFound => match path
            .strip_suffix('/')
            .filter(|p| !p.is_empty() && state.router.has_path(p))
        {
            Some(stripped) => Routed::Redirect(stripped.to_owned()),
            None => Routed::Refused(ApiError::body(Error::NotFound("Not Found".into()))),
        },
    }
}

/// Stages 3 to 5 for a routed request.
async fn serve(
    state: &Arc<AppState>,
    peer: SocketAddr,
    req: Request<hyper::body::Incoming>,
    route: &Route,
    params: HashMap<String, String>,
    log: &mut RequestLog,
) -> Result<Reply, ApiError> {
    let max_body = match route.body_limit {
        BodyLimit::Default => state.config.max_body_bytes,
        BodyLimit::Bulk => state.config.max_bulk_body_bytes,
    };
    let declared = declared_length(req.headers());
    if declared.is_some_and(|n| n > max_body as u64) {
        // Refused before a byte of it is read; the unread body makes the connection unusable.
        return Err(ApiError::refused(Refusal::BodyTooLarge).with_header("connection", "close"));
    }
    let (parts, body) = req.into_parts();
    let idempotency_key = parts.headers.get("idempotency-key").cloned();
    let gate = Gate::of(&parts.headers, route);
    let checked = check(state, &gate, &parts.headers, route, declared).await?;
    let Authenticated {
        auth,
        headers,
        snapshot,
    } = settle(
        state,
        peer,
        &parts.headers,
        route,
        declared,
        log,
        &gate,
        checked,
    )
    .await?;
    let caller = match &auth {
        Some(Ok(p)) => Some(p.clone()),
        _ => None,
    };
    log.tenant(caller.as_ref().map(Principal::tenant_id));
    let answered = async {
        let body = read_body(state, body, max_body).await?;
        pace(state, route, body.len(), &auth).await?;
        let request = Req {
            body_unused: unused_body(&auth, route.doc.auth),
            peer,
            headers: parts.headers,
            query: parts.uri.query().unwrap_or("").to_owned(),
            params,
            body,
            auth,
        };
        dispatch(state, peer, route, request, snapshot).await
    };
    answer(
        state,
        route,
        log,
        &caller,
        idempotency_key,
        headers,
        answered,
    )
    .await
}

/// The end of stage 5, for every request that reached its handler: the audit row of a
/// refusal by an authenticated caller, and the headers every answer to the request carries.
async fn answer(
    state: &Arc<AppState>,
    route: &Route,
    log: &RequestLog,
    caller: &Option<Principal>,
    idempotency_key: Option<HeaderValue>,
    headers: Vec<(&'static str, String)>,
    answered: impl std::future::Future<Output = Result<Reply, ApiError>>,
) -> Result<Reply, ApiError> {
    match answered.await {
        Ok(mut reply) => {
            if let (Some(mut refusal), Some(caller)) = (reply.audit_refusal.take(), caller) {
                refusal.request_id = log.request_id().to_owned();
                write_refusal(state, caller, *refusal).await;
            }
            reply.headers.extend(headers);
            Ok(reply)
        }
        Err(e) => {
            if let Some(caller) = caller {
                audit_refusal(state, caller, route, log, idempotency_key.as_ref(), &e).await;
            }
            Err(e.with_headers(headers))
        }
    }
}

/// Writes the audit row of a request refused (403, 429) after `caller` authenticated, within
/// its tenant's budget ([`bespin_core::audit::refused`]), and waits for it like any write, so
/// the row is durable when the refusal is answered. Other errors write nothing; a failed
/// audit write is logged and the refusal answered as it is.
async fn audit_refusal(
    state: &AppState,
    caller: &Principal,
    route: &Route,
    log: &RequestLog,
    idempotency_key: Option<&HeaderValue>,
    e: &ApiError,
) {
    let action = route.doc.op.unwrap_or(route.path);
    let Some(r) = e.refusal(action, log.request_id()) else {
        return;
    };
    let r = r.with_idempotency_key(idempotency_key.and_then(|v| v.to_str().ok()));
    write_refusal(state, caller, r).await;
}

/// Writes the audit row of `refusal` by `caller` (within the tenant's budget) and waits for
/// it: a refused request's, or an MCP tool call's answered as a tool error.
async fn write_refusal(state: &AppState, caller: &Principal, refusal: AuditRefusal) {
    if let Some(write) = state.bespin.audit_refusal(caller, refusal)
        && let Err(e) = write.await
    {
        tracing::warn!("audit row of a refused request not written: {e}");
    }
}

/// What stage 3 settled ([`settle`]).
struct Authenticated {
    /// The outcome of the tenant credentials: always for a route that needs them, else when
    /// all three were sent.
    auth: Option<Result<Principal, Error>>,
    /// Headers every answer to the request carries (the plan's rate limit, the tarpit's
    /// `Retry-After`).
    headers: Vec<(&'static str, String)>,
    /// The snapshot the credentials were checked on, for the handler's first read (kept only
    /// on PostgreSQL, for a request that reads and has no body to wait for: see
    /// [`carries_snapshot`]).
    snapshot: RequestSnapshot,
}

/// Which tenant credentials a request sent, and what its route asks of them.
struct Gate {
    /// The route needs tenant credentials.
    needs_tenant: bool,
    /// The credentials, as sent.
    credentials: bespin_core::Credentials,
    /// All the credentials the route takes were sent: they are checked against the database.
    complete: bool,
}

impl Gate {
    fn of(headers: &HeaderMap, route: &Route) -> Gate {
        let needs_tenant = matches!(route.doc.auth, Auth::Tenant | Auth::TenantIdempotent);
        let mut credentials = crate::extract::credentials(headers);
        // A route of another kind takes no key (an `Authorization` there is another token,
        // such as the metrics scraper's): its optional tenant credentials are the contract's
        // three.
        let complete = if needs_tenant {
            credentials.complete()
        } else {
            credentials.bearer = None;
            complete(&credentials)
        };
        Gate {
            needs_tenant,
            credentials,
            complete,
        }
    }
}

/// What the credentials check read: its outcome (always for a route that needs them, else
/// when all three were sent), the token taken from the tenant's bucket when its plan has a
/// request rate, and the snapshot the credentials were checked on (see [`carries_snapshot`]).
type Checked = (
    Option<Result<Principal, Error>>,
    Option<crate::ratelimit::Taken>,
    RequestSnapshot,
);

/// The credentials against the database, then a token from the tenant's bucket; keeps the
/// snapshot they were read on only if `carry`. Runs where reads may block.
fn check_credentials(st: &AppState, creds: &bespin_core::Credentials, carry: bool) -> Checked {
    checked_of(st, st.bespin.authenticate_keeping(creds), carry)
}

/// [`check_credentials`] once the credentials were read: the tenant's rate taken when they
/// hold.
fn checked_of(
    st: &AppState,
    authenticated: bespin_core::Result<(Principal, Option<u32>, RequestSnapshot)>,
    carry: bool,
) -> Checked {
    match authenticated {
        Ok((who, limit, kept)) => {
            // A snapshot not carried is dropped here, on the thread that read it.
            let kept = if carry {
                kept
            } else {
                drop(kept);
                RequestSnapshot::default()
            };
            let taken = limit.map(|limit| st.buckets.take(who.tenant_id(), limit, Instant::now()));
            (Some(Ok(who)), taken, kept)
        }
        Err(e) => (Some(Err(e)), None, RequestSnapshot::default()),
    }
}

/// Stage 3, its reads: authenticates the tenant credentials once ([`check_credentials`]; on
/// the blocking pool when reads block), or names the first one missing.
async fn check(
    state: &Arc<AppState>,
    gate: &Gate,
    headers: &HeaderMap,
    route: &Route,
    declared: Option<u64>,
) -> Result<Checked, ApiError> {
    if gate.complete {
        let carry = carries_snapshot(route, headers, declared);
        if let Some(checked) = check_without_waiting(state, &gate.credentials, carry).await {
            return Ok(checked);
        }
        let creds = gate.credentials.clone();
        off_worker(state, move |st| check_credentials(st, &creds, carry)).await
    } else if gate.needs_tenant {
        // Missing credentials: the core names the first one missing.
        let creds = gate.credentials.clone();
        let outcome = off_worker(state, move |st| st.bespin.authenticate(&creds)).await?;
        Ok((Some(outcome), None, RequestSnapshot::default()))
    } else {
        Ok((None, None, RequestSnapshot::default()))
    }
}

/// [`check_credentials`] on this worker, on a snapshot asked for without holding a thread
/// ([`snapshot_later`]), where reads wait on the network (PostgreSQL) and share snapshots:
/// `None` when that is not so now, or when the credentials' rows were not in the row cache
/// (the caller then reads them where it may wait). Nothing is taken from the tenant's rate
/// unless the credentials were read.
async fn check_without_waiting(
    state: &AppState,
    creds: &bespin_core::Credentials,
    carry: bool,
) -> Option<Checked> {
    if !state.bespin.snapshots_later() {
        return None;
    }
    let snapshot = snapshot_later(state).await?;
    let authenticated = bespin_core::without_waiting(|| {
        snapshot.scope(|| state.bespin.authenticate_keeping(creds))
    })?;
    Some(checked_of(state, authenticated, carry))
}

/// Stage 3, its answers, from what [`check`] read: 429 past the tenant's request rate, the
/// scope of the key. A failure of the credentials is kept for the handler, which answers it
/// in the contract's order (a syntax error of the body first), with two exceptions: repeated
/// failures of one client or claimed tenant are held back by the tarpit, and a request whose
/// credentials failed is answered at once, its body unread and the connection closed, when
/// the body is large (declared over [`LARGE_BODY`], or not declared): such a body would only
/// be read to be thrown away.
#[allow(clippy::too_many_arguments)]
async fn settle(
    state: &Arc<AppState>,
    peer: SocketAddr,
    headers: &HeaderMap,
    route: &Route,
    declared: Option<u64>,
    log: &RequestLog,
    gate: &Gate,
    (auth, taken, snapshot): Checked,
) -> Result<Authenticated, ApiError> {
    let mut out = Vec::new();
    if let Some(taken) = taken {
        if !taken.allowed {
            let detail = format!(
                "Rate limit exceeded. Maximum {} requests per minute for this tenant.",
                taken.limit
            );
            let e = ApiError::refused(Refusal::RateLimited(detail));
            // Not held while the audit row waits for the writer.
            drop(snapshot);
            if let Some(Ok(who)) = &auth {
                let key = headers.get("idempotency-key");
                audit_refusal(state, who, route, log, key, &e).await;
            }
            return Err(e.with_headers(taken.headers()));
        }
        out = taken.headers();
    }
    if let Some(Ok(who)) = &auth {
        refuse_by_scope(state, route, who)?;
    }
    let Some(Err(failed)) = &auth else {
        return Ok(Authenticated {
            auth,
            headers: out,
            snapshot,
        });
    };
    // A missing header is no guess at a key: the tarpit counts wrong credentials only.
    if gate.complete && !matches!(failed, Error::MissingHeader(_)) {
        let client = crate::client::key(&state.config, peer, headers);
        // A bearer key alone claims no tenant: counted by its client address only.
        let claimed = gate.credentials.tenant_id.as_deref();
        match state.tarpit.fail(&client, claimed, Instant::now()) {
            Verdict::Now => {}
            Verdict::Hold(delay, retry_after) => {
                // A timer on the runtime: no worker thread and no lock is held meanwhile.
                let _held = state.tarpit.hold();
                tokio::time::sleep(delay).await;
                out.push(("retry-after", retry_after.to_string()));
            }
            Verdict::Close(retry_after) => {
                out.push(("retry-after", retry_after.to_string()));
                out.push(("connection", "close".to_owned()));
            }
        }
    }
    let large = declared.is_none_or(|n| n > LARGE_BODY as u64) && has_body(headers, declared);
    if gate.needs_tenant && large {
        let e = ApiError::body(failed.clone()).with_headers(out);
        return Err(e.with_header("connection", "close"));
    }
    Ok(Authenticated {
        auth,
        headers: out,
        snapshot,
    })
}

/// A request's snapshot, asked for without holding a thread while its round trip runs
/// ([`bespin_core::Bespin::request_snapshot_later`]); `None` when it failed (the request
/// then reads as any other, and meets the failure there).
async fn snapshot_later(state: &AppState) -> Option<RequestSnapshot> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    state.bespin.request_snapshot_later(move |snapshot| {
        // A request gone meanwhile: the snapshot is dropped here, off the runtime.
        drop(tx.send(snapshot));
    });
    rx.await.ok()?.ok()
}

/// Runs `handler` for `request`, a panic answered as an internal error.
fn run_handler(st: &AppState, handler: Handler, request: &Req) -> Result<Reply, ApiError> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| handler(st, request)))
        .unwrap_or_else(|_| Err(internal("a handler panicked")))
}

/// Whether a request's handler takes over the snapshot its credentials were checked on
/// ([`RequestSnapshot`]; PostgreSQL only, one round trip less): a `GET` or `HEAD` (reads
/// only) without a body, whose handler runs as soon as the head is read. A request that writes
/// must not hold a read connection while it waits for the writer, and one with a body must
/// not while a slow client sends it (a body could keep connections out of the pool for the
/// body timeout).
fn carries_snapshot(route: &Route, headers: &HeaderMap, declared: Option<u64>) -> bool {
    matches!(route.method, Method::GET | Method::HEAD) && !has_body(headers, declared)
}

/// The method-level rule of read-only keys (a write route is 403 before its body is read; the
/// core refuses their writes again, [`bespin_core::Op`]), and the day of last use of a bound
/// key, recorded by a small operation when the stored day is stale and the request only reads
/// (a write records it in its own transaction): at most a write per key per day.
fn refuse_by_scope(state: &AppState, route: &Route, who: &Principal) -> Result<(), ApiError> {
    let reads = route_reads(route);
    if let Some(e) = scope_refusal(who, reads) {
        return Err(e);
    }
    touch_key(state, who, reads);
    Ok(())
}

/// Whether a route only reads (what a read-only key may call).
fn route_reads(route: &Route) -> bool {
    matches!(route.method, Method::GET | Method::HEAD) || route.doc.post_reads
}

/// The 403 of a read-only key on a route that writes.
fn scope_refusal(who: &Principal, reads: bool) -> Option<ApiError> {
    (who.read_only() && !reads)
        .then(|| ApiError::body(Error::Forbidden("This API key is read-only".into())))
}

/// Records the day of last use of `who`'s key when the request only reads and the stored day
/// is stale.
fn touch_key(state: &AppState, who: &Principal, reads: bool) {
    if reads && who.key_touch_due() {
        // Fire and forget: a full queue only postpones the record to a later request.
        drop(
            state
                .bespin
                .submit(bespin_core::Op::for_read(who.clone(), keys::touch)),
        );
    }
}

/// Stage 4: the body, within `max_body` (413) and the body timeout (408, connection closed).
async fn read_body(
    state: &AppState,
    body: hyper::body::Incoming,
    max_body: usize,
) -> Result<Bytes, ApiError> {
    let collected = tokio::time::timeout(
        state.config.body_read_timeout,
        Limited::new(body, max_body).collect(),
    )
    .await;
    match collected {
        Err(_) => Err(ApiError::refused(Refusal::BodyTimeout).with_header("connection", "close")),
        Ok(Ok(b)) => Ok(b.to_bytes()),
        Ok(Err(e))
            if e.downcast_ref::<http_body_util::LengthLimitError>()
                .is_some() =>
        {
            Err(ApiError::refused(Refusal::BodyTooLarge))
        }
        Ok(Err(_)) => Err(ApiError::refused(Refusal::BodyUnreadable)),
    }
}

/// Stage 4, for the routes that write searchable text: a large body waits for its tenant's
/// pace (`Config::large_text_writes_per_sec`), or is refused (429 with `Retry-After`) when it
/// would wait too long.
async fn pace(
    state: &AppState,
    route: &Route,
    body_len: usize,
    auth: &Option<Result<Principal, Error>>,
) -> Result<(), ApiError> {
    let Some(Ok(who)) = auth else {
        return Ok(());
    };
    if !route.paced || body_len <= PACED_BODY {
        return Ok(());
    }
    match state
        .large_text_writes
        .book(who.tenant_id(), Instant::now())
    {
        Ok(wait) if wait.is_zero() => Ok(()),
        Ok(wait) => {
            tokio::time::sleep(wait).await;
            Ok(())
        }
        Err(secs) => Err(ApiError::refused(Refusal::Status(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many large writes of searchable text for this tenant; retry later",
        ))
        .with_header("retry-after", secs.to_string())),
    }
}

/// Stage 5: runs the handler where its route says (the background lane for a body over
/// [`LARGE_BODY`]), goes on in the lane when the handler found its work expensive, and waits
/// for the write the reply needs: the core operation submitted to the writer thread.
async fn dispatch(
    state: &Arc<AppState>,
    peer: SocketAddr,
    route: &Route,
    request: Req,
    snapshot: RequestSnapshot,
) -> Result<Reply, ApiError> {
    let handler = route.handler;
    let run_on = if request.body.len() > LARGE_BODY {
        RunOn::Lane
    } else {
        route.run_on
    };
    // The handler's first read takes over the snapshot of its authentication; the scope's end
    // drops it if none did, so nothing the handler hands on (a stream, the write below, the
    // lane's work) holds it.
    let reply = match run_on {
        // Its reads wait on the network (PostgreSQL): on this worker only when it needs no
        // read that waits (most writes read nothing before the writer runs them).
        RunOn::Worker if state.bespin.reads_block() => {
            on_worker_first(state, handler, request, snapshot).await??
        }
        RunOn::Worker => snapshot.scope(|| run_handler(state, handler, &request))?,
        RunOn::Lane => {
            // A lane thread may wait long for its turn: it carries no connection meanwhile.
            drop(snapshot);
            let turn = lane_turn(state, peer, &request);
            let st = state.clone();
            in_lane(state, turn, move || handler(&st, &request)).await?
        }
        RunOn::Blocking => on_blocking_pool(state, handler, request, snapshot).await??,
    };
    finish(state, reply).await
}

/// Runs `handler` for `request` on this worker inside [`bespin_core::without_waiting`], the
/// snapshot carried to its first read; when something in it would wait (PostgreSQL: a row not
/// in the row cache, a write), from the start again on the blocking pool, on the same
/// snapshot. The outer error: the blocking task failed.
async fn on_worker_first(
    state: &Arc<AppState>,
    handler: Handler,
    request: Req,
    snapshot: RequestSnapshot,
) -> Result<Result<Reply, ApiError>, ApiError> {
    let again = snapshot.again();
    let tried =
        bespin_core::without_waiting(|| snapshot.scope(|| run_handler(state, handler, &request)));
    match tried {
        Some(reply) => Ok(reply),
        None => on_blocking_pool(state, handler, request, again).await,
    }
}

/// Runs `handler` for `request` on the blocking pool, the snapshot carried to its first read.
/// The outer error: the blocking task failed.
async fn on_blocking_pool(
    state: &Arc<AppState>,
    handler: Handler,
    request: Req,
    snapshot: RequestSnapshot,
) -> Result<Result<Reply, ApiError>, ApiError> {
    state.metrics.blocking_task();
    let st = Arc::clone(state);
    tokio::task::spawn_blocking(move || snapshot.scope(|| run_handler(&st, handler, &request)))
        .await
        .map_err(|e| internal(&e.to_string()))
}

/// The rest of stage 5 once the handler returned: a handler that found its work expensive
/// goes on in the lane, and the write the reply needs is submitted to the writer and awaited.
async fn finish(state: &Arc<AppState>, mut reply: Reply) -> Result<Reply, ApiError> {
    // A handler that found its work expensive (a broad search) goes on in the lane.
    if let Some(later) = reply.later.take() {
        let st = state.clone();
        reply = in_lane(state, later.turn, move || (later.run)(&st)).await?;
    }
    let Some(write) = reply.after.take() else {
        return Ok(reply);
    };
    let deferred = state.config.read_metering == ReadMetering::Deferred;
    match (write.submit)(&state.bespin, deferred).await {
        Ok(Some(made)) => Ok(made),
        Ok(None) => Ok(reply),
        Err(e) => Err(ApiError::body(e)),
    }
}

/// Runs `read` (database reads) on this worker, or — when the database's reads wait on the
/// network (PostgreSQL) — on the blocking pool, so a round trip never holds a worker and the
/// requests it would serve. On redb reads are memory and page-cache work and run here as
/// they are.
async fn off_worker<T: Send + 'static>(
    state: &Arc<AppState>,
    read: impl FnOnce(&AppState) -> T + Send + 'static,
) -> Result<T, ApiError> {
    if !state.bespin.reads_block() {
        return Ok(read(state));
    }
    state.metrics.blocking_task();
    let st = Arc::clone(state);
    crate::core_read(true, move || read(&st))
        .await
        .map_err(|e| internal(&e.to_string()))
}

/// The 500 of a failure of the server itself (logged with `what`).
fn internal(what: &str) -> ApiError {
    ApiError::body(Error::Internal(what.to_owned()))
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
) -> Result<Reply, ApiError> {
    match state.lane.run(turn, work).await {
        Ok(out) => out,
        Err(Refused::Busy) => Err(ApiError::body(Error::Overloaded)),
        Err(Refused::Panicked) => Err(internal("a handler panicked in the lane")),
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
fn unused_body(auth: &Option<Result<Principal, Error>>, route: Auth) -> bool {
    matches!(auth, Some(Err(_))) && matches!(route, Auth::Tenant | Auth::TenantIdempotent)
}

/// The body length a request declares (`Content-Length`), if it declares a valid one.
fn declared_length(headers: &HeaderMap) -> Option<u64> {
    headers
        .get(hyper::header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a request has a body at all: a declared length above zero, or a chunked one.
fn has_body(headers: &HeaderMap, declared: Option<u64>) -> bool {
    match declared {
        Some(n) => n > 0,
        None => headers.contains_key(hyper::header::TRANSFER_ENCODING),
    }
}

/// Whether all three tenant credentials were sent.
fn complete(c: &bespin_core::Credentials) -> bool {
    c.tenant_id.is_some() && c.user_id.is_some() && c.api_key.is_some()
}
