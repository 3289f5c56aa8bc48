//! MCP resources: the latest brief (`bespin://briefs/latest`), a KPI with its recent points
//! (`bespin://kpis/{kpi_id}`: its last 30 days as the series route gives them) and any Core OS
//! record (`bespin://{type}/{id}`, as the record explorer shows it). Each is read exactly as
//! its REST read: the caller's tenant, role and plan decide; another tenant's record is "not
//! found" like a missing one. Which events of the log change which resource ([`uri_of`]) is
//! what `subscriptions/listen` (`listen.rs`) announces.

use super::rpc::{Answer, code};
use crate::AppState;
use crate::error::ApiError;
use crate::reply::Reply;
use crate::routes::kpis as kpi_routes;
use bespin_core::Principal;
use bespin_core::events::Event;
use bespin_core::kpis::{KpiPage, Series, SeriesQuery};
use serde::Serialize;
use serde_json::{Map, Value, json};

/// The record types of `bespin://{type}/{id}` (the record explorer's).
const RECORD_TYPES: [&str; 5] = ["action", "task", "decision", "meeting", "memory_fact"];
/// The window of a KPI resource, in days, and its most points.
const KPI_WINDOW_DAYS: &str = "30";
const KPI_MAX_POINTS: &str = "200";

/// The event subject type whose events change the resource at `uri` (`brief`, `kpi` or a
/// record type), or `None` for a URI that names no resource of this server.
pub fn kind_of(uri: &str) -> Option<&'static str> {
    let path = uri.strip_prefix("bespin://")?;
    let (kind, id) = path.split_once('/')?;
    if id.is_empty() || id.contains('/') {
        return None;
    }
    match kind {
        "briefs" => (id == "latest").then_some("brief"),
        "kpis" => Some("kpi"),
        t => RECORD_TYPES.into_iter().find(|r| *r == t),
    }
}

/// The resource an event changes, if any: a brief's generation changes the latest brief, a
/// KPI's points its KPI, a record's change (or evidence linked to it) the record.
pub fn uri_of(e: &Event) -> Option<String> {
    let (kind, id) = match e.subject.kind.as_str() {
        "brief" => return Some("bespin://briefs/latest".into()),
        "kpi" => ("kpis", e.subject.id.clone()),
        "evidence" => {
            let data = e.data();
            let kind = data.get("entity_type")?.as_str()?;
            let kind = RECORD_TYPES.into_iter().find(|r| *r == kind)?;
            (kind, data.get("entity_id")?.as_str()?.to_owned())
        }
        t => (
            RECORD_TYPES.into_iter().find(|r| *r == t)?,
            e.subject.id.clone(),
        ),
    };
    Some(format!("bespin://{kind}/{id}"))
}

/// KPIs per `resources/list` page.
const PAGE: usize = 100;

/// `resources/list`: the latest brief, then the tenant's KPIs newest first, [`PAGE`] a page
/// (`nextCursor` while more are left; records are reached through the template, not listed:
/// there can be millions). The cursor is the position of the next KPI: a KPI defined while a
/// client pages shifts the later pages by one, so it may see a KPI twice, never miss one.
pub fn list(s: &AppState, caller: &Principal, params: &Map<String, Value>, a: &Answer) -> Reply {
    let offset = match params.get("cursor") {
        None | Some(Value::Null) => 0,
        Some(c) => match c
            .as_str()
            .and_then(|c| c.strip_prefix('k')?.parse::<usize>().ok())
        {
            Some(o) if o <= 1_000_000 => o,
            _ => return a.error(code::INVALID_PARAMS, "Invalid cursor", None),
        },
    };
    let mut out = Vec::new();
    if offset == 0 {
        out.push(json!({
            "uri": "bespin://briefs/latest",
            "name": "latest-brief",
            "title": "Latest daily brief",
            "description": "The daily brief with the newest date",
            "mimeType": "application/json",
        }));
    }
    let mut more = false;
    // One more than a page tells whether another page follows.
    let page = KpiPage::clamped(PAGE as i64 + 1, offset as i64);
    if let Ok(mut kpis) = s.bespin.list_kpis(caller, page) {
        more = kpis.len() > PAGE;
        kpis.truncate(PAGE);
        for k in kpis {
            out.push(json!({
                "uri": format!("bespin://kpis/{}", k.kpi_id),
                "name": format!("kpi-{}", k.kpi_id),
                "title": k.name,
                "description": format!("KPI {} ({}) with its last {KPI_WINDOW_DAYS} days of points", k.name, k.unit.as_deref().unwrap_or("no unit")),
                "mimeType": "application/json",
            }));
        }
    }
    let mut result = Map::new();
    result.insert("resources".into(), Value::Array(out));
    if more {
        result.insert("nextCursor".into(), json!(format!("k{}", offset + PAGE)));
    }
    a.list(result, super::TTL_MS)
}

/// `resources/templates/list`.
pub fn templates(a: &Answer) -> Reply {
    let mut result = Map::new();
    result.insert(
        "resourceTemplates".into(),
        json!([
            {
                "uriTemplate": "bespin://kpis/{kpi_id}",
                "name": "kpi",
                "title": "A KPI with its recent points",
                "description": format!("The KPI's last {KPI_WINDOW_DAYS} days of points (at most {KPI_MAX_POINTS}, downsampled on the server)"),
                "mimeType": "application/json",
            },
            {
                "uriTemplate": "bespin://{type}/{id}",
                "name": "record",
                "title": "A Core OS record",
                "description": "type: action | task | decision | meeting | memory_fact; the record with its evidence and newest timeline events",
                "mimeType": "application/json",
            },
        ]),
    );
    a.list(result, super::TTL_MS)
}

/// `resources/read`.
pub fn read(s: &AppState, caller: &Principal, params: &Map<String, Value>, a: Answer) -> Reply {
    let Some(uri) = params.get("uri").and_then(Value::as_str) else {
        return a.error(code::INVALID_PARAMS, "params.uri must be a string", None);
    };
    let uri = uri.to_owned();
    let path = uri.strip_prefix("bespin://").unwrap_or("");
    let (kind, id) = path.split_once('/').unwrap_or((path, ""));
    let read = match (kind, id) {
        ("briefs", "latest") => s
            .bespin
            .latest_brief(caller)
            .map(|b| contents(&a, &uri, &b))
            .map_err(ApiError::path),
        ("kpis", id) if !id.is_empty() && !id.contains('/') => {
            kpi(s, caller, id, uri.clone(), a.clone())
        }
        (t, id) if RECORD_TYPES.contains(&t) && !id.is_empty() && !id.contains('/') => s
            .bespin
            .record(caller, t, id)
            .map(|r| contents(&a, &uri, &r))
            .map_err(ApiError::path),
        _ => {
            return a.refused(ApiError::path(bespin_core::Error::NotFound(format!(
                "Resource {uri} not found"
            ))));
        }
    };
    read.unwrap_or_else(|e| a.refused(e))
}

fn kpi(
    s: &AppState,
    caller: &Principal,
    id: &str,
    uri: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let query = SeriesQuery::from_query(|n| match n {
        "window_days" => Some(KPI_WINDOW_DAYS),
        "max_points" => Some(KPI_MAX_POINTS),
        _ => None,
    })
    .map_err(ApiError::path)?;
    let refused = a.clone();
    let render = move |series: Series| contents(&a, &uri, &series);
    kpi_routes::series_reply(s, caller, id, query, render, move |e| refused.refused(e))
}

/// `{"contents": [{uri, mimeType, text}]}` of `value` as JSON.
fn contents<T: Serialize>(a: &Answer, uri: &str, value: &T) -> Reply {
    let text = serde_json::to_string(value).unwrap_or_default();
    let mut result = Map::new();
    result.insert(
        "contents".into(),
        json!([{"uri": uri, "mimeType": "application/json", "text": text}]),
    );
    a.result(result)
}
