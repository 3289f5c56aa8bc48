//! The `bespin` binary as a user runs it: starts on a fresh file, answers `/healthz`, stops
//! cleanly on SIGTERM, and keeps what it committed across a restart.
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
    let mut child = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .args(["serve", "--listen", &format!("127.0.0.1:{port}"), "--db"])
        .arg(db)
        .env("RATE_LIMIT_DISABLED", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
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

#[test]
fn serves_stops_on_sigterm_and_keeps_committed_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("bespin.redb");
    let port = free_port();
    let child = start(&db, port);
    let (status, body) = request(
        port,
        "POST",
        "/v1/tenants",
        &[("Content-Type", "application/json")],
        r#"{"name":"Acme","region":"eu-west-1","admin_email":"ada@acme.io"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let v: serde_json::Value = serde_json::from_str(&body).unwrap();
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
fn bad_arguments_exit_with_usage() {
    let out = Command::new(env!("CARGO_BIN_EXE_bespin"))
        .arg("--bogus")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("usage: bespin"));
}
