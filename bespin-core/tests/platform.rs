//! The platform core through the public API: tenancy, authentication order, roles,
//! entitlements, credits and caps at their boundaries, daily limits, idempotency, seeding and
//! tenant isolation.

use bespin_core::billing::catalog::{MeteredEventPatch, NewPlan, PlanPatch};
use bespin_core::billing::subscriptions::SubscriptionUpdate;
use bespin_core::idempotency::{self, Idempotency};
use bespin_core::limits::{Activity, DailyLimits};
use bespin_core::metering::Meter;
use bespin_core::money::Amount;
use bespin_core::tenancy::{NewTenant, NewUser, TenantCreated};
use bespin_core::time::{Clock, ManualClock, Period};
use bespin_core::{Bespin, Credentials, Error, ErrorKind, Options, Principal, Role};
use serde_json::json;
use std::sync::Arc;

fn db_at(clock: &ManualClock) -> Bespin {
    Bespin::open_for_test(Arc::new(clock.clone()), Options::default()).expect("open")
}

fn clock() -> ManualClock {
    ManualClock::at("2026-11-21T10:00:00Z").expect("clock")
}

fn tenant(db: &Bespin, name: &str) -> TenantCreated {
    db.create_tenant(NewTenant {
        name: name.into(),
        region: "eu-west-1".into(),
        admin_email: format!("admin@{}.example", name.to_lowercase()),
    })
    .expect("tenant")
}

fn admin(db: &Bespin, t: &TenantCreated) -> Principal {
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&t.admin.user_id),
        Some(&t.api_key),
    ))
    .expect("auth")
}

fn member(db: &Bespin, t: &TenantCreated) -> Principal {
    let a = admin(db, t);
    let u = db
        .create_user(
            &a,
            NewUser {
                tenant_id: t.tenant_id.clone(),
                email: "m@x.example".into(),
                role: Role::Member,
            },
        )
        .expect("user");
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&u.user_id),
        Some(&t.api_key),
    ))
    .expect("auth")
}

/// Moves the tenant to a fresh plan with `credits` and every capability.
fn small_plan(db: &Bespin, t: &TenantCreated, id: &str, credits: i64) {
    db.admin_create_plan(NewPlan {
        plan_id: id.into(),
        name: id.into(),
        included_credits: credits,
        overage_price_per_credit: Amount::ZERO,
        requests_per_minute: None,
    })
    .expect("plan");
    let caps = bespin_core::billing::catalog::CAPABILITIES
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    db.admin_set_plan_capabilities(id, caps).expect("caps");
    db.admin_set_subscription(
        &t.tenant_id,
        SubscriptionUpdate {
            plan_id: id.into(),
            status: "active".into(),
            period_start: None,
        },
    )
    .expect("sub");
}

#[test]
fn tenant_creation_sets_up_admin_limits_and_starter() {
    let c = clock();
    let db = db_at(&c);
    let t = tenant(&db, "Acme");
    assert!(t.api_key.starts_with("bsk_") && t.api_key.len() == 47);
    assert_eq!(t.created_at, "2026-11-21T10:00:00.000000Z");
    let a = admin(&db, &t);
    assert_eq!(db.me(&a).role, Role::Admin);
    assert_eq!(
        db.limits(&a).expect("limits").limits,
        DailyLimits::default()
    );
    let plan = db.billing_plan(&a).expect("plan");
    assert_eq!(plan.plan_id, "starter");
    assert_eq!(plan.status, "active");
    assert_eq!(plan.period_start, "2026-11-01");
    assert_eq!(plan.period_end, "2026-12-01");
    assert_eq!(plan.capabilities.len(), 13);
    assert_eq!(plan.plan.included_credits, 500);
}

#[test]
fn authentication_checks_run_in_contract_order() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let other = tenant(&db, "Other");
    let auth = |tid: Option<&str>, uid: Option<&str>, key: Option<&str>| {
        db.authenticate(&Credentials::new(tid, uid, key))
            .err()
            .map(|e| e.to_string())
    };
    assert_eq!(
        auth(None, None, None).as_deref(),
        Some("Missing required header: X-Tenant-ID")
    );
    assert_eq!(
        auth(Some("  "), Some("u"), Some("k")).as_deref(),
        Some("Missing required header: X-Tenant-ID")
    );
    assert_eq!(
        auth(Some("t"), None, Some("k")).as_deref(),
        Some("Missing required header: X-User-ID")
    );
    assert_eq!(
        auth(Some("t"), Some("u"), None).as_deref(),
        Some("Missing required header: X-API-Key")
    );
    assert_eq!(
        auth(Some("t"), Some("u"), Some("k")).as_deref(),
        Some("Invalid tenant ID or API key")
    );
    let (tid, key) = (t.tenant_id.as_str(), t.api_key.as_str());
    assert_eq!(
        auth(Some(tid), Some("u"), Some(&other.api_key)).as_deref(),
        Some("Invalid tenant ID or API key")
    );
    assert_eq!(
        auth(Some(tid), Some("nobody"), Some(key)).as_deref(),
        Some("User not found")
    );
    assert_eq!(
        auth(Some(tid), Some(&other.admin.user_id), Some(key)).as_deref(),
        Some("User does not belong to this tenant")
    );
    assert!(auth(Some(tid), Some(&t.admin.user_id), Some(key)).is_none());
    // The key is compared exactly.
    let upper = key.to_uppercase();
    assert_eq!(
        auth(Some(tid), Some(&t.admin.user_id), Some(&upper)).as_deref(),
        Some("Invalid tenant ID or API key")
    );
}

#[test]
fn only_admins_create_users_in_their_own_tenant() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let other = tenant(&db, "Other");
    let m = member(&db, &t);
    let req = |tenant_id: &str| NewUser {
        tenant_id: tenant_id.into(),
        email: "x@y.example".into(),
        role: Role::Member,
    };
    let e = db.create_user(&m, req(&t.tenant_id)).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Role 'member' is not authorized to create users"
    );
    let e = db
        .create_user(&admin(&db, &t), req(&other.tenant_id))
        .unwrap_err();
    assert_eq!(e.to_string(), "Cannot create users for a different tenant");
    // Duplicate e-mails are allowed.
    db.create_user(&admin(&db, &t), req(&t.tenant_id))
        .expect("dup 1");
    db.create_user(&admin(&db, &t), req(&t.tenant_id))
        .expect("dup 2");
}

#[test]
fn user_bodies_are_validated_field_by_field() {
    let e = NewUser::from_json(&json!({"tenant_id": "short", "email": "nope", "role": "owner"}))
        .unwrap_err();
    let Error::Validation(items) = e else {
        panic!("validation")
    };
    let kinds: Vec<&str> = items.iter().map(|i| i.kind).collect();
    assert_eq!(
        kinds,
        ["string_too_short", "value_error", "string_pattern_mismatch"]
    );
    assert_eq!(items[0].msg, "String should have at least 36 characters");
    assert_eq!(
        items[1].msg,
        "value is not a valid email address: An email address must have an @-sign."
    );
    assert_eq!(items[2].ctx, Some(json!({"pattern": "^(admin|member)$"})));
}

#[test]
fn entitlement_refusals_come_in_order() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    let meter = Meter::one("search_query", "search");
    small_plan(&db, &t, "bare", 100);
    db.admin_set_plan_capabilities("bare", vec![])
        .expect("no caps");
    let e = db.record_usage(&a, Some("search"), meter).unwrap_err();
    assert_eq!(e.kind(), ErrorKind::CapabilityDenied);
    assert_eq!(
        e.detail(),
        json!({"error":"capability_denied","message":"Plan does not include capability: search","capability_key":"search","plan_id":"bare"})
    );
    db.admin_set_subscription(
        &t.tenant_id,
        SubscriptionUpdate {
            plan_id: "bare".into(),
            status: "suspended".into(),
            period_start: None,
        },
    )
    .expect("suspend");
    let e = db.record_usage(&a, Some("search"), meter).unwrap_err();
    assert_eq!(
        e.detail(),
        json!({"error":"subscription_suspended","message":"Tenant subscription is suspended","status":"suspended"})
    );
    // Nothing was metered by the refusals.
    assert!(
        db.billing_ledger(&a, None, 100)
            .expect("ledger")
            .items
            .is_empty()
    );
}

#[test]
fn credits_allow_reaching_the_allowance_exactly_and_never_overage() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    small_plan(&db, &t, "tiny", 1);
    // Ten 0.1-credit events reach 1.0 exactly: no float drift refuses the tenth.
    for _ in 0..10 {
        db.record_usage(&a, None, Meter::one("action_updated", "action_center"))
            .expect("within allowance");
    }
    let e = db
        .record_usage(&a, None, Meter::one("action_updated", "action_center"))
        .unwrap_err();
    assert_eq!(
        e.detail(),
        json!({"error":"quota_exceeded","period_start":"2026-11-01","event_key":"action_updated","limit_credits":1,
               "used_credits":1.0,"requested_credits":0.1,"cap_raw_units":null,"used_raw_units":null,"requested_raw_units":1})
    );
    let usage = db.billing_usage(&a, None).expect("usage");
    assert_eq!(usage.credits.used, 1.0);
    assert_eq!(usage.credits.remaining, 0.0);
    assert_eq!(usage.credits.estimated_list_cost, 0.02);
    assert_eq!(usage.breakdown.len(), 1);
    assert_eq!(usage.breakdown[0].raw_units, 10.0);
}

#[test]
fn caps_refuse_at_the_boundary_after_credits() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    small_plan(&db, &t, "capped", 1000);
    db.admin_set_plan_caps(
        "capped",
        vec![("task_created".into(), "monthly".into(), Amount::from_int(2))],
    )
    .expect("caps");
    db.record_usage(&a, None, Meter::one("task_created", "tasks"))
        .expect("1");
    db.record_usage(&a, None, Meter::one("task_created", "tasks"))
        .expect("2");
    let e = db
        .record_usage(&a, None, Meter::one("task_created", "tasks"))
        .unwrap_err();
    let d = e.detail();
    assert_eq!(d["cap_raw_units"], json!(2.0));
    assert_eq!(d["used_raw_units"], json!(2.0));
    assert_eq!(d["used_credits"], json!(0.2));
    // A cap of 0 blocks the event; a non-monthly cap is not enforced.
    db.admin_set_plan_caps(
        "capped",
        vec![
            ("search_query".into(), "monthly".into(), Amount::ZERO),
            ("task_created".into(), "weekly".into(), Amount::ZERO),
        ],
    )
    .expect("caps");
    assert!(
        db.record_usage(&a, None, Meter::one("search_query", "search"))
            .is_err()
    );
    db.record_usage(&a, None, Meter::one("task_created", "tasks"))
        .expect("weekly cap not enforced");
}

#[test]
fn weights_in_force_at_emission_are_kept() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    db.record_usage(&a, None, Meter::one("search_query", "search"))
        .expect("first");
    db.admin_update_metered_event(
        "search_query",
        MeteredEventPatch {
            credits_per_unit: Amount::parse("1.5"),
            ..Default::default()
        },
    )
    .expect("reweigh");
    db.record_usage(&a, None, Meter::one("search_query", "search"))
        .expect("second");
    let ledger = db.billing_ledger(&a, None, 10).expect("ledger");
    let credits: Vec<f64> = ledger.items.iter().map(|i| i.credits).collect();
    assert_eq!(credits, [1.5, 0.05], "newest first, each at its own weight");
    assert_eq!(
        db.billing_usage(&a, None).expect("usage").credits.used,
        1.55
    );
    // Deactivated types refuse metering.
    db.admin_update_metered_event(
        "search_query",
        MeteredEventPatch {
            active: Some(false),
            ..Default::default()
        },
    )
    .expect("deactivate");
    let e = db
        .record_usage(&a, None, Meter::one("search_query", "search"))
        .unwrap_err();
    assert_eq!(
        e.detail(),
        json!({"error":"unknown_event_type","event_key":"search_query"})
    );
    assert!(
        db.billing_events()
            .expect("events")
            .iter()
            .all(|e| e.event_key != "search_query")
    );
    assert_eq!(db.admin_metered_events().expect("all").len(), 24);
}

#[test]
fn daily_limits_refuse_after_credits_and_reset_at_utc_midnight() {
    let c = clock();
    let db = db_at(&c);
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    let l = DailyLimits {
        assistant_query_daily_limit: 2,
        ..Default::default()
    };
    db.set_limits(&a, l).expect("limits");
    let chat = Meter::one("assistant_query", "chat").with_daily(Activity::AssistantQuery);
    db.record_usage(&a, None, chat).expect("1");
    db.record_usage(&a, None, chat).expect("2");
    let e = db.record_usage(&a, None, chat).unwrap_err();
    assert_eq!(
        e.detail(),
        json!({"error":"quota_exceeded","activity_type":"assistant_query","limit":2,"current":2,"requested":1})
    );
    let usage = db.daily_usage(&a, None).expect("usage");
    assert_eq!(usage.date, "2026-11-21");
    assert_eq!(usage.usage[0].units, 2);
    c.advance(14 * 3600 * 1_000_000);
    db.record_usage(&a, None, chat).expect("a new UTC day");
    // Members may read but not change limits.
    let m = member(&db, &t);
    assert_eq!(
        db.set_limits(&m, l).unwrap_err().to_string(),
        "Role 'member' is not authorized to update limits"
    );
}

#[test]
fn periods_follow_the_utc_month() {
    let c = clock();
    let db = db_at(&c);
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    small_plan(&db, &t, "one", 1);
    db.record_usage(&a, None, Meter::one("assistant_query", "chat"))
        .expect("november");
    assert!(
        db.record_usage(&a, None, Meter::one("assistant_query", "chat"))
            .is_err()
    );
    c.set(ManualClock::at("2026-12-01T00:00:00Z").expect("ts").now());
    db.record_usage(&a, None, Meter::one("assistant_query", "chat"))
        .expect("december has its own allowance");
    let nov = Period::of(bespin_core::time::Date::parse("2026-11-01").expect("date"));
    assert_eq!(
        db.billing_usage(&a, Some(nov)).expect("nov").credits.used,
        1.0
    );
    assert_eq!(
        db.billing_ledger(&a, Some(nov), 10)
            .expect("ledger")
            .items
            .len(),
        1
    );
}

#[test]
fn idempotent_replays_run_once_and_cost_nothing() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    let run = |body: serde_json::Value| {
        let scope = Idempotency::new("/v1/test", "key-1", &body);
        db.transaction(|tx, ctx| {
            idempotency::once(tx, ctx, a.tenant_id(), &scope, |tx| {
                let permit =
                    Meter::one("assistant_query", "chat").check_in(tx, ctx, a.tenant_id())?;
                let id = bespin_core::ids::new_id();
                permit.record(tx, ctx, &a, &id)?;
                Ok(json!({"request_id": id}))
            })
        })
    };
    let first = run(json!({"n": 1})).expect("first");
    let again = run(json!({"n": 1})).expect("replay");
    assert_eq!(first.json(), again.json());
    let e = run(json!({"n": 1.0})).unwrap_err();
    assert_eq!(
        e.to_string(),
        "Idempotency key 'key-1' was already used with a different request body"
    );
    assert_eq!(
        db.billing_ledger(&a, None, 10).expect("ledger").items.len(),
        1
    );
}

#[test]
fn expired_idempotency_records_are_purged_or_replaced() {
    let c = clock();
    let db = db_at(&c);
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    let day = 25 * 3600 * 1_000_000;
    let store = |key: &str, v: i64| {
        let scope = Idempotency::new("/v1/test", key, &json!({}));
        db.transaction(|tx, ctx| {
            idempotency::store(tx, ctx, a.tenant_id(), &scope, json!({"v": v}))
        })
        .expect("store");
    };
    store("k", 1);
    assert_eq!(db.purge_expired_idempotency().expect("purge"), 0);
    c.advance(day);
    assert_eq!(db.purge_expired_idempotency().expect("purge"), 1);

    // An expired record still in place is replaced, and its age entry goes with it.
    store("r", 1);
    c.advance(day);
    store("r", 2);
    let report = db.check().expect("check");
    assert!(report.violations.is_empty(), "{report}");
    assert_eq!(db.purge_expired_idempotency().expect("purge"), 0);
    let scope = Idempotency::new("/v1/test", "r", &json!({}));
    let replay: serde_json::Value = db
        .transaction(|tx, ctx| {
            idempotency::once(tx, ctx, a.tenant_id(), &scope, |_| Ok(json!({"v": 3})))
        })
        .and_then(idempotency::Stored::into_value)
        .expect("replay");
    assert_eq!(replay, json!({"v": 2}));
    c.advance(day);
    assert_eq!(db.purge_expired_idempotency().expect("purge"), 1);
}

#[test]
fn failed_operations_write_nothing() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    let r: bespin_core::Result<()> = db.transaction(|tx, ctx| {
        Meter::one("assistant_query", "chat")
            .check_in(tx, ctx, a.tenant_id())?
            .record(tx, ctx, &a, "r1")?;
        Err(Error::NotFound("later step failed".into()))
    });
    assert!(r.is_err());
    assert!(
        db.billing_ledger(&a, None, 10)
            .expect("ledger")
            .items
            .is_empty()
    );
    assert!(
        db.billing_usage(&a, None)
            .expect("usage")
            .breakdown
            .is_empty()
    );
}

#[test]
fn tenants_cannot_see_each_other() {
    let db = db_at(&clock());
    let t1 = tenant(&db, "One");
    let t2 = tenant(&db, "Two");
    let a1 = admin(&db, &t1);
    let a2 = admin(&db, &t2);
    db.record_usage(&a1, None, Meter::one("assistant_query", "chat"))
        .expect("usage");
    assert!(
        db.billing_ledger(&a2, None, 10)
            .expect("ledger")
            .items
            .is_empty()
    );
    assert!(
        db.billing_usage(&a2, None)
            .expect("usage")
            .breakdown
            .is_empty()
    );
    assert_eq!(
        db.daily_usage(&a2, None)
            .expect("daily")
            .usage
            .iter()
            .map(|u| u.units)
            .sum::<i64>(),
        0
    );
}

#[test]
fn admin_catalogue_refusals() {
    let db = db_at(&clock());
    let e = db
        .admin_create_plan(NewPlan {
            plan_id: "starter".into(),
            name: "x".into(),
            included_credits: 1,
            overage_price_per_credit: Amount::ZERO,
            requests_per_minute: None,
        })
        .unwrap_err();
    assert_eq!(e.to_string(), "Plan 'starter' already exists");
    assert_eq!(
        db.admin_update_plan("nope", PlanPatch::default())
            .unwrap_err()
            .to_string(),
        "Plan 'nope' not found"
    );
    let e = db
        .admin_set_plan_capabilities("growth", vec!["chat".into(), "teleport".into()])
        .unwrap_err();
    assert_eq!(e.to_string(), "Capability 'teleport' not found");
    assert_eq!(db.admin_plans().expect("plans").len(), 3);
    let e = db
        .admin_set_plan_caps(
            "growth",
            vec![("nope".into(), "monthly".into(), Amount::ZERO)],
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Event type 'nope' not found");
    let e = db
        .admin_set_subscription(
            "no-tenant",
            SubscriptionUpdate {
                plan_id: "starter".into(),
                status: "active".into(),
                period_start: None,
            },
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Tenant 'no-tenant' not found");
    let caps = bespin_core::billing::catalog::capabilities_from_json(
        &json!({"capabilities": ["chat", "chat"]}),
    );
    assert!(matches!(caps, Err(Error::Validation(_))));
}

#[test]
fn seeding_is_insert_if_missing_and_keeps_admin_edits() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("b.redb");
    {
        let db = Bespin::open(&path).expect("open");
        db.admin_update_plan(
            "starter",
            PlanPatch {
                included_credits: Some(7),
                ..Default::default()
            },
        )
        .expect("edit");
        db.admin_set_plan_capabilities("growth", vec!["chat".into()])
            .expect("narrow");
        db.admin_update_metered_event(
            "tool_invocation",
            MeteredEventPatch {
                credits_per_unit: Amount::parse("3"),
                ..Default::default()
            },
        )
        .expect("reweigh");
    }
    let db = Bespin::open(&path).expect("reopen");
    let plans = db.admin_plans().expect("plans");
    assert_eq!(
        plans
            .iter()
            .find(|p| p.plan_id == "starter")
            .map(|p| p.included_credits),
        Some(7)
    );
    let events = db.admin_metered_events().expect("events");
    assert_eq!(
        events
            .iter()
            .find(|e| e.event_key == "tool_invocation")
            .map(|e| e.credits_per_unit),
        Some(3.0)
    );
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    db.admin_set_subscription(
        &t.tenant_id,
        SubscriptionUpdate {
            plan_id: "growth".into(),
            status: "active".into(),
            period_start: None,
        },
    )
    .expect("growth");
    assert_eq!(
        db.billing_plan(&a).expect("plan").capabilities,
        ["chat"],
        "a removed grant stays removed"
    );
}

#[test]
fn concurrent_requests_never_exceed_a_cap() {
    let db = db_at(&clock());
    let t = tenant(&db, "Acme");
    let a = admin(&db, &t);
    small_plan(&db, &t, "race", 1_000_000);
    db.admin_set_plan_caps(
        "race",
        vec![("task_created".into(), "monthly".into(), Amount::from_int(5))],
    )
    .expect("cap");
    let handles: Vec<_> = (0..8)
        .map(|_| {
            let (db, a) = (db.clone(), a.clone());
            std::thread::spawn(move || {
                (0..5)
                    .filter(|_| {
                        db.record_usage(&a, None, Meter::one("task_created", "tasks"))
                            .is_ok()
                    })
                    .count()
            })
        })
        .collect();
    let admitted: usize = handles.into_iter().map(|h| h.join().expect("thread")).sum();
    assert_eq!(admitted, 5);
    assert_eq!(
        db.billing_ledger(&a, None, 100)
            .expect("ledger")
            .items
            .len(),
        5
    );
}
