//! Deletes over HTTP: each record type's DELETE answers 200 once and 404 after, the record
//! leaves its list and the search at once, and the database stays consistent.
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestServer, test_config};
use serde_json::{Value, json};

#[test]
fn every_deletable_record_is_deleted_once_and_found_nowhere() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let h = t.admin_headers();
    let post = |path: &str, body: Value| {
        let r = s.call("POST", path, &h, Some(&body));
        assert!(r.status < 300, "{path}: {}", r.body);
        r.json()
    };
    let id = |v: &Value, f: &str| v[f].as_str().unwrap().to_owned();
    let task = id(&post("/v1/tasks", json!({"title": "quokka"})), "task_id");
    let decision = id(
        &post(
            "/v1/decisions",
            json!({"decision_date": "2026-01-02", "title": "quokka", "decision": "go"}),
        ),
        "decision_id",
    );
    let meeting = id(
        &post(
            "/v1/meetings",
            json!({"meeting_date": "2026-01-02", "title": "quokka", "notes": "n"}),
        ),
        "meeting_id",
    );
    let fact = id(
        &post(
            "/v1/memory/facts",
            json!({"category": "icp", "fact_key": "quokka", "fact_value": "v"}),
        ),
        "fact_id",
    );
    let link = id(
        &post(
            "/v1/evidence",
            json!({"entity_type": "decision", "entity_id": decision, "source_type": "manual", "source_ref": {"n": 1}}),
        ),
        "evidence_id",
    );
    let kpi = id(&post("/v1/kpis", json!({"name": "MRR"})), "kpi_id");
    let conv = id(
        &post("/v1/conversations", json!({"title": "c"})),
        "conversation_id",
    );
    let search = || {
        s.call("GET", "/v1/search?q=quokka", &h, None).json()["total"]
            .as_u64()
            .unwrap()
    };
    assert_eq!(search(), 4);
    let paths = [
        format!("/v1/records/decision/{decision}/evidence/{link}"),
        format!("/v1/tasks/{task}"),
        format!("/v1/decisions/{decision}"),
        format!("/v1/meetings/{meeting}"),
        format!("/v1/memory/facts/{fact}"),
        format!("/v1/kpis/{kpi}"),
        format!("/v1/conversations/{conv}"),
    ];
    for p in &paths {
        let r = s.call("DELETE", p, &h, None);
        assert_eq!(r.status, 200, "{p}: {}", r.body);
        assert!(r.json()["deleted_at"].is_string());
        assert_eq!(s.call("DELETE", p, &h, None).status, 404, "{p} twice");
    }
    assert_eq!(search(), 0);
    for p in [
        format!("/v1/tasks/{task}"),
        format!("/v1/decisions/{decision}"),
        format!("/v1/meetings/{meeting}"),
        format!("/v1/memory/facts/{fact}"),
        format!("/v1/conversations/{conv}"),
    ] {
        assert_eq!(s.call("GET", &p, &h, None).status, 404, "{p}");
    }
    // The timeline keeps the history, with the deletes.
    let tl = s
        .call("GET", &format!("/v1/timeline?entity_id={task}"), &h, None)
        .json();
    assert_eq!(tl["items"][0]["event_type"], "task_deleted", "{tl}");
    // A bad entity type in the evidence path is 422 at the path.
    let r = s.call(
        "DELETE",
        &format!("/v1/records/meeting/{meeting}/evidence/{link}"),
        &h,
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);
    let report = s.bespin.check().unwrap();
    assert!(report.is_ok(), "{report}");
}

#[test]
fn the_tenant_export_streams_its_rows_as_json_lines() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("acme", "a@acme.example");
    let other = s.create_tenant("other", "o@other.example");
    let member = s.add_user(&t, "m@acme.example", "member");
    for i in 0..300 {
        let r = s.call(
            "POST",
            "/v1/tasks",
            &t.admin_headers(),
            Some(&json!({"title": format!("task {i}")})),
        );
        assert_eq!(r.status, 201);
    }
    s.call(
        "POST",
        "/v1/tasks",
        &other.admin_headers(),
        Some(&json!({"title": "not yours"})),
    );
    let r = s.call("GET", "/v1/tenant/export", &t.admin_headers(), None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some("application/x-ndjson"));
    let lines: Vec<Value> = r
        .body
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let tasks = lines.iter().filter(|l| l["table"] == "co_tasks").count();
    assert_eq!(tasks, 300);
    assert!(!r.body.contains(&other.id) && !r.body.contains("not yours"));
    assert!(!r.body.contains(&t.key), "the tenant key");
    assert_eq!(
        s.call("GET", "/v1/tenant/export", &t.headers(&member), None)
            .status,
        403
    );
}

#[test]
fn an_erased_tenant_fails_at_once_and_its_rows_go_in_the_background() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("gone", "g@gone.example");
    let keep = s.create_tenant("kept", "k@kept.example");
    for i in 0..50 {
        let r = s.call(
            "POST",
            "/v1/tasks",
            &t.admin_headers(),
            Some(&json!({"title": format!("t{i}")})),
        );
        assert_eq!(r.status, 201);
    }
    let admin = [("X-Platform-Admin-Key", "test-admin-key")];
    let path = format!("/v1/admin/tenants/{}", t.id);
    // Without the platform key, as every admin route: 404. A wrong confirmation: 400.
    assert_eq!(
        s.call("DELETE", &path, &[], Some(&json!({"confirm": t.id})))
            .status,
        404
    );
    let r = s.call("DELETE", &path, &admin, Some(&json!({"confirm": keep.id})));
    assert_eq!(r.status, 400, "{}", r.body);
    let r = s.call("DELETE", &path, &admin, Some(&json!({"confirm": t.id})));
    assert_eq!(r.status, 202, "{}", r.body);
    assert_eq!(r.json()["state"], "erasing");
    // At once: its key authenticates nothing; a second erasure is 404.
    assert_eq!(
        s.call("GET", "/v1/me", &t.admin_headers(), None).status,
        401
    );
    assert_eq!(
        s.call("DELETE", &path, &admin, Some(&json!({"confirm": t.id})))
            .status,
        404
    );
    // The server's loop erases the rows; the other tenant is untouched.
    let erasure = format!("{path}/erasure");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let e = s.call("GET", &erasure, &admin, None).json();
        if e["state"] == "erased" {
            assert!(e["rows_deleted"].as_u64().unwrap() > 50);
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "erasure did not end: {e}"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    assert_eq!(
        s.call("GET", "/v1/me", &keep.admin_headers(), None).status,
        200
    );
    assert_eq!(
        s.call(
            "GET",
            &format!("/v1/admin/tenants/{}/erasure", keep.id),
            &admin,
            None
        )
        .status,
        404
    );
    let report = s.bespin.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("co_tasks"), 0);
    assert_eq!(report.rows_in("tenant_tombstones"), 1);
}
