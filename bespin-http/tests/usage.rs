//! Usage in and out over HTTP (issue 22): `POST /v1/usage/events` with CloudEvents (single,
//! batch), de-duplication under 32 concurrent posts, a cap under concurrent batches, and the
//! export's cursor; `bespin check` after each.
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestResponse, TestServer, TestTenant, race, test_config};
use serde_json::{Value, json};

const ADMIN: (&str, &str) = ("X-Platform-Admin-Key", "test-admin-key");
const BATCH: &str = "application/cloudevents-batch+json";
const SINGLE: &str = "application/cloudevents+json";

/// A server with the custom event `llm_tokens` and a tenant on plan `metered` (1,000 credits,
/// `cap` tokens a month if given).
fn setup(cap: Option<u64>) -> (TestServer, TestTenant) {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("Acme", "ada@acme.example");
    let call = |method, path, body: Value| {
        let r = s.call(method, path, &[ADMIN], Some(&body));
        assert!(r.status < 300, "{path}: {} {}", r.status, r.body);
    };
    call(
        "POST",
        "/v1/admin/metered-events",
        json!({"event_key": "llm_tokens",
        "display_name": "LLM tokens", "unit_name": "token", "credits_per_unit": 0.001,
        "list_price_per_credit": 0.02}),
    );
    call(
        "POST",
        "/v1/admin/plans",
        json!({"plan_id": "metered", "name": "Metered",
        "included_credits": 1000, "overage_price_per_credit": 0}),
    );
    if let Some(cap) = cap {
        call(
            "PUT",
            "/v1/admin/plans/metered/caps",
            json!({"caps": [
            {"event_key": "llm_tokens", "period": "monthly", "cap_raw_units": cap}]}),
        );
    }
    call(
        "PUT",
        &format!("/v1/admin/tenants/{}/subscription", t.id),
        json!({"plan_id": "metered"}),
    );
    (s, t)
}

fn event(id: &str, value: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "svc", "type": "llm_tokens",
           "subject": "customer-1", "data": {"value": value}})
}

fn post(s: &TestServer, t: &TestTenant, media: &str, body: &Value) -> TestResponse {
    let mut h = t.admin_headers();
    h.push(("Content-Type", media));
    s.raw("POST", "/v1/usage/events", &h, body.to_string().as_bytes())
}

fn clean(s: &TestServer) {
    let report = s.bespin.check().unwrap();
    assert!(report.violations.is_empty(), "{report}");
}

fn used_tokens(s: &TestServer, t: &TestTenant) -> f64 {
    let r = s.call("GET", "/v1/billing/usage", &t.admin_headers(), None);
    let v = r.json();
    v["breakdown"]
        .as_array()
        .unwrap()
        .iter()
        .find(|b| b["event_key"] == "llm_tokens")
        .map_or(0.0, |b| b["raw_units"].as_f64().unwrap())
}

#[test]
fn single_and_batch_events_get_results_per_event() {
    let (s, t) = setup(None);
    // A single event: its answer is the request's.
    let r = post(&s, &t, SINGLE, &event("one", json!(100)));
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["results"][0]["status"], "accepted");
    assert!(
        r.json()["results"][0]["usage_id"]
            .as_str()
            .unwrap()
            .starts_with("use_")
    );
    let r = post(&s, &t, SINGLE, &event("bad", json!(-1)));
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(
        r.json()["detail"][0]["loc"],
        json!(["body", "data", "value"])
    );
    let again = post(&s, &t, SINGLE, &event("one", json!(100)));
    assert_eq!(
        (again.status, again.json()["results"][0]["status"].clone()),
        (200, json!("duplicate"))
    );
    // A batch: one result per event, a refusal with its own status and body.
    let mut unknown = event("u", json!(1));
    unknown["type"] = json!("nope");
    let body = json!([
        event("two", json!(5)),
        event("bad", json!("x")),
        unknown,
        event("one", json!(1))
    ]);
    let r = post(&s, &t, BATCH, &body);
    assert_eq!(r.status, 200, "{}", r.body);
    let v = r.json();
    assert_eq!(
        (
            v["accepted"].clone(),
            v["duplicates"].clone(),
            v["rejected"].clone()
        ),
        (json!(1), json!(1), json!(2))
    );
    let res = &v["results"];
    assert_eq!(res[1]["error"]["status"], 422);
    assert_eq!(
        res[1]["error"]["body"]["detail"][0]["loc"],
        json!(["body", 1, "data", "value"])
    );
    assert_eq!(res[2]["error"]["status"], 400);
    assert_eq!(
        res[2]["error"]["body"]["detail"]["error"],
        "unknown_event_type"
    );
    assert_eq!(res[3]["status"], "duplicate");
    // application/json is a batch too; not an array, or too long, is refused whole.
    let r = s.call(
        "POST",
        "/v1/usage/events",
        &t.admin_headers(),
        Some(&json!([event("three", json!(1))])),
    );
    assert_eq!(r.json()["accepted"], 1, "{}", r.body);
    assert_eq!(post(&s, &t, BATCH, &json!({"not": "a list"})).status, 422);
    let many: Vec<Value> = (0..1001).map(|i| event(&i.to_string(), json!(1))).collect();
    assert_eq!(post(&s, &t, BATCH, &Value::Array(many)).status, 422);
    assert_eq!(used_tokens(&s, &t), 106.0);
    // Members may not report usage.
    let member = s.add_user(&t, "bob@acme.example", "member");
    let mut h = t.headers(&member);
    h.push(("Content-Type", BATCH));
    let r = s.raw(
        "POST",
        "/v1/usage/events",
        &h,
        json!([event("m", json!(1))]).to_string().as_bytes(),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    clean(&s);
}

#[test]
fn thirty_two_concurrent_posts_of_one_event_count_once() {
    let (s, t) = setup(None);
    let answers = race(32, |_| post(&s, &t, SINGLE, &event("race", json!(3))));
    let count = |status: &str| {
        answers
            .iter()
            .filter(|r| r.status == 200 && r.json()["results"][0]["status"] == status)
            .count()
    };
    assert_eq!((count("accepted"), count("duplicate")), (1, 31));
    let ids: std::collections::HashSet<String> = answers
        .iter()
        .map(|r| {
            r.json()["results"][0]["usage_id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    assert_eq!(ids.len(), 1, "every answer names the one usage event");
    assert_eq!(used_tokens(&s, &t), 3.0);
    clean(&s);
}

#[test]
fn a_cap_under_concurrent_batches_is_never_exceeded() {
    let (s, t) = setup(Some(50));
    let answers = race(8, |n| {
        let batch: Vec<Value> = (0..20)
            .map(|i| event(&format!("{n}-{i}"), json!(1)))
            .collect();
        post(&s, &t, BATCH, &Value::Array(batch))
    });
    let accepted: u64 = answers
        .iter()
        .map(|r| r.json()["accepted"].as_u64().unwrap())
        .sum();
    assert_eq!(accepted, 50);
    let refused = answers
        .iter()
        .flat_map(|r| r.json()["results"].as_array().unwrap().clone())
        .find(|r| r["status"] == "rejected")
        .unwrap();
    assert_eq!(refused["error"]["status"], 429);
    assert_eq!(refused["error"]["body"]["detail"]["cap_raw_units"], 50.0);
    assert_eq!(used_tokens(&s, &t), 50.0);
    clean(&s);
}

#[test]
fn the_export_resumes_from_its_cursor_and_reads_the_same_twice() {
    let (s, t) = setup(None);
    post(
        &s,
        &t,
        BATCH,
        &json!([event("a", json!(1)), event("b", json!(2))]),
    );
    let get = |path: &str, h: &[(&str, &str)]| s.call("GET", path, h, None);
    let r = get("/v1/usage/export?limit=1", &t.admin_headers());
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.header("content-type"), Some(BATCH));
    let first = r.json();
    assert_eq!(first.as_array().unwrap().len(), 1);
    let cursor = r.header("bespin-next-cursor").unwrap().to_owned();
    assert_eq!(first[0]["id"], cursor.as_str());
    assert_eq!(first[0]["specversion"], "1.0");
    assert_eq!(first[0]["type"], "llm_tokens");
    assert_eq!(first[0]["data"]["origin_id"], "a");
    // Late, then read from the cursor twice: the same page, the late event included.
    use bespin_core::time::Clock;
    let month = bespin_core::time::SystemClock.now().period().start();
    let mut late = event("late", json!(4));
    late["time"] = json!(format!("{month}T00:00:00Z"));
    post(&s, &t, BATCH, &json!([late]));
    let path = format!("/v1/usage/export?after={cursor}");
    let (x, y) = (
        get(&path, &t.admin_headers()),
        get(&path, &t.admin_headers()),
    );
    assert_eq!(x.body, y.body);
    let page = x.json();
    let ids: Vec<&str> = page
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["data"]["origin_id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, ["b", "late"]);
    // The platform export sees every tenant; without the key it is a 404.
    let all = get("/v1/admin/usage/export?limit=1000", &[ADMIN]);
    assert_eq!(all.status, 200);
    assert!(all.json().as_array().unwrap().len() >= 3);
    assert_eq!(get("/v1/admin/usage/export", &[]).status, 404);
    assert_eq!(
        get("/v1/usage/export?after=use_x", &t.admin_headers()).status,
        422
    );
    assert_eq!(
        get("/v1/usage/export?limit=0", &t.admin_headers()).status,
        422
    );
    clean(&s);
}

/// The typed read of bodies answers as the `Value` path did: an object without a CloudEvents
/// type is one event; a member given twice counts as its last; bad credentials on a valid
/// body are their own error, a syntax error comes before them.
#[test]
fn bodies_read_typed_answer_as_before() {
    let (s, t) = setup(None);
    let send = |media: &str, headers: Vec<(&str, &str)>, text: &str| {
        let mut h = headers;
        h.push(("Content-Type", media));
        s.raw("POST", "/v1/usage/events", &h, text.as_bytes())
    };
    let one = event("j1", json!(2)).to_string();
    let r = send("application/json", t.admin_headers(), &one);
    assert_eq!(
        (r.status, r.json()["results"][0]["status"].clone()),
        (200, json!("accepted")),
        "{}",
        r.body
    );
    let twice = r#"[{"specversion":"1.0","id":"first","id":"last","source":"svc","type":"llm_tokens","data":{"value":3}}]"#;
    let r = send(BATCH, t.admin_headers(), twice);
    assert_eq!(r.json()["results"][0]["id"], "last", "{}", r.body);
    let wrong = vec![
        ("Authorization", "Bearer nope"),
        ("X-Tenant-ID", t.id.as_str()),
    ];
    let r = send(BATCH, wrong.clone(), &format!("[{one}]"));
    assert_eq!(r.status, 401, "{}", r.body);
    let r = send(BATCH, wrong, "[{");
    assert_eq!(r.status, 422, "{}", r.body);
    assert_eq!(used_tokens(&s, &t), 5.0);
    clean(&s);
}
