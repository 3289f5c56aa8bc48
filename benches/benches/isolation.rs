//! A tenant's reads do not get slower as other tenants' data grows: `latest`, timeline page 1
//! and search for one tenant, measured with 1x and 100x as much data in other tenants.

use bespin_core::coreos::search::SearchQuery;
use bespin_core::coreos::tasks::NewTask;
use bespin_core::coreos::timeline::TimelineQuery;
use bespin_core::kpis::{NewKpi, PointsBulk};
use bespin_core::{Bespin, Principal};
use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

/// A tenant on a big plan with one KPI of 90 points and `tasks` tasks.
fn tenant(db: &Bespin, name: &str, tasks: usize) -> (Principal, String) {
    let (p, _) = bespin_benches::tenant(db, name);
    let k = db
        .create_kpi(&p, NewKpi::from_json(&json!({"name": "MRR"})).expect("kpi"))
        .expect("kpi");
    let pts: Vec<_> = (0..90)
        .map(|d| json!({"ts": format!("2026-01-01T00:{:02}:{:02}Z", d / 60, d % 60), "value": d}))
        .collect();
    db.ingest_points(
        &p,
        &k.kpi_id,
        PointsBulk::from_json(&json!({"points": pts})).expect("pts"),
    )
    .expect("ingest");
    db.transaction(|tx, ctx| {
        for i in 0..tasks {
            let title = if i % 10 == 0 {
                format!("Prepare pricing update {i}")
            } else {
                format!("Follow up lead {i}")
            };
            bespin_core::coreos::tasks::create(
                tx,
                ctx,
                &p,
                NewTask::from_json(&json!({"title": title})).expect("task"),
            )?;
        }
        Ok(())
    })
    .expect("tasks");
    (p, k.kpi_id)
}

fn isolation(c: &mut Criterion) {
    let mut g = c.benchmark_group("own_data_only");
    for others in [1usize, 100] {
        let db = Bespin::open_in_memory().expect("db");
        let (me, kpi) = tenant(&db, "me", 100);
        for i in 0..others {
            tenant(&db, &format!("other-{i}"), 100);
        }
        g.bench_with_input(
            BenchmarkId::new("latest", format!("{others}x_other_tenants")),
            &others,
            |b, _| b.iter(|| black_box(db.latest_point(&me, &kpi).expect("latest"))),
        );
        g.bench_with_input(
            BenchmarkId::new("timeline_page_1", format!("{others}x_other_tenants")),
            &others,
            |b, _| {
                let q = TimelineQuery::from_json(&json!({"limit": "20"})).expect("q");
                b.iter(|| black_box(db.timeline(&me, &q).expect("timeline")))
            },
        );
        g.bench_with_input(
            BenchmarkId::new("search", format!("{others}x_other_tenants")),
            &others,
            |b, _| {
                let q = SearchQuery::from_json(&json!({"q": "pricing"})).expect("q");
                b.iter(|| black_box(db.search(&me, &q).expect("search")))
            },
        );
    }
    g.finish();
}

criterion_group!(benches, isolation);
criterion_main!(benches);
