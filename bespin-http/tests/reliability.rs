//! Reliability and security through real HTTP: races between concurrent clients, the tenant
//! isolation matrix, slow and oversized requests, the per-tenant rate limit and the online
//! backup route. Every test ends with `check()` on the server's database.
#![allow(clippy::unwrap_used)]

use bespin_http::Config;
use bespin_http::testing::{TestResponse, TestServer, TestTenant, race, test_config};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

type Tenant = TestTenant;

fn tenant(s: &TestServer, name: &str) -> Tenant {
    s.create_tenant(name, &format!("a@{name}.example"))
}

fn call(s: &TestServer, t: &Tenant, method: &str, path: &str, body: Option<Value>) -> TestResponse {
    s.call(method, path, &t.admin_headers(), body.as_ref())
}

fn with_key(t: &Tenant, key: &str) -> Vec<(String, String)> {
    let mut h: Vec<(String, String)> = t
        .admin_headers()
        .into_iter()
        .map(|(a, b)| (a.to_owned(), b.to_owned()))
        .collect();
    h.push(("Idempotency-Key".into(), key.into()));
    h
}

fn consistent(s: &TestServer) {
    let r = s.bespin.check().unwrap();
    assert!(r.is_ok(), "{r}");
}

#[test]
fn thirty_two_requests_with_one_idempotency_key_run_once() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "acme");
    let h = with_key(&t, "same-key");
    let body = json!({"tool_name": "echo", "payload": {"n": 1}});
    let answers = race(32, |_| {
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call("POST", "/v1/tools/invoke", &h, Some(&body))
    });
    assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
    assert!(answers.iter().all(|r| r.body == answers[0].body));
    let ledger = call(&s, &t, "GET", "/v1/billing/ledger", None).json();
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1, "{ledger}");
    consistent(&s);
}

#[test]
fn a_daily_cap_of_n_under_4n_concurrent_requests_admits_exactly_n() {
    const N: usize = 8;
    let s = TestServer::start(test_config());
    let t = tenant(&s, "acme");
    let r = call(
        &s,
        &t,
        "PUT",
        "/v1/limits",
        Some(
            json!({"assistant_query_daily_limit": 100, "tool_invocation_daily_limit": N,
            "daily_brief_generated_daily_limit": 10, "notification_enqueued_daily_limit": 10}),
        ),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let answers = race(4 * N, |i| {
        let h = with_key(&t, &format!("k{i}"));
        let h: Vec<(&str, &str)> = h.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect();
        s.call(
            "POST",
            "/v1/tools/invoke",
            &h,
            Some(&json!({"tool_name": "echo", "payload": {"i": i}})),
        )
    });
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((ok, refused), (N, 3 * N), "{answers:?}");
    consistent(&s);
}

#[test]
fn concurrent_approve_and_reject_leave_exactly_one_review() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "acme");
    for round in 0..4 {
        let a = call(
            &s,
            &t,
            "POST",
            "/v1/actions",
            Some(json!({"title": format!("a{round}"), "action_type": "outreach"})),
        );
        assert_eq!(a.status, 201, "{}", a.body);
        let id = a.json()["action_id"].as_str().unwrap().to_owned();
        let answers = race(16, |i| {
            let verb = if i % 2 == 0 { "approve" } else { "reject" };
            call(
                &s,
                &t,
                "POST",
                &format!("/v1/actions/{id}/{verb}"),
                Some(json!({})),
            )
        });
        assert!(
            answers.iter().all(|r| r.status == 200 || r.status == 409),
            "{answers:?}"
        );
        let d = call(&s, &t, "GET", &format!("/v1/actions/{id}"), None).json();
        let status = d["status"].as_str().unwrap();
        assert!(status == "approved" || status == "rejected", "{d}");
        // The winner's verb answered 200 (first or repeated no-op); the loser's always 409.
        let (win, lose) = if status == "approved" { (0, 1) } else { (1, 0) };
        assert!(answers.iter().skip(win).step_by(2).all(|r| r.status == 200));
        assert!(
            answers
                .iter()
                .skip(lose)
                .step_by(2)
                .all(|r| r.status == 409)
        );
    }
    consistent(&s);
}

#[test]
fn concurrent_supersedes_of_one_fact_leave_one_active_successor() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "acme");
    let f = call(
        &s,
        &t,
        "POST",
        "/v1/memory/facts",
        Some(json!({"category": "icp", "fact_key": "price", "fact_value": "10"})),
    );
    assert_eq!(f.status, 201, "{}", f.body);
    let id = f.json()["fact_id"].as_str().unwrap().to_owned();
    let answers = race(16, |i| {
        call(
            &s,
            &t,
            "POST",
            &format!("/v1/memory/facts/{id}/supersede"),
            Some(json!({"fact_value": format!("v{i}")})),
        )
    });
    let won = answers
        .iter()
        .filter(|r| r.status == 201 || r.status == 200)
        .count();
    assert_eq!(won, 1, "{answers:?}");
    assert!(answers.iter().all(|r| r.status < 300 || r.status == 400));
    let all = call(&s, &t, "GET", "/v1/memory/facts?status=all", None).json();
    let items = all["items"].as_array().unwrap();
    let active: Vec<_> = items.iter().filter(|f| f["status"] == "active").collect();
    assert_eq!((items.len(), active.len()), (2, 1), "{all}");
    consistent(&s);
}

/// Every route that takes an id, called by tenant B on tenant A's ids: 404 and none of A's data.
#[test]
fn isolation_matrix_other_tenants_ids_are_not_found() {
    let s = TestServer::start(test_config());
    let a = tenant(&s, "alpha");
    let b = tenant(&s, "beta");
    let post = |path: &str, body: Value| {
        let r = call(&s, &a, "POST", path, Some(body));
        assert!(r.status < 300, "{path}: {}", r.body);
        r.json()
    };
    let kpi = post("/v1/kpis", json!({"name": "MRR"}))["kpi_id"].clone();
    let conv =
        post("/v1/conversations", json!({"title": "secret plans"}))["conversation_id"].clone();
    let action = post(
        "/v1/actions",
        json!({"title": "secret", "action_type": "outreach"}),
    )["action_id"]
        .clone();
    let task = post("/v1/tasks", json!({"title": "secret"}))["task_id"].clone();
    let decision = post(
        "/v1/decisions",
        json!({"decision_date": "2026-01-02", "title": "secret", "decision": "go"}),
    )["decision_id"]
        .clone();
    let meeting = post(
        "/v1/meetings",
        json!({"meeting_date": "2026-01-02", "title": "secret", "notes": "n"}),
    )["meeting_id"]
        .clone();
    let fact = post(
        "/v1/memory/facts",
        json!({"category": "icp", "fact_key": "secret", "fact_value": "v"}),
    )["fact_id"]
        .clone();
    let h = with_key(&a, "brief-1");
    let h: Vec<(&str, &str)> = h.iter().map(|(x, y)| (x.as_str(), y.as_str())).collect();
    let brief = s.call(
        "POST",
        "/v1/briefs/materialize",
        &h,
        Some(&json!({"date": "2026-01-02"})),
    );
    assert!(brief.status < 300, "{}", brief.body);
    let hook = post(
        "/v1/webhooks/endpoints",
        json!({"url": "https://example.com/secret-hook"}),
    )["endpoint_id"]
        .clone();
    let key = post(
        "/v1/api-keys",
        json!({"user_id": a.admin, "name": "secret"}),
    )["key_id"]
        .clone();
    let events = call(&s, &a, "GET", "/v1/events", None).json();
    let event = events["items"][0]["id"].clone();
    let id = |v: &Value| v.as_str().unwrap().to_owned();
    let ids = [
        ("endpoint_id", id(&hook)),
        ("event_id", id(&event)),
        ("kpi_id", id(&kpi)),
        ("conversation_id", id(&conv)),
        ("action_id", id(&action)),
        ("task_id", id(&task)),
        ("decision_id", id(&decision)),
        ("meeting_id", id(&meeting)),
        ("fact_id", id(&fact)),
        ("notification_id", "1".to_owned()),
        ("date", "2026-01-02".to_owned()),
        ("entity_type", "action".to_owned()),
        ("entity_id", id(&action)),
        ("user_id", a.admin.clone()),
        ("key_id", id(&key)),
        (
            "evidence_id",
            "00000000-0000-4000-8000-000000000000".to_owned(),
        ),
    ];
    let body_for = |path: &str| -> Option<Value> {
        Some(match path {
            p if p.ends_with("points:bulk") => {
                json!({"points": [{"ts": "2026-01-01T00:00:00Z", "value": 1}]})
            }
            p if p.ends_with("/execute") => json!({"execution_status": "succeeded"}),
            p if p.ends_with("/supersede") => json!({"fact_value": "stolen"}),
            p if p.starts_with("/v1/memory/facts/") => json!({"fact_value": "stolen"}),
            p if p.starts_with("/v1/users/") => json!({"role": "member"}),
            _ => json!({"title": "stolen"}),
        })
    };
    let secrets: Vec<String> = ids.iter().take(9).map(|(_, v)| v.clone()).collect();
    let state = bespin_http::AppState::new(s.bespin.clone(), test_config());
    let mut tried = 0;
    for route in state.routes() {
        if !route.path.starts_with("/v1/")
            || route.path.starts_with("/v1/admin")
            || !route.path.contains('{')
        {
            continue;
        }
        let mut path = route.path.to_owned();
        for (name, value) in &ids {
            path = path.replace(&format!("{{{name}}}"), value);
        }
        assert!(!path.contains('{'), "no id for {}", route.path);
        let body = if route.method == hyper::Method::GET {
            None
        } else {
            body_for(&path)
        };
        let r = call(&s, &b, route.method.as_str(), &path, body);
        assert_eq!(
            r.status, 404,
            "{} {path} as tenant B: {}",
            route.method, r.body
        );
        // The 404 may echo the id B sent; it names nothing else of A's.
        for secret in secrets.iter().filter(|x| !path.contains(x.as_str())) {
            assert!(!r.body.contains(secret.as_str()), "{path} leaked {secret}");
        }
        assert!(!r.body.contains("secret"), "{path} leaked data: {}", r.body);
        tried += 1;
    }
    assert!(tried >= 20, "only {tried} id routes");
    eprintln!("isolation matrix: {tried} id routes tried as the wrong tenant, all 404");
    // The same through MCP: every tool that takes an id, and every resource, as tenant B.
    let bh = b.admin_headers();
    // As above, an answer may echo the id B sent, and names nothing else of A's.
    let leaks = |sent: &str, text: &str| {
        secrets
            .iter()
            .any(|x| !sent.contains(x.as_str()) && text.contains(x.as_str()))
            || text.contains("secret")
    };
    let by_tool = [
        (
            "complete_task",
            json!({"task_id": id(&task), "idempotency_key": "k1"}),
        ),
        (
            "supersede_memory_fact",
            json!({"fact_id": id(&fact), "fact_value": "stolen", "idempotency_key": "k2"}),
        ),
        ("get_kpi_series", json!({"kpi_id": id(&kpi)})),
        (
            "link_evidence",
            json!({"entity_type": "task", "entity_id": id(&task), "source_type": "note", "source_ref": {"text": "x"}, "idempotency_key": "k3"}),
        ),
        (
            "create_task",
            json!({"title": "t", "linked_entity_type": "action", "linked_entity_id": id(&action), "idempotency_key": "k4"}),
        ),
    ];
    let mut mcp_tried = 0;
    for (tool, args) in by_tool {
        let sent = args.to_string();
        let r = s.mcp_tool(&bh, tool, args);
        assert_eq!(r["isError"], true, "{tool} as tenant B: {r}");
        assert_eq!(
            r["structuredContent"]["status"], 404,
            "{tool} as tenant B: {r}"
        );
        assert!(!leaks(&sent, &r.to_string()), "{tool} leaked: {r}");
        mcp_tried += 1;
    }
    let records = [
        ("action", id(&action)),
        ("task", id(&task)),
        ("decision", id(&decision)),
        ("meeting", id(&meeting)),
        ("memory_fact", id(&fact)),
    ];
    for (t, rid) in &records {
        let r = s.mcp_tool(
            &bh,
            "get_record",
            json!({"entity_type": t, "entity_id": rid}),
        );
        assert_eq!(r["structuredContent"]["status"], 404, "get_record {t}: {r}");
        let uri = format!("bespin://{t}/{rid}");
        let r = s.mcp(&bh, "resources/read", json!({"uri": uri}));
        assert_eq!(
            r.json()["error"]["code"],
            -32602,
            "{uri} as tenant B: {}",
            r.body
        );
        assert!(!leaks(&uri, &r.body), "{uri} leaked: {}", r.body);
        mcp_tried += 2;
    }
    let r = s.mcp(
        &bh,
        "resources/read",
        json!({"uri": format!("bespin://kpis/{}", id(&kpi))}),
    );
    assert_eq!(r.json()["error"]["code"], -32602, "{}", r.body);
    let listed = s.mcp(&bh, "resources/list", json!({}));
    assert!(
        !leaks("", &listed.body),
        "resources/list leaked: {}",
        listed.body
    );
    for (tool, args) in [
        ("list_tasks", json!({"status": "all"})),
        ("list_actions", json!({"status": "all"})),
        ("list_memory_facts", json!({"status": "all"})),
    ] {
        let r = s.mcp_tool(&bh, tool, args);
        assert_eq!(r["isError"], false, "{tool}: {r}");
        assert!(!leaks("", &r.to_string()), "{tool} leaked: {r}");
    }
    let found = s.mcp_tool(&bh, "search_records", json!({"q": "secret"}));
    assert_eq!(found["structuredContent"]["results"], json!([]), "{found}");
    eprintln!("isolation matrix: {mcp_tried} MCP calls as the wrong tenant, all not found");
    // A's records are untouched.
    let t = call(&s, &a, "GET", &format!("/v1/tasks/{}", id(&task)), None).json();
    assert_eq!(t["title"], "secret");
    consistent(&s);
}

#[test]
fn the_plan_rate_limit_answers_429_with_headers() {
    let s = TestServer::start(test_config());
    let limited = tenant(&s, "limited");
    let free = tenant(&s, "free");
    let admin = [("X-Platform-Admin-Key", "test-admin-key")];
    let r = s.call(
        "POST",
        "/v1/admin/plans",
        &admin,
        Some(
            &json!({"plan_id": "tiny", "name": "Tiny", "included_credits": 1000,
            "overage_price_per_credit": 0, "requests_per_minute": 5}),
        ),
    );
    assert_eq!(
        (r.status, r.json()["requests_per_minute"].clone()),
        (201, json!(5)),
        "{}",
        r.body
    );
    let r = s.call(
        "PUT",
        &format!("/v1/admin/tenants/{}/subscription", limited.id),
        &admin,
        Some(&json!({"plan_id": "tiny", "status": "active"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    // No limit on the default plan: no headers.
    let r = call(&s, &free, "GET", "/v1/me", None);
    assert_eq!((r.status, r.header("x-ratelimit-limit")), (200, None));
    for left in (0..5).rev() {
        let r = call(&s, &limited, "GET", "/v1/me", None);
        assert_eq!(r.status, 200);
        assert_eq!(r.header("x-ratelimit-limit"), Some("5"));
        assert_eq!(
            r.header("x-ratelimit-remaining"),
            Some(left.to_string().as_str())
        );
        assert!(r.header("x-ratelimit-reset").is_some());
    }
    let r = call(&s, &limited, "GET", "/v1/me", None);
    assert_eq!(r.status, 429, "{}", r.body);
    assert_eq!(r.json()["error"], "rate_limit_exceeded");
    assert_eq!(r.header("retry-after"), Some("12"));
    assert_eq!(r.header("x-ratelimit-remaining"), Some("0"));
    assert_eq!(r.header("x-ratelimit-reset"), Some("60"));
    // Bad credentials do not use the tenant's tokens (nobody can drain another's bucket).
    let bad = [
        ("X-Tenant-ID", limited.id.as_str()),
        ("X-User-ID", limited.admin.as_str()),
        ("X-API-Key", "bsk_wrong"),
    ];
    assert_eq!(s.call("GET", "/v1/me", &bad, None).status, 401);
    // Raising the limit applies at once; null removes it.
    let r = s.call(
        "PUT",
        "/v1/admin/plans/tiny",
        &admin,
        Some(&json!({"requests_per_minute": null})),
    );
    assert_eq!(
        (r.status, r.json().get("requests_per_minute").cloned()),
        (200, None),
        "{}",
        r.body
    );
    assert_eq!(call(&s, &limited, "GET", "/v1/me", None).status, 200);
    let r = s.call(
        "PUT",
        "/v1/admin/plans/tiny",
        &admin,
        Some(&json!({"requests_per_minute": 0})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    consistent(&s);
}

fn read_all(mut c: TcpStream, within: Duration) -> (String, Duration) {
    let started = Instant::now();
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = Vec::new();
    let _ = c.read_to_end(&mut buf);
    (
        String::from_utf8_lossy(&buf).into_owned(),
        started.elapsed(),
    )
}

#[test]
fn stalled_clients_are_cut_off() {
    let s = TestServer::start(Config {
        header_read_timeout: Duration::from_millis(500),
        body_read_timeout: Duration::from_millis(500),
        ..test_config()
    });
    // A head that never ends.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"GET /v1/me HTTP/1.1\r\nHost: x\r\nX-Tenant")
        .unwrap();
    let (text, took) = read_all(c, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "header stall held {took:?}");
    assert!(
        text.is_empty() || text.starts_with("HTTP/1.1 408"),
        "{text}"
    );
    // A body that stops half-way.
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.write_all(b"POST /v1/tenants HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"name\":").unwrap();
    let (text, took) = read_all(c, Duration::from_secs(10));
    assert!(took < Duration::from_secs(5), "body stall held {took:?}");
    assert!(text.starts_with("HTTP/1.1 408"), "{text}");
    assert!(text.contains("Request body not received in time"));
    // The server still serves.
    assert_eq!(s.call("GET", "/healthz", &[], None).status, 200);
}

#[test]
fn oversized_bodies_get_413_and_page_sizes_are_bounded() {
    let mut c = test_config();
    c.max_body_bytes = 64 * 1024;
    let s = TestServer::start(c);
    let t = tenant(&s, "acme");
    let big = vec![b'a'; 65 * 1024];
    let mut h = t.admin_headers();
    h.push(("Content-Type", "application/json"));
    let r = s.raw("POST", "/v1/kpis", &h, &big);
    assert_eq!(r.status, 413);
    for path in [
        "/v1/kpis?limit=100000",
        "/v1/actions?limit=100000",
        "/v1/tasks?limit=100000",
        "/v1/conversations?limit=100000",
        "/v1/billing/ledger?limit=100000",
        "/v1/timeline?limit=100000",
    ] {
        let r = call(&s, &t, "GET", path, None);
        // Either refused (422) or clamped: never an unbounded page, never a 500.
        assert!(
            r.status == 422 || r.status == 200,
            "{path}: {} {}",
            r.status,
            r.body
        );
    }
}

#[test]
fn the_backup_route_needs_the_admin_key_or_the_control_token() {
    let s = TestServer::start(Config {
        control_token: Some("tok".into()),
        ..test_config()
    });
    let t = tenant(&s, "acme");
    assert_eq!(
        s.call("GET", "/v1/admin/backup", &t.admin_headers(), None)
            .status,
        404
    );
    assert_eq!(
        s.call(
            "GET",
            "/v1/admin/backup",
            &[("X-Bespin-Control-Token", "nope")],
            None
        )
        .status,
        404
    );
    let r = s.call(
        "GET",
        "/v1/admin/backup",
        &[("X-Bespin-Control-Token", "tok")],
        None,
    );
    assert_eq!(
        (r.status, r.header("content-type")),
        (200, Some("application/octet-stream"))
    );
    let r = s.call(
        "GET",
        "/v1/admin/backup",
        &[("X-Platform-Admin-Key", "test-admin-key")],
        None,
    );
    assert_eq!(r.status, 200);
}
