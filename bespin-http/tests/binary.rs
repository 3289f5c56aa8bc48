//! The `bespin` binary as a user runs it: starts on a fresh file, answers `/healthz`, stops
//! cleanly on SIGTERM, and keeps what it committed across a restart; its command line (help,
//! version, environment fallbacks, `check --json`, `backup`, `layout`).
#![allow(clippy::unwrap_used, clippy::zombie_processes)]

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn request(
    port: u16,
    method: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> Option<(u16, String)> {
    let mut s = TcpStream::connect(("127.0.0.1", port)).ok()?;
    let mut req = format!(
        "{method} {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Length: {}\r\n",
        body.len()
    );
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    req.push_str(body);
    s.write_all(req.as_bytes()).ok()?;
    let mut out = String::new();
    s.read_to_string(&mut out).ok()?;
    let status = out.split(' ').nth(1)?.parse().ok()?;
    Some((
        status,
        out.split("\r\n\r\n").nth(1).unwrap_or("").to_owned(),
    ))
}

fn start(db: &std::path::Path, port: u16) -> Child {
    start_with(db, port, &[], Stdio::null())
}

/// Starts the server with extra environment variables, its stderr (the log) going to `log`.
fn start_with(db: &std::path::Path, port: u16, env: &[(&str, &str)], log: Stdio) -> Child {
    let mut child = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .env("RATE_LIMIT_DISABLED", "1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((200, _)) = request(port, "GET", "/healthz", &[], "") {
            return child;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
    panic!("server did not become healthy");
}

fn stop(mut child: Child) -> std::process::ExitStatus {
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().unwrap() {
            return status;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let _ = child.kill();
    panic!("server did not stop on SIGTERM");
}

/// Creates a tenant through the server on `port` (201) and returns the answer.
fn create_tenant(port: u16) -> serde_json::Value {
    let (status, body) = request(
        port,
        "POST",
        "/v1/tenants",
        &[("Content-Type", "application/json")],
        r#"{"name":"Acme","region":"eu-west-1","admin_email":"ada@acme.io"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    serde_json::from_str(&body).unwrap()
}

#[test]
fn serves_stops_on_sigterm_and_keeps_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bespin.redb");
    let port = free_port();
    let child = start(&db, port);
    let v = create_tenant(port);
    assert!(stop(child).success(), "clean exit on SIGTERM");
    assert!(db.exists());

    let port = free_port();
    let child = start(&db, port);
    let h = [
        ("X-Tenant-ID", v["tenant_id"].as_str().unwrap()),
        ("X-User-ID", v["admin"]["user_id"].as_str().unwrap()),
        ("X-API-Key", v["api_key"].as_str().unwrap()),
    ];
    let (status, body) = request(port, "GET", "/v1/me", &h, "").unwrap();
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("ada@acme.io"));
    assert!(stop(child).success());
}

/// Runs `bespin` with `args` and extra environment variables; (exit code, stdout, stderr).
fn bespin(args: &[&str], env: &[(&str, &std::path::Path)]) -> (i32, String, String) {
    let mut c = Command::new(env!("CARGO_BIN_EXE_bespin"));
    c.args(args).env_remove("BESPIN_DB");
    for (k, v) in env {
        c.env(k, v);
    }
    let out = c.output().unwrap();
    (
        out.status.code().unwrap_or(-1),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[cfg(unix)]
#[test]
fn the_database_and_its_backups_are_private_to_their_owner() {
    use std::os::unix::fs::PermissionsExt;
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bespin.redb");
    let port = free_port();
    let child = start(&db, port);
    assert_eq!(mode(&db), 0o600, "the database file");
    let backup = |out: &std::path::Path| {
        let status = Command::new(env!("CARGO_BIN_EXE_bespin"))
            .args(["backup", "--db"])
            .arg(&db)
            .arg("--out")
            .arg(out)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap();
        assert!(status.success());
        mode(out)
    };
    assert_eq!(
        backup(&dir.path().join("online.redb")),
        0o600,
        "fetched from the server"
    );
    assert!(stop(child).success());
    assert_eq!(
        backup(&dir.path().join("offline.redb")),
        0o600,
        "copied here"
    );
}

#[test]
fn help_version_and_usage_errors() {
    let (code, out, _) = bespin(&["--help"], &[]);
    assert_eq!(code, 0);
    for word in [
        "serve",
        "check",
        "backup",
        "layout",
        "BESPIN_LISTEN",
        "BESPIN_DB",
        "BESPIN_TRUST_PROXY",
        "BESPIN_LOG_FORMAT",
    ] {
        assert!(out.contains(word), "--help lacks {word}:\n{out}");
    }
    let (code, out, _) = bespin(&["--version"], &[]);
    assert_eq!(
        (code, out.trim()),
        (0, format!("bespin {}", env!("CARGO_PKG_VERSION")).as_str())
    );
    // Every command has its own help, naming the environment variable of every flag.
    for (cmd, words) in [
        (
            "serve",
            &[
                "BESPIN_LISTEN",
                "BESPIN_DB",
                "BESPIN_TRUST_PROXY",
                "BESPIN_LOG_FORMAT",
                "BESPIN_TRUSTED_PROXY_HOPS",
                "BESPIN_MAX_BODY_BYTES",
                "BESPIN_MAX_BULK_BODY_BYTES",
                "BESPIN_MAX_CONNECTIONS",
                "BESPIN_WRITER_QUEUE",
                "BESPIN_SEARCH_MAX_SCAN",
                "BESPIN_LARGE_TEXT_WRITES_PER_SEC",
                "BESPIN_AUTH_TARPIT_AFTER",
                "BESPIN_METRICS_TOKEN",
                "BESPIN_EVENT_RETENTION_SECS",
                "--event-retention-secs",
                "PLATFORM_ADMIN_KEY",
                "DEV_CONSOLE_KEY",
            ][..],
        ),
        ("check", &["--json", "BESPIN_CHECK_JSON", "BESPIN_DB"][..]),
        ("backup", &["--out", "BESPIN_BACKUP_OUT", "BESPIN_DB"][..]),
        ("layout", &["--json", "BESPIN_LAYOUT_JSON", "BESPIN_DB"][..]),
    ] {
        let (code, out, _) = bespin(&[cmd, "--help"], &[]);
        assert_eq!(code, 0, "{cmd} --help");
        for w in words {
            assert!(out.contains(w), "{cmd} --help lacks {w}:\n{out}");
        }
    }
    let (code, _, err) = bespin(&["--bogus"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("Usage: bespin"), "{err}");
    let (code, _, err) = bespin(&["backup"], &[]);
    assert_eq!(code, 2, "--out is required");
    assert!(err.contains("--out"), "{err}");
}

#[test]
fn check_backup_and_layout_honour_bespin_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("b.redb");
    {
        let b = bespin_core::Bespin::open(&db).unwrap();
        b.create_tenant(bespin_core::tenancy::NewTenant {
            name: "Acme".into(),
            region: "eu".into(),
            admin_email: "ada@acme.io".into(),
        })
        .unwrap();
    }
    let env = [("BESPIN_DB", db.as_path())];
    let (code, out, err) = bespin(&["check", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["ok"], &v["violations"], &v["rows"]["tenants"]),
        (
            &serde_json::json!(true),
            &serde_json::json!([]),
            &serde_json::json!(1)
        )
    );
    let (code, out, _) = bespin(&["check", &format!("--db={}", db.display())], &[]);
    assert_eq!(code, 0);
    assert!(out.contains("tenants"), "{out}");
    let (code, _, err) = bespin(&["check", "--db", "/nonexistent/x.redb"], &[]);
    assert_eq!(code, 2);
    assert!(err.contains("no such database"), "{err}");

    let bytes = std::fs::read(&db).unwrap();
    let (code, out, err) = bespin(&["layout", "--json"], &env);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["action"], &v["steps"]),
        (&serde_json::json!("current"), &serde_json::json!([]))
    );
    assert_eq!(v["file_layout"], v["build_layout"]);
    let (code, out, _) = bespin(&["layout"], &env);
    assert_eq!(code, 0);
    assert!(out.contains("up to date"), "{out}");
    assert_eq!(std::fs::read(&db).unwrap(), bytes, "layout writes nothing");

    let copy = dir.path().join("copy.redb");
    let (code, out, err) = bespin(&["backup", "--out"], &[]);
    assert_eq!(code, 2, "{out}{err}");
    let (code, out, err) = bespin(&["backup", "--out", copy.to_str().unwrap()], &env);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("0 violation(s)"), "{out}");
    assert!(copy.exists());
}

#[test]
fn layout_and_check_of_a_database_a_server_holds() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("held.redb");
    let port = free_port();
    let child = start(&db, port);
    let (code, out, err) = bespin(&["layout", "--db", db.to_str().unwrap()], &[]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("up to date"), "{out}");
    let (code, out, err) = bespin(&["check", "--json"], &[("BESPIN_DB", db.as_path())]);
    assert_eq!(code, 0, "{err}");
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(
        (&v["ok"], &v["snapshot"]),
        (&serde_json::json!(true), &serde_json::json!(true))
    );
    assert!(stop(child).success());
}

#[test]
fn json_log_lines_carry_request_and_tenant_ids_and_the_console_is_guarded() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("log.redb");
    // The console without an explicit key of 16 characters: no start at all.
    let out = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["serve", "--listen", "127.0.0.1:0", "--db"])
        .arg(&db)
        .env("DEV_CONSOLE_ENABLED", "1")
        .env_remove("DEV_CONSOLE_KEY")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("DEV_CONSOLE_KEY of at least 16 characters"),
        "{err}"
    );

    let log_path = dir.path().join("server.log");
    let log = std::fs::File::create(&log_path).unwrap();
    let port = free_port();
    let env = [
        ("BESPIN_LOG_FORMAT", "json"),
        ("DEV_CONSOLE_ENABLED", "1"),
        ("DEV_CONSOLE_KEY", "a-console-key-of-24-chars"),
    ];
    let child = start_with(&db, port, &env, Stdio::from(log));
    let v = create_tenant(port);
    let tenant = v["tenant_id"].as_str().unwrap();
    let h = [
        ("X-Tenant-ID", tenant),
        ("X-User-ID", v["admin"]["user_id"].as_str().unwrap()),
        ("X-API-Key", v["api_key"].as_str().unwrap()),
        ("X-Request-ID", "req-from-client-1"),
    ];
    assert_eq!(request(port, "GET", "/v1/me", &h, "").unwrap().0, 200);
    assert!(stop(child).success());
    let text = std::fs::read_to_string(&log_path).unwrap();
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let me = lines
        .iter()
        .find(|l| l["route"] == "/v1/me")
        .unwrap_or_else(|| panic!("no request line:\n{text}"));
    assert_eq!(me["message"], "request");
    assert_eq!(me["request_id"], "req-from-client-1");
    assert_eq!(me["tenant_id"], tenant);
    assert_eq!(
        (&me["status"], &me["method"], &me["level"]),
        (
            &serde_json::json!(200),
            &serde_json::json!("GET"),
            &serde_json::json!("INFO")
        )
    );
    let created = lines.iter().find(|l| l["route"] == "/v1/tenants").unwrap();
    assert_eq!(created["request_id"].as_str().unwrap().len(), 36);
    assert!(
        created.get("tenant_id").is_none(),
        "no tenant before authentication"
    );
    assert!(
        lines.iter().any(|l| l["level"] == "WARN"
            && l["message"]
                .as_str()
                .unwrap_or("")
                .contains("developer console is on")),
        "{text}"
    );
}

#[test]
fn audit_verify_exits_1_and_names_the_row_of_a_tampered_file() {
    use bespin_core::audit::{Entry, append};
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("chain.redb");
    let db = bespin_core::Bespin::open(&path).unwrap();
    db.transaction(|tx, ctx| {
        for i in 0..5 {
            let id = format!("r{i}");
            append(tx, ctx, "t1", Entry::new("u1", "bulk", &id))?;
        }
        Ok(())
    })
    .unwrap();
    drop(db);
    let p = path.to_str().unwrap();
    let (code, out, err) = bespin(&["audit", "verify", "--db", p], &[]);
    assert_eq!(code, 0, "{out}{err}");
    let db = bespin_core::Bespin::open(&path).unwrap();
    assert!(db.tamper_audit_row_for_test("t1", 3).unwrap());
    drop(db);
    let (code, out, err) = bespin(&["audit", "verify", "--db", p], &[]);
    assert_eq!(code, 1, "{out}{err}");
    assert!(out.contains("tenant t1 row 3"), "{out}");
    let (code, out, _) = bespin(&["audit", "verify", "--db", p, "--json"], &[]);
    assert_eq!(code, 1);
    let report: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(report["total_findings"], 1);
    assert_eq!(report["findings"][0]["n"], 3);
    assert_eq!(report["findings"][0]["fault"], "altered_row");
    // A file that is not there is exit 2, not a clean report.
    let missing = dir.path().join("none.redb");
    let (code, _, _) = bespin(&["audit", "verify", "--db", missing.to_str().unwrap()], &[]);
    assert_eq!(code, 2);
}
