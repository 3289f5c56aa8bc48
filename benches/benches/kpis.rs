//! KPI store: bulk ingest throughput, `kpi_summary` and the chart series over a long series, and
//! brief materialization for a tenant with 1,000 KPIs × 90 points.

use bespin_core::briefs::MaterializeRequest;
use bespin_core::kpis::{NewKpi, PointsBulk, SeriesQuery};
use bespin_core::tools::InvokeRequest;
use bespin_core::{Bespin, Principal};
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;
use std::hint::black_box;

fn admin(db: &Bespin) -> Principal {
    bespin_benches::tenant(db, "bench").0
}

fn points(start_minute: i64, n: usize) -> PointsBulk {
    let base = 1_700_000_000i64;
    let pts: Vec<_> = (0..n)
        .map(|i| json!({"ts": chrono_like(base + (start_minute + i as i64) * 60), "value": i as f64}))
        .collect();
    PointsBulk::from_json(&json!({ "points": pts })).expect("points")
}

/// RFC 3339 for a Unix time in seconds (UTC), without pulling chrono into the benches.
fn chrono_like(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = if m <= 2 { y + 1 } else { y };
    format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem % 3600 / 60,
        rem % 60
    )
}

fn ingest(c: &mut Criterion) {
    // A file, as in production (the in-memory backend re-allocates its whole buffer as it grows).
    let dir = tempfile::tempdir().expect("dir");
    let db = Bespin::open(dir.path().join("ingest.redb")).expect("db");
    let p = admin(&db);
    let mut g = c.benchmark_group("kpi_ingest");
    g.throughput(Throughput::Elements(10_000));
    g.sample_size(10);
    let mut day = 0i64;
    g.bench_function(BenchmarkId::new("core_10k_points", "durable_file"), |b| {
        b.iter_batched(
            || {
                let k = db
                    .create_kpi(&p, NewKpi::from_json(&json!({"name": "k"})).expect("kpi"))
                    .expect("kpi");
                day += 10_000;
                (k.kpi_id, points(day, 10_000))
            },
            |(id, pts)| black_box(db.ingest_points(&p, &id, pts).expect("ingest")),
            criterion::BatchSize::LargeInput,
        )
    });
    g.finish();
}

fn summary(c: &mut Criterion) {
    let db = Bespin::open_in_memory().expect("db");
    let p = admin(&db);
    let k = db
        .create_kpi(
            &p,
            NewKpi::from_json(&json!({"name": "long"})).expect("kpi"),
        )
        .expect("kpi");
    for chunk in 0..10 {
        db.ingest_points(&p, &k.kpi_id, points(chunk * 10_000, 10_000))
            .expect("ingest");
    }
    let mut n = 0u64;
    c.bench_function("kpi_summary/100k_points", |b| {
        b.iter(|| {
            n += 1;
            let req = InvokeRequest::from_json(&json!({"tool_name": "kpi_summary", "payload": {"kpi_id": k.kpi_id, "window_days": 7}}))
                .expect("req");
            black_box(db.invoke_tool(&p, &format!("k{n}"), req).expect("invoke"))
        })
    });
    // The chart series over the same 100,000 minute points: all of them down to 1,000 and to
    // 120 (a sparkline), the last 7 days (10,081 points) down to 1,000, and 1,000 that fit.
    let mut g = c.benchmark_group("kpi_series/100k_points");
    let q = |max_points, window_days| SeriesQuery {
        max_points,
        window_days,
        ..SeriesQuery::default()
    };
    for (name, query) in [
        ("all_to_1000", q(1000, None)),
        ("all_to_120", q(120, None)),
        ("7_days_to_1000", q(1000, Some(7))),
        (
            "last_1000_whole",
            SeriesQuery {
                from: Some(bespin_core::time::Timestamp(
                    (1_700_000_000 + 99_000 * 60) * 1_000_000,
                )),
                ..q(1000, None)
            },
        ),
    ] {
        g.bench_function(name, |b| {
            b.iter(|| black_box(db.kpi_series(&p, &k.kpi_id, query).expect("series")))
        });
    }
    g.finish();
}

fn brief(c: &mut Criterion) {
    let db = Bespin::open_in_memory().expect("db");
    let p = admin(&db);
    for i in 0..1000 {
        let k = db
            .create_kpi(
                &p,
                NewKpi::from_json(&json!({"name": format!("kpi-{i:04}")})).expect("kpi"),
            )
            .expect("kpi");
        let pts: Vec<_> = (0..90)
            .map(
                |d| json!({"ts": chrono_like(1_767_225_600 + d * 86_400), "value": (i * d) as f64}),
            )
            .collect();
        db.ingest_points(
            &p,
            &k.kpi_id,
            PointsBulk::from_json(&json!({"points": pts})).expect("pts"),
        )
        .expect("ingest");
    }
    let mut g = c.benchmark_group("brief");
    g.sample_size(10);
    g.bench_function("preview/1000_kpis_x_90_points", |b| {
        b.iter(|| {
            let req = MaterializeRequest::from_json(&json!({"date": "2026-03-31"})).expect("req");
            black_box(
                db.preview_brief(&p, req.date.expect("date"), 7, 3)
                    .expect("brief"),
            )
        })
    });
    g.finish();
}

criterion_group!(benches, ingest, summary, brief);
criterion_main!(benches);
