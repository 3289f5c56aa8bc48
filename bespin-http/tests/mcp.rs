//! `/mcp` through real HTTP, cell by cell: the revisions (2026-07-28 stateless with
//! `server/discover`; 2025-06-18 and 2025-11-25 with `initialize` and `Mcp-Session-Id`) and
//! their headers and error codes, sessions that survive a restart and work on a second
//! server, the `Origin` check, roles in `tools/list`, idempotent tool calls, and the metering
//! and audit of a tool call equal to its REST call, and 2026-07-28's `subscriptions/listen`
//! stream of resource and tool-list changes. (Tenant isolation through MCP is in
//! reliability.rs's matrix; the official Python SDK is driven by scripts/mcp-clients.sh.)
#![allow(clippy::unwrap_used)]

use bespin_core::Bespin;
use bespin_http::testing::{Sse, TestResponse, TestServer, TestTenant, test_config};
use serde_json::{Value, json};

const ADMIN_KEY: (&str, &str) = ("X-Platform-Admin-Key", "test-admin-key");

const MODERN: &str = "2026-07-28";

/// A refusal cell: the routing headers, the body, the JSON-RPC error code expected.
type Cell<'a> = (&'a [(&'a str, &'a str)], Value, i64);

fn rpc(method: &str, params: Value) -> Value {
    json!({"jsonrpc": "2.0", "id": 7, "method": method, "params": params})
}

fn with<'a>(base: &[(&'a str, &'a str)], more: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut h = base.to_vec();
    h.extend_from_slice(more);
    h
}

/// `initialize` at `version`: the answer and its session id.
fn initialize(s: &TestServer, h: &[(&str, &str)], version: &str) -> (TestResponse, String) {
    let body = rpc(
        "initialize",
        json!({"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}),
    );
    let r = s.call("POST", "/mcp", h, Some(&body));
    let id = r.header("mcp-session-id").unwrap_or_default().to_owned();
    (r, id)
}

/// A request in the session `sid`.
fn in_session(
    s: &TestServer,
    h: &[(&str, &str)],
    sid: &str,
    method: &str,
    params: Value,
) -> TestResponse {
    s.call(
        "POST",
        "/mcp",
        &with(h, &[("Mcp-Session-Id", sid)]),
        Some(&rpc(method, params)),
    )
}

fn tool_names(r: &TestResponse) -> Vec<String> {
    r.json()["result"]["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn handshake_revisions_negotiate_and_keep_their_sessions() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    for (asked, got) in [
        ("2025-06-18", "2025-06-18"),
        ("2025-11-25", "2025-11-25"),
        ("2024-11-05", "2025-11-25"),
        ("1.0", "2025-11-25"),
    ] {
        let (r, sid) = initialize(&s, &h, asked);
        assert_eq!(r.status, 200, "{}", r.body);
        let v = r.json();
        assert_eq!(v["result"]["protocolVersion"], got, "{asked}");
        assert!(
            v["result"].get("resultType").is_none(),
            "no resultType before 2026-07-28"
        );
        assert_eq!(v["result"]["capabilities"]["resources"]["subscribe"], false);
        assert!(!sid.is_empty() && sid.bytes().all(|b| (0x21..=0x7e).contains(&b)));
        let listed = in_session(&s, &h, &sid, "tools/list", json!({}));
        assert_eq!(listed.status, 200, "{}", listed.body);
        assert!(listed.json()["result"].get("ttlMs").is_none());
        assert!(tool_names(&listed).contains(&"kpi_summary".to_owned()));
        // The header, when sent, must name the session's revision.
        let other = if got == "2025-06-18" {
            "2025-11-25"
        } else {
            "2025-06-18"
        };
        let r = s.call(
            "POST",
            "/mcp",
            &with(
                &h,
                &[("Mcp-Session-Id", &sid), ("MCP-Protocol-Version", other)],
            ),
            Some(&rpc("ping", json!({}))),
        );
        assert_eq!(r.status, 400, "{}", r.body);
    }
    let (_, sid) = initialize(&s, &h, "2025-11-25");
    // A notification is acknowledged; a request without a session is 400, with a forged or
    // another caller's session 404 (the client initializes again).
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    let r = s.call(
        "POST",
        "/mcp",
        &with(&h, &[("Mcp-Session-Id", &sid)]),
        Some(&note),
    );
    assert_eq!((r.status, r.body.as_str()), (202, ""));
    let r = s.call("POST", "/mcp", &h, Some(&rpc("tools/list", json!({}))));
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], -32600);
    let forged = format!("{}x", &sid[..sid.len() - 1]);
    assert_eq!(in_session(&s, &h, &forged, "ping", json!({})).status, 404);
    assert_eq!(
        in_session(&s, &h, "not-a-session", "ping", json!({})).status,
        404
    );
    let b = s.create_tenant("beta", "b@beta.example");
    assert_eq!(
        in_session(&s, &b.admin_headers(), &sid, "ping", json!({})).status,
        404
    );
    let member = s.add_user(&a, "m@alpha.example", "member");
    assert_eq!(
        in_session(&s, &a.headers(&member), &sid, "ping", json!({})).status,
        404
    );
    // server/discover belongs to 2026-07-28 and is held to its rules, session or not: without
    // the `_meta` envelope it is 400 -32602.
    let r = in_session(&s, &h, &sid, "server/discover", json!({}));
    assert_eq!(
        (r.status, &r.json()["error"]["code"]),
        (400, &json!(-32602)),
        "{}",
        r.body
    );
    // An unknown version in the header is told the supported ones.
    let r = s.call(
        "POST",
        "/mcp",
        &with(
            &h,
            &[
                ("Mcp-Session-Id", &sid),
                ("MCP-Protocol-Version", "1999-01-01"),
            ],
        ),
        Some(&rpc("ping", json!({}))),
    );
    assert_eq!(r.status, 400);
    assert_eq!(r.json()["error"]["code"], -32022);
    assert_eq!(
        r.json()["error"]["data"]["supported"],
        json!(["2025-06-18", "2025-11-25", MODERN])
    );
    // No server-initiated stream, no early end of a session: 405 with Allow.
    for m in ["GET", "DELETE"] {
        let r = s.call(m, "/mcp", &with(&h, &[("Mcp-Session-Id", &sid)]), None);
        assert_eq!((r.status, r.header("allow")), (405, Some("POST")), "{m}");
    }
}

#[test]
fn sessions_survive_a_restart_and_work_on_a_second_server() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("mcp.redb");
    let db = Bespin::open(&path).unwrap();
    let s1 = TestServer::start_with(db.clone(), test_config());
    let s2 = TestServer::start_with(db.clone(), test_config());
    let a: TestTenant = s1.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let (_, sid) = initialize(&s1, &h, "2025-06-18");
    // Another server sharing the database accepts it: no sticky routing.
    let r = in_session(&s2, &h, &sid, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    drop((s1, s2, db));
    let db = Bespin::open(&path).unwrap();
    let s3 = TestServer::start_with(db, test_config());
    let r = in_session(
        &s3,
        &h,
        &sid,
        "tools/call",
        json!({"name": "create_task", "arguments": {"title": "after restart", "idempotency_key": "k"}}),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(
        r.json()["result"]["structuredContent"]["title"],
        "after restart",
        "{}",
        r.body
    );
}

#[test]
fn the_stateless_revision_checks_its_envelope_and_headers() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let r = s.mcp(&h, "server/discover", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json()["result"].clone();
    assert_eq!(
        v["supportedVersions"],
        json!(["2025-06-18", "2025-11-25", MODERN])
    );
    assert_eq!(
        (&v["resultType"], &v["cacheScope"]),
        (&json!("complete"), &json!("private"))
    );
    assert!(v["ttlMs"].as_u64().is_some());
    assert_eq!(
        v["_meta"]["io.modelcontextprotocol/serverInfo"]["name"],
        "bespin"
    );
    assert!(
        r.header("mcp-session-id").is_none(),
        "no sessions in 2026-07-28"
    );
    let r = s.mcp(&h, "tools/list", json!({}));
    let v = r.json()["result"].clone();
    assert_eq!(
        (&v["resultType"], &v["cacheScope"]),
        (&json!("complete"), &json!("private"))
    );
    assert!(v["ttlMs"].as_u64().is_some());
    for t in v["tools"].as_array().unwrap() {
        assert_eq!(t["inputSchema"]["type"], "object", "{t}");
        assert_eq!(t["outputSchema"]["type"], "object", "{t}");
        let writes = t["annotations"]["readOnlyHint"] != true;
        let key = &t["inputSchema"]["properties"]["idempotency_key"];
        assert_eq!(key.is_object(), writes, "{t}");
        if writes {
            let d = key["description"].as_str().unwrap();
            assert!(
                d.contains("SAME key") && !d.to_lowercase().contains("unique"),
                "{d}"
            );
        }
    }
    let unknown = s.mcp(&h, "sampling/whatever", json!({}));
    assert_eq!(
        (unknown.status, &unknown.json()["error"]["code"]),
        (404, &json!(-32601))
    );

    let post = |headers: &[(&str, &str)], body: Value| {
        s.call("POST", "/mcp", &with(&h, headers), Some(&body))
    };
    let meta = json!({"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}});
    let call = |name: &str| {
        rpc(
            "tools/call",
            json!({"name": name, "arguments": {}, "_meta": meta}),
        )
    };
    let hdrs = [
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "list_tasks"),
    ];
    assert_eq!(post(&hdrs, call("list_tasks")).status, 200);
    // Mcp-Name may come base64-wrapped.
    let wrapped = [
        ("MCP-Protocol-Version", MODERN),
        ("Mcp-Method", "tools/call"),
        ("Mcp-Name", "=?base64?bGlzdF90YXNrcw==?="),
    ];
    assert_eq!(post(&wrapped, call("list_tasks")).status, 200);
    let cells: [Cell; 7] = [
        // No _meta envelope.
        (
            &hdrs,
            rpc("tools/call", json!({"name": "list_tasks"})),
            -32602,
        ),
        // The header's version differs from the envelope's.
        (
            &[
                ("MCP-Protocol-Version", "2025-11-25"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "list_tasks"),
            ],
            call("list_tasks"),
            -32020,
        ),
        // Mcp-Method or Mcp-Name disagree with the body, or are missing.
        (
            &[
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "tools/list"),
                ("Mcp-Name", "list_tasks"),
            ],
            call("list_tasks"),
            -32020,
        ),
        (
            &[
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "create_task"),
            ],
            call("list_tasks"),
            -32020,
        ),
        (
            &[
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "tools/call"),
            ],
            call("list_tasks"),
            -32020,
        ),
        // A routing header sent twice.
        (
            &[
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "list_tasks"),
            ],
            call("list_tasks"),
            -32020,
        ),
        // An unknown tool.
        (
            &[
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "tools/call"),
                ("Mcp-Name", "nope"),
            ],
            call("nope"),
            -32602,
        ),
    ];
    for (i, (headers, body, code)) in cells.into_iter().enumerate() {
        let r = post(headers, body);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_i64()),
            (400, Some(code)),
            "cell {i}: {}",
            r.body
        );
    }
    // A version this server does not speak: -32022 with the supported ones.
    let future = json!({"io.modelcontextprotocol/protocolVersion": "2027-01-01", "io.modelcontextprotocol/clientCapabilities": {}});
    let r = post(
        &[
            ("MCP-Protocol-Version", "2027-01-01"),
            ("Mcp-Method", "ping"),
        ],
        rpc("ping", json!({"_meta": future})),
    );
    assert_eq!(r.status, 400, "{}", r.body);
    assert_eq!(r.json()["error"]["code"], -32022);
    assert_eq!(
        r.json()["error"]["data"],
        json!({"supported": ["2025-06-18", "2025-11-25", MODERN], "requested": "2027-01-01"})
    );
    // Malformed bodies: not JSON, a batch, no jsonrpc.
    for (body, code) in [
        (&b"{"[..], -32700),
        (b"[]", -32600),
        (b"{\"id\":1,\"method\":\"ping\"}", -32600),
    ] {
        let r = s.raw("POST", "/mcp", &h, body);
        assert_eq!(
            (r.status, r.json()["error"]["code"].as_i64()),
            (400, Some(code)),
            "{}",
            r.body
        );
    }
    // A client that takes only text/event-stream gets one event.
    let r = s.call(
        "POST",
        "/mcp",
        &with(
            &h,
            &[
                ("Accept", "text/event-stream"),
                ("MCP-Protocol-Version", MODERN),
                ("Mcp-Method", "ping"),
            ],
        ),
        Some(&rpc("ping", json!({"_meta": meta}))),
    );
    assert_eq!(r.header("content-type"), Some("text/event-stream"));
    assert!(
        r.body.starts_with("event: message\ndata: {") && r.body.ends_with("\n\n"),
        "{}",
        r.body
    );
}

#[test]
fn origin_and_credentials_are_checked_before_anything_else() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let evil = s.mcp(
        &with(&h, &[("Origin", "http://evil.example")]),
        "ping",
        json!({}),
    );
    assert_eq!(evil.status, 403, "{}", evil.body);
    let local = s.mcp(
        &with(&h, &[("Origin", "http://localhost:3000")]),
        "ping",
        json!({}),
    );
    assert_eq!(local.status, 200, "{}", local.body);
    // Without credentials, or with a wrong key: the REST answer of every tenant route.
    let none = s.mcp(&[], "ping", json!({}));
    assert_eq!(none.status, s.call("GET", "/v1/tasks", &[], None).status);
    let wrong = [
        ("X-Tenant-ID", a.id.as_str()),
        ("X-User-ID", a.admin.as_str()),
        ("X-API-Key", "bsk_wrong"),
    ];
    assert_eq!(s.mcp(&wrong, "ping", json!({})).status, 401);
}

#[test]
fn members_see_no_admin_tools_and_refusals_are_tool_errors() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let member = s.add_user(&a, "m@alpha.example", "member");
    let mh = a.headers(&member);
    let names = tool_names(&s.mcp(&mh, "tools/list", json!({})));
    for hidden in [
        "record_decision",
        "add_memory_fact",
        "supersede_memory_fact",
        "kpi_summary",
        "echo",
    ] {
        assert!(
            !names.contains(&hidden.to_owned()),
            "{hidden} shown to a member"
        );
    }
    assert!(names.contains(&"create_task".to_owned()));
    // Hidden is also refused, with the REST operation's 403.
    let r = s.mcp_tool(&mh, "record_decision", json!({"decision_date": "2026-01-02", "title": "t", "decision": "d", "idempotency_key": "k"}));
    assert_eq!(
        (&r["isError"], &r["structuredContent"]["status"]),
        (&json!(true), &json!(403)),
        "{r}"
    );
    let rest = s.call(
        "POST",
        "/v1/decisions",
        &mh,
        Some(&json!({"decision_date": "2026-01-02", "title": "t", "decision": "d"})),
    );
    assert_eq!(r["structuredContent"]["detail"], rest.json()["detail"]);
    // A write without its idempotency_key, and invalid arguments: tool errors at `arguments`.
    let r = s.mcp_tool(&mh, "create_task", json!({"title": "t"}));
    assert_eq!(
        r["structuredContent"]["detail"][0]["loc"],
        json!(["arguments", "idempotency_key"]),
        "{r}"
    );
    let r = s.mcp_tool(&mh, "create_task", json!({"idempotency_key": "k"}));
    assert_eq!(r["structuredContent"]["status"], 422, "{r}");
    assert_eq!(
        r["structuredContent"]["detail"][0]["loc"],
        json!(["arguments", "title"]),
        "{r}"
    );
}

#[test]
fn a_write_tool_runs_once_per_idempotency_key() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let args = json!({"title": "Call Bob", "idempotency_key": "retry-me"});
    let first = s.mcp_tool(&h, "create_task", args.clone());
    let again = s.mcp_tool(&h, "create_task", args);
    assert_eq!(first["structuredContent"], again["structuredContent"]);
    let other = s.mcp_tool(
        &h,
        "create_task",
        json!({"title": "Call Ann", "idempotency_key": "retry-me"}),
    );
    assert_eq!(other["structuredContent"]["status"], 409, "{other}");
    let tasks = s.call("GET", "/v1/tasks", &h, None).json();
    assert_eq!(tasks["items"].as_array().unwrap().len(), 1, "{tasks}");
    // Operators see which tools are called; names a client makes up are `other`.
    s.mcp(
        &h,
        "tools/call",
        json!({"name": "made-up", "arguments": {}}),
    );
    s.mcp(&h, "made/up", json!({}));
    let metrics = s.call("GET", "/metrics", &[], None).body;
    for line in [
        r#"bespin_mcp_requests_total{method="tools/call",tool="create_task"} 3"#,
        r#"bespin_mcp_requests_total{method="tools/call",tool="other"} 1"#,
        r#"bespin_mcp_requests_total{method="other",tool="-"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} not in {metrics}");
    }
    assert!(s.bespin.check().unwrap().is_ok());
}

/// The usage, credits and audit rows of one `kpi_summary` call, over REST and over MCP.
#[test]
fn a_tool_call_costs_and_audits_exactly_what_its_rest_call_does() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let kpi = s
        .call("POST", "/v1/kpis", &h, Some(&json!({"name": "MRR"})))
        .json()["kpi_id"]
        .clone();
    s.call("POST", &format!("/v1/kpis/{}/points:bulk", kpi.as_str().unwrap()), &h,
        Some(&json!({"points": [{"ts": "2026-11-01T00:00:00Z", "value": 1.0}, {"ts": "2026-11-02T00:00:00Z", "value": 2.0}]})));
    // The KPI's window as a tool and as a resource: the REST series' answer.
    let series = s
        .call(
            "GET",
            &format!("/v1/kpis/{}/series", kpi.as_str().unwrap()),
            &h,
            None,
        )
        .json();
    let tool = s.mcp_tool(&h, "get_kpi_series", json!({"kpi_id": kpi}));
    assert_eq!(tool["structuredContent"], series, "{tool}");
    let uri = format!("bespin://kpis/{}", kpi.as_str().unwrap());
    let read = s.mcp(&h, "resources/read", json!({"uri": uri})).json();
    let text = read["result"]["contents"][0]["text"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&text).unwrap()["points"],
        series["points"],
        "{read}"
    );
    let payload = json!({"kpi_id": kpi});
    let ledger = |h: &[(&str, &str)]| {
        s.call("GET", "/v1/billing/ledger", h, None).json()["items"]
            .as_array()
            .unwrap()
            .clone()
    };
    let usage = |h: &[(&str, &str)]| {
        s.call("GET", "/v1/billing/usage", h, None).json()["credits"]["used"].clone()
    };
    let caller = s
        .bespin
        .authenticate(&bespin_core::Credentials::new(
            Some(&a.id),
            Some(&a.admin),
            Some(&a.key),
        ))
        .unwrap();
    let audits = || s.bespin.audit_log(&caller, 1000).unwrap();
    let (l0, u0, a0) = (ledger(&h).len(), usage(&h), audits().len());
    let rest = s.call(
        "POST",
        "/v1/tools/invoke",
        &with(&h, &[("Idempotency-Key", "rest-1")]),
        Some(&json!({"tool_name": "kpi_summary", "payload": payload})),
    );
    assert_eq!(rest.status, 200, "{}", rest.body);
    let (l1, u1, a1) = (ledger(&h), usage(&h), audits());
    let mut args = payload.clone();
    args["idempotency_key"] = json!("mcp-1");
    let mcp = s.mcp_tool(&h, "kpi_summary", args.clone());
    assert_eq!(mcp["isError"], false, "{mcp}");
    assert_eq!(mcp["structuredContent"]["result"], rest.json()["result"]);
    // A retry of the MCP call is its first answer and costs nothing.
    assert_eq!(
        s.mcp_tool(&h, "kpi_summary", args)["structuredContent"],
        mcp["structuredContent"]
    );
    let (l2, u2, a2) = (ledger(&h), usage(&h), audits());
    assert_eq!(
        (l1.len() - l0, l2.len() - l1.len()),
        (1, 1),
        "one usage event each"
    );
    let strip = |v: &Value| json!({"event_key": v["event_key"], "credits": v["credits"], "raw_units": v["raw_units"], "tool_name": v["tool_name"]});
    assert_eq!(
        strip(&l2[0]),
        strip(&l1[0]),
        "the same event, units and credits"
    );
    // Credits are exact decimals in JSON; their difference is compared in micro-credits.
    let spent =
        |x: &Value, y: &Value| ((x.as_f64().unwrap() - y.as_f64().unwrap()) * 1e6).round() as i64;
    assert_eq!(spent(&u1, &u0), spent(&u2, &u1), "the same credits");
    assert_eq!(
        (a1.len() - a0, a2.len() - a1.len()),
        (1, 1),
        "one audit row each"
    );
    assert_eq!(
        (&a2[0].action, &a2[0].tool_name),
        (&a1[0].action, &a1[0].tool_name)
    );
    // A 429 of the REST call is a tool error with the same fields.
    s.call(
        "PUT",
        "/v1/limits",
        &h,
        Some(
            &json!({"assistant_query_daily_limit": 100, "tool_invocation_daily_limit": 2,
        "daily_brief_generated_daily_limit": 10, "notification_enqueued_daily_limit": 10}),
        ),
    );
    let rest = s.call(
        "POST",
        "/v1/tools/invoke",
        &with(&h, &[("Idempotency-Key", "rest-2")]),
        Some(&json!({"tool_name": "echo", "payload": {}})),
    );
    assert_eq!(rest.status, 429, "{}", rest.body);
    let r = s.mcp_tool(&h, "echo", json!({"idempotency_key": "mcp-2"}));
    assert_eq!(r["isError"], true);
    let mut expected = rest.json();
    expected["status"] = json!(429);
    assert_eq!(r["structuredContent"], expected, "{r}");
    assert!(s.bespin.check().unwrap().is_ok());
}

/// A tool call can write as much searchable text as `POST /v1/tasks`, so `/mcp` is paced as
/// that route is (a large body waits for its tenant's pace).
#[test]
fn mcp_is_paced_like_the_routes_that_write_searchable_text() {
    let s = TestServer::start(test_config());
    let state = bespin_http::AppState::new(s.bespin.clone(), test_config());
    let paced = |path: &str, method: &str| {
        state
            .routes()
            .iter()
            .find(|r| r.path == path && r.method.as_str() == method)
            .map(|r| r.paced)
    };
    assert_eq!(paced("/v1/tasks", "POST"), Some(true));
    assert_eq!(paced("/mcp", "POST"), Some(true));
}

/// Opens a 2026-07-28 `subscriptions/listen` stream with request id `id` asking for `filter`.
fn listen(s: &TestServer, h: &[(&str, &str)], id: &str, filter: Value) -> Sse {
    let body = json!({"jsonrpc": "2.0", "id": id, "method": "subscriptions/listen", "params": {
        "notifications": filter,
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}},
    }});
    let headers = with(
        h,
        &[
            ("Accept", "application/json, text/event-stream"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
    );
    Sse::request(s, "POST", "/mcp", &headers, Some(&body))
}

fn created(r: TestResponse, id: &str) -> String {
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()[id].as_str().unwrap().to_owned()
}

#[test]
fn listen_streams_the_changes_of_subscribed_resources_only() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let b = s.create_tenant("beta", "b@beta.example");
    let h = a.admin_headers();
    let task = |title: &str| {
        created(
            s.call("POST", "/v1/tasks", &h, Some(&json!({"title": title}))),
            "task_id",
        )
    };
    let (followed, other) = (task("followed"), task("other"));
    let kpi = created(
        s.call("POST", "/v1/kpis", &h, Some(&json!({"name": "MRR"}))),
        "kpi_id",
    );
    let uri = format!("bespin://task/{followed}");
    let kpi_uri = format!("bespin://kpis/{kpi}");
    let mut sse = listen(
        &s,
        &h,
        "listen-1",
        json!({
            "resourceSubscriptions": [uri, "bespin://nonsense/x", kpi_uri],
            "toolsListChanged": true,
            "promptsListChanged": true,
        }),
    );
    sse.until("notifications/subscriptions/acknowledged", 1);
    let head = sse.buf.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("content-type: text/event-stream"), "{head}");
    let ack = frames(&sse)[0].clone();
    let mut uris = vec![uri.clone(), kpi_uri.clone()];
    uris.sort();
    assert_eq!(
        ack["params"]["notifications"],
        json!({"toolsListChanged": true, "resourceSubscriptions": uris}),
        "what can never fire is not acknowledged"
    );
    assert_eq!(
        ack["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
    // A second tenant following the same URI hears nothing of the first tenant's record.
    let mut stranger = listen(
        &s,
        &b.admin_headers(),
        "x",
        json!({"resourceSubscriptions": [uri]}),
    );
    stranger.until("notifications/subscriptions/acknowledged", 1);

    // A change of another task says nothing; the followed task's edit and its new evidence
    // each say it changed; points of the KPI say it changed.
    let r = s.call("POST", &format!("/v1/tasks/{other}/complete"), &h, None);
    assert_eq!(r.status, 200, "{}", r.body);
    let r = s.call(
        "PATCH",
        &format!("/v1/tasks/{followed}"),
        &h,
        Some(&json!({"title": "renamed"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    sse.until("notifications/resources/updated", 1);
    let ev = json!({"entity_type": "task", "entity_id": followed, "source_type": "manual", "source_ref": {"note": "x"}});
    assert_eq!(s.call("POST", "/v1/evidence", &h, Some(&ev)).status, 201);
    sse.until("notifications/resources/updated", 2);
    let points = json!({"points": [{"ts": "2026-01-01T00:00:00Z", "value": 1}]});
    let r = s.call(
        "POST",
        &format!("/v1/kpis/{kpi}/points:bulk"),
        &h,
        Some(&points),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    sse.until("notifications/resources/updated", 3);
    let updated: Vec<Value> = frames(&sse)
        .into_iter()
        .filter(|f| f["method"] == "notifications/resources/updated")
        .collect();
    let got: Vec<&str> = updated
        .iter()
        .map(|f| f["params"]["uri"].as_str().unwrap())
        .collect();
    assert_eq!(
        got,
        [uri.as_str(), uri.as_str(), kpi_uri.as_str()],
        "{}",
        sse.buf
    );
    assert!(
        updated
            .iter()
            .all(|f| f["params"]["_meta"]["io.modelcontextprotocol/subscriptionId"] == "listen-1")
    );

    stranger.drain_for(std::time::Duration::from_millis(300));
    assert!(
        !stranger.buf.contains("notifications/resources/updated"),
        "{}",
        stranger.buf
    );

    // The plan decides the tool list: a subscription change announces it.
    let r = s.call(
        "PUT",
        &format!("/v1/admin/tenants/{}/subscription", a.id),
        &[ADMIN_KEY],
        Some(&json!({"plan_id": "starter", "status": "active"})),
    );
    assert!(r.status < 300, "{} {}", r.status, r.body);
    sse.until("notifications/tools/list_changed", 1);

    // The server's stop ends the stream gracefully: the listen request's result comes last.
    drop(s);
    assert!(sse.until("never sent", 1), "the stream ended");
    let last = frames(&sse).pop().unwrap();
    assert_eq!(last["id"], "listen-1");
    assert_eq!(last["result"]["resultType"], "complete");
    assert_eq!(
        last["result"]["_meta"]["io.modelcontextprotocol/subscriptionId"],
        "listen-1"
    );
}

#[test]
fn listen_is_refused_clearly() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    // The answer is a stream: a client that takes only JSON gets 406.
    let body = json!({"jsonrpc": "2.0", "id": 1, "method": "subscriptions/listen", "params": {
        "notifications": {},
        "_meta": {"io.modelcontextprotocol/protocolVersion": MODERN, "io.modelcontextprotocol/clientCapabilities": {}},
    }});
    let json_only = with(
        &h,
        &[
            ("Accept", "application/json"),
            ("MCP-Protocol-Version", MODERN),
            ("Mcp-Method", "subscriptions/listen"),
        ],
    );
    let r = s.call("POST", "/mcp", &json_only, Some(&body));
    assert_eq!(r.status, 406, "{}", r.body);
    let malformed = [
        json!(null),
        json!({"resourceSubscriptions": "bespin://task/x"}),
        json!({"resourceSubscriptions": [7]}),
        json!({"resourceSubscriptions": vec!["bespin://task/x"; 101]}),
    ];
    for filter in malformed {
        let mut sse = listen(&s, &h, "l", filter.clone());
        sse.until("\r\n\r\n", 1);
        sse.drain_for(std::time::Duration::from_millis(100));
        assert!(sse.buf.starts_with("HTTP/1.1 400"), "{filter}: {}", sse.buf);
        assert!(sse.buf.contains("-32602"), "{filter}: {}", sse.buf);
    }
    // The handshake revisions have no listen (nor resources/subscribe): unknown methods.
    let (_, sid) = initialize(&s, &h, "2025-11-25");
    for method in ["subscriptions/listen", "resources/subscribe"] {
        let r = in_session(
            &s,
            &h,
            &sid,
            method,
            json!({"uri": "bespin://briefs/latest"}),
        );
        assert_eq!(r.json()["error"]["code"], -32601, "{method}: {}", r.body);
    }
    let (init, _) = initialize(&s, &h, "2025-11-25");
    assert_eq!(
        init.json()["result"]["capabilities"]["resources"]["subscribe"],
        false
    );
    let discover = s.mcp(&h, "server/discover", json!({}));
    let caps = &discover.json()["result"]["capabilities"];
    assert_eq!(
        (
            &caps["resources"]["subscribe"],
            &caps["tools"]["listChanged"]
        ),
        (&json!(true), &json!(true))
    );
}

/// The JSON-RPC messages of the stream's `data:` lines, in order.
fn frames(sse: &Sse) -> Vec<Value> {
    sse.buf
        .lines()
        .filter_map(|l| l.strip_prefix("data: "))
        .filter_map(|d| serde_json::from_str(d).ok())
        .collect()
}

#[test]
fn resources_list_pages_with_a_cursor() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let h = a.admin_headers();
    let mut ids: Vec<String> = (0..101)
        .map(|i| {
            let body = json!({ "name": format!("k{i}") });
            created(s.call("POST", "/v1/kpis", &h, Some(&body)), "kpi_id")
        })
        .collect();
    let uris = |r: &TestResponse| -> Vec<String> {
        r.json()["result"]["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["uri"].as_str().unwrap().to_owned())
            .collect()
    };
    let first = s.mcp(&h, "resources/list", json!({}));
    let cursor = first.json()["result"]["nextCursor"].clone();
    assert!(cursor.is_string(), "{}", first.body);
    let second = s.mcp(&h, "resources/list", json!({ "cursor": cursor }));
    assert!(
        second.json()["result"].get("nextCursor").is_none(),
        "{}",
        second.body
    );
    let (one, two) = (uris(&first), uris(&second));
    assert_eq!(
        (one.len(), two.len()),
        (101, 1),
        "the brief, then 100 KPIs a page"
    );
    assert_eq!(one[0], "bespin://briefs/latest");
    let mut seen: Vec<String> = one[1..]
        .iter()
        .chain(&two)
        .map(|u| u.trim_start_matches("bespin://kpis/").to_owned())
        .collect();
    seen.sort();
    ids.sort();
    assert_eq!(seen, ids, "every KPI once");
    for bad in [json!("x"), json!(7), json!("k-1")] {
        let r = s.mcp(&h, "resources/list", json!({ "cursor": bad }));
        assert_eq!(
            (r.status, &r.json()["error"]["code"]),
            (400, &json!(-32602)),
            "{bad}"
        );
    }
}

#[test]
fn tool_call_refusals_are_audited_and_a_tool_calls_key_reaches_its_audit_row() {
    let s = TestServer::start(test_config());
    let a = s.create_tenant("alpha", "a@alpha.example");
    let member = s.add_user(&a, "m@alpha.example", "member");
    let mut mh = a.headers(&member);
    mh.push(("X-Request-ID", "mcp-denied-1"));
    // 403: a member calling an admin tool (the REST operation's role check).
    let r = s.mcp_tool(&mh, "record_decision", json!({"decision_date": "2026-01-02", "title": "t", "decision": "d", "idempotency_key": "dk-1"}));
    assert_eq!(r["structuredContent"]["status"], 403, "{r}");
    // 429: today's tool calls used up (the gateway's daily limit).
    let mut ah = a.admin_headers();
    let limits = json!({ "assistant_query_daily_limit": 0, "tool_invocation_daily_limit": 0,
        "daily_brief_generated_daily_limit": 0, "notification_enqueued_daily_limit": 0 });
    assert_eq!(s.call("PUT", "/v1/limits", &ah, Some(&limits)).status, 200);
    ah.push(("X-Request-ID", "mcp-quota-1"));
    let r = s.mcp_tool(&ah, "echo", json!({"idempotency_key": "over-1"}));
    assert_eq!(r["structuredContent"]["status"], 429, "{r}");
    // Not audited: a 422 (a tool error too).
    let r = s.mcp_tool(&ah, "create_task", json!({"idempotency_key": "bad-1"}));
    assert_eq!(r["structuredContent"]["status"], 422, "{r}");
    // A write tool's key reaches the audit row of its operation.
    let r = s.mcp_tool(
        &ah,
        "create_task",
        json!({"title": "Call Bob", "idempotency_key": "task-key-1"}),
    );
    assert_eq!(r["isError"], false, "{r}");
    let task_id = r["structuredContent"]["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let audit = s
        .call("GET", "/v1/audit?limit=100", &a.admin_headers(), None)
        .json();
    let rows = audit["items"].as_array().unwrap();
    let refused: Vec<(&str, &str, &str, &str, &str)> = rows
        .iter()
        .filter(|r| r["outcome"] != "success")
        .map(|r| {
            let f = |k: &str| r[k].as_str().unwrap_or("");
            (
                f("action"),
                f("outcome"),
                f("idempotency_key"),
                f("request_id"),
                f("user_id"),
            )
        })
        .collect();
    assert_eq!(
        refused,
        [
            (
                "mcp.echo",
                "quota",
                "over-1",
                "mcp-quota-1",
                a.admin.as_str()
            ),
            (
                "mcp.record_decision",
                "denied",
                "dk-1",
                "mcp-denied-1",
                member.as_str()
            ),
        ],
        "{audit}"
    );
    let task_row = rows
        .iter()
        .find(|r| r["target_id"] == task_id.as_str())
        .unwrap_or_else(|| panic!("no audit row of the task: {audit}"));
    assert_eq!(task_row["idempotency_key"], "task-key-1", "{task_row}");
    // The same operation over REST, which takes no key, records none.
    let rest = s.call(
        "POST",
        "/v1/tasks",
        &a.admin_headers(),
        Some(&json!({"title": "REST"})),
    );
    let rest_id = rest.json()["task_id"].as_str().unwrap().to_owned();
    let audit = s
        .call("GET", "/v1/audit?limit=100", &a.admin_headers(), None)
        .json();
    let rest_row = audit["items"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["target_id"] == rest_id.as_str())
        .unwrap()
        .clone();
    assert_eq!(rest_row["idempotency_key"], Value::Null, "{rest_row}");
}
