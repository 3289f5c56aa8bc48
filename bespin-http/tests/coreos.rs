//! The Core Business OS over real HTTP: the seed README's Core OS smoke scenario step by step,
//! tenant isolation on every route that takes an id, validation sources, a 429 that writes
//! nothing, and the OpenAPI document.
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestServer, test_config};
use serde_json::{Value, json};

const PLATFORM: (&str, &str) = ("X-Platform-Admin-Key", "test-admin-key");

struct Tenant {
    id: String,
    key: String,
    admin: String,
    member: String,
}

fn tenant(s: &TestServer, name: &str) -> Tenant {
    let t = s.create_tenant(name, "a@x.io");
    let member = s.add_user(&t, "m@x.io", "member");
    Tenant {
        id: t.id,
        key: t.key,
        admin: t.admin,
        member,
    }
}

impl Tenant {
    fn call(
        &self,
        s: &TestServer,
        user: &str,
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> (u16, Value) {
        let h = [
            ("X-Tenant-ID", self.id.as_str()),
            ("X-User-ID", user),
            ("X-API-Key", self.key.as_str()),
        ];
        let r = s.call(method, path, &h, body);
        (r.status, r.json())
    }

    fn admin(&self, s: &TestServer, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (st, v) = self.call(s, &self.admin, method, path, body);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }

    fn member(&self, s: &TestServer, method: &str, path: &str, body: Option<&Value>) -> Value {
        let (st, v) = self.call(s, &self.member, method, path, body);
        assert!((200..300).contains(&st), "{method} {path}: {st} {v}");
        v
    }
}

fn id(v: &Value, field: &str) -> String {
    v[field].as_str().unwrap().to_owned()
}

/// Raw units per event key of `/v1/billing/usage`, non-zero only.
fn usage(s: &TestServer, t: &Tenant) -> Vec<(String, f64)> {
    let u = t.admin(s, "GET", "/v1/billing/usage", None);
    let mut out: Vec<(String, f64)> = u["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| {
            (
                b["event_key"].as_str().unwrap().to_owned(),
                b["raw_units"].as_f64().unwrap(),
            )
        })
        .filter(|(_, n)| *n > 0.0)
        .collect();
    out.sort_by(|a, b| a.0.cmp(&b.0));
    out
}

#[test]
fn core_os_smoke_scenario_from_the_seed_readme() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "Acme");

    // 2. Admin creates a memory fact (ICP definition); members may not.
    let icp = json!({"category": "icp", "fact_key": "ICP.primary", "fact_value": "Mid-market SaaS, 50-500 employees"});
    let (st, fact) = t.call(&s, &t.admin, "POST", "/v1/memory/facts", Some(&icp));
    assert_eq!(st, 201, "{fact}");
    assert_eq!(
        (
            &fact["status"],
            &fact["supersedes_fact_id"],
            &fact["tenant_id"]
        ),
        (&json!("active"), &Value::Null, &json!(t.id))
    );
    let (st, v) = t.call(&s, &t.member, "POST", "/v1/memory/facts", Some(&icp));
    assert_eq!(
        (st, v),
        (
            403,
            json!({"detail": "Role 'member' is not authorized for this action"})
        )
    );
    let (st, v) = t.call(&s, &t.admin, "POST", "/v1/memory/facts", Some(&icp));
    assert_eq!(st, 409, "{v}");

    // 3. Admin records a pricing decision.
    let (st, decision) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/decisions",
        Some(
            &json!({"decision_date": "2026-01-15", "title": "Q1 Pricing Strategy",
            "context": "Competitors cut prices", "decision": "Keep pricing, add annual discount"}),
        ),
    );
    assert_eq!(st, 201, "{decision}");
    assert_eq!(decision["status"], "active");
    let decision_id = id(&decision, "decision_id");

    // 4. Member proposes an outreach action.
    let (st, action) = t.call(
        &s,
        &t.member,
        "POST",
        "/v1/actions",
        Some(&json!({"title": "Follow up with Acme Corp", "description": "Re-engage stalled enterprise deal",
            "action_type": "outreach", "source": "user", "payload": {"company": "Acme Corp"}})),
    );
    assert_eq!(st, 201, "{action}");
    assert_eq!(
        (
            &action["status"],
            &action["created_by_user_id"],
            &action["payload"]
        ),
        (
            &json!("proposed"),
            &json!(t.member),
            &json!({"company": "Acme Corp"})
        )
    );
    let action_id = id(&action, "action_id");
    let listed = t.member(&s, "GET", "/v1/actions", None);
    assert_eq!(
        (listed["total"].clone(), listed["limit"].clone()),
        (json!(1), json!(50))
    );

    // 5. Admin approves (a member cannot) and executes it.
    let approve = format!("/v1/actions/{action_id}/approve");
    let comment = json!({"comment": "Priority deal - approved"});
    let (st, _) = t.call(&s, &t.member, "POST", &approve, Some(&comment));
    assert_eq!(st, 403);
    let approved = t.admin(&s, "POST", &approve, Some(&comment));
    assert_eq!(approved["status"], "approved");
    assert!(approved.get("review").is_none());
    // Repeating is a no-op; the other verdict is a conflict.
    assert_eq!(t.admin(&s, "POST", &approve, Some(&json!({}))), approved);
    let (st, v) = t.call(
        &s,
        &t.admin,
        "POST",
        &format!("/v1/actions/{action_id}/reject"),
        Some(&json!({})),
    );
    assert_eq!(
        (st, v),
        (
            409,
            json!({"detail": "Cannot reject an already approved action"})
        )
    );
    let execute = format!("/v1/actions/{action_id}/execute");
    let run = json!({"execution_status": "succeeded", "result": {"message": "Email sent"}});
    let executed = t.admin(&s, "POST", &execute, Some(&run));
    assert_eq!(executed["action"]["status"], "executed");
    assert_eq!(
        executed["execution"]["result"],
        json!({"message": "Email sent"})
    );
    assert_eq!(executed["execution"]["executed_by_user_id"], json!(t.admin));
    // A replay returns the original execution.
    let replay = t.admin(
        &s,
        "POST",
        &execute,
        Some(&json!({"execution_status": "failed"})),
    );
    assert_eq!(replay, executed);
    let detail = t.member(&s, "GET", &format!("/v1/actions/{action_id}"), None);
    assert_eq!(detail["review"]["decision"], "approved");
    assert_eq!(detail["review"]["comment"], "Priority deal - approved");
    assert_eq!(detail["execution"], executed["execution"]);

    // 6. Admin creates a task assigned to the member; 7. the member completes it.
    let (st, task) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/tasks",
        Some(
            &json!({"title": "Prepare pricing update", "assigned_to_user_id": t.member,
            "priority": "high", "due_date": "2026-02-01",
            "linked_entity_type": "decision", "linked_entity_id": decision_id}),
        ),
    );
    assert_eq!(st, 201, "{task}");
    assert_eq!(
        (&task["status"], &task["priority"]),
        (&json!("todo"), &json!("high"))
    );
    let task_id = id(&task, "task_id");
    let mine = t.member(
        &s,
        "GET",
        &format!("/v1/tasks?assigned_to_user_id={}", t.member),
        None,
    );
    assert_eq!(mine["items"][0]["task_id"], json!(task_id));
    // The contract takes no body on complete: an empty request is fine.
    let done = t.member(&s, "POST", &format!("/v1/tasks/{task_id}/complete"), None);
    assert_eq!(done["status"], "done");
    // Completing again is a no-op.
    assert_eq!(
        t.member(&s, "POST", &format!("/v1/tasks/{task_id}/complete"), None),
        done
    );

    // 8. Admin writes a meeting note.
    let (st, meeting) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/meetings",
        Some(
            &json!({"meeting_date": "2026-01-20", "title": "Weekly sync",
            "notes": "Discussed the pricing rollout", "linked_entity_type": "decision",
            "linked_entity_id": decision_id}),
        ),
    );
    assert_eq!(st, 201, "{meeting}");
    let meeting_id = id(&meeting, "meeting_id");

    // 9. Admin attaches evidence to the decision.
    let (st, ev) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/evidence",
        Some(
            &json!({"entity_type": "decision", "entity_id": decision_id, "source_type": "note",
            "source_ref": {"meeting_id": meeting_id}, "snippet": "Agreed in the weekly sync"}),
        ),
    );
    assert_eq!(st, 201, "{ev}");
    assert_eq!(ev["source_ref"], json!({"meeting_id": meeting_id}));
    let links = t.member(
        &s,
        "GET",
        &format!("/v1/evidence?entity_type=decision&entity_id={decision_id}"),
        None,
    );
    assert_eq!(links["total"], 1);
    assert_eq!(links["items"][0], ev);

    // 10. Member searches "pricing": the decision, the task and the meeting note match.
    let found = t.member(&s, "GET", "/v1/search?q=pricing", None);
    assert_eq!(found["q"], "pricing");
    let mut hits: Vec<(String, String)> = found["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| (id(h, "entity_type"), id(h, "entity_id")))
        .collect();
    hits.sort();
    assert_eq!(
        hits,
        [
            ("decision".to_owned(), decision_id.clone()),
            ("meeting".to_owned(), meeting_id.clone()),
            ("task".to_owned(), task_id.clone()),
        ]
    );
    assert_eq!(found["total"], 3);
    let only_tasks = t.member(&s, "GET", "/v1/search?q=pricing&types=tasks", None);
    assert_eq!(only_tasks["total"], 1);

    // 11. The unified timeline, newest first.
    let tl = t.member(&s, "GET", "/v1/timeline", None);
    let types: Vec<&str> = tl["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["event_type"].as_str().unwrap())
        .collect();
    assert_eq!(
        types,
        [
            "evidence_link_created",
            "meeting_note_created",
            "task_completed",
            "task_created",
            "action_executed",
            "action_approved",
            "action_created",
            "decision_created",
            "memory_fact_created",
        ]
    );
    assert_eq!(tl["total"], 9);
    let first = &tl["items"][0];
    assert_eq!(
        (
            &first["entity_type"],
            &first["entity_id"],
            &first["summary"],
            &first["metadata"]
        ),
        (
            &json!("decision"),
            &json!(decision_id),
            &json!("Evidence linked to decision"),
            &json!({"source_type": "note"})
        )
    );
    let on_action = t.member(
        &s,
        "GET",
        &format!("/v1/timeline?entity_type=action&entity_id={action_id}&limit=2"),
        None,
    );
    assert_eq!(
        (
            on_action["total"].clone(),
            on_action["items"].as_array().unwrap().len()
        ),
        (json!(3), 2)
    );
    assert_eq!(
        on_action["items"][0]["summary"],
        "Action executed: Follow up with Acme Corp (succeeded)"
    );
    // The `before` cursor pages past a given event.
    let older = t.member(
        &s,
        "GET",
        &format!(
            "/v1/timeline?before={}",
            tl["items"][6]["event_id"].as_str().unwrap()
        ),
        None,
    );
    assert_eq!(older["items"][0]["event_type"], "decision_created");

    // The record explorer: the decision with its evidence and its events.
    let rec = t.member(
        &s,
        "GET",
        &format!("/v1/records/decision/{decision_id}"),
        None,
    );
    assert_eq!(rec["entity"], decision);
    assert_eq!(rec["evidence"], json!([ev]));
    assert_eq!(
        rec["timeline"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| e["event_type"].clone())
            .collect::<Vec<_>>(),
        [json!("evidence_link_created"), json!("decision_created")]
    );
    let rec = t.member(&s, "GET", &format!("/v1/records/action/{action_id}"), None);
    assert_eq!(rec["entity"], executed["action"]);
    assert!(rec["entity"].get("review").is_none());

    // Supersede the ICP fact; the list shows only the active version by default.
    let fact_id = id(&fact, "fact_id");
    let newer = t.admin(
        &s,
        "POST",
        &format!("/v1/memory/facts/{fact_id}/supersede"),
        Some(&json!({"fact_value": "Mid-market SaaS, 100-1000 employees"})),
    );
    assert_eq!(newer["supersedes_fact_id"], json!(fact_id));
    let facts = t.member(&s, "GET", "/v1/memory/facts", None);
    assert_eq!(facts["total"], 1);
    assert_eq!(facts["items"][0]["fact_id"], newer["fact_id"]);
    let all = t.member(&s, "GET", "/v1/memory/facts?status=all", None);
    assert_eq!(all["total"], 2);

    // 12. Billing usage shows one unit of every metered Core OS event.
    assert_eq!(
        usage(&s, &t),
        [
            ("action_approved".to_owned(), 1.0),
            ("action_created".to_owned(), 1.0),
            ("action_executed".to_owned(), 1.0),
            ("decision_created".to_owned(), 1.0),
            ("evidence_link_created".to_owned(), 1.0),
            ("meeting_note_created".to_owned(), 1.0),
            ("memory_fact_created".to_owned(), 1.0),
            ("memory_fact_superseded".to_owned(), 1.0),
            ("search_query".to_owned(), 2.0),
            ("task_completed".to_owned(), 1.0),
            ("task_created".to_owned(), 1.0),
        ]
    );
}

#[test]
fn patches_and_cancel_over_http() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "Acme");
    let a = t.member(
        &s,
        "POST",
        "/v1/actions",
        Some(&json!({"title": "Draft", "action_type": "outreach"})),
    );
    let path = format!("/v1/actions/{}", id(&a, "action_id"));
    let edited = t.member(&s, "PATCH", &path, Some(&json!({"title": "Final"})));
    assert_eq!(edited["title"], "Final");
    // An unchanged PATCH is a no-op (same updated_at).
    assert_eq!(
        t.member(&s, "PATCH", &path, Some(&json!({"title": "Final"}))),
        edited
    );
    let cancelled = t.member(
        &s,
        "POST",
        &format!("{path}/cancel"),
        Some(&json!({"comment": "Next quarter"})),
    );
    assert_eq!(cancelled["status"], "cancelled");
    let listed = t.member(&s, "GET", "/v1/actions?status=cancelled", None);
    assert_eq!(listed["items"][0]["action_id"], a["action_id"]);
    assert_eq!(t.member(&s, "GET", "/v1/actions", None)["total"], 0);
    assert_eq!(
        t.member(&s, "GET", "/v1/actions?status=all", None)["total"],
        1
    );

    let task = t.member(&s, "POST", "/v1/tasks", Some(&json!({"title": "T"})));
    let tpath = format!("/v1/tasks/{}", id(&task, "task_id"));
    let doing = t.member(
        &s,
        "PATCH",
        &tpath,
        Some(&json!({"status": "doing", "description": "d"})),
    );
    assert_eq!(
        (&doing["status"], &doing["description"]),
        (&json!("doing"), &json!("d"))
    );
    // The creator of an unassigned task may not complete it.
    let (st, v) = t.call(&s, &t.member, "POST", &format!("{tpath}/complete"), None);
    assert_eq!(
        (st, v),
        (
            403,
            json!({"detail": "Not authorized to complete this task"})
        )
    );

    let d = t.admin(
        &s,
        "POST",
        "/v1/decisions",
        Some(&json!({"decision_date": "2026-01-01", "title": "D", "decision": "x", "rationale": "r"})),
    );
    let dpath = format!("/v1/decisions/{}", id(&d, "decision_id"));
    let d2 = t.admin(&s, "PATCH", &dpath, Some(&json!({"rationale": null})));
    assert_eq!(d2["rationale"], Value::Null);
    let (st, _) = t.call(&s, &t.member, "PATCH", &dpath, Some(&json!({"title": "M"})));
    assert_eq!(st, 403);
    assert_eq!(t.member(&s, "GET", "/v1/decisions", None)["items"][0], d2);

    let m = t.member(
        &s,
        "POST",
        "/v1/meetings",
        Some(&json!({"meeting_date": "2026-01-02", "title": "M", "notes": "n"})),
    );
    let mpath = format!("/v1/meetings/{}", id(&m, "meeting_id"));
    let m2 = t.member(&s, "PATCH", &mpath, Some(&json!({"notes": "more"})));
    assert_eq!(m2["notes"], "more");
    assert_eq!(t.member(&s, "GET", &mpath, None), m2);
    let window = t.member(
        &s,
        "GET",
        "/v1/meetings?from=2026-01-02&to=2026-01-02",
        None,
    );
    assert_eq!(window["total"], 1);
    assert_eq!(
        t.member(&s, "GET", "/v1/meetings?from=2026-01-03", None)["total"],
        0
    );

    let f = t.admin(
        &s,
        "POST",
        "/v1/memory/facts",
        Some(&json!({"category": "pricing", "fact_key": "price.base", "fact_value": "99"})),
    );
    let fpath = format!("/v1/memory/facts/{}", id(&f, "fact_id"));
    let f2 = t.admin(&s, "PATCH", &fpath, Some(&json!({"fact_value": "109"})));
    assert_eq!(f2["fact_value"], "109");
    assert_eq!(t.member(&s, "GET", &fpath, None), f2);
}

#[test]
fn another_tenants_records_are_404_on_every_id_route() {
    let s = TestServer::start(test_config());
    let a = tenant(&s, "Acme");
    let b = tenant(&s, "Globex");
    let action = a.member(
        &s,
        "POST",
        "/v1/actions",
        Some(&json!({"title": "Secret outreach", "action_type": "outreach"})),
    );
    let task = a.admin(
        &s,
        "POST",
        "/v1/tasks",
        Some(&json!({"title": "Secret task"})),
    );
    let decision = a.admin(
        &s,
        "POST",
        "/v1/decisions",
        Some(&json!({"decision_date": "2026-01-01", "title": "Secret decision", "decision": "x"})),
    );
    let meeting = a.admin(
        &s,
        "POST",
        "/v1/meetings",
        Some(&json!({"meeting_date": "2026-01-01", "title": "Secret meeting", "notes": "n"})),
    );
    let fact = a.admin(
        &s,
        "POST",
        "/v1/memory/facts",
        Some(&json!({"category": "other", "fact_key": "secret", "fact_value": "v"})),
    );
    let (ac, tk, de, me, fa) = (
        id(&action, "action_id"),
        id(&task, "task_id"),
        id(&decision, "decision_id"),
        id(&meeting, "meeting_id"),
        id(&fact, "fact_id"),
    );
    let before = usage(&s, &a);
    let a_timeline = a.admin(&s, "GET", "/v1/timeline", None);

    let comment = json!({"comment": "c"});
    let run = json!({"execution_status": "succeeded"});
    let title = json!({"title": "Hijacked"});
    let value = json!({"fact_value": "Hijacked"});
    // (method, path template, body, detail); `{}` is replaced by the other tenant's id, then
    // by an id that exists nowhere, and both answers must be identical.
    let routes: Vec<(&str, String, Option<&Value>, &str)> = vec![
        ("GET", "/v1/actions/{}".to_owned(), None, "Action not found"),
        (
            "PATCH",
            "/v1/actions/{}".to_owned(),
            Some(&title),
            "Action not found",
        ),
        (
            "POST",
            "/v1/actions/{}/cancel".to_owned(),
            Some(&comment),
            "Action not found",
        ),
        (
            "POST",
            "/v1/actions/{}/approve".to_owned(),
            Some(&comment),
            "Action not found",
        ),
        (
            "POST",
            "/v1/actions/{}/reject".to_owned(),
            Some(&comment),
            "Action not found",
        ),
        (
            "POST",
            "/v1/actions/{}/execute".to_owned(),
            Some(&run),
            "Action not found",
        ),
        ("GET", "/v1/tasks/{}".to_owned(), None, "Task not found"),
        (
            "PATCH",
            "/v1/tasks/{}".to_owned(),
            Some(&title),
            "Task not found",
        ),
        (
            "POST",
            "/v1/tasks/{}/complete".to_owned(),
            None,
            "Task not found",
        ),
        (
            "GET",
            "/v1/decisions/{}".to_owned(),
            None,
            "Decision not found",
        ),
        (
            "PATCH",
            "/v1/decisions/{}".to_owned(),
            Some(&title),
            "Decision not found",
        ),
        (
            "GET",
            "/v1/meetings/{}".to_owned(),
            None,
            "Meeting note not found",
        ),
        (
            "PATCH",
            "/v1/meetings/{}".to_owned(),
            Some(&title),
            "Meeting note not found",
        ),
        (
            "GET",
            "/v1/memory/facts/{}".to_owned(),
            None,
            "Memory fact not found",
        ),
        (
            "PATCH",
            "/v1/memory/facts/{}".to_owned(),
            Some(&value),
            "Memory fact not found",
        ),
        (
            "POST",
            "/v1/memory/facts/{}/supersede".to_owned(),
            Some(&value),
            "Memory fact not found",
        ),
        (
            "GET",
            "/v1/records/action/{}".to_owned(),
            None,
            "Action not found",
        ),
        (
            "GET",
            "/v1/records/task/{}".to_owned(),
            None,
            "Task not found",
        ),
        (
            "GET",
            "/v1/records/decision/{}".to_owned(),
            None,
            "Decision not found",
        ),
        (
            "GET",
            "/v1/records/meeting/{}".to_owned(),
            None,
            "Meeting note not found",
        ),
        (
            "GET",
            "/v1/records/memory_fact/{}".to_owned(),
            None,
            "Memory fact not found",
        ),
    ];
    let owner_id = |p: &str| {
        if p.contains("/actions/") || p.contains("/action/") {
            ac.clone()
        } else if p.contains("/tasks/") || p.contains("/task/") {
            tk.clone()
        } else if p.contains("/decisions/") || p.contains("/decision/") {
            de.clone()
        } else if p.contains("/meetings/") || p.contains("/meeting/") {
            me.clone()
        } else {
            fa.clone()
        }
    };
    for (method, template, body, detail) in &routes {
        let expected = (404, json!({"detail": detail}));
        for user in [&b.admin, &b.member] {
            let foreign = template.replace("{}", &owner_id(template));
            let ghost = template.replace("{}", "00000000-0000-4000-8000-000000000000");
            let got_foreign = b.call(&s, user, method, &foreign, *body);
            let got_ghost = b.call(&s, user, method, &ghost, *body);
            // Admin-only routes check the role before the lookup (40 §1.8–§1.10, §3.5, §5.5,
            // §5.6): a member gets the same 403 for another tenant's id as for a missing one.
            let admin_first = template.ends_with("/approve")
                || template.ends_with("/reject")
                || template.ends_with("/execute")
                || (method == &"PATCH" && template.contains("decisions"))
                || (template.contains("/memory/facts/{}") && *method != "GET");
            if user == &b.member && admin_first {
                assert_eq!(got_foreign, got_ghost, "{method} {template}");
                assert_eq!(got_foreign.0, 403, "{method} {template}");
                continue;
            }
            assert_eq!(got_foreign, expected, "{method} {foreign} as {user}");
            assert_eq!(got_ghost, expected, "{method} {ghost} as {user}");
        }
    }
    // Evidence on another tenant's record is refused the same way as on a missing one.
    for (et, eid, detail) in [
        ("action", &ac, "Action not found"),
        ("task", &tk, "Task not found"),
        ("decision", &de, "Decision not found"),
        ("memory_fact", &fa, "Memory fact not found"),
    ] {
        let body =
            json!({"entity_type": et, "entity_id": eid, "source_type": "manual", "source_ref": {}});
        assert_eq!(
            b.call(&s, &b.admin, "POST", "/v1/evidence", Some(&body)),
            (404, json!({"detail": detail})),
            "{et}"
        );
        assert_eq!(
            b.call(
                &s,
                &b.admin,
                "GET",
                &format!("/v1/evidence?entity_type={et}&entity_id={eid}"),
                None,
            ),
            (404, json!({"detail": detail})),
            "{et}"
        );
    }
    // Lists, the timeline and search never show the other tenant's rows.
    for path in [
        "/v1/actions?status=all",
        "/v1/tasks",
        "/v1/decisions",
        "/v1/meetings",
        "/v1/memory/facts?status=all",
        "/v1/timeline",
        &format!("/v1/timeline?entity_type=action&entity_id={ac}"),
    ] {
        let v = b.admin(&s, "GET", path, None);
        assert_eq!(
            (v["total"].clone(), v["items"].clone()),
            (json!(0), json!([])),
            "{path}"
        );
    }
    let found = b.admin(&s, "GET", "/v1/search?q=Secret", None);
    assert_eq!(
        (found["total"].clone(), found["results"].clone()),
        (json!(0), json!([]))
    );
    // Nothing was written to the owner's records, timeline or usage.
    assert_eq!(usage(&s, &a), before);
    assert_eq!(a.admin(&s, "GET", "/v1/timeline", None), a_timeline);
    assert_eq!(
        a.admin(&s, "GET", &format!("/v1/actions/{ac}"), None)["title"],
        "Secret outreach"
    );
    assert_eq!(
        a.admin(&s, "GET", &format!("/v1/memory/facts/{fa}"), None)["fact_value"],
        "v"
    );
}

fn locs(v: &Value) -> Vec<Value> {
    v["detail"]
        .as_array()
        .unwrap_or_else(|| panic!("not a validation error: {v}"))
        .iter()
        .map(|d| d["loc"].clone())
        .collect()
}

#[test]
fn validation_errors_name_their_source_and_auth_comes_first() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "Acme");
    let get = |path: &str| t.call(&s, &t.admin, "GET", path, None);

    // Query values: 422 at ["query", <param>].
    for (path, loc, kind) in [
        (
            "/v1/actions?limit=0",
            json!(["query", "limit"]),
            "greater_than_equal",
        ),
        (
            "/v1/actions?limit=201",
            json!(["query", "limit"]),
            "less_than_equal",
        ),
        (
            "/v1/tasks?limit=abc",
            json!(["query", "limit"]),
            "int_parsing",
        ),
        (
            "/v1/tasks?offset=-1",
            json!(["query", "offset"]),
            "greater_than_equal",
        ),
        (
            "/v1/tasks?due_before=2026-02-30",
            json!(["query", "due_before"]),
            "date_from_datetime_parsing",
        ),
        (
            "/v1/decisions?limit=101",
            json!(["query", "limit"]),
            "less_than_equal",
        ),
        (
            "/v1/meetings?from=soon",
            json!(["query", "from"]),
            "date_from_datetime_parsing",
        ),
        (
            "/v1/memory/facts?limit=0",
            json!(["query", "limit"]),
            "greater_than_equal",
        ),
        (
            "/v1/timeline?limit=201",
            json!(["query", "limit"]),
            "less_than_equal",
        ),
        ("/v1/search", json!(["query", "q"]), "missing"),
        ("/v1/search?q=", json!(["query", "q"]), "string_too_short"),
        (
            "/v1/search?q=x&limit=101",
            json!(["query", "limit"]),
            "less_than_equal",
        ),
        (
            "/v1/evidence?entity_id=x",
            json!(["query", "entity_type"]),
            "missing",
        ),
    ] {
        let (st, v) = get(path);
        assert_eq!(st, 422, "{path}: {v}");
        assert_eq!(v["detail"][0]["loc"], loc, "{path}: {v}");
        assert_eq!(v["detail"][0]["type"], kind, "{path}: {v}");
    }
    let (st, v) = get("/v1/evidence");
    assert_eq!(st, 422);
    assert_eq!(
        locs(&v),
        [
            json!(["query", "entity_type"]),
            json!(["query", "entity_id"])
        ]
    );
    // An unknown record type in the path is the contract's 400.
    assert_eq!(
        get("/v1/records/bogus/x"),
        (400, json!({"detail": "Invalid entity_type: bogus"}))
    );

    // Body values: every failing field at ["body", <field>].
    let (st, v) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/actions",
        Some(&json!({"source": "ai", "payload": []})),
    );
    assert_eq!(st, 422);
    assert_eq!(
        locs(&v),
        [
            json!(["body", "title"]),
            json!(["body", "action_type"]),
            json!(["body", "payload"]),
            json!(["body", "source"]),
        ]
    );
    let (st, v) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/tasks",
        Some(&json!({"title": "t", "due_date": "2026-13-01", "priority": "urgent"})),
    );
    assert_eq!(st, 422);
    assert_eq!(
        locs(&v),
        [json!(["body", "priority"]), json!(["body", "due_date"])]
    );
    let (st, v) = t.call(
        &s,
        &t.admin,
        "PATCH",
        "/v1/tasks/x",
        Some(&json!({"title": null})),
    );
    assert_eq!((st, locs(&v)), (422, vec![json!(["body", "title"])]));
    let (st, v) = t.call(&s, &t.admin, "POST", "/v1/evidence", Some(&json!({"entity_type": "meeting", "entity_id": "x", "source_type": "kpi", "source_ref": null})));
    assert_eq!(st, 422);
    assert_eq!(
        locs(&v),
        [
            json!(["body", "entity_type"]),
            json!(["body", "source_ref"])
        ]
    );
    let (st, v) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/actions/x/execute",
        Some(&json!({"execution_status": "done"})),
    );
    assert_eq!(
        (st, locs(&v)),
        (422, vec![json!(["body", "execution_status"])])
    );
    // The review bodies are required objects ({} is fine): a missing body is 422 at ["body"].
    for verb in ["cancel", "approve", "reject", "execute"] {
        let (st, v) = t.call(&s, &t.admin, "POST", &format!("/v1/actions/x/{verb}"), None);
        assert_eq!(st, 422, "{verb}: {v}");
        assert_eq!(v["detail"][0]["loc"], json!(["body"]), "{verb}");
        assert_eq!(v["detail"][0]["input"], Value::Null, "{verb}");
    }
    let (st, _) = t.call(
        &s,
        &t.admin,
        "POST",
        "/v1/actions/x/approve",
        Some(&json!({})),
    );
    assert_eq!(st, 404);

    // Malformed JSON is refused before authentication; missing headers before body checks.
    let r = s.raw("POST", "/v1/actions", &[], b"{\"title\":");
    assert_eq!(r.status, 422);
    assert_eq!(r.json()["detail"][0]["type"], "json_invalid");
    assert_eq!(r.json()["detail"][0]["loc"][0], "body");
    let r = s.call("POST", "/v1/actions", &[], Some(&json!({})));
    assert_eq!(
        (r.status, r.json()),
        (
            400,
            json!({"detail": "Missing required header: X-Tenant-ID"})
        )
    );
    let r = s.call("GET", "/v1/actions?limit=0", &[], None);
    assert_eq!(r.status, 400);
    // Task completion ignores any body, even one that is not JSON.
    let task = t.admin(&s, "POST", "/v1/tasks", Some(&json!({"title": "T"})));
    let h = [
        ("X-Tenant-ID", t.id.as_str()),
        ("X-User-ID", t.admin.as_str()),
        ("X-API-Key", t.key.as_str()),
    ];
    let r = s.raw(
        "POST",
        &format!("/v1/tasks/{}/complete", id(&task, "task_id")),
        &h,
        b"not json",
    );
    assert_eq!((r.status, r.json()["status"].clone()), (200, json!("done")));
}

#[test]
fn a_refused_write_is_429_and_writes_nothing() {
    let s = TestServer::start(test_config());
    let t = tenant(&s, "Acme");
    let caps = [
        "action_center",
        "tasks",
        "decisions",
        "meetings",
        "memory",
        "timeline",
        "search",
    ];
    let admin = |method: &str, path: &str, body: Value| {
        let r = s.call(method, path, &[PLATFORM], Some(&body));
        assert!(r.status < 300, "{path}: {}", r.body);
    };
    admin(
        "POST",
        "/v1/admin/plans",
        json!({"plan_id": "capped", "name": "Capped", "included_credits": 100, "overage_price_per_credit": 0}),
    );
    admin(
        "PUT",
        "/v1/admin/plans/capped/capabilities",
        json!({"capabilities": caps}),
    );
    admin(
        "PUT",
        "/v1/admin/plans/capped/caps",
        json!({"caps": [{"event_key": "decision_created", "cap_raw_units": 1},
                        {"event_key": "action_approved", "cap_raw_units": 0},
                        {"event_key": "search_query", "cap_raw_units": 1}]}),
    );
    admin(
        "PUT",
        &format!("/v1/admin/tenants/{}/subscription", t.id),
        json!({"plan_id": "capped"}),
    );

    let body =
        |title: &str| json!({"decision_date": "2026-01-01", "title": title, "decision": "x"});
    t.admin(&s, "POST", "/v1/decisions", Some(&body("first")));
    let action = t.member(
        &s,
        "POST",
        "/v1/actions",
        Some(&json!({"title": "A", "action_type": "outreach"})),
    );
    t.admin(&s, "GET", "/v1/search?q=first", None);
    let usage_before = usage(&s, &t);
    let timeline_before = t.admin(&s, "GET", "/v1/timeline", None);
    let ledger_before = t.admin(&s, "GET", "/v1/billing/ledger", None);

    let (st, v) = t.call(&s, &t.admin, "POST", "/v1/decisions", Some(&body("second")));
    assert_eq!(st, 429, "{v}");
    let d = &v["detail"];
    assert_eq!(
        (
            &d["error"],
            &d["event_key"],
            &d["cap_raw_units"],
            &d["used_raw_units"],
            &d["requested_raw_units"]
        ),
        (
            &json!("quota_exceeded"),
            &json!("decision_created"),
            &json!(1.0),
            &json!(1.0),
            &json!(1)
        )
    );
    let action_path = format!("/v1/actions/{}", id(&action, "action_id"));
    let (st, v) = t.call(
        &s,
        &t.admin,
        "POST",
        &format!("{action_path}/approve"),
        Some(&json!({"comment": "no"})),
    );
    assert_eq!(
        (st, v["detail"]["event_key"].clone()),
        (429, json!("action_approved"))
    );
    let (st, v) = t.call(&s, &t.member, "GET", "/v1/search?q=first", None);
    assert_eq!(
        (st, v["detail"]["event_key"].clone()),
        (429, json!("search_query"))
    );

    // Nothing of the refused requests was written.
    let decisions = t.admin(&s, "GET", "/v1/decisions", None);
    assert_eq!(decisions["total"], 1);
    let detail = t.admin(&s, "GET", &action_path, None);
    assert_eq!(
        (detail["status"].clone(), detail["review"].clone()),
        (json!("proposed"), Value::Null)
    );
    assert_eq!(t.admin(&s, "GET", "/v1/timeline", None), timeline_before);
    assert_eq!(usage(&s, &t), usage_before);
    assert_eq!(
        t.admin(&s, "GET", "/v1/billing/ledger", None),
        ledger_before
    );
    // Reads are never metered, so they still work.
    assert_eq!(t.member(&s, "GET", "/v1/actions", None)["total"], 1);
}

#[test]
fn every_core_os_route_is_documented() {
    let s = TestServer::start(test_config());
    let doc = s.call("GET", "/openapi.json", &[], None).json();
    for (method, path, body, ok) in [
        ("post", "/v1/actions", Some("NewAction"), "201"),
        ("get", "/v1/actions", None, "200"),
        ("get", "/v1/actions/{action_id}", None, "200"),
        (
            "patch",
            "/v1/actions/{action_id}",
            Some("ActionPatch"),
            "200",
        ),
        (
            "post",
            "/v1/actions/{action_id}/cancel",
            Some("ReviewComment"),
            "200",
        ),
        (
            "post",
            "/v1/actions/{action_id}/approve",
            Some("ReviewComment"),
            "200",
        ),
        (
            "post",
            "/v1/actions/{action_id}/reject",
            Some("ReviewComment"),
            "200",
        ),
        (
            "post",
            "/v1/actions/{action_id}/execute",
            Some("ExecuteAction"),
            "200",
        ),
        ("post", "/v1/tasks", Some("NewTask"), "201"),
        ("get", "/v1/tasks", None, "200"),
        ("get", "/v1/tasks/{task_id}", None, "200"),
        ("patch", "/v1/tasks/{task_id}", Some("TaskPatch"), "200"),
        ("post", "/v1/tasks/{task_id}/complete", None, "200"),
        ("post", "/v1/decisions", Some("NewDecision"), "201"),
        ("get", "/v1/decisions", None, "200"),
        ("get", "/v1/decisions/{decision_id}", None, "200"),
        (
            "patch",
            "/v1/decisions/{decision_id}",
            Some("DecisionPatch"),
            "200",
        ),
        ("post", "/v1/meetings", Some("NewMeeting"), "201"),
        ("get", "/v1/meetings", None, "200"),
        ("get", "/v1/meetings/{meeting_id}", None, "200"),
        (
            "patch",
            "/v1/meetings/{meeting_id}",
            Some("MeetingPatch"),
            "200",
        ),
        ("post", "/v1/memory/facts", Some("NewFact"), "201"),
        ("get", "/v1/memory/facts", None, "200"),
        ("get", "/v1/memory/facts/{fact_id}", None, "200"),
        (
            "patch",
            "/v1/memory/facts/{fact_id}",
            Some("FactValue"),
            "200",
        ),
        (
            "post",
            "/v1/memory/facts/{fact_id}/supersede",
            Some("FactValue"),
            "200",
        ),
        ("post", "/v1/evidence", Some("NewEvidence"), "201"),
        ("get", "/v1/evidence", None, "200"),
        ("get", "/v1/timeline", None, "200"),
        ("get", "/v1/search", None, "200"),
        ("get", "/v1/records/{entity_type}/{entity_id}", None, "200"),
    ] {
        let op = &doc["paths"][path][method];
        assert!(op.is_object(), "{method} {path} missing");
        assert!(
            op["responses"][ok].is_object(),
            "{method} {path} answers {ok}"
        );
        let given = op["requestBody"]["content"]["application/json"]["schema"]["$ref"].as_str();
        assert_eq!(
            given.map(|r| r.trim_start_matches("#/components/schemas/")),
            body,
            "{method} {path}"
        );
        if let Some(b) = body {
            assert!(doc["components"]["schemas"][b].is_object(), "{b}");
        }
    }
    // Request schemas show the wire names and types.
    let schemas = &doc["components"]["schemas"];
    assert!(schemas["ActionPatch"]["properties"]["status"].is_object());
    assert!(schemas["ActionPatch"]["properties"].get("cancel").is_none());
    assert!(schemas["NewTask"]["properties"].get("link").is_none());
    assert_eq!(
        schemas["NewAction"]["properties"]["payload"]["type"],
        "object"
    );
    for name in [
        "ActionPage",
        "ActionDetail",
        "ActionExecutionResult",
        "TaskPage",
        "DecisionPage",
        "MeetingPage",
        "MemoryFactPage",
        "EvidenceList",
        "TimelinePage",
        "SearchResults",
        "RecordView",
    ] {
        assert!(schemas[name].is_object(), "{name}");
    }
}

/// Metered reads in both modes: a search is answered once its usage event is recorded (durable
/// by default, before the fsync with `BESPIN_READ_METERING=deferred`), its quota is enforced
/// on the writer, and a refused search writes nothing.
#[test]
fn searches_are_metered_in_both_read_metering_modes() {
    for mode in [
        bespin_http::config::ReadMetering::Durable,
        bespin_http::config::ReadMetering::Deferred,
    ] {
        let s = TestServer::start(bespin_http::Config {
            read_metering: mode,
            ..test_config()
        });
        let t = tenant(&s, "Searcher");
        let put = |path: &str, body: Value| {
            let r = s.call("PUT", path, &[PLATFORM], Some(&body));
            assert!(r.status < 300, "{path}: {}", r.body);
        };
        put(
            "/v1/admin/plans/starter/caps",
            json!({"caps": [{"event_key": "search_query", "cap_raw_units": 2}]}),
        );
        t.admin(
            &s,
            "POST",
            "/v1/tasks",
            Some(&json!({"title": "Prepare pricing"})),
        );
        for _ in 0..2 {
            let found = t.member(&s, "GET", "/v1/search?q=pricing", None);
            assert_eq!(found["total"], 1, "{mode:?}: {found}");
        }
        // Durable: the usage is committed before the answer. Deferred: it joins the open batch
        // before the answer and shows once that batch commits, a moment later.
        let counted = |want: f64| usage(&s, &t).contains(&("search_query".to_owned(), want));
        let mut waited = 0;
        while mode == bespin_http::config::ReadMetering::Deferred && !counted(2.0) && waited < 200 {
            std::thread::sleep(std::time::Duration::from_millis(10));
            waited += 1;
        }
        assert!(counted(2.0), "{mode:?}");
        let (st, v) = t.call(&s, &t.member, "GET", "/v1/search?q=pricing", None);
        assert_eq!(
            (st, v["detail"]["event_key"].clone()),
            (429, json!("search_query")),
            "{mode:?}"
        );
        assert!(counted(2.0), "{mode:?}: the refused search wrote nothing");
    }
}
