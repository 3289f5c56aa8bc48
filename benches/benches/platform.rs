//! The platform core: authentication and a metered write, in memory and durable on disk.

use bespin_core::metering::Meter;
use bespin_core::tenancy::NewTenant;
use bespin_core::{Bespin, Credentials};
use criterion::{Criterion, criterion_group, criterion_main};
use std::hint::black_box;

fn setup(db: &Bespin) -> Credentials {
    let t = db
        .create_tenant(NewTenant {
            name: "Bench".into(),
            region: "eu".into(),
            admin_email: "b@bench.io".into(),
        })
        .expect("tenant");
    let p = db
        .authenticate(&Credentials::new(
            Some(&t.tenant_id),
            Some(&t.admin.user_id),
            Some(&t.api_key),
        ))
        .expect("auth");
    db.admin_set_subscription(
        p.tenant_id(),
        bespin_core::billing::subscriptions::SubscriptionUpdate {
            plan_id: "scale".into(),
            status: "active".into(),
            period_start: None,
        },
    )
    .expect("plan");
    db.admin_update_plan(
        "scale",
        bespin_core::billing::catalog::PlanPatch {
            included_credits: Some(i64::MAX / 4),
            ..Default::default()
        },
    )
    .expect("credits");
    Credentials::new(Some(&t.tenant_id), Some(&t.admin.user_id), Some(&t.api_key))
}

fn platform(c: &mut Criterion) {
    let db = Bespin::open_in_memory().expect("db");
    let creds = setup(&db);
    c.bench_function("authenticate", |b| {
        b.iter(|| black_box(db.authenticate(&creds).expect("auth")))
    });
    let p = db.authenticate(&creds).expect("auth");
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
    let creds = setup(&disk);
    let p = disk.authenticate(&creds).expect("auth");
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
