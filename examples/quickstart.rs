//! Bespin embedded in a Rust program: a tenant, a KPI with points, the day's brief, the daily
//! runner and a chat with the cofounder — no server, one database file.
//!
//! ```sh
//! cargo run -p bespin-core --example quickstart
//! ```

use bespin_core::briefs::MaterializeRequest;
use bespin_core::chat::ChatRequest;
use bespin_core::kpis::{NewKpi, PointsBulk};
use bespin_core::tenancy::NewTenant;
use bespin_core::{Bespin, Credentials};
use serde_json::json;

fn main() -> bespin_core::Result<()> {
    let dir = std::env::temp_dir().join(format!("bespin-quickstart-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| bespin_core::Error::Internal(e.to_string()))?;
    let db = Bespin::open(dir.join("bespin.redb"))?;

    let tenant = db.create_tenant(NewTenant {
        name: "Acme".into(),
        region: "eu-west-1".into(),
        admin_email: "ada@acme.io".into(),
    })?;
    println!(
        "tenant {} — API key {} (shown once)",
        tenant.tenant_id, tenant.api_key
    );
    let admin = db.authenticate(&Credentials::new(
        Some(&tenant.tenant_id),
        Some(&tenant.admin.user_id),
        Some(&tenant.api_key),
    ))?;

    let mrr = db.create_kpi(
        &admin,
        NewKpi::from_json(&json!({"name": "MRR", "unit": "GBP"}))?,
    )?;
    let points = json!({"points": [
        {"ts": "2026-01-24T00:00:00Z", "value": 1000.0},
        {"ts": "2026-01-31T00:00:00Z", "value": 1250.0},
    ]});
    let ingested = db.ingest_points(&admin, &mrr.kpi_id, PointsBulk::from_json(&points)?)?;
    println!("ingested {} points", ingested.inserted);

    let req = MaterializeRequest::from_json(&json!({"date": "2026-01-31"}))?;
    // Idempotent operations answer with the stored response; `into_value` reads it.
    let brief = db
        .materialize_brief(&admin, "quickstart-brief", req)?
        .into_value()?;
    println!("brief {}: {:?}", brief.content.date, brief.content.summary);

    let run = db
        .run_daily_brief(&admin, "quickstart-run", req)?
        .into_value()?;
    println!(
        "runner: {} notified, {} already, {} over quota",
        run.notifications_inserted,
        run.notifications_ignored,
        run.notifications_suppressed_due_to_quota
    );

    for message in ["kpi:MRR", "outbox"] {
        let reply = db.chat(
            &admin,
            ChatRequest::from_json(&json!({"message": message}))?,
        )?;
        println!("> {message}\n{}", reply.assistant_message.content);
    }
    let usage = db.billing_usage(&admin, None)?;
    println!(
        "credits used this month: {} of {}",
        usage.credits.used, usage.credits.included
    );
    Ok(())
}
