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

/// Reads `sse` until `needle` was seen `n` times or `within` passed; how many times it was
/// seen. Counts after each read burst, not each read: a stream of megabytes stays linear.
fn count_until(sse: &mut Sse, needle: &str, n: usize, within: Duration) -> usize {
    let end = Instant::now() + within;
    loop {
        sse.drain_for(Duration::from_millis(100));
        let seen = sse.buf.matches(needle).count();
        if seen >= n || Instant::now() >= end {
            return seen;
        }
    }
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

#[test]
fn an_idle_stream_gets_its_heartbeat() {
    let mut config = test_config();
    config.stream_heartbeat = Duration::from_millis(200);
    let s = TestServer::start(config);
    let t = s.create_tenant("Acme", "a@x.io");
    let hs = h(&t, &t.admin);
    let mut sse = Sse::open(&s, "/v1/events/stream", &hs);
    assert!(!sse.until(": heartbeat\n\n", 2), "{}", sse.buf);
    // A heartbeat never displaces an event: one written now still arrives.
    task(&s, &t, "after the heartbeats");
    sse.until("\"after the heartbeats\"", 1);
}

#[test]
fn a_consumer_that_stops_reading_is_cut_off_and_holds_up_neither_writes_nor_other_streams() {
    let mut config = test_config();
    config.stream_slow_consumer = Duration::from_millis(300);
    // Meeting notes of 40,000 characters are large writes of searchable text: unpaced here.
    config.large_text_writes_per_sec = 1e6;
    let s = TestServer::start(config);
    let t = s.create_tenant("Acme", "a@x.io");
    let hs = h(&t, &t.admin);
    let path = "/v1/events/stream?types=meeting.created";
    let mut slow = Sse::open(&s, path, &hs);
    slow.until(": stream open", 1);
    let mut fast = Sse::open(&s, path, &hs);
    fast.until(": stream open", 1);
    // 400 events of about 40 KB: 16 MB, more than the slow client's buffer of 64 frames and
    // both sockets' buffers together (a run here had 174 of them buffered when it was cut
    // off; the margin covers frames that hold several events); the slow client reads none of
    // it meanwhile.
    let notes = "n".repeat(40_000);
    const N: usize = 400;
    for i in 0..N {
        let body = json!({"title": format!("m{i}"), "meeting_date": "2026-12-01", "notes": notes});
        let r = s.call("POST", "/v1/meetings", &hs, Some(&body));
        assert_eq!(r.status, 201, "{i}: {}", &r.body[..r.body.len().min(300)]);
        if i % 50 == 49 {
            // The other stream keeps up as the writes go on.
            let want = i + 1;
            let seen = count_until(
                &mut fast,
                "event: meeting.created",
                want,
                Duration::from_secs(30),
            );
            assert_eq!(seen, want, "the fast stream is held up");
        }
    }
    // The slow client now reads what it was sent: it was cut off (its answer ended: the last
    // chunk of a chunked body) before it got everything, and may resume from its last id.
    slow.drain_for(Duration::from_secs(3));
    let got = slow.buf.matches("event: meeting.created").count();
    assert!(got < N, "the slow client got all {N}: never cut off");
    assert!(
        slow.buf.ends_with("\r\n0\r\n\r\n"),
        "its stream ended: {:?}",
        &slow.buf[slow.buf.len().saturating_sub(200)..]
    );
    let last = slow.ids().last().cloned().unwrap_or_default();
    let mut resumed = Sse::open(&s, &format!("{path}&last_event_id={last}"), &hs);
    let rest = count_until(
        &mut resumed,
        "event: meeting.created",
        N - got,
        Duration::from_secs(30),
    );
    assert_eq!(rest, N - got, "a resume gets exactly the rest");
}

#[test]
fn a_stream_resumes_across_a_restart_on_the_same_database() {
    let dir = tempfile::tempdir().unwrap();
    // The same database twice: a schema of the test PostgreSQL, or a redb file.
    let at: std::path::PathBuf = bespin_core::test_database_url()
        .map(Into::into)
        .unwrap_or_else(|| dir.path().join("restart.redb"));
    let open = || {
        let clock = Arc::new(bespin_core::time::SystemClock);
        Bespin::open_with(&at, clock, Options::default()).unwrap()
    };
    let s = TestServer::start_with(open(), test_config());
    let t = s.create_tenant("Acme", "a@x.io");
    let path = "/v1/events/stream?types=task.created";
    let mut sse = Sse::open(&s, path, &h(&t, &t.admin));
    sse.until(": stream open", 1);
    task(&s, &t, "a");
    sse.until("event: task.created", 1);
    let seen = sse.ids()[0].clone();
    // Written after the client's last id, before the server stops.
    task(&s, &t, "b");
    drop(sse);
    drop(s);
    let s = TestServer::start_with(open(), test_config());
    task(&s, &t, "c");
    let mut hs = h(&t, &t.admin);
    hs.push(("Last-Event-ID", seen.as_str()));
    let mut sse = Sse::open(&s, path, &hs);
    sse.until("event: task.created", 2);
    sse.drain_for(Duration::from_millis(300));
    let ids = sse.ids();
    assert_eq!(ids.len(), 2, "no gap, no duplicate: {}", sse.buf);
    assert!(seen < ids[0] && ids[0] < ids[1], "{ids:?} after {seen}");
    let b = sse.buf.find("\"title\":\"b\"").unwrap();
    let c = sse.buf.find("\"title\":\"c\"").unwrap();
    assert!(b < c && !sse.buf.contains("\"title\":\"a\""), "{}", sse.buf);
}
