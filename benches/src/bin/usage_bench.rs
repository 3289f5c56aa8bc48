//! Usage in, measured (issue 22): reported usage events per second, de-duplication on, on a
//! database file, durable unless `USAGE_BENCH_DURABLE=0`.
//!
//! `usage_bench [EVENTS] [CONNECTIONS] [DATABASE]` (default 200,000 events, 4 connections, a
//! new redb file; DATABASE may be a PostgreSQL URL, `postgres://…?schema=…`):
//! 1. core: `Bespin::record_usage_events` from one thread, batches of 1,000 (each a new
//!    `(source, id)`), then the same from 4 threads (group commit); the events are made
//!    before the clock starts, as the HTTP phase's bodies are (`USAGE_BENCH_BUILD=inside`
//!    makes each batch's events on the clock, as the figures of stops up to 40 did);
//! 2. HTTP: the real server in this process, `POST /v1/usage/events` with
//!    `application/cloudevents-batch+json` bodies of 1,000 events (built before the clock
//!    starts), on keep-alive connections;
//! 3. duplicates: the HTTP phase's first batches sent again (every event a duplicate);
//! 4. scattered duplicates: through the core, requests of one event from each of up to 1,000
//!    of the core's earlier batches (every event a duplicate whose claim names an event of
//!    another stored chunk: the worst case of a lookup's confirmation), and the slowest
//!    request's time.
//!
//! Event ids are consecutive numbers (`evt-17`), which land side by side in the
//! de-duplication table; `USAGE_BENCH_IDS=random` makes them scattered like UUIDv4s, each
//! claim at a random place of the table (`uuid4`: the same, as canonical UUIDv4 text), and
//! `USAGE_BENCH_IDS=uuid7` time-ordered like UUIDv7s
//! and ULIDs ([`bespin_benches::event_id`]).
//!
//! `USAGE_BENCH_DURABLE=0` opens the database with commits that are not fsynced (an
//! embedder's opt-in, `Options::durable`; the server's HTTP phase then runs so too).
//!
//! Everything shares this machine's cores (server, clients): the figures are of the whole, on
//! the machine named where they are quoted.

use bespin_core::metering::ingest::{IngestReport, UsageEventIn, UsageEvents};
use bespin_core::{Bespin, Options, Principal};
use bespin_http::Config;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

/// Events of batch `b` (1,000 of them, ids from `b * 1000`), as JSON text.
fn batch_body(b: usize) -> String {
    let mut s = String::with_capacity(150_000);
    s.push('[');
    for k in b * 1000..(b + 1) * 1000 {
        if k > b * 1000 {
            s.push(',');
        }
        s.push_str(&format!(
            r#"{{"specversion":"1.0","id":"{}","source":"bench-service","type":"llm_tokens","subject":"customer-{}","data":{{"value":{}}}}}"#,
            bespin_benches::event_id("http", k as u64),
            k % 100,
            k % 4000 + 1
        ));
    }
    s.push(']');
    s
}

/// Whether the run's commits are fsynced (`USAGE_BENCH_DURABLE` is not `0`).
fn db_durable() -> bool {
    std::env::var("USAGE_BENCH_DURABLE").map_or(true, |v| v != "0")
}

/// The CPU time this process has used so far, in seconds (user and system, from
/// `/proc/self/stat`; 0 where there is none): with a phase's wall time, how many of the
/// machine's cores the phase kept busy.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // After the command name's closing parenthesis: fields 3 on; utime and stime are 14, 15.
    let rest = stat.rsplit_once(')').map_or("", |(_, r)| r);
    let ticks: f64 = (rest.split_whitespace().skip(11).take(2))
        .filter_map(|t| t.parse::<f64>().ok())
        .sum();
    ticks / 100.0
}

/// The events of the core's batch `b` (events `b * 1000` to `b * 1000 + 999`).
fn core_events(b: usize) -> Vec<UsageEventIn> {
    (b * 1000..(b + 1) * 1000)
        .map(|k| bespin_benches::usage_event(k as u64))
        .collect()
}

/// Records the core's batch `b` as `p`.
fn core_batch(db: &Bespin, p: &Principal, b: usize) -> IngestReport {
    record(db, p, core_events(b))
}

/// Records `events` as `p` (the request is made here, its hashes with it: the core's work).
fn record(db: &Bespin, p: &Principal, events: Vec<UsageEventIn>) -> IngestReport {
    db.record_usage_events(p, UsageEvents::from_events(events).expect("batch"))
        .expect("ingest")
}

/// The core phases' batches `from..to`, made now unless `USAGE_BENCH_BUILD=inside` (then
/// each is made on the clock, where it is taken).
fn prebuilt(from: usize, to: usize) -> Vec<std::sync::Mutex<Option<Vec<UsageEventIn>>>> {
    let inside = std::env::var("USAGE_BENCH_BUILD").is_ok_and(|v| v == "inside");
    (from..to)
        .map(|b| std::sync::Mutex::new((!inside).then(|| core_events(b))))
        .collect()
}

/// Batch `b` of `made` (which starts at batch `from`), made now if it was not.
fn take(
    made: &[std::sync::Mutex<Option<Vec<UsageEventIn>>>],
    from: usize,
    b: usize,
) -> Vec<UsageEventIn> {
    let slot = made[b - from].lock().expect("batch").take();
    slot.unwrap_or_else(|| core_events(b))
}

/// Requests of one event from each of up to 1,000 of the core's first `batches` batches (the
/// `r`th event of each, for 10 values of `r`), all duplicates: events per second, and the
/// slowest request in milliseconds.
fn scattered_duplicates(db: &Bespin, p: &Principal, batches: usize) -> (f64, f64) {
    let (mut events, mut slowest) = (0usize, 0f64);
    let started = Instant::now();
    for r in 0..10 {
        let batch: Vec<_> = (0..batches.min(1000))
            .map(|b| bespin_benches::usage_event((b * 1000 + r * 97) as u64))
            .collect();
        events += batch.len();
        let t = Instant::now();
        let report = db
            .record_usage_events(p, UsageEvents::from_events(batch).expect("batch"))
            .expect("ingest");
        slowest = slowest.max(t.elapsed().as_secs_f64() * 1000.0);
        assert_eq!(report.counts().1, report.results.len(), "all duplicates");
    }
    (events as f64 / started.elapsed().as_secs_f64(), slowest)
}

/// Sends `bodies` over `connections` keep-alive connections; events per second.
fn http_phase(addr: SocketAddr, head: &str, bodies: &Arc<Vec<String>>, connections: usize) -> f64 {
    let next = Arc::new(AtomicUsize::new(0));
    let started = Instant::now();
    let handles: Vec<_> = (0..connections)
        .map(|_| {
            let (next, bodies, head) = (Arc::clone(&next), Arc::clone(bodies), head.to_owned());
            std::thread::spawn(move || {
                let s = TcpStream::connect(addr).expect("connect");
                s.set_nodelay(true).ok();
                let mut c = BufReader::new(s);
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    let Some(body) = bodies.get(i) else { break };
                    let (status, _) = bespin_benches::request(
                        &mut c,
                        &head,
                        "POST",
                        "/v1/usage/events",
                        "application/cloudevents-batch+json",
                        body,
                    );
                    assert_eq!(status, 200);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().expect("client");
    }
    (bodies.len() * 1000) as f64 / started.elapsed().as_secs_f64()
}

fn main() {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let events: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200_000);
    let connections: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(4);
    let batches = events.div_ceil(1000);
    let dir = std::env::temp_dir().join(format!("usage-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = args
        .next()
        .map_or_else(|| dir.join("db.redb"), std::path::PathBuf::from);
    let db = Bespin::open_with(
        &path,
        Arc::new(bespin_core::time::SystemClock),
        // `USAGE_BENCH_DURABLE=0`: commits not fsynced, the embedder's opt-in
        // (`Options::durable`); the server always runs durable.
        Options {
            durable: db_durable(),
            ..Options::default()
        },
    )
    .expect("open");
    bespin_benches::usage_event_type(&db);
    let (p, creds) = bespin_benches::tenant(&db, "bench");
    let on = if path.to_str().is_some_and(|s| s.starts_with("postgres")) {
        "PostgreSQL"
    } else {
        "a database file"
    };
    let durable = if db_durable() {
        ""
    } else {
        ", commits not fsynced"
    };
    println!("usage_bench: {events} events in batches of 1,000, {on}{durable}");

    // 1. The core, one thread, then four.
    let made = prebuilt(0, batches);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    for b in 0..batches {
        assert_eq!(record(&db, &p, take(&made, 0, b)).counts().0, 1000);
    }
    let wall = started.elapsed().as_secs_f64();
    let one = (batches * 1000) as f64 / wall;
    let cores = (cpu_seconds() - cpu) / wall;
    println!("core, 1 thread:   {one:>10.0} events/s ({cores:.2} cores busy)");
    let next = AtomicUsize::new(batches);
    let made = prebuilt(batches, 2 * batches);
    let (started, cpu) = (Instant::now(), cpu_seconds());
    std::thread::scope(|s| {
        for _ in 0..4 {
            s.spawn(|| {
                loop {
                    let b = next.fetch_add(1, Ordering::Relaxed);
                    if b >= 2 * batches {
                        break;
                    }
                    record(&db, &p, take(&made, batches, b));
                }
            });
        }
    });
    let wall = started.elapsed().as_secs_f64();
    let four = (batches * 1000) as f64 / wall;
    let cores = (cpu_seconds() - cpu) / wall;
    println!("core, 4 threads:  {four:>10.0} events/s ({cores:.2} cores busy)");

    // 2. HTTP.
    let mut config = Config::default();
    config.rate_limit.enabled = false;
    config.auth_tarpit_after = None;
    let server = bespin_benches::InProcess::start(&db, config);
    let addr = server.addr;
    let head = format!(
        "X-Tenant-ID: {}\r\nX-User-ID: {}\r\nX-API-Key: {}\r\n",
        p.tenant_id(),
        p.user_id(),
        creds.api_key.clone().expect("key")
    );
    let bodies: Arc<Vec<String>> = Arc::new((0..batches).map(batch_body).collect());
    let http = http_phase(addr, &head, &bodies, connections);
    println!(
        "HTTP, {connections} conns:    {http:>10.0} events/s ({} KiB a body)",
        bodies[0].len() / 1024
    );
    let dups: Arc<Vec<String>> = Arc::new(bodies.iter().take(batches.min(50)).cloned().collect());
    let dup = http_phase(addr, &head, &dups, connections);
    println!("HTTP duplicates:  {dup:>10.0} events/s");
    server.stop();
    let (scattered, slowest) = scattered_duplicates(&db, &p, batches);
    println!(
        "core duplicates, scattered: {scattered:>10.0} events/s, slowest request {slowest:.1} ms"
    );
    // The core's batches answer as duplicates now (their claims were merged many times
    // meanwhile, the HTTP phase's with them), and a batch never sent is accepted whole: the
    // figures above are of de-duplication that works.
    for b in [
        0,
        batches / 2,
        batches - 1,
        batches,
        2 * batches - 1,
        2 * batches,
    ] {
        let r = core_batch(&db, &p, b);
        let fresh = b >= 2 * batches;
        assert_eq!(
            r.counts(),
            if fresh { (1000, 0, 0) } else { (0, 1000, 0) },
            "batch {b}"
        );
    }
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
