//! Several `bespin serve` processes on one PostgreSQL database (issue 19): the races of the
//! reliability tests split across two servers, a server killed under concurrent writes, and
//! PostgreSQL itself stopped and started mid-load, and crashed (immediate stop, WAL replay)
//! under eight writers without losing an acknowledged write; events committed through one
//! server reach the live streams of the other at once (`LISTEN`/`NOTIFY`), also after
//! PostgreSQL restarted. Every test ends with `bespin check` on the database.
//!
//! They need a PostgreSQL server: `BESPIN_TEST_DB` names its database (`./test.sh` starts a
//! throw-away cluster with `scripts/pg.sh` and sets it); each test takes a schema of its own,
//! and the restart test a cluster of its own. Without it each test prints that it was skipped.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

use bespin_http::testing::{Sse, TestResponse, TestTenant, race, send};
use serde_json::{Value, json};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// A fresh schema of the test database, or `None` (the test is skipped) without one.
fn database() -> Option<String> {
    let url = bespin_core::test_database_url();
    if url.is_none() {
        eprintln!("skipped: BESPIN_TEST_DB names no PostgreSQL database");
    }
    url
}

/// A `bespin serve` process on `db`.
struct Server {
    child: Child,
    addr: SocketAddr,
}

impl Server {
    /// Starts a server on `db` on a free port (tried again on another port if it exits before
    /// it answers: a port found free can be taken by another process before the server binds
    /// it, such as a PostgreSQL cluster another test starts).
    fn start(db: &str) -> Server {
        Server::start_with(db, &[])
    }

    /// [`Server::start`] with more environment variables.
    fn start_with(db: &str, env: &[(&str, &str)]) -> Server {
        let mut said = String::new();
        for _ in 0..5 {
            let port = std::net::TcpListener::bind("127.0.0.1:0")
                .unwrap()
                .local_addr()
                .unwrap()
                .port();
            let addr: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
            // Its log goes to a file (a pipe nobody reads could fill and stall it).
            let log = std::env::temp_dir().join(format!("bespin-shared-{port}.log"));
            let child = Command::new(env!("CARGO_BIN_EXE_bespin"))
                .args(["serve", "--listen", &addr.to_string(), "--db", db])
                .env("RATE_LIMIT_DISABLED", "1")
                .env("RUST_LOG", "error")
                .envs(env.iter().copied())
                .stdout(Stdio::null())
                .stderr(std::fs::File::create(&log).unwrap())
                .spawn()
                .unwrap();
            let mut s = Server { child, addr };
            let deadline = Instant::now() + Duration::from_secs(30);
            while Instant::now() < deadline {
                if send(addr, "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200) {
                    let _ = std::fs::remove_file(&log);
                    return s;
                }
                if s.child.try_wait().unwrap().is_some() {
                    said = std::fs::read_to_string(&log).unwrap_or_default();
                    break;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        panic!("the server did not start: {said}");
    }

    fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    fn call(&self, t: &Tenant, method: &str, path: &str, body: Option<&Value>) -> TestResponse {
        self.call_with(t, &[], method, path, body)
    }

    fn call_with(
        &self,
        t: &Tenant,
        extra: &[(&str, &str)],
        method: &str,
        path: &str,
        body: Option<&Value>,
    ) -> TestResponse {
        let mut h = t.admin_headers();
        h.extend_from_slice(extra);
        send(self.addr, method, path, &h, body).unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        self.kill();
    }
}

type Tenant = TestTenant;

fn tenant(s: &Server, name: &str) -> Tenant {
    let body = json!({"name": name, "region": "eu", "admin_email": format!("a@{name}.example")});
    let r = send(s.addr, "POST", "/v1/tenants", &[], Some(&body)).unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let v = r.json();
    Tenant {
        id: v["tenant_id"].as_str().unwrap().into(),
        key: v["api_key"].as_str().unwrap().into(),
        admin: v["admin"]["user_id"].as_str().unwrap().into(),
    }
}

/// `bespin check` on `db` passes (run as the operator would, beside the servers).
fn checked(db: &str) {
    let out = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["check", "--db", db])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_reliability_races_split_across_two_servers_hold() {
    let Some(db) = database() else { return };
    let servers = [Server::start(&db), Server::start(&db)];
    let on = |i: usize| &servers[i % 2];
    let t = tenant(&servers[0], "acme");

    // 32 invokes with one idempotency key, half on each server, run once.
    let body = json!({"tool_name": "echo", "payload": {"n": 1}});
    let answers = race(32, |i| {
        on(i).call_with(
            &t,
            &[("Idempotency-Key", "same-key")],
            "POST",
            "/v1/tools/invoke",
            Some(&body),
        )
    });
    assert!(answers.iter().all(|r| r.status == 200), "{answers:?}");
    assert!(answers.iter().all(|r| r.body == answers[0].body));
    let ledger = on(1).call(&t, "GET", "/v1/billing/ledger", None).json();
    assert_eq!(ledger["items"].as_array().unwrap().len(), 1, "{ledger}");

    // A daily cap of 8 under 32 concurrent requests on both servers admits exactly 8.
    const N: usize = 8;
    let limits = json!({"assistant_query_daily_limit": 100, "tool_invocation_daily_limit": N,
        "daily_brief_generated_daily_limit": 10, "notification_enqueued_daily_limit": 10});
    let r = on(0).call(&t, "PUT", "/v1/limits", Some(&limits));
    assert_eq!(r.status, 200, "{}", r.body);
    // The invoke above counts against today's cap: N - 1 more are admitted.
    let answers = race(4 * N, |i| {
        let key = format!("k{i}");
        on(i).call_with(
            &t,
            &[("Idempotency-Key", &key)],
            "POST",
            "/v1/tools/invoke",
            Some(&json!({"tool_name": "echo", "payload": {"i": i}})),
        )
    });
    let ok = answers.iter().filter(|r| r.status == 200).count();
    let refused = answers.iter().filter(|r| r.status == 429).count();
    assert_eq!((ok, refused), (N - 1, 3 * N + 1), "{answers:?}");

    // Approve and reject of one action, on both servers at once, give one review.
    for round in 0..3 {
        let a = on(round).call(
            &t,
            "POST",
            "/v1/actions",
            Some(&json!({"title": format!("a{round}"), "action_type": "outreach"})),
        );
        assert_eq!(a.status, 201, "{}", a.body);
        let id = a.json()["action_id"].as_str().unwrap().to_owned();
        let answers = race(16, |i| {
            let verb = if i % 4 < 2 { "approve" } else { "reject" };
            on(i).call(
                &t,
                "POST",
                &format!("/v1/actions/{id}/{verb}"),
                Some(&json!({})),
            )
        });
        let d = on(round + 1)
            .call(&t, "GET", &format!("/v1/actions/{id}"), None)
            .json();
        let status = d["status"].as_str().unwrap();
        let winner = if status == "approved" { 0 } else { 1 };
        for (i, r) in answers.iter().enumerate() {
            let want = if (i % 4 < 2) == (winner == 0) {
                200
            } else {
                409
            };
            assert_eq!(r.status, want, "{i}: {} ({status})", r.body);
        }
    }
    checked(&db);
    // `bespin backup` of the shared database: a redb file of one snapshot, checked by the
    // command itself, which opens as a database of its own with the same ledger.
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("copy.redb");
    let run = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["backup", "--db", &db, "--out"])
        .arg(&out)
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout);
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    assert!(said.contains("0 violation(s)"), "{said}");
    let copy = bespin_core::Bespin::open(&out).unwrap();
    let who = copy
        .authenticate(&bespin_core::Credentials::new(
            Some(&t.id),
            Some(&t.admin),
            Some(&t.key),
        ))
        .unwrap();
    assert_eq!(who.tenant_id(), t.id);
}

#[test]
fn a_server_killed_under_writes_loses_no_acknowledged_write() {
    let Some(db) = database() else { return };
    let cycles: usize = std::env::var("BESPIN_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10);
    let steady = Server::start(&db);
    let t = tenant(&steady, "acme");
    let acked: Mutex<Vec<String>> = Mutex::default();
    let seq = AtomicU64::new(0);
    for cycle in 0..cycles {
        let mut victim = Server::start(&db);
        let stop = AtomicBool::new(false);
        let target = victim.addr;
        std::thread::scope(|sc| {
            for w in 0..4 {
                let (victim, steady, t, acked, seq, stop) =
                    (&target, &steady, &t, &acked, &seq, &stop);
                sc.spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        let n = seq.fetch_add(1, Ordering::Relaxed);
                        let addr = if w % 2 == 0 { *victim } else { steady.addr };
                        let body = json!({"title": format!("task {n}")});
                        let r = send(addr, "POST", "/v1/tasks", &t.admin_headers(), Some(&body));
                        if let Ok(r) = r
                            && r.status == 201
                            && let Some(id) = serde_json::from_str::<Value>(&r.body)
                                .ok()
                                .and_then(|v| v["task_id"].as_str().map(str::to_owned))
                        {
                            acked.lock().unwrap().push(id);
                        }
                    }
                });
            }
            // Kill the victim at a moment that moves from cycle to cycle.
            std::thread::sleep(Duration::from_millis(150 + (cycle as u64 * 37) % 250));
            victim.kill();
            std::thread::sleep(Duration::from_millis(50));
            stop.store(true, Ordering::Relaxed);
        });
    }
    let acked = acked.into_inner().unwrap();
    assert!(acked.len() > 10 * cycles, "too few writes: {}", acked.len());
    let reader = Server::start(&db);
    for id in &acked {
        let r = reader.call(&t, "GET", &format!("/v1/tasks/{id}"), None);
        assert_eq!(
            r.status, 200,
            "acknowledged task {id} is missing: {}",
            r.body
        );
    }
    checked(&db);
}

/// The repository's `scripts/pg.sh`.
fn pg_sh() -> Command {
    Command::new(concat!(env!("CARGO_MANIFEST_DIR"), "/../scripts/pg.sh"))
}

/// A PostgreSQL cluster of a test's own (stopping the shared one would fail the tests running
/// beside), removed when dropped.
struct Cluster {
    url: String,
    dir: String,
}

impl Cluster {
    fn start() -> Cluster {
        let out = pg_sh()
            .arg("start")
            .env("PG_FSYNC", "off")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        let vars = String::from_utf8(out.stdout).unwrap();
        let var = |name: &str| {
            vars.split_whitespace()
                .find_map(|w| w.strip_prefix(&format!("{name}=")))
                .unwrap()
                .to_owned()
        };
        Cluster {
            url: var("BESPIN_TEST_PG_URL"),
            dir: var("PGDATA_DIR"),
        }
    }

    /// `scripts/pg.sh <what> DIR` (halt, crash, resume).
    fn run(&self, what: &str) {
        assert!(pg_sh().args([what, &self.dir]).status().unwrap().success());
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = pg_sh().args(["stop", &self.dir]).status();
    }
}

#[test]
fn postgresql_restarting_mid_load_is_503_then_recovers_by_itself() {
    if database().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let url = cluster.url.clone();
    let s = Server::start(&url);
    let t = tenant(&s, "acme");
    let task = |n: u64| {
        let body = json!({"title": format!("task {n}")});
        s.call(&t, "POST", "/v1/tasks", Some(&body))
    };
    assert_eq!(task(0).status, 201);
    cluster.run("halt");
    // While it is down: writes and reads answer 503 with Retry-After, nothing else.
    for n in 1..5 {
        let w = task(n);
        assert_eq!(w.status, 503, "{}", w.body);
        assert!(w.header("retry-after").is_some());
        let r = s.call(&t, "GET", "/v1/tasks", None);
        assert_eq!(r.status, 503, "{}", r.body);
    }
    cluster.run("resume");
    // Back: the server reconnects by itself (a request or two may still find a dead
    // connection).
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut n = 10;
    loop {
        n += 1;
        let r = task(n);
        if r.status == 201 {
            break;
        }
        assert_eq!(r.status, 503, "{}", r.body);
        assert!(Instant::now() < deadline, "no recovery");
        std::thread::sleep(Duration::from_millis(100));
    }
    for n in 100..110 {
        assert_eq!(task(n).status, 201);
    }
    let list = s.call(&t, "GET", "/v1/tasks?limit=100", None);
    assert_eq!(list.status, 200, "{}", list.body);
    checked(&url);
}

#[test]
fn postgresql_crashing_under_heavy_writes_loses_no_acknowledged_write() {
    if database().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let s = Server::start(&cluster.url);
    let t = tenant(&s, "acme");
    let stop = AtomicBool::new(false);
    let acked: Mutex<Vec<String>> = Mutex::default();
    let statuses: Mutex<std::collections::BTreeMap<u16, u64>> = Mutex::default();
    let n = AtomicU64::new(0);
    std::thread::scope(|sc| {
        // Eight writers, without pause, through the crash and the recovery.
        for _ in 0..8 {
            sc.spawn(|| {
                while !stop.load(Ordering::Relaxed) {
                    let i = n.fetch_add(1, Ordering::Relaxed);
                    let body = json!({ "title": format!("w{i}") });
                    let r = s.call(&t, "POST", "/v1/tasks", Some(&body));
                    *statuses.lock().unwrap().entry(r.status).or_default() += 1;
                    if r.status == 201 {
                        let id = r.json()["task_id"].as_str().unwrap().to_owned();
                        acked.lock().unwrap().push(id);
                    }
                }
            });
        }
        let acked_before = || acked.lock().unwrap().len();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_before() < 200 {
            assert!(Instant::now() < deadline, "no writes before the crash");
            std::thread::sleep(Duration::from_millis(10));
        }
        // PostgreSQL dies as in a crash (no checkpoint; WAL replayed at the start).
        cluster.run("crash");
        std::thread::sleep(Duration::from_millis(500));
        cluster.run("resume");
        let after = acked_before();
        let deadline = Instant::now() + Duration::from_secs(30);
        while acked_before() < after + 200 {
            assert!(Instant::now() < deadline, "no recovery under load");
            std::thread::sleep(Duration::from_millis(10));
        }
        stop.store(true, Ordering::Relaxed);
    });
    // Every answer was a success or a 503 (never a 500); every acknowledged task is there.
    let statuses = statuses.into_inner().unwrap();
    assert!(
        statuses.keys().all(|s| *s == 201 || *s == 503),
        "{statuses:?}"
    );
    assert!(
        statuses.contains_key(&503),
        "the crash was seen: {statuses:?}"
    );
    let acked = acked.into_inner().unwrap();
    for id in &acked {
        let r = s.call(&t, "GET", &format!("/v1/tasks/{id}"), None);
        assert_eq!(r.status, 200, "acknowledged task {id} lost: {}", r.body);
    }
    eprintln!(
        "crash under load: {} acknowledged tasks all kept; answers {statuses:?}",
        acked.len()
    );
    checked(&cluster.url);
}

/// The servers' event poll, so long that only a notification can wake a stream in a test.
const NO_POLL: [(&str, &str); 1] = [("BESPIN_EVENT_POLL_SECS", "3600")];

/// Creates `n` tasks through `a`, one at a time, each once the one before reached `sse` (a
/// stream of `task.created` open on another server); the time from each 201 to its frame.
/// With `spread`, each write first waits a different part of a second (0, 0.4, 0.8, 0.2, …
/// s), so that writes do not all land just after a poll of the other server.
fn stream_latency(a: &Server, t: &Tenant, sse: &mut Sse, n: usize, spread: bool) -> Vec<Duration> {
    (0..n)
        .map(|i| {
            if spread {
                std::thread::sleep(Duration::from_millis((i as u64 * 400) % 1000));
            }
            let r = a.call(
                t,
                "POST",
                "/v1/tasks",
                Some(&json!({"title": format!("t{i}")})),
            );
            let answered = Instant::now();
            assert_eq!(r.status, 201, "{}", r.body);
            let id = r.json()["task_id"].as_str().unwrap().to_owned();
            // Fails after 10 s: longer than a notification takes, shorter than the 15 s
            // heartbeat (after which the stream reads the log again anyway).
            assert!(!sse.until(&id, 1), "the stream ended");
            answered.elapsed()
        })
        .collect()
}

/// Median and slowest of `took`, for the test's output (timings are printed, not asserted).
fn figures(took: &mut [Duration]) -> String {
    took.sort();
    format!(
        "median {:.1} ms, slowest {:.1} ms of {}",
        took[took.len() / 2].as_secs_f64() * 1e3,
        took[took.len() - 1].as_secs_f64() * 1e3,
        took.len()
    )
}

/// A stream of `t`'s `task.created` events open on `s`.
fn task_stream(s: &Server, t: &Tenant) -> Sse {
    let path = "/v1/events/stream?types=task.created";
    let mut sse = Sse::open_at(s.addr, path, &t.admin_headers());
    sse.until(": stream open", 1);
    sse
}

/// Two servers on `db` (with the variables `env`), a tenant made through the first, and a
/// stream of its `task.created` events open on the second.
fn two_servers_and_a_stream(db: &str, env: &[(&str, &str)]) -> (Server, Server, Tenant, Sse) {
    let (a, b) = (Server::start_with(db, env), Server::start_with(db, env));
    let t = tenant(&a, "acme");
    let sse = task_stream(&b, &t);
    (a, b, t, sse)
}

#[test]
fn events_committed_through_one_server_reach_the_streams_of_another_at_once() {
    let Some(db) = database() else { return };
    // No poll: without the notification sent with A's commit, B's stream would wait for its
    // heartbeat (15 s) before it reads the log again, and the test fails.
    let (a, _b, t, mut sse) = two_servers_and_a_stream(&db, &NO_POLL);
    let mut took = stream_latency(&a, &t, &mut sse, 20, false);
    eprintln!(
        "server A's 201 to server B's stream frame (NOTIFY): {}",
        figures(&mut took)
    );
    checked(&db);
}

#[test]
fn an_mcp_listen_stream_hears_of_changes_made_through_another_server_at_once() {
    let Some(db) = database() else { return };
    let (a, b) = (
        Server::start_with(&db, &NO_POLL),
        Server::start_with(&db, &NO_POLL),
    );
    let t = tenant(&a, "acme");
    let r = a.call(&t, "POST", "/v1/tasks", Some(&json!({"title": "followed"})));
    assert_eq!(r.status, 201, "{}", r.body);
    let task = r.json()["task_id"].as_str().unwrap().to_owned();
    let modern = "2026-07-28";
    let body = json!({"jsonrpc": "2.0", "id": "l", "method": "subscriptions/listen", "params": {
        "notifications": {"resourceSubscriptions": [format!("bespin://task/{task}")]},
        "_meta": {"io.modelcontextprotocol/protocolVersion": modern, "io.modelcontextprotocol/clientCapabilities": {}},
    }});
    let mut h = t.admin_headers();
    h.extend([
        ("Accept", "application/json, text/event-stream"),
        ("MCP-Protocol-Version", modern),
        ("Mcp-Method", "subscriptions/listen"),
    ]);
    let mut sse = Sse::request_at(b.addr, "POST", "/mcp", &h, Some(&body));
    sse.until("notifications/subscriptions/acknowledged", 1);
    let path = format!("/v1/tasks/{task}");
    let r = a.call(&t, "PATCH", &path, Some(&json!({"title": "renamed"})));
    assert_eq!(r.status, 200, "{}", r.body);
    // Within 10 s, with B's poll at an hour: only A's notification can have woken it.
    sse.until("notifications/resources/updated", 1);
}

#[test]
fn without_listen_the_poll_still_wakes_the_streams_of_another_server() {
    let Some(db) = database() else { return };
    // `listen=off` (as behind a pooler that cannot LISTEN): B polls every 0.2 s instead.
    let off = format!("{db}&listen=off");
    let poll = [("BESPIN_EVENT_POLL_SECS", "0.2")];
    let (a, _b, t, mut sse) = two_servers_and_a_stream(&off, &poll);
    let mut took = stream_latency(&a, &t, &mut sse, 3, false);
    eprintln!("listen=off, 0.2 s poll: {}", figures(&mut took));
}

/// The figure before `LISTEN`/`NOTIFY`, for the README: B hears of A's events only through
/// its poll (`listen=off`, the default 1 s poll). `cargo test --test shared -- --ignored`.
#[test]
#[ignore = "a measurement (about 10 s), not a check"]
fn stream_latency_across_servers_with_the_poll_alone() {
    let Some(db) = database() else { return };
    let off = format!("{db}&listen=off");
    let (a, _b, t, mut sse) = two_servers_and_a_stream(&off, &[]);
    let mut took = stream_latency(&a, &t, &mut sse, 20, true);
    eprintln!(
        "server A's 201 to server B's stream frame (1 s poll): {}",
        figures(&mut took)
    );
}

#[test]
fn notifications_resume_after_postgresql_restarts() {
    if database().is_none() {
        return;
    }
    let cluster = Cluster::start();
    let (a, b) = (
        Server::start_with(&cluster.url, &NO_POLL),
        Server::start_with(&cluster.url, &NO_POLL),
    );
    let t = tenant(&a, "acme");
    cluster.run("halt");
    std::thread::sleep(Duration::from_millis(300));
    cluster.run("resume");
    // Both servers answer again (their connections were dropped with the server's).
    for s in [&a, &b] {
        let deadline = Instant::now() + Duration::from_secs(20);
        while s.call(&t, "GET", "/v1/tasks", None).status != 200 {
            assert!(Instant::now() < deadline, "no recovery");
            std::thread::sleep(Duration::from_millis(100));
        }
    }
    // B's listener is back too by now (it retries at least once a second): every event
    // below reaches B's stream through a notification, the poll being off.
    std::thread::sleep(Duration::from_millis(1500));
    let mut sse = task_stream(&b, &t);
    let mut took = stream_latency(&a, &t, &mut sse, 5, false);
    eprintln!("after a PostgreSQL restart: {}", figures(&mut took));
    checked(&cluster.url);
}

/// A program embedding the core on PostgreSQL may drop its last handle inside an async task:
/// closing the pooled connections then must not panic (a `postgres` client closes through a
/// runtime of its own, which cannot start on a thread running async tasks; `events_bench`
/// aborted at its end this way).
#[test]
fn the_last_handle_dropped_inside_an_async_task_closes_cleanly() {
    let Some(url) = database() else { return };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let db = bespin_core::Bespin::open(&url).unwrap();
    let t = db
        .create_tenant(bespin_core::tenancy::NewTenant {
            name: "Drop".into(),
            region: "eu".into(),
            admin_email: "a@drop.io".into(),
        })
        .unwrap();
    // A read and a write leave a pooled reader and the writer's connection open.
    assert!(db.health().is_ok());
    assert!(!t.api_key.is_empty());
    let dropped = runtime.block_on(async move { tokio::spawn(async move { drop(db) }).await });
    assert!(
        dropped.is_ok(),
        "dropping the database panicked: {dropped:?}"
    );
}
