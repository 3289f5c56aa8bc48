//! One file per resource; each exposes `routes()` with its part of the table.

mod actions;
mod admin;
mod billing;
mod briefs;
mod chat;
mod console;
mod conversations;
mod decisions;
mod evidence;
mod jobs;
mod kpis;
mod limits;
mod meetings;
mod memory;
mod meta;
mod notifications;
mod ops;
mod pages;
mod records;
mod search;
mod tasks;
mod tenancy;
mod timeline;
mod tools;

use crate::router::{Route, Router};
pub(crate) use console::Sessions as ConsoleSessions;

/// Declares a route: `route!(METHOD "/path" => handler as operation_id, doc)`; the operation id
/// names the route in `/openapi.json` (and so in generated SDKs) and must never change. Routes
/// left out of the document (pages, assets) take no `as`. `GET` handlers are taken to be quick
/// snapshot reads and run on the runtime's worker; every other method runs on the database's
/// writer thread. A `GET` that a write must accompany (the metered search) reads on the worker
/// and returns `Reply::after_write`; `, blocking` sends a handler to the blocking pool (slow
/// reads; writes with heavy parsing).
macro_rules! route {
    ($method:ident $path:literal => $handler:path as $op:ident, $doc:expr $(, $blocking:ident)?) => {
        route!($method $path => $handler, $doc.op(stringify!($op)) $(, $blocking)?)
    };
    ($method:ident $path:literal => $handler:path, $doc:expr) => {
        route!(@ $method $path, $handler, $doc,
            if hyper::Method::$method == hyper::Method::GET {
                $crate::router::RunOn::Worker
            } else {
                $crate::router::RunOn::Writer
            })
    };
    ($method:ident $path:literal => $handler:path, $doc:expr, blocking) => {
        route!(@ $method $path, $handler, $doc, $crate::router::RunOn::Blocking)
    };
    (@ $method:ident $path:literal, $handler:path, $doc:expr, $run_on:expr) => {
        $crate::router::Route {
            method: hyper::Method::$method,
            path: $path,
            handler: $handler,
            doc: $doc,
            run_on: $run_on,
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
    r.extend(limits::routes());
    r.extend(billing::routes());
    r.extend(admin::routes());
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
    r.extend(search::routes());
    r.extend(records::routes());
    r
}

/// The router over [`all`].
pub fn router() -> Router {
    Router::new(all())
}
