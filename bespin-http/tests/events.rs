//! The event log over HTTP: pages with their cursor, filters and 410 for a stale cursor; the
//! SSE stream's headers, live delivery, exact resume after Last-Event-ID, the reset of a stale
//! cursor, and its clean end at shutdown.
#![allow(clippy::unwrap_used)]

use bespin_core::time::{ManualClock, Timestamp};
use bespin_core::{Bespin, Options};
use bespin_http::testing::{Sse, TestServer, TestTenant, test_config};
use serde_json::{Value, json};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn h<'a>(t: &'a TestTenant, user: &'a str) -> Vec<(&'a str, &'a str)> {
    t.headers(user)
}

fn task(s: &TestServer, t: &TestTenant, title: &str) -> Value {
    let r = s.call(
        "POST",
        "/v1/tasks",
        &h(t, &t.admin),
        Some(&json!({ "title": title })),
    );
    assert_eq!(r.status, 201, "{}", r.body);
    r.json()
}

#[test]
fn pages_filter_and_refuse_a_stale_cursor() {
    let clock = ManualClock::new(Timestamp(1_790_000_000_000_000));
    let db = Bespin::open_in_memory_with(Arc::new(clock.clone()), Options::default()).unwrap();
    let s = TestServer::start_with(db, test_config());
    let t = s.create_tenant("Acme", "a@x.io");
    let member = s.add_user(&t, "m@x.io", "member");
    task(&s, &t, "one");
    let r = s.call("GET", "/v1/events?limit=500", &h(&t, &t.admin), None);
    assert_eq!(r.status, 200, "{}", r.body);
    let page = r.json();
    let types: Vec<&str> = page["items"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"user.created") && types.contains(&"task.created"),
        "{types:?}"
    );
    let first = page["items"][0]["id"].as_str().unwrap().to_owned();
    let last = page["next_cursor"].as_str().unwrap().to_owned();
    // A member sees task events but not the admins' ones; other tenants see nothing of these.
    let r = s.call(
        "GET",
        "/v1/events?types=task.created",
        &h(&t, &member),
        None,
    );
    let items = r.json()["items"].as_array().unwrap().clone();
    assert_eq!(items.len(), 1);
    assert_eq!(items[0]["data"]["title"], "one");
    assert_eq!(items[0]["subject"]["type"], "task");
    let r = s.call(
        "GET",
        "/v1/events?types=user.created",
        &h(&t, &member),
        None,
    );
    assert_eq!(r.json()["items"], json!([]));
    let other = s.create_tenant("Other", "o@x.io");
    let r = s.call("GET", "/v1/events", &h(&other, &other.admin), None);
    assert!(
        r.json()["items"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["tenant_id"] == other.id.as_str())
    );
    // After the last cursor: nothing yet, the cursor stays.
    let r = s.call(
        "GET",
        &format!("/v1/events?after={last}"),
        &h(&t, &t.admin),
        None,
    );
    assert_eq!(
        r.json(),
        json!({"items": [], "next_cursor": last, "has_more": false})
    );
    for bad in ["types=task.exploded", "after=yesterday", "limit=0"] {
        let r = s.call("GET", &format!("/v1/events?{bad}"), &h(&t, &t.admin), None);
        assert_eq!(r.status, 422, "{bad}: {}", r.body);
    }
    // Past the retention the old events go, and their cursor is 410.
    clock.advance(31 * Timestamp::DAY_MICROS);
    task(&s, &t, "two");
    assert!(s.bespin.purge_events(10_000).unwrap() > 0);
    let r = s.call(
        "GET",
        &format!("/v1/events?after={first}"),
        &h(&t, &t.admin),
        None,
    );
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(r.json()["detail"]["error"], "cursor_expired");
    // On the stream: a first `event: reset` and Last-Event-ID: earliest, then the kept events.
    let hs = h(&t, &t.admin);
    let mut sse = Sse::open(&s, &format!("/v1/events/stream?last_event_id={first}"), &hs);
    sse.until("\"two\"", 1);
    assert!(
        sse.buf
            .to_ascii_lowercase()
            .contains("last-event-id: earliest"),
        "{}",
        sse.buf
    );
    let reset = sse.buf.find("event: reset").unwrap();
    assert!(reset < sse.buf.find("\"two\"").unwrap());
}

#[test]
fn the_stream_delivers_live_resumes_exactly_and_ends_at_shutdown() {
    let s = TestServer::start(test_config());
    let t = s.create_tenant("Acme", "a@x.io");
    let mut hs = h(&t, &t.admin);
    let mut sse = Sse::open(
        &s,
        "/v1/events/stream?types=task.created,task.completed",
        &hs,
    );
    sse.until(": stream open", 1);
    let head = sse.buf.to_ascii_lowercase();
    assert!(head.starts_with("http/1.1 200"), "{head}");
    for want in [
        "content-type: text/event-stream",
        "cache-control: no-cache\r",
        "x-accel-buffering: no",
    ] {
        assert!(head.contains(want), "{want} in {head}");
    }
    let a = task(&s, &t, "a");
    sse.until("event: task.created", 1);
    assert!(sse.buf.contains(a["task_id"].as_str().unwrap()));
    let first = sse.ids()[0].clone();
    drop(sse);
    // Written while nobody listened: a resume after `first` gets exactly these, in order.
    let titles = ["b", "c", "d"];
    for title in titles {
        task(&s, &t, title);
    }
    hs.push(("Last-Event-ID", first.as_str()));
    let mut sse = Sse::open(&s, "/v1/events/stream?types=task.created", &hs);
    sse.until("event: task.created", 3);
    let ids = sse.ids();
    assert_eq!(ids.len(), 3, "{}", sse.buf);
    assert!(ids.windows(2).all(|w| w[0] < w[1]) && ids[0] > first);
    for (i, title) in titles.iter().enumerate() {
        let at = sse.buf.find(&format!("\"title\":\"{title}\"")).unwrap();
        assert!(
            titles[..i]
                .iter()
                .all(|p| sse.buf.find(&format!("\"title\":\"{p}\"")).unwrap() < at)
        );
    }
    // Shutdown ends the open stream: the server stops and the client reads the end.
    drop(s);
    assert!(sse.until("never sent", 1), "the stream ended");
}

#[test]
fn the_servers_retention_setting_purges_and_a_stale_cursor_is_gone() {
    // The server's own setting (BESPIN_EVENT_RETENTION_SECS), its upkeep purging on its own.
    let mut config = test_config();
    config.event_retention = Duration::from_secs(3);
    config.upkeep_interval = Duration::from_millis(200);
    let s = TestServer::start(config);
    let t = s.create_tenant("Acme", "a@x.io");
    task(&s, &t, "zero");
    task(&s, &t, "one");
    // The cursor of "zero": stale once "one" is purged too (a cursor at the newest purged
    // event missed nothing, so it would not be).
    let r = s.call("GET", "/v1/events", &h(&t, &t.admin), None);
    let first = r.json()["items"][0]["id"].as_str().unwrap().to_owned();
    std::thread::sleep(Duration::from_millis(3_200));
    task(&s, &t, "two");
    // The upkeep purges "zero" and "one" (older than 3 s) but not "two": 410 for "zero".
    let path = format!("/v1/events?after={first}");
    let end = Instant::now() + Duration::from_secs(10);
    let r = loop {
        let r = s.call("GET", &path, &h(&t, &t.admin), None);
        if r.status != 200 || Instant::now() >= end {
            break r;
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(r.status, 410, "{}", r.body);
    assert_eq!(r.json()["detail"]["error"], "cursor_expired");
    let hs = h(&t, &t.admin);
    let mut sse = Sse::open(&s, &format!("/v1/events/stream?last_event_id={first}"), &hs);
    sse.until("\"two\"", 1);
    let lower = sse.buf.to_ascii_lowercase();
    assert!(lower.contains("last-event-id: earliest"), "{}", sse.buf);
    assert!(sse.buf.find("event: reset").unwrap() < sse.buf.find("\"two\"").unwrap());
    assert!(!sse.buf.contains("\"one\""), "{}", sse.buf);
}
