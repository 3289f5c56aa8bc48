//! Keys and users over HTTP: user-bound keys by header and by bearer (also at `/mcp`), the
//! list that never shows a secret, revocation under load, rotation with a grace, users'
//! pages, roles and deactivation, and the scope matrix over every route of the router.
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestResponse, TestServer, TestTenant, test_config};
use serde_json::{Value, json};
use std::sync::atomic::{AtomicBool, Ordering};

fn consistent(s: &TestServer) {
    let r = s.bespin.check().unwrap();
    assert!(r.is_ok(), "{r}");
}

/// Makes a key for `user` with `scopes` (`None`: unscoped); returns (key id, clear key).
fn make_key(s: &TestServer, t: &TestTenant, user: &str, scopes: Option<Value>) -> (String, String) {
    let mut body = json!({"user_id": user, "name": "ci"});
    if let Some(sc) = scopes {
        body["scopes"] = sc;
    }
    let r = s.call("POST", "/v1/api-keys", &t.admin_headers(), Some(&body));
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    assert!(v["api_key"].as_str().unwrap().starts_with("bsk_"));
    (
        v["key_id"].as_str().unwrap().to_owned(),
        v["api_key"].as_str().unwrap().to_owned(),
    )
}

/// Revokes key `id` as the tenant's admin (asserting 200); the answer.
fn revoke(s: &TestServer, t: &TestTenant, id: &str) -> TestResponse {
    let r = s.call(
        "DELETE",
        &format!("/v1/api-keys/{id}"),
        &t.admin_headers(),
        None,
    );
    assert_eq!(r.status, 200, "{}", r.body);
    r
}

fn bearer(key: &str) -> String {
    format!("Bearer {key}")
}

fn as_bearer(
    s: &TestServer,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> TestResponse {
    let auth = bearer(key);
    s.call(method, path, &[("Authorization", &auth)], body)
}

#[test]
fn a_user_bound_key_works_by_header_and_by_bearer_and_lists_without_its_secret() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let member = s.add_user(&t, "m@acme.example", "member");
    let (id, key) = make_key(&s, &t, &member, None);
    // Bearer alone.
    let me = as_bearer(&s, &key, "GET", "/v1/me", None);
    assert_eq!(me.status, 200, "{}", me.body);
    assert_eq!(me.json()["user_id"], member.as_str());
    // X-API-Key with X-Tenant-ID, no X-User-ID.
    let h = [("X-Tenant-ID", t.id.as_str()), ("X-API-Key", key.as_str())];
    assert_eq!(s.call("GET", "/v1/me", &h, None).status, 200);
    // X-User-ID naming another user: 403.
    let h = [
        ("X-Tenant-ID", t.id.as_str()),
        ("X-User-ID", t.admin.as_str()),
        ("X-API-Key", key.as_str()),
    ];
    assert_eq!(s.call("GET", "/v1/me", &h, None).status, 403);
    // Bearer with another tenant's header: 401. The tenant key is no bearer key.
    let other = s.create_tenant("other", "o@other.example");
    let auth = bearer(&key);
    let h = [
        ("Authorization", auth.as_str()),
        ("X-Tenant-ID", other.id.as_str()),
    ];
    assert_eq!(s.call("GET", "/v1/me", &h, None).status, 401);
    assert_eq!(as_bearer(&s, &t.key, "GET", "/v1/me", None).status, 401);
    // The contract's tenant key still needs X-User-ID (400), as before.
    let h = [
        ("X-Tenant-ID", t.id.as_str()),
        ("X-API-Key", t.key.as_str()),
    ];
    assert_eq!(s.call("GET", "/v1/me", &h, None).status, 400);
    // The list: no secret, the last four characters, the day of last use.
    let list = s.call("GET", "/v1/api-keys", &t.admin_headers(), None);
    assert_eq!(list.status, 200);
    assert!(!list.body.contains(&key[4..]), "{}", list.body);
    let item = &list.json()[0];
    assert_eq!(item["key_id"], id.as_str());
    assert_eq!(item["last4"], &key[key.len() - 4..]);
    assert!(item.get("api_key").is_none());
    // A member sees their own keys only; members make none.
    let mh = t.headers(&member);
    assert_eq!(
        s.call("GET", "/v1/api-keys", &mh, None)
            .json()
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let r = s.call(
        "POST",
        "/v1/api-keys",
        &mh,
        Some(&json!({"user_id": member, "name": "x"})),
    );
    assert_eq!(r.status, 403);
    // Bad input: 422, nothing made.
    let r = s.call(
        "POST",
        "/v1/api-keys",
        &t.admin_headers(),
        Some(&json!({"user_id": member, "name": "x", "scopes": ["root"]})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let r = s.call(
        "POST",
        "/v1/api-keys",
        &t.admin_headers(),
        Some(&json!({"user_id": "nobody", "name": "x"})),
    );
    assert_eq!(r.status, 404, "{}", r.body);
    // Revoked: 401 at once.
    let r = revoke(&s, &t, &id);
    assert!(r.json()["revoked_at"].is_string());
    assert_eq!(as_bearer(&s, &key, "GET", "/v1/me", None).status, 401);
    assert_eq!(
        s.call("DELETE", "/v1/api-keys/key_nope", &t.admin_headers(), None)
            .status,
        404
    );
    consistent(&s);
}

#[test]
fn mcp_takes_a_bearer_key_alone() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let (_, key) = make_key(&s, &t, &t.admin, None);
    let auth = bearer(&key);
    let r = s.mcp(&[("Authorization", &auth)], "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(
        r.json()["result"]["tools"]
            .as_array()
            .is_some_and(|t| !t.is_empty())
    );
    // A read-only key may read through MCP, and its writes are refused by the core.
    let (_, ro) = make_key(&s, &t, &t.admin, Some(json!(["read_only"])));
    let auth = bearer(&ro);
    let h = [("Authorization", auth.as_str())];
    let r = s.mcp(&h, "tools/list", json!({}));
    assert_eq!(r.status, 200, "{}", r.body);
    let out = s.mcp_tool(
        &h,
        "create_task",
        json!({"title": "x", "idempotency_key": "k"}),
    );
    assert_eq!(out["isError"], true, "{out}");
    assert_eq!(s.bespin.check().unwrap().rows_in("co_tasks"), 0);
}

#[test]
fn nothing_authenticated_by_a_key_commits_after_its_revocation() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let (id, key) = make_key(&s, &t, &t.admin, None);
    let revoked = AtomicBool::new(false);
    let body = json!({"title": "load"});
    // 16 connections at once, each writing until its key is refused; the revocation is sent
    // from a 17th once the writers are going.
    let answers: Vec<Vec<(u16, Value, bool)>> = std::thread::scope(|sc| {
        let writers: Vec<_> = (0..16)
            .map(|_| {
                let (s, key, body, revoked) = (&s, &key, &body, &revoked);
                sc.spawn(move || {
                    let mut out = Vec::new();
                    loop {
                        let sent_after = revoked.load(Ordering::SeqCst);
                        let r = as_bearer(s, key, "POST", "/v1/tasks", Some(body));
                        let stop = r.status == 401;
                        out.push((r.status, r.json(), sent_after));
                        if stop || out.len() > 2_000 {
                            return out;
                        }
                    }
                })
            })
            .collect();
        std::thread::sleep(std::time::Duration::from_millis(300));
        revoke(&s, &t, &id);
        revoked.store(true, Ordering::SeqCst);
        writers.into_iter().map(|w| w.join().unwrap()).collect()
    });
    let revoked_at = s
        .call("GET", "/v1/api-keys", &t.admin_headers(), None)
        .json()[0]["revoked_at"]
        .as_str()
        .unwrap()
        .to_owned();
    let (mut ok, mut refused) = (0, 0);
    for (status, v, sent_after) in answers.iter().flatten() {
        match status {
            201 => {
                ok += 1;
                assert!(
                    !sent_after,
                    "a write sent after the revocation's answer committed"
                );
                let created = v["created_at"].as_str().unwrap();
                assert!(
                    created <= revoked_at.as_str(),
                    "{created} after {revoked_at}"
                );
            }
            401 => refused += 1,
            other => panic!("unexpected {other}: {v}"),
        }
    }
    assert_eq!(refused, 16, "every connection ends refused");
    assert!(ok > 0, "the writers wrote before the revocation");
    // Every 201 is a task, and no 401 left one.
    assert_eq!(s.bespin.check().unwrap().rows_in("co_tasks"), ok as u64);
    eprintln!("revocation under load: {ok} writes before, 16 refused after");
    consistent(&s);
}

#[test]
fn the_tenant_key_rotates_with_a_grace() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let r = s.call(
        "POST",
        "/v1/api-keys/tenant:rotate",
        &t.admin_headers(),
        Some(&json!({"grace_seconds": 3600})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let new = r.json()["api_key"].as_str().unwrap().to_owned();
    let fresh = TestTenant {
        key: new.clone(),
        ..t.clone()
    };
    assert_eq!(
        s.call("GET", "/v1/me", &t.admin_headers(), None).status,
        200
    );
    assert_eq!(
        s.call("GET", "/v1/me", &fresh.admin_headers(), None).status,
        200
    );
    let r = s.call(
        "POST",
        "/v1/api-keys/tenant:rotate",
        &fresh.admin_headers(),
        Some(&json!({"grace_seconds": 0})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    let newest = TestTenant {
        key: r.json()["api_key"].as_str().unwrap().to_owned(),
        ..t.clone()
    };
    assert_eq!(
        s.call("GET", "/v1/me", &t.admin_headers(), None).status,
        401
    );
    assert_eq!(
        s.call("GET", "/v1/me", &fresh.admin_headers(), None).status,
        401
    );
    assert_eq!(
        s.call("GET", "/v1/me", &newest.admin_headers(), None)
            .status,
        200
    );
    let r = s.call(
        "POST",
        "/v1/api-keys/tenant:rotate",
        &newest.admin_headers(),
        Some(&json!({"grace_seconds": 700000})),
    );
    assert_eq!(r.status, 422, "{}", r.body);
    consistent(&s);
}

#[test]
fn users_are_paged_changed_and_deactivated() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let member = s.add_user(&t, "m@acme.example", "member");
    s.add_user(&t, "n@acme.example", "member");
    let h = t.admin_headers();
    let p1 = s.call("GET", "/v1/users?limit=2", &h, None).json();
    assert_eq!(p1["items"].as_array().unwrap().len(), 2);
    let cursor = p1["next_cursor"].as_str().unwrap().to_owned();
    let p2 = s
        .call(
            "GET",
            &format!("/v1/users?limit=2&cursor={cursor}"),
            &h,
            None,
        )
        .json();
    assert_eq!(p2["items"].as_array().unwrap().len(), 1);
    assert!(p2["next_cursor"].is_null());
    assert_eq!(s.call("GET", "/v1/users?limit=0", &h, None).status, 422);
    assert_eq!(
        s.call("GET", "/v1/users", &t.headers(&member), None).status,
        403
    );
    let got = s.call("GET", &format!("/v1/users/{member}"), &h, None);
    assert_eq!(got.json()["deactivated"], false);
    // The last active admin stays: 409, nothing changed.
    let path = format!("/v1/users/{}", t.admin);
    let r = s.call("PATCH", &path, &h, Some(&json!({"role": "member"})));
    assert_eq!(r.status, 409, "{}", r.body);
    let r = s.call("PATCH", &path, &h, Some(&json!({"deactivated": true})));
    assert_eq!(r.status, 409, "{}", r.body);
    assert_eq!(s.call("PATCH", &path, &h, Some(&json!({}))).status, 400);
    // Deactivation: 401 for the user by the tenant key and by their keys; records stay.
    let (_, key) = make_key(&s, &t, &member, None);
    let mh = t.headers(&member);
    assert_eq!(
        s.call("POST", "/v1/tasks", &mh, Some(&json!({"title": "mine"})))
            .status,
        201
    );
    let mpath = format!("/v1/users/{member}");
    let r = s.call("PATCH", &mpath, &h, Some(&json!({"deactivated": true})));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.call("GET", "/v1/me", &mh, None).status, 401);
    assert_eq!(as_bearer(&s, &key, "GET", "/v1/me", None).status, 401);
    assert_eq!(s.bespin.check().unwrap().rows_in("co_tasks"), 1);
    let r = s.call(
        "PATCH",
        &mpath,
        &h,
        Some(&json!({"deactivated": false, "role": "admin"})),
    );
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(s.call("GET", "/v1/me", &mh, None).json()["role"], "admin");
    // The revoked key stays revoked.
    assert_eq!(as_bearer(&s, &key, "GET", "/v1/me", None).status, 401);
    consistent(&s);
}

/// Every route of the router as three callers — the tenant key, a read-only key and a key
/// scoped to the `timeline` capability alone: a read-only key gets 403 on every write route
/// and changes nothing, and the tenant key's answer on every read; the narrow key gets the
/// tenant key's answer or a 403 naming its scopes on every read, and a 403 (or the route's
/// own refusal) on every write, never a 5xx.
#[test]
fn scope_matrix_over_every_route() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let (_, ro) = make_key(&s, &t, &t.admin, Some(json!(["read_only"])));
    let (_, narrow) = make_key(&s, &t, &t.admin, Some(json!(["timeline"])));
    let task = s
        .call(
            "POST",
            "/v1/tasks",
            &t.admin_headers(),
            Some(&json!({"title": "x"})),
        )
        .json()["task_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let state = bespin_http::AppState::new(s.bespin.clone(), test_config());
    let routes: Vec<(String, hyper::Method)> = state
        .routes()
        .iter()
        .filter(|r| {
            matches!(
                r.doc.auth,
                bespin_http::openapi::Auth::Tenant | bespin_http::openapi::Auth::TenantIdempotent
            )
        })
        // The event stream never ends: its scope is the one of GET /v1/events. MCP's POST
        // only reads at the door (its tools are the routes' operations): its own test.
        .filter(|r| r.path != "/v1/events/stream" && !r.doc.post_reads)
        .map(|r| (fill(&r.path.replace("{task_id}", &task)), r.method.clone()))
        .collect();
    // Pass 1: the read-only key on every write route writes nothing. The server's upkeep may
    // sign a checkpoint of the tenant's audit chain meanwhile (its first tick comes at start):
    // that row is the server's own, not the key's.
    let written = || {
        let mut rows = s.bespin.check().unwrap().rows;
        rows.remove("audit_checkpoints");
        rows
    };
    let before = written();
    let mut writes = 0;
    for (path, method) in routes.iter().filter(|(_, m)| *m != hyper::Method::GET) {
        let r = as_bearer(&s, &ro, method.as_str(), path, Some(&json!({"title": "t"})));
        assert_eq!(
            r.status, 403,
            "read-only key on {method} {path}: {}",
            r.body
        );
        assert!(r.body.contains("read-only"), "{}", r.body);
        writes += 1;
    }
    assert_eq!(written(), before, "a read-only key wrote");
    // Pass 2: reads, as each caller.
    let mut reads = 0;
    for (path, _) in routes.iter().filter(|(_, m)| *m == hyper::Method::GET) {
        let as_tenant = s.call("GET", path, &t.admin_headers(), None);
        let as_ro = as_bearer(&s, &ro, "GET", path, None);
        assert_eq!(as_ro.status, as_tenant.status, "GET {path}: {}", as_ro.body);
        let as_narrow = as_bearer(&s, &narrow, "GET", path, None);
        assert!(
            as_narrow.status == as_tenant.status
                || (as_narrow.status == 403 && as_narrow.body.contains("scope")),
            "narrow key on GET {path}: {} {}",
            as_narrow.status,
            as_narrow.body
        );
        reads += 1;
    }
    // Pass 3: writes by the narrow key: refused by scope where a capability is needed.
    for (path, method) in routes.iter().filter(|(_, m)| *m != hyper::Method::GET) {
        let r = as_bearer(
            &s,
            &narrow,
            method.as_str(),
            path,
            Some(&json!({"title": "t"})),
        );
        assert!(r.status < 500, "narrow key on {method} {path}: {}", r.body);
    }
    // Cells that must hold: the key's capability is open to it, others are not.
    assert_eq!(
        as_bearer(&s, &narrow, "GET", "/v1/timeline", None).status,
        200
    );
    let r = as_bearer(&s, &narrow, "GET", "/v1/tasks", None);
    assert_eq!(r.status, 403, "{}", r.body);
    let r = as_bearer(
        &s,
        &narrow,
        "POST",
        "/v1/tasks",
        Some(&json!({"title": "t"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let r = as_bearer(
        &s,
        &narrow,
        "POST",
        "/v1/api-keys",
        Some(&json!({"user_id": t.admin, "name": "wider"})),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    assert!(
        reads >= 20 && writes >= 20,
        "{reads} reads, {writes} writes"
    );
    eprintln!("scope matrix: {reads} read routes, {writes} write routes, three callers");
    consistent(&s);
}

/// Fills the path parameters left with an id that exists nowhere.
fn fill(path: &str) -> String {
    path.split('/')
        .map(|seg| {
            if seg.starts_with('{') && seg.ends_with('}') {
                "00000000-0000-4000-8000-000000000000"
            } else {
                seg
            }
        })
        .collect::<Vec<_>>()
        .join("/")
}

#[test]
fn failed_bound_keys_by_header_and_by_bearer_reach_the_metrics_without_an_empty_tenant() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let member = s.add_user(&t, "m@acme.example", "member");
    let (id, key) = make_key(&s, &t, &member, None);
    revoke(&s, &t, &id);
    // By header, claiming the tenant (and naming the key's user: without X-User-ID an unknown
    // key is the contract's 400 for the missing header, which counts as no failure): counted
    // for the client and the tenant.
    let h = [
        ("X-Tenant-ID", t.id.as_str()),
        ("X-User-ID", member.as_str()),
        ("X-API-Key", key.as_str()),
    ];
    for _ in 0..2 {
        assert_eq!(s.call("GET", "/v1/me", &h, None).status, 401);
    }
    // By bearer alone (revoked, then made up): no tenant claimed, counted for the client.
    for k in [key.as_str(), key.as_str(), "bsk_madeup"] {
        assert_eq!(as_bearer(&s, k, "GET", "/v1/me", None).status, 401);
    }
    let m = s.call("GET", "/metrics", &[], None).body;
    let sample = |name: &str| bespin_http::testing::metric_sample(&m, name);
    assert_eq!(sample("bespin_auth_failures_total"), "5");
    assert_eq!(
        sample(&format!(
            "bespin_auth_failures_recent_by_tenant{{tenant=\"{}\"}}",
            t.id
        )),
        "2"
    );
    assert_eq!(
        sample("bespin_auth_failures_recent_by_client{client=\"127.0.0.1\"}"),
        "5"
    );
    assert!(
        !m.contains("bespin_auth_failures_recent_by_tenant{tenant=\"\"}"),
        "a failure that claimed no tenant is counted under an empty one:\n{m}"
    );
}
