//! Shared fixtures for the unit tests: a database on a manual clock and tenants with an admin
//! and a member.

use crate::kpis::{NewKpi, NewPoint, PointsBulk, parse_point_ts};
use crate::tenancy::{NewTenant, NewUser};
use crate::time::ManualClock;
use crate::{Bespin, Credentials, Options, Principal, Role};
use std::sync::Arc;

/// A test database and its clock (2026-01-31T12:00:00Z).
pub(crate) fn db() -> (Bespin, ManualClock) {
    let clock = ManualClock::at("2026-01-31T12:00:00Z").expect("clock");
    let db = Bespin::open_for_test(Arc::new(clock.clone()), Options::default()).expect("open");
    (db, clock)
}

/// A new tenant: the credentials of its admin.
pub(crate) fn admin_credentials(db: &Bespin) -> Credentials {
    let t = db
        .create_tenant(NewTenant {
            name: "Acme".into(),
            region: "eu".into(),
            admin_email: "ada@acme.example".into(),
        })
        .expect("tenant");
    Credentials::new(Some(&t.tenant_id), Some(&t.admin.user_id), Some(&t.api_key))
}

/// A new tenant: (admin, member).
pub(crate) fn tenant(db: &Bespin) -> (Principal, Principal) {
    let creds = admin_credentials(db);
    let admin = db.authenticate(&creds).expect("admin");
    let m = db
        .create_user(
            &admin,
            NewUser {
                tenant_id: admin.tenant_id().to_owned(),
                email: "bob@acme.example".into(),
                role: Role::Member,
            },
        )
        .expect("member");
    let member = db
        .authenticate(&Credentials::new(
            Some(admin.tenant_id()),
            Some(&m.user_id),
            creds.api_key.as_deref(),
        ))
        .expect("member");
    (admin, member)
}

/// Creates a KPI named `name` with `points` (`ts` text, value); returns its id.
pub(crate) fn kpi(db: &Bespin, admin: &Principal, name: &str, points: &[(&str, f64)]) -> String {
    let k = db
        .create_kpi(
            admin,
            NewKpi {
                name: name.into(),
                unit: None,
                description: None,
            },
        )
        .expect("kpi");
    if !points.is_empty() {
        let points = points
            .iter()
            .map(|(ts, value)| NewPoint {
                ts: parse_point_ts(ts).expect("ts"),
                value: *value,
            })
            .collect();
        db.ingest_points(admin, &k.kpi_id, PointsBulk { points })
            .expect("ingest");
    }
    k.kpi_id
}

/// (audit rows, usage events) of the caller's tenant.
pub(crate) fn trail(db: &Bespin, who: &Principal) -> (usize, usize) {
    (
        db.audit_log(who, 10_000).expect("audit").len(),
        db.billing_ledger(who, None, 1000)
            .expect("ledger")
            .items
            .len(),
    )
}

/// Reports one `llm_tokens` event (5 units) per id for `who`'s tenant in one request, all
/// accepted (the event type is made on first use).
pub(crate) fn report_usage(db: &Bespin, who: &Principal, ids: &[&str]) {
    use crate::billing::catalog::NewMeteredEvent;
    use crate::metering::ingest::{Outcome, UsageEvents};
    use serde_json::{Value, json};
    let _ = db.admin_create_metered_event(NewMeteredEvent {
        event_key: "llm_tokens".into(),
        display_name: "LLM tokens".into(),
        description: None,
        unit_name: "token".into(),
        credits_per_unit: crate::money::Amount::parse("0.001").expect("amount"),
        list_price_per_credit: crate::money::Amount::parse("0.02").expect("amount"),
        billable: true,
        active: true,
        capability: None,
    });
    let batch: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"specversion": "1.0", "id": id, "source": "svc", "type": "llm_tokens",
                   "data": {"value": 5}})
        })
        .collect();
    let events = UsageEvents::batch(&json!(batch)).expect("batch");
    let report = db.record_usage_events(who, events).expect("report");
    for r in &report.results {
        assert!(matches!(r.outcome, Outcome::Accepted { .. }), "{report:?}");
    }
}
