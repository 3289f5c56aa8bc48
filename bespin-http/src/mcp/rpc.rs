//! JSON-RPC 2.0 over one HTTP exchange: the request as read, and the replies made from it
//! (results, protocol errors, tool results), each with the HTTP status its revision gives it.

use super::Rev;
use crate::error::ApiError;
use crate::reply::Reply;
use bespin_core::ErrorKind;
use bytes::Bytes;
use hyper::StatusCode;
use serde::Serialize;
use serde_json::{Map, Value, json};

/// JSON-RPC and MCP error codes this server answers with.
pub mod code {
    /// The body is not JSON.
    pub const PARSE_ERROR: i64 = -32700;
    /// Not one JSON-RPC request object (a batch, a malformed envelope, a missing session).
    pub const INVALID_REQUEST: i64 = -32600;
    /// No such method (or not in this revision).
    pub const METHOD_NOT_FOUND: i64 = -32601;
    /// The params are wrong (an unknown tool or prompt; 2026-07-28: an unknown resource).
    pub const INVALID_PARAMS: i64 = -32602;
    /// A failure of the server itself (logged; no detail is given).
    pub const INTERNAL_ERROR: i64 = -32603;
    /// A request the server refused for a reason of its own (the REST status and body are in
    /// `data`).
    pub const REFUSED: i64 = -32000;
    /// Up to 2025-11-25: no such resource.
    pub const RESOURCE_NOT_FOUND: i64 = -32002;
    /// 2026-07-28: a routing header disagrees with the body (or is missing or repeated).
    pub const HEADER_MISMATCH: i64 = -32020;
    /// A protocol version this server does not speak; `data.supported` lists those it does.
    pub const UNSUPPORTED_PROTOCOL_VERSION: i64 = -32022;
}

/// One request as read from the body: its id (a string or a number), method and params (an
/// object, `{}` when absent).
#[derive(Debug, Clone)]
pub struct Call {
    /// The request id, echoed in the answer.
    pub id: Value,
    /// The method.
    pub method: String,
    /// The params (always an object).
    pub params: Map<String, Value>,
}

/// What a body holds.
#[derive(Debug)]
pub enum Incoming {
    /// A request, answered.
    Call(Call),
    /// A notification or a response of the client: acknowledged with 202, nothing else.
    Acknowledge,
    /// Not JSON (`PARSE_ERROR`), or not one JSON-RPC message (`INVALID_REQUEST`; with the id
    /// when one could be read).
    Malformed(i64, &'static str, Value),
}

/// Reads one JSON-RPC message. Batches are refused: none of the revisions served has them
/// (2025-06-18 removed them).
pub fn read(body: &[u8]) -> Incoming {
    let Ok(value) = serde_json::from_slice::<Value>(body) else {
        return Incoming::Malformed(code::PARSE_ERROR, "Parse error", Value::Null);
    };
    let Value::Object(mut m) = value else {
        return Incoming::Malformed(
            code::INVALID_REQUEST,
            "Body must be a single JSON-RPC request or notification object",
            Value::Null,
        );
    };
    let id = m.remove("id");
    let valid_id = matches!(&id, Some(Value::String(_)) | Some(Value::Number(_)));
    let echo = if valid_id {
        id.clone().unwrap_or(Value::Null)
    } else {
        Value::Null
    };
    if m.get("jsonrpc").and_then(Value::as_str) != Some("2.0") {
        return Incoming::Malformed(code::INVALID_REQUEST, "jsonrpc must be \"2.0\"", echo);
    }
    let method = match m.remove("method") {
        Some(Value::String(s)) => s,
        None if m.contains_key("result") || m.contains_key("error") => {
            return Incoming::Acknowledge;
        }
        _ => return Incoming::Malformed(code::INVALID_REQUEST, "method must be a string", echo),
    };
    if id.is_none() {
        return Incoming::Acknowledge;
    }
    if !valid_id {
        return Incoming::Malformed(
            code::INVALID_REQUEST,
            "id must be a string or a number",
            Value::Null,
        );
    }
    let params = match m.remove("params") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(p)) => p,
        Some(_) => {
            return Incoming::Malformed(code::INVALID_REQUEST, "params must be an object", echo);
        }
    };
    Incoming::Call(Call {
        id: echo,
        method,
        params,
    })
}

/// How to answer one request: its id, the revision it is served under, and whether the client
/// takes only `text/event-stream`.
#[derive(Debug, Clone)]
pub struct Answer {
    /// The request id.
    pub id: Value,
    /// The revision (`None` before one is settled: malformed requests).
    pub rev: Option<Rev>,
    /// Frame the answer as one server-sent event.
    pub sse: bool,
    /// The tool call being answered (`tools/call`), whose refusals are audited.
    pub tool: Option<std::sync::Arc<ToolCall>>,
}

/// A `tools/call` as its refusals are audited: under the action `mcp.<tool>`, with the call's
/// `idempotency_key`, as the REST pipeline audits a refused request under its operation id
/// and `Idempotency-Key`.
#[derive(Debug)]
pub struct ToolCall {
    /// `mcp.<tool name>`.
    pub action: String,
    /// The call's `idempotency_key` argument (empty: none).
    pub idempotency_key: String,
}

impl Answer {
    /// The result `result` (for 2026-07-28 with `resultType`).
    pub fn result(&self, mut result: Map<String, Value>) -> Reply {
        if self.rev == Some(Rev::V2026_07_28) {
            result.insert("resultType".into(), json!("complete"));
        }
        self.send(
            StatusCode::OK,
            &json!({"jsonrpc": "2.0", "id": self.id, "result": result}),
        )
    }

    /// A list result: for 2026-07-28 with how long it may be cached (`ttlMs`) and that it is
    /// the caller's own (`cacheScope: private`: what a list holds depends on the tenant and
    /// the role).
    pub fn list(&self, mut result: Map<String, Value>, ttl_ms: u64) -> Reply {
        if self.rev == Some(Rev::V2026_07_28) {
            result.insert("ttlMs".into(), json!(ttl_ms));
            result.insert("cacheScope".into(), json!("private"));
        }
        self.result(result)
    }

    /// A JSON-RPC error. Its HTTP status: 2026-07-28 gives protocol errors 400 and an unknown
    /// method 404; the earlier revisions answer 200 except for a body that cannot be read.
    pub fn error(&self, code: i64, message: &str, data: Option<Value>) -> Reply {
        let status = match (self.rev, code) {
            (_, code::PARSE_ERROR | code::INVALID_REQUEST) => StatusCode::BAD_REQUEST,
            (_, code::HEADER_MISMATCH | code::UNSUPPORTED_PROTOCOL_VERSION) => {
                StatusCode::BAD_REQUEST
            }
            (Some(Rev::V2026_07_28), code::INVALID_PARAMS) => StatusCode::BAD_REQUEST,
            (Some(Rev::V2026_07_28), code::METHOD_NOT_FOUND) => StatusCode::NOT_FOUND,
            _ => StatusCode::OK,
        };
        let mut error = json!({"code": code, "message": message});
        if let Some(data) = data {
            error["data"] = data;
        }
        self.send(
            status,
            &json!({"jsonrpc": "2.0", "id": self.id, "error": error}),
        )
    }

    /// A refusal of a request that is not a tool call, made from the REST answer: a missing
    /// record is `RESOURCE_NOT_FOUND` (2026-07-28: `INVALID_PARAMS`), a failure of the server
    /// `INTERNAL_ERROR`, any other refusal `REFUSED` with the REST status and body in `data`.
    pub fn refused(&self, e: ApiError) -> Reply {
        match e.core_error().map(bespin_core::Error::kind) {
            Some(ErrorKind::Internal) => {
                let _ = e.into_reply(); // logs it
                self.error(code::INTERNAL_ERROR, "Internal error", None)
            }
            Some(ErrorKind::NotFound) => {
                let code = if self.rev == Some(Rev::V2026_07_28) {
                    code::INVALID_PARAMS
                } else {
                    code::RESOURCE_NOT_FOUND
                };
                let data = rest_body(e);
                self.error(code, "Resource not found", Some(data))
            }
            _ => self.error(code::REFUSED, "Request refused", Some(rest_body(e))),
        }
    }

    /// A tool's result: `value` as `structuredContent`, and as JSON text for clients that
    /// read only `content`.
    pub fn tool_ok<T: Serialize + ?Sized>(&self, value: &T) -> Reply {
        match serde_json::to_string(value) {
            Ok(json) => self.tool_json(&json, false),
            Err(e) => {
                tracing::error!("tool result not serialisable: {e}");
                self.error(code::INTERNAL_ERROR, "Internal error", None)
            }
        }
    }

    /// A tool's result from the JSON an idempotent operation stored (a replay answers the same
    /// value as the first call), used as stored: never parsed again.
    pub fn tool_stored(&self, json: &[u8]) -> Reply {
        match std::str::from_utf8(json) {
            Ok(json) => self.tool_json(json, false),
            Err(_) => self.error(code::INTERNAL_ERROR, "Internal error", None),
        }
    }

    /// A refused tool call as a tool error (`isError: true`), so the model reads why: the REST
    /// answer's body with its `status` (and `retry_after` when the REST answer carries
    /// `Retry-After`), the same fields a REST client gets (a 429's included). A failure of the
    /// server itself stays a JSON-RPC `INTERNAL_ERROR`.
    pub fn tool_error(&self, e: ApiError) -> Reply {
        if e.core_error().map(bespin_core::Error::kind) == Some(ErrorKind::Internal) {
            let _ = e.into_reply(); // logs it
            return self.error(code::INTERNAL_ERROR, "Internal error", None);
        }
        // A 403 or 429 of the caller is audited by the pipeline once answered here (it fills
        // in the request id), as a refused REST request is.
        let refusal = self.tool.as_ref().and_then(|t| {
            let key = Some(t.idempotency_key.as_str()).filter(|k| !k.is_empty());
            e.refusal(&t.action, "")
                .map(|r| r.with_idempotency_key(key))
        });
        let mut reply = self.tool_json(&rest_body(e).to_string(), true);
        reply.audit_refusal = refusal.map(Box::new);
        reply
    }

    /// The `tools/call` result of a tool's compact JSON answer `json`: the text `content`, the
    /// same JSON as `structuredContent` when it is an object, and `isError`. Written around
    /// the answer's bytes (the tool's JSON is not parsed and serialised again: the hot path of
    /// every tool call).
    fn tool_json(&self, json: &str, is_error: bool) -> Reply {
        let text = serde_json::to_string(json).unwrap_or_default();
        let mut out = String::with_capacity(2 * json.len() + 128);
        out.push_str(r#"{"jsonrpc":"2.0","id":"#);
        out.push_str(&self.id.to_string());
        out.push_str(r#","result":{"content":[{"type":"text","text":"#);
        out.push_str(&text);
        out.push_str("}]");
        if json.starts_with('{') {
            out.push_str(r#","structuredContent":"#);
            out.push_str(json);
        }
        out.push_str(if is_error {
            r#","isError":true"#
        } else {
            r#","isError":false"#
        });
        if self.rev == Some(Rev::V2026_07_28) {
            out.push_str(r#","resultType":"complete""#);
        }
        out.push_str("}}");
        self.send_bytes(StatusCode::OK, out)
    }

    /// The message as a reply: JSON, or one server-sent event when the client takes only
    /// `text/event-stream`.
    fn send(&self, status: StatusCode, message: &Value) -> Reply {
        self.send_bytes(status, message.to_string())
    }

    fn send_bytes(&self, status: StatusCode, json: String) -> Reply {
        if self.sse {
            let frame = format!("event: message\ndata: {json}\n\n");
            return Reply::raw(status, "text/event-stream", Bytes::from(frame));
        }
        Reply::raw(status, "application/json", Bytes::from(json))
    }
}

/// The REST answer of `e` as an object: its body's fields, `status`, and `retry_after` when
/// the answer carries `Retry-After`.
pub fn rest_body(e: ApiError) -> Value {
    let reply = e.into_reply();
    let mut body = match serde_json::from_slice::<Value>(&reply.body) {
        Ok(Value::Object(m)) => m,
        _ => Map::new(),
    };
    body.insert("status".into(), json!(reply.status.as_u16()));
    if let Some((_, v)) = reply.headers.iter().find(|(n, _)| *n == "retry-after") {
        body.insert(
            "retry_after".into(),
            v.parse::<u64>().map_or_else(|_| json!(v), |n| json!(n)),
        );
    }
    Value::Object(body)
}
