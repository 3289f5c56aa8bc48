//! # Bespin HTTP server
//!
//! A thin hyper layer over [`bespin_core`]: each handler parses the request, calls one core
//! operation and renders the result. Business rules live in the core. The contract is the one in
//! HTTP contract (served as `/openapi.json`); [`serve`] runs it on a listener, so tests and embedders reuse the exact server
//! the `bespin` binary runs.

mod body;
mod client;
pub mod config;
mod cors;
mod error;
pub mod export_usage;
mod extract;
mod headers;
mod lane;
pub mod mcp;
pub mod metrics;
pub mod openapi;
mod pipeline;
mod ratelimit;
pub mod readiness;
mod reply;
pub mod request_log;
pub mod router;
mod routes;
pub mod tarpit;
#[cfg(feature = "testing")]
pub mod testing;
pub mod webhooks;

pub use config::Config;
pub use error::ApiError;

use bespin_core::Bespin;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use tokio::net::TcpListener;

/// Jobs one tenant (or unauthenticated client) may have waiting in the background lane.
const LANE_JOBS_PER_CALLER: usize = 32;

/// Everything a request handler can reach.
pub struct AppState {
    /// The database.
    pub bespin: Bespin,
    /// The server settings.
    pub config: Config,
    limiter: ratelimit::RateLimiter,
    buckets: ratelimit::TenantBuckets,
    router: router::Router,
    metrics: metrics::Metrics,
    console_sessions: routes::ConsoleSessions,
    readiness: readiness::Readiness,
    console_failed_keys: ratelimit::RateLimiter,
    lane: Arc<lane::Lane>,
    large_text_writes: ratelimit::Pacer,
    tarpit: Arc<tarpit::Tarpit>,
    mcp: mcp::McpState,
    /// Set when the server stops: every event stream ends cleanly.
    stop_streams: tokio::sync::watch::Sender<bool>,
}

impl AppState {
    /// State for `bespin` with `config`. A console asked for with a key that is too short is
    /// left off (logged as an error; [`Config::from_env`] refuses such a setting outright), and
    /// a console that is on is logged as a warning.
    pub fn new(bespin: Bespin, mut config: Config) -> Arc<AppState> {
        if config.dev_console {
            match config.console_key_error() {
                Some(e) => {
                    tracing::error!("developer console left off: {e}");
                    config.dev_console = false;
                }
                None => tracing::warn!(
                    "the developer console is on: /console shows every tenant's data to whoever holds DEV_CONSOLE_KEY"
                ),
            }
        }
        let limiter = ratelimit::RateLimiter::new(config.rate_limit);
        let large_text_writes = ratelimit::Pacer::new(
            config.large_text_writes_per_sec,
            4,
            std::time::Duration::from_secs(10),
        );
        let tarpit = Arc::new(tarpit::Tarpit::new(config.auth_tarpit_after));
        let metrics = metrics::Metrics::new(bespin.clone(), Arc::clone(&tarpit));
        let mcp = mcp::McpState::new();
        Arc::new(AppState {
            mcp,
            bespin,
            config,
            limiter,
            buckets: ratelimit::TenantBuckets::new(),
            router: routes::router(),
            metrics,
            console_sessions: Default::default(),
            readiness: Default::default(),
            console_failed_keys: routes::console_failed_keys(),
            large_text_writes,
            tarpit,
            stop_streams: tokio::sync::watch::Sender::new(false),
            lane: Arc::new(lane::Lane::new(
                std::thread::available_parallelism().map_or(2, usize::from),
                LANE_JOBS_PER_CALLER,
            )),
        })
    }

    /// Every route served.
    pub fn routes(&self) -> &[router::Route] {
        self.router.routes()
    }
}

/// Serves the API on `listener` until `shutdown` resolves, then stops accepting and lets
/// in-flight requests finish. At most `config.max_connections` connections are served at once:
/// past that the next one is accepted only when one closes (it waits in the listen backlog).
pub async fn serve(
    listener: TcpListener,
    state: Arc<AppState>,
    shutdown: impl Future<Output = ()>,
) -> std::io::Result<()> {
    use hyper::server::conn::http1;
    use hyper_util::rt::TokioIo;
    use hyper_util::server::graceful::GracefulShutdown;

    let graceful = GracefulShutdown::new();
    let purge = tokio::spawn(purge_loop(state.clone()));
    let erasures = tokio::spawn(erasure_loop(state.clone()));
    let events = tokio::spawn(routes::maintain_events(
        state.bespin.clone(),
        state.stop_streams.subscribe(),
        state.config.upkeep_interval,
        state.config.event_poll_interval,
    ));
    let deliveries = tokio::spawn(webhooks::run(state.clone(), state.stop_streams.subscribe()));
    let slots = Arc::new(tokio::sync::Semaphore::new(state.config.max_connections));
    tokio::pin!(shutdown);
    loop {
        let slot = tokio::select! {
            slot = slots.clone().acquire_owned() => match slot {
                Ok(slot) => slot,
                Err(_) => break,
            },
            _ = &mut shutdown => break,
        };
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, peer) = match accepted {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let header_timeout = state.config.header_read_timeout;
                let state = state.clone();
                let service = hyper::service::service_fn(move |req| {
                    pipeline::handle(state.clone(), peer, req)
                });
                let mut builder = http1::Builder::new();
                builder.timer(hyper_util::rt::TokioTimer::new());
                builder.header_read_timeout(header_timeout);
                let conn = builder.serve_connection(TokioIo::new(stream), service);
                let fut = graceful.watch(conn);
                tokio::spawn(async move {
                    if let Err(e) = fut.await {
                        tracing::debug!("connection error: {e}");
                    }
                    drop(slot);
                });
            }
            _ = &mut shutdown => break,
        }
    }
    purge.abort();
    erasures.abort();
    drop(listener);
    // Event streams never end on their own: end them, so the connections can close.
    state.stop_streams.send_replace(true);
    events.abort();
    graceful.shutdown().await;
    // Deliveries in flight are abandoned: their leases end and they are sent again.
    deliveries.abort();
    Ok(())
}

/// Runs `read`, a read of the core, where it may block: at once when the database is in this
/// process (redb: microseconds of memory), on the blocking pool when it is over the network
/// (PostgreSQL: a round trip must not hold a runtime worker, whose other connections would
/// wait). Used by the pipeline for request reads and by the server's background tasks (the
/// event streams, the webhook worker, the upkeep). An error if the blocking task panicked or
/// the runtime is stopping.
pub(crate) async fn core_read<T: Send + 'static>(
    blocking: bool,
    read: impl FnOnce() -> T + Send + 'static,
) -> Result<T, tokio::task::JoinError> {
    if !blocking {
        return Ok(read());
    }
    tokio::task::spawn_blocking(read).await
}

/// Runs tenant erasures (`DELETE /v1/admin/tenants/{id}`), looking for one every second: one
/// bounded step after another (at most 500 rows or about 2 ms each, on the blocking pool
/// through the shared batch), with a millisecond between steps so other tenants' writes go
/// first. An erasure a crash interrupted resumes here after the restart, where its last
/// committed step ended.
async fn erasure_loop(state: Arc<AppState>) {
    use bespin_core::tenancy::erasure::ErasureState;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(1));
    loop {
        tick.tick().await;
        loop {
            let db = state.bespin.clone();
            match tokio::task::spawn_blocking(move || db.erase_step()).await {
                Ok(Ok(Some(e))) => {
                    if e.state == ErasureState::Erased {
                        tracing::info!(tenant = %e.tenant_id, rows = e.rows_deleted, "tenant erased");
                    }
                    tokio::time::sleep(std::time::Duration::from_millis(1)).await;
                }
                Ok(Ok(None)) => break,
                Ok(Err(e)) => {
                    tracing::warn!("tenant erasure step failed: {e}");
                    break;
                }
                Err(e) => {
                    tracing::error!("tenant erasure step panicked: {e}");
                    break;
                }
            }
        }
    }
}

/// Once a minute: purges expired idempotency records and remembered usage event ids, writes the audit summaries of refusals
/// left out in minutes that ended, and signs a checkpoint of every audit chain whose head
/// moved (after the summaries, so the checkpoint covers them).
async fn purge_loop(state: Arc<AppState>) {
    let mut tick = tokio::time::interval(state.config.upkeep_interval);
    loop {
        tick.tick().await;
        let db = state.bespin.clone();
        match tokio::task::spawn_blocking(move || db.purge_expired_idempotency()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(purged = n, "expired idempotency records"),
            Ok(Err(e)) => tracing::warn!("idempotency purge failed: {e}"),
            _ => {}
        }
        // Remembered usage event ids past their retention, at most 10,000 a minute: one
        // bounded operation, so a day's expiries never hold the writer long.
        let db = state.bespin.clone();
        match tokio::task::spawn_blocking(move || db.purge_usage_dedup(10_000)).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(purged = n, "expired usage event ids"),
            Ok(Err(e)) => tracing::warn!("usage event id purge failed: {e}"),
            _ => {}
        }
        let db = state.bespin.clone();
        match tokio::task::spawn_blocking(move || db.flush_refusal_summaries()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(rows = n, "audit summaries of refusals"),
            Ok(Err(e)) => tracing::warn!("audit summaries of refusals failed: {e}"),
            _ => {}
        }
        let db = state.bespin.clone();
        match tokio::task::spawn_blocking(move || db.audit_checkpoint()).await {
            Ok(Ok(n)) if n > 0 => tracing::info!(signed = n, "audit checkpoints"),
            Ok(Err(e)) => tracing::warn!("audit checkpoints failed: {e}"),
            _ => {}
        }
    }
}

/// Binds `addr` and serves until Ctrl-C or SIGTERM. Writes `<db>.control` (the address and a
/// fresh control token, readable only by this user) so that `bespin backup` and `bespin check`
/// can snapshot the database while it is held open here; removes it on a clean stop.
pub async fn run(mut config: Config) -> Result<(), Box<dyn std::error::Error>> {
    // Opened off the runtime: a PostgreSQL client blocks on a runtime of its own.
    let (path, options) = (config.db_path.clone(), config.core_options());
    let bespin = tokio::task::spawn_blocking(move || {
        Bespin::open_with(
            &path,
            std::sync::Arc::new(bespin_core::time::SystemClock),
            options,
        )
    })
    .await??;
    let listener = TcpListener::bind(config.listen).await?;
    let addr: SocketAddr = listener.local_addr()?;
    let token = format!(
        "{}{}",
        bespin_core::ids::new_id(),
        bespin_core::ids::new_id()
    );
    // A file held open here gets a control file, so `bespin backup`/`check` can ask this
    // server for a snapshot; a PostgreSQL database is opened by them directly.
    let control =
        (!bespin_core::is_server_url(&config.db_path)).then(|| control_path(&config.db_path));
    if let Some(control) = &control {
        match write_control(control, addr, &token) {
            Ok(()) => config.control_token = Some(token),
            Err(e) => tracing::warn!("cannot write {}: {e}", control.display()),
        }
    }
    let db = bespin_core::shown_db(&config.db_path);
    tracing::info!(%addr, %db, "bespin listening");
    let state = AppState::new(bespin, config);
    serve(listener, state, shutdown_signal()).await?;
    if let Some(control) = &control {
        let _ = std::fs::remove_file(control);
    }
    tracing::info!("bespin stopped");
    Ok(())
}

/// Where a server running on `db` leaves its address and control token.
pub fn control_path(db: &std::path::Path) -> std::path::PathBuf {
    let mut p = db.as_os_str().to_owned();
    p.push(".control");
    std::path::PathBuf::from(p)
}

fn write_control(path: &std::path::Path, addr: SocketAddr, token: &str) -> std::io::Result<()> {
    use std::io::Write;
    let _ = std::fs::remove_file(path);
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        o.mode(0o600);
    }
    let mut f = o.open(path)?;
    f.write_all(format!("{addr}\n{token}\n").as_bytes())?;
    f.sync_all()
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Asks the kernel for no transparent huge pages in this process (Linux; elsewhere it does
/// nothing), as the `bespin` binary does first thing: its allocator (mimalloc) asks for huge
/// pages, and each of its fresh pages then cost a 2 MiB page zeroed at its first touch —
/// 16% of the samples of the usage ingest (`perf`, 2026-12-06), which allocates and frees a
/// request's events on different threads. Measured in alternating runs: the core's usage
/// ingest from four threads 1.7x, over HTTP 1.2x, peak memory two thirds; the load script's
/// scenarios within their noise (docs/performance.md, "Claim work ahead of the writer, and no
/// transparent huge pages"). A failure (an old kernel) leaves the default, which only costs
/// speed.
pub fn without_huge_pages() {
    #[cfg(target_os = "linux")]
    if let Err(e) = rustix::thread::disable_transparent_huge_pages(true) {
        tracing::debug!("transparent huge pages left on: {e}");
    }
}
