//! Storage grows in proportion to what a request carries (issue 17): no request of at most
//! the body limit makes the database grow by more than [`FACTOR`] times its size on the wire,
//! whatever it holds, and a refused request makes it grow not at all.
//!
//! Over many runs the largest growth seen was 23x (a memory fact: a 240-character key and a
//! value of distinct two-character words); a record's index entries are bounded
//! (`coreos::search`), and every other stored text by its field's limit.
//!
//! The texts are the worst case for the search index: as many distinct short words as the
//! field holds, each a new index entry (a word of two characters and a space costs three bytes
//! of request and about a hundred of index key).
#![allow(clippy::unwrap_used)]

use bespin_http::testing::{TestServer, TestTenant, test_config};
use proptest::prelude::*;
use serde_json::{Value, json};

/// The most a request may grow the database, per byte of the request (head and body).
const FACTOR: u64 = 40;

#[derive(Debug, Clone, Copy)]
enum Kind {
    Task,
    EditTask,
    Meeting,
    Decision,
    Fact,
    Action,
    Conversation,
    Chat,
    Invoke,
    Bulk,
    Usage,
}

/// Text of about `chars` characters made of distinct short words (1–3 characters, some
/// outside ASCII), from `seed`.
fn dense_text(seed: u64, chars: usize) -> String {
    const ALPHABET: &[char] = &[
        'a', 'b', 'c', 'd', 'e', 'f', 'g', 'h', 'i', 'j', 'k', 'l', 'm', 'n', 'o', 'p', 'q', 'r',
        's', 't', 'u', 'v', 'w', 'x', 'y', 'z', '0', '1', '2', '3', '4', '5', '6', '7', '8', '9',
        'é', 'ß', 'λ', 'ж', '中', '日',
    ];
    let n = ALPHABET.len() as u64;
    let mut out = String::with_capacity(chars + 4);
    let mut i = seed % 97;
    while out.chars().count() + 4 <= chars {
        // Words 1, 2 and 3 characters long in turn, counting through the alphabet: distinct
        // until the two-character words run out, then repeating (still dense text).
        let len = 1 + (i % 3) as usize;
        let mut w = i;
        for _ in 0..len {
            out.push(ALPHABET[(w % n) as usize]);
            w /= n;
        }
        out.push(' ');
        i += 1;
    }
    out
}

fn request() -> impl Strategy<Value = (Kind, u64, f64)> {
    let kind = prop::sample::select(vec![
        Kind::Task,
        Kind::EditTask,
        Kind::Meeting,
        Kind::Decision,
        Kind::Fact,
        Kind::Action,
        Kind::Conversation,
        Kind::Chat,
        Kind::Invoke,
        Kind::Bulk,
        Kind::Usage,
    ]);
    // The size as a share of the field's limit; above 1, the request is refused.
    let scale = prop_oneof![4 => 0.0f64..=1.0, 1 => Just(1.0), 1 => 1.0f64..1.2];
    (kind, any::<u64>(), scale)
}

struct Sent {
    status: u16,
    bytes: u64,
}

fn send(
    s: &TestServer,
    t: &TestTenant,
    method: &str,
    path: &str,
    extra: &[(&str, &str)],
    body: &Value,
) -> Sent {
    let body = body.to_string();
    let mut h = t.admin_headers();
    h.extend_from_slice(extra);
    h.push(("Content-Type", "application/json"));
    // What `TestServer::raw` writes: the request line, its headers, the body.
    let head: usize = format!(
        "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n",
        s.addr
    )
    .len()
        + h.iter().map(|(k, v)| k.len() + v.len() + 4).sum::<usize>()
        + format!("Content-Length: {}\r\n\r\n", body.len()).len();
    let r = s.raw(method, path, &h, body.as_bytes());
    Sent {
        status: r.status,
        bytes: (head + body.len()) as u64,
    }
}

/// Sends one request of `kind`, `scale` times its field's limit.
fn one(
    s: &TestServer,
    t: &TestTenant,
    task: &str,
    kpi: &str,
    n: u64,
    (kind, seed, scale): (Kind, u64, f64),
) -> Sent {
    let text = |limit: usize| dense_text(seed, (limit as f64 * scale) as usize);
    let key = format!("k{n}");
    let (method, path, body) = match kind {
        Kind::Task => (
            "POST",
            "/v1/tasks".to_owned(),
            json!({"title": text(255), "description": text(10_000)}),
        ),
        Kind::EditTask => (
            "PATCH",
            format!("/v1/tasks/{task}"),
            json!({"description": text(10_000)}),
        ),
        Kind::Meeting => (
            "POST",
            "/v1/meetings".to_owned(),
            json!({"title": text(255), "notes": text(50_000), "meeting_date": "2026-01-31"}),
        ),
        Kind::Decision => (
            "POST",
            "/v1/decisions".to_owned(),
            json!({"title": text(255), "context": text(10_000),
            "decision": text(10_000), "rationale": text(10_000), "decision_date": "2026-01-31"}),
        ),
        Kind::Fact => (
            "POST",
            "/v1/memory/facts".to_owned(),
            json!({"category": "other", "fact_key": format!("{n} {}", text(240)), "fact_value": text(10_000)}),
        ),
        Kind::Action => (
            "POST",
            "/v1/actions".to_owned(),
            json!({"title": text(255), "action_type": "x",
            "description": text(10_000), "payload": {"blob": text(16_000)}}),
        ),
        Kind::Conversation => (
            "POST",
            "/v1/conversations".to_owned(),
            json!({"title": text(255)}),
        ),
        Kind::Chat => (
            "POST",
            "/v1/cofounder/chat".to_owned(),
            json!({"message": text(4_000)}),
        ),
        Kind::Invoke => (
            "POST",
            "/v1/tools/invoke".to_owned(),
            json!({"tool_name": "echo", "payload": {"blob": text(16_000)}}),
        ),
        Kind::Bulk => {
            let points: Vec<Value> = (0..(2_000.0 * scale) as u64)
                .map(|i| json!({"ts": format!("2026-01-01T00:00:{:02}.{:06}Z", (seed + n) % 60, i), "value": i}))
                .collect();
            (
                "POST",
                format!("/v1/kpis/{kpi}/points:bulk"),
                json!({ "points": points }),
            )
        }
        Kind::Usage => {
            // The smallest events a batch can hold (one-letter source, short ids, no subject):
            // the most stored rows per byte sent.
            let events: Vec<Value> = (0..(1_000.0 * scale.min(1.0)) as u64)
                .map(|i| {
                    json!({"specversion": "1.0", "id": format!("{n}{i}"), "source": "s",
                                "type": "llm_tokens", "data": {"value": 1}})
                })
                .collect();
            ("POST", "/v1/usage/events".to_owned(), Value::Array(events))
        }
    };
    let idempotent: &[(&str, &str)] = match kind {
        Kind::Invoke => &[("Idempotency-Key", &key)],
        _ => &[],
    };
    send(s, t, method, &path, idempotent, &body)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 10, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn no_request_grows_the_database_by_more_than_a_fixed_factor_of_its_size(
        requests in prop::collection::vec(request(), 1..8)
    ) {
        let s = TestServer::start(test_config());
        let t = s.create_tenant("Acme", "ada@acme.example");
        let admin = [("X-Platform-Admin-Key", "test-admin-key")];
        s.call("POST", "/v1/admin/plans", &admin, Some(&json!({"plan_id": "rich", "name": "Rich",
            "included_credits": 1_000_000_000i64, "overage_price_per_credit": 0.01})));
        s.call("PUT", "/v1/admin/plans/rich/capabilities", &admin, Some(&json!({"capabilities":
            ["chat", "tools", "kpi_ingest", "kpi_read", "action_center", "tasks", "decisions",
             "meetings", "memory", "timeline", "search"]})));
        s.call("PUT", &format!("/v1/admin/tenants/{}/subscription", t.id), &admin, Some(&json!({"plan_id": "rich"})));
        s.call("POST", "/v1/admin/metered-events", &admin, Some(&json!({"event_key": "llm_tokens",
            "display_name": "LLM tokens", "unit_name": "token", "credits_per_unit": 0.001,
            "list_price_per_credit": 0.02})));
        s.call("PUT", "/v1/limits", &t.admin_headers(), Some(&json!({"assistant_query_daily_limit": 1000,
            "tool_invocation_daily_limit": 1000, "daily_brief_generated_daily_limit": 10,
            "notification_enqueued_daily_limit": 10})));
        let task = s.call("POST", "/v1/tasks", &t.admin_headers(), Some(&json!({"title": "edited"})));
        let task = task.json()["task_id"].as_str().unwrap().to_owned();
        let kpi = s.call("POST", "/v1/kpis", &t.admin_headers(), Some(&json!({"name": "MRR"})));
        let kpi = kpi.json()["kpi_id"].as_str().unwrap().to_owned();
        for (n, req) in requests.into_iter().enumerate() {
            let before = s.bespin.stored_bytes().unwrap();
            let sent = one(&s, &t, &task, &kpi, n as u64, req);
            let after = s.bespin.stored_bytes().unwrap();
            let grew = after.saturating_sub(before);
            prop_assert!(sent.status < 500, "{req:?}: {}", sent.status);
            if sent.status >= 400 {
                prop_assert_eq!(grew, 0, "{:?} refused ({}) yet grew the database", req, sent.status);
            }
            prop_assert!(
                grew <= FACTOR * sent.bytes,
                "{req:?} ({}): {} request bytes grew the database by {grew} ({}x)",
                sent.status, sent.bytes, grew / sent.bytes.max(1)
            );
        }
    }
}
