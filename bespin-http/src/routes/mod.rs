//! One file per resource; each exposes `routes()` with its part of the table.

mod actions;
mod admin;
mod audit;
mod billing;
mod briefs;
mod chat;
mod console;
mod conversations;
mod decisions;
mod events;
mod evidence;
mod jobs;
mod keys;
pub(crate) mod kpis;
mod limits;
mod meetings;
mod memory;
mod meta;
mod notifications;
mod ops;
mod pages;
mod records;
pub(crate) mod search;
mod tasks;
mod tenancy;
mod timeline;
mod tools;
pub(crate) mod usage;
mod webhooks;

use crate::router::{Route, Router};
pub(crate) use console::{Sessions as ConsoleSessions, failed_keys as console_failed_keys};
pub(crate) use events::{
    EVENT_STREAM, StreamFormat, follow as follow_events, maintain as maintain_events,
};

/// Declares a route: `route!(METHOD "/path" => handler as operation_id, doc)`; the operation id
/// names the route in `/openapi.json` (and so in generated SDKs) and must never change. Routes
/// left out of the document (pages, assets) take no `as`. Handlers run on the runtime's
/// worker: reads answer from the snapshot, writes parse and authenticate there and return
/// `Reply::write`, whose operation alone runs on the database's writer thread. A `GET` that a
/// write must accompany (the metered search) returns `Reply::after_write`; a handler that finds
/// its work expensive goes on in the background lane (`Reply::in_lane`). `, blocking` sends a
/// handler to the blocking pool (operator pages and snapshots); `, bulk` to the lane, with the
/// larger bulk body limit (bulk ingest).
macro_rules! route {
    ($method:ident $path:literal => $handler:path as $op:ident, $doc:expr $(, $blocking:ident)?) => {
        route!($method $path => $handler, $doc.op(stringify!($op)) $(, $blocking)?)
    };
    ($method:ident $path:literal => $handler:path, $doc:expr) => {
        route!(@ $method $path, $handler, $doc, Worker, Default)
    };
    ($method:ident $path:literal => $handler:path, $doc:expr, blocking) => {
        route!(@ $method $path, $handler, $doc, Blocking, Default)
    };
    ($method:ident $path:literal => $handler:path, $doc:expr, bulk) => {
        route!(@ $method $path, $handler, $doc, Lane, Bulk)
    };
    (@ $method:ident $path:literal, $handler:path, $doc:expr, $run_on:ident, $limit:ident) => {
        $crate::router::Route {
            method: hyper::Method::$method,
            path: $path,
            handler: $handler,
            doc: $doc,
            run_on: $crate::router::RunOn::$run_on,
            body_limit: $crate::router::BodyLimit::$limit,
            paced: false,
        }
    };
}
pub(crate) use route;

/// Every route of the server.
pub fn all() -> Vec<Route> {
    let mut r = Vec::new();
    r.extend(meta::routes());
    r.extend(pages::routes());
    r.extend(console::routes());
    r.extend(tenancy::routes());
    r.extend(keys::routes());
    r.extend(limits::routes());
    r.extend(billing::routes());
    r.extend(admin::routes());
    r.extend(usage::routes());
    r.extend(ops::routes());
    r.extend(tools::routes());
    r.extend(kpis::routes());
    r.extend(briefs::routes());
    r.extend(jobs::routes());
    r.extend(notifications::routes());
    r.extend(conversations::routes());
    r.extend(chat::routes());
    r.extend(actions::routes());
    r.extend(tasks::routes());
    r.extend(decisions::routes());
    r.extend(meetings::routes());
    r.extend(memory::routes());
    r.extend(evidence::routes());
    r.extend(timeline::routes());
    r.extend(audit::routes());
    r.extend(events::routes());
    r.extend(webhooks::routes());
    r.extend(search::routes());
    r.extend(records::routes());
    r.extend(crate::mcp::routes());
    r
}

/// The router over [`all`].
pub fn router() -> Router {
    Router::new(all())
}
