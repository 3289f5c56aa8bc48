#![allow(clippy::unwrap_used)]
//! The browser pages and the developer console, server side: enablement, 404 bodies, the
//! console's access check and session cookie, the table allow-list, CSP and security headers,
//! and that no console page ever contains a credential.

use bespin_http::Config;
use bespin_http::testing::{TestResponse, TestServer, test_config};
use serde_json::json;

const KEY: &str = "console-test-key-0123456789";

fn enabled() -> TestServer {
    TestServer::start(Config {
        playground_ui: true,
        dev_console: true,
        dev_console_key: KEY.into(),
        ..test_config()
    })
}

fn not_found(r: &TestResponse) {
    assert_eq!(r.status, 404, "{r:?}");
    assert_eq!(r.json(), json!({"detail": "Not Found"}));
    assert!(r.header("set-cookie").is_none());
}

fn csp(r: &TestResponse) {
    let c = r.header("content-security-policy").expect("CSP header");
    assert!(c.contains("default-src 'self'"), "{c}");
    assert!(
        c.contains("script-src 'self'") && !c.contains("unsafe-inline"),
        "{c}"
    );
    assert!(c.contains("frame-ancestors 'none'"), "{c}");
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("x-frame-options"), Some("DENY"));
}

/// Logs in with `?key=` and returns the session cookie (`console_session=…`).
fn login(s: &TestServer) -> String {
    let r = s.call("GET", &format!("/console?key={KEY}"), &[], None);
    assert_eq!(r.status, 303, "{r:?}");
    assert_eq!(r.header("location"), Some("/console"));
    let c = r.header("set-cookie").expect("cookie").to_string();
    for attr in [
        "HttpOnly",
        "SameSite=Strict",
        "Path=/console",
        "Max-Age=3600",
    ] {
        assert!(c.contains(attr), "{c}");
    }
    assert!(!c.contains(KEY), "the cookie must not hold the key: {c}");
    c.split(';').next().unwrap().to_string()
}

#[test]
fn disabled_pages_answer_the_contract_404s() {
    let s = TestServer::start(test_config());
    let r = s.call("GET", "/ui", &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"detail": "Playground UI is disabled. Set PLAYGROUND_UI_ENABLED=1 to enable."})
    );
    let r = s.call("GET", "/app", &[], None);
    assert_eq!(r.status, 404);
    assert_eq!(
        r.json(),
        json!({"detail": "Core OS UI is disabled. Set PLAYGROUND_UI_ENABLED=1 to enable."})
    );
    for p in [
        "/console",
        "/console/tenants",
        "/console/db/tenants",
        "/console/db/download",
    ] {
        not_found(&s.call("GET", p, &[], None));
        not_found(&s.call("GET", &format!("{p}?key=dev-console-secret"), &[], None));
    }
    not_found(&s.call("GET", "/assets/ui.js", &[], None));
}

#[test]
fn pages_and_assets_are_served_with_a_strict_csp() {
    let s = enabled();
    for (path, ct) in [
        ("/ui", "text/html"),
        ("/app", "text/html"),
        ("/assets/common.js", "text/javascript"),
        ("/assets/ui.js", "text/javascript"),
        ("/assets/app.js", "text/javascript"),
        ("/assets/common.css", "text/css"),
        ("/assets/console.css", "text/css"),
    ] {
        let r = s.call("GET", path, &[], None);
        assert_eq!(r.status, 200, "{path}");
        assert!(r.header("content-type").unwrap().starts_with(ct), "{path}");
        csp(&r);
        assert!(!r.body.contains(KEY), "{path} embeds the console key");
    }
    for path in ["/ui", "/app"] {
        let page = s.call("GET", path, &[], None).body;
        assert!(
            !page.contains("<script>") && !page.contains("style="),
            "{path}: inline code"
        );
        assert!(!page.contains("innerHTML"));
    }
    for js in ["common.js", "ui.js", "app.js"] {
        let body = s.call("GET", &format!("/assets/{js}"), &[], None).body;
        assert!(
            !body.contains("innerHTML") && !body.contains("eval("),
            "{js}"
        );
    }
    assert_eq!(s.call("GET", "/assets/nope.js", &[], None).status, 404);
}

#[test]
fn wrong_missing_or_empty_keys_are_plain_404s() {
    let s = enabled();
    for p in [
        "/console",
        "/console?key=",
        "/console?key=wrong",
        "/console?key=console-test-key-012345678",
        "/console/tenants?key=WRONG",
        "/console/db/download",
    ] {
        not_found(&s.call("GET", p, &[], None));
    }
    // The key as a cookie value is not a session.
    not_found(&s.call(
        "GET",
        "/console",
        &[("Cookie", &format!("console_session={KEY}"))],
        None,
    ));
    not_found(&s.call(
        "GET",
        "/console",
        &[("Cookie", "console_session=forged")],
        None,
    ));
}

#[test]
fn the_session_cookie_opens_every_page_and_the_table_allow_list_holds() {
    let s = enabled();
    let tenant = s
        .call(
            "POST",
            "/v1/tenants",
            &[],
            Some(&json!({"name": "<b>Acme</b>", "region": "eu", "admin_email": "ada@acme.io"})),
        )
        .json();
    let (tid, api_key) = (
        tenant["tenant_id"].as_str().unwrap().to_string(),
        tenant["api_key"].as_str().unwrap().to_string(),
    );
    let digest = bespin_core::ids::key_digest(&api_key);
    let digest_hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    let digest_nums = format!("{:?}", digest.to_vec()).replace(' ', "");
    let cookie = login(&s);
    let h = [("Cookie", cookie.as_str())];
    let mut pages: Vec<String> = vec![
        "/console".into(),
        "/console/tenants".into(),
        format!("/console/tenants/{tid}"),
        "/console/billing".into(),
        "/console/billing/plans/starter".into(),
        "/console/core-os".into(),
    ];
    pages.extend(bespin_core::console::tables().map(|t| format!("/console/db/{t}")));
    for p in &pages {
        let r = s.call("GET", p, &h, None);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        csp(&r);
        assert!(r.body.contains("- Bespin Dev Console</title>"), "{p}");
        for secret in [
            KEY,
            &api_key,
            &digest_hex,
            &digest_nums,
            "api_key_digest",
            "request_hash",
        ] {
            assert!(!r.body.contains(secret), "{p} shows a secret ({secret})");
        }
        assert!(
            !r.body.contains("<b>Acme</b>"),
            "{p}: unescaped tenant name"
        );
        assert!(!r.body.contains("<script"), "{p}");
    }
    let t = s.call("GET", "/console/tenants", &h, None).body;
    assert!(t.contains("&lt;b&gt;Acme&lt;/b&gt;") && t.contains(&tid));
    // Unknown tables, hidden tables and bad limits.
    for name in [
        "tenant_limits",
        "usage_rollups_daily",
        "sequences",
        "nope",
        "Tenants",
    ] {
        let r = s.call("GET", &format!("/console/db/{name}"), &h, None);
        assert_eq!(r.status, 404, "{name}");
        assert_eq!(r.json(), json!({"detail": "Table not allowed"}));
    }
    for bad in ["0", "1001", "x"] {
        let r = s.call("GET", &format!("/console/db/tenants?limit={bad}"), &h, None);
        assert_eq!(r.status, 422, "{bad}");
    }
    assert_eq!(
        s.call("GET", "/console/db/tenants?limit=1", &h, None)
            .status,
        200
    );
    let r = s.call("GET", "/console/tenants/nope", &h, None);
    assert_eq!(r.json(), json!({"detail": "Tenant not found"}));
    let r = s.call("GET", "/console/billing/plans/nope", &h, None);
    assert_eq!(r.json(), json!({"detail": "Plan not found"}));
    // The snapshot is a redb file holding the tenant.
    let r = s.raw("GET", "/console/db/download", &h, b"");
    assert_eq!(r.status, 200);
    assert!(
        r.header("content-disposition")
            .unwrap()
            .contains("bespin.redb")
    );
}

#[test]
fn the_snapshot_download_opens_as_a_database() {
    use std::io::{Read, Write};
    let s = enabled();
    s.call(
        "POST",
        "/v1/tenants",
        &[],
        Some(&json!({"name": "Snap", "region": "eu", "admin_email": "ada@acme.io"})),
    );
    let cookie = login(&s);
    // Read the raw bytes (the test client's body is text).
    let mut conn = std::net::TcpStream::connect(s.addr).unwrap();
    write!(
        conn,
        "GET /console/db/download HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut buf = Vec::new();
    conn.read_to_end(&mut buf).unwrap();
    let split = buf.windows(4).position(|w| w == b"\r\n\r\n").unwrap() + 4;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("snap.redb");
    std::fs::write(&path, &buf[split..]).unwrap();
    let copy = bespin_core::Bespin::open(&path).unwrap();
    let rows = copy.console().rows("tenants", None, 10).unwrap().unwrap();
    assert_eq!(rows.len(), 1);
}
