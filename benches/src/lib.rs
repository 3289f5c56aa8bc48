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

/// How `USAGE_BENCH_IDS` shapes event ids ([`event_id`]).
#[derive(Clone, Copy, PartialEq, Eq)]
enum Ids {
    /// Unset: consecutive numbers.
    Consecutive,
    /// `random`: scattered like UUIDv4s.
    Random,
    /// `uuid7`: time-ordered like UUIDv7s.
    Uuid7,
    /// `uuid4`: UUIDv4s in canonical text, as most clients send them.
    Uuid4,
}

fn ids() -> Ids {
    static IDS: std::sync::OnceLock<Ids> = std::sync::OnceLock::new();
    *IDS.get_or_init(|| match std::env::var("USAGE_BENCH_IDS").as_deref() {
        Ok("random") => Ids::Random,
        Ok("uuid7") => Ids::Uuid7,
        Ok("uuid4") => Ids::Uuid4,
        _ => Ids::Consecutive,
    })
}

/// A fixed permutation of `k` (SplitMix64's finaliser: a bijection of u64, so distinct
/// numbers keep distinct ids).
fn scatter(k: u64) -> u64 {
    let mut z = k.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

/// The CloudEvent `id` of reported event number `k`: `PREFIX-k` (consecutive numbers, which
/// land side by side in the de-duplication table); with `USAGE_BENCH_IDS=random` in the
/// environment `PREFIX-` and 16 hex digits of a fixed permutation of `k` (ids as scattered as
/// UUIDv4s, each claim at a random place of the table); with `USAGE_BENCH_IDS=uuid7` a UUIDv7
/// (RFC 9562: a 48-bit millisecond time, then random bits) whose time is 200 events a
/// millisecond from an instant of its own for each `PREFIX` — ids that grow with time as
/// UUIDv7s and ULIDs do, each claim near the others of its time; with `USAGE_BENCH_IDS=uuid4` a
/// UUIDv4 in canonical text whose random bits are a fixed permutation of `k` and of `PREFIX`
/// (scattered like `random`'s, and of the form the store writes as 16 bytes). The same `k`
/// always gives the same id, so a resent batch repeats them.
pub fn event_id(prefix: &str, k: u64) -> String {
    event_id_as(ids(), prefix, k)
}

fn event_id_as(ids: Ids, prefix: &str, k: u64) -> String {
    match ids {
        Ids::Consecutive => format!("{prefix}-{k}"),
        Ids::Random => format!("{prefix}-{:016x}", scatter(k)),
        Ids::Uuid4 => {
            let (r, s) = (scatter(k), scatter(k ^ prefix_hash(prefix).rotate_left(32)));
            // RFC 9562: version 4 in bits 48–51.
            uuid_text((r & !0xf000) | 0x4000, s)
        }
        Ids::Uuid7 => {
            // 2026-12-05T00:00:00Z in milliseconds, a day apart for each of the few prefixes
            // (the phases of a run), plus one millisecond per 200 events.
            let ms: u64 = 1_796_428_800_000 + (prefix_hash(prefix) % 1000) * 86_400_000 + k / 200;
            let r = scatter(k);
            uuid_text((ms << 16) | 0x7000 | (r >> 52), r)
        }
    }
}

/// A number of the few prefixes of a run, so that each phase gets ids of its own.
fn prefix_hash(prefix: &str) -> u64 {
    prefix
        .bytes()
        .fold(0u64, |h, b| h.wrapping_mul(31).wrapping_add(u64::from(b)))
}

/// A UUID's canonical text: `hi` (its version already in bits 48–51), then `lo` with RFC 9562's
/// variant `10` in bits 64–65.
fn uuid_text(hi: u64, lo: u64) -> String {
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    format!(
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    )
}

/// Reported usage event number `k` (its own id, [`event_id`]; 1–4,000 tokens, a customer of
/// 100).
pub fn usage_event(k: u64) -> bespin_core::metering::ingest::UsageEventIn {
    bespin_core::metering::ingest::UsageEventIn {
        // The literal format when ids are consecutive: the figures of earlier stops made their
        // ids so (the bench's own cost is counted in them).
        id: if ids() == Ids::Consecutive {
            format!("evt-{k}")
        } else {
            event_id("evt", k)
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

#[cfg(test)]
mod tests {
    use super::{Ids, event_id_as};

    /// Ids of one number differ between prefixes (the phases of a run) and repeat for a prefix.
    fn per_prefix_and_stable(ids: Ids) {
        assert_ne!(event_id_as(ids, "evt", 1), event_id_as(ids, "http", 1));
        assert_eq!(event_id_as(ids, "evt", 9), event_id_as(ids, "evt", 9));
    }

    #[test]
    fn uuid4_ids_are_canonical_version_4_and_distinct() {
        let mut seen = std::collections::HashSet::new();
        for k in 0..5_000 {
            let id = event_id_as(Ids::Uuid4, "evt", k);
            let u = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(u.get_version_num(), 4, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            assert_eq!(u.hyphenated().to_string(), id, "canonical text");
            assert!(seen.insert(id));
        }
        per_prefix_and_stable(Ids::Uuid4);
    }

    #[test]
    fn uuid7_ids_are_version_7_and_grow_with_the_event_number() {
        let mut last = String::new();
        for k in (0..5_000).step_by(7) {
            let id = event_id_as(Ids::Uuid7, "evt", k);
            let u = uuid::Uuid::parse_str(&id).expect("a UUID");
            assert_eq!(u.get_version_num(), 7, "{id}");
            assert_eq!(u.get_variant(), uuid::Variant::RFC4122, "{id}");
            // Ids of later milliseconds sort after; within one millisecond the random bits.
            if k % 200 < 7 {
                assert!(id > last, "{id} after {last}");
            }
            last = id;
        }
        per_prefix_and_stable(Ids::Uuid7);
    }
}
