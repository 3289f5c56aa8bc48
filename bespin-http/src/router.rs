//! The route table: (method, path pattern) → handler, matched with `matchit`.
//!
//! Every route also carries its OpenAPI description, so the served document is generated from
//! the same table the router uses and cannot miss a route.

use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::Doc;
use crate::reply::Reply;
use hyper::Method;
use std::collections::HashMap;

/// A synchronous handler; the pipeline runs it where its route's [`RunOn`] says.
pub type Handler = fn(&AppState, &Req) -> Result<Reply, ApiError>;

/// Where a handler runs. Never on the database's writer thread: a write handler parses and
/// authenticates where it runs and hands only its operation to the writer
/// (`crate::reply::Reply::write`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RunOn {
    /// On the runtime's worker: quick snapshot reads and the parsing of small write bodies,
    /// saving a thread hop. A body over `crate::pipeline::LARGE_BODY` goes to the blocking
    /// pool instead.
    Worker,
    /// In the background lane (`crate::lane`): low priority, turns across tenants. Writes
    /// whose parsing is heavy (bulk ingest), and any body over `LARGE_BODY`.
    Lane,
    /// On the blocking pool: operator work that takes long (console pages, snapshots).
    Blocking,
}

/// Which body limit a route has.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyLimit {
    /// `Config::max_body_bytes` (default 1 MiB).
    Default,
    /// `Config::max_bulk_body_bytes` (bulk ingest; default 10 MiB).
    Bulk,
}

/// One route.
pub struct Route {
    /// HTTP method.
    pub method: Method,
    /// Path pattern in `matchit` syntax (`/v1/kpis/{kpi_id}`).
    pub path: &'static str,
    /// The handler.
    pub handler: Handler,
    /// Its documentation.
    pub doc: Doc,
    /// Where the handler runs.
    pub run_on: RunOn,
    /// Its largest body.
    pub body_limit: BodyLimit,
    /// Whether a large body here is paced per tenant (writes of searchable text, whose index
    /// entries make them the most expensive writes: see `Config::large_text_writes_per_sec`).
    pub paced: bool,
}

impl Route {
    /// The same route, pacing large bodies per tenant.
    pub fn paced(mut self) -> Route {
        self.paced = true;
        self
    }
}

/// What routing found.
pub enum Found<'a> {
    /// A handler and the path parameters.
    Handler(&'a Route, HashMap<String, String>),
    /// The path exists with other methods (405 with `Allow`).
    MethodNotAllowed(String),
    /// Nothing matches (404).
    NotFound,
}

/// All routes, indexed by path.
pub struct Router {
    routes: Vec<Route>,
    by_path: matchit::Router<Vec<usize>>,
}

impl Router {
    /// Builds the index. Panics at start-up on a malformed or conflicting pattern (a bug).
    pub fn new(routes: Vec<Route>) -> Router {
        let mut paths: Vec<(&'static str, Vec<usize>)> = Vec::new();
        for (i, r) in routes.iter().enumerate() {
            match paths.iter_mut().find(|(p, _)| *p == r.path) {
                Some((_, v)) => v.push(i),
                None => paths.push((r.path, vec![i])),
            }
        }
        let mut by_path = matchit::Router::new();
        for (p, idx) in paths {
            #[allow(clippy::expect_used)]
            by_path
                .insert(p, idx)
                .expect("route patterns are static and distinct");
        }
        Router { routes, by_path }
    }

    /// Every route.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// Finds the route for `method` and an already percent-decoded `path`.
    pub fn find(&self, method: &Method, path: &str) -> Found<'_> {
        let Ok(m) = self.by_path.at(path) else {
            return Found::NotFound;
        };
        let params: HashMap<String, String> = m
            .params
            .iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect();
        let wanted = if method == Method::HEAD {
            &Method::GET
        } else {
            method
        };
        for &i in m.value {
            if self.routes[i].method == *wanted {
                return Found::Handler(&self.routes[i], params);
            }
        }
        let allow: Vec<&str> = m
            .value
            .iter()
            .map(|&i| self.routes[i].method.as_str())
            .collect();
        Found::MethodNotAllowed(allow.join(", "))
    }

    /// Whether a path (ignoring the method) is routed.
    pub fn has_path(&self, path: &str) -> bool {
        self.by_path.at(path).is_ok()
    }
}
