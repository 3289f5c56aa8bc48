//! `subscriptions/listen` (2026-07-28): a listen request's answer is a `text/event-stream` that
//! tells the client when a resource it named changed (`notifications/resources/updated`) and
//! when its tool list may have changed (`notifications/tools/list_changed`: the plan decides
//! which tools a tenant has).
//!
//! The stream is the event log's (issue 20) followed from the moment of the request, through
//! the same task and bounded channel as `GET /v1/events/stream`, with the caller's role
//! deciding what it may see: a change the caller could not read never announces itself. It
//! holds nothing on the server but that task, so it works behind any load balancer; a dropped
//! stream is not resumed (the protocol's rule: the client listens again and refetches).
//!
//! Frames, in the protocol's order: `notifications/subscriptions/acknowledged` with the honored
//! filter first, then the notifications, each with `_meta["io.modelcontextprotocol/subscriptionId"]`
//! = the request's id; when the server stops, the listen request's result ends the stream
//! gracefully. Honored: `resourceSubscriptions` naming resources of this server (see
//! `resources.rs`) and `toolsListChanged`; the prompt and resource lists never change, so
//! their flags are left out of the acknowledgment, as the protocol asks for kinds a server
//! does not deliver.

use super::rpc::{Answer, Call, code};
use crate::AppState;
use crate::reply::Reply;
use crate::routes::{StreamFormat, follow_events};
use bespin_core::Principal;
use bespin_core::events::{EventQuery, EventType, SharedEvent, catalog};
use bytes::Bytes;
use hyper::StatusCode;
use serde_json::{Map, Value, json};
use std::collections::BTreeSet;
use std::sync::Arc;

/// The most resource URIs one listen request may name.
pub const MAX_URIS: usize = 100;
/// The longest URI accepted.
const MAX_URI_BYTES: usize = 512;
const SUBSCRIPTION_ID_KEY: &str = "io.modelcontextprotocol/subscriptionId";

/// What one stream delivers.
struct Honored {
    /// `notifications/tools/list_changed` on a change of the tenant's subscription.
    tools: bool,
    /// The resource URIs followed.
    uris: BTreeSet<String>,
}

/// Serves `subscriptions/listen`. `accepts_sse`: the request's `Accept` names
/// `text/event-stream` (406 otherwise: the answer is a stream, never JSON).
pub fn listen(
    s: &AppState,
    caller: &Principal,
    call: &Call,
    a: &Answer,
    accepts_sse: bool,
) -> Reply {
    if call.id.is_null() {
        return a.error(
            code::INVALID_REQUEST,
            "subscriptions/listen requires a request id",
            None,
        );
    }
    if !accepts_sse {
        let mut reply = a.error(
            code::INVALID_REQUEST,
            "subscriptions/listen answers with text/event-stream: the Accept header must name it",
            None,
        );
        reply.status = StatusCode::NOT_ACCEPTABLE;
        return reply;
    }
    let honored = match honored(&call.params) {
        Ok(h) => h,
        Err(message) => return a.error(code::INVALID_PARAMS, &message, None),
    };
    let q = EventQuery {
        after: None,
        types: Some(types_for(&honored)),
        limit: None,
    };
    let sub = s.bespin.newest_event_seq().and_then(|newest| {
        s.bespin.subscribe(
            caller,
            EventQuery {
                after: Some(newest),
                ..q
            },
        )
    });
    let sub = match sub {
        Ok(sub) => sub,
        Err(e) => return a.refused(crate::error::ApiError::from(e)),
    };
    let meta = json!({ SUBSCRIPTION_ID_KEY: call.id });
    let ack = json!({
        "jsonrpc": "2.0",
        "method": "notifications/subscriptions/acknowledged",
        "params": {"notifications": filter_json(&honored), "_meta": meta},
    });
    let farewell = json!({
        "jsonrpc": "2.0",
        "id": call.id,
        "result": {"_meta": meta, "resultType": "complete"},
    });
    let format = StreamFormat {
        hello: Bytes::from(message_frame(&ack)),
        render: Box::new(move |page, out| render(&honored, &meta, page, out)),
        farewell: Some(Bytes::from(message_frame(&farewell))),
    };
    follow_events(s, sub, format).with_header("x-accel-buffering", "no")
}

/// The honored subset of `params.notifications` (a protocol error for a malformed one).
fn honored(params: &Map<String, Value>) -> Result<Honored, String> {
    let Some(n) = params.get("notifications").and_then(Value::as_object) else {
        return Err("params.notifications must be an object".into());
    };
    let uris = match n.get("resourceSubscriptions") {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(a)) if a.len() <= MAX_URIS => a.iter().collect(),
        Some(Value::Array(_)) => {
            return Err(format!(
                "params.notifications.resourceSubscriptions names at most {MAX_URIS} URIs"
            ));
        }
        Some(_) => {
            return Err("params.notifications.resourceSubscriptions must be an array".into());
        }
    };
    let mut honored = Honored {
        tools: n.get("toolsListChanged") == Some(&Value::Bool(true)),
        uris: BTreeSet::new(),
    };
    for uri in uris {
        let Some(uri) = uri.as_str().filter(|u| u.len() <= MAX_URI_BYTES) else {
            return Err(format!(
                "each resource subscription must be a URI string of at most {MAX_URI_BYTES} bytes"
            ));
        };
        // A URI that names no resource of this server could never fire: it is left out of the
        // acknowledgment, so the client knows.
        if super::resources::kind_of(uri).is_some() {
            honored.uris.insert(uri.to_owned());
        }
    }
    Ok(honored)
}

/// The acknowledgment's filter: what is delivered, nothing more.
fn filter_json(h: &Honored) -> Value {
    let mut f = Map::new();
    if h.tools {
        f.insert("toolsListChanged".into(), json!(true));
    }
    if !h.uris.is_empty() {
        f.insert("resourceSubscriptions".into(), json!(h.uris));
    }
    Value::Object(f)
}

/// The event types that can touch what `h` follows (the subscription reads only those).
fn types_for(h: &Honored) -> Vec<&'static EventType> {
    let kinds: BTreeSet<&str> = h
        .uris
        .iter()
        .filter_map(|u| super::resources::kind_of(u))
        .collect();
    catalog::ALL
        .iter()
        .copied()
        .filter(|t| {
            (h.tools && t.name == catalog::SUBSCRIPTION_CHANGED.name)
                || kinds.contains(t.subject)
                // Evidence shows inside the record it is linked to.
                || (t.name == catalog::EVIDENCE_LINKED.name && !kinds.is_empty())
        })
        .collect()
}

/// Appends the notifications a page of events gives (each once per page: a notification says
/// "read it again", so two of the same in one write carry nothing more).
fn render(h: &Honored, meta: &Value, page: &[Arc<SharedEvent>], out: &mut Vec<u8>) {
    let mut sent: BTreeSet<String> = BTreeSet::new();
    let mut tools_sent = false;
    for e in page {
        if h.tools && e.event_type == catalog::SUBSCRIPTION_CHANGED.name {
            if !std::mem::replace(&mut tools_sent, true) {
                out.extend(message_frame(&json!({
                    "jsonrpc": "2.0",
                    "method": "notifications/tools/list_changed",
                    "params": {"_meta": meta},
                })));
            }
            continue;
        }
        let Some(uri) = super::resources::uri_of(e) else {
            continue;
        };
        if h.uris.contains(&uri) && !sent.contains(&uri) {
            out.extend(message_frame(&json!({
                "jsonrpc": "2.0",
                "method": "notifications/resources/updated",
                "params": {"uri": uri, "_meta": meta},
            })));
            sent.insert(uri);
        }
    }
}

/// One JSON-RPC message as a server-sent event.
fn message_frame(message: &Value) -> Vec<u8> {
    format!("event: message\ndata: {message}\n\n").into_bytes()
}
