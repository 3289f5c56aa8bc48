//! MCP prompts that make the cofounder flows reusable: `daily_review` (the latest brief, the
//! actions awaiting review and the open tasks by due date, read as their REST reads) and
//! `kpi_review` (one KPI's recent window, as a resource the client reads).

use super::rpc::{Answer, code};
use crate::AppState;
use crate::error::ApiError;
use crate::reply::Reply;
use bespin_core::Principal;
use bespin_core::coreos::actions::ActionQuery;
use bespin_core::coreos::tasks::TaskQuery;
use serde_json::{Map, Value, json};

/// `prompts/list`.
pub fn list(a: &Answer) -> Reply {
    let mut result = Map::new();
    result.insert(
        "prompts".into(),
        json!([
            {
                "name": "daily_review",
                "title": "Daily review",
                "description": "Today's review: the latest brief, the actions awaiting review and the open tasks by due date",
                "arguments": [],
            },
            {
                "name": "kpi_review",
                "title": "KPI review",
                "description": "Review one KPI's recent window and propose what to do about it",
                "arguments": [{"name": "kpi_id", "description": "The KPI's id", "required": true}],
            },
        ]),
    );
    a.list(result, super::TTL_MS)
}

/// `prompts/get`.
pub fn get(s: &AppState, caller: &Principal, params: &Map<String, Value>, a: &Answer) -> Reply {
    let args = params.get("arguments").and_then(Value::as_object);
    match params.get("name").and_then(Value::as_str) {
        Some("daily_review") => daily_review(s, caller, a).unwrap_or_else(|e| a.refused(e)),
        Some("kpi_review") => match args.and_then(|m| m.get("kpi_id")).and_then(Value::as_str) {
            Some(id) if !id.is_empty() => kpi_review(id, a),
            _ => a.error(
                code::INVALID_PARAMS,
                "kpi_review needs the argument kpi_id",
                None,
            ),
        },
        _ => a.error(code::INVALID_PARAMS, "Unknown prompt", None),
    }
}

fn daily_review(s: &AppState, caller: &Principal, a: &Answer) -> Result<Reply, ApiError> {
    // A tenant without a brief yet still gets its review.
    let brief = match s.bespin.latest_brief(caller) {
        Ok(b) => serde_json::to_value(b).unwrap_or(Value::Null),
        Err(e) if e.kind() == bespin_core::ErrorKind::NotFound => Value::Null,
        Err(e) => return Err(e.into()),
    };
    let actions = s.bespin.list_actions(
        caller,
        &ActionQuery::from_json(&json!({"status": "proposed", "limit": "20"}))?,
    )?;
    let tasks = s.bespin.list_tasks(
        caller,
        &TaskQuery::from_json(&json!({"status": "todo", "limit": "20"}))?,
    )?;
    let text = format!(
        "You are the co-founder reviewing the day. Read the latest brief, the actions awaiting \
         review and the open tasks (soonest due first) below. Then: summarise what changed, \
         name the one or two things that matter most today, and say which actions to approve \
         or reject and which tasks to do first. Use the tools to act (propose_action, \
         create_task, record_decision), each with an idempotency_key you reuse on retries.\n\n\
         Latest brief:\n{}\n\nActions awaiting review:\n{}\n\nOpen tasks:\n{}",
        if brief.is_null() {
            "(no brief yet)".to_owned()
        } else {
            brief.to_string()
        },
        serde_json::to_string(&actions).unwrap_or_default(),
        serde_json::to_string(&tasks).unwrap_or_default(),
    );
    Ok(messages(
        a,
        "Daily review",
        vec![json!({"type": "text", "text": text})],
    ))
}

fn kpi_review(kpi_id: &str, a: &Answer) -> Reply {
    let uri = format!("bespin://kpis/{kpi_id}");
    let text = format!(
        "Review the KPI at {uri} (read the resource: its last 30 days of points). Say how it \
         moved and why that may be, whether it needs attention, and propose at most one action \
         (propose_action) if it does."
    );
    messages(
        a,
        "KPI review",
        vec![
            json!({"type": "text", "text": text}),
            json!({"type": "resource_link", "uri": uri, "name": format!("kpi-{kpi_id}"), "mimeType": "application/json"}),
        ],
    )
}

fn messages(a: &Answer, description: &str, contents: Vec<Value>) -> Reply {
    let mut result = Map::new();
    result.insert("description".into(), json!(description));
    result.insert(
        "messages".into(),
        Value::Array(
            contents
                .into_iter()
                .map(|c| json!({"role": "user", "content": c}))
                .collect(),
        ),
    );
    a.result(result)
}
