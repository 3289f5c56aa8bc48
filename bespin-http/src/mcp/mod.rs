//! `POST /mcp`: Bespin as a Model Context Protocol server (Streamable HTTP), so LLM clients
//! call a tenant's tools and read its records under the same keys, roles, entitlements,
//! metering, audit and idempotency as the REST API.
//!
//! The transport is ours, over the server's request pipeline, not the official Rust SDK
//! (`rmcp`): `rmcp`'s streamable-HTTP service reads the body, checks `Host`/`Origin` and
//! streams its answers itself, beside our pipeline rather than inside it (a handler of ours
//! returns one body), and keeps each handshake-revision session as a task in memory
//! (`LocalSessionManager`, uuid ids), recoverable on another server only through a session
//! store that replays `initialize`. Here a request is an ordinary route: admitted,
//! authenticated (tarpit and rate included), limited and logged by the pipeline, and its tool
//! calls are the REST operations themselves (`tools.rs`). Sessions are sealed tokens
//! (`session.rs`): nothing per session on any server.
//!
//! Revisions, each by its own rules:
//! - **2026-07-28** (stateless): no `initialize`; `server/discover`; every request carries
//!   `params._meta` with `io.modelcontextprotocol/protocolVersion` and `…/clientCapabilities`,
//!   and the `MCP-Protocol-Version`, `Mcp-Method` and (for `tools/call`, `prompts/get`,
//!   `resources/read`) `Mcp-Name` headers, which must agree with the body (`-32020`, 400);
//!   results carry `resultType`, list results `ttlMs` and `cacheScope`; protocol errors are
//!   400, an unknown method 404.
//! - **2025-06-18, 2025-11-25**: `initialize` answers a `Mcp-Session-Id`; every later request
//!   must carry it (400 without, 404 for one that is not this caller's or has expired).
//!
//! An unknown version is answered with `-32022` and the supported ones. An `Origin` header that
//! is not one of the CORS origins is 403 before anything else (DNS-rebinding defence).
//! Answers are JSON, or one server-sent event for a client that takes only
//! `text/event-stream`: no call streams (each is one transaction). The one stream is
//! 2026-07-28's `subscriptions/listen` (`listen.rs`): resource and tool-list changes read from
//! the event log. `GET` and `DELETE` are 405 (no standing server-initiated stream; sessions end
//! at their expiry), so the handshake revisions have no resource subscriptions
//! (`capabilities` says so per revision): their `resources/subscribe` would need a
//! subscription set per session kept on a server, which sessions that survive restarts and
//! span servers do not have.
//!
//! `Authorization: Bearer <user-bound key>` alone authenticates, as MCP hosts send it; a
//! read-only key may list and read, and its tool calls that write are refused by the core.

mod listen;
mod prompts;
mod resources;
mod rpc;
mod schema;
pub mod session;
mod tools;

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc, any_object};
use crate::reply::Reply;
use crate::router::Route;
use crate::routes::route;
use bespin_core::Principal;
use hyper::StatusCode;
use rpc::{Answer, Call, Incoming, code};
use serde_json::{Map, Value, json};

/// A protocol revision this server speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[allow(non_camel_case_types)]
pub enum Rev {
    /// 2025-06-18 (handshake, sessions).
    V2025_06_18,
    /// 2025-11-25 (handshake, sessions).
    V2025_11_25,
    /// 2026-07-28 (stateless, `server/discover`).
    V2026_07_28,
}

/// Every revision served, oldest first (as `data.supported` and `supportedVersions` list them).
pub const SUPPORTED: [&str; 3] = ["2025-06-18", "2025-11-25", "2026-07-28"];

impl Rev {
    /// Its name.
    pub fn as_str(self) -> &'static str {
        match self {
            Rev::V2025_06_18 => SUPPORTED[0],
            Rev::V2025_11_25 => SUPPORTED[1],
            Rev::V2026_07_28 => SUPPORTED[2],
        }
    }

    /// A handshake revision by name.
    pub fn handshake(name: &str) -> Option<Rev> {
        match name {
            "2025-06-18" => Some(Rev::V2025_06_18),
            "2025-11-25" => Some(Rev::V2025_11_25),
            _ => None,
        }
    }
}

/// The routing headers of 2026-07-28, each allowed once.
const ROUTING_HEADERS: [&str; 3] = ["mcp-protocol-version", "mcp-method", "mcp-name"];
const PROTOCOL_VERSION_KEY: &str = "io.modelcontextprotocol/protocolVersion";
const CLIENT_CAPABILITIES_KEY: &str = "io.modelcontextprotocol/clientCapabilities";
const SERVER_INFO_KEY: &str = "io.modelcontextprotocol/serverInfo";
/// How long clients may cache `server/discover` and the lists (they change with the plan, the
/// role and the records, so briefly).
const TTL_MS: u64 = 60_000;

/// The route. Paced like the REST routes that write searchable text: a tool call can create a
/// task or a memory fact with a large body, so a large body here waits for its tenant's pace
/// as on `POST /v1/tasks`.
pub fn routes() -> Vec<Route> {
    vec![
        route!(POST "/mcp" => post as mcp, Doc::new("mcp", "Model Context Protocol (Streamable HTTP; revisions 2025-06-18, 2025-11-25, 2026-07-28): one JSON-RPC request per POST", Auth::Tenant).post_reads()
            .body(any_object).ok(200, any_object)).paced(),
    ]
}

/// The MCP state of the server: the sealer of session ids, read from the database (or made
/// there, once) at the first handshake that needs it. Not at start-up: on PostgreSQL reading it
/// is a round trip, which must not run on the runtime's threads, and a database that cannot
/// give it for a moment must not disable sessions for the server's lifetime (the next
/// handshake asks again).
#[derive(Debug, Default)]
pub struct McpState {
    sessions: std::sync::OnceLock<bespin_core::tokens::TokenSealer>,
}

impl McpState {
    /// The state of a server that has not needed its session secret yet.
    pub fn new() -> McpState {
        McpState::default()
    }

    /// The sealer of session ids (the database's secret `token:mcp-session`, made the first
    /// time any server asks). Runs where the handler runs: off the runtime on PostgreSQL.
    fn sealer(
        &self,
        bespin: &bespin_core::Bespin,
    ) -> bespin_core::Result<&bespin_core::tokens::TokenSealer> {
        if let Some(s) = self.sessions.get() {
            return Ok(s);
        }
        // Two first handshakes at once both read the same stored secret: either may win.
        let made = bespin.token_sealer("mcp-session")?;
        Ok(self.sessions.get_or_init(|| made))
    }
}

fn post(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    if let Some(origin) = r.header("origin")
        && !crate::cors::allowed(&s.config, &origin)
    {
        return Ok(Reply::detail(StatusCode::FORBIDDEN, "Origin not allowed"));
    }
    let caller = r.principal(s)?;
    let sse = takes_only_event_stream(r);
    let accepts_sse = accepts(r, "text/event-stream");
    let malformed = |code, message: &str, id| {
        Answer {
            id,
            rev: None,
            sse,
            tool: None,
        }
        .error(code, message, None)
    };
    let call = match rpc::read(&r.body) {
        Incoming::Call(call) => call,
        Incoming::Acknowledge => {
            return Ok(Reply::raw(StatusCode::ACCEPTED, "application/json", ""));
        }
        Incoming::Malformed(code, message, id) => return Ok(malformed(code, message, id)),
    };
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    if call.method == "initialize" {
        count(s, &call);
        return Ok(initialize(s, &caller, &call, sse, now));
    }
    let modern = r.header("mcp-protocol-version").as_deref() == Some(Rev::V2026_07_28.as_str())
        || call.method == "server/discover"
        || meta(&call).is_some_and(|m| m.contains_key(PROTOCOL_VERSION_KEY));
    let rev = if modern {
        match modern_ladder(r, &call) {
            Ok(rev) => rev,
            Err((code, message, data)) => {
                let answer = Answer {
                    id: call.id,
                    rev: Some(Rev::V2026_07_28),
                    sse,
                    tool: None,
                };
                return Ok(answer.error(code, &message, data));
            }
        }
    } else {
        match handshake_session(s, r, &caller, now) {
            Ok(rev) => rev,
            Err((status, code, message, data)) => {
                let answer = Answer {
                    id: call.id,
                    rev: None,
                    sse,
                    tool: None,
                };
                let mut reply = answer.error(code, message, data);
                reply.status = status;
                return Ok(reply);
            }
        }
    };
    let answer = Answer {
        id: call.id.clone(),
        rev: Some(rev),
        sse,
        tool: None,
    };
    Ok(dispatch(s, caller, call, answer, accepts_sse))
}

/// The methods this server answers (the `method` label of `bespin_mcp_requests`).
const METHODS: [&str; 11] = [
    "initialize",
    "ping",
    "server/discover",
    "tools/list",
    "tools/call",
    "resources/list",
    "resources/templates/list",
    "resources/read",
    "prompts/list",
    "prompts/get",
    "subscriptions/listen",
];

/// Counts a request in `bespin_mcp_requests` (a method or tool outside the server's own names
/// is `other`, so whatever clients send, the labels stay few).
fn count(s: &AppState, call: &Call) {
    let method = METHODS
        .into_iter()
        .find(|m| *m == call.method)
        .unwrap_or("other");
    let tool = match method {
        "tools/call" => tools::static_name(call.params.get("name").and_then(Value::as_str)),
        _ => "-",
    };
    s.metrics.mcp(method, tool);
}

/// The methods of a settled revision (`accepts_sse`: the client takes `text/event-stream`).
fn dispatch(s: &AppState, caller: Principal, call: Call, a: Answer, accepts_sse: bool) -> Reply {
    count(s, &call);
    let modern = a.rev == Some(Rev::V2026_07_28);
    match call.method.as_str() {
        "ping" => a.result(Map::new()),
        "subscriptions/listen" if modern => listen::listen(s, &caller, &call, &a, accepts_sse),
        "server/discover" if modern => a.result(discover()),
        "tools/list" => tools::list(s, &caller, &a),
        "tools/call" => tools::call(s, caller, call.params, a),
        "resources/list" => resources::list(s, &caller, &call.params, &a),
        "resources/templates/list" => resources::templates(&a),
        "resources/read" => resources::read(s, &caller, &call.params, a),
        "prompts/list" => prompts::list(&a),
        "prompts/get" => prompts::get(s, &caller, &call.params, &a),
        _ => a.error(code::METHOD_NOT_FOUND, "Method not found", None),
    }
}

/// `initialize` (2025-06-18, 2025-11-25): the requested revision when served, else the newest
/// handshake revision (the client decides whether it speaks it), and a new session's id.
fn initialize(s: &AppState, caller: &Principal, call: &Call, sse: bool, now: i64) -> Reply {
    let requested = call.params.get("protocolVersion").and_then(Value::as_str);
    let rev = requested
        .and_then(Rev::handshake)
        .unwrap_or(Rev::V2025_11_25);
    let answer = Answer {
        id: call.id.clone(),
        rev: Some(rev),
        sse,
        tool: None,
    };
    let sealer = match s.mcp.sealer(&s.bespin) {
        Ok(sealer) => sealer,
        Err(e) => {
            tracing::error!("MCP session secret unavailable: {e}");
            return answer.error(code::INTERNAL_ERROR, "Internal error", None);
        }
    };
    let who = (caller.tenant_id(), caller.user_id());
    let id = session::open(sealer, who, rev, call.params.get("capabilities"), now);
    let mut result = Map::new();
    result.insert("protocolVersion".into(), json!(rev.as_str()));
    result.insert("capabilities".into(), capabilities(rev));
    result.insert("serverInfo".into(), server_info());
    result.insert("instructions".into(), json!(INSTRUCTIONS));
    answer.result(result).with_header("mcp-session-id", id)
}

/// `server/discover` (2026-07-28).
fn discover() -> Map<String, Value> {
    let mut result = Map::new();
    result.insert("supportedVersions".into(), json!(SUPPORTED));
    result.insert("capabilities".into(), capabilities(Rev::V2026_07_28));
    result.insert("instructions".into(), json!(INSTRUCTIONS));
    result.insert("ttlMs".into(), json!(TTL_MS));
    result.insert("cacheScope".into(), json!("private"));
    result.insert("_meta".into(), json!({ SERVER_INFO_KEY: server_info() }));
    result
}

/// What this server offers under `rev`. 2026-07-28 delivers resource updates and tool-list
/// changes on `subscriptions/listen`; the handshake revisions have no notification stream (see
/// the module's note). The prompt and resource lists never change.
fn capabilities(rev: Rev) -> Value {
    let listen = rev == Rev::V2026_07_28;
    json!({
        "tools": {"listChanged": listen},
        "resources": {"subscribe": listen, "listChanged": false},
        "prompts": {"listChanged": false},
    })
}

fn server_info() -> Value {
    json!({"name": "bespin", "title": "Bespin", "version": env!("CARGO_PKG_VERSION")})
}

const INSTRUCTIONS: &str = "Bespin is the tenant's business backend: KPIs, daily briefs, \
    tasks, actions, decisions, governed memory and evidence. Every tool call runs as the \
    caller's API key, with its role, plan, quotas and audit. Tools that change state take an \
    idempotency_key: choose one per intended change and send the same key again when you retry \
    that change, so it happens (and is billed) once.";

fn meta(call: &Call) -> Option<&Map<String, Value>> {
    call.params.get("_meta").and_then(Value::as_object)
}

/// A refusal of the revision checks: code, message, data.
type Refusal = (i64, String, Option<Value>);

/// 2026-07-28's checks, in its order: a routing header sent twice, the `_meta` envelope, the
/// routing headers against the body, then the version.
fn modern_ladder(r: &Req, call: &Call) -> Result<Rev, Refusal> {
    if let Some(h) = ROUTING_HEADERS
        .into_iter()
        .find(|h| r.headers.get_all(*h).iter().count() > 1)
    {
        return Err((
            code::HEADER_MISMATCH,
            format!("{h} header appears more than once"),
            None,
        ));
    }
    let Some(meta) = meta(call) else {
        return Err((
            code::INVALID_PARAMS,
            format!(
                "params._meta must be an object carrying {PROTOCOL_VERSION_KEY} and {CLIENT_CAPABILITIES_KEY}"
            ),
            None,
        ));
    };
    let missing: Vec<&str> = [PROTOCOL_VERSION_KEY, CLIENT_CAPABILITIES_KEY]
        .into_iter()
        .filter(|k| !meta.contains_key(*k))
        .collect();
    if !missing.is_empty() {
        return Err((
            code::INVALID_PARAMS,
            format!("params._meta is missing {}", missing.join(", ")),
            None,
        ));
    }
    let version = meta.get(PROTOCOL_VERSION_KEY);
    if r.header("mcp-protocol-version").as_deref() != version.and_then(Value::as_str) {
        return Err((
            code::HEADER_MISMATCH,
            "MCP-Protocol-Version header does not match params._meta's protocol version".into(),
            None,
        ));
    }
    if r.header("mcp-method").as_deref() != Some(call.method.as_str()) {
        return Err((
            code::HEADER_MISMATCH,
            "Mcp-Method header does not match the request's method".into(),
            None,
        ));
    }
    let name_key = match call.method.as_str() {
        "tools/call" | "prompts/get" => Some("name"),
        "resources/read" => Some("uri"),
        _ => None,
    };
    if let Some(key) = name_key
        && let Some(body) = call.params.get(key).and_then(Value::as_str)
        && r.header("mcp-name")
            .and_then(|h| decode_header_value(&h))
            .as_deref()
            != Some(body)
    {
        return Err((
            code::HEADER_MISMATCH,
            format!("Mcp-Name header does not match params.{key}"),
            None,
        ));
    }
    match version {
        Some(Value::String(v)) if v == Rev::V2026_07_28.as_str() => Ok(Rev::V2026_07_28),
        Some(Value::String(v)) => Err(unsupported(v)),
        _ => Err((
            code::INVALID_PARAMS,
            "the protocol version must be a string".into(),
            None,
        )),
    }
}

/// `-32022` naming the versions served.
fn unsupported(requested: &str) -> Refusal {
    (
        code::UNSUPPORTED_PROTOCOL_VERSION,
        "Unsupported protocol version".into(),
        Some(json!({"supported": SUPPORTED, "requested": requested})),
    )
}

/// A header value as 2026-07-28 encodes it: as is, or `=?base64?…?=` for values that cannot
/// travel as header text (`None` for a malformed one, which then matches nothing).
fn decode_header_value(v: &str) -> Option<String> {
    use base64::Engine;
    match v
        .strip_prefix("=?base64?")
        .and_then(|x| x.strip_suffix("?="))
    {
        Some(b64) => base64::engine::general_purpose::STANDARD
            .decode(b64)
            .ok()
            .and_then(|b| String::from_utf8(b).ok()),
        None => Some(v.to_owned()),
    }
}

/// The handshake revisions' session: the revision of the caller's valid `Mcp-Session-Id`
/// (400 without one, 404 for one that is not the caller's or has expired), whose
/// `MCP-Protocol-Version`, when sent, must name it.
fn handshake_session(
    s: &AppState,
    r: &Req,
    caller: &Principal,
    now: i64,
) -> Result<Rev, (StatusCode, i64, &'static str, Option<Value>)> {
    let header = r.header("mcp-protocol-version");
    if let Some(v) = &header
        && !SUPPORTED.contains(&v.as_str())
    {
        let (code, _, data) = unsupported(v);
        return Err((
            StatusCode::BAD_REQUEST,
            code,
            "Unsupported protocol version",
            data,
        ));
    }
    let Some(id) = r.header("mcp-session-id") else {
        return Err((
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "Bad Request: Mcp-Session-Id header is required (initialize first, or use 2026-07-28 with its _meta)",
            None,
        ));
    };
    let sealer = s.mcp.sealer(&s.bespin).map_err(|e| {
        tracing::error!("MCP session secret unavailable: {e}");
        (
            StatusCode::SERVICE_UNAVAILABLE,
            code::INTERNAL_ERROR,
            "Sessions are unavailable for a moment: retry",
            None,
        )
    })?;
    let resumed = session::resume(sealer, &id, (caller.tenant_id(), caller.user_id()), now);
    let Some(rev) = resumed else {
        return Err((
            StatusCode::NOT_FOUND,
            code::INVALID_REQUEST,
            "Session not found",
            None,
        ));
    };
    if header.is_some_and(|v| v != rev.as_str()) {
        return Err((
            StatusCode::BAD_REQUEST,
            code::INVALID_REQUEST,
            "MCP-Protocol-Version does not match the session's revision",
            None,
        ));
    }
    Ok(rev)
}

/// Whether the request's `Accept` names the media type `t`.
fn accepts(r: &Req, t: &str) -> bool {
    r.header("accept")
        .is_some_and(|a| a.split(',').any(|p| p.trim().starts_with(t)))
}

/// Whether the client accepts `text/event-stream` but not JSON.
fn takes_only_event_stream(r: &Req) -> bool {
    accepts(r, "text/event-stream") && !accepts(r, "application/json") && !accepts(r, "*/*")
}

/// The scalar members of `args` as the strings a query string would give (the REST reads
/// validate them so): an MCP read takes the same checks as its `GET`.
pub(crate) fn as_query(args: &Map<String, Value>) -> Value {
    Value::Object(
        args.iter()
            .filter_map(|(k, v)| {
                let s = match v {
                    Value::String(s) => s.clone(),
                    Value::Number(n) => n.to_string(),
                    Value::Bool(b) => b.to_string(),
                    _ => return None,
                };
                Some((k.clone(), Value::String(s)))
            })
            .collect(),
    )
}
