//! The cofounder chat and the daily-brief runner through the public API.
#![allow(clippy::unwrap_used)]

use bespin_core::billing::catalog::{MeteredEventPatch, NewPlan};
use bespin_core::billing::subscriptions::SubscriptionUpdate;
use bespin_core::briefs::MaterializeRequest;
use bespin_core::chat::{ChatRequest, HELP};
use bespin_core::kpis::{NewKpi, PointsBulk};
use bespin_core::limits::DailyLimits;
use bespin_core::money::Amount;
use bespin_core::notifications::{OutboxQuery, PrefsUpdate};
use bespin_core::tenancy::{NewTenant, NewUser, TenantCreated};
use bespin_core::time::{Date, ManualClock};
use bespin_core::{Bespin, Credentials, ErrorKind, Options, Principal, Role};
use serde_json::{Value, json};
use std::sync::Arc;

struct World {
    db: Bespin,
    t: TenantCreated,
    admin: Principal,
}

fn world() -> World {
    let clock = ManualClock::at("2026-02-01T09:00:00Z").unwrap();
    let db = Bespin::open_for_test(Arc::new(clock), Options::default()).unwrap();
    let t = db
        .create_tenant(NewTenant {
            name: "Acme".into(),
            region: "eu".into(),
            admin_email: "a@acme.io".into(),
        })
        .unwrap();
    let admin = db
        .authenticate(&Credentials::new(
            Some(&t.tenant_id),
            Some(&t.admin.user_id),
            Some(&t.api_key),
        ))
        .unwrap();
    World { db, t, admin }
}

impl World {
    fn member(&self, email: &str) -> Principal {
        let u = self
            .db
            .create_user(
                &self.admin,
                NewUser {
                    tenant_id: self.t.tenant_id.clone(),
                    email: email.into(),
                    role: Role::Member,
                },
            )
            .unwrap();
        self.db
            .authenticate(&Credentials::new(
                Some(&self.t.tenant_id),
                Some(&u.user_id),
                Some(&self.t.api_key),
            ))
            .unwrap()
    }

    fn kpi(&self, name: &str, points: Value) -> String {
        let k = self
            .db
            .create_kpi(
                &self.admin,
                NewKpi::from_json(&json!({"name": name, "unit": "GBP"})).unwrap(),
            )
            .unwrap();
        self.db
            .ingest_points(
                &self.admin,
                &k.kpi_id,
                PointsBulk::from_json(&json!({"points": points})).unwrap(),
            )
            .unwrap();
        k.kpi_id
    }

    fn chat(
        &self,
        who: &Principal,
        body: Value,
    ) -> bespin_core::Result<bespin_core::chat::ChatReply> {
        self.db.chat(who, ChatRequest::from_json(&body)?)
    }

    fn run(&self, key: &str, body: Value) -> bespin_core::Result<bespin_core::jobs::RunReport> {
        self.db
            .run_daily_brief(
                &self.admin,
                key,
                MaterializeRequest::from_json(&body).unwrap(),
            )
            .and_then(bespin_core::idempotency::Stored::into_value)
    }

    fn ledger_len(&self) -> usize {
        self.db
            .billing_ledger(&self.admin, None, 1000)
            .unwrap()
            .items
            .len()
    }
}

#[test]
fn every_intent_answers_with_the_contract_text() {
    let w = world();
    let m = w.member("m@acme.io");
    let reply = |msg: &str| {
        w.chat(&m, json!({"message": msg}))
            .unwrap()
            .assistant_message
    };
    assert_eq!(reply("help with kpis").content, HELP);
    assert_eq!(reply("kpis").content, "No KPIs defined for your tenant.");
    assert_eq!(
        reply("today's brief").content,
        "No brief found. To generate a brief, an admin should run:\nPOST /v1/jobs/daily-brief or POST /v1/briefs/materialize"
    );
    assert_eq!(reply("outbox").content, "No notifications in your outbox.");
    assert_eq!(reply("kpi:ARR").content, "KPI 'arr' not found.");
    assert_eq!(
        reply("hello").content,
        "Try: 'today's brief', 'kpis', 'outbox', or 'help'"
    );
    let arr = w.kpi(
        "ARR",
        json!([{"ts": "2026-01-24", "value": 100000}, {"ts": "2026-01-31", "value": 125000}]),
    );
    let empty =
        w.db.create_kpi(
            &w.admin,
            NewKpi::from_json(&json!({"name": "Churn"})).unwrap(),
        )
        .unwrap();
    let r = reply("kpi:arr");
    assert_eq!(r.content, "Summary for KPI 'ARR':");
    assert_eq!(r.cards[0]["kpi_id"], arr.as_str());
    assert_eq!(
        (
            r.cards[0]["delta_abs"].clone(),
            r.cards[0]["delta_pct"].clone()
        ),
        (json!(25000.0), json!(25.0))
    );
    assert_eq!(
        reply("KPI:churn").content,
        format!("No data points found for KPI '{}'", empty.kpi_id)
    );
    assert_eq!(
        reply("kpi: arr").content,
        "Found 2 KPI(s):",
        "a space after the colon is the list intent"
    );
    let list = reply("KPIs please");
    assert_eq!(list.cards[0]["name"], "ARR");
    assert_eq!(
        list.cards[0]["latest"],
        json!({"ts": "2026-01-31T00:00:00Z", "value": 125000.0})
    );
    assert_eq!(list.cards[1]["latest"], Value::Null);
}

#[test]
fn brief_intent_with_and_without_a_date() {
    let w = world();
    w.kpi(
        "MRR",
        json!([{"ts": "2026-01-24", "value": 1000}, {"ts": "2026-01-31", "value": 1250}]),
    );
    for date in ["2026-01-30", "2026-01-31"] {
        w.db.materialize_brief(
            &w.admin,
            date,
            MaterializeRequest::from_json(&json!({"date": date})).unwrap(),
        )
        .unwrap();
    }
    let r = w
        .chat(&w.admin, json!({"message": "brief"}))
        .unwrap()
        .assistant_message;
    assert_eq!(r.content, "Here's your brief for 2026-01-31:");
    assert_eq!(r.cards[0]["type"], "brief");
    assert_eq!(r.cards[0]["highlights"][0]["delta_pct"], 25.0);
    assert!(r.cards[0].get("alerts").is_none());
    let r = w
        .chat(&w.admin, json!({"message": "brief", "date": "2026-01-30"}))
        .unwrap()
        .assistant_message;
    assert_eq!(r.content, "Here's your brief for 2026-01-30:");
    assert!(
        w.chat(&w.admin, json!({"message": "brief", "date": "2026-1-30"}))
            .is_err(),
        "not a real date"
    );
}

#[test]
fn conversations_keep_messages_and_titles() {
    let w = world();
    let m = w.member("m@acme.io");
    let first = w
        .chat(
            &m,
            json!({"message": "What are my top performing KPIs this week?"}),
        )
        .unwrap();
    let again = w
        .chat(
            &m,
            json!({"message": "help", "conversation_id": first.conversation_id}),
        )
        .unwrap();
    assert_eq!(again.conversation_id, first.conversation_id);
    let c = w.db.conversation(&m, &first.conversation_id).unwrap();
    assert_eq!(
        c.title.as_deref(),
        Some("What are my top performing KPIs this wee")
    );
    let roles: Vec<&str> = c.messages.iter().map(|m| m.role.as_str()).collect();
    assert_eq!(roles, ["user", "assistant", "user", "assistant"]);
    assert_eq!(c.messages[0].created_at, c.messages[1].created_at);
    assert_eq!(c.messages[0].cards, json!([]));
    // Another user's conversation is not found, and nothing is charged for it.
    let other = w.member("o@acme.io");
    let before = w.ledger_len();
    let e = w
        .chat(
            &other,
            json!({"message": "hi", "conversation_id": first.conversation_id}),
        )
        .unwrap_err();
    assert_eq!(e.to_string(), "Conversation not found");
    assert_eq!(w.ledger_len(), before);
    let audit = w.db.audit_log(&w.admin, 10).unwrap();
    assert_eq!(
        audit
            .iter()
            .filter(|a| a.action == "cofounder.chat")
            .count(),
        2
    );
}

#[test]
fn failing_chats_persist_nothing_and_quota_comes_after_the_conversation() {
    let w = world();
    let limits = DailyLimits {
        assistant_query_daily_limit: 1,
        ..Default::default()
    };
    w.db.set_limits(&w.admin, limits).unwrap();
    let ok = w.chat(&w.admin, json!({"message": "hello"})).unwrap();
    let e = w.chat(&w.admin, json!({"message": "hello"})).unwrap_err();
    assert_eq!(e.detail()["activity_type"], "assistant_query");
    assert_eq!(
        w.db.conversations(&w.admin, None, None)
            .unwrap()
            .items
            .len(),
        1,
        "no conversation for the refused message"
    );
    assert_eq!(
        w.db.conversation(&w.admin, &ok.conversation_id)
            .unwrap()
            .messages
            .len(),
        2
    );
    let e = w
        .chat(
            &w.admin,
            json!({"message": "hello", "conversation_id": "nope"}),
        )
        .unwrap_err();
    assert_eq!(
        e.kind(),
        ErrorKind::QuotaExceeded,
        "20 §6.4: the quota checks come before the conversation lookup"
    );
    assert!(ChatRequest::from_json(&json!({"message": ""})).is_err());
    assert!(ChatRequest::from_json(&json!({"message": "x".repeat(4001)})).is_err());
    assert!(ChatRequest::from_json(&json!({"message": "x".repeat(4000)})).is_ok());
}

#[test]
fn runner_notifies_opted_in_users_in_creation_order_within_the_daily_limit() {
    let w = world();
    let m1 = w.member("m1@acme.io");
    let m2 = w.member("m2@acme.io");
    let m3 = w.member("m3@acme.io");
    w.db.set_notification_prefs(
        &m2,
        PrefsUpdate {
            daily_brief_enabled: false,
        },
    )
    .unwrap();
    let limits = DailyLimits {
        notification_enqueued_daily_limit: 2,
        ..Default::default()
    };
    w.db.set_limits(&w.admin, limits).unwrap();
    let r = w.run("run-1", json!({"date": "2026-01-31"})).unwrap();
    assert!(r.brief_created);
    assert_eq!(
        (
            r.notifications_inserted,
            r.notifications_ignored,
            r.notifications_suppressed_due_to_quota
        ),
        (2, 0, 1)
    );
    // Admin (created first) and m1 got it; m2 opted out; m3 was past the allowance.
    assert_eq!(
        w.db.outbox(&w.admin, &OutboxQuery::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert_eq!(
        w.db.outbox(&m1, &OutboxQuery::default())
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(
        w.db.outbox(&m2, &OutboxQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
    assert!(
        w.db.outbox(&m3, &OutboxQuery::default())
            .unwrap()
            .items
            .is_empty()
    );
    let n = &w.db.outbox(&m1, &OutboxQuery::default()).unwrap().items[0];
    assert_eq!(
        (
            n.payload["title"].clone(),
            n.payload["date"].clone(),
            n.status.as_str()
        ),
        (json!("Daily Brief"), json!("2026-01-31"), "queued")
    );
    // Replay returns the stored report; another body is a 409.
    assert_eq!(w.run("run-1", json!({"date": "2026-01-31"})).unwrap(), r);
    assert!(
        w.run("run-1", json!({"date": "2026-01-31", "top_n": 5}))
            .is_err()
    );
    // A new run for the date ignores the notified and reaches the rest once allowed.
    w.db.set_limits(&w.admin, DailyLimits::default()).unwrap();
    let r2 = w.run("run-2", json!({"date": "2026-01-31"})).unwrap();
    assert!(!r2.brief_created);
    assert_eq!(
        (
            r2.notifications_inserted,
            r2.notifications_ignored,
            r2.notifications_suppressed_due_to_quota
        ),
        (1, 2, 0)
    );
    let usage = w.db.daily_usage(&w.admin, None).unwrap();
    assert_eq!(usage.usage[3].units, 3);
    assert_eq!(usage.usage[2].units, 1, "one brief generated");
    // Chat shows the member's notifications; ack is owner-only.
    let reply = w
        .chat(&m1, json!({"message": "show my notifications"}))
        .unwrap()
        .assistant_message;
    assert_eq!(reply.content, "Found 1 notification(s) in your outbox:");
    assert_eq!(reply.cards[0]["title"], "Daily Brief");
    let id = reply.cards[0]["id"].as_u64().unwrap();
    assert_eq!(
        w.db.ack_notification(&m3, id).unwrap_err().to_string(),
        format!("Notification {id} not found")
    );
    assert_eq!(w.db.ack_notification(&m1, id).unwrap().status, "acked");
    assert_eq!(w.db.ack_notification(&m1, id).unwrap().status, "acked");
    let acked = OutboxQuery {
        status: Some("acked".into()),
        ..Default::default()
    };
    assert_eq!(w.db.outbox(&m1, &acked).unwrap().items.len(), 1);
    let on_date = OutboxQuery {
        date: Date::parse("2026-01-30"),
        ..Default::default()
    };
    assert!(w.db.outbox(&m1, &on_date).unwrap().items.is_empty());
}

#[test]
fn runner_allowance_is_exact_and_zero_weight_is_unlimited() {
    let w = world();
    for i in 0..4 {
        w.member(&format!("m{i}@acme.io"));
    }
    w.db.admin_create_plan(NewPlan {
        plan_id: "p".into(),
        name: "P".into(),
        included_credits: 6,
        overage_price_per_credit: Amount::ZERO,
        requests_per_minute: None,
    })
    .unwrap();
    let caps = bespin_core::billing::catalog::CAPABILITIES
        .iter()
        .map(|(k, _)| k.to_string())
        .collect();
    w.db.admin_set_plan_capabilities("p", caps).unwrap();
    w.db.admin_set_subscription(
        &w.t.tenant_id,
        SubscriptionUpdate {
            plan_id: "p".into(),
            status: "active".into(),
            period_start: None,
        },
    )
    .unwrap();
    // The brief costs 5 of the 6 credits; 1 credit left = 5 notifications at 0.2, no float loss.
    w.db.admin_update_metered_event(
        "notification_enqueued",
        MeteredEventPatch {
            credits_per_unit: Amount::parse("0.2"),
            ..Default::default()
        },
    )
    .unwrap();
    let r = w.run("k1", json!({"date": "2026-01-31"})).unwrap();
    assert_eq!(
        (
            r.notifications_inserted,
            r.notifications_suppressed_due_to_quota
        ),
        (5, 0)
    );
    assert_eq!(
        w.db.billing_usage(&w.admin, None).unwrap().credits.used,
        6.0
    );
    // With no credits left, a zero-weight notification is still not limited by credits.
    w.db.admin_update_metered_event(
        "notification_enqueued",
        MeteredEventPatch {
            credits_per_unit: Some(Amount::ZERO),
            ..Default::default()
        },
    )
    .unwrap();
    let r = w.run("k2", json!({"date": "2026-01-30"})).unwrap_err();
    assert_eq!(
        r.detail()["event_key"],
        "daily_brief_generated",
        "a new brief still needs credits"
    );
    w.db.materialize_brief(
        &w.admin,
        "x",
        MaterializeRequest::from_json(&json!({"date": "2026-01-31"})).unwrap(),
    )
    .unwrap();
    w.member("late@acme.io");
    let r = w.run("k3", json!({"date": "2026-01-31"})).unwrap();
    assert_eq!((r.notifications_inserted, r.notifications_ignored), (1, 5));
}
