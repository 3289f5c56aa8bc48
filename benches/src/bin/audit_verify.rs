//! Time to recompute audit chains: `audit_verify PATH [ROWS] [TENANTS]` appends ROWS audit rows
//! (default 1,000,000) spread over TENANTS tenants (default 10) to a new database at PATH, in
//! transactions of 10,000 rows, then times `Bespin::audit_verify` over all of them (three runs,
//! each printed) — what `bespin audit verify` and the chain part of `bespin check` cost.

use bespin_core::Bespin;
use bespin_core::audit::{self, Entry};
use std::time::Instant;

fn main() -> bespin_core::Result<()> {
    // As the `bespin` binary runs (its allocator without huge pages).
    bespin_http::without_huge_pages();
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "audit.redb".into());
    let rows: usize = args
        .next()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000_000);
    let tenants: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(10);
    let db = Bespin::open(&path)?;
    let ids: Vec<String> = (0..tenants).map(|t| format!("tenant-{t:04}")).collect();
    let started = Instant::now();
    let per_tx = 10_000;
    for chunk in 0..rows.div_ceil(per_tx) {
        db.transaction(|tx, ctx| {
            for i in chunk * per_tx..((chunk + 1) * per_tx).min(rows) {
                let request = format!("req-{i:08}");
                let e = Entry::new("user-0001", "tools.invoke", &request).tool(Some("kpi_summary"));
                audit::append(tx, ctx, &ids[i % tenants], e)?;
            }
            Ok(())
        })?;
    }
    println!(
        "appended {rows} rows in {:.2} s",
        started.elapsed().as_secs_f64()
    );
    for _ in 0..3 {
        let t = Instant::now();
        let report = db.audit_verify()?;
        println!(
            "verified {} rows of {} chains in {:.3} s ({} findings)",
            report.rows,
            report.chains,
            t.elapsed().as_secs_f64(),
            report.total_findings
        );
    }
    Ok(())
}
