//! The console's pages: HTML built from the core's rows, every database string escaped.

use super::C;
use crate::error::ApiError;
use bespin_core::console::Row;
use serde_json::Value;
use std::fmt::Write as _;

/// HTML-escapes `s` for text and quoted attribute values.
pub(super) fn escape(s: &str) -> String {
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

pub(super) fn overview(c: &C) -> Result<String, ApiError> {
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

pub(super) fn tenants(c: &C) -> Result<String, ApiError> {
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

pub(super) fn tenant(c: &C, id: &str) -> Result<Option<String>, ApiError> {
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

pub(super) fn billing(c: &C) -> Result<String, ApiError> {
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

pub(super) fn plan(c: &C, id: &str) -> Result<Option<String>, ApiError> {
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

pub(super) fn core_os(c: &C) -> Result<String, ApiError> {
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

pub(super) fn table_page(c: &C, name: &str, limit: usize) -> Result<Option<String>, ApiError> {
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
