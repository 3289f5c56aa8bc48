//! Fills a database for the memory and start-up measurements: `populate PATH TENANTS RECORDS`
//! creates TENANTS tenants, each with one KPI of RECORDS points (default 1,000 × 10,000), and
//! prints one `tenant_id user_id api_key kpi_id` line per tenant (for load scripts).

use bespin_core::Bespin;
use bespin_core::kpis::{NewKpi, PointsBulk};

fn main() -> bespin_core::Result<()> {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "populated.redb".into());
    let tenants: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(1000);
    let records: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10_000);
    let db = Bespin::open(&path)?;
    let base = 1_700_000_000_000_000i64;
    for t in 0..tenants {
        let (p, creds) = bespin_benches::tenant(&db, &format!("tenant-{t}"));
        let kpi = db.create_kpi(&p, NewKpi::from_json(&serde_json::json!({"name": "MRR"}))?)?;
        let points = PointsBulk {
            points: (0..records)
                .map(|i| bespin_core::kpis::NewPoint {
                    ts: bespin_core::time::Timestamp(base + i as i64 * 60_000_000),
                    value: i as f64,
                })
                .collect(),
        };
        db.ingest_points(&p, &kpi.kpi_id, points)?;
        println!(
            "{} {} {} {}",
            p.tenant_id(),
            p.user_id(),
            creds.api_key.as_deref().unwrap_or_default(),
            kpi.kpi_id
        );
        if t % 100 == 99 {
            eprintln!("{} tenants", t + 1);
        }
    }
    Ok(())
}
