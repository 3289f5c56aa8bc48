//! The developer console (`/console`, contract part 50 §1): server-rendered, read-only HTML over
//! [`bespin_core::console`].
//!
//! Access (spec README decision 15, which tightens 50 §1.2):
//! - off unless `DEV_CONSOLE_ENABLED=1`; off, a missing, empty or wrong key, or an unknown session
//!   all answer `404 {"detail":"Not Found"}`, exactly like an unknown route;
//! - the key is presented once as `?key=…` and compared as a digest, in constant time. The
//!   answer is a `303` to the same page without `key` that sets `console_session` to a fresh
//!   random token (`bcs_` + 43 characters: never the key, never like an API key) —
//!   `HttpOnly; SameSite=Strict; Path=/console; Max-Age=3600`;
//! - a client that presented [`FAILED_KEYS_ALLOWED`] wrong keys within
//!   [`FAILED_KEYS_WINDOW_SECS`] seconds is answered 429 with `Retry-After` to any key until the
//!   oldest failure leaves the window, so the key cannot be guessed at speed;
//! - session tokens live in memory only (a restart logs everyone out), kept as their SHA-256
//!   digests and looked up by the digest of the token presented; as in 50 §1.2, a valid
//!   session is checked before `key`, so it grants access even next to a wrong key;
//! - every `/console` response carries `Cache-Control: no-store` (`crate::headers`).
//!
//! Every database string goes through [`escape`]; rows come from the core with secrets removed
//! (API-key digests, request hashes, stored responses), and pages link to `/assets/console.css`
//! only, under the pages' Content-Security-Policy.

use super::pages::{CSP, with_csp};
use super::route;
use crate::AppState;
use crate::config::RateLimit;
use crate::error::ApiError;
use crate::extract::{Req, query_ints};
use crate::openapi::{Auth, Doc};
use crate::ratelimit::RateLimiter;
use crate::reply::Reply;
use crate::router::Route;
use bespin_core::console::Row;
use bespin_core::ids;
use bespin_core::{Error, FieldError, LocPart};
use hyper::StatusCode;
use serde_json::Value;
use std::collections::HashMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How long a console session lasts.
const SESSION_TTL: Duration = Duration::from_secs(3600);
const COOKIE: &str = "console_session";
/// Wrong console keys a client may present within [`FAILED_KEYS_WINDOW_SECS`].
pub const FAILED_KEYS_ALLOWED: usize = 10;
/// The window over which wrong console keys are counted, per client.
pub const FAILED_KEYS_WINDOW_SECS: u64 = 900;

/// Live console sessions: the digest of each token → its expiry.
#[derive(Default)]
pub(crate) struct Sessions(Mutex<HashMap<[u8; 32], Instant>>);

impl Sessions {
    fn create(&self) -> Option<String> {
        let token = ids::new_secret(ids::CONSOLE_TOKEN_PREFIX).ok()?;
        let mut m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let now = Instant::now();
        m.retain(|_, exp| *exp > now);
        m.insert(ids::key_digest(&token), now + SESSION_TTL);
        Some(token)
    }

    fn valid(&self, presented: &str) -> bool {
        let m = self.0.lock().unwrap_or_else(|e| e.into_inner());
        m.get(&ids::key_digest(presented))
            .is_some_and(|exp| *exp > Instant::now())
    }
}

/// The counter of wrong console keys per client.
pub(crate) fn failed_keys() -> RateLimiter {
    RateLimiter::new(RateLimit {
        enabled: true,
        limit: FAILED_KEYS_ALLOWED,
        window_secs: FAILED_KEYS_WINDOW_SECS,
    })
}

pub fn routes() -> Vec<Route> {
    vec![
        route!(GET "/console" => console, Doc::new("pages", "Developer console", Auth::Hidden), blocking),
        route!(GET "/console/{*rest}" => console, Doc::new("pages", "Developer console", Auth::Hidden), blocking),
    ]
}

fn not_found() -> Reply {
    Reply::detail(StatusCode::NOT_FOUND, "Not Found")
}

fn cookie(r: &Req) -> Option<String> {
    let raw = r.header("cookie")?;
    raw.split(';').find_map(|c| {
        let (k, v) = c.trim().split_once('=')?;
        (k == COOKIE).then(|| v.to_string())
    })
}

fn console(s: &AppState, r: &Req) -> Result<Reply, ApiError> {
    if !s.config.dev_console {
        return Ok(not_found());
    }
    let rest = r.param("rest").to_string();
    let path = if rest.is_empty() {
        "/console".to_string()
    } else {
        format!("/console/{rest}")
    };
    let q = r.query_map();
    // 50 §1.2: a valid session cookie is checked first and grants access whatever `key` says.
    let session = cookie(r).is_some_and(|t| s.console_sessions.valid(&t));
    if !session && let Some(key) = q.get("key").filter(|k| !k.is_empty()) {
        let client = crate::client::key(&s.config, r.peer, &r.headers);
        let now = Instant::now();
        if let Err(wait) = s.console_failed_keys.peek(&client, now) {
            return Ok(Reply::detail(
                StatusCode::TOO_MANY_REQUESTS,
                "Too many wrong console keys; try again later",
            )
            .with_header("retry-after", wait.to_string()));
        }
        let expected = &s.config.dev_console_key;
        if expected.is_empty() || !ids::secrets_match(expected, key) {
            // Counted only when wrong: the limit is on guesses, not on visits.
            let _ = s.console_failed_keys.check(&client, now);
            return Ok(not_found());
        }
        let Some(token) = s.console_sessions.create() else {
            return Ok(Reply::internal());
        };
        // Drop the key from the address bar and history: same page, other parameters kept.
        let others: Vec<(&String, &String)> = q.iter().filter(|(k, _)| *k != "key").collect();
        let mut location = path.trim_end_matches('/').to_string();
        if !others.is_empty() {
            location.push('?');
            location.push_str(&serde_urlencoded::to_string(&others).unwrap_or_default());
        }
        return Ok(
            Reply::raw(StatusCode::SEE_OTHER, "text/plain; charset=utf-8", "")
                .with_header("location", location)
                .with_header(
                    "set-cookie",
                    format!(
                        "{COOKIE}={token}; HttpOnly; SameSite=Strict; Path=/console; Max-Age={}",
                        SESSION_TTL.as_secs()
                    ),
                ),
        );
    }
    if !session {
        return Ok(not_found());
    }
    let c = s.bespin.console();
    let segments: Vec<&str> = rest.split('/').collect();
    let page = match segments.as_slice() {
        [""] => overview(&c)?,
        ["tenants"] => tenants(&c)?,
        ["tenants", id] => match tenant(&c, id)? {
            Some(p) => p,
            None => return Ok(Reply::detail(StatusCode::NOT_FOUND, "Tenant not found")),
        },
        ["billing"] => billing(&c)?,
        ["billing", "plans", id] => match plan(&c, id)? {
            Some(p) => p,
            None => return Ok(Reply::detail(StatusCode::NOT_FOUND, "Plan not found")),
        },
        ["core-os"] => core_os(&c)?,
        ["db", "download"] => return download(&c),
        ["db", table] => {
            let limit = limit(&q)?;
            match table_page(&c, table, limit)? {
                Some(p) => p,
                None => return Ok(Reply::detail(StatusCode::NOT_FOUND, "Table not allowed")),
            }
        }
        _ => return Ok(not_found()),
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

/// HTML-escapes `s` for text and quoted attribute values.
pub(crate) fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for ch in s.chars() {
        match ch {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#x27;"),
            c => out.push(c),
        }
    }
    out
}

const NAV: [(&str, &str); 6] = [
    ("Overview", "/console"),
    ("Tenants", "/console/tenants"),
    ("Billing", "/console/billing"),
    ("Core OS", "/console/core-os"),
    ("Tables", "/console/db/tenants"),
    ("Download DB", "/console/db/download"),
];

fn frame(title: &str, content: &str) -> String {
    let t = escape(title);
    let mut nav = String::new();
    for (label, href) in NAV {
        let _ = write!(nav, "<a href=\"{href}\">{label}</a>");
    }
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>{t} - Bespin Dev Console</title>\
<link rel=\"stylesheet\" href=\"/assets/console.css\"></head><body>\
<nav><span class=\"brand\">Bespin Dev Console</span>{nav}</nav><main><h1>{t}</h1>{content}</main></body></html>\n"
    )
}

/// A cell's text: strings as they are, `null` as `None`, anything else as JSON.
fn text(v: &Value) -> Option<String> {
    match v {
        Value::Null => None,
        Value::String(s) => Some(s.clone()),
        other => Some(other.to_string()),
    }
}

fn get<'a>(row: &'a Row, col: &str) -> Option<&'a Value> {
    row.iter().find(|(c, _)| c == col).map(|(_, v)| v)
}

fn get_str(row: &Row, col: &str) -> String {
    get(row, col).and_then(text).unwrap_or_default()
}

fn cell(v: Option<&Value>) -> String {
    match v.and_then(text) {
        None => "<td><em>null</em></td>".into(),
        Some(s) if s.chars().count() > 100 => {
            let short: String = s.chars().take(100).collect();
            let tip: String = s.chars().take(500).collect();
            format!(
                "<td class=\"clip\" title=\"{}\">{}...</td>",
                escape(&tip),
                escape(&short)
            )
        }
        Some(s) => format!("<td>{}</td>", escape(&s)),
    }
}

/// A card with a table of `rows`. `cols` picks and orders columns (all of the first row's when
/// empty); `link` turns a column into a link (`prefix` + value).
fn table(heading: &str, rows: &[Row], cols: &[&str], link: Option<(&str, &str)>) -> String {
    let mut h = format!("<section class=\"card\"><h2>{}</h2>", escape(heading));
    if rows.is_empty() {
        h.push_str("<p class=\"muted\">No rows.</p></section>");
        return h;
    }
    let cols: Vec<String> = if cols.is_empty() {
        rows[0].iter().map(|(c, _)| c.clone()).collect()
    } else {
        cols.iter().map(|c| c.to_string()).collect()
    };
    h.push_str("<div class=\"scroll\"><table><thead><tr>");
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", escape(c));
    }
    h.push_str("</tr></thead><tbody>");
    for r in rows {
        h.push_str("<tr>");
        for c in &cols {
            match link {
                Some((lc, prefix)) if lc == c => {
                    let v = get_str(r, c);
                    let _ = write!(
                        h,
                        "<td><a href=\"{}{}\">{}</a></td>",
                        prefix,
                        escape(
                            &percent_encoding::utf8_percent_encode(
                                &v,
                                percent_encoding::NON_ALPHANUMERIC
                            )
                            .to_string()
                        ),
                        escape(&v)
                    );
                }
                _ => h.push_str(&cell(get(r, c))),
            }
        }
        h.push_str("</tr>");
    }
    h.push_str("</tbody></table></div></section>");
    h
}

type C<'a> = bespin_core::console::Console<'a>;

fn rows(c: &C, name: &str, first: Option<&str>, limit: usize) -> Result<Vec<Row>, ApiError> {
    Ok(c.rows(name, first, limit)
        .map_err(ApiError::body)?
        .unwrap_or_default())
}

/// Newest first by `col` (RFC 3339 text sorts chronologically), at most `n`.
fn newest(mut rows: Vec<Row>, col: &str, n: usize) -> Vec<Row> {
    rows.sort_by_key(|r| std::cmp::Reverse(get_str(r, col)));
    rows.truncate(n);
    rows
}

const ALL: usize = 100_000;

fn overview(c: &C) -> Result<String, ApiError> {
    let mut h =
        String::from("<section class=\"card\"><h2>Database Statistics</h2><div class=\"stats\">");
    for (label, n) in c.counts().map_err(ApiError::body)? {
        let _ = write!(
            h,
            "<div class=\"stat\"><div class=\"num\">{n}</div><div class=\"label\">{}</div></div>",
            escape(label)
        );
    }
    h.push_str("</div></section><section class=\"card\"><h2>Browse Tables</h2><ul>");
    for t in bespin_core::console::tables() {
        let _ = write!(h, "<li><a href=\"/console/db/{t}\">{t}</a></li>");
    }
    h.push_str("</ul></section>");
    Ok(frame("Overview", &h))
}

fn tenants(c: &C) -> Result<String, ApiError> {
    let list = newest(rows(c, "tenants", None, ALL)?, "created_at", ALL);
    let mut h = table(
        &format!("Tenants ({})", list.len()),
        &list,
        &["tenant_id", "name", "region", "created_at"],
        Some(("tenant_id", "/console/tenants/")),
    );
    h.push_str("<p class=\"muted\">API keys are stored only as SHA-256 digests; the console never shows them.</p>");
    Ok(frame("Tenants", &h))
}

fn tenant(c: &C, id: &str) -> Result<Option<String>, ApiError> {
    let info = rows(c, "tenants", Some(id), 1)?;
    let Some(t) = info.first() else {
        return Ok(None);
    };
    let mut h = table(
        "Tenant Info",
        &info,
        &["tenant_id", "name", "region", "created_at"],
        None,
    );
    let sub = rows(c, "tenant_subscriptions", Some(id), 1)?;
    h.push_str(&table(
        "Subscription",
        &sub,
        &[],
        Some(("plan_id", "/console/billing/plans/")),
    ));
    let sections: [(&str, &str, &str, usize); 5] = [
        ("Usage Rollups", "usage_rollups_period", "period_start", 20),
        ("Users", "users", "", ALL),
        ("KPI Definitions", "kpi_definitions", "", ALL),
        ("Recent Briefs", "briefs", "brief_date", 5),
        (
            "Recent Notifications",
            "notification_outbox",
            "created_at",
            10,
        ),
    ];
    for (heading, name, order, n) in sections {
        let mut list = rows(c, name, Some(id), ALL)?;
        if !order.is_empty() {
            list = newest(list, order, n);
        }
        h.push_str(&table(
            &format!("{heading} ({})", list.len()),
            &list,
            &[],
            None,
        ));
    }
    Ok(Some(frame(&format!("Tenant: {}", get_str(t, "name")), &h)))
}

fn billing(c: &C) -> Result<String, ApiError> {
    let events = rows(c, "metered_event_types", None, ALL)?;
    let plans = rows(c, "plans", None, ALL)?;
    let subs = rows(c, "tenant_subscriptions", None, ALL)?;
    let rollups = rows(c, "usage_rollups_period", None, 50)?;
    let mut h = table(
        &format!("Metered Event Types ({})", events.len()),
        &events,
        &[],
        None,
    );
    h.push_str(&table(
        &format!("Plans ({})", plans.len()),
        &plans,
        &[],
        Some(("plan_id", "/console/billing/plans/")),
    ));
    h.push_str(&table(
        &format!("Tenant Subscriptions ({})", subs.len()),
        &subs,
        &[],
        Some(("tenant_id", "/console/tenants/")),
    ));
    h.push_str(&table("Usage Rollups (Recent 50)", &rollups, &[], None));
    Ok(frame("Billing Overview", &h))
}

fn plan(c: &C, id: &str) -> Result<Option<String>, ApiError> {
    let p = rows(c, "plans", Some(id), 1)?;
    let Some(first) = p.first() else {
        return Ok(None);
    };
    let caps = rows(c, "plan_capabilities", Some(id), ALL)?;
    let limits = rows(c, "plan_event_caps", Some(id), ALL)?;
    let mut h = table("Plan Info", &p, &[], None);
    h.push_str(&table(
        &format!("Capabilities ({})", caps.len()),
        &caps,
        &["capability_key"],
        None,
    ));
    h.push_str(&table(
        &format!("Event Caps ({})", limits.len()),
        &limits,
        &[],
        None,
    ));
    Ok(Some(frame(
        &format!("Plan: {}", get_str(first, "name")),
        &h,
    )))
}

fn core_os(c: &C) -> Result<String, ApiError> {
    let cards: [(&str, &str, usize, &[&str]); 5] = [
        (
            "Recent Actions",
            "actions",
            20,
            &[
                "action_id",
                "tenant_id",
                "title",
                "status",
                "action_type",
                "created_at",
            ],
        ),
        (
            "Recent Tasks",
            "tasks",
            20,
            &[
                "task_id",
                "tenant_id",
                "title",
                "status",
                "priority",
                "due_date",
            ],
        ),
        (
            "Recent Decisions",
            "decisions",
            20,
            &[
                "decision_id",
                "tenant_id",
                "title",
                "status",
                "decision_date",
            ],
        ),
        (
            "Memory Facts",
            "memory_facts",
            20,
            &["fact_id", "tenant_id", "category", "fact_key", "status"],
        ),
        (
            "Timeline",
            "timeline_events",
            30,
            &[
                "tenant_id",
                "event_type",
                "entity_type",
                "entity_id",
                "summary",
                "created_at",
            ],
        ),
    ];
    let mut h = String::new();
    for (heading, name, n, cols) in cards {
        let list = newest(rows(c, name, None, ALL)?, "created_at", n);
        let heading = if name == "timeline_events" {
            format!("{heading} (Recent {n})")
        } else {
            format!("{heading} ({})", list.len())
        };
        h.push_str(&table(
            &heading,
            &list,
            cols,
            Some(("tenant_id", "/console/tenants/")),
        ));
    }
    Ok(frame("Core Business OS", &h))
}

fn table_page(c: &C, name: &str, limit: usize) -> Result<Option<String>, ApiError> {
    let Some(list) = c.rows(name, None, limit).map_err(ApiError::body)? else {
        return Ok(None);
    };
    let title = format!("Table: {name}");
    if list.is_empty() {
        return Ok(Some(frame(&title, "<p class=\"muted\">No rows found.</p>")));
    }
    let mut h = String::from("<p class=\"tables\">Tables: ");
    let links: Vec<String> = bespin_core::console::tables()
        .map(|t| format!("<a href=\"/console/db/{t}\">{t}</a>"))
        .collect();
    h.push_str(&links.join(" | "));
    let _ = write!(h, "</p><p>Showing {} rows (limit: {limit})</p>", list.len());
    h.push_str(&table(name, &list, &[], None));
    Ok(Some(frame(&title, &h)))
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
    use super::escape;

    #[test]
    fn escape_covers_markup_and_quotes() {
        assert_eq!(
            escape("<img src=x onerror=\"alert('1')\">&"),
            "&lt;img src=x onerror=&quot;alert(&#x27;1&#x27;)&quot;&gt;&amp;"
        );
    }
}
