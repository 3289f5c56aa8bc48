//! Tenant erasure against another tenant's writes (issue 24), through the core API on a
//! durable database file.
//!
//! `erasure_bench [RECORDS] [SECONDS]` (default 100,000 tasks, 5 s): tenant A gets RECORDS
//! tasks (each task is a dozen rows: the record, its list and search entries, its timeline
//! event, usage, audit and event-log rows); then tenant B writes tasks one after another, for
//! SECONDS with no erasure running (the baseline), then while A is erased by the server's
//! loop (`erase_step` after `erase_step`, 1 ms apart, as `bespin-http` runs it), until the
//! erasure ends. Prints B's write latency (p50, p99, max) in both phases, the erasure's
//! duration, rows and steps.

use bespin_benches::percentile;
use bespin_core::coreos::tasks::{self, NewTask};
use bespin_core::tenancy::NewTenant;
use bespin_core::tenancy::erasure::{ConfirmErasure, ErasureState};
use bespin_core::{Bespin, Credentials, Principal};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

fn tenant(db: &Bespin, name: &str) -> Principal {
    let t = db
        .create_tenant(NewTenant {
            name: name.into(),
            region: "eu".into(),
            admin_email: format!("a@{name}.example"),
        })
        .expect("tenant");
    let plan = bespin_core::billing::subscriptions::SubscriptionUpdate::from_json(
        &json!({"plan_id": "scale"}),
    )
    .expect("plan");
    db.admin_set_subscription(&t.tenant_id, plan)
        .expect("scale plan");
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&t.admin.user_id),
        Some(&t.api_key),
    ))
    .expect("admin")
}

fn task(i: usize) -> NewTask {
    NewTask::from_json(&json!({"title": format!("task number {i} of the erased tenant")}))
        .expect("task")
}

/// B's writes until `stop`: each one's latency in milliseconds.
fn writes(db: &Bespin, b: &Principal, stop: &AtomicBool, at_least: Duration) -> Vec<f64> {
    let start = Instant::now();
    let mut out = Vec::new();
    let mut i = 0;
    while !stop.load(Ordering::Relaxed) || start.elapsed() < at_least {
        let t0 = Instant::now();
        db.create_task(b, task(i)).expect("B's write");
        out.push(t0.elapsed().as_secs_f64() * 1e3);
        i += 1;
    }
    out.sort_by(f64::total_cmp);
    out
}

fn show(label: &str, lat: &[f64]) {
    println!(
        "{label}: {} writes, p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        lat.len(),
        percentile(lat, 50),
        percentile(lat, 99),
        lat.last().copied().unwrap_or(0.0)
    );
}

fn main() {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let records: usize = args.next().and_then(|a| a.parse().ok()).unwrap_or(100_000);
    let secs: u64 = args.next().and_then(|a| a.parse().ok()).unwrap_or(5);
    let dir = std::env::temp_dir().join(format!("bespin-erasure-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let db = Bespin::open(dir.join("bench.redb")).expect("open");
    let a = tenant(&db, "erased");
    let b = tenant(&db, "busy");
    let t0 = Instant::now();
    for start in (0..records).step_by(1_000) {
        db.transaction(|tx, ctx| {
            for i in start..(start + 1_000).min(records) {
                tasks::create(tx, ctx, &a, task(i))?;
            }
            Ok(())
        })
        .expect("populate");
    }
    println!(
        "populated {records} tasks of A in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    let stop = AtomicBool::new(true);
    let base = writes(&db, &b, &stop, Duration::from_secs(secs));
    show("B without erasure", &base);
    let id = a.tenant_id().to_owned();
    let confirm = ConfirmErasure {
        confirm: id.clone(),
    };
    let db = Arc::new(db);
    let done = Arc::new(AtomicBool::new(false));
    let eraser = {
        let (db, done) = (Arc::clone(&db), Arc::clone(&done));
        std::thread::spawn(move || {
            let t0 = Instant::now();
            db.erase_tenant(&id, confirm).expect("erase");
            let (mut steps, mut rows) = (0u64, 0u64);
            while let Some(e) = db.erase_step().expect("step") {
                steps += 1;
                rows = e.rows_deleted;
                if e.state == ErasureState::Erased {
                    break;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            done.store(true, Ordering::Relaxed);
            (t0.elapsed(), steps, rows)
        })
    };
    let during = writes(&db, &b, &done, Duration::ZERO);
    let (took, steps, rows) = eraser.join().expect("eraser");
    show("B during the erasure", &during);
    println!(
        "erased {rows} rows of A in {steps} steps, {:.1} s ({:.0} rows/s)",
        took.as_secs_f64(),
        rows as f64 / took.as_secs_f64()
    );
    let report = db.check().expect("check");
    println!("check: {} violations", report.violations.len());
    let _ = std::fs::remove_dir_all(&dir);
}
