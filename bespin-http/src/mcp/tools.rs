//! The MCP tools: every tool of the gateway registry (`echo`, `kpi_summary`, …, invoked as
//! `POST /v1/tools/invoke` is) and the operations an agent needs, each exactly its REST
//! operation: the same request parser, the same core operation submitted to the writer (one
//! transaction with its checks, quota, audit row, usage event), the same read. A tool that
//! changes state takes a required `idempotency_key`: the gateway tools pass it to the
//! operation's own idempotency (as the `Idempotency-Key` header), the others run under
//! [`Op::once`]. A refused call is a tool error carrying the REST answer's status and body.

use super::rpc::{Answer, ToolCall, code};
use super::schema::{self, object, string};
use crate::AppState;
use crate::error::ApiError;
use crate::openapi::{list_of, schema as oa};
use crate::reply::Reply;
use crate::routes::{kpis as kpi_routes, search as search_routes};
use bespin_core::briefs::Brief;
use bespin_core::coreos::actions::{self, Action, ActionPage, ActionQuery, NewAction};
use bespin_core::coreos::decisions::{self, Decision, NewDecision};
use bespin_core::coreos::evidence::{self, EvidenceLink, NewEvidence};
use bespin_core::coreos::memory::{
    self, FactQuery, FactValue, MemoryFact, MemoryFactPage, NewFact,
};
use bespin_core::coreos::records::RecordView;
use bespin_core::coreos::search::{SearchQuery, SearchResults};
use bespin_core::coreos::tasks::{self, NewTask, Task, TaskPage, TaskQuery};
use bespin_core::idempotency::{Idempotency, Stored};
use bespin_core::kpis::{Kpi, KpiPage, Series, SeriesQuery};
use bespin_core::notifications::{Outbox, OutboxQuery};
use bespin_core::time::Date;
use bespin_core::tools::{self as gateway, Invocation, InvokeRequest};
use bespin_core::{Error, FieldError, LocPart, Op, Principal};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::sync::OnceLock;

/// How a tool runs: its arguments (without `idempotency_key`), the key when it takes one, and
/// how to answer.
type CallFn =
    fn(&AppState, Principal, Map<String, Value>, String, Answer) -> Result<Reply, ApiError>;

/// One tool of this server (the gateway registry's are added to these at listing time).
struct Tool {
    name: &'static str,
    title: &'static str,
    description: &'static str,
    /// Hidden from members (their REST operation is refused to them).
    admin: bool,
    /// Changes state: takes `idempotency_key`.
    writes: bool,
    input: fn() -> Value,
    output: fn() -> Value,
    call: CallFn,
}

fn tools() -> &'static [Tool] {
    &[
        Tool {
            name: "search_records",
            title: "Search records",
            description: "Full-text search over the tenant's actions, tasks, decisions, meeting notes and memory facts (as GET /v1/search; metered).",
            admin: false,
            writes: false,
            input: || schema::query_of("search", &[], &["q"]),
            output: || schema::of(oa::<SearchResults>),
            call: search_records,
        },
        Tool {
            name: "list_tasks",
            title: "List tasks",
            description: "The tenant's tasks by due date (undated last), then newest first (as GET /v1/tasks).",
            admin: false,
            writes: false,
            input: || schema::query_of("list_tasks", &[], &[]),
            output: || schema::of(oa::<TaskPage>),
            call: |s, c, args, _, a| {
                listing(s, c, args, a, TaskQuery::from_json, |b, c, q| {
                    b.list_tasks(c, q)
                })
            },
        },
        Tool {
            name: "list_actions",
            title: "List actions",
            description: "The tenant's actions, newest first; by default those awaiting review (as GET /v1/actions).",
            admin: false,
            writes: false,
            input: || schema::query_of("list_actions", &[], &[]),
            output: || schema::of(oa::<ActionPage>),
            call: |s, c, args, _, a| {
                listing(s, c, args, a, ActionQuery::from_json, |b, c, q| {
                    b.list_actions(c, q)
                })
            },
        },
        Tool {
            name: "list_memory_facts",
            title: "List memory facts",
            description: "The tenant's governed memory facts by category, then key; active ones by default (as GET /v1/memory/facts).",
            admin: false,
            writes: false,
            input: || schema::query_of("list_memory_facts", &[], &[]),
            output: || schema::of(oa::<MemoryFactPage>),
            call: |s, c, args, _, a| {
                listing(s, c, args, a, FactQuery::from_json, |b, c, q| {
                    b.list_memory_facts(c, q)
                })
            },
        },
        Tool {
            name: "create_task",
            title: "Create a task",
            description: "Create a task, optionally linked to a record with linked_entity_type + linked_entity_id (as POST /v1/tasks).",
            admin: false,
            writes: true,
            input: || schema::of(oa::<NewTask>),
            output: || schema::of(oa::<Task>),
            call: |_, c, args, key, a| {
                create(
                    c,
                    args,
                    key,
                    a,
                    "mcp:create_task",
                    NewTask::from_json,
                    |c, r| Op::with(c, r, tasks::create),
                )
            },
        },
        Tool {
            name: "complete_task",
            title: "Complete a task",
            description: "Mark a task done (its assignee or an admin; as POST /v1/tasks/{task_id}/complete).",
            admin: false,
            writes: true,
            input: || object(&[("task_id", string("The task's id"))], &["task_id"]),
            output: || schema::of(oa::<Task>),
            call: complete_task,
        },
        Tool {
            name: "propose_action",
            title: "Propose an action",
            description: "Propose an action for review in the Action Center (as POST /v1/actions).",
            admin: false,
            writes: true,
            input: || schema::of(oa::<NewAction>),
            output: || schema::of(oa::<Action>),
            call: |_, c, args, key, a| {
                create(
                    c,
                    args,
                    key,
                    a,
                    "mcp:propose_action",
                    NewAction::from_json,
                    |c, r| Op::with(c, r, actions::create),
                )
            },
        },
        Tool {
            name: "record_decision",
            title: "Record a decision",
            description: "Record a decision (admin; as POST /v1/decisions).",
            admin: true,
            writes: true,
            input: || schema::of(oa::<NewDecision>),
            output: || schema::of(oa::<Decision>),
            call: |_, c, args, key, a| {
                create(
                    c,
                    args,
                    key,
                    a,
                    "mcp:record_decision",
                    NewDecision::from_json,
                    |c, r| Op::with(c, r, decisions::create),
                )
            },
        },
        Tool {
            name: "add_memory_fact",
            title: "Add a memory fact",
            description: "Add an active fact to the governed memory (admin; as POST /v1/memory/facts).",
            admin: true,
            writes: true,
            input: || schema::of(oa::<NewFact>),
            output: || schema::of(oa::<MemoryFact>),
            call: |_, c, args, key, a| {
                create(
                    c,
                    args,
                    key,
                    a,
                    "mcp:add_memory_fact",
                    NewFact::from_json,
                    |c, r| Op::with(c, r, memory::create),
                )
            },
        },
        Tool {
            name: "supersede_memory_fact",
            title: "Supersede a memory fact",
            description: "Replace an active memory fact with a new version; answers the new version (admin; as POST /v1/memory/facts/{fact_id}/supersede).",
            admin: true,
            writes: true,
            input: || {
                let mut s = schema::of(oa::<FactValue>);
                if let Some(p) = s.get_mut("properties").and_then(Value::as_object_mut) {
                    p.insert("fact_id".into(), string("The active fact to replace"));
                }
                if let Some(Value::Array(r)) = s.get_mut("required") {
                    r.push(json!("fact_id"));
                } else if let Value::Object(m) = &mut s {
                    m.insert("required".into(), json!(["fact_id"]));
                }
                s
            },
            output: || schema::of(oa::<MemoryFact>),
            call: supersede_memory_fact,
        },
        Tool {
            name: "link_evidence",
            title: "Link evidence",
            description: "Link evidence (a URL or a note) to an action, task, decision or memory fact (as POST /v1/evidence).",
            admin: false,
            writes: true,
            input: || schema::of(oa::<NewEvidence>),
            output: || schema::of(oa::<EvidenceLink>),
            call: |_, c, args, key, a| {
                create(
                    c,
                    args,
                    key,
                    a,
                    "mcp:link_evidence",
                    NewEvidence::from_json,
                    |c, r| Op::with(c, r, evidence::create),
                )
            },
        },
        Tool {
            name: "get_latest_brief",
            title: "Latest brief",
            description: "The daily brief with the newest date (as GET /v1/briefs/latest).",
            admin: false,
            writes: false,
            input: || object(&[], &[]),
            output: || schema::of(oa::<Brief>),
            call: latest_brief,
        },
        Tool {
            name: "list_kpis",
            title: "List KPIs",
            description: "The tenant's KPIs, newest first (as GET /v1/kpis; the list is under `kpis`).",
            admin: false,
            writes: false,
            input: || schema::query_of("list_kpis", &[], &[]),
            output: || {
                let list = schema::of(list_of::<Kpi>);
                let mut out = object(&[("kpis", list.clone())], &["kpis"]);
                if let (Some(defs), Value::Object(m)) = (list.get("$defs"), &mut out) {
                    m.insert("$defs".into(), defs.clone());
                }
                out
            },
            call: list_kpis,
        },
        Tool {
            name: "get_kpi_series",
            title: "A KPI's window",
            description: "A KPI's points over a range, oldest first, downsampled on the server past max_points (as GET /v1/kpis/{kpi_id}/series).",
            admin: false,
            writes: false,
            input: || {
                schema::query_of("get_kpi_series", &[("kpi_id", "The KPI's id")], &["kpi_id"])
            },
            output: || schema::of(oa::<Series>),
            call: kpi_series,
        },
        Tool {
            name: "read_outbox",
            title: "Read the outbox",
            description: "The caller's notifications, newest first (as GET /v1/notifications/outbox).",
            admin: false,
            writes: false,
            input: || schema::query_of("list_notifications", &[], &[]),
            output: || schema::of(oa::<Outbox>),
            call: read_outbox,
        },
        Tool {
            name: "get_record",
            title: "Get a record",
            description: "A Core OS record (action, task, decision, meeting, memory_fact) with its evidence and newest timeline events (as GET /v1/records/{entity_type}/{entity_id}).",
            admin: false,
            writes: false,
            input: || {
                object(
                    &[
                        (
                            "entity_type",
                            string("action | task | decision | meeting | memory_fact"),
                        ),
                        ("entity_id", string("The record's id")),
                    ],
                    &["entity_type", "entity_id"],
                )
            },
            output: || schema::of(oa::<RecordView>),
            call: get_record,
        },
    ]
}

/// The listed form of every tool, made once (schemas do not change while the server runs).
fn described() -> &'static Vec<(bool, Value)> {
    static LISTED: OnceLock<Vec<(bool, Value)>> = OnceLock::new();
    LISTED.get_or_init(|| {
        tools()
            .iter()
            .map(|t| {
                let input = (t.input)();
                let input = if t.writes {
                    schema::with_idempotency_key(input)
                } else {
                    input
                };
                let listed = json!({
                    "name": t.name,
                    "title": t.title,
                    "description": t.description,
                    "inputSchema": input,
                    "outputSchema": (t.output)(),
                    // No tool deletes or overwrites (a superseded fact stays, as history), a
                    // write retried with its key changes nothing more, and no tool reaches
                    // outside the tenant's records.
                    "annotations": {
                        "readOnlyHint": !t.writes,
                        "destructiveHint": false,
                        "idempotentHint": true,
                        "openWorldHint": false,
                    },
                });
                (t.admin, listed)
            })
            .collect()
    })
}

/// `tools/list`: the caller's tools. A member sees none of the admin-only ones; the gateway's
/// tools (which only admins may invoke) are listed when the tenant's plan has `tools`.
pub fn list(s: &AppState, caller: &Principal, a: &Answer) -> Reply {
    let admin = caller.is_admin();
    let mut out: Vec<Value> = described()
        .iter()
        .filter(|(admin_only, _)| admin || !admin_only)
        .map(|(_, t)| t.clone())
        .collect();
    if admin && let Ok(registry) = s.bespin.tools(caller) {
        for t in registry {
            let input = schema::with_idempotency_key(t.input_schema);
            out.push(json!({
                "name": t.name,
                "description": format!("{} (a gateway tool: as POST /v1/tools/invoke; admin, metered and billed per call)", t.description),
                "inputSchema": input,
                "outputSchema": schema::of(oa::<Invocation>),
                "annotations": {"destructiveHint": false, "idempotentHint": true, "openWorldHint": false},
            }));
        }
    }
    let mut result = Map::new();
    result.insert("tools".into(), Value::Array(out));
    a.list(result, super::TTL_MS)
}

/// The static name of tool `name` (ours or the gateway's), `other` for anything else: a metric
/// label.
pub fn static_name(name: Option<&str>) -> &'static str {
    let Some(name) = name else { return "other" };
    tools()
        .iter()
        .map(|t| t.name)
        .find(|n| *n == name)
        .or_else(|| gateway::find(name).map(|t| t.name()))
        .unwrap_or("other")
}

/// `tools/call`: the named tool with `arguments`.
pub fn call(s: &AppState, caller: Principal, mut params: Map<String, Value>, a: Answer) -> Reply {
    let Some(Value::String(name)) = params.remove("name") else {
        return a.error(
            code::INVALID_PARAMS,
            "params.name must be a tool's name",
            None,
        );
    };
    let mut args = match params.remove("arguments") {
        None | Some(Value::Null) => Map::new(),
        Some(Value::Object(m)) => m,
        Some(_) => {
            return a.error(
                code::INVALID_PARAMS,
                "params.arguments must be an object",
                None,
            );
        }
    };
    let own = tools().iter().find(|t| t.name == name);
    let gateway_tool = own.is_none() && gateway::find(&name).is_some();
    let Some(writes) = own.map(|t| t.writes).or(gateway_tool.then_some(true)) else {
        return a.error(code::INVALID_PARAMS, &format!("Unknown tool: {name}"), None);
    };
    let key = match args.remove("idempotency_key") {
        Some(Value::String(k)) => k,
        None | Some(Value::Null) if !writes => String::new(),
        other => {
            let msg = if other.is_none() {
                "Field required"
            } else {
                "Input should be a valid string"
            };
            let kind = if other.is_none() {
                "missing"
            } else {
                "string_type"
            };
            let e = Error::field(FieldError::new(
                kind,
                vec![LocPart::Field("idempotency_key".into())],
                msg,
                other.unwrap_or(Value::Null),
            ));
            return a.tool_error(ApiError::arguments(e));
        }
    };
    // Its refusals are audited under `mcp.<tool>` with its key (`Answer::tool_error`).
    let a = Answer {
        tool: Some(std::sync::Arc::new(ToolCall {
            action: format!("mcp.{name}"),
            idempotency_key: key.clone(),
        })),
        ..a
    };
    let outcome = match own {
        Some(t) => (t.call)(s, caller, args, key, a.clone()),
        None => invoke_gateway(&name, caller, args, key, a.clone()),
    };
    outcome.unwrap_or_else(|e| a.tool_error(e))
}

/// A gateway tool, as `POST /v1/tools/invoke` with `Idempotency-Key: key`.
fn invoke_gateway(
    name: &str,
    caller: Principal,
    args: Map<String, Value>,
    key: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let req = InvokeRequest::from_json(&json!({"tool_name": name, "payload": args}))
        .map_err(ApiError::arguments)?;
    Ok(Reply::write_settled(
        Op::on_with(caller, key, req, gateway::invoke),
        move |done| settle_stored(done, &a),
    ))
}

/// Answers a settled idempotent operation.
fn settle_stored<T>(done: bespin_core::Result<Stored<T>>, a: &Answer) -> Reply {
    match done {
        Ok(stored) => a.tool_stored(stored.json()),
        Err(e) => a.tool_error(ApiError::arguments(e)),
    }
}

/// A write tool without REST idempotency: `op` at most once per `key` ([`Op::once`]), its
/// scope named after the tool and fingerprinting the arguments.
fn once<T: Serialize + Send + 'static>(
    endpoint: &'static str,
    caller_tenant: &str,
    key: String,
    args: &Map<String, Value>,
    op: Op<T>,
    a: Answer,
) -> Reply {
    let scope = Idempotency::new(endpoint, key, &Value::Object(args.clone()));
    Reply::write_settled(op.once(caller_tenant.to_owned(), scope), move |done| {
        settle_stored(done, &a)
    })
}

/// A tool that creates a record from its arguments as the REST route does from its body:
/// `parse` is the route's parser, `op` its core operation, run at most once per key.
fn create<R, T: Serialize + Send + 'static>(
    caller: Principal,
    args: Map<String, Value>,
    key: String,
    a: Answer,
    endpoint: &'static str,
    parse: fn(&Value) -> bespin_core::Result<R>,
    op: fn(Principal, R) -> Op<T>,
) -> Result<Reply, ApiError> {
    let req = parse(&Value::Object(args.clone())).map_err(ApiError::arguments)?;
    let t = caller.tenant_id().to_owned();
    Ok(once(endpoint, &t, key, &args, op(caller, req), a))
}

fn search_records(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let q = SearchQuery::from_json(&super::as_query(&args)).map_err(ApiError::arguments)?;
    let refused = a.clone();
    search_routes::run(
        s,
        caller,
        q,
        move |found| a.tool_ok(&found),
        move |e| refused.tool_error(e),
    )
}

/// A tool that lists records as its REST `GET` does: `parse` is the route's query parser (the
/// arguments read as a query string), `read` its read.
fn listing<Q, T: Serialize>(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    a: Answer,
    parse: fn(&Value) -> bespin_core::Result<Q>,
    read: fn(&bespin_core::Bespin, &Principal, &Q) -> bespin_core::Result<T>,
) -> Result<Reply, ApiError> {
    let q = parse(&super::as_query(&args)).map_err(ApiError::arguments)?;
    Ok(a.tool_ok(&read(&s.bespin, &caller, &q)?))
}

fn complete_task(
    _: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    key: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let id = required_string(&args, "task_id")?;
    let t = caller.tenant_id().to_owned();
    Ok(once(
        "mcp:complete_task",
        &t,
        key,
        &args,
        Op::on(caller, id, tasks::complete),
        a,
    ))
}

fn supersede_memory_fact(
    _: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    key: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let id = required_string(&args, "fact_id")?;
    let mut rest = args.clone();
    rest.remove("fact_id");
    let req = FactValue::supersede_from_json(&Value::Object(rest)).map_err(ApiError::arguments)?;
    let t = caller.tenant_id().to_owned();
    let op = Op::on_with(caller, id, req, memory::supersede);
    Ok(once("mcp:supersede_memory_fact", &t, key, &args, op, a))
}

fn latest_brief(
    s: &AppState,
    caller: Principal,
    _: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    Ok(a.tool_ok(&s.bespin.latest_brief(&caller)?))
}

fn list_kpis(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let q = super::as_query(&args);
    let get = |n: &str| q.get(n).and_then(Value::as_str);
    let page = KpiPage::from_query(get("limit"), get("offset")).map_err(ApiError::arguments)?;
    let kpis = s.bespin.list_kpis(&caller, page)?;
    Ok(a.tool_ok(&json!({ "kpis": kpis })))
}

fn kpi_series(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let id = required_string(&args, "kpi_id")?;
    let q = super::as_query(&args);
    let query = SeriesQuery::from_query(|n| q.get(n).and_then(Value::as_str))
        .map_err(ApiError::arguments)?;
    let refused = a.clone();
    let render = move |found: Series| a.tool_ok(&found);
    kpi_routes::series_reply(s, &caller, &id, query, render, move |e| {
        refused.tool_error(e)
    })
}

fn read_outbox(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let q = super::as_query(&args);
    let get = |n: &str| q.get(n).and_then(Value::as_str).filter(|v| !v.is_empty());
    let limit = bespin_core::validate::query_ints(get, &["limit"]).map_err(ApiError::arguments)?[0];
    let date =
        match get("date") {
            Some(d) => Some(Date::parse(d).ok_or_else(|| {
                ApiError::arguments(bespin_core::limits::invalid_date(d, &["date"]))
            })?),
            None => None,
        };
    let status = get("status").map(str::to_owned);
    let outbox = s.bespin.outbox(
        &caller,
        &OutboxQuery {
            date,
            status,
            limit,
        },
    )?;
    Ok(a.tool_ok(&outbox))
}

fn get_record(
    s: &AppState,
    caller: Principal,
    args: Map<String, Value>,
    _: String,
    a: Answer,
) -> Result<Reply, ApiError> {
    let et = required_string(&args, "entity_type")?;
    let id = required_string(&args, "entity_id")?;
    Ok(a.tool_ok(&s.bespin.record(&caller, &et, &id)?))
}

/// A required string argument (422 at `["arguments", name]` otherwise).
fn required_string(args: &Map<String, Value>, name: &str) -> Result<String, ApiError> {
    match args.get(name) {
        Some(Value::String(v)) if !v.trim().is_empty() => Ok(v.clone()),
        other => {
            let (kind, msg) = match other {
                None | Some(Value::Null) => ("missing", "Field required"),
                _ => ("string_type", "Input should be a non-empty string"),
            };
            Err(ApiError::arguments(Error::field(FieldError::new(
                kind,
                vec![LocPart::Field(name.to_owned())],
                msg,
                other.cloned().unwrap_or(Value::Null),
            ))))
        }
    }
}
