//! The browser pages `/ui` (chat playground) and `/app` (Core OS workspace), and their assets
//! (contract part 50 §2).
//!
//! Every file is compiled into the binary from `bespin-http/assets/`; nothing is fetched at run
//! time and no CDN is involved. The HTML is static: nothing is injected server-side (spec README
//! decision 15 — the console key is never put in a page). Credentials live in the browser's
//! localStorage and go to the JSON API as headers. Pages and assets carry [`CSP`], which allows
//! scripts, styles and connections to this origin only — no inline script, no inline style.
//! Charts are drawn by the vendored uPlot (`assets/vendor/`), which works under that policy.

use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::Req;
use crate::openapi::{Auth, Doc};
use crate::reply::Reply;
use crate::router::Route;
use hyper::StatusCode;

/// The Content-Security-Policy of every page and asset.
pub(crate) const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; \
img-src 'self' data:; connect-src 'self'; object-src 'none'; base-uri 'none'; \
form-action 'self'; frame-ancestors 'none'";

/// `reply` with the pages' Content-Security-Policy.
pub(crate) fn with_csp(reply: Reply) -> Reply {
    reply.with_header("content-security-policy", CSP)
}

const UI_HTML: &str = include_str!("../../assets/ui.html");
const APP_HTML: &str = include_str!("../../assets/app.html");

/// `/assets/{file}`: name, content type, bytes.
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "common.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/common.css"),
    ),
    (
        "console.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/console.css"),
    ),
    (
        "common.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/common.js"),
    ),
    (
        "ui.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/ui.js"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app.js"),
    ),
    (
        "app-charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/app-charts.js"),
    ),
    (
        "charts.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/charts.js"),
    ),
    (
        "charts.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/charts.css"),
    ),
    // Vendored (assets/vendor/README.md: version, licence, origin, hashes).
    (
        "uPlot.iife.min.js",
        "text/javascript; charset=utf-8",
        include_str!("../../assets/vendor/uPlot.iife.min.js"),
    ),
    (
        "uPlot.min.css",
        "text/css; charset=utf-8",
        include_str!("../../assets/vendor/uPlot.min.css"),
    ),
];

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/ui" => ui, Doc::new("pages", "Chat playground", Auth::Hidden)),
        route!(GET "/app" => app, Doc::new("pages", "Core OS workspace", Auth::Hidden)),
        route!(GET "/assets/{file}" => asset, Doc::new("pages", "Page assets (CSS, JavaScript)", Auth::Hidden)),
    ]
}

fn ui(s: &AppState, _: &Req) -> Result<Reply, ApiError> {
    if !s.config.playground_ui {
        return Ok(Reply::detail(
            StatusCode::NOT_FOUND,
            "Playground UI is disabled. Set PLAYGROUND_UI_ENABLED=1 to enable.",
        ));
    }
    Ok(with_csp(Reply::html(UI_HTML)))
}

fn app(s: &AppState, _: &Req) -> Result<Reply, ApiError> {
    if !s.config.playground_ui {
        return Ok(Reply::detail(
            StatusCode::NOT_FOUND,
            "Core OS UI is disabled. Set PLAYGROUND_UI_ENABLED=1 to enable.",
        ));
    }
    Ok(with_csp(Reply::html(APP_HTML)))
}

/// Assets are served while any page is enabled; otherwise they are an unknown route.
fn asset(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    let found = ASSETS.iter().find(|(name, _, _)| *name == r.param("file"));
    match found {
        Some(&(_, ct, body)) if s.config.playground_ui || s.config.dev_console => {
            Ok(with_csp(Reply::raw(StatusCode::OK, ct, body)))
        }
        _ => Ok(Reply::detail(StatusCode::NOT_FOUND, "Not Found")),
    }
}
