//! Webhooks over HTTP with a local receiver: endpoint management (admins only, the secret
//! shown once, rotation), a delivery with the Standard Webhooks headers, a failed attempt
//! retried with backoff, the attempts list, the manual retry, the metered delivery, and the
//! refusals (plain http or a loopback address that is not allow-listed); on a manual clock, the
//! whole retry schedule, the endpoint disabled after 5 days of failures, and attempts aging out
//! with the event retention. The signatures are
//! verified by the PyPI `standardwebhooks` package in scripts/webhooks.sh.
#![allow(clippy::unwrap_used)]

use bespin_core::time::{Clock, ManualClock};
use bespin_core::webhooks::delivery::RETRY_SCHEDULE_SECS;
use bespin_core::{Bespin, Options};
use bespin_http::testing::{TestServer, TestTenant, test_config};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

type Seen = Arc<Mutex<Vec<(HashMap<String, String>, String)>>>;

/// A receiver on 127.0.0.1 answering `status` and keeping what it got.
fn receiver(status: Arc<AtomicU16>) -> (String, Seen) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/hook", l.local_addr().unwrap());
    let seen: Seen = Arc::default();
    let keep = Arc::clone(&seen);
    std::thread::spawn(move || {
        for s in l.incoming() {
            let Ok(mut s) = s else { continue };
            let mut r = BufReader::new(s.try_clone().unwrap());
            let mut headers = HashMap::new();
            let mut line = String::new();
            r.read_line(&mut line).unwrap();
            loop {
                line.clear();
                if r.read_line(&mut line).unwrap() == 0 || line == "\r\n" {
                    break;
                }
                if let Some((k, v)) = line.trim_end().split_once(": ") {
                    headers.insert(k.to_ascii_lowercase(), v.to_owned());
                }
            }
            let n: usize = headers
                .get("content-length")
                .map_or(0, |v| v.parse().unwrap());
            let mut body = vec![0; n];
            r.read_exact(&mut body).unwrap();
            keep.lock()
                .unwrap()
                .push((headers, String::from_utf8(body).unwrap()));
            let code = status.load(Ordering::SeqCst);
            let answer =
                format!("HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok");
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (url, seen)
}

fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn call(s: &TestServer, t: &TestTenant, m: &str, p: &str, b: Option<&Value>) -> (u16, Value) {
    let r = s.call(m, p, &t.headers(&t.admin), b);
    (r.status, r.json())
}

#[test]
fn endpoints_deliver_signed_events_retry_and_refuse_what_they_must() {
    let mut config = test_config();
    config.webhook_allow = vec!["127.0.0.1".into()];
    let s = TestServer::start(config);
    let t = s.create_tenant("Acme", "a@x.io");
    let member = s.add_user(&t, "m@x.io", "member");
    let status = Arc::new(AtomicU16::new(500));
    let (url, seen) = receiver(Arc::clone(&status));

    // Admins only; a secret shown once.
    let body = json!({"url": url, "event_types": ["task.created"], "description": "ci"});
    let r = s.call(
        "POST",
        "/v1/webhooks/endpoints",
        &t.headers(&member),
        Some(&body),
    );
    assert_eq!(r.status, 403, "{}", r.body);
    let (st, created) = call(&s, &t, "POST", "/v1/webhooks/endpoints", Some(&body));
    assert_eq!(st, 201, "{created}");
    assert!(created["secret"].as_str().unwrap().starts_with("whsec_"));
    let id = created["endpoint_id"].as_str().unwrap().to_owned();
    let path = format!("/v1/webhooks/endpoints/{id}");
    let (_, got) = call(&s, &t, "GET", &path, None);
    assert!(got.get("secret").is_none() && got["url"] == url.as_str());
    let (_, list) = call(&s, &t, "GET", "/v1/webhooks/endpoints", None);
    assert_eq!(list["items"].as_array().unwrap().len(), 1);
    for bad in [
        json!({"url": "ftp://x"}),
        json!({"url": "http://example.com/h"}),
        json!({"url": url, "event_types": ["nope"]}),
    ] {
        let (st, v) = call(&s, &t, "POST", "/v1/webhooks/endpoints", Some(&bad));
        assert_eq!(st, 422, "{bad}: {v}");
    }

    // The receiver fails first: the attempt is recorded and retried about 5 s later.
    let (_, task) = call(
        &s,
        &t,
        "POST",
        "/v1/tasks",
        Some(&json!({"title": "hooked"})),
    );
    wait_for("the first attempt", || !seen.lock().unwrap().is_empty());
    status.store(200, Ordering::SeqCst);
    let attempts = format!("{path}/attempts");
    wait_for("the retry", || {
        let (_, a) = call(&s, &t, "GET", &attempts, None);
        a["items"][0]["status"] == "delivered"
    });
    let (_, a) = call(&s, &t, "GET", &attempts, None);
    let items = a["items"].as_array().unwrap();
    assert_eq!(items.len(), 2, "{a}");
    assert_eq!(items[1]["status"], "retrying");
    assert_eq!(items[1]["response_code"], 500);
    assert_eq!(items[1]["response_body"], "ok");
    assert!(items[1]["next_retry"].is_string());
    assert_eq!(items[0]["attempt"], 2);
    let got = seen.lock().unwrap().clone();
    let (headers, body) = got.last().unwrap();
    let event: Value = serde_json::from_str(body).unwrap();
    assert_eq!(event["type"], "task.created");
    assert_eq!(event["data"]["task_id"], task["task_id"]);
    assert_eq!(headers["webhook-id"], event["id"].as_str().unwrap());
    assert!(headers["webhook-signature"].starts_with("v1,"));
    assert!(headers["webhook-timestamp"].parse::<i64>().is_ok());
    // Both deliveries carried the same id: receivers dedupe on it.
    assert_eq!(got[0].0["webhook-id"], headers["webhook-id"]);

    // Rotation: two signatures for 24 h; test and retry by hand.
    let (_, rotated) = call(&s, &t, "POST", &format!("{path}/rotate"), None);
    assert_ne!(rotated["secret"], created["secret"]);
    let (st, test) = call(&s, &t, "POST", &format!("{path}/test"), None);
    assert_eq!(st, 202, "{test}");
    wait_for("the test event", || seen.lock().unwrap().len() == 3);
    let (h, b) = seen.lock().unwrap()[2].clone();
    assert!(b.contains("webhook.test"));
    assert_eq!(h["webhook-signature"].split(' ').count(), 2);
    let retry = format!("{path}/messages/{}/retry", event["id"].as_str().unwrap());
    assert_eq!(call(&s, &t, "POST", &retry, None).0, 202);
    wait_for("the retried event", || seen.lock().unwrap().len() == 4);
    let missing = format!("{path}/messages/evt_00000000000099999999/retry");
    assert_eq!(call(&s, &t, "POST", &missing, None).0, 404);

    // Metered: one webhook_delivered per 2xx. A delivery is metered with its outcome, which
    // the deliverer commits after the receiver answered: the last one may not be in yet.
    let delivered = || {
        let (_, ledger) = call(&s, &t, "GET", "/v1/billing/ledger?limit=100", None);
        let n = ledger["items"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["event_key"] == "webhook_delivered")
            .count();
        (n, ledger)
    };
    wait_for("the deliveries' metering", || delivered().0 >= 3);
    let (n, ledger) = delivered();
    assert_eq!(n, 3, "{ledger}");

    // Disabled: nothing more is sent. Deleted: 404.
    let (_, off) = call(&s, &t, "PATCH", &path, Some(&json!({"enabled": false})));
    assert_eq!(off["enabled"], false);
    assert_eq!(call(&s, &t, "DELETE", &path, None).0, 200);
    assert_eq!(call(&s, &t, "GET", &path, None).0, 404);
    // The delete is an event, like every other delete: webhook.endpoint_deleted (admins').
    let types = "/v1/events?types=webhook.endpoint_deleted";
    let (_, events) = call(&s, &t, "GET", types, None);
    let id = path.rsplit('/').next().unwrap();
    let items = events["items"].as_array().unwrap();
    assert_eq!(items.len(), 1, "{events}");
    assert_eq!(
        (&items[0]["subject"], &items[0]["actor_user_id"]),
        (
            &json!({"type": "webhook_endpoint", "id": id}),
            &json!(t.admin.as_str())
        )
    );
    assert_eq!(
        (
            &items[0]["data"]["entity_type"],
            &items[0]["data"]["entity_id"]
        ),
        (&json!("webhook_endpoint"), &json!(id)),
        "{events}"
    );
    assert!(items[0]["data"]["deleted_at"].is_string());
    let r = s.call("GET", types, &t.headers(&member), None);
    assert_eq!(r.json()["items"], json!([]), "admins only: {}", r.body);
    assert!(s.bespin.check().unwrap().is_ok());
}

#[test]
fn loopback_is_refused_unless_allow_listed() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("Acme", "a@x.io");
    let (url, seen) = receiver(Arc::new(AtomicU16::new(200)));
    let https = url.replace("http://", "https://");
    let (st, created) = call(
        &s,
        &t,
        "POST",
        "/v1/webhooks/endpoints",
        Some(&json!({"url": https})),
    );
    assert_eq!(st, 201, "{created}");
    let id = created["endpoint_id"].as_str().unwrap();
    call(&s, &t, "POST", "/v1/tasks", Some(&json!({"title": "x"})));
    let attempts = format!("/v1/webhooks/endpoints/{id}/attempts");
    wait_for("a refused attempt", || {
        let (_, a) = call(&s, &t, "GET", &attempts, None);
        a["items"][0]["status"] == "retrying"
    });
    let (_, a) = call(&s, &t, "GET", &attempts, None);
    assert!(
        a["items"][0]["error"].as_str().unwrap().contains("refused"),
        "{a}"
    );
    assert!(
        seen.lock().unwrap().is_empty(),
        "nothing reached the loopback receiver"
    );
}

#[test]
fn retries_run_their_schedule_then_five_days_of_failures_disable_the_endpoint() {
    let clock = ManualClock::at("2026-03-01T00:00:00Z").unwrap();
    let db = Bespin::open_in_memory_with(Arc::new(clock.clone()), Options::default()).unwrap();
    let mut config = test_config();
    config.webhook_allow = vec!["127.0.0.1".into()];
    let s = TestServer::start_with(db, config);
    let t = s.create_tenant("Acme", "a@x.io");
    let (url, seen) = receiver(Arc::new(AtomicU16::new(503)));
    let body = json!({"url": url, "event_types": ["task.created"]});
    let (_, created) = call(&s, &t, "POST", "/v1/webhooks/endpoints", Some(&body));
    let path = format!(
        "/v1/webhooks/endpoints/{}",
        created["endpoint_id"].as_str().unwrap()
    );
    let attempts_path = format!("{path}/attempts");
    let attempts = || call(&s, &t, "GET", &attempts_path, None).1["items"].clone();
    // An instant of the API in microseconds (through the clock's own RFC 3339 reading).
    let micros = |v: &Value| ManualClock::at(v.as_str().unwrap()).unwrap().now().0;

    call(&s, &t, "POST", "/v1/tasks", Some(&json!({"title": "t"})));
    wait_for("the first attempt", || seen.lock().unwrap().len() == 1);
    // Each failed attempt names its retry at the schedule's next wait (±10%); moving the
    // clock there brings the next attempt, until the schedule runs out.
    for (i, wait) in RETRY_SCHEDULE_SECS.iter().enumerate() {
        wait_for("the attempt's record", || attempts()[0]["attempt"] == i + 1);
        let newest = attempts()[0].clone();
        assert_eq!(newest["status"], "retrying", "{newest}");
        let gap = micros(&newest["next_retry"]) - micros(&newest["attempted_at"]);
        let want = wait * 1_000_000;
        assert!(
            (gap - want).abs() <= want / 10 + 1,
            "retry {i}: {gap} µs for {want}"
        );
        clock.set(bespin_core::time::Timestamp(
            micros(&newest["next_retry"]) + 1,
        ));
        wait_for("the retry", || seen.lock().unwrap().len() == i + 2);
    }
    let n = RETRY_SCHEDULE_SECS.len() + 1;
    wait_for("the last attempt's record", || {
        attempts()[0]["attempt"] == n
    });
    let last = attempts()[0].clone();
    assert_eq!(
        (&last["status"], &last["next_retry"]),
        (&json!("failed"), &Value::Null)
    );
    // About 28 hours of failures: still enabled.
    assert_eq!(call(&s, &t, "GET", &path, None).1["enabled"], true);

    // Five days after the first failure, the next failure disables it and says so.
    clock.advance(5 * 86_400 * 1_000_000);
    call(&s, &t, "POST", "/v1/tasks", Some(&json!({"title": "u"})));
    wait_for("the endpoint disabled", || {
        call(&s, &t, "GET", &path, None).1["enabled"] == false
    });
    let (_, e) = call(&s, &t, "GET", &path, None);
    assert!(
        e["disabled_reason"].as_str().unwrap().contains("5 days"),
        "{e}"
    );
    let (_, events) = call(
        &s,
        &t,
        "GET",
        "/v1/events?types=webhook.endpoint_disabled",
        None,
    );
    assert_eq!(events["items"].as_array().unwrap().len(), 1, "{events}");
    // Disabled: a new event is not sent.
    let before = seen.lock().unwrap().len();
    call(&s, &t, "POST", "/v1/tasks", Some(&json!({"title": "v"})));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(seen.lock().unwrap().len(), before);

    // Past the event retention, each recorded attempt (a test delivery still goes to a
    // disabled endpoint) takes two aged-out ones with it.
    let kept = attempts().as_array().unwrap().len();
    assert_eq!(kept, n + 1);
    clock.advance(31 * 86_400 * 1_000_000);
    assert_eq!(call(&s, &t, "POST", &format!("{path}/test"), None).0, 202);
    wait_for("the test attempt, and two aged out", || {
        attempts().as_array().unwrap().len() == kept + 1 - 2
    });
    let newest = attempts()[0].clone();
    assert_eq!(
        (&newest["attempt"], &newest["status"]),
        (&json!(1), &json!("retrying")),
        "{newest}"
    );
    assert!(s.bespin.check().unwrap().is_ok());
}
