//! Events out, measured (issue 20): the real server on a durable database file, in this
//! process, driven over loopback.
//!
//! `events_bench [SECONDS] [WRITERS] [DATABASE]` (default 5 s per phase, 16 writers, a new
//! redb file; DATABASE may be a PostgreSQL URL, `postgres://…?schema=…`):
//! 1. write throughput (`POST /v1/tasks`, one keep-alive connection per writer) with 0, 1 and
//!    1,000 subscribers on `GET /v1/events/stream` (all of the writers' tenant, so every event
//!    goes to every subscriber), the events per second the subscribers received in all, and the
//!    cost to the writers' throughput against no subscriber;
//! 2. operation-to-delivery latency on the stream (from the event's `occurred_at`, the instant
//!    its operation ran — before its group commit's fsync — to the moment subscriber 0 read
//!    it), p50 and p99;
//! 3. webhook deliveries per second to a local receiver on 127.0.0.1 (allow-listed), for a
//!    backlog of tasks written while 8 endpoints subscribe to them.
//!
//! Everything shares this machine's cores (server, writers, subscribers, receiver): the figures
//! are of the whole, on the machine named where they are quoted.

use bespin_benches::percentile;
use bespin_core::{Bespin, Options};
use bespin_http::Config;
use std::io::BufReader;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

struct Tenant {
    id: String,
    user: String,
    key: String,
}

impl Tenant {
    fn head(&self) -> String {
        format!(
            "X-Tenant-ID: {}\r\nX-User-ID: {}\r\nX-API-Key: {}\r\n",
            self.id, self.user, self.key
        )
    }
}

/// One JSON request on a keep-alive connection; the status and body.
fn request(
    c: &mut BufReader<TcpStream>,
    head: &str,
    method: &str,
    path: &str,
    body: &str,
) -> (u16, String) {
    bespin_benches::request(c, head, method, path, "application/json", body)
}

fn connect(addr: SocketAddr) -> BufReader<TcpStream> {
    let s = TcpStream::connect(addr).expect("connect");
    s.set_nodelay(true).ok();
    BufReader::new(s)
}

fn json(s: &str) -> serde_json::Value {
    serde_json::from_str(s).expect("json")
}

fn micros_now() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_micros() as i64)
}

/// Microseconds of an RFC 3339 instant as Bespin writes it (`YYYY-MM-DDTHH:MM:SS.ffffffZ`).
fn micros_of(s: &str) -> Option<i64> {
    let n = |a: usize, b: usize| s.get(a..b)?.parse::<i64>().ok();
    let (y, m, d) = (n(0, 4)?, n(5, 7)?, n(8, 10)?);
    let (hh, mm, ss, us) = (n(11, 13)?, n(14, 16)?, n(17, 19)?, n(20, 26)?);
    // Days from the civil date (Howard Hinnant's algorithm).
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400 + hh * 3600 + mm * 60 + ss) * 1_000_000) + us)
}

/// Subscribers reading the stream: events counted by all, latencies by the first.
struct Subs {
    events: Arc<AtomicU64>,
    /// Bytes the subscribers read (frames, heartbeats and the response heads).
    bytes: Arc<AtomicU64>,
    latencies: Arc<Mutex<Vec<i64>>>,
    stop: Arc<AtomicBool>,
}

fn subscribe(rt: &tokio::runtime::Runtime, addr: SocketAddr, t: &Tenant, n: usize) -> Subs {
    let subs = Subs {
        events: Arc::default(),
        bytes: Arc::default(),
        latencies: Arc::default(),
        stop: Arc::default(),
    };
    let (ready_tx, ready_rx) = std::sync::mpsc::channel();
    for i in 0..n {
        let req = format!(
            "GET /v1/events/stream?types=task.created HTTP/1.1\r\nHost: b\r\n{}\r\n",
            t.head()
        );
        let (events, bytes, lat, stop, ready) = (
            Arc::clone(&subs.events),
            Arc::clone(&subs.bytes),
            Arc::clone(&subs.latencies),
            Arc::clone(&subs.stop),
            ready_tx.clone(),
        );
        rt.spawn(async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
            s.write_all(req.as_bytes()).await.expect("write");
            let mut buf = vec![0u8; 64 * 1024];
            let mut carry = String::new();
            let mut open = false;
            while !stop.load(Ordering::Relaxed) {
                let k = match s.read(&mut buf).await {
                    Ok(0) | Err(_) => break,
                    Ok(k) => k,
                };
                let got = &buf[..k];
                if !open && memchr::memmem::find(got, b"stream open").is_some() {
                    open = true;
                    let _ = ready.send(());
                }
                // Counted on the bytes, as a lean client would: these readers share the
                // server's cores, and decoding every byte as text would bill the benchmark's
                // own work to the server's write throughput.
                let hits = memchr::memmem::find_iter(got, b"event: task.created").count() as u64;
                events.fetch_add(hits, Ordering::Relaxed);
                bytes.fetch_add(k as u64, Ordering::Relaxed);
                if i == 0 && hits > 0 {
                    let now = micros_now();
                    carry.push_str(&String::from_utf8_lossy(got));
                    let mut out = lat.lock().expect("lat");
                    for part in carry.split("\"occurred_at\":\"").skip(1) {
                        if let Some(t) = micros_of(part) {
                            out.push(now - t);
                        }
                    }
                    carry.clear();
                }
            }
        });
    }
    for _ in 0..n {
        ready_rx
            .recv_timeout(Duration::from_secs(30))
            .expect("subscriber ready");
    }
    subs
}

/// Writers for `secs`: tasks written per second.
fn write_for(addr: SocketAddr, t: &Tenant, writers: usize, secs: f64) -> f64 {
    let stop = Arc::new(AtomicBool::new(false));
    let done = Arc::new(AtomicU64::new(0));
    let handles: Vec<_> = (0..writers)
        .map(|w| {
            let (stop, done, head) = (Arc::clone(&stop), Arc::clone(&done), t.head());
            std::thread::spawn(move || {
                let mut c = connect(addr);
                let mut i = 0;
                while !stop.load(Ordering::Relaxed) {
                    i += 1;
                    let body = format!("{{\"title\":\"bench {w}-{i}\"}}");
                    let (status, _) = request(&mut c, &head, "POST", "/v1/tasks", &body);
                    if status == 201 {
                        done.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs_f64(secs));
    stop.store(true, Ordering::Relaxed);
    let n = done.load(Ordering::Relaxed) as f64;
    let took = started.elapsed().as_secs_f64();
    for h in handles {
        h.join().expect("writer");
    }
    n / took
}

fn main() {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let secs: f64 = args.next().and_then(|s| s.parse().ok()).unwrap_or(5.0);
    let writers: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(16);
    let dir = std::env::temp_dir().join(format!("events-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let path = args
        .next()
        .map_or_else(|| dir.join("db.redb"), std::path::PathBuf::from);
    let on = if path.to_str().is_some_and(|p| p.starts_with("postgres")) {
        "PostgreSQL"
    } else {
        "durable database file"
    };
    let db = Bespin::open_with(
        path,
        Arc::new(bespin_core::time::SystemClock),
        Options::default(),
    )
    .expect("open");
    let (p, creds) = bespin_benches::tenant(&db, "bench");
    let t = Tenant {
        id: p.tenant_id().to_owned(),
        user: p.user_id().to_owned(),
        key: creds.api_key.clone().expect("key"),
    };
    let mut config = Config::default();
    config.rate_limit.enabled = false;
    config.auth_tarpit_after = None;
    config.max_connections = 4096;
    config.webhook_allow = vec!["127.0.0.1".into()];
    let server = bespin_benches::InProcess::start(&db, config);
    let addr = server.addr;
    let client_rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("client rt");

    println!("events_bench: {secs} s per phase, {writers} writers, {on}");
    let mut base = 0.0;
    for subscribers in [0usize, 1, 1000] {
        let subs = subscribe(&client_rt, addr, &t, subscribers);
        let before = subs.events.load(Ordering::Relaxed);
        let bytes_before = subs.bytes.load(Ordering::Relaxed);
        let started = Instant::now();
        let wps = write_for(addr, &t, writers, secs);
        // Let the subscribers drain what was written.
        std::thread::sleep(Duration::from_millis(500));
        let events = subs.events.load(Ordering::Relaxed) - before;
        let delivered = events as f64 / started.elapsed().as_secs_f64();
        let per_event = (subs.bytes.load(Ordering::Relaxed) - bytes_before) / events.max(1);
        if subscribers == 0 {
            base = wps;
        }
        let mut lat: Vec<f64> = subs
            .latencies
            .lock()
            .expect("lat")
            .iter()
            .map(|us| *us as f64 / 1000.0)
            .collect();
        lat.sort_by(f64::total_cmp);
        let lat_ms = |q: usize| percentile(&lat, q);
        println!(
            "subscribers {subscribers:>5}: writes {wps:>8.0}/s ({:+.1}% against none), events delivered {delivered:>9.0}/s ({per_event} bytes each), operation-to-delivery p50 {:.2} ms p99 {:.2} ms ({} samples)",
            (wps / base - 1.0) * 100.0,
            lat_ms(50),
            lat_ms(99),
            lat.len()
        );
        subs.stop.store(true, Ordering::Relaxed);
    }

    // Webhooks: a receiver answering 200 at once; 8 endpoints on it; a backlog of tasks.
    let received = Arc::new(AtomicU64::new(0));
    let rl = client_rt
        .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
        .expect("bind receiver");
    let raddr = rl.local_addr().expect("addr");
    let got = Arc::clone(&received);
    client_rt.spawn(async move {
        loop {
            let Ok((mut s, _)) = rl.accept().await else {
                break;
            };
            let got = Arc::clone(&got);
            tokio::spawn(async move {
                let mut buf = Vec::with_capacity(4096);
                let mut chunk = [0u8; 4096];
                loop {
                    let Ok(k) = s.read(&mut chunk).await else {
                        return;
                    };
                    if k == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..k]);
                    let text = String::from_utf8_lossy(&buf);
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| {
                                l.to_ascii_lowercase()
                                    .strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap_or(0))
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + len {
                            break;
                        }
                    }
                }
                let _ = s
                    .write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
                    .await;
                got.fetch_add(1, Ordering::Relaxed);
            });
        }
    });
    let mut c = connect(addr);
    for _ in 0..8 {
        let body =
            format!("{{\"url\":\"http://{raddr}/hook\",\"event_types\":[\"task.created\"]}}");
        let (st, b) = request(&mut c, &t.head(), "POST", "/v1/webhooks/endpoints", &body);
        assert_eq!(st, 201, "{b}");
        let _ = json(&b);
    }
    let backlog_started = Instant::now();
    let wps = write_for(addr, &t, writers, secs);
    let expected = (wps * secs) as u64 * 8;
    let deadline = Instant::now() + Duration::from_secs(120);
    while received.load(Ordering::Relaxed) < expected.saturating_sub(8 * writers as u64)
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(50));
    }
    let n = received.load(Ordering::Relaxed) as f64;
    println!(
        "webhooks: {n:.0} deliveries to 8 endpoints on one local receiver in {:.1} s: {:.0} deliveries/s (writes meanwhile {wps:.0}/s)",
        backlog_started.elapsed().as_secs_f64(),
        n / backlog_started.elapsed().as_secs_f64()
    );
    server.stop();
    drop(db);
    let _ = std::fs::remove_dir_all(&dir);
}
