//! A hostile tenant member (issue 17): every request's work is bounded, so no tenant can slow
//! down, fill up or break the server for the others. One test per finding; each failed on the
//! server before these bounds.
#![allow(clippy::unwrap_used)]

use bespin_core::Op;
use bespin_http::Config;
use bespin_http::testing::{TestResponse, TestServer, TestTenant, parse_response};
use serde_json::{Value, json};
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

/// Test settings (rate limit off, admin key `test-admin-key`) with `vars` as environment.
fn config(vars: &[(&str, &str)]) -> Config {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    let mut c = Config::from_lookup(|k| {
        vars.iter()
            .find(|(name, _)| name == k)
            .map(|(_, v)| v.clone())
    })
    .unwrap();
    c.rate_limit.enabled = false;
    c.platform_admin_key = Some("test-admin-key".into());
    c
}

/// A tenant on a plan with every capability and credits enough for any test.
fn rich_tenant(s: &TestServer, name: &str) -> TestTenant {
    let t = s.create_tenant(name, "ada@acme.example");
    let admin = [("X-Platform-Admin-Key", "test-admin-key")];
    s.call(
        "POST",
        "/v1/admin/plans",
        &admin,
        Some(
            &json!({"plan_id": "rich", "name": "Rich", "included_credits": 1_000_000_000i64,
            "overage_price_per_credit": 0.01}),
        ),
    );
    let caps = json!({"capabilities": ["chat", "tools", "briefs", "notifications", "kpi_ingest",
        "kpi_read", "action_center", "tasks", "decisions", "meetings", "memory", "timeline",
        "search"]});
    let r = s.call(
        "PUT",
        "/v1/admin/plans/rich/capabilities",
        &admin,
        Some(&caps),
    );
    assert_eq!(r.status, 200, "{}", short(&r));
    let path = format!("/v1/admin/tenants/{}/subscription", t.id);
    let r = s.call("PUT", &path, &admin, Some(&json!({"plan_id": "rich"})));
    assert_eq!(r.status, 200, "{}", short(&r));
    t
}

/// `t`'s tenant and admin with a wrong API key.
fn stranger(t: &TestTenant) -> [(&'static str, &str); 3] {
    [
        ("X-Tenant-ID", t.id.as_str()),
        ("X-User-ID", t.admin.as_str()),
        ("X-API-Key", "bsk_not-the-key"),
    ]
}

/// Sends `head` (a whole request head, blank line included) and `body` on a new connection
/// and reads the answer, giving up after `secs` (then `None`: the server did not answer).
fn exchange(s: &TestServer, head: &str, body: &[u8], secs: u64) -> Option<TestResponse> {
    let mut c = TcpStream::connect(s.addr).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(secs))).unwrap();
    c.write_all(head.as_bytes()).ok()?;
    // The server may answer and close before reading a refused body.
    let _ = c.write_all(body);
    let mut buf = Vec::new();
    match c.read_to_end(&mut buf) {
        Ok(_) if !buf.is_empty() => Some(parse_response(&buf)),
        Err(_) if !buf.is_empty() => Some(parse_response(&buf)),
        _ => None,
    }
}

/// A request head with `headers` and a `Content-Length` of `len`.
fn head(method: &str, path: &str, headers: &[(&str, &str)], len: usize) -> String {
    let mut h = format!("{method} {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n");
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    h.push_str(&format!("Content-Length: {len}\r\n\r\n"));
    h
}

fn query(q: &str) -> String {
    format!(
        "/v1/search?q={}",
        q.replace('%', "%25")
            .replace(' ', "%20")
            .replace('&', "%26")
    )
}

/// The start of a response body, for assertion messages.
fn short(r: &TestResponse) -> String {
    r.body.chars().take(300).collect()
}

/// Asserts a 422 of `kind` at `["query","q"]`.
fn refused_at_q(r: &TestResponse, kind: &str) {
    assert_eq!(
        (r.status, loc(r), r.json()["detail"][0]["type"].clone()),
        (422, json!(["query", "q"]), json!(kind)),
        "{}",
        short(r)
    );
}

fn loc(r: &TestResponse) -> Value {
    r.json()["detail"][0]["loc"].clone()
}

#[test]
fn search_words_are_bounded_and_searched_after_the_quota() {
    let s = TestServer::start(config(&[("BESPIN_SEARCH_MAX_SCAN", "50")]));
    let t = rich_tenant(&s, "Acme");
    let h = t.admin_headers();
    // Repeated words count once.
    let r = s.call("GET", &query(&"a ".repeat(100)), &h, None);
    assert_eq!(r.status, 200, "{}", short(&r));
    let seventeen: Vec<String> = (0..17).map(|i| format!("w{i}")).collect();
    let r = s.call("GET", &query(&seventeen.join(" ")), &h, None);
    assert_eq!(
        (r.status, loc(&r)),
        (422, json!(["query", "q"])),
        "{}",
        r.body
    );
    let r = s.call("GET", &query(&format!("ok {}", "x".repeat(65))), &h, None);
    assert_eq!(
        (r.status, loc(&r)),
        (422, json!(["query", "q"])),
        "{}",
        r.body
    );
    // A long query is refused, not searched.
    let r = s.call("GET", &query(&"a ".repeat(300)), &h, None);
    refused_at_q(&r, "string_too_long");

    // 60 index entries start with "a"; the budget is 50.
    for i in 0..6 {
        let words: Vec<String> = (0..10).map(|j| format!("a{i}w{j}")).collect();
        let body = json!({"title": "t", "description": words.join(" ")});
        assert_eq!(s.call("POST", "/v1/tasks", &h, Some(&body)).status, 201);
    }
    let usage = |s: &TestServer| s.call("GET", "/v1/billing/usage", &h, None).json();
    let before = usage(&s);
    let r = s.call("GET", &query("a"), &h, None);
    refused_at_q(&r, "value_error");
    assert_eq!(usage(&s), before, "a refused search is not metered");
    assert_eq!(s.call("GET", &query("a0"), &h, None).status, 200);

    // Out of credits: refused (429) before the search reads a single index entry (this one
    // would read past the budget of 50), as the contract orders it.
    let admin = [("X-Platform-Admin-Key", "test-admin-key")];
    let poor = json!({"plan_id": "poor", "name": "Poor", "included_credits": 0,
        "overage_price_per_credit": 0.0});
    assert_eq!(
        s.call("POST", "/v1/admin/plans", &admin, Some(&poor))
            .status,
        201
    );
    let caps = json!({"capabilities": ["search"]});
    s.call(
        "PUT",
        "/v1/admin/plans/poor/capabilities",
        &admin,
        Some(&caps),
    );
    let path = format!("/v1/admin/tenants/{}/subscription", t.id);
    s.call("PUT", &path, &admin, Some(&json!({"plan_id": "poor"})));
    let r = s.call("GET", &query("a"), &h, None);
    assert_eq!(r.status, 429, "{}", short(&r));
    assert_eq!(r.json()["detail"]["event_key"], "search_query");
}

#[test]
fn free_text_fields_are_bounded_at_their_loc() {
    let s = TestServer::start(config(&[]));
    let t = rich_tenant(&s, "Acme");
    let h = t.admin_headers();
    let text = |n: usize| "a".repeat(n);
    let big_object = json!({ "blob": "x".repeat(16 * 1024) });
    let cases: Vec<(&str, Value, Value)> = vec![
        (
            "/v1/conversations",
            json!({"title": text(256)}),
            json!(["body", "title"]),
        ),
        (
            "/v1/tasks",
            json!({"title": "t", "description": text(10_001)}),
            json!(["body", "description"]),
        ),
        (
            "/v1/actions",
            json!({"title": "t", "action_type": "x", "description": text(10_001)}),
            json!(["body", "description"]),
        ),
        (
            "/v1/actions",
            json!({"title": "t", "action_type": "x", "payload": big_object}),
            json!(["body", "payload"]),
        ),
        (
            "/v1/decisions",
            json!({"title": "t", "decision": text(10_001), "decision_date": "2026-01-31"}),
            json!(["body", "decision"]),
        ),
        (
            "/v1/decisions",
            json!({"title": "t", "decision": "d", "rationale": text(10_001), "decision_date": "2026-01-31"}),
            json!(["body", "rationale"]),
        ),
        (
            "/v1/meetings",
            json!({"title": "t", "notes": text(50_001), "meeting_date": "2026-01-31"}),
            json!(["body", "notes"]),
        ),
        (
            "/v1/memory/facts",
            json!({"category": "icp", "fact_key": "k", "fact_value": text(10_001)}),
            json!(["body", "fact_value"]),
        ),
        (
            "/v1/kpis",
            json!({"name": "MRR", "description": text(10_001)}),
            json!(["body", "description"]),
        ),
    ];
    for (path, body, at) in cases {
        let r = s.call("POST", path, &h, Some(&body));
        assert_eq!((r.status, loc(&r)), (422, at), "{path}: {}", short(&r));
    }
    let mut h2 = h.clone();
    h2.push(("Idempotency-Key", "k"));
    let r = s.call(
        "POST",
        "/v1/tools/invoke",
        &h2,
        Some(&json!({"tool_name": "echo", "payload": big_object})),
    );
    assert_eq!(
        (r.status, loc(&r)),
        (422, json!(["body", "payload"])),
        "{}",
        r.body
    );
    let long_key = "k".repeat(256);
    let mut h3 = h.clone();
    h3.push(("Idempotency-Key", &long_key));
    let r = s.call(
        "POST",
        "/v1/tools/invoke",
        &h3,
        Some(&json!({"tool_name": "echo"})),
    );
    assert_eq!(r.status, 400, "{}", short(&r));
    // At the limits, accepted.
    let r = s.call(
        "POST",
        "/v1/conversations",
        &h,
        Some(&json!({"title": text(255)})),
    );
    assert_eq!(r.status, 201, "{}", short(&r));
    let body = json!({"title": "t", "description": text(10_000)});
    assert_eq!(s.call("POST", "/v1/tasks", &h, Some(&body)).status, 201);
    let body = json!({"title": "t", "notes": text(50_000), "meeting_date": "2026-01-31"});
    assert_eq!(s.call("POST", "/v1/meetings", &h, Some(&body)).status, 201);
}

#[test]
fn a_deeply_nested_answer_is_replayed_byte_for_byte() {
    let s = TestServer::start(config(&[]));
    let t = rich_tenant(&s, "Acme");
    // 125 levels, and 126: the deepest a request body can carry (serde_json reads 127).
    for depth in [125, 126] {
        let key = format!("deep-{depth}");
        let mut h = t.admin_headers();
        h.push(("Idempotency-Key", &key));
        let mut payload = json!(true);
        for _ in 0..depth {
            payload = json!({ "d": payload });
        }
        let body = json!({"tool_name": "echo", "payload": payload});
        let first = s.call("POST", "/v1/tools/invoke", &h, Some(&body));
        assert_eq!(first.status, 200, "{}", short(&first));
        let replay = s.call("POST", "/v1/tools/invoke", &h, Some(&body));
        assert_eq!(replay.status, 200, "depth {depth}: {}", short(&replay));
        assert_eq!(replay.body, first.body, "byte for byte");
    }
}

/// Sends the writer's release when dropped.
struct ReleaseOnDrop(std::sync::mpsc::Sender<()>);

impl Drop for ReleaseOnDrop {
    fn drop(&mut self) {
        let _ = self.0.send(());
    }
}

#[test]
fn only_authenticated_operations_reach_the_writer_and_its_queue_is_bounded() {
    let s = TestServer::start(config(&[("BESPIN_WRITER_QUEUE", "1")]));
    let t = rich_tenant(&s, "Acme");
    // Hold the writer thread until released.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let _holding = s.bespin.submit(Op::from_fn(move |_, _| {
        let _ = held.recv();
        Ok(())
    }));
    // Bodies with bad credentials are parsed and refused without the writer.
    let zeros = format!("[{}0]", "0,".repeat(500_000));
    let stranger = stranger(&t);
    let h = head("POST", "/v1/kpis", &stranger, zeros.len());
    let r = exchange(&s, &h, zeros.as_bytes(), 10).expect("answered while the writer is held");
    assert_eq!(r.status, 401, "{}", short(&r));
    let h = head("POST", "/v1/tasks", &[], 3);
    let r = exchange(&s, &h, b"{x:", 10).expect("answered while the writer is held");
    assert_eq!(r.status, 422, "{}", short(&r));
    // Authenticated writes queue, up to the bound; past it, 503 at once.
    let task = json!({"title": "queued"}).to_string();
    let mut headers = t.admin_headers();
    headers.push(("Content-Type", "application/json"));
    let h = head("POST", "/v1/tasks", &headers, task.len());
    let addr = s.addr;
    let (h2, task2) = (h.clone(), task.clone());
    let queued = std::thread::spawn(move || {
        let mut c = TcpStream::connect(addr).unwrap();
        c.write_all(h2.as_bytes()).unwrap();
        c.write_all(task2.as_bytes()).unwrap();
        let mut buf = Vec::new();
        c.read_to_end(&mut buf).unwrap();
        parse_response(&buf)
    });
    // Whatever happens below, the writer is released at the end (a failed assertion must
    // not leave the server's drop waiting for it forever).
    let release = ReleaseOnDrop(release);
    // The queued write is in the queue (its one place) before the next one is sent.
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while s.bespin.writer_queue_depth() < 1 {
        assert!(
            std::time::Instant::now() < deadline,
            "the write never queued"
        );
        std::thread::sleep(Duration::from_millis(5));
    }
    let r = exchange(&s, &h, task.as_bytes(), 10).expect("answered at once");
    assert_eq!(r.status, 503, "{}", short(&r));
    assert_eq!(r.header("retry-after"), Some("1"));
    drop(release);
    assert_eq!(queued.join().unwrap().status, 201);
    assert_eq!(s.call("POST", "/v1/tasks", &headers, None).status, 422);
}

#[test]
fn bodies_are_bounded_and_refused_as_soon_as_declared() {
    let s = TestServer::start(config(&[]));
    let t = rich_tenant(&s, "Acme");
    let mut h = t.admin_headers();
    h.push(("Content-Type", "application/json"));
    // Declared too large: 413 before a byte of the body is sent.
    let r = exchange(&s, &head("POST", "/v1/tasks", &h, 10 << 20), b"", 10)
        .expect("413 without the body");
    assert_eq!(r.status, 413, "{}", short(&r));
    // Just over the default limit of 1 MiB.
    let pad = "x".repeat(1 << 20);
    let body = json!({"title": "t", "p": pad}).to_string();
    assert!(body.len() > 1 << 20);
    let r = exchange(
        &s,
        &head("POST", "/v1/tasks", &h, body.len()),
        body.as_bytes(),
        10,
    )
    .unwrap();
    assert_eq!(r.status, 413, "{}", short(&r));
    // Bulk ingest has its own, larger limit.
    let kpi = s.call(
        "POST",
        "/v1/kpis",
        &t.admin_headers(),
        Some(&json!({"name": "MRR"})),
    );
    let id = kpi.json()["kpi_id"].as_str().unwrap().to_owned();
    let points: Vec<Value> = (0..40_000)
        .map(|i| json!({"ts": format!("2026-01-01T00:00:00.{i:06}Z"), "value": i}))
        .collect();
    let body = json!({ "points": points }).to_string();
    assert!(body.len() > 1 << 20, "over the default limit");
    let path = format!("/v1/kpis/{id}/points:bulk");
    let r = exchange(
        &s,
        &head("POST", &path, &h, body.len()),
        body.as_bytes(),
        30,
    )
    .unwrap();
    assert_eq!(r.status, 200, "{}", short(&r));
    assert_eq!(r.json()["inserted"], 40_000);
}

#[test]
fn connections_are_capped() {
    let s = TestServer::start(config(&[("BESPIN_MAX_CONNECTIONS", "2")]));
    let idle: Vec<TcpStream> = (0..2)
        .map(|_| TcpStream::connect(s.addr).unwrap())
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    let h = head("GET", "/healthz", &[], 0);
    assert!(
        exchange(&s, &h, b"", 1).is_none(),
        "a third connection waits while two are open"
    );
    drop(idle);
    let r = exchange(&s, &h, b"", 10).expect("served once one closed");
    assert_eq!(r.status, 200);
}

#[test]
fn the_console_is_never_cached_and_key_guessing_is_throttled() {
    let s = TestServer::start(config(&[
        ("DEV_CONSOLE_ENABLED", "1"),
        ("DEV_CONSOLE_KEY", "the-console-key-0"),
    ]));
    let r = s.call("GET", "/console?key=the-console-key-0", &[], None);
    assert_eq!(r.status, 303);
    assert_eq!(r.header("cache-control"), Some("no-store"));
    let cookie = r.header("set-cookie").unwrap().to_owned();
    let token = cookie
        .trim_start_matches("console_session=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();
    assert!(token.starts_with("bcs_") && token.len() == 47, "{token}");
    let session = format!("console_session={token}");
    let r = s.call("GET", "/console/tenants", &[("Cookie", &session)], None);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (200, Some("no-store"))
    );
    let r = s.call("GET", "/console/nowhere", &[], None);
    assert_eq!(
        (r.status, r.header("cache-control")),
        (404, Some("no-store"))
    );
    for _ in 0..10 {
        assert_eq!(s.call("GET", "/console?key=guess", &[], None).status, 404);
    }
    for key in ["guess", "the-console-key-0"] {
        let r = s.call("GET", &format!("/console?key={key}"), &[], None);
        assert_eq!(r.status, 429, "{}", short(&r));
        let wait: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!((1..=900).contains(&wait));
    }
    // A session already open goes on.
    assert_eq!(
        s.call("GET", "/console", &[("Cookie", &session)], None)
            .status,
        200
    );
}

#[test]
fn docs_carry_a_content_security_policy() {
    let s = TestServer::start(config(&[]));
    let r = s.call("GET", "/docs", &[], None);
    assert_eq!(r.status, 200);
    let csp = r.header("content-security-policy").expect("CSP on /docs");
    assert!(csp.contains("script-src 'self'") && csp.contains("frame-ancestors 'none'"));
}

#[test]
fn behind_proxies_the_client_is_the_rightmost_untrusted_hop() {
    let mut c = config(&[
        ("BESPIN_TRUST_PROXY", "1"),
        ("BESPIN_TRUSTED_PROXY_HOPS", "2"),
    ]);
    c.rate_limit.enabled = true;
    c.rate_limit.limit = 1;
    let s = TestServer::start(c);
    let body = json!({"name": "A", "region": "eu", "admin_email": "a@b.example"});
    let create = |xff: &str| {
        s.call(
            "POST",
            "/v1/tenants",
            &[("X-Forwarded-For", xff)],
            Some(&body),
        )
        .status
    };
    // Two proxies appended "203.0.113.7, 10.0.0.2": the client is 203.0.113.7, whatever it
    // wrote before them.
    assert_eq!(create("1.1.1.1, 203.0.113.7, 10.0.0.2"), 201);
    assert_eq!(create("2.2.2.2, 203.0.113.7, 10.0.0.2"), 429);
    assert_eq!(create("203.0.113.8, 10.0.0.2"), 201);
    // IPv6 clients count per /64.
    assert_eq!(create("2001:db8:5:6::1, 10.0.0.2"), 201);
    assert_eq!(create("2001:db8:5:6:ffff::2, 10.0.0.2"), 429);
    assert_eq!(create("2001:db8:5:7::1, 10.0.0.2"), 201);
}

#[test]
fn metrics_can_require_a_token() {
    let s = TestServer::start(config(&[("BESPIN_METRICS_TOKEN", "scrape-me")]));
    let scrape = |auth: &[(&str, &str)]| s.call("GET", "/metrics", auth, None);
    let r = scrape(&[]);
    assert_eq!(r.status, 401);
    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
    assert_eq!(scrape(&[("Authorization", "Bearer wrong")]).status, 401);
    assert_eq!(scrape(&[("Authorization", "Bearer scrape-me")]).status, 200);
    let open = TestServer::start(config(&[]));
    assert_eq!(open.call("GET", "/metrics", &[], None).status, 200);
}

#[test]
fn a_large_body_whose_credentials_failed_is_answered_unread() {
    let s = TestServer::start(config(&[]));
    let t = rich_tenant(&s, "Acme");
    let stranger = stranger(&t);
    // 500 kB declared, a few bytes sent: answered at once, without waiting for the rest.
    let h = head("POST", "/v1/tasks", &stranger, 500_000);
    let r = exchange(&s, &h, b"[[[", 10).expect("answered without the body");
    assert_eq!(r.status, 401, "{}", short(&r));
    assert_eq!(r.header("connection"), Some("close"));
    // Missing credentials likewise (400, the first one missing).
    let h = head("POST", "/v1/tasks", &[], 500_000);
    let r = exchange(&s, &h, b"[[[", 10).expect("answered without the body");
    assert_eq!(r.status, 400, "{}", short(&r));
    // A body of ordinary size keeps the contract's order: its syntax error first.
    let h = head("POST", "/v1/tasks", &stranger, 3);
    let r = exchange(&s, &h, b"{x:", 10).unwrap();
    assert_eq!(r.status, 422, "{}", short(&r));
    // Good credentials: a large body is read as before.
    let task = json!({"title": "big", "description": "d".repeat(9_000)}).to_string();
    let padded = format!("{task}{}", " ".repeat(70_000));
    let mut good = t.admin_headers();
    good.push(("Content-Type", "application/json"));
    let r = exchange(
        &s,
        &head("POST", "/v1/tasks", &good, padded.len()),
        padded.as_bytes(),
        10,
    )
    .unwrap();
    assert_eq!(r.status, 201, "{}", short(&r));
}

#[test]
fn repeated_authentication_failures_are_held_and_good_keys_never_are() {
    let s = TestServer::start(config(&[("BESPIN_AUTH_TARPIT_AFTER", "3")]));
    let t = rich_tenant(&s, "Acme");
    let stranger = stranger(&t);
    for _ in 0..3 {
        let r = s.call("GET", "/v1/tasks", &stranger, None);
        assert_eq!(r.status, 401);
        assert_eq!(
            r.header("retry-after"),
            None,
            "the first failures go at once"
        );
    }
    let started = std::time::Instant::now();
    let r = s.call("GET", "/v1/tasks", &stranger, None);
    assert_eq!(r.status, 401, "still the contract's answer");
    assert!(started.elapsed() >= bespin_http::tarpit::STEP, "held back");
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // The tenant's good key is never held, whatever others claiming it did.
    let r = s.call("GET", "/v1/tasks", &t.admin_headers(), None);
    assert_eq!(r.status, 200, "{}", short(&r));
    assert_eq!(r.header("retry-after"), None);
    // Counted per client and per claimed tenant, with bounded labels.
    let m = s.call("GET", "/metrics", &[], None).body;
    let sample = |name: &str| bespin_http::testing::metric_sample(&m, name);
    assert_eq!(sample("bespin_auth_failures_total"), "4");
    assert_eq!(sample("bespin_auth_failures_delayed_total"), "1");
    assert_eq!(
        sample(&format!(
            "bespin_auth_failures_recent_by_tenant{{tenant=\"{}\"}}",
            t.id
        )),
        "4"
    );
    assert_eq!(
        sample("bespin_auth_failures_recent_by_client{client=\"127.0.0.1\"}"),
        "4"
    );
}
