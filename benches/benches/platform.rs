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
criterion_main!(benches);
