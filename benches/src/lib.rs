//! Shared set-up of the benchmarks in `benches/`; `src/bin/bare_hyper.rs` is the comparison
//! server: hyper answering a fixed 60-byte JSON body, the ceiling for any endpoint on the same
//! machine.

use bespin_core::billing::catalog::PlanPatch;
use bespin_core::billing::subscriptions::SubscriptionUpdate;
use bespin_core::limits::DailyLimits;
use bespin_core::tenancy::NewTenant;
use bespin_core::{Bespin, Credentials, Principal};

/// Every benchmark program allocates as `bespin serve` does (mimalloc; bespin-http's
/// Cargo.toml says why): the ones that run the server or the core in their own process measure
/// what the server binary runs.
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The plan every benchmark tenant is on: `scale`, made effectively unlimited (no credit, cap
/// or daily limit gets in the way of a measurement).
pub const PLAN: &str = "scale";

/// Makes [`PLAN`] effectively unlimited.
pub fn unlimited_plan(db: &Bespin) {
    let patch = PlanPatch {
        included_credits: Some(i64::MAX / 4),
        ..Default::default()
    };
    db.admin_update_plan(PLAN, patch).expect("credits");
}

/// A new tenant named `name` on the unlimited plan with unlimited daily limits; returns its
/// admin and the admin's credentials.
pub fn tenant(db: &Bespin, name: &str) -> (Principal, Credentials) {
    unlimited_plan(db);
    let t = db
        .create_tenant(NewTenant {
            name: name.into(),
            region: "eu".into(),
            admin_email: "b@bench.io".into(),
        })
        .expect("tenant");
    let creds = Credentials::new(Some(&t.tenant_id), Some(&t.admin.user_id), Some(&t.api_key));
    let p = db.authenticate(&creds).expect("auth");
    let sub = SubscriptionUpdate {
        plan_id: PLAN.into(),
        status: "active".into(),
        period_start: None,
    };
    db.admin_set_subscription(p.tenant_id(), sub).expect("plan");
    let big = i64::MAX / 2;
    let limits = DailyLimits {
        assistant_query_daily_limit: big,
        tool_invocation_daily_limit: big,
        daily_brief_generated_daily_limit: big,
        notification_enqueued_daily_limit: big,
    };
    db.set_limits(&p, limits).expect("limits");
    (p, creds)
}

/// The custom metered event type of the usage benchmarks: `llm_tokens`, 0.001 credits a token.
pub fn usage_event_type(db: &Bespin) {
    use bespin_core::billing::catalog::NewMeteredEvent;
    db.admin_create_metered_event(NewMeteredEvent {
        event_key: "llm_tokens".into(),
        display_name: "LLM tokens".into(),
        description: None,
        unit_name: "token".into(),
        credits_per_unit: bespin_core::money::Amount::parse("0.001").expect("weight"),
        list_price_per_credit: bespin_core::money::Amount::parse("0.02").expect("price"),
        billable: true,
        active: true,
        capability: None,
    })
    .expect("event type");
}

/// Whether `USAGE_BENCH_IDS=random` is set: event ids scattered like UUIDs ([`event_id`]).
fn random_ids() -> bool {
    static RANDOM: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *RANDOM.get_or_init(|| std::env::var("USAGE_BENCH_IDS").is_ok_and(|v| v == "random"))
}

/// The CloudEvent `id` of reported event number `k`: `PREFIX-k` (consecutive numbers, which
/// land side by side in the de-duplication table), or with `USAGE_BENCH_IDS=random` in the
/// environment `PREFIX-` and 16 hex digits of a fixed permutation of `k` (ids as scattered as
/// UUIDs, the usual client choice, each claim at a random place of the table; the same `k`
/// always gives the same id, so a resent batch repeats them).
pub fn event_id(prefix: &str, k: u64) -> String {
    if !random_ids() {
        return format!("{prefix}-{k}");
    }
    // SplitMix64's finaliser: a bijection of u64, so distinct numbers keep distinct ids.
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    format!("{prefix}-{:016x}", z ^ (z >> 31))
}

/// Reported usage event number `k` (its own id, [`event_id`]; 1–4,000 tokens, a customer of
/// 100).
pub fn usage_event(k: u64) -> bespin_core::metering::ingest::UsageEventIn {
    bespin_core::metering::ingest::UsageEventIn {
        // The literal format when ids are consecutive: the figures of earlier stops made their
        // ids so (the bench's own cost is counted in them).
        id: if random_ids() {
            event_id("evt", k)
        } else {
            format!("evt-{k}")
        },
        source: "bench-service".into(),
        event_key: "llm_tokens".into(),
        subject: Some(format!("customer-{}", k % 100)),
        time: None,
        value: bespin_core::money::Amount::from_int((k % 4000 + 1) as i64),
    }
}

/// One request on a keep-alive connection (`head`: header lines, each ending in CRLF); the
/// status and the body.
pub fn request(
    c: &mut std::io::BufReader<std::net::TcpStream>,
    head: &str,
    method: &str,
    path: &str,
    content_type: &str,
    body: &str,
) -> (u16, String) {
    use std::io::{BufRead, Read, Write};
    let req = format!(
        "{method} {path} HTTP/1.1\r\nHost: b\r\n{head}Content-Type: {content_type}\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    );
    c.get_mut().write_all(req.as_bytes()).expect("write");
    let mut line = String::new();
    c.read_line(&mut line).expect("status");
    let status = line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let mut len = 0usize;
    loop {
        line.clear();
        c.read_line(&mut line).expect("header");
        if line == "\r\n" {
            break;
        }
        if let Some(v) = line.to_ascii_lowercase().strip_prefix("content-length:") {
            len = v.trim().parse().unwrap_or(0);
        }
    }
    let mut b = vec![0; len];
    c.read_exact(&mut b).expect("body");
    (status, String::from_utf8_lossy(&b).into_owned())
}

/// A fixed xorshift64 sequence from `seed` (not zero): the same numbers on every run, so a
/// measurement sees the same data or the same offsets each time, with no dependency for it.
pub fn xorshift(mut seed: u64) -> impl FnMut() -> u64 {
    move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    }
}

/// The `q`-th percentile of `sorted` (ascending), 0 when it is empty.
pub fn percentile(sorted: &[f64], q: usize) -> f64 {
    sorted.get(sorted.len() * q / 100).copied().unwrap_or(0.0)
}

/// The real server in this process on a port of its own: its runtime, address and the way to
/// stop it ([`InProcess::stop`] waits for it to finish).
pub struct InProcess {
    /// The server's runtime.
    pub runtime: tokio::runtime::Runtime,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    stop: tokio::sync::oneshot::Sender<()>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl InProcess {
    /// Serves `db` with `config` on 127.0.0.1 (an unused port).
    pub fn start(db: &Bespin, config: bespin_http::Config) -> InProcess {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .enable_all()
            .build()
            .expect("rt");
        let listener = runtime
            .block_on(tokio::net::TcpListener::bind("127.0.0.1:0"))
            .expect("bind");
        let addr = listener.local_addr().expect("addr");
        let state = bespin_http::AppState::new(db.clone(), config);
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let server = runtime.spawn(bespin_http::serve(listener, state, async {
            let _ = stopped.await;
        }));
        InProcess {
            runtime,
            addr,
            stop,
            server,
        }
    }

    /// Stops the server and waits for it.
    pub fn stop(self) {
        let _ = self.stop.send(());
        let _ = self.runtime.block_on(self.server);
    }
}
