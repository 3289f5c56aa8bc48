//! Usage in and out through the core: ingestion's per-event rules, de-duplication in a race,
//! caps under concurrent batches, the export's order and cursor, and the checker.
#![allow(clippy::unwrap_used)]

use super::export::{ExportQuery, OrderEntry, USAGE_ALL_BY_SEQ};
use super::ingest::{
    DedupExpiryKey, IngestReport, Outcome, PURGED_UP_TO, USAGE_DEDUP_BY_EXPIRY, UsageEvents,
};
use crate::billing::catalog::{NewMeteredEvent, NewPlan};
use crate::billing::subscriptions::SubscriptionUpdate;
use crate::check::testing::{caught, first_key};
use crate::error::Error;
use crate::layout::META;
use crate::money::Amount;
use crate::store::NameKey;
use crate::store::Reader;
use crate::testutil::{db, tenant};
use crate::time::{Date, ManualClock};
use crate::{Bespin, Options, Principal};
use serde_json::{Value, json};
use std::sync::Arc;

/// A database with the custom event `llm_tokens` (0.001 credits a token), a plan `metered`
/// (1,000 credits) and a tenant on it: (db, clock, admin, member).
pub(super) fn setup() -> (Bespin, ManualClock, Principal, Principal) {
    let (db, clock) = db();
    let (admin, member) = setup_on(&db);
    (db, clock, admin, member)
}

/// [`setup`]'s type, plan and tenant on `db`: (admin, member).
fn setup_on(db: &Bespin) -> (Principal, Principal) {
    let (admin, member) = tenant(db);
    db.admin_create_metered_event(NewMeteredEvent {
        event_key: "llm_tokens".into(),
        display_name: "LLM tokens".into(),
        description: None,
        unit_name: "token".into(),
        credits_per_unit: Amount::parse("0.001").unwrap(),
        list_price_per_credit: Amount::parse("0.02").unwrap(),
        billable: true,
        active: true,
        capability: None,
    })
    .unwrap();
    db.admin_create_plan(NewPlan {
        plan_id: "metered".into(),
        name: "Metered".into(),
        included_credits: 1000,
        overage_price_per_credit: Amount::ZERO,
        requests_per_minute: None,
    })
    .unwrap();
    db.admin_set_subscription(
        admin.tenant_id(),
        SubscriptionUpdate {
            plan_id: "metered".into(),
            status: "active".into(),
            period_start: None,
        },
    )
    .unwrap();
    (admin, member)
}

/// Another tenant on the plan `metered` of [`setup`]'s `db`: its admin.
pub(super) fn another(db: &Bespin) -> Principal {
    let (admin, _) = tenant(db);
    let on = SubscriptionUpdate {
        plan_id: "metered".into(),
        status: "active".into(),
        period_start: None,
    };
    db.admin_set_subscription(admin.tenant_id(), on).unwrap();
    admin
}

pub(super) fn event(id: &str, value: Value) -> Value {
    json!({"specversion": "1.0", "id": id, "source": "svc", "type": "llm_tokens",
           "subject": "customer-1", "data": {"value": value}})
}

pub(super) fn post(db: &Bespin, who: &Principal, batch: Value) -> IngestReport {
    db.record_usage_events(who, UsageEvents::batch(&batch).unwrap())
        .unwrap()
}

pub(super) fn statuses(r: &IngestReport) -> Vec<&'static str> {
    r.results
        .iter()
        .map(|r| match r.outcome {
            Outcome::Accepted { .. } => "accepted",
            Outcome::Duplicate { .. } => "duplicate",
            Outcome::Rejected(_) => "rejected",
        })
        .collect()
}

fn rejection(r: &IngestReport, i: usize) -> &Error {
    match &r.results[i].outcome {
        Outcome::Rejected(e) => e,
        other => panic!("event {i} was not rejected: {other:?}"),
    }
}

pub(super) fn used_tokens(db: &Bespin, who: &Principal) -> f64 {
    let u = db.billing_usage(who, None).unwrap();
    u.breakdown
        .iter()
        .find(|b| b.event_key == "llm_tokens")
        .map_or(0.0, |b| b.raw_units)
}

#[test]
fn a_custom_event_is_ingested_checked_and_rolled_up() {
    let (db, _, admin, member) = setup();
    let r = post(
        &db,
        &admin,
        json!([
            event("a", json!(1500)),
            event("b", json!("0.5")),
            event("c", json!(0))
        ]),
    );
    assert_eq!(statuses(&r), ["accepted", "accepted", "rejected"]);
    let Error::Validation(items) = rejection(&r, 2) else {
        panic!("not a 422")
    };
    let loc: Vec<String> = items[0].loc.iter().map(ToString::to_string).collect();
    assert_eq!(loc, ["2", "data", "value"]);
    assert_eq!(used_tokens(&db, &admin), 1500.5);
    // One audit row for the request, naming the request of its usage events.
    let audit = db.audit_log(&admin, 10).unwrap();
    assert_eq!(audit[0].action, "usage.events_reported");
    let ledger = db.billing_ledger(&admin, None, 10).unwrap();
    assert!(
        ledger
            .items
            .iter()
            .all(|i| i.request_id == audit[0].request_id)
    );
    let u = db.billing_usage(&admin, None).unwrap();
    assert_eq!(u.credits.used, 1.5005);
    // Members may not report usage.
    let refused = db.record_usage_events(
        &member,
        UsageEvents::batch(&json!([event("d", json!(1))])).unwrap(),
    );
    assert!(matches!(refused, Err(Error::Forbidden(_))), "{refused:?}");
    // An unknown type is refused alone, as the built-in metering refuses it.
    let mut unknown = event("e", json!(1));
    unknown["type"] = json!("nope");
    let r = post(&db, &admin, json!([unknown]));
    assert!(matches!(rejection(&r, 0), Error::UnknownEventType { .. }));
    assert!(
        db.check().unwrap().violations.is_empty(),
        "{}",
        db.check().unwrap()
    );
}

#[test]
fn a_repeat_is_a_duplicate_answering_the_first_and_changing_nothing() {
    let (db, _, admin, _) = setup();
    let first = post(
        &db,
        &admin,
        json!([event("x", json!(10)), event("x", json!(99))]),
    );
    assert_eq!(statuses(&first), ["accepted", "duplicate"]);
    let again = post(&db, &admin, json!([event("x", json!(10))]));
    assert_eq!(statuses(&again), ["duplicate"]);
    let id = |r: &IngestReport, i: usize| match &r.results[i].outcome {
        Outcome::Accepted { usage_id } | Outcome::Duplicate { usage_id } => usage_id.clone(),
        Outcome::Rejected(e) => panic!("{e}"),
    };
    assert_eq!(id(&first, 0), id(&first, 1));
    assert_eq!(id(&first, 0), id(&again, 0));
    assert_eq!(used_tokens(&db, &admin), 10.0);
    // A batch sent again with one event more: after the first repeat, the next events are
    // looked up first; the new one is still accepted, the repeats answer the first ones.
    let ab = post(
        &db,
        &admin,
        json!([event("a", json!(1)), event("b", json!(2))]),
    );
    let abc = post(
        &db,
        &admin,
        json!([
            event("a", json!(1)),
            event("b", json!(2)),
            event("c", json!(3)),
            event("a", json!(1))
        ]),
    );
    assert_eq!(
        statuses(&abc),
        ["duplicate", "duplicate", "accepted", "duplicate"]
    );
    assert_eq!((id(&abc, 0), id(&abc, 1)), (id(&ab, 0), id(&ab, 1)));
    assert_eq!(id(&abc, 3), id(&ab, 0));
    assert_eq!(used_tokens(&db, &admin), 16.0);
    // Another source with the same id is another event.
    let mut other = event("x", json!(5));
    other["source"] = json!("svc-2");
    assert_eq!(statuses(&post(&db, &admin, json!([other]))), ["accepted"]);
    assert_eq!(used_tokens(&db, &admin), 21.0);
    // A repeat is a duplicate even when the event would be refused now (its type tied to a
    // capability the plan lacks); a new one is refused.
    let patch = crate::billing::catalog::MeteredEventPatch {
        capability: Some("kpi_ingest".into()),
        ..Default::default()
    };
    db.admin_update_metered_event("llm_tokens", patch).unwrap();
    let r = post(
        &db,
        &admin,
        json!([event("x", json!(10)), event("y", json!(1))]),
    );
    assert_eq!(statuses(&r), ["duplicate", "rejected"]);
    assert_eq!(id(&r, 0), id(&first, 0));
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn thirty_two_concurrent_posts_of_one_event_count_once() {
    let (db, _, admin, _) = setup();
    let outcomes: Vec<&'static str> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..32)
            .map(|_| s.spawn(|| statuses(&post(&db, &admin, json!([event("race", json!(7))])))[0]))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(outcomes.iter().filter(|s| **s == "accepted").count(), 1);
    assert_eq!(outcomes.iter().filter(|s| **s == "duplicate").count(), 31);
    assert_eq!(used_tokens(&db, &admin), 7.0);
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn a_cap_under_concurrent_batches_is_never_exceeded() {
    let (db, _, admin, _) = setup();
    db.admin_set_plan_caps(
        "metered",
        vec![("llm_tokens".into(), "monthly".into(), Amount::from_int(25))],
    )
    .unwrap();
    let accepted: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..8)
            .map(|t| {
                let (db, admin) = (&db, &admin);
                s.spawn(move || {
                    let batch: Vec<Value> = (0..10)
                        .map(|i| event(&format!("{t}-{i}"), json!(1)))
                        .collect();
                    post(db, admin, Value::Array(batch)).counts().0
                })
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(accepted, 25);
    assert_eq!(used_tokens(&db, &admin), 25.0);
    // An event over the cap is refused whole with the contract's 429 body, even if part of
    // it would fit.
    db.admin_set_plan_caps(
        "metered",
        vec![("llm_tokens".into(), "monthly".into(), Amount::from_int(30))],
    )
    .unwrap();
    let r = post(
        &db,
        &admin,
        json!([event("big", json!(6)), event("fits", json!(5))]),
    );
    assert_eq!(statuses(&r), ["rejected", "accepted"]);
    let Error::QuotaExceeded(q) = rejection(&r, 0) else {
        panic!("not a 429")
    };
    assert_eq!(
        (q.cap_raw_units, q.used_raw_units),
        (Some(30.0), Some(25.0))
    );
    assert_eq!(q.requested_raw_units, serde_json::Number::from(6));
    assert_eq!(used_tokens(&db, &admin), 30.0);
    // A refused event is not remembered: after the cap is raised, the same event goes in.
    db.admin_set_plan_caps("metered", vec![]).unwrap();
    assert_eq!(
        statuses(&post(&db, &admin, json!([event("big", json!(6))]))),
        ["accepted"]
    );
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn the_credit_allowance_and_a_capability_refuse_per_event() {
    let (db, _, admin, _) = setup();
    // 1,000 credits at 0.001: a million tokens.
    let r = post(
        &db,
        &admin,
        json!([
            event("a", json!(999_000)),
            event("b", json!(2000)),
            event("c", json!(1000))
        ]),
    );
    assert_eq!(statuses(&r), ["accepted", "rejected", "accepted"]);
    assert!(matches!(rejection(&r, 1), Error::QuotaExceeded(_)));
    // An event tied to a capability the plan lacks is refused with 403's error.
    let patch = crate::billing::catalog::MeteredEventPatch {
        capability: Some("kpi_ingest".into()),
        ..Default::default()
    };
    db.admin_update_metered_event("llm_tokens", patch).unwrap();
    let r = post(&db, &admin, json!([event("d", json!(1))]));
    assert!(matches!(rejection(&r, 0), Error::CapabilityDenied { .. }));
    db.admin_set_plan_capabilities("metered", vec!["kpi_ingest".into()])
        .unwrap();
    // The credits are spent; the capability passes and the allowance refuses.
    let r = post(&db, &admin, json!([event("d", json!(1))]));
    assert!(matches!(rejection(&r, 0), Error::QuotaExceeded(_)));
}

#[test]
fn an_events_time_is_held_to_the_open_period_and_five_minutes_ahead_at_the_edges() {
    // The bounds are made once per request; within them an event's own period is not read
    // again. Two minutes before the next period opens, both edges lie within reach.
    use super::ingest::TimeBounds;
    use crate::time::Timestamp;
    let t = |s: &str| {
        Timestamp::from_datetime(chrono::DateTime::parse_from_rfc3339(s).unwrap().to_utc())
    };
    let now = t("2026-01-31T23:58:00Z");
    let bounds = TimeBounds::new(now, now.period());
    let why = |s: &str| bounds.refusal(t(s));
    assert_eq!(why("2026-01-01T00:00:00Z"), None);
    assert_eq!(why("2026-01-31T23:59:59.999999Z"), None);
    let next = Some("time lies in the next billing period, which is not open yet".to_owned());
    assert_eq!(why("2026-02-01T00:00:00Z"), next);
    assert_eq!(why("2026-02-01T00:03:00Z"), next);
    assert!(
        why("2025-12-31T23:59:59.999999Z")
            .unwrap()
            .contains("before the open")
    );
    assert!(
        why("2026-02-01T00:03:00.000001Z")
            .unwrap()
            .contains("5 minutes")
    );
    // December's period ends in the next year.
    let now = t("2025-12-31T23:58:00Z");
    let bounds = TimeBounds::new(now, now.period());
    assert_eq!(bounds.refusal(t("2025-12-31T23:59:59.999999Z")), None);
    let why = bounds.refusal(t("2026-01-01T00:00:00Z"));
    assert!(why.unwrap().contains("next billing period"));
}

#[test]
fn late_events_count_on_their_day_and_too_old_or_future_ones_are_refused() {
    let (db, _, admin, _) = setup();
    // The clock is 2026-01-31T12:00Z.
    let at = |id: &str, t: &str| {
        let mut e = event(id, json!(1));
        e["time"] = json!(t);
        e
    };
    let r = post(
        &db,
        &admin,
        json!([
            at("jan-2", "2026-01-02T08:00:00Z"),
            at("dec", "2025-12-31T23:59:59Z"),
            at("soon", "2026-01-31T12:04:00Z"),
            at("later", "2026-01-31T12:06:00Z"),
            at("bad", "yesterday"),
        ]),
    );
    assert_eq!(
        statuses(&r),
        ["accepted", "rejected", "accepted", "rejected", "rejected"]
    );
    for i in [1, 3, 4] {
        let Error::Validation(items) = rejection(&r, i) else {
            panic!("not a 422")
        };
        assert_eq!(items[0].loc.last().unwrap().to_string(), "time");
    }
    let days = db.billing_usage_by_day(&admin, None).unwrap();
    let dates: Vec<&str> = days.days.iter().map(|d| d.date.as_str()).collect();
    assert_eq!(dates, ["2026-01-02", "2026-01-31"]);
    assert!(
        db.check().unwrap().violations.is_empty(),
        "{}",
        db.check().unwrap()
    );
}

#[test]
fn the_export_follows_insertion_so_a_late_event_is_not_skipped() {
    let (db, _, admin, _) = setup();
    let (other, _) = tenant(&db);
    // Built-in metering of the other tenant (a KPI point ingested).
    crate::testutil::kpi(&db, &other, "MRR", &[("2026-01-01T00:00:00Z", 1.0)]);
    post(
        &db,
        &admin,
        json!([event("1", json!(1)), event("2", json!(2))]),
    );
    let page = db
        .usage_export(&admin, ExportQuery::from_start(100))
        .unwrap();
    assert_eq!(page.events.len(), 2);
    let cursor = page.next_cursor.clone().unwrap();
    let q = ExportQuery::parse(&db, Some(&cursor), Some("100")).unwrap();
    assert!(db.usage_export(&admin, q).unwrap().events.is_empty());
    // A late event (earlier time than both) comes after the cursor, not before it.
    let mut late = event("3", json!(3));
    late["time"] = json!("2026-01-05T00:00:00Z");
    let r = post(&db, &admin, json!([late]));
    let next = db.usage_export(&admin, q).unwrap();
    assert_eq!(next.events.len(), 1);
    let e = &next.events[0];
    // The answer's usage id is the exported event's id.
    let Outcome::Accepted { usage_id } = &r.results[0].outcome else {
        panic!("not accepted: {r:?}")
    };
    assert_eq!(usage_id.to_string(), e.id);
    assert!(e.id.starts_with("use_"));
    assert_eq!(
        (e.event_type.as_str(), e.time.as_str()),
        ("llm_tokens", "2026-01-05T00:00:00.000000Z")
    );
    assert_eq!(e.subject, "customer-1");
    assert_eq!(e.data.origin_id.as_deref(), Some("3"));
    assert_eq!(e.source, format!("bespin/{}", admin.tenant_id()));
    // The same cursor read twice gives the same page.
    assert_eq!(db.usage_export(&admin, q).unwrap(), next);
    // The other tenant sees none of it; the platform export sees all, built-in usage too.
    let theirs = db
        .usage_export(&other, ExportQuery::from_start(100))
        .unwrap();
    assert!(
        theirs
            .events
            .iter()
            .all(|e| e.data.tenant_id == other.tenant_id())
    );
    let all = db
        .admin_usage_export(ExportQuery::from_start(1000))
        .unwrap();
    assert!(
        all.events
            .iter()
            .any(|e| e.data.tenant_id == other.tenant_id())
    );
    let ours: Vec<_> = all
        .events
        .iter()
        .filter(|e| e.data.tenant_id == admin.tenant_id())
        .collect();
    assert_eq!(ours.last().unwrap().id, e.id);
    // Paging by 1 walks the same sequence.
    let mut walked = Vec::new();
    let mut q = ExportQuery::from_start(1);
    loop {
        let p = db.admin_usage_export(q).unwrap();
        if p.events.is_empty() {
            break;
        }
        walked.extend(p.events.into_iter().map(|e| e.id));
        q = ExportQuery::parse(&db, p.next_cursor.as_deref(), Some("1")).unwrap();
    }
    let ids: Vec<String> = all.events.iter().map(|e| e.id.clone()).collect();
    assert_eq!(walked, ids);
    assert!(ExportQuery::parse(&db, Some("use_nope"), None).is_err());
    assert!(ExportQuery::parse(&db, None, Some("1001")).is_err());
}

const DAY: i64 = 86_400 * 1_000_000;

/// `n` usage events of Bespin's own metering for `who`'s tenant (tasks created).
pub(super) fn builtin_usage(db: &Bespin, who: &Principal, n: usize) {
    db.admin_set_plan_capabilities("metered", vec!["tasks".into()])
        .unwrap();
    for i in 0..n {
        let t = crate::coreos::tasks::NewTask::from_json(&json!({"title": format!("t{i}")}));
        db.create_task(who, t.unwrap()).unwrap();
    }
}

/// A claim past the retention is gone at once for lookups (before any purge); the request
/// that then claims again drops its tenant's expired runs itself; the purge drops those of
/// idle tenants, a tenant's row per unit of its bound, from where the last call stopped, and
/// returns how many claims went.
#[test]
fn remembered_events_are_purged_after_the_retention_in_bounded_steps() {
    let (db, clock, admin, _) = setup();
    // A request each: a run of one claim each.
    for i in 0..5 {
        post(&db, &admin, json!([event(&i.to_string(), json!(1))]));
    }
    // Two idle tenants with claims of their own.
    let others: Vec<Principal> = (0..2).map(|_| another(&db)).collect();
    for (n, p) in others.iter().enumerate() {
        let batch: Vec<Value> = (0..=n).map(|i| event(&format!("o{i}"), json!(1))).collect();
        post(&db, p, Value::Array(batch));
    }
    assert_eq!(db.purge_usage_dedup(10).unwrap(), 0);
    assert_eq!(runs_of(&db, &admin).live.len(), 5);
    clock.advance(33 * DAY);
    // Past the retention, not purged yet: the same id is a new event; refused, an event
    // leaves nothing.
    let mut old = event("1", json!(1));
    old["time"] = json!("2026-01-31T12:00:00Z");
    let r = post(&db, &admin, json!([event("0", json!(1)), old]));
    assert_eq!(statuses(&r), ["accepted", "rejected"]);
    // That request's upkeep dropped its tenant's five expired runs; only its own is live.
    let runs = runs_of(&db, &admin);
    assert_eq!(runs.live.len(), 1);
    assert_eq!(runs.live[0].count, 1);
    assert!(runs.dropping.is_empty(), "{runs:?}");
    assert!(
        db.check().unwrap().violations.is_empty(),
        "{}",
        db.check().unwrap()
    );
    // The idle tenants' runs (1 and 2 claims) go a tenant's row per call with a bound of 1:
    // three rows, three calls, then the walk starts over and finds nothing.
    let calls: Vec<usize> = (0..3).map(|_| db.purge_usage_dedup(1).unwrap()).collect();
    assert!(calls.iter().all(|n| [0, 1, 2].contains(n)), "{calls:?}");
    assert_eq!(calls.iter().sum::<usize>(), 3, "{calls:?}");
    assert_eq!(db.purge_usage_dedup(10).unwrap(), 0);
    assert_eq!(db.purge_usage_dedup(10).unwrap(), 0);
    for p in &others {
        // The row stays, so that run numbers are never given twice.
        let runs = runs_of(&db, p);
        assert!(runs.live.is_empty() && runs.dropping.is_empty(), "{runs:?}");
        assert_eq!(runs.next, 1);
    }
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_claim_blocks"), 1);
    // A purged id is a new event again; the one accepted again is still remembered.
    let r = post(
        &db,
        &admin,
        json!([event("2", json!(1)), event("0", json!(1))]),
    );
    assert_eq!(statuses(&r), ["accepted", "duplicate"]);
    assert_eq!(used_tokens(&db, &admin), 2.0);
    assert!(db.check().unwrap().violations.is_empty());
}

/// `who`'s tenant's runs of claims.
pub(super) fn runs_of(db: &Bespin, who: &Principal) -> super::claims::Runs {
    let key = super::claims::RunsKey::new(who.tenant_id());
    db.read(|r, _| r.get(&super::claims::USAGE_CLAIM_RUNS, &key))
        .unwrap()
        .unwrap_or_default()
}

/// The retention counts from a claim's acceptance, not from its event's `time`: a late event
/// accepted 20 days after the first ones is remembered until 32 days after its acceptance,
/// and the purge drops the earlier run alone (Bespin's own metering has no claims).
#[test]
fn the_retention_counts_from_acceptance_and_the_purge_drops_only_expired_runs() {
    let (db, clock, admin, _) = setup();
    post(
        &db,
        &admin,
        json!([event("a", json!(1)), event("b", json!(1))]),
    );
    // Bespin's own metering between them.
    builtin_usage(&db, &admin, 3);
    clock.advance(20 * DAY);
    // Accepted on 20 February for 1 February: its `time` is past the retention when the
    // others expire, its acceptance is not.
    let mut late = event("c", json!(1));
    late["time"] = json!("2026-02-01T00:00:00Z");
    post(&db, &admin, json!([late, event("d", json!(1))]));
    builtin_usage(&db, &admin, 3);
    clock.advance(13 * DAY);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 2);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 0);
    let r = post(
        &db,
        &admin,
        json!([
            event("a", json!(1)),
            event("b", json!(1)),
            event("c", json!(1)),
            event("d", json!(1))
        ]),
    );
    assert_eq!(
        statuses(&r),
        ["accepted", "accepted", "duplicate", "duplicate"]
    );
    assert!(
        db.check().unwrap().violations.is_empty(),
        "{}",
        db.check().unwrap()
    );
    // 19 days on, c and d go too.
    clock.advance(19 * DAY);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 2);
    assert!(db.check().unwrap().violations.is_empty());
}

/// A purge visits at most its bound of tenants' rows a call, from where the last call
/// stopped, skipping a tenant with nothing to do; over enough calls every expired run goes.
#[test]
fn a_purge_visits_a_bounded_number_of_tenants() {
    let (db, clock, admin, _) = setup();
    let mut tenants = vec![admin.clone()];
    tenants.extend((0..4).map(|_| another(&db)));
    for p in &tenants {
        post(&db, p, json!([event("late", json!(1))]));
    }
    clock.advance(20 * DAY);
    // A sixth tenant whose claim is still live 13 days on.
    let live = another(&db);
    post(&db, &live, json!([event("late", json!(1))]));
    clock.advance(13 * DAY);
    let calls: Vec<usize> = (0..6).map(|_| db.purge_usage_dedup(2).unwrap()).collect();
    assert!(calls.iter().all(|n| *n <= 2), "{calls:?}");
    assert!(
        calls[0] < 5,
        "the first call does not reach every tenant: {calls:?}"
    );
    assert_eq!(calls.iter().sum::<usize>(), 5, "{calls:?}");
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 0);
    for p in &tenants {
        assert_eq!(
            statuses(&post(&db, p, json!([event("late", json!(1))]))),
            ["accepted"]
        );
    }
    assert_eq!(
        statuses(&post(&db, &live, json!([event("late", json!(1))]))),
        ["duplicate"]
    );
    assert!(db.check().unwrap().violations.is_empty());
}

#[test]
fn check_holds_the_rollups_of_a_late_event_to_its_usage() {
    let (db, _, admin, _) = setup();
    let mut late = event("late", json!(2.5));
    late["time"] = json!("2026-01-03T10:00:00Z");
    post(&db, &admin, json!([late, event("now", json!(1))]));
    assert!(db.check().unwrap().violations.is_empty());
    // The late event's day rollup off by a token: caught.
    db.tamper(|tx| {
        let key = super::day_rollup_key(
            admin.tenant_id(),
            crate::time::Date::parse("2026-01-03").unwrap(),
            "llm_tokens",
        );
        let mut r = tx.get(&super::DAY_ROLLUPS, &key)?.unwrap();
        r.raw_units += Amount::from_int(1);
        tx.put(&super::DAY_ROLLUPS, &key, &r)
    });
    caught(&db, "day_rollups", "raw units");
}

#[test]
fn the_checker_catches_a_lost_or_unmarked_order_row() {
    let fresh = || {
        let (db, _, admin, _) = setup();
        post(&db, &admin, json!([event("a", json!(1))]));
        assert!(db.check().unwrap().violations.is_empty());
        (db, admin)
    };
    // The insertion order: a row lost, a reported event's row not marked reported.
    let (db, _) = fresh();
    db.tamper(|tx| {
        let k = first_key(tx, &USAGE_ALL_BY_SEQ);
        tx.delete_stored(&USAGE_ALL_BY_SEQ, &k).map(|_| ())
    });
    caught(&db, "usage_all_by_seq", "missing");
    let (db, _) = fresh();
    db.tamper(|tx| unmark_reported(tx).map(|_| ()));
    caught(&db, "usage_all_by_seq", "wrong value");
}

/// Rewrites the reported events' rows of the platform's insertion order as layout 9 wrote
/// them (the instant alone); returns how many.
pub(super) fn unmark_reported(tx: &mut crate::store::WriteTx) -> crate::Result<usize> {
    let mut reported = Vec::new();
    tx.scan(
        &USAGE_ALL_BY_SEQ,
        &USAGE_ALL_BY_SEQ.prefix(),
        crate::store::Order::Asc,
        |k, e: OrderEntry| {
            if e.reported {
                reported.push((k.to_vec(), e.at));
            }
            Ok(crate::store::Flow::Continue)
        },
    )?;
    for (k, at) in &reported {
        let bytes = crate::store::codec::encode(at)?;
        tx.raw_insert_for_test(USAGE_ALL_BY_SEQ.name(), k, &bytes)?;
    }
    Ok(reported.len())
}

/// Rewrites every chunk of reported events as layout 10 stored them: a usage event's row and
/// two order rows per event; returns how many events.
pub(super) fn unchunk(tx: &mut crate::store::WriteTx) -> crate::Result<usize> {
    use super::chunk::{USAGE_CHUNKS, UsageChunk, UsageChunkKey};
    let mut chunks = Vec::new();
    tx.scan(
        &USAGE_CHUNKS,
        &USAGE_CHUNKS.prefix(),
        crate::store::Order::Asc,
        |k, c: UsageChunk| {
            if let Some(k) = UsageChunkKey::decode(k) {
                chunks.push((k.into_owned(), c));
            }
            Ok(crate::store::Flow::Continue)
        },
    )?;
    let mut n = 0;
    for (k, c) in chunks {
        let t = k.tenant_id.as_ref();
        tx.delete(&USAGE_CHUNKS, &k)?;
        let by_tenant = super::export::TenantUsageSeqKey::new(t, k.first_seq);
        tx.delete(&super::export::USAGE_BY_SEQ, &by_tenant)?;
        let all = super::export::UsageSeqKey::new(k.first_seq, t);
        tx.delete(&USAGE_ALL_BY_SEQ, &all)?;
        for (seq, rec) in c.records()? {
            super::write_numbered(tx, t, seq, &rec)?;
            n += 1;
        }
    }
    Ok(n)
}

/// Where a database can be opened again: a PostgreSQL schema of its own when the tests run on
/// PostgreSQL, otherwise a redb file (kept while the guard lives).
fn reopenable() -> (Option<tempfile::TempDir>, String) {
    match crate::test_database_url() {
        Some(url) => (None, url),
        None => {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("usage.redb").to_string_lossy().into_owned();
            (Some(dir), path)
        }
    }
}

#[test]
fn an_upgrade_from_layout_9_keeps_de_duplication_and_its_purge_working() {
    let (_dir, at) = reopenable();
    let clock = ManualClock::at("2026-01-31T12:00:00Z").unwrap();
    let open = || Bespin::open_with(&at, Arc::new(clock.clone()), Options::default()).unwrap();
    let db = open();
    let (admin, _) = setup_on(&db);
    builtin_usage(&db, &admin, 2);
    post(
        &db,
        &admin,
        json!([event("a", json!(1)), event("b", json!(1))]),
    );
    // Layout 9: reported events not marked in the insertion order, an expiry row per
    // remembered event, no purge position.
    let tenant = admin.tenant_id().to_owned();
    db.tamper(|tx| {
        assert_eq!(unchunk(tx)?, 2);
        assert_eq!(unmark_reported(tx)?, 2);
        for id in ["a", "b"] {
            let k = DedupExpiryKey::new(Date::parse("2026-03-04").unwrap(), &tenant, "svc", id);
            tx.put(&USAGE_DEDUP_BY_EXPIRY, &k, &())?;
        }
        tx.delete(&META, &NameKey::new(PURGED_UP_TO))?;
        crate::layout::set_old_for_test(tx, 9)
    });
    let report = db.check().unwrap();
    for table in ["usage_all_by_seq", "usage_dedup_by_expiry", "meta"] {
        assert!(
            report.violations.iter().any(|v| v.table == table),
            "{table}: {report}"
        );
    }
    drop(db);

    let db = open();
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_dedup_by_expiry"), 0);
    assert_eq!(
        db.read(|r, _| crate::layout::version(r)).unwrap(),
        crate::layout::CURRENT
    );
    let r = post(
        &db,
        &admin,
        json!([event("a", json!(1)), event("c", json!(1))]),
    );
    assert_eq!(statuses(&r), ["duplicate", "accepted"]);
    // The events remembered before the upgrade are purged like the ones after.
    clock.advance(33 * DAY);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 3);
    let r = post(&db, &admin, json!([event("a", json!(1))]));
    assert_eq!(statuses(&r), ["accepted"]);
    assert!(db.check().unwrap().violations.is_empty());
}

/// On PostgreSQL a request's de-duplication rows are read in one round trip, not one per
/// event ([`crate::store::WriteTx::prefetch`]); the outcomes are those of reading them one by
/// one: new events accepted, repeats (earlier or within the request) duplicates.
#[test]
fn a_requests_de_duplication_rows_are_read_at_once() {
    let (db, _clock, admin, _) = setup();
    let first: Vec<Value> = (0..100)
        .map(|i| event(&format!("a{i}"), json!(1)))
        .collect();
    post(&db, &admin, Value::Array(first));
    // Half repeats of the first request, half new, and one new event twice.
    let mut batch: Vec<Value> = (50..250)
        .map(|i| event(&format!("a{i}"), json!(1)))
        .collect();
    batch.push(event("a200", json!(1)));
    let before = db.round_trips();
    let r = post(&db, &admin, Value::Array(batch));
    let trips = db.round_trips().zip(before).map(|(a, b)| a - b);
    let s = statuses(&r);
    assert!(s[..50].iter().all(|s| *s == "duplicate"), "{s:?}");
    assert!(s[50..200].iter().all(|s| *s == "accepted"), "{s:?}");
    assert_eq!(s[200], "duplicate");
    assert_eq!(used_tokens(&db, &admin), 250.0);
    // 201 events: with a round trip per event this would be over 200 (None on redb).
    if let Some(trips) = trips {
        assert!(
            trips < 20,
            "{trips} round trips for one request of 201 events"
        );
    }
}

/// The thresholds of the credit allowance (1,000 credits, 0.001 a token): an event below the
/// lowest line crosses nothing, one that jumps both lines fires both, in order.
#[test]
fn a_reported_event_across_both_credit_lines_fires_both() {
    let (db, _, admin, _) = setup();
    let crossed = |db: &Bespin| -> Vec<u64> {
        let q = crate::events::EventQuery::default();
        db.events(&admin, &q)
            .unwrap()
            .items
            .iter()
            .filter(|e| e.event_type == "usage.threshold_crossed")
            .map(|e| e.data()["threshold_percent"].as_u64().unwrap())
            .collect()
    };
    post(&db, &admin, json!([event("a", json!(799_999))]));
    assert!(crossed(&db).is_empty());
    post(&db, &admin, json!([event("b", json!(200_001))]));
    assert_eq!(crossed(&db), [80, 100]);
}

/// A line is crossed by the event that reaches it exactly, and by the one that passes it,
/// in the middle of a batch — of the credit allowance (1,000 credits) and of a cap of 12.5
/// tokens — each once; events below it, before and after, cross nothing.
#[test]
fn each_line_is_crossed_by_the_event_that_reaches_it_in_a_batch() {
    let (db, _, admin, _) = setup();
    let crossed = |db: &Bespin, admin: &Principal| -> Vec<(String, u64)> {
        let q = crate::events::EventQuery::default();
        let items = db.events(admin, &q).unwrap().items;
        (items.iter())
            .filter(|e| e.event_type == "usage.threshold_crossed")
            .map(|e| {
                let d = e.data();
                let limit = d["limit"].as_str().unwrap().to_owned();
                (limit, d["threshold_percent"].as_u64().unwrap())
            })
            .collect()
    };
    let batch = |ids: &[(&str, Value)]| {
        Value::Array(ids.iter().map(|(id, v)| event(id, v.clone())).collect())
    };
    // 800,000 tokens are 800 credits, 80% of 1,000: reached exactly by the third event.
    post(
        &db,
        &admin,
        batch(&[
            ("a", json!(700_000)),
            ("b", json!(99_999)),
            ("c", json!(1)),
            ("d", json!(5)),
        ]),
    );
    assert_eq!(crossed(&db, &admin), [("credits".to_owned(), 80)]);
    post(
        &db,
        &admin,
        batch(&[("e", json!(199_994)), ("f", json!(1)), ("g", json!(1))]),
    );
    assert_eq!(
        crossed(&db, &admin),
        [("credits".to_owned(), 80), ("credits".to_owned(), 100)]
    );
    // A cap of 12.5 tokens on a fresh tenant: 80% is 10 tokens, reached by 9.5 + 0.5.
    let (db, _, admin, _) = setup();
    db.admin_set_plan_caps(
        "metered",
        vec![(
            "llm_tokens".into(),
            "monthly".into(),
            Amount::parse("12.5").unwrap(),
        )],
    )
    .unwrap();
    post(
        &db,
        &admin,
        batch(&[("a", json!(9.5)), ("b", json!(0.5)), ("c", json!(0.25))]),
    );
    assert_eq!(crossed(&db, &admin), [("cap".to_owned(), 80)]);
    post(&db, &admin, batch(&[("d", json!(2.25))]));
    assert_eq!(
        crossed(&db, &admin),
        [("cap".to_owned(), 80), ("cap".to_owned(), 100)]
    );
}
