//! Operators' surface: `/metrics` in both formats, `/readyz` against a stuck writer.
#![allow(clippy::unwrap_used)]

use bespin_core::Op;
use bespin_http::testing::{TestServer, test_config};
use std::time::{Duration, Instant};

const OPENMETRICS: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[test]
fn metrics_are_prometheus_text_or_openmetrics_as_asked() {
    let s = TestServer::start(test_config());
    s.create_tenant("Acme", "ada@acme.io");
    let text = s.call("GET", "/metrics", &[], None);
    assert_eq!(
        text.header("content-type"),
        Some("text/plain; version=0.0.4; charset=utf-8")
    );
    let om = s.call(
        "GET",
        "/metrics",
        &[(
            "Accept",
            "application/openmetrics-text;version=1.0.0,text/plain;q=0.5",
        )],
        None,
    );
    assert_eq!(om.header("content-type"), Some(OPENMETRICS));
    assert!(om.body.ends_with("# EOF\n"), "{}", om.body);
    assert!(!text.body.contains("# EOF") && !text.body.contains("# UNIT"));
    for body in [&text.body, &om.body] {
        assert!(!body.contains("le=\"inf\""), "{body}");
        for line in [
            format!(
                "bespin_build_info{{version=\"{}\",layout=\"{}\"}} 1",
                env!("CARGO_PKG_VERSION"),
                bespin_core::layout::CURRENT
            ),
            "bespin_commit_batch_size_bucket{le=\"+Inf\"}".into(),
            "bespin_writer_queue_depth 0".into(),
            "bespin_writer_queue_wait_seconds_bucket{le=\"+Inf\"}".into(),
            "process_resident_memory_bytes ".into(),
            "process_open_fds ".into(),
            "process_cpu_seconds_total ".into(),
        ] {
            assert!(body.contains(&line), "{line} missing:\n{body}");
        }
    }
    // Prometheus text names a counter family after its `_total` sample; OpenMetrics does not.
    assert!(text.body.contains("# TYPE bespin_commits_total counter"));
    assert!(om.body.contains("# TYPE bespin_commits counter"));
    // Every histogram's last bucket is +Inf and equals its count.
    for body in [&text.body, &om.body] {
        for family in body.lines().filter_map(|l| l.strip_suffix(" histogram")) {
            let name = family.trim_start_matches("# TYPE ");
            let inf = body
                .lines()
                .filter(|l| l.starts_with(&format!("{name}_bucket{{le=\"+Inf\"")))
                .count();
            let counts = body
                .lines()
                .filter(|l| l.starts_with(&format!("{name}_count")))
                .count();
            assert_eq!(inf, counts, "{name}");
        }
    }
}

#[test]
fn readyz_proves_the_writer_takes_work_and_healthz_stays_liveness() {
    let s = TestServer::start(test_config());
    let r = s.call("GET", "/readyz", &[], None);
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.json()["status"], "ready");
    // Hold the writer thread, as a stuck writer would.
    let (release, held) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let _holding = s.bespin.submit(Op::from_fn(move |_, _| {
        started.send(()).unwrap();
        let _ = held.recv();
        Ok(())
    }));
    running.recv().unwrap();
    std::thread::sleep(bespin_http::readiness::REUSE);
    let t = Instant::now();
    let r = s.call("GET", "/readyz", &[], None);
    assert_eq!(r.status, 503, "{}", r.body);
    assert_eq!(r.json()["detail"]["status"], "not ready");
    assert!(t.elapsed() < bespin_http::readiness::TIMEOUT + Duration::from_secs(2));
    // Liveness answers from the read snapshot.
    assert_eq!(s.call("GET", "/healthz", &[], None).status, 200);
    release.send(()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let r = s.call("GET", "/readyz", &[], None);
        if r.status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "still not ready: {}", r.body);
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn every_answer_carries_a_request_id_and_a_valid_client_one_is_kept() {
    let s = TestServer::start(test_config());
    let made = s.call("GET", "/healthz", &[], None);
    let id = made.header("x-request-id").unwrap();
    assert_eq!(id.len(), 36, "a UUID: {id}");
    let kept = s.call("GET", "/nope", &[("X-Request-ID", "trace-42:a.b_c")], None);
    assert_eq!(
        (kept.status, kept.header("x-request-id")),
        (404, Some("trace-42:a.b_c"))
    );
    for bad in ["has space", "quote\"d", &"x".repeat(129)] {
        let r = s.call("GET", "/healthz", &[("X-Request-ID", bad)], None);
        let id = r.header("x-request-id").unwrap();
        assert!(id != bad && id.len() == 36, "{bad} -> {id}");
    }
}

#[test]
fn cors_exposes_the_client_headers_and_star_allows_any_origin() {
    let expose =
        "X-RateLimit-Limit, X-RateLimit-Remaining, X-RateLimit-Reset, Retry-After, X-Request-ID";
    let s = TestServer::start(test_config());
    let r = s.call("GET", "/", &[("Origin", "http://localhost:3000")], None);
    assert_eq!(r.header("access-control-expose-headers"), Some(expose));
    let r = s.call("GET", "/", &[("Origin", "https://evil.example")], None);
    assert_eq!(r.header("access-control-allow-origin"), None);
    assert_eq!(r.header("access-control-expose-headers"), None);

    let config =
        bespin_http::Config::from_lookup(|k| (k == "CORS_ORIGINS").then(|| "*".into())).unwrap();
    let mut c = test_config();
    c.cors_origins = config.cors_origins;
    let s = TestServer::start(c);
    let o = ("Origin", "https://app.example.com");
    let r = s.call("GET", "/", &[o], None);
    assert_eq!(
        (
            r.header("access-control-allow-origin"),
            r.header("access-control-allow-credentials"),
            r.header("access-control-expose-headers")
        ),
        (Some("https://app.example.com"), Some("true"), Some(expose))
    );
    let pre = s.call(
        "OPTIONS",
        "/v1/me",
        &[o, ("Access-Control-Request-Method", "PATCH")],
        None,
    );
    assert_eq!(pre.status, 200, "{}", pre.body);
    assert_eq!(
        pre.header("access-control-allow-origin"),
        Some("https://app.example.com")
    );
}

#[test]
fn the_console_needs_an_explicit_key_of_16_characters() {
    let with = |vars: &'static [(&'static str, &'static str)]| {
        bespin_http::Config::from_lookup(|k| {
            vars.iter()
                .find(|(n, _)| *n == k)
                .map(|(_, v)| v.to_string())
        })
    };
    let e = with(&[("DEV_CONSOLE_ENABLED", "1")]).unwrap_err();
    assert!(
        e.contains("DEV_CONSOLE_KEY of at least 16 characters (it has 0)"),
        "{e}"
    );
    let e = with(&[
        ("DEV_CONSOLE_ENABLED", "1"),
        ("DEV_CONSOLE_KEY", "fifteen-chars-x"),
    ]);
    assert!(e.is_err());
    let ok = with(&[
        ("DEV_CONSOLE_ENABLED", "1"),
        ("DEV_CONSOLE_KEY", "0123456789abcdef"),
    ])
    .unwrap();
    assert!(ok.dev_console);
    assert!(
        with(&[("DEV_CONSOLE_KEY", "short")]).is_ok(),
        "a key alone opens nothing"
    );
    // An embedder's config with a short key leaves the console off.
    let mut c = test_config();
    c.dev_console = true;
    c.dev_console_key = "short".into();
    let s = TestServer::start(c);
    let r = s.call("GET", "/console?key=short", &[], None);
    assert_eq!(r.status, 404);
}
