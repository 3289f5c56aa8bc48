//! Server settings, from the command line and the environment (contract 10 §9).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

/// Tenant-creation rate limit settings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RateLimit {
    /// Whether limiting is on (`RATE_LIMIT_DISABLED=1` turns it off).
    pub enabled: bool,
    /// Creations allowed per window per client (`RATE_LIMIT_TENANT_CREATE`, default 10).
    pub limit: usize,
    /// Window length in seconds (`RATE_LIMIT_WINDOW_SECONDS`, default 60).
    pub window_secs: u64,
}

/// When a metered read (search) is answered, relative to its usage event's commit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ReadMetering {
    /// After the commit holding the usage event is durable, like every write (the default).
    #[default]
    Durable,
    /// As soon as the quota check passed and the usage event joined the open batch, before
    /// that batch's fsync (`BESPIN_READ_METERING=deferred`). Faster, and less durable: a crash
    /// of the process or the machine can lose the usage events of the searches answered since
    /// the last commit (at most one batch, a few milliseconds), and if that commit fails they
    /// are lost too; those searches are then neither billed nor counted against quotas. Writes
    /// are unaffected, and quotas still hold while the server runs.
    Deferred,
}

/// Everything the server reads at start-up.
#[derive(Debug, Clone)]
pub struct Config {
    /// Listen address (`--listen`, `BESPIN_LISTEN`, default `127.0.0.1:8000`).
    pub listen: SocketAddr,
    /// Database file (`--db`, `BESPIN_DB`, default `./bespin.redb`).
    pub db_path: PathBuf,
    /// Take the client address from `X-Forwarded-For` (`--trust-proxy`,
    /// `BESPIN_TRUST_PROXY=1`): the entry [`Config::proxy_hops`] from the right, the last one
    /// that a proxy of ours appended, so entries a client wrote itself are never believed.
    pub trust_proxy: bool,
    /// How many proxies of ours stand in front of the server, each appending the address it
    /// saw to `X-Forwarded-For` (`BESPIN_TRUSTED_PROXY_HOPS`, default 1; used with
    /// [`Config::trust_proxy`]).
    pub proxy_hops: usize,
    /// Tenant-creation rate limit.
    pub rate_limit: RateLimit,
    /// Allowed CORS origins (`CORS_ORIGINS`, comma-separated; `*` allows any origin).
    pub cors_origins: Vec<String>,
    /// `/ui` and `/app` enabled (`PLAYGROUND_UI_ENABLED=1`).
    pub playground_ui: bool,
    /// `/console` enabled (`DEV_CONSOLE_ENABLED=1`).
    pub dev_console: bool,
    /// Console key (`DEV_CONSOLE_KEY`; no default: the console needs one of at least
    /// [`MIN_CONSOLE_KEY_CHARS`] characters).
    pub dev_console_key: String,
    /// Largest request body accepted, in bytes (`BESPIN_MAX_BODY_BYTES`, default 1 MiB), except
    /// on bulk ingest. A `Content-Length` over it is refused with 413 before the body is read.
    pub max_body_bytes: usize,
    /// Largest body of `POST /v1/kpis/{kpi_id}/points:bulk` (`BESPIN_MAX_BULK_BODY_BYTES`,
    /// default 10 MiB, about 200,000 points).
    pub max_bulk_body_bytes: usize,
    /// The most connections served at once (`BESPIN_MAX_CONNECTIONS`, default 1,024); further
    /// clients wait in the listen backlog until one closes. Keep it below the process's limit
    /// of open files.
    pub max_connections: usize,
    /// The most writes waiting for the writer thread (`BESPIN_WRITER_QUEUE`, default 1,024);
    /// past it a write is answered 503 with `Retry-After: 1` instead of queueing.
    pub writer_queue: usize,
    /// The most index entries one search reads (`BESPIN_SEARCH_MAX_SCAN`, default 20,000);
    /// past it the search is refused with 422 at `["query","q"]`.
    pub search_max_scan: usize,
    /// How many large writes of searchable text (a body over 4 KiB on the routes that create or
    /// edit tasks, actions, decisions, meeting notes and memory facts) one tenant may make per
    /// second on average, in bursts of 4 (`BESPIN_LARGE_TEXT_WRITES_PER_SEC`, default 2).
    /// Each indexes up to 1,000 words, spread over as many places in the index, so it costs the
    /// single writer about fifty small writes: faster ones wait their turn (up to 10 s, then
    /// 429 with `Retry-After`), so one tenant's imports never fill every commit.
    pub large_text_writes_per_sec: f64,
    /// Failed tenant authentications per minute, per client address and per claimed tenant,
    /// answered at once (`BESPIN_AUTH_TARPIT_AFTER`, default 10; `off` answers every one at
    /// once). Past that, each further failure's answer is held 100 ms longer, at most 2 s, and
    /// carries `Retry-After` (see [`crate::tarpit`]); good credentials are never held.
    pub auth_tarpit_after: Option<u32>,
    /// When set, `GET /metrics` needs `Authorization: Bearer <token>` (`BESPIN_METRICS_TOKEN`);
    /// anything else is 401.
    pub metrics_token: Option<String>,
    /// Hosts and networks webhooks may reach over plain `http://` and at private, loopback or
    /// link-local addresses (`BESPIN_WEBHOOK_ALLOW`, comma-separated host names, addresses and
    /// CIDR blocks such as `127.0.0.1,10.0.0.0/8`; default none: https to public addresses
    /// only).
    pub webhook_allow: Vec<String>,
    /// How long a claimed webhook delivery is leased before another claim may take it again
    /// (`BESPIN_WEBHOOK_LEASE_SECS`, default 300 s: longer than a full queue of one endpoint
    /// takes, so a slow endpoint is not sent duplicates; a crash delays its in-flight
    /// deliveries by at most this).
    pub webhook_lease: Duration,
    /// A PEM file of certificate authorities webhook receivers' certificates may also chain to,
    /// beside Mozilla's roots (`BESPIN_WEBHOOK_CA_FILE`; for receivers behind an internal CA).
    pub webhook_ca_file: Option<std::path::PathBuf>,
    /// How long a client may take to send its request head (`BESPIN_HEADER_READ_TIMEOUT_SECS`,
    /// default 10 s); a stalled client is disconnected.
    pub header_read_timeout: Duration,
    /// How long a client may take to send its whole body once the head is in
    /// (`BESPIN_BODY_READ_TIMEOUT_SECS`, default 30 s); past it the answer is 408 and the
    /// connection is closed.
    pub body_read_timeout: Duration,
    /// How long idempotency records are kept (`BESPIN_IDEMPOTENCY_RETENTION_SECS`, default
    /// 24 h); older ones are ignored and purged.
    pub idempotency_retention: Duration,
    /// How long a reported usage event's `(source, id)` is remembered
    /// (`BESPIN_USAGE_DEDUP_RETENTION_SECS`, default 32 days).
    pub usage_dedup_retention: Duration,
    /// How long events are kept (`--event-retention-secs`, `BESPIN_EVENT_RETENTION_SECS`,
    /// default 30 days): older ones are purged by the upkeep, and a cursor older than the
    /// retention gets 410 (on the stream, a first `event: reset`).
    pub event_retention: Duration,
    /// How often a live stream with nothing to send writes a heartbeat comment (default 15 s;
    /// not read from the environment: embedders and tests set it).
    pub stream_heartbeat: Duration,
    /// How long a streamed answer (the event stream, MCP's `subscriptions/listen`, the audit
    /// export) waits for room in a client's full buffer before the connection is dropped
    /// (default 10 s; not read from the environment: embedders and tests set it). The writer
    /// never waits on a client: a slow one is cut off and resumes from its last id.
    pub stream_slow_consumer: Duration,
    /// How often the upkeep runs (`BESPIN_UPKEEP_INTERVAL_SECS`, default 60 s): it purges
    /// expired idempotency records and events past their retention, and signs a checkpoint of
    /// every audit chain whose head moved.
    pub upkeep_interval: Duration,
    /// How often the server reads the newest event to wake its live streams for events other
    /// servers committed (`BESPIN_EVENT_POLL_SECS`, default 1 s; fractions allowed). Only a
    /// fallback on PostgreSQL: while the server hears the others' commits (`LISTEN`/`NOTIFY`)
    /// the poll reads nothing, and on redb it never reads.
    pub event_poll_interval: Duration,
    /// Token that lets `bespin backup`/`bespin check` on this machine ask the running server
    /// for a snapshot (`GET /v1/admin/backup` with `X-Bespin-Control-Token`). Set by
    /// [`crate::run`], which writes it with the address to `<db>.control` (mode 0600): whoever
    /// can read the database file can snapshot it. `None`: only the platform-admin key works.
    pub control_token: Option<String>,
    /// When metered reads are answered (`BESPIN_READ_METERING=durable|deferred`, default
    /// `durable`).
    pub read_metering: ReadMetering,
    /// Platform-admin key fixed at start-up; when `None` the `PLATFORM_ADMIN_KEY` environment
    /// variable is read on every request, as the contract says.
    pub platform_admin_key: Option<String>,
}

/// The shortest console key accepted.
pub const MIN_CONSOLE_KEY_CHARS: usize = 16;

const DEFAULT_ORIGINS: [&str; 4] = [
    "http://localhost:3000",
    "http://localhost:8000",
    "http://127.0.0.1:3000",
    "http://127.0.0.1:8000",
];

impl Default for Config {
    fn default() -> Self {
        Config {
            listen: SocketAddr::from(([127, 0, 0, 1], 8000)),
            db_path: PathBuf::from("./bespin.redb"),
            trust_proxy: false,
            proxy_hops: 1,
            rate_limit: RateLimit {
                enabled: true,
                limit: 10,
                window_secs: 60,
            },
            cors_origins: DEFAULT_ORIGINS.iter().map(|s| s.to_string()).collect(),
            playground_ui: false,
            dev_console: false,
            dev_console_key: String::new(),
            max_body_bytes: 1024 * 1024,
            max_bulk_body_bytes: 10 * 1024 * 1024,
            max_connections: 1024,
            writer_queue: 1024,
            search_max_scan: bespin_core::coreos::search::DEFAULT_MAX_SCAN,
            metrics_token: None,
            webhook_allow: Vec::new(),
            webhook_lease: Duration::from_secs(300),
            webhook_ca_file: None,
            large_text_writes_per_sec: 2.0,
            auth_tarpit_after: Some(10),
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idempotency_retention: Duration::from_secs(24 * 3600),
            usage_dedup_retention: Duration::from_secs(32 * 86_400),
            event_retention: Duration::from_secs(30 * 86_400),
            stream_heartbeat: Duration::from_secs(15),
            stream_slow_consumer: Duration::from_secs(10),
            upkeep_interval: Duration::from_secs(60),
            event_poll_interval: Duration::from_secs(1),
            control_token: None,
            read_metering: ReadMetering::Durable,
            platform_admin_key: None,
        }
    }
}

impl Config {
    /// Settings from the environment (the variables of 10 §9 plus `BESPIN_*`).
    pub fn from_env() -> Result<Config, String> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// Settings from any variable lookup (testable without touching the process environment).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Config, String> {
        let mut c = Config::default();
        if let Some(v) = get("BESPIN_LISTEN") {
            c.listen = v
                .parse()
                .map_err(|_| format!("BESPIN_LISTEN: not an address: {v}"))?;
        }
        if let Some(v) = get("BESPIN_DB") {
            c.db_path = PathBuf::from(v);
        }
        c.trust_proxy = get("BESPIN_TRUST_PROXY").as_deref() == Some("1");
        c.rate_limit.enabled = get("RATE_LIMIT_DISABLED").as_deref() != Some("1");
        if let Some(v) = get("RATE_LIMIT_TENANT_CREATE") {
            c.rate_limit.limit = v
                .trim()
                .parse()
                .map_err(|_| format!("RATE_LIMIT_TENANT_CREATE: {v}"))?;
        }
        if let Some(v) = get("RATE_LIMIT_WINDOW_SECONDS") {
            c.rate_limit.window_secs = v
                .trim()
                .parse()
                .map_err(|_| format!("RATE_LIMIT_WINDOW_SECONDS: {v}"))?;
        }
        if let Some(v) = get("CORS_ORIGINS") {
            let list: Vec<String> = v
                .split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_owned)
                .collect();
            if !list.is_empty() {
                c.cors_origins = list;
            }
        }
        c.playground_ui = get("PLAYGROUND_UI_ENABLED").as_deref() == Some("1");
        c.dev_console = get("DEV_CONSOLE_ENABLED").as_deref() == Some("1");
        if let Some(v) = get("DEV_CONSOLE_KEY") {
            c.dev_console_key = v;
        }
        if c.dev_console {
            c.console_key_error().map_or(Ok(()), Err)?;
        }
        for (name, slot) in [
            ("BESPIN_MAX_BODY_BYTES", &mut c.max_body_bytes),
            ("BESPIN_MAX_BULK_BODY_BYTES", &mut c.max_bulk_body_bytes),
            ("BESPIN_MAX_CONNECTIONS", &mut c.max_connections),
            ("BESPIN_WRITER_QUEUE", &mut c.writer_queue),
            ("BESPIN_SEARCH_MAX_SCAN", &mut c.search_max_scan),
            ("BESPIN_TRUSTED_PROXY_HOPS", &mut c.proxy_hops),
        ] {
            if let Some(v) = get(name) {
                *slot = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|n| *n > 0)
                    .ok_or_else(|| format!("{name}: {v} (expected a positive whole number)"))?;
            }
        }
        c.metrics_token = get("BESPIN_METRICS_TOKEN").filter(|t| !t.is_empty());
        if let Some(v) = get("BESPIN_WEBHOOK_LEASE_SECS") {
            c.webhook_lease = v
                .trim()
                .parse()
                .ok()
                .filter(|n| *n > 0)
                .map(Duration::from_secs)
                .ok_or_else(|| {
                    format!("BESPIN_WEBHOOK_LEASE_SECS: {v} (expected a positive whole number)")
                })?;
        }
        if let Some(v) = get("BESPIN_WEBHOOK_ALLOW") {
            c.webhook_allow = crate::webhooks::parse_allow(&v);
        }
        if let Some(v) = get("BESPIN_WEBHOOK_CA_FILE").filter(|v| !v.is_empty()) {
            crate::webhooks::extra_roots(std::path::Path::new(&v))
                .map_err(|e| format!("webhook {e}"))?;
            c.webhook_ca_file = Some(v.into());
        }
        if let Some(v) = get("BESPIN_LARGE_TEXT_WRITES_PER_SEC") {
            c.large_text_writes_per_sec = v
                .trim()
                .parse()
                .ok()
                .filter(|n: &f64| n.is_finite() && *n > 0.0)
                .ok_or_else(|| format!("BESPIN_LARGE_TEXT_WRITES_PER_SEC: {v}"))?;
        }
        if let Some(v) = get("BESPIN_AUTH_TARPIT_AFTER") {
            c.auth_tarpit_after =
                parse_tarpit_after(&v).map_err(|e| format!("BESPIN_AUTH_TARPIT_AFTER: {e}"))?;
        }
        for (name, slot) in [
            (
                "BESPIN_HEADER_READ_TIMEOUT_SECS",
                &mut c.header_read_timeout,
            ),
            ("BESPIN_BODY_READ_TIMEOUT_SECS", &mut c.body_read_timeout),
            (
                "BESPIN_IDEMPOTENCY_RETENTION_SECS",
                &mut c.idempotency_retention,
            ),
            (
                "BESPIN_USAGE_DEDUP_RETENTION_SECS",
                &mut c.usage_dedup_retention,
            ),
            ("BESPIN_EVENT_RETENTION_SECS", &mut c.event_retention),
            ("BESPIN_UPKEEP_INTERVAL_SECS", &mut c.upkeep_interval),
            ("BESPIN_EVENT_POLL_SECS", &mut c.event_poll_interval),
        ] {
            if let Some(v) = get(name) {
                let secs: f64 = v
                    .trim()
                    .parse()
                    .ok()
                    .filter(|s: &f64| s.is_finite() && *s > 0.0)
                    .ok_or_else(|| format!("{name}: {v}"))?;
                *slot = Duration::from_secs_f64(secs);
            }
        }
        if let Some(v) = get("BESPIN_READ_METERING") {
            c.read_metering = match v.trim() {
                "durable" => ReadMetering::Durable,
                "deferred" => ReadMetering::Deferred,
                _ => {
                    return Err(format!(
                        "BESPIN_READ_METERING: {v} (expected durable or deferred)"
                    ));
                }
            };
        }
        Ok(c)
    }

    /// Why the console key cannot open the console (`None` when it can): it must be set
    /// explicitly and hold at least [`MIN_CONSOLE_KEY_CHARS`] characters, since the console
    /// shows every tenant's data.
    pub fn console_key_error(&self) -> Option<String> {
        let n = self.dev_console_key.chars().count();
        (n < MIN_CONSOLE_KEY_CHARS).then(|| {
            format!(
                "DEV_CONSOLE_ENABLED=1 needs DEV_CONSOLE_KEY of at least {MIN_CONSOLE_KEY_CHARS} characters (it has {n}): the console shows every tenant's data"
            )
        })
    }

    /// The database options these settings ask for: idempotency, usage id and event
    /// retention, writer queue and search budget.
    pub fn core_options(&self) -> bespin_core::Options {
        bespin_core::Options {
            idempotency_retention_micros: i64::try_from(self.idempotency_retention.as_micros())
                .unwrap_or(i64::MAX),
            usage_dedup_retention_micros: i64::try_from(self.usage_dedup_retention.as_micros())
                .unwrap_or(i64::MAX),
            event_retention_micros: i64::try_from(self.event_retention.as_micros())
                .unwrap_or(i64::MAX),
            writer_queue: self.writer_queue,
            search_max_scan: self.search_max_scan,
            ..bespin_core::Options::default()
        }
    }

    /// The platform-admin key in force now (fixed, or the environment variable read now).
    pub fn admin_key(&self) -> Option<String> {
        match &self.platform_admin_key {
            Some(k) => Some(k.clone()),
            None => std::env::var("PLATFORM_ADMIN_KEY").ok(),
        }
        .filter(|k| !k.is_empty())
    }
}

/// `BESPIN_AUTH_TARPIT_AFTER`: a whole number of failures, or `off` (`None`).
pub fn parse_tarpit_after(v: &str) -> Result<Option<u32>, String> {
    match v.trim() {
        "off" => Ok(None),
        n => n
            .parse()
            .map(Some)
            .map_err(|_| format!("{v} (expected a whole number or off)")),
    }
}

#[cfg(test)]
mod retention_tests {
    use super::Config;
    use std::time::Duration;

    #[test]
    fn idempotency_retention_is_configurable() {
        let c = Config::from_lookup(|k| {
            (k == "BESPIN_IDEMPOTENCY_RETENTION_SECS").then(|| "90".to_owned())
        })
        .expect("config");
        assert_eq!(c.idempotency_retention, Duration::from_secs(90));
        assert_eq!(
            Config::default().idempotency_retention,
            Duration::from_secs(86_400)
        );
        assert!(
            Config::from_lookup(
                |k| (k == "BESPIN_IDEMPOTENCY_RETENTION_SECS").then(|| "-1".to_owned())
            )
            .is_err()
        );
    }

    #[test]
    fn event_retention_is_configurable_and_reaches_the_core() {
        let c =
            Config::from_lookup(|k| (k == "BESPIN_EVENT_RETENTION_SECS").then(|| "90".to_owned()))
                .expect("config");
        assert_eq!(c.event_retention, Duration::from_secs(90));
        assert_eq!(c.core_options().event_retention_micros, 90_000_000);
        assert_eq!(
            Config::default().core_options().event_retention_micros,
            bespin_core::Options::default().event_retention_micros,
            "the default is the core's (30 days)"
        );
        assert!(
            Config::from_lookup(|k| (k == "BESPIN_EVENT_RETENTION_SECS").then(|| "0".to_owned()))
                .is_err()
        );
    }

    #[test]
    fn read_metering_is_durable_unless_deferred_is_asked_for() {
        use super::ReadMetering;
        let with = |v: &str| {
            let v = v.to_owned();
            Config::from_lookup(move |k| (k == "BESPIN_READ_METERING").then(|| v.clone()))
        };
        assert_eq!(Config::default().read_metering, ReadMetering::Durable);
        assert_eq!(
            with("durable").unwrap().read_metering,
            ReadMetering::Durable
        );
        assert_eq!(
            with("deferred").unwrap().read_metering,
            ReadMetering::Deferred
        );
        assert!(with("fast").is_err());
    }

    #[test]
    fn a_webhook_ca_file_must_hold_a_certificate() {
        let with = |path: &std::path::Path| {
            let v = path.to_string_lossy().into_owned();
            Config::from_lookup(move |k| (k == "BESPIN_WEBHOOK_CA_FILE").then(|| v.clone()))
        };
        let dir = tempfile::tempdir().expect("dir");
        let missing = dir.path().join("missing.pem");
        let e = with(&missing).expect_err("a missing file");
        assert!(
            e.contains("webhook CA file") && e.contains("missing.pem"),
            "{e}"
        );
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").expect("write");
        assert!(
            with(&empty)
                .expect_err("no certificate")
                .contains("no certificate")
        );
        assert_eq!(Config::default().webhook_ca_file, None);
    }
}
