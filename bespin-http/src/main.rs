//! `bespin`: the Bespin HTTP server and its operator commands.
//!
//! ```text
//! bespin [serve] [--listen ADDR] [--db PATH|URL] [--trust-proxy] [--trusted-proxy-hops N]
//!               [--log-format text|json] [--max-body-bytes N] [--max-bulk-body-bytes N]
//!               [--max-connections N] [--writer-queue N] [--search-max-scan N]
//!               [--large-text-writes-per-sec R] [--metrics-token TOKEN]
//!               [--event-retention-secs N]
//! bespin check  [--db PATH|URL] [--json]
//! bespin backup [--db PATH|URL] --out FILE
//! bespin layout [--db PATH] [--json]
//! bespin export-usage --to URL [--format openmeter|lago] [--state FILE] [--from URL]
//!               [--token TOKEN] [--batch N] [--once]
//! ```
//! Every flag falls back to an environment variable (shown in `--help`); the contract's other
//! variables (`PLATFORM_ADMIN_KEY`, `RATE_LIMIT_*`, `CORS_ORIGINS`, `PLAYGROUND_UI_ENABLED`,
//! `DEV_CONSOLE_*`, `BESPIN_*` limits) are read from the environment and listed at the end of
//! `bespin serve --help`. `check` verifies the database's invariants (exit 1 on any violation,
//! 2 when it cannot run); `backup` writes a consistent snapshot to a new file and checks the
//! copy; `layout` tells which key layout the file has and what opening it with this build would
//! do, without writing. The three work on a database a running server holds open: they then ask
//! that server (found through `PATH.control`) for a snapshot. On a PostgreSQL URL, `check`
//! and `backup` open the database beside the running servers (a backup is a redb file of one
//! snapshot; `layout` is for files only). Logs go to stderr, filtered by
//! `RUST_LOG` (default `info`), as text or as one JSON object per line.

use bespin_core::Bespin;
use bespin_http::Config;
use clap::{Args, Parser, Subcommand, ValueEnum};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// mimalloc instead of the system allocator: the writer allocates and frees many small records
/// and page-sized buffers, where glibc's malloc spent a sixth of its time (see Cargo.toml).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// The variables `serve` reads that have no flag (printed after `bespin serve --help`).
const ENVIRONMENT: &str = "Environment (read at start-up unless noted):
  PLATFORM_ADMIN_KEY                 key for X-Platform-Admin-Key; read per request; unset: /v1/admin answers 404
  RATE_LIMIT_DISABLED=1              no tenant-creation rate limit
  RATE_LIMIT_TENANT_CREATE           tenant creations per window per client [default: 10]
  RATE_LIMIT_WINDOW_SECONDS          window length [default: 60]
  CORS_ORIGINS                       comma-separated allowed origins, or * for any [default: the four localhost origins]
  PLAYGROUND_UI_ENABLED=1            serve /ui and /app
  DEV_CONSOLE_ENABLED=1              serve /console (needs DEV_CONSOLE_KEY of at least 16 characters)
  DEV_CONSOLE_KEY                    the console's key
  BESPIN_HEADER_READ_TIMEOUT_SECS    time to send the request head [default: 10]
  BESPIN_BODY_READ_TIMEOUT_SECS      time to send the body [default: 30]
  BESPIN_IDEMPOTENCY_RETENTION_SECS  how long Idempotency-Key records are kept [default: 86400]
  BESPIN_USAGE_DEDUP_RETENTION_SECS  how long a reported usage event's (source, id) is remembered [default: 2764800]
  BESPIN_UPKEEP_INTERVAL_SECS        how often expired records and events are purged and audit checkpoints signed [default: 60]
  BESPIN_EVENT_POLL_SECS             on PostgreSQL, how often other servers' events are polled for while LISTEN is down [default: 1]
  BESPIN_READ_METERING               durable or deferred [default: durable]
  RUST_LOG                           log filter [default: info]";

/// Bespin: the multi-tenant AI co-founder backend (server and operator commands).
#[derive(Parser)]
#[command(
    name = "bespin",
    version,
    args_conflicts_with_subcommands = true,
    after_help = "Without a command, bespin runs `serve`; `bespin serve --help` also lists the environment variables it reads."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
    #[command(flatten)]
    serve: ServeArgs,
}

#[derive(Subcommand)]
enum Command {
    /// Run the HTTP server (the default command).
    #[command(after_help = ENVIRONMENT)]
    Serve(ServeArgs),
    /// Verify the database's invariants; exit 1 on any violation, 2 when it cannot run.
    Check(CheckArgs),
    /// Write a consistent snapshot of the database to a new file and check the copy.
    Backup(BackupArgs),
    /// Tell the file's key layout and what opening it with this build would do (writes nothing).
    Layout(LayoutArgs),
    /// Push every tenant's usage, as CloudEvents, to an OpenMeter-compatible ingest URL or to
    /// Lago's batch events API: at least once, the cursor kept in --state after each 2xx,
    /// failures retried with backoff, stopped cleanly by SIGTERM or Ctrl-C.
    ExportUsage(ExportUsageArgs),
    /// Copy a database (a `bespin backup` file, or any database) into a new, empty one — a
    /// PostgreSQL URL or a new file — in one transaction, then check the copy.
    Restore(RestoreArgs),
    /// The audit log's hash chains.
    #[command(subcommand)]
    Audit(AuditCommand),
}

#[derive(Subcommand)]
enum AuditCommand {
    /// Recompute every tenant's audit chain and report what does not verify (altered rows,
    /// broken links, gaps, heads): exit 0 when every chain verifies, 1 on a finding, 2 when it
    /// cannot run.
    Verify(VerifyArgs),
}

#[derive(Args)]
struct VerifyArgs {
    #[command(flatten)]
    db: DbArg,
    /// Print the report as one JSON object: chains, rows, findings, total_findings.
    #[arg(long)]
    json: bool,
}

/// The receiver's format.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum UsageFormat {
    /// A CloudEvents batch (application/cloudevents-batch+json) to an OpenMeter ingest URL.
    Openmeter,
    /// Lago's POST /api/v1/events/batch (key → code, tenant → external_subscription_id).
    Lago,
}

#[derive(Args)]
struct ExportUsageArgs {
    /// The receiver's URL: OpenMeter's ingest endpoint (…/api/v1/events), or Lago's
    /// …/api/v1/events/batch.
    #[arg(long)]
    to: String,
    /// The receiver's format.
    #[arg(long, value_enum, default_value_t = UsageFormat::Openmeter)]
    format: UsageFormat,
    /// The file keeping the cursor (created; replaced atomically after each acknowledged page).
    #[arg(long, default_value = "bespin-export-usage.json")]
    state: PathBuf,
    /// The Bespin server to read from; its platform-admin key is PLATFORM_ADMIN_KEY.
    #[arg(
        long,
        env = "BESPIN_EXPORT_FROM",
        default_value = "http://127.0.0.1:8000"
    )]
    from: String,
    /// Sent to the receiver as `Authorization: Bearer …` (Lago's API key, OpenMeter Cloud's token).
    #[arg(long, env = "BESPIN_EXPORT_TOKEN", hide_env_values = true)]
    token: Option<String>,
    /// Events per page and POST (1–1,000; Lago takes at most 100).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=1000))]
    batch: u16,
    /// Seconds to wait for new usage once caught up.
    #[arg(long, default_value_t = 5)]
    poll_secs: u64,
    /// Exit once caught up instead of waiting for new usage.
    #[arg(long)]
    once: bool,
    /// A PEM file of certificate authorities to trust beside the public roots, for an https
    /// receiver (or server) behind an internal CA.
    #[arg(long, env = "BESPIN_EXPORT_CA_FILE")]
    ca_file: Option<PathBuf>,
}

fn export_usage_cmd(a: ExportUsageArgs) -> ExitCode {
    let _log_guard = init_logging(LogFormat::Text);
    let Some(admin_key) = std::env::var("PLATFORM_ADMIN_KEY")
        .ok()
        .filter(|k| !k.is_empty())
    else {
        eprintln!(
            "bespin export-usage: PLATFORM_ADMIN_KEY must be set (the export is a platform-admin route)"
        );
        return ExitCode::from(2);
    };
    if a.format == UsageFormat::Lago && a.batch > 100 {
        eprintln!("bespin export-usage: Lago takes at most 100 events per batch (--batch)");
        return ExitCode::from(2);
    }
    let pusher = bespin_http::export_usage::Pusher {
        from: a.from,
        admin_key,
        to: a.to,
        format: match a.format {
            UsageFormat::Openmeter => bespin_http::export_usage::Format::OpenMeter,
            UsageFormat::Lago => bespin_http::export_usage::Format::Lago,
        },
        token: a.token.filter(|t| !t.is_empty()),
        state: a.state,
        batch: usize::from(a.batch),
        poll: std::time::Duration::from_secs(a.poll_secs),
        once: a.once,
        ca_file: a.ca_file.filter(|p| !p.as_os_str().is_empty()),
    };
    let Some(runtime) = runtime(tokio::runtime::Builder::new_current_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(pusher.run(stop_signal())) {
        Ok(n) => {
            tracing::info!(events = n, "export-usage stopped");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("bespin export-usage: {e}");
            ExitCode::FAILURE
        }
    }
}

/// The runtime `builder` makes (with I/O and timers), or `None` after saying why it cannot.
fn runtime(mut builder: tokio::runtime::Builder) -> Option<tokio::runtime::Runtime> {
    match builder.enable_all().build() {
        Ok(r) => Some(r),
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            None
        }
    }
}

/// Resolves at SIGTERM or Ctrl-C.
async fn stop_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        if let Ok(mut term) = signal(SignalKind::terminate()) {
            tokio::select! {
                _ = term.recv() => {}
                _ = tokio::signal::ctrl_c() => {}
            }
            return;
        }
    }
    let _ = tokio::signal::ctrl_c().await;
}

/// How log lines are written.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum LogFormat {
    /// One human-readable line per event.
    Text,
    /// One JSON object per line (`timestamp`, `level`, `message` and the event's fields).
    Json,
}

#[derive(Args)]
struct ServeArgs {
    /// Address to listen on.
    #[arg(long, env = "BESPIN_LISTEN", default_value_t = Config::default().listen)]
    listen: SocketAddr,
    /// Database: a redb file (created on first start), or a PostgreSQL URL
    /// (postgres://user@host/db?schema=bespin) that several servers may share.
    #[arg(long, env = "BESPIN_DB", default_value_os_t = Config::default().db_path)]
    db: PathBuf,
    /// Take the client address from X-Forwarded-For (only behind a proxy that sets it).
    #[arg(long, env = "BESPIN_TRUST_PROXY")]
    trust_proxy: bool,
    /// How many proxies of ours append to X-Forwarded-For: the client is the entry this many
    /// from the right (with --trust-proxy).
    #[arg(long, env = "BESPIN_TRUSTED_PROXY_HOPS", value_parser = positive::<usize>, default_value_t = Config::default().proxy_hops)]
    trusted_proxy_hops: usize,
    /// Log line format.
    #[arg(long, env = "BESPIN_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
    /// Largest request body in bytes, except bulk ingest; larger bodies get 413.
    #[arg(long, env = "BESPIN_MAX_BODY_BYTES", value_parser = positive::<usize>, default_value_t = Config::default().max_body_bytes)]
    max_body_bytes: usize,
    /// Largest body of POST /v1/kpis/{kpi_id}/points:bulk in bytes.
    #[arg(long, env = "BESPIN_MAX_BULK_BODY_BYTES", value_parser = positive::<usize>, default_value_t = Config::default().max_bulk_body_bytes)]
    max_bulk_body_bytes: usize,
    /// The most connections served at once; further clients wait in the listen backlog.
    #[arg(long, env = "BESPIN_MAX_CONNECTIONS", value_parser = positive::<usize>, default_value_t = Config::default().max_connections)]
    max_connections: usize,
    /// The most writes waiting for the writer; past it a write gets 503 with Retry-After.
    #[arg(long, env = "BESPIN_WRITER_QUEUE", value_parser = positive::<usize>, default_value_t = Config::default().writer_queue)]
    writer_queue: usize,
    /// The most index entries one search reads; past it the search gets 422.
    #[arg(long, env = "BESPIN_SEARCH_MAX_SCAN", value_parser = positive::<usize>, default_value_t = Config::default().search_max_scan)]
    search_max_scan: usize,
    /// Large writes of searchable text (bodies over 4 KiB) per tenant per second, in bursts of
    /// 4; faster ones wait, up to 10 s, then get 429.
    #[arg(long, env = "BESPIN_LARGE_TEXT_WRITES_PER_SEC", value_parser = rate, default_value_t = Config::default().large_text_writes_per_sec)]
    large_text_writes_per_sec: f64,
    /// Failed tenant authentications per minute, per client address and per claimed tenant,
    /// answered at once; further failures are answered up to 2 s later, with Retry-After
    /// (`off`: never held).
    #[arg(long, env = "BESPIN_AUTH_TARPIT_AFTER", value_parser = tarpit_after, default_value = "10")]
    auth_tarpit_after: TarpitAfter,
    /// Bearer token GET /metrics then needs (unset: /metrics is open).
    #[arg(long, env = "BESPIN_METRICS_TOKEN", hide_env_values = true)]
    metrics_token: Option<String>,
    /// Hosts and networks webhooks may reach over plain http and at private addresses
    /// (comma-separated names, addresses, CIDR blocks; default none).
    #[arg(long, env = "BESPIN_WEBHOOK_ALLOW", default_value = "")]
    webhook_allow: String,
    /// Seconds a claimed webhook delivery is leased before it may be claimed again.
    #[arg(long, env = "BESPIN_WEBHOOK_LEASE_SECS", default_value_t = 300, value_parser = clap::value_parser!(u64).range(1..))]
    webhook_lease_secs: u64,
    /// A PEM file of certificate authorities webhook receivers may chain to, beside Mozilla's
    /// roots (for receivers behind an internal CA).
    #[arg(long, env = "BESPIN_WEBHOOK_CA_FILE")]
    webhook_ca_file: Option<std::path::PathBuf>,
    /// Seconds events are kept (then purged; an older cursor gets 410, the stream a reset).
    #[arg(long, env = "BESPIN_EVENT_RETENTION_SECS", default_value_t = Config::default().event_retention.as_secs(), value_parser = clap::value_parser!(u64).range(1..))]
    event_retention_secs: u64,
}

/// The tarpit's threshold (`None`: off).
#[derive(Debug, Clone, Copy)]
struct TarpitAfter(Option<u32>);

/// Parses the tarpit's threshold: a whole number, or `off`.
fn tarpit_after(s: &str) -> Result<TarpitAfter, String> {
    bespin_http::config::parse_tarpit_after(s).map(TarpitAfter)
}

/// Parses a rate: a finite number above zero.
fn rate(s: &str) -> Result<f64, String> {
    positive::<f64>(s).and_then(|r| {
        r.is_finite()
            .then_some(r)
            .ok_or_else(|| format!("{s} is not a finite rate"))
    })
}

/// Parses a number above zero (limits and rates; zero would refuse everything).
fn positive<T: std::str::FromStr + PartialOrd + Default>(s: &str) -> Result<T, String> {
    match s.trim().parse::<T>() {
        Ok(n) if n > T::default() => Ok(n),
        _ => Err(format!("{s} is not a number above zero")),
    }
}

#[derive(Args)]
struct DbArg {
    /// Database: a redb file, or a PostgreSQL URL.
    #[arg(long, env = "BESPIN_DB", default_value_os_t = Config::default().db_path)]
    db: PathBuf,
}

#[derive(Args)]
struct CheckArgs {
    #[command(flatten)]
    db: DbArg,
    /// Print the result as one JSON object: ok, snapshot, checks, rows, violations.
    #[arg(long, env = "BESPIN_CHECK_JSON")]
    json: bool,
}

#[derive(Args)]
struct BackupArgs {
    #[command(flatten)]
    db: DbArg,
    /// The new file to write (must not exist).
    #[arg(long, env = "BESPIN_BACKUP_OUT")]
    out: PathBuf,
}

#[derive(Args)]
struct RestoreArgs {
    /// The database to copy from: a redb file (e.g. a backup) or a PostgreSQL URL.
    #[arg(long)]
    from: PathBuf,
    /// The database to copy into: a PostgreSQL URL whose tables are empty, or a new file.
    #[command(flatten)]
    db: DbArg,
}

#[derive(Args)]
struct LayoutArgs {
    #[command(flatten)]
    db: DbArg,
    /// Print the result as one JSON object: file_layout, build_layout, action, steps, missing_tables.
    #[arg(long, env = "BESPIN_LAYOUT_JSON")]
    json: bool,
}

/// Opens `db` here, or — when a running server holds it — fetches a snapshot from that server
/// into `snapshot` and opens that. Returns the database and whether it is a fetched snapshot.
fn open_or_fetch(db: &Path, snapshot: &Path) -> Result<(Bespin, bool), String> {
    if bespin_core::is_server_url(db) {
        // A database server is shared: open it here, beside any running server.
        return Bespin::open(db)
            .map(|b| (b, false))
            .map_err(|e| format!("{}: {e}", bespin_core::shown_db(db)));
    }
    if !db.exists() {
        return Err(format!("{}: no such database", db.display()));
    }
    match Bespin::open(db) {
        Ok(b) => Ok((b, false)),
        Err(e) if e.to_string().to_ascii_lowercase().contains("already open") => {
            fetch_snapshot(db, snapshot)?;
            Bespin::open(snapshot)
                .map(|b| (b, true))
                .map_err(|e| format!("cannot open the fetched snapshot: {e}"))
        }
        Err(e) => Err(format!("{}: {e}", db.display())),
    }
}

/// Asks the server running on `db` (address and token in `db.control`) for a snapshot and
/// writes it to the new file `out` (aside, flushed, then renamed).
fn fetch_snapshot(db: &Path, out: &Path) -> Result<(), String> {
    use std::io::{Read, Write};
    let control = bespin_http::control_path(db);
    let text = std::fs::read_to_string(&control).map_err(|e| {
        format!(
            "{} is held open by another process, and {} cannot be read ({e}): is a bespin server running on it?",
            db.display(),
            control.display()
        )
    })?;
    let mut lines = text.lines();
    let (addr, token) = (lines.next().unwrap_or(""), lines.next().unwrap_or(""));
    let mut s = std::net::TcpStream::connect(addr)
        .map_err(|e| format!("cannot reach the server at {addr}: {e}"))?;
    let _ = s.set_read_timeout(Some(std::time::Duration::from_secs(3600)));
    let head = format!(
        "GET /v1/admin/backup HTTP/1.1\r\nHost: {addr}\r\nX-Bespin-Control-Token: {token}\r\nConnection: close\r\n\r\n"
    );
    s.write_all(head.as_bytes()).map_err(|e| e.to_string())?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).map_err(|e| e.to_string())?;
    let split = buf
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or("malformed response from the server")?;
    let head = String::from_utf8_lossy(&buf[..split]).to_string();
    let body = &buf[split + 4..];
    if !head.starts_with("HTTP/1.1 200") {
        return Err(format!(
            "the server refused the snapshot: {} {}",
            head.lines().next().unwrap_or(""),
            String::from_utf8_lossy(body)
        ));
    }
    let len = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse::<usize>().ok())?
        })
        .ok_or("the server's answer has no Content-Length")?;
    let body = body.get(..len).ok_or("the snapshot was cut short")?;
    if out.exists() {
        return Err(format!("{} already exists", out.display()));
    }
    let mut partial = out.as_os_str().to_owned();
    partial.push(".partial");
    let partial = PathBuf::from(partial);
    let _ = std::fs::remove_file(&partial);
    let mut f = bespin_core::files::create_private_file(&partial).map_err(|e| e.to_string())?;
    f.write_all(body)
        .and_then(|_| f.sync_all())
        .map_err(|e| e.to_string())?;
    std::fs::rename(&partial, out).map_err(|e| e.to_string())
}

fn check_cmd(args: CheckArgs) -> ExitCode {
    let db = args.db.db;
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let result = open_or_fetch(&db, &dir.join("snapshot.redb"))
        .and_then(|(b, fetched)| b.check().map(|r| (r, fetched)).map_err(|e| e.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    let (report, fetched) = match result {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let (text, code) = check_output(&report, fetched, args.json);
    print!("{text}");
    ExitCode::from(code)
}

/// What `check` prints for `report` (as text, or as one JSON line with `json`) and its exit
/// code: 0 when the database is consistent, 1 on any violation.
fn check_output(
    report: &bespin_core::check::CheckReport,
    fetched: bool,
    json: bool,
) -> (String, u8) {
    let code = if report.is_ok() { 0 } else { 1 };
    if json {
        let violations: Vec<serde_json::Value> = report
            .violations
            .iter()
            .map(|v| serde_json::json!({"table": v.table, "key": v.key, "description": v.description}))
            .collect();
        let out = serde_json::json!({
            "ok": report.is_ok(),
            "snapshot": fetched,
            "checks": report.checks,
            "rows": report.rows,
            "violations": violations,
        });
        return (format!("{out}\n"), code);
    }
    let mut text = String::new();
    if fetched {
        text.push_str("(the database is held by a running server: checking a snapshot of it)\n");
    }
    text.push_str(&report.to_string());
    (text, code)
}

fn backup_cmd(args: BackupArgs) -> ExitCode {
    let (db, out) = (args.db.db, args.out);
    if out.exists() {
        return fail(&format!("{} already exists", out.display()));
    }
    let started = std::time::Instant::now();
    let done = match open_or_fetch(&db, &out) {
        Ok((_, true)) => Ok("fetched from the running server"),
        Ok((b, false)) => b.backup(&out).map(|_| "copied").map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    match done {
        Ok(how) => report_copy("backup", &db, &out, how, started),
        Err(e) => fail(&e),
    }
}

/// `bespin restore`: the source opened as a database (a file of an older layout is upgraded,
/// as opening it anywhere would), copied into the target by [`Bespin::copy_into`].
fn restore_cmd(args: RestoreArgs) -> ExitCode {
    let (from, into) = (args.from, args.db.db);
    let started = std::time::Instant::now();
    let copied = Bespin::open(&from)
        .and_then(|b| b.copy_into(&into))
        .map_err(|e| e.to_string());
    match copied {
        Ok(_) => report_copy("restore", &from, &into, "copied", started),
        Err(e) => fail(&e),
    }
}

/// Checks a copy just written (`to`) and prints one line for it: exit 0 when it holds every
/// invariant, 1 with the violations, 2 when it cannot be read back.
fn report_copy(
    what: &str,
    from: &std::path::Path,
    to: &std::path::Path,
    how: &str,
    started: std::time::Instant,
) -> ExitCode {
    let report = match Bespin::open(to).and_then(|b| b.check()) {
        Ok(r) => r,
        Err(e) => return fail(&format!("the copy cannot be read back: {e}")),
    };
    let rows: u64 = report.rows.values().sum();
    println!(
        "{what} {} -> {} ({how}; {rows} rows, {:.1} s); check of the copy: {} violation(s)",
        bespin_core::shown_db(from),
        bespin_core::shown_db(to),
        started.elapsed().as_secs_f64(),
        report.violations.len()
    );
    if report.is_ok() {
        ExitCode::SUCCESS
    } else {
        print!("{report}");
        ExitCode::from(1)
    }
}

/// `bespin audit verify`: recomputes the chains of the file (or of a snapshot, when a server
/// holds it).
fn audit_verify_cmd(args: VerifyArgs) -> ExitCode {
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let result = open_or_fetch(&args.db.db, &dir.join("snapshot.redb"))
        .and_then(|(b, _)| b.audit_verify().map_err(|e| e.to_string()));
    let _ = std::fs::remove_dir_all(&dir);
    let report = match result {
        Ok(r) => r,
        Err(e) => return fail(&e),
    };
    if args.json {
        println!("{}", serde_json::to_string(&report).unwrap_or_default());
    } else {
        print!("{report}");
    }
    ExitCode::from(if report.is_clean() { 0 } else { 1 })
}

/// `bespin layout`: reads the file without writing (or a snapshot, when a server holds it).
fn layout_cmd(args: LayoutArgs) -> ExitCode {
    let db = args.db.db;
    if bespin_core::is_server_url(&db) {
        // The layout report reads a file without writing it; a PostgreSQL schema is upgraded
        // by the first process that opens it, under the schema's lock (README "PostgreSQL").
        return fail(
            "bespin layout reads a redb file; on PostgreSQL `bespin check` opens the database (upgrading it when needed) and reports",
        );
    }
    if !db.exists() {
        return fail(&format!("{}: no such database", db.display()));
    }
    let plan = match bespin_core::layout::plan(&db) {
        Err(e) if held_open(&e) => {
            let dir = match tempfile_dir() {
                Ok(d) => d,
                Err(e) => return fail(&e),
            };
            let snapshot = dir.join("snapshot.redb");
            let plan = fetch_snapshot(&db, &snapshot)
                .and_then(|()| bespin_core::layout::plan(&snapshot).map_err(|e| e.to_string()));
            let _ = std::fs::remove_dir_all(&dir);
            plan
        }
        other => other.map_err(|e| format!("{}: {e}", db.display())),
    };
    match plan {
        Ok(p) if args.json => {
            println!("{}", serde_json::to_string(&p).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(p) => {
            print!("{}: {p}", db.display());
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e),
    }
}

/// Whether opening failed because another process (a running server) holds the file.
fn held_open(e: &bespin_core::Error) -> bool {
    e.to_string().to_ascii_lowercase().contains("already open")
}

fn tempfile_dir() -> Result<PathBuf, String> {
    bespin_core::files::private_temp_dir("bespin-check").map_err(|e| e.to_string())
}

fn fail(e: &str) -> ExitCode {
    eprintln!("bespin: {e}");
    ExitCode::from(2)
}

/// Log lines go to stderr from a writer thread, so a request never waits on a write syscall;
/// `lossy(false)` makes a full buffer slow requests down instead of dropping lines. The guard
/// flushes what is buffered when it is dropped.
fn init_logging(format: LogFormat) -> tracing_appender::non_blocking::WorkerGuard {
    let (writer, guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_target(false);
    match format {
        LogFormat::Json => builder.json().flatten_event(true).init(),
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .compact()
            .init(),
    }
    guard
}

fn main() -> ExitCode {
    // Before any thread starts: every thread of the process inherits it.
    bespin_http::without_huge_pages();
    let cli = Cli::parse();
    let serve = match cli.command {
        Some(Command::Check(a)) => return check_cmd(a),
        Some(Command::Backup(a)) => return backup_cmd(a),
        Some(Command::Layout(a)) => return layout_cmd(a),
        Some(Command::Restore(a)) => return restore_cmd(a),
        Some(Command::Audit(AuditCommand::Verify(a))) => return audit_verify_cmd(a),
        Some(Command::ExportUsage(a)) => return export_usage_cmd(a),
        Some(Command::Serve(a)) => a,
        None => cli.serve,
    };
    let _log_guard = init_logging(serve.log_format);
    let mut config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("bespin: {e}");
            return ExitCode::from(2);
        }
    };
    config.listen = serve.listen;
    config.db_path = serve.db;
    config.trust_proxy = serve.trust_proxy;
    config.proxy_hops = serve.trusted_proxy_hops;
    config.max_body_bytes = serve.max_body_bytes;
    config.max_bulk_body_bytes = serve.max_bulk_body_bytes;
    config.max_connections = serve.max_connections;
    config.writer_queue = serve.writer_queue;
    config.search_max_scan = serve.search_max_scan;
    config.large_text_writes_per_sec = serve.large_text_writes_per_sec;
    config.auth_tarpit_after = serve.auth_tarpit_after.0;
    config.metrics_token = serve.metrics_token.filter(|t| !t.is_empty());
    config.webhook_allow = bespin_http::webhooks::parse_allow(&serve.webhook_allow);
    config.webhook_lease = std::time::Duration::from_secs(serve.webhook_lease_secs);
    config.event_retention = std::time::Duration::from_secs(serve.event_retention_secs);
    if let Some(path) = serve.webhook_ca_file.filter(|p| !p.as_os_str().is_empty()) {
        // A file that cannot be read is a start-up error, not webhooks silently undelivered.
        if let Err(e) = bespin_http::webhooks::extra_roots(&path) {
            eprintln!("bespin: {e}");
            std::process::exit(2);
        }
        config.webhook_ca_file = Some(path);
    }
    let Some(runtime) = runtime(tokio::runtime::Builder::new_multi_thread()) else {
        return ExitCode::FAILURE;
    };
    match runtime.block_on(bespin_http::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bespin: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::check_output;
    use bespin_core::check::{CheckReport, Violation};

    #[test]
    fn check_json_names_every_violation_and_exits_1() {
        let mut report = CheckReport {
            violations: vec![],
            rows: [("tenants", 2)].into_iter().collect(),
            checks: 7,
        };
        let (text, code) = check_output(&report, false, true);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(code, 0);
        assert_eq!(
            v,
            serde_json::json!({"ok": true, "snapshot": false, "checks": 7, "rows": {"tenants": 2}, "violations": []})
        );
        report.violations.push(Violation {
            table: "audit",
            key: "t1/9".into(),
            description: "audit row of a missing user".into(),
        });
        let (text, code) = check_output(&report, true, true);
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            (code, &v["ok"], &v["snapshot"]),
            (1, &serde_json::json!(false), &serde_json::json!(true))
        );
        assert_eq!(
            v["violations"],
            serde_json::json!([{"table": "audit", "key": "t1/9", "description": "audit row of a missing user"}])
        );
        let (text, code) = check_output(&report, false, false);
        assert_eq!(code, 1);
        assert!(text.contains("audit row of a missing user"), "{text}");
    }
}
