//! `bespin`: the Bespin HTTP server.
//!
//! ```text
//! bespin [serve] [--listen ADDR] [--db PATH] [--trust-proxy]
//! bespin check --db PATH
//! bespin backup --db PATH --out FILE
//! ```
//! `check` verifies the database's invariants and prints the report (exit 1 on any violation,
//! 2 when it cannot run). `backup` writes a consistent snapshot to the new file `FILE` and
//! checks the copy. Both work on a database a running server holds open: they then ask that
//! server (found through `PATH.control`) for the snapshot.
//! Flags override `BESPIN_LISTEN`, `BESPIN_DB` and `BESPIN_TRUST_PROXY`; the contract's other
//! variables (`PLATFORM_ADMIN_KEY`, `RATE_LIMIT_*`, `CORS_ORIGINS`, `PLAYGROUND_UI_ENABLED`,
//! `DEV_CONSOLE_*`) are read from the environment. Logs go to stderr, filtered by `RUST_LOG`
//! (default `info`).

use bespin_core::Bespin;
use bespin_http::Config;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

const USAGE: &str = "usage: bespin [serve] [--listen ADDR] [--db PATH] [--trust-proxy]
       bespin check --db PATH
       bespin backup --db PATH --out FILE";

fn parse(mut config: Config, args: &[String]) -> Result<Config, String> {
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "serve" => {}
            "--listen" => {
                let v = it.next().ok_or("--listen needs an address")?;
                config.listen = v
                    .parse()
                    .map_err(|_| format!("--listen: not an address: {v}"))?;
            }
            "--db" => config.db_path = it.next().ok_or("--db needs a path")?.into(),
            "--trust-proxy" => config.trust_proxy = true,
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok(config)
}

/// `check` / `backup`: (db, out).
fn parse_tool(args: &[String]) -> Result<(PathBuf, Option<PathBuf>), String> {
    let (mut db, mut out) = (None, None);
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--db" => db = Some(PathBuf::from(it.next().ok_or("--db needs a path")?)),
            "--out" => out = Some(PathBuf::from(it.next().ok_or("--out needs a path")?)),
            "-h" | "--help" => return Err(USAGE.into()),
            other => return Err(format!("unknown argument {other}\n{USAGE}")),
        }
    }
    Ok((db.ok_or(format!("--db is required\n{USAGE}"))?, out))
}

/// Opens `db` here, or — when a running server holds it — fetches a snapshot from that server
/// into `snapshot` and opens that. Returns the database and whether it is a fetched snapshot.
fn open_or_fetch(db: &Path, snapshot: &Path) -> Result<(Bespin, bool), String> {
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

fn check_cmd(args: &[String]) -> ExitCode {
    let (db, _) = match parse_tool(args) {
        Ok(x) => x,
        Err(e) => return fail(&e),
    };
    let dir = match tempfile_dir() {
        Ok(d) => d,
        Err(e) => return fail(&e),
    };
    let result = open_or_fetch(&db, &dir.join("snapshot.redb")).and_then(|(b, fetched)| {
        if fetched {
            println!("(the database is held by a running server: checking a snapshot of it)");
        }
        b.check().map_err(|e| e.to_string())
    });
    let _ = std::fs::remove_dir_all(&dir);
    match result {
        Ok(report) => {
            print!("{report}");
            if report.is_ok() {
                ExitCode::SUCCESS
            } else {
                ExitCode::from(1)
            }
        }
        Err(e) => fail(&e),
    }
}

fn backup_cmd(args: &[String]) -> ExitCode {
    let (db, out) = match parse_tool(args) {
        Ok((db, Some(out))) => (db, out),
        Ok(_) => return fail(&format!("--out is required\n{USAGE}")),
        Err(e) => return fail(&e),
    };
    if out.exists() {
        return fail(&format!("{} already exists", out.display()));
    }
    let started = std::time::Instant::now();
    let done = match open_or_fetch(&db, &out) {
        Ok((_, true)) => Ok("fetched from the running server"),
        Ok((b, false)) => b.backup(&out).map(|_| "copied").map_err(|e| e.to_string()),
        Err(e) => Err(e),
    };
    if let Err(e) = done.as_ref() {
        return fail(e);
    }
    let report = match Bespin::open(&out).and_then(|b| b.check()) {
        Ok(r) => r,
        Err(e) => return fail(&format!("the copy cannot be read back: {e}")),
    };
    let rows: u64 = report.rows.values().sum();
    println!(
        "backup {} -> {} ({}; {rows} rows, {:.1} s); check of the copy: {} violation(s)",
        db.display(),
        out.display(),
        done.unwrap_or_default(),
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

fn tempfile_dir() -> Result<PathBuf, String> {
    bespin_core::files::private_temp_dir("bespin-check").map_err(|e| e.to_string())
}

fn fail(e: &str) -> ExitCode {
    eprintln!("bespin: {e}");
    ExitCode::from(2)
}

fn main() -> ExitCode {
    // Log lines go to stderr from a writer thread, so a request never waits on a write
    // syscall; `lossy(false)` makes a full buffer slow requests down instead of dropping lines.
    // The guard flushes what is buffered when `main` returns.
    let (log_writer, _log_guard) = tracing_appender::non_blocking::NonBlockingBuilder::default()
        .lossy(false)
        .finish(std::io::stderr());
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(log_writer)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false)
        .compact()
        .init();
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.first().map(String::as_str) {
        Some("check") => return check_cmd(&args[1..]),
        Some("backup") => return backup_cmd(&args[1..]),
        _ => {}
    }
    let config = match Config::from_env().and_then(|c| parse(c, &args)) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(bespin_http::run(config)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bespin: {e}");
            ExitCode::FAILURE
        }
    }
}
