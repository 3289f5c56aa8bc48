//! Operators' surface: `/metrics` in both formats, `/readyz` against a stuck writer.
#![allow(clippy::unwrap_used)]

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
    s.bespin
        .on_writer(move || {
            started.send(()).unwrap();
            let _ = held.recv();
            Box::new(|_| {})
        })
        .unwrap();
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
