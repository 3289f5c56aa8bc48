//! The platform core: authentication and a metered write, in memory and durable on disk.

use bespin_core::Bespin;
use bespin_core::metering::Meter;
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn platform(c: &mut Criterion) {
    let db = Bespin::open_in_memory().expect("db");
    let (p, creds) = bespin_benches::tenant(&db, "bench");
    c.bench_function("authenticate", |b| {
        b.iter(|| black_box(db.authenticate(&creds).expect("auth")))
    });
    c.bench_function("record_usage/in_memory", |b| {
        b.iter(|| {
            black_box(
                db.record_usage(&p, Some("search"), Meter::one("search_query", "search"))
                    .expect("usage"),
            )
        })
    });
    c.bench_function("record_usage/100_in_one_transaction", |b| {
        b.iter(|| {
            db.transaction(|tx, ctx| {
                for _ in 0..100 {
                    Meter::one("search_query", "search")
                        .check_in(tx, ctx, p.tenant_id())?
                        .record(tx, ctx, &p, "r")?;
                }
                Ok(())
            })
            .expect("batch")
        })
    });
    let dir = tempfile::tempdir().expect("dir");
    let disk = Bespin::open(dir.path().join("bench.redb")).expect("db");
    let (p, _) = bespin_benches::tenant(&disk, "bench");
    c.bench_function("record_usage/durable_file", |b| {
        b.iter(|| {
            black_box(
                disk.record_usage(&p, Some("search"), Meter::one("search_query", "search"))
                    .expect("usage"),
            )
        })
    });
}

criterion_group!(benches, platform);
criterion_main!(benches, ops);

/// The CPU cost of whole operations, 100 per transaction (no commit in the measurement's
/// per-operation share): what the group committer runs under its lock.
fn operations(c: &mut Criterion) {
    use bespin_core::chat::ChatRequest;
    use bespin_core::coreos::tasks::NewTask;
    use bespin_core::tools::InvokeRequest;
    let db = Bespin::open_in_memory().expect("db");
    let (p, _) = bespin_benches::tenant(&db, "ops");
    let mut g = c.benchmark_group("op_x100_in_one_transaction");
    g.sample_size(20);
    g.bench_function("create_task", |b| {
        b.iter(|| {
            db.transaction(|tx, ctx| {
                for i in 0..100 {
                    let t = NewTask::from_json(&serde_json::json!({"title": format!("Load task {i}"), "priority": "medium"}))?;
                    bespin_core::coreos::tasks::create(tx, ctx, &p, t)?;
                }
                Ok(())
            })
            .expect("tasks")
        })
    });
    let mut n = 0u64;
    g.bench_function("invoke_echo", |b| {
        b.iter(|| {
            db.transaction(|tx, ctx| {
                for _ in 0..100 {
                    n += 1;
                    let r = InvokeRequest::from_json(
                        &serde_json::json!({"tool_name": "echo", "payload": {"n": n}}),
                    )?;
                    bespin_core::tools::invoke(tx, ctx, &p, &format!("k{n}"), r)?;
                }
                Ok(())
            })
            .expect("invoke")
        })
    });
    g.bench_function("chat_kpis", |b| {
        b.iter(|| {
            db.transaction(|tx, ctx| {
                for _ in 0..100 {
                    let r = ChatRequest::from_json(&serde_json::json!({"message": "kpis"}))?;
                    bespin_core::chat::chat(tx, ctx, &p, r)?;
                }
                Ok(())
            })
            .expect("chat")
        })
    });
    g.finish();
}

criterion_group!(ops, operations);
