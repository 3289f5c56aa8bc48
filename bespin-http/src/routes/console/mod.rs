//! The developer console (`/console`, contract part 50 §1): server-rendered, read-only HTML over
//! [`bespin_core::console`]. Access and sessions in [`sessions`], the pages in [`html`], the
//! handler here.
//!
//! Access (spec README decision 15, which tightens 50 §1.2):
//! - off unless `DEV_CONSOLE_ENABLED=1`; off, a missing, empty or wrong key, or an unknown session
//!   all answer `404 {"detail":"Not Found"}`, exactly like an unknown route;
//! - the key is presented once as `?key=…` and compared as a digest, in constant time. The
//!   answer is a `303` to the same page without `key` that sets `console_session` to a fresh
//!   random token (`bcs_` + 43 characters: never the key, never like an API key) —
//!   `HttpOnly; SameSite=Strict; Path=/console; Max-Age=3600`;
//! - a client that presented [`FAILED_KEYS_ALLOWED`](sessions::FAILED_KEYS_ALLOWED) wrong keys within
//!   [`FAILED_KEYS_WINDOW_SECS`](sessions::FAILED_KEYS_WINDOW_SECS) seconds is answered 429 with `Retry-After` to any key until the
//!   oldest failure leaves the window, so the key cannot be guessed at speed;
//! - session tokens live in memory only (a restart logs everyone out), kept as their SHA-256
//!   digests and looked up by the digest of the token presented; as in 50 §1.2, a valid
//!   session is checked before `key`, so it grants access even next to a wrong key;
//! - every `/console` response carries `Cache-Control: no-store` (`crate::headers`).
//!
//! Every database string goes through [`escape`](html::escape); rows come from the core with secrets removed
//! (API-key digests, request hashes, stored responses), and pages link to `/assets/console.css`
//! only, under the pages' Content-Security-Policy.

mod html;
mod sessions;

use super::pages::{CSP, with_csp};
use super::route;
use crate::AppState;
use crate::error::ApiError;
use crate::extract::{Req, query_ints};
use crate::openapi::{Auth, Doc};
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::{Error, FieldError, LocPart};
use html::{billing, core_os, overview, plan, table_page, tenant, tenants};
use hyper::StatusCode;
use serde_json::Value;
use sessions::{Access, access};
pub(crate) use sessions::{Sessions, failed_keys};
use std::collections::HashMap;

type C<'a> = bespin_core::console::Console<'a>;

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/console" => console, Doc::new("pages", "Developer console", Auth::Hidden), blocking),
        route!(GET "/console/{*rest}" => console, Doc::new("pages", "Developer console", Auth::Hidden), blocking),
    ]
}

/// The 404 of a console that is off, or of a request without a valid session or key.
fn not_found() -> ApiError {
    ApiError::body(Error::NotFound("Not Found".into()))
}

fn console(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    if !s.config.dev_console {
        return Err(not_found());
    }
    let rest = r.param("rest").to_string();
    let path = if rest.is_empty() {
        "/console".to_string()
    } else {
        format!("/console/{rest}")
    };
    let q = r.query_map();
    match access(s, r, &path, &q)? {
        Access::Granted => {}
        Access::Opened(reply) => return Ok(reply),
        Access::Denied => return Err(not_found()),
    }
    let c = s.bespin.console();
    let segments: Vec<&str> = rest.split('/').collect();
    let missing = |what: &str| Err(ApiError::body(Error::NotFound(format!("{what} not found"))));
    let page = match segments.as_slice() {
        [""] => overview(&c)?,
        ["tenants"] => tenants(&c)?,
        ["tenants", id] => match tenant(&c, id)? {
            Some(p) => p,
            None => return missing("Tenant"),
        },
        ["billing"] => billing(&c)?,
        ["billing", "plans", id] => match plan(&c, id)? {
            Some(p) => p,
            None => return missing("Plan"),
        },
        ["core-os"] => core_os(&c)?,
        ["db", "download"] => return download(&c),
        ["db", table] => {
            let limit = limit(&q)?;
            match table_page(&c, table, limit)? {
                Some(p) => p,
                None => return Err(ApiError::body(Error::NotFound("Table not allowed".into()))),
            }
        }
        _ => return Err(not_found()),
    };
    Ok(with_csp(Reply::html(page)))
}

fn limit(q: &HashMap<String, String>) -> Result<usize, ApiError> {
    let v = query_ints(q, &["limit"])?[0].unwrap_or(200);
    let (kind, msg) = if v < 1 {
        (
            "greater_than_equal",
            "Input should be greater than or equal to 1",
        )
    } else if v > 1000 {
        (
            "less_than_equal",
            "Input should be less than or equal to 1000",
        )
    } else {
        return Ok(v as usize);
    };
    let input = Value::String(q.get("limit").cloned().unwrap_or_default());
    Err(ApiError::query(Error::Validation(vec![FieldError::new(
        kind,
        vec![LocPart::from("limit")],
        msg,
        input,
    )])))
}

fn download(c: &C) -> Result<Reply, ApiError> {
    let mut bytes = Vec::new();
    c.snapshot(&mut bytes).map_err(ApiError::body)?;
    Ok(
        Reply::raw(StatusCode::OK, "application/octet-stream", bytes)
            .with_header(
                "content-disposition",
                "attachment; filename=\"bespin.redb\"",
            )
            .with_header("content-security-policy", CSP),
    )
}

#[cfg(test)]
mod tests {
    use super::html::escape;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<img src=x onerror=\"alert('1')\">&"),
            "&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;"
        );
    }
}
