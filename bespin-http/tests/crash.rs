//! Crash test: the real `bespin` binary is killed with SIGKILL at a random moment while several
//! clients write, then restarted on the same file. Every acknowledged (2xx) write must be
//! there, nothing may be half-written (chat messages come in user + assistant pairs, tenants
//! come with their admin, plan and limits, tool calls with their ledger entry), and
//! `bespin check` must pass. 20 cycles by default; `BESPIN_SOAK_CYCLES=N` for a long soak.
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

use bespin_http::testing::{TestResponse, send};
use serde_json::{Value, json};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

#[derive(Clone)]
struct Tenant {
    id: String,
    key: String,
    admin: String,
}

impl Tenant {
    fn headers(&self) -> Vec<(&str, &str)> {
        vec![
            ("X-Tenant-ID", &self.id),
            ("X-User-ID", &self.admin),
            ("X-API-Key", &self.key),
        ]
    }
}

/// Everything the server acknowledged.
#[derive(Default)]
struct Acked {
    tenants: Vec<Tenant>,
    /// (tenant index, conversation id) → messages the client saw acknowledged (user + reply).
    chats: HashMap<(usize, String), usize>,
    /// (tenant index, idempotency key, request body, response body).
    invokes: Vec<(usize, String, Value, String)>,
    /// (tenant index, task id).
    tasks: Vec<(usize, String)>,
    /// (tenant index, kpi id, latest value ingested and acknowledged).
    kpis: Vec<(usize, String, Option<f64>)>,
}

/// A small xorshift generator (no extra dependency), seeded from the clock.
struct Rng(u64);
impl Rng {
    fn new(seed: u64) -> Rng {
        Rng(seed | 1)
    }
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n.max(1)
    }
}

fn start(db: &Path) -> (Child, SocketAddr) {
    let control = bespin_http::control_path(db);
    let _ = std::fs::remove_file(&control);
    let child = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(db)
        .env("RATE_LIMIT_DISABLED", "1")
        .env("RUST_LOG", "error")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some(addr) = std::fs::read_to_string(&control)
            .ok()
            .and_then(|t| t.lines().next().and_then(|l| l.parse().ok()))
            && send(addr, "GET", "/healthz", &[], None).is_ok_and(|r| r.status == 200)
        {
            return (child, addr);
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    panic!("the server did not start");
}

/// A 2xx whose body is complete JSON (a torn answer is not an acknowledgement).
fn acked(r: &std::io::Result<TestResponse>) -> Option<Value> {
    match r {
        Ok(r) if (200..300).contains(&r.status) => serde_json::from_str(&r.body)
            .ok()
            .filter(|v: &Value| !v.is_null()),
        _ => None,
    }
}

fn create_tenant(addr: SocketAddr, n: u64) -> Option<Tenant> {
    let r = send(
        addr,
        "POST",
        "/v1/tenants",
        &[],
        Some(
            &json!({"name": format!("t{n}"), "region": "eu", "admin_email": format!("a{n}@t.example")}),
        ),
    );
    let v = acked(&r)?;
    Some(Tenant {
        id: v["tenant_id"].as_str()?.into(),
        key: v["api_key"].as_str()?.into(),
        admin: v["admin"]["user_id"].as_str()?.into(),
    })
}

/// One client: writes until the server goes away or `stop` is set.
fn client(addr: SocketAddr, me: usize, acks: &Mutex<Acked>, stop: &AtomicBool, seq: &AtomicU64) {
    let mut rng = Rng::new(seq.fetch_add(7919, Ordering::SeqCst) ^ (me as u64) << 32);
    while !stop.load(Ordering::Relaxed) {
        let n = seq.fetch_add(1, Ordering::SeqCst);
        let (ti, t) = {
            let a = acks.lock().unwrap();
            let ti = rng.below(a.tenants.len() as u64) as usize;
            (ti, a.tenants[ti].clone())
        };
        let h = t.headers();
        let ok = match rng.below(10) {
            0 if me == 0 => match create_tenant(addr, n) {
                Some(t) => {
                    acks.lock().unwrap().tenants.push(t);
                    true
                }
                None => false,
            },
            0..=2 => {
                let conv = {
                    let a = acks.lock().unwrap();
                    a.chats
                        .keys()
                        .filter(|(i, _)| *i == ti)
                        .map(|(_, c)| c.clone())
                        .next()
                };
                let body = match (&conv, rng.below(2)) {
                    (Some(c), 0) => json!({"message": format!("hello {n}"), "conversation_id": c}),
                    _ => json!({"message": format!("what are my kpis {n}")}),
                };
                match acked(&send(addr, "POST", "/v1/cofounder/chat", &h, Some(&body))) {
                    Some(v) => {
                        let c = v["conversation_id"].as_str().unwrap().to_owned();
                        *acks.lock().unwrap().chats.entry((ti, c)).or_default() += 2;
                        true
                    }
                    None => false,
                }
            }
            3..=5 => {
                let key = format!("idem-{n}");
                let body = json!({"tool_name": "echo", "payload": {"n": n}});
                let mut hk = h.clone();
                hk.push(("Idempotency-Key", &key));
                let r = send(addr, "POST", "/v1/tools/invoke", &hk, Some(&body));
                match acked(&r) {
                    Some(_) => {
                        let text = r.unwrap().body;
                        acks.lock().unwrap().invokes.push((ti, key, body, text));
                        true
                    }
                    None => false,
                }
            }
            6..=7 => {
                let body = json!({"title": format!("task {n}"), "description": format!("crash test word{n}")});
                match acked(&send(addr, "POST", "/v1/tasks", &h, Some(&body))) {
                    Some(v) => {
                        let id = v["task_id"].as_str().unwrap().to_owned();
                        acks.lock().unwrap().tasks.push((ti, id));
                        true
                    }
                    None => false,
                }
            }
            _ => {
                let body = json!({"name": format!("kpi {n}")});
                match acked(&send(addr, "POST", "/v1/kpis", &h, Some(&body))) {
                    Some(v) => {
                        let id = v["kpi_id"].as_str().unwrap().to_owned();
                        let idx = {
                            let mut a = acks.lock().unwrap();
                            a.kpis.push((ti, id.clone(), None));
                            a.kpis.len() - 1
                        };
                        let value = (n % 1000) as f64;
                        let pts =
                            json!({"points": [{"ts": "2026-01-01T00:00:00Z", "value": value}]});
                        let path = format!("/v1/kpis/{id}/points:bulk");
                        if acked(&send(addr, "POST", &path, &h, Some(&pts))).is_some() {
                            acks.lock().unwrap().kpis[idx].2 = Some(value);
                        }
                        true
                    }
                    None => false,
                }
            }
        };
        if !ok && send(addr, "GET", "/healthz", &[], None).is_err() {
            return; // the server is gone
        }
    }
}

/// Checks that every acknowledged write is present and whole; returns how many were checked.
fn verify(addr: SocketAddr, a: &Acked) -> usize {
    let mut checked = 0;
    for t in &a.tenants {
        for path in ["/v1/me", "/v1/billing/plan", "/v1/limits"] {
            let r = send(addr, "GET", path, &t.headers(), None).unwrap();
            assert_eq!(
                r.status, 200,
                "tenant {} lost or half-made: {path} {}",
                t.id, r.body
            );
        }
        checked += 1;
    }
    for ((ti, conv), n) in &a.chats {
        let t = &a.tenants[*ti];
        let r = send(
            addr,
            "GET",
            &format!("/v1/conversations/{conv}"),
            &t.headers(),
            None,
        )
        .unwrap();
        assert_eq!(r.status, 200, "conversation {conv} lost: {}", r.body);
        let v = r.json();
        let msgs = v["messages"].as_array().unwrap();
        assert!(
            msgs.len() >= *n,
            "conversation {conv}: {} messages, {n} acknowledged",
            msgs.len()
        );
        assert!(
            msgs.len().is_multiple_of(2),
            "conversation {conv} has a half-written exchange"
        );
        for pair in msgs.chunks(2) {
            assert_eq!(
                (pair[0]["role"].as_str(), pair[1]["role"].as_str()),
                (Some("user"), Some("assistant")),
                "{v}"
            );
        }
        checked += n / 2;
    }
    for (ti, key, body, text) in &a.invokes {
        let t = &a.tenants[*ti];
        let mut h = t.headers();
        h.push(("Idempotency-Key", key));
        let r = send(addr, "POST", "/v1/tools/invoke", &h, Some(body)).unwrap();
        assert_eq!(
            (r.status, &r.body),
            (200, text),
            "tool call {key} was not kept"
        );
        checked += 1;
    }
    for (ti, id) in &a.tasks {
        let r = send(
            addr,
            "GET",
            &format!("/v1/tasks/{id}"),
            &a.tenants[*ti].headers(),
            None,
        )
        .unwrap();
        assert_eq!(r.status, 200, "task {id} lost: {}", r.body);
        checked += 1;
    }
    for (ti, id, value) in &a.kpis {
        let r = send(
            addr,
            "GET",
            &format!("/v1/kpis/{id}/latest"),
            &a.tenants[*ti].headers(),
            None,
        )
        .unwrap();
        match value {
            Some(v) => {
                assert_eq!(r.status, 200, "points of kpi {id} lost: {}", r.body);
                assert_eq!(r.json()["value"].as_f64(), Some(*v), "{}", r.body);
            }
            None => assert!(
                r.status == 200 || r.status == 404,
                "kpi {id} lost: {}",
                r.body
            ),
        }
        checked += 1;
    }
    checked
}

fn bespin_check(db: &Path) {
    let out = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["check", "--db"])
        .arg(db)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "bespin check failed:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn acknowledged_writes_survive_sigkill() {
    let cycles: usize = std::env::var("BESPIN_SOAK_CYCLES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20);
    let dir = tempfile::tempdir().unwrap();
    let db: PathBuf = dir.path().join("crash.redb");
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    eprintln!("crash test: {cycles} cycles, seed {seed}");
    let mut rng = Rng::new(seed);
    let seq = AtomicU64::new(seed % 1_000_000);
    let acks = Mutex::new(Acked::default());
    let started = Instant::now();
    let (mut child, mut addr) = start(&db);
    for i in 0..3 {
        let t = create_tenant(addr, 1_000_000 + i).unwrap();
        acks.lock().unwrap().tenants.push(t);
    }
    let mut verified = 0usize;
    for cycle in 0..cycles {
        let stop = Arc::new(AtomicBool::new(false));
        let before = count(&acks.lock().unwrap());
        let kill_after = Duration::from_millis(80 + rng.below(400));
        std::thread::scope(|sc| {
            for me in 0..4 {
                let (acks, stop, seq) = (&acks, &stop, &seq);
                sc.spawn(move || client(addr, me, acks, stop, seq));
            }
            std::thread::sleep(kill_after);
            child.kill().unwrap(); // SIGKILL
            child.wait().unwrap();
            stop.store(true, Ordering::Relaxed);
        });
        let during = count(&acks.lock().unwrap()) - before;
        (child, addr) = start(&db);
        verified = verify(addr, &acks.lock().unwrap());
        bespin_check(&db);
        eprintln!(
            "cycle {cycle}: {during} writes acknowledged, killed after {kill_after:?}; {verified} verified in all"
        );
    }
    child.kill().unwrap();
    child.wait().unwrap();
    // The last file, opened directly, passes the checker too.
    let r = bespin_core::Bespin::open(&db).unwrap().check().unwrap();
    assert!(r.is_ok(), "{r}");
    // Every tenant's audit chain recomputes clean after the crashes (`bespin check` above
    // holds it too; this is the operator's command for it).
    let out = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["audit", "verify", "--json", "--db"])
        .arg(&db)
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bespin audit verify: {text}");
    let v: Value = serde_json::from_str(&text).unwrap();
    assert!(v["rows"].as_u64().unwrap() > 0, "{v}");
    assert_eq!(v["total_findings"], 0, "{v}");
    eprintln!(
        "crash test: {cycles} SIGKILL cycles survived, {} writes acknowledged, {verified} verified present after the last restart, {} checks passed, {:.1} s",
        count(&acks.lock().unwrap()),
        r.checks,
        started.elapsed().as_secs_f64()
    );
}

fn count(a: &Acked) -> usize {
    a.tenants.len()
        + a.chats.values().sum::<usize>() / 2
        + a.invokes.len()
        + a.tasks.len()
        + a.kpis.len()
}
