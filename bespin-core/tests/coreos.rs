//! Core Business OS through the public API: the action state machine, tenant isolation,
//! supersede chains, search, timeline paging, quota refusals and bad input.
#![allow(clippy::unwrap_used)]

use bespin_core::billing::catalog::NewPlan;
use bespin_core::billing::subscriptions::SubscriptionUpdate;
use bespin_core::coreos::actions::{
    ActionPatch, ActionQuery, ExecuteAction, NewAction, ReviewComment,
};
use bespin_core::coreos::decisions::{DecisionPatch, NewDecision};
use bespin_core::coreos::evidence::{EvidenceQuery, NewEvidence};
use bespin_core::coreos::meetings::{MeetingPatch, MeetingQuery, NewMeeting};
use bespin_core::coreos::memory::{FactQuery, FactValue, NewFact};
use bespin_core::coreos::search::SearchQuery;
use bespin_core::coreos::tasks::{NewTask, TaskPatch, TaskQuery};
use bespin_core::coreos::timeline::TimelineQuery;
use bespin_core::coreos::{EntityType, Paging};
use bespin_core::tenancy::{NewTenant, NewUser};
use bespin_core::{Bespin, Credentials, Error, ErrorKind, Principal};
use serde_json::{Value, json};

struct Tenant {
    id: String,
    admin: Principal,
    creator: Principal,
    other: Principal,
}

fn tenant(db: &Bespin, name: &str) -> Tenant {
    let t = db
        .create_tenant(NewTenant {
            name: name.into(),
            region: "eu".into(),
            admin_email: format!("admin@{name}.example"),
        })
        .unwrap();
    let login = |user: &str| {
        db.authenticate(&Credentials::new(
            Some(&t.tenant_id),
            Some(user),
            Some(&t.api_key),
        ))
        .unwrap()
    };
    let admin = login(&t.admin.user_id);
    let member = |n: &str| {
        let u = db
            .create_user(
                &admin,
                NewUser::from_json(&json!({"tenant_id": t.tenant_id, "email": format!("{n}@{name}.example"), "role": "member"}))
                    .unwrap(),
            )
            .unwrap();
        login(&u.user_id)
    };
    let creator = member("creator");
    let other = member("other");
    Tenant {
        id: t.tenant_id.clone(),
        admin,
        creator,
        other,
    }
}

fn setup() -> (Bespin, Tenant) {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .unwrap();
    let t = tenant(&db, "acme");
    (db, t)
}

fn action(db: &Bespin, p: &Principal, title: &str) -> String {
    db.create_action(
        p,
        NewAction::from_json(&json!({"title": title, "action_type": "outreach"})).unwrap(),
    )
    .unwrap()
    .action_id
}

fn no_comment() -> ReviewComment {
    ReviewComment::default()
}

fn exec_body() -> ExecuteAction {
    ExecuteAction::from_json(&json!({"execution_status": "succeeded", "result": {"sent": 1}}))
        .unwrap()
}

/// Number of audit rows, usage events and timeline events in the tenant (a write counter).
fn writes(db: &Bespin, t: &Tenant) -> (usize, usize, u64) {
    let audit = db.audit_log(&t.admin, 10_000).unwrap().len();
    let usage = db.billing_ledger(&t.admin, None, 1000).unwrap().items.len();
    let events = db
        .timeline(&t.admin, &TimelineQuery::default())
        .unwrap()
        .total;
    (audit, usage, events)
}

fn kind<T: std::fmt::Debug>(r: Result<T, Error>) -> ErrorKind {
    r.expect_err("expected an error").kind()
}

const STATES: [&str; 5] = ["proposed", "approved", "rejected", "cancelled", "executed"];

/// An action created by `t.creator`, driven by the admin into `state`.
fn action_in(db: &Bespin, t: &Tenant, state: &str) -> String {
    let id = action(db, &t.creator, "Reach out to ACME");
    match state {
        "proposed" => {}
        "approved" => {
            db.approve_action(&t.admin, &id, no_comment()).unwrap();
        }
        "rejected" => {
            db.reject_action(&t.admin, &id, no_comment()).unwrap();
        }
        "cancelled" => {
            db.cancel_action(&t.admin, &id, no_comment()).unwrap();
        }
        "executed" => {
            db.approve_action(&t.admin, &id, no_comment()).unwrap();
            db.execute_action(&t.admin, &id, exec_body()).unwrap();
        }
        _ => unreachable!(),
    }
    assert_eq!(db.get_action(&t.admin, &id).unwrap().action.status, state);
    id
}

#[derive(Debug, PartialEq)]
enum Outcome {
    To(&'static str),
    NoOp,
    Refused(ErrorKind),
}

fn expected(op: &str, state: &str, who: &str) -> Outcome {
    use Outcome::*;
    let admin = who == "admin";
    match op {
        "approve" | "reject" | "execute" if !admin => Refused(ErrorKind::Forbidden),
        "approve" => match state {
            "proposed" => To("approved"),
            "approved" => NoOp,
            _ => Refused(ErrorKind::Conflict),
        },
        "reject" => match state {
            "proposed" => To("rejected"),
            "rejected" => NoOp,
            _ => Refused(ErrorKind::Conflict),
        },
        "execute" => match state {
            "approved" => To("executed"),
            "executed" => NoOp,
            _ => Refused(ErrorKind::Conflict),
        },
        // 40 §1.7: already cancelled is a no-op for anyone, then the state (400), then who.
        "cancel" => match state {
            "cancelled" => NoOp,
            "proposed" if who == "other" => Refused(ErrorKind::Forbidden),
            "proposed" => To("cancelled"),
            _ => Refused(ErrorKind::BadRequest),
        },
        // 40 §1.6: who (403), then a non-admin on a non-proposed action (403); an admin's
        // cancel of a non-proposed action is ignored.
        "patch_cancel" if who == "other" => Refused(ErrorKind::Forbidden),
        "patch_cancel" => match state {
            "proposed" => To("cancelled"),
            _ if admin => NoOp,
            _ => Refused(ErrorKind::Forbidden),
        },
        _ => unreachable!(),
    }
}

#[test]
fn every_action_transition_for_every_caller() {
    let (db, t) = setup();
    for op in ["approve", "reject", "cancel", "execute", "patch_cancel"] {
        for state in STATES {
            for who in ["admin", "creator", "other"] {
                let id = action_in(&db, &t, state);
                let caller = match who {
                    "admin" => &t.admin,
                    "creator" => &t.creator,
                    _ => &t.other,
                };
                let before_row = db.get_action(&t.admin, &id).unwrap();
                let before = writes(&db, &t);
                let res = match op {
                    "approve" => db.approve_action(caller, &id, no_comment()),
                    "reject" => db.reject_action(caller, &id, no_comment()),
                    "cancel" => db.cancel_action(caller, &id, no_comment()),
                    "execute" => db
                        .execute_action(caller, &id, exec_body())
                        .map(|r| r.action),
                    _ => db.update_action(
                        caller,
                        &id,
                        ActionPatch::from_json(&json!({"status": "cancelled"})).unwrap(),
                    ),
                };
                let after = writes(&db, &t);
                let ctx = format!("{op} on {state} by {who}");
                match expected(op, state, who) {
                    Outcome::To(s) => {
                        let a = res.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                        assert_eq!(a.status, s, "{ctx}");
                        assert_eq!(
                            (after.0, after.1, after.2),
                            (before.0 + 1, before.1 + 1, before.2 + 1),
                            "{ctx}: one audit, usage and timeline row"
                        );
                        let d = db.get_action(&t.admin, &id).unwrap();
                        match s {
                            "approved" | "rejected" => {
                                let r = d.review.expect("review");
                                assert_eq!(r.decision, s);
                                assert_eq!(r.created_at, d.action.updated_at);
                            }
                            "executed" => {
                                let e = d.execution.expect("execution");
                                assert_eq!(e.execution_status, "succeeded");
                                assert_eq!(e.created_at, d.action.updated_at);
                            }
                            _ => {}
                        }
                    }
                    Outcome::NoOp => {
                        let a = res.unwrap_or_else(|e| panic!("{ctx}: {e:?}"));
                        assert_eq!(a.status, state, "{ctx}");
                        assert_eq!(a.updated_at, before_row.action.updated_at, "{ctx}");
                        assert_eq!(after, before, "{ctx}: a no-op writes nothing");
                    }
                    Outcome::Refused(k) => {
                        assert_eq!(kind(res), k, "{ctx}");
                        assert_eq!(after, before, "{ctx}: a refusal writes nothing");
                        assert_eq!(db.get_action(&t.admin, &id).unwrap(), before_row, "{ctx}");
                    }
                }
            }
        }
    }
}

#[test]
fn execute_replay_returns_the_original_execution() {
    let (db, t) = setup();
    let id = action_in(&db, &t, "approved");
    let first = db.execute_action(&t.admin, &id, exec_body()).unwrap();
    let replay = db
        .execute_action(
            &t.admin,
            &id,
            ExecuteAction::from_json(&json!({"execution_status": "failed"})).unwrap(),
        )
        .unwrap();
    assert_eq!(first, replay);
    assert_eq!(replay.execution.result, json!({"sent": 1}));
    let ev = db
        .timeline(
            &t.admin,
            &TimelineQuery {
                entity_id: Some(id.clone()),
                ..Default::default()
            },
        )
        .unwrap();
    assert_eq!(
        ev.items[0].summary,
        "Action executed: Reach out to ACME (succeeded)"
    );
    let meta = serde_json::to_value(&ev.items[0]).unwrap()["metadata"].clone();
    assert_eq!(
        meta,
        json!({"action_id": id, "execution_id": replay.execution.execution_id, "executed_by": t.admin.user_id(), "execution_status": "succeeded"})
    );
    assert_eq!(meta["execution_status"], "succeeded");
    assert_eq!(meta["executed_by"], json!(t.admin.user_id()));
}

#[test]
fn action_patch_rules() {
    let (db, t) = setup();
    let id = action(&db, &t.creator, "Old");
    // Other member: 403.
    let p = ActionPatch::from_json(&json!({"title": "New"})).unwrap();
    assert_eq!(
        kind(db.update_action(&t.other, &id, p.clone())),
        ErrorKind::Forbidden
    );
    // Creator edits; unchanged values are a no-op.
    let a = db.update_action(&t.creator, &id, p.clone()).unwrap();
    assert_eq!(a.title, "New");
    let before = writes(&db, &t);
    let again = db.update_action(&t.creator, &id, p).unwrap();
    assert_eq!(again.updated_at, a.updated_at);
    assert_eq!(writes(&db, &t), before);
    // Description can be cleared; assignee must be a user of the tenant.
    let a = db
        .update_action(
            &t.creator,
            &id,
            ActionPatch::from_json(&json!({"description": "x"})).unwrap(),
        )
        .unwrap();
    assert_eq!(a.description.as_deref(), Some("x"));
    let a = db
        .update_action(
            &t.creator,
            &id,
            ActionPatch::from_json(&json!({"description": null})).unwrap(),
        )
        .unwrap();
    assert_eq!(a.description, None);
    let bad = ActionPatch::from_json(&json!({"assigned_to_user_id": "nobody"})).unwrap();
    assert_eq!(
        kind(db.update_action(&t.admin, &id, bad)),
        ErrorKind::NotFound
    );
    // null title is 422.
    assert_eq!(
        kind(ActionPatch::from_json(&json!({"title": null}))),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(ActionPatch::from_json(&json!({"status": "approved"}))),
        ErrorKind::Validation
    );
}

#[test]
fn action_list_filters_and_paging() {
    let (db, t) = setup();
    for i in 0..5 {
        action(&db, &t.creator, &format!("c{i}"));
    }
    for i in 0..3 {
        action(&db, &t.other, &format!("o{i}"));
    }
    let id = action(&db, &t.other, "approved one");
    db.approve_action(&t.admin, &id, no_comment()).unwrap();
    let q = |v: Value| ActionQuery::from_json(&v).unwrap();
    let page = db.list_actions(&t.admin, &q(json!({}))).unwrap();
    assert_eq!(page.total, 8, "default is status=proposed");
    assert_eq!(page.items[0].title, "o2", "newest first");
    let page = db
        .list_actions(&t.admin, &q(json!({"status": "all"})))
        .unwrap();
    assert_eq!(page.total, 9);
    let page = db
        .list_actions(
            &t.admin,
            &q(json!({"created_by_user_id": t.creator.user_id(), "limit": "2", "offset": "1"})),
        )
        .unwrap();
    assert_eq!(
        (page.total, page.items.len(), page.limit, page.offset),
        (5, 2, 2, 1)
    );
    assert_eq!(page.items[0].title, "c3");
    assert_eq!(
        kind(ActionQuery::from_json(&json!({"limit": "0"}))),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(ActionQuery::from_json(&json!({"limit": "201"}))),
        ErrorKind::Validation
    );
}

#[test]
fn tasks_patch_complete_and_order() {
    let (db, t) = setup();
    let mk = |v: Value| {
        db.create_task(&t.creator, NewTask::from_json(&v).unwrap())
            .unwrap()
    };
    let a = mk(json!({"title": "later", "due_date": "2026-03-01"}));
    let b = mk(
        json!({"title": "sooner", "due_date": "2026-02-01", "assigned_to_user_id": t.other.user_id()}),
    );
    let c = mk(json!({"title": "undated"}));
    let page = db.list_tasks(&t.admin, &TaskQuery::default()).unwrap();
    let titles: Vec<_> = page.items.iter().map(|x| x.title.as_str()).collect();
    assert_eq!(titles, ["sooner", "later", "undated"]);
    let page = db
        .list_tasks(
            &t.admin,
            &TaskQuery::from_json(&json!({"due_before": "2026-02-01"})).unwrap(),
        )
        .unwrap();
    assert_eq!(page.total, 1);
    // Complete: the creator (not assignee) is refused; the assignee succeeds; repeat is a no-op.
    assert_eq!(
        kind(db.complete_task(&t.creator, &b.task_id)),
        ErrorKind::Forbidden
    );
    let done = db.complete_task(&t.other, &b.task_id).unwrap();
    assert_eq!(done.status, "done");
    let before = writes(&db, &t);
    db.complete_task(&t.other, &b.task_id).unwrap();
    assert_eq!(writes(&db, &t), before);
    // PATCH moves the due date (and the list order) and refuses null for required fields.
    let p = TaskPatch::from_json(&json!({"due_date": "2026-01-01", "priority": "high"})).unwrap();
    let a2 = db.update_task(&t.creator, &a.task_id, p).unwrap();
    assert_eq!(a2.due_date.as_deref(), Some("2026-01-01"));
    let page = db.list_tasks(&t.admin, &TaskQuery::default()).unwrap();
    assert_eq!(page.items[0].task_id, a.task_id);
    assert_eq!(
        kind(db.update_task(&t.other, &c.task_id, TaskPatch::default())),
        ErrorKind::Forbidden
    );
    for bad in [
        json!({"title": null}),
        json!({"priority": null}),
        json!({"status": null}),
        json!({"status": "blocked"}),
        json!({"due_date": "2026-02-30"}),
    ] {
        assert_eq!(
            kind(TaskPatch::from_json(&bad)),
            ErrorKind::Validation,
            "{bad}"
        );
    }
    let all = db.list_tasks(
        &t.admin,
        &TaskQuery::from_json(&json!({"status": "all"})).unwrap(),
    );
    assert_eq!(all.unwrap().total, 3);
}

#[test]
fn decisions_and_meetings() {
    let (db, t) = setup();
    let nd = |date: &str, title: &str| {
        NewDecision::from_json(&json!({"decision_date": date, "title": title, "decision": "Go"}))
            .unwrap()
    };
    assert_eq!(
        kind(db.create_decision(&t.creator, nd("2026-01-01", "x"))),
        ErrorKind::Forbidden
    );
    let d1 = db
        .create_decision(&t.admin, nd("2026-01-01", "old"))
        .unwrap();
    db.create_decision(&t.admin, nd("2026-02-01", "new"))
        .unwrap();
    let page = db.list_decisions(&t.creator, Paging::DEFAULT).unwrap();
    assert_eq!(page.items[0].title, "new");
    assert_eq!(page.total, 2);
    let u = db
        .update_decision(
            &t.admin,
            &d1.decision_id,
            DecisionPatch::from_json(&json!({"context": "why"})).unwrap(),
        )
        .unwrap();
    assert_eq!(u.context.as_deref(), Some("why"));
    assert_eq!(
        kind(DecisionPatch::from_json(&json!({"decision": null}))),
        ErrorKind::Validation
    );
    // Meetings: links are checked; date filters are real dates.
    let m = db
        .create_meeting(
            &t.creator,
            NewMeeting::from_json(&json!({"meeting_date": "2026-01-15", "title": "Sync", "notes": "talked", "linked_entity_type": "decision", "linked_entity_id": d1.decision_id})).unwrap(),
        )
        .unwrap();
    let missing = NewMeeting::from_json(&json!({"meeting_date": "2026-01-15", "title": "S", "notes": "n", "linked_entity_type": "task", "linked_entity_id": "nope"})).unwrap();
    assert_eq!(
        kind(db.create_meeting(&t.creator, missing)),
        ErrorKind::NotFound
    );
    let q = MeetingQuery::from_json(&json!({"from": "2026-01-15", "to": "2026-01-15"})).unwrap();
    assert_eq!(db.list_meetings(&t.other, &q).unwrap().total, 1);
    let q = MeetingQuery::from_json(&json!({"from": "2026-01-16"})).unwrap();
    assert_eq!(db.list_meetings(&t.other, &q).unwrap().total, 0);
    assert_eq!(
        kind(MeetingQuery::from_json(&json!({"to": "2026-13-01"}))),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(db.update_meeting(&t.other, &m.meeting_id, MeetingPatch::default())),
        ErrorKind::Forbidden
    );
    let cleared = db
        .update_meeting(
            &t.creator,
            &m.meeting_id,
            MeetingPatch::from_json(&json!({"linked_entity_type": null, "linked_entity_id": null}))
                .unwrap(),
        )
        .unwrap();
    assert_eq!(cleared.linked_entity_id, None);
}

#[test]
fn supersede_chain_of_three() {
    let (db, t) = setup();
    let f0 = db
        .create_memory_fact(
            &t.admin,
            NewFact::from_json(
                &json!({"category": "pricing", "fact_key": "Price.Base", "fact_value": "v0"}),
            )
            .unwrap(),
        )
        .unwrap();
    let dup = NewFact::from_json(
        &json!({"category": "icp", "fact_key": "Price.Base", "fact_value": "x"}),
    )
    .unwrap();
    assert_eq!(
        kind(db.create_memory_fact(&t.admin, dup)),
        ErrorKind::Conflict
    );
    let mut ids = vec![f0.fact_id.clone()];
    for i in 1..=3 {
        let prev = ids.last().unwrap().clone();
        let n = db
            .supersede_memory_fact(
                &t.admin,
                &prev,
                FactValue::supersede_from_json(&json!({"fact_value": format!("v{i}")})).unwrap(),
            )
            .unwrap();
        assert_eq!(n.supersedes_fact_id.as_deref(), Some(prev.as_str()));
        assert_eq!(n.status, "active");
        ids.push(n.fact_id);
    }
    for w in ids.windows(2) {
        let old = db.get_memory_fact(&t.creator, &w[0]).unwrap();
        assert_eq!(old.status, "superseded");
        assert_eq!(old.superseded_by_fact_id.as_deref(), Some(w[1].as_str()));
    }
    let v = FactValue::supersede_from_json(&json!({"fact_value": "again"})).unwrap();
    assert_eq!(
        kind(db.supersede_memory_fact(&t.admin, &ids[0], v)),
        ErrorKind::BadRequest,
        "40 §5.6: superseding a non-active fact is 400"
    );
    let active = db
        .list_memory_facts(&t.creator, &FactQuery::default())
        .unwrap();
    assert_eq!(active.total, 1);
    assert_eq!(active.items[0].fact_value, "v3");
    let all = db
        .list_memory_facts(
            &t.creator,
            &FactQuery::from_json(&json!({"status": "all"})).unwrap(),
        )
        .unwrap();
    assert_eq!(all.total, 4);
    // The superseded event sits under the new version.
    let rec = db.record(&t.creator, "memory_fact", &ids[3]).unwrap();
    assert_eq!(rec.timeline[0].event_type, "memory_fact_superseded");
    let old = db.record(&t.creator, "memory_fact", &ids[0]).unwrap();
    assert_eq!(old.timeline.len(), 1);
    // Search sees only the active version.
    let s = db
        .search(
            &t.creator,
            &SearchQuery::from_json(&json!({"q": "price"})).unwrap(),
        )
        .unwrap();
    assert_eq!(s.total, 1);
    assert_eq!(s.results[0].entity_id, ids[3]);
    assert_eq!(
        kind(FactValue::patch_from_json(&json!({"fact_value": null}))),
        ErrorKind::Validation
    );
    // 40 §5.5: PATCH does not look at the status; the edited old version stays superseded
    // and out of search.
    let p = FactValue::patch_from_json(&json!({"fact_value": "edited price"})).unwrap();
    let edited = db.update_memory_fact(&t.admin, &ids[1], p).unwrap();
    assert_eq!(
        (edited.status.as_str(), edited.fact_value.as_str()),
        ("superseded", "edited price")
    );
    let s = db
        .search(
            &t.creator,
            &SearchQuery::from_json(&json!({"q": "edited"})).unwrap(),
        )
        .unwrap();
    assert_eq!(s.total, 0);
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn search_ranks_title_first_then_newest_and_is_isolated() {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .unwrap();
    let t = tenant(&db, "acme");
    let u = tenant(&db, "umbrella");
    let body_old = db
        .create_task(
            &t.creator,
            NewTask::from_json(
                &json!({"title": "Quarterly plan", "description": "Revisit Pricing tiers"}),
            )
            .unwrap(),
        )
        .unwrap();
    let title_old = action(&db, &t.creator, "Pricing page copy");
    let title_new = db
        .create_decision(
            &t.admin,
            NewDecision::from_json(&json!({"decision_date": "2026-01-01", "title": "Raise PRICING", "decision": "Yes"})).unwrap(),
        )
        .unwrap();
    let body_new = db
        .create_meeting(
            &t.creator,
            NewMeeting::from_json(&json!({"meeting_date": "2026-01-02", "title": "Board", "notes": "We discussed the new pricing model in depth with the board members and agreed"})).unwrap(),
        )
        .unwrap();
    action(&db, &u.creator, "Pricing for umbrella");
    let s = db
        .search(
            &t.other,
            &SearchQuery::from_json(&json!({"q": "pric"})).unwrap(),
        )
        .unwrap();
    let ids: Vec<_> = s.results.iter().map(|r| r.entity_id.as_str()).collect();
    assert_eq!(
        ids,
        [
            title_new.decision_id.as_str(),
            title_old.as_str(),
            body_new.meeting_id.as_str(),
            body_old.task_id.as_str()
        ]
    );
    assert_eq!(s.total, 4);
    assert!(
        s.results[2]
            .snippet
            .as_deref()
            .unwrap()
            .contains("pricing model")
    );
    assert_eq!(
        s.results[3].snippet.as_deref(),
        Some("Revisit Pricing tiers")
    );
    // Word prefixes only; every word must match; limit cuts but total counts matches.
    let q = |v: Value| {
        db.search(&t.other, &SearchQuery::from_json(&v).unwrap())
            .unwrap()
    };
    assert_eq!(q(json!({"q": "ricing"})).total, 0);
    assert_eq!(q(json!({"q": "pricing board"})).total, 1);
    let lim = q(json!({"q": "pricing", "limit": "1"}));
    assert_eq!((lim.results.len(), lim.total), (1, 4));
    // The page is the head of the full ranking, in order.
    for n in 1..=4 {
        let page = q(json!({"q": "pric", "limit": n.to_string()}));
        let got: Vec<_> = page.results.iter().map(|r| r.entity_id.as_str()).collect();
        assert_eq!((got.as_slice(), page.total), (&ids[..n], 4));
    }
    assert_eq!(
        q(json!({"q": "pricing", "types": "tasks, meetings"})).total,
        2
    );
    assert_eq!(q(json!({"q": "%"})).total, 0);
    // Re-indexing on update: the old words disappear.
    db.update_task(
        &t.creator,
        &body_old.task_id,
        TaskPatch::from_json(&json!({"description": "nothing here"})).unwrap(),
    )
    .unwrap();
    assert_eq!(q(json!({"q": "pricing"})).total, 3);
    // Umbrella only sees its own.
    let s = db
        .search(
            &u.admin,
            &SearchQuery::from_json(&json!({"q": "PRICING"})).unwrap(),
        )
        .unwrap();
    assert_eq!(s.total, 1);
    // Search is metered (search_query) and not audited.
    let ledger = db.billing_ledger(&t.admin, None, 1000).unwrap();
    assert!(ledger.items.iter().any(|i| i.event_key == "search_query"));
    assert!(
        !db.audit_log(&t.admin, 1000)
            .unwrap()
            .iter()
            .any(|a| a.action.starts_with("search"))
    );
}

#[test]
fn search_skips_types_the_plan_lacks() {
    let (db, t) = setup();
    action(&db, &t.creator, "Pricing A");
    db.create_memory_fact(
        &t.admin,
        NewFact::from_json(
            &json!({"category": "pricing", "fact_key": "pricing.base", "fact_value": "9"}),
        )
        .unwrap(),
    )
    .unwrap();
    db.admin_create_plan(
        NewPlan::from_json(&json!({"plan_id": "searchonly", "name": "S", "included_credits": 100, "overage_price_per_credit": 0})).unwrap(),
    )
    .unwrap();
    db.admin_set_plan_capabilities("searchonly", vec!["search".into(), "action_center".into()])
        .unwrap();
    db.admin_set_subscription(
        &t.id,
        SubscriptionUpdate::from_json(&json!({"plan_id": "searchonly"})).unwrap(),
    )
    .unwrap();
    let s = db
        .search(
            &t.other,
            &SearchQuery::from_json(&json!({"q": "pricing"})).unwrap(),
        )
        .unwrap();
    assert_eq!(s.total, 1);
    assert_eq!(s.results[0].entity_type, "action");
}

#[test]
fn timeline_pages_without_gaps_or_repeats_while_events_arrive() {
    let (db, t) = setup();
    for i in 0..7 {
        action(&db, &t.creator, &format!("a{i}"));
    }
    let mut seen = Vec::new();
    let mut before: Option<String> = None;
    let mut extra = 0;
    loop {
        let page = db
            .timeline(
                &t.other,
                &TimelineQuery {
                    before: before.clone(),
                    paging: Some(Paging {
                        limit: 3,
                        offset: 0,
                    }),
                    ..Default::default()
                },
            )
            .unwrap();
        if page.items.is_empty() {
            break;
        }
        seen.extend(page.items.iter().map(|e| e.summary.clone()));
        before = Some(page.items.last().unwrap().event_id.clone());
        // New events arrive between page reads.
        action(&db, &t.creator, &format!("new{extra}"));
        extra += 1;
    }
    let expected: Vec<String> = (0..7)
        .rev()
        .map(|i| format!("Action proposed: a{i}"))
        .collect();
    assert_eq!(seen, expected);
    let all = db.timeline(&t.other, &TimelineQuery::default()).unwrap();
    assert_eq!(all.total, 7 + extra);
    let by_type = db
        .timeline(
            &t.other,
            &TimelineQuery::from_json(&json!({"entity_type": "task"})).unwrap(),
        )
        .unwrap();
    assert_eq!(by_type.total, 0);
    for w in all.items.windows(2) {
        assert!(w[0].created_at >= w[1].created_at);
    }
    assert!(all.items[0].created_at.ends_with('Z'));
}

#[test]
fn quota_refusal_writes_nothing() {
    let (db, t) = setup();
    let id = action(&db, &t.creator, "before");
    let fact = db
        .create_memory_fact(
            &t.admin,
            NewFact::from_json(&json!({"category": "icp", "fact_key": "k", "fact_value": "v"}))
                .unwrap(),
        )
        .unwrap();
    db.admin_create_plan(
        NewPlan::from_json(&json!({"plan_id": "tiny", "name": "Tiny", "included_credits": 0, "overage_price_per_credit": 0})).unwrap(),
    )
    .unwrap();
    let caps = [
        "action_center",
        "tasks",
        "decisions",
        "meetings",
        "memory",
        "timeline",
        "search",
    ];
    db.admin_set_plan_capabilities("tiny", caps.iter().map(|c| c.to_string()).collect())
        .unwrap();
    db.admin_set_subscription(
        &t.id,
        SubscriptionUpdate::from_json(&json!({"plan_id": "tiny"})).unwrap(),
    )
    .unwrap();
    let before = writes(&db, &t);
    let q = |r: Result<(), Error>| assert_eq!(kind(r), ErrorKind::QuotaExceeded);
    q(db.create_action(
        &t.creator,
        NewAction::from_json(&json!({"title": "x", "action_type": "y"})).unwrap(),
    )
    .map(|_| ()));
    q(db.approve_action(&t.admin, &id, no_comment()).map(|_| ()));
    q(db.cancel_action(&t.creator, &id, no_comment()).map(|_| ()));
    q(db.create_task(
        &t.creator,
        NewTask::from_json(&json!({"title": "x"})).unwrap(),
    )
    .map(|_| ()));
    q(db.supersede_memory_fact(
        &t.admin,
        &fact.fact_id,
        FactValue::supersede_from_json(&json!({"fact_value": "w"})).unwrap(),
    )
    .map(|_| ()));
    q(db.create_evidence(&t.admin, NewEvidence::from_json(&json!({"entity_type": "action", "entity_id": id, "source_type": "kpi", "source_ref": {}})).unwrap()).map(|_| ()));
    q(db.search(
        &t.other,
        &SearchQuery::from_json(&json!({"q": "x"})).unwrap(),
    )
    .map(|_| ()));
    // 40 §5.2: the quota check runs before the duplicate-key check (429 before 409).
    let dup = NewFact::from_json(&json!({"category": "icp", "fact_key": "k", "fact_value": "v"}))
        .unwrap();
    assert_eq!(
        kind(db.create_memory_fact(&t.admin, dup)),
        ErrorKind::QuotaExceeded
    );
    assert_eq!(writes(&db, &t), before);
    let all = ActionQuery::from_json(&json!({"status": "all"})).unwrap();
    assert_eq!(db.list_actions(&t.admin, &all).unwrap().total, 1);
    assert_eq!(
        db.get_action(&t.admin, &id).unwrap().action.status,
        "proposed"
    );
    assert_eq!(
        db.get_memory_fact(&t.admin, &fact.fact_id).unwrap().status,
        "active"
    );
    assert_eq!(
        db.list_tasks(&t.admin, &TaskQuery::default())
            .unwrap()
            .total,
        0
    );
}

#[test]
fn cross_tenant_access_is_not_found() {
    let db = Bespin::open_for_test(
        std::sync::Arc::new(bespin_core::time::SystemClock),
        Default::default(),
    )
    .unwrap();
    let t = tenant(&db, "acme");
    let u = tenant(&db, "umbrella");
    let a = action(&db, &t.creator, "secret");
    let task = db
        .create_task(
            &t.creator,
            NewTask::from_json(&json!({"title": "s"})).unwrap(),
        )
        .unwrap()
        .task_id;
    let d = db
        .create_decision(
            &t.admin,
            NewDecision::from_json(
                &json!({"decision_date": "2026-01-01", "title": "s", "decision": "s"}),
            )
            .unwrap(),
        )
        .unwrap()
        .decision_id;
    let m = db
        .create_meeting(
            &t.creator,
            NewMeeting::from_json(
                &json!({"meeting_date": "2026-01-01", "title": "s", "notes": "s"}),
            )
            .unwrap(),
        )
        .unwrap()
        .meeting_id;
    let f = db
        .create_memory_fact(
            &t.admin,
            NewFact::from_json(&json!({"category": "icp", "fact_key": "s", "fact_value": "s"}))
                .unwrap(),
        )
        .unwrap()
        .fact_id;
    let nf = ErrorKind::NotFound;
    let x = &u.admin;
    assert_eq!(kind(db.get_action(x, &a)), nf);
    assert_eq!(kind(db.update_action(x, &a, ActionPatch::default())), nf);
    assert_eq!(kind(db.cancel_action(x, &a, no_comment())), nf);
    assert_eq!(kind(db.approve_action(x, &a, no_comment())), nf);
    // 40 §1.8: the admin check comes before the lookup.
    assert_eq!(
        kind(db.approve_action(&u.other, &a, no_comment())),
        ErrorKind::Forbidden
    );
    assert_eq!(kind(db.reject_action(x, &a, no_comment())), nf);
    assert_eq!(kind(db.execute_action(x, &a, exec_body())), nf);
    assert_eq!(kind(db.get_task(x, &task)), nf);
    assert_eq!(kind(db.update_task(x, &task, TaskPatch::default())), nf);
    assert_eq!(kind(db.complete_task(x, &task)), nf);
    assert_eq!(kind(db.get_decision(x, &d)), nf);
    assert_eq!(
        kind(db.update_decision(x, &d, DecisionPatch::default())),
        nf
    );
    assert_eq!(kind(db.get_meeting(x, &m)), nf);
    assert_eq!(kind(db.update_meeting(x, &m, MeetingPatch::default())), nf);
    assert_eq!(kind(db.get_memory_fact(x, &f)), nf);
    let fv = || FactValue::supersede_from_json(&json!({"fact_value": "z"})).unwrap();
    assert_eq!(kind(db.update_memory_fact(x, &f, fv())), nf);
    assert_eq!(kind(db.supersede_memory_fact(x, &f, fv())), nf);
    for (et, id) in [
        ("action", &a),
        ("task", &task),
        ("decision", &d),
        ("meeting", &m),
        ("memory_fact", &f),
    ] {
        assert_eq!(kind(db.record(x, et, id)), nf, "{et}");
        if et != "meeting" {
            let ev = NewEvidence::from_json(&json!({"entity_type": et, "entity_id": id, "source_type": "manual", "source_ref": {}})).unwrap();
            assert_eq!(kind(db.create_evidence(x, ev)), nf, "{et}");
            let q = EvidenceQuery::from_json(&json!({"entity_type": et, "entity_id": id})).unwrap();
            assert_eq!(kind(db.list_evidence(x, &q)), nf, "{et}");
        }
    }
    // Another tenant's user cannot be an assignee, nor its records a link.
    let assign =
        NewTask::from_json(&json!({"title": "x", "assigned_to_user_id": t.creator.user_id()}))
            .unwrap();
    assert_eq!(kind(db.create_task(x, assign)), nf);
    let link = NewTask::from_json(
        &json!({"title": "x", "linked_entity_type": "decision", "linked_entity_id": d}),
    )
    .unwrap();
    assert_eq!(kind(db.create_task(x, link)), nf);
    // Lists and the timeline never show the other tenant's rows.
    let all = ActionQuery::from_json(&json!({"status": "all"})).unwrap();
    assert_eq!(db.list_actions(x, &all).unwrap().total, 0);
    assert_eq!(db.timeline(x, &TimelineQuery::default()).unwrap().total, 0);
    assert_eq!(db.list_decisions(x, Paging::DEFAULT).unwrap().total, 0);
}

#[test]
fn evidence_and_record_explorer() {
    let (db, t) = setup();
    let a = action(&db, &t.creator, "A");
    let d = db
        .create_decision(
            &t.admin,
            NewDecision::from_json(
                &json!({"decision_date": "2026-01-01", "title": "D", "decision": "d"}),
            )
            .unwrap(),
        )
        .unwrap()
        .decision_id;
    let ev = |et: &str, id: &str| {
        NewEvidence::from_json(&json!({"entity_type": et, "entity_id": id, "source_type": "kpi", "source_ref": {"table": "kpi_points", "id": "1"}, "snippet": "s"})).unwrap()
    };
    assert_eq!(
        kind(db.create_evidence(&t.other, ev("action", &a))),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(db.create_evidence(&t.creator, ev("decision", &d))),
        ErrorKind::Forbidden
    );
    assert_eq!(
        kind(db.create_evidence(&t.admin, ev("decision", "missing"))),
        ErrorKind::NotFound
    );
    assert_eq!(
        kind(db.create_evidence(&t.admin, ev("task", "missing"))),
        ErrorKind::NotFound
    );
    let link = db.create_evidence(&t.creator, ev("action", &a)).unwrap();
    db.create_evidence(&t.admin, ev("decision", &d)).unwrap();
    assert_eq!(link.source_ref, json!({"table": "kpi_points", "id": "1"}));
    let list = db
        .list_evidence(
            &t.other,
            &EvidenceQuery::from_json(&json!({"entity_type": "action", "entity_id": a})).unwrap(),
        )
        .unwrap();
    assert_eq!(list.total, 1);
    let rec = db.record(&t.other, "action", &a).unwrap();
    let v = serde_json::to_value(&rec).unwrap();
    assert_eq!(v["entity"]["action_id"], json!(a));
    assert!(v["entity"].get("review").is_none());
    assert_eq!(rec.evidence.len(), 1);
    let types: Vec<_> = rec.timeline.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["evidence_link_created", "action_created"]);
    assert_eq!(
        kind(db.record(&t.other, "widget", &a)),
        ErrorKind::BadRequest
    );
    assert_eq!(
        kind(NewEvidence::from_json(
            &json!({"entity_type": "meeting", "entity_id": "x", "source_type": "kpi", "source_ref": {}})
        )),
        ErrorKind::Validation
    );
    assert_eq!(
        EntityType::parse("memory_fact"),
        Some(EntityType::MemoryFact)
    );
}

#[test]
fn bad_input_is_refused_and_writes_nothing() {
    let (db, t) = setup();
    let before = writes(&db, &t);
    let long = "x".repeat(256);
    for bad in [
        json!({"title": long, "action_type": "a"}),
        json!({"title": "t", "action_type": "a", "source": "ai_recommendation"}),
        json!({"title": "t", "action_type": "a", "payload": null}),
        json!({"title": "t", "action_type": "a", "payload": [1]}),
        json!({"title": "", "action_type": "a"}),
        json!({"action_type": "a"}),
    ] {
        assert_eq!(
            kind(NewAction::from_json(&bad)),
            ErrorKind::Validation,
            "{bad}"
        );
    }
    for bad in [
        json!({"title": "t", "due_date": "2024-13-99"}),
        json!({"title": "t", "due_date": "2026-02-29"}),
        json!({"title": "t", "priority": "urgent"}),
        json!({"title": "t", "linked_entity_type": "task"}),
        json!({"title": "t", "linked_entity_type": "widget", "linked_entity_id": "1"}),
    ] {
        assert_eq!(
            kind(NewTask::from_json(&bad)),
            ErrorKind::Validation,
            "{bad}"
        );
    }
    assert_eq!(
        kind(NewDecision::from_json(
            &json!({"decision_date": "2026-02-30", "title": "t", "decision": "d"})
        )),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(NewFact::from_json(
            &json!({"category": "misc", "fact_key": "k", "fact_value": "v"})
        )),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(ExecuteAction::from_json(
            &json!({"execution_status": "done"})
        )),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(SearchQuery::from_json(&json!({"q": ""}))),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(SearchQuery::from_json(&json!({}))),
        ErrorKind::Validation
    );
    assert_eq!(
        kind(MeetingPatch::from_json(&json!({"notes": null}))),
        ErrorKind::Validation
    );
    // Valid shape but a reference that does not exist: 404, nothing written.
    let ev = NewEvidence::from_json(&json!({"entity_type": "memory_fact", "entity_id": "nope", "source_type": "manual", "source_ref": {}})).unwrap();
    assert_eq!(kind(db.create_evidence(&t.admin, ev)), ErrorKind::NotFound);
    let na = NewAction::from_json(
        &json!({"title": "t", "action_type": "a", "assigned_to_user_id": "ghost"}),
    )
    .unwrap();
    assert_eq!(kind(db.create_action(&t.admin, na)), ErrorKind::NotFound);
    assert_eq!(writes(&db, &t), before);
}

#[test]
fn usage_and_audit_follow_the_catalogue() {
    let (db, t) = setup();
    let a = action(&db, &t.creator, "x");
    db.approve_action(&t.admin, &a, no_comment()).unwrap();
    db.execute_action(&t.admin, &a, exec_body()).unwrap();
    let audit = db.audit_log(&t.admin, 100).unwrap();
    let actions: Vec<_> = audit.iter().map(|r| r.action.as_str()).collect();
    assert_eq!(
        actions,
        ["actions.execute", "actions.approve", "actions.create"]
    );
    let ledger = db.billing_ledger(&t.admin, None, 100).unwrap();
    let keys: Vec<_> = ledger.items.iter().map(|i| i.event_key.as_str()).collect();
    assert_eq!(
        keys,
        ["action_executed", "action_approved", "action_created"]
    );
    for (row, usage) in audit.iter().zip(&ledger.items) {
        assert_eq!(row.request_id, usage.request_id);
        assert_eq!(usage.tool_name.as_deref(), Some("action_center"));
        assert_eq!(row.tool_name.as_deref(), Some("action_center"));
    }
}

#[test]
fn creates_in_one_batch_read_nothing_of_their_new_records() {
    use bespin_core::coreos::{actions, decisions, meetings, tasks};
    let (db, t) = setup();
    let one = |i: usize, tx: &mut bespin_core::WriteTx, ctx: &bespin_core::Ctx| {
        let title = format!("Record {i}");
        tasks::create(
            tx,
            ctx,
            &t.creator,
            NewTask::from_json(&json!({"title": title}))?,
        )?;
        let a = json!({"title": title, "action_type": "outreach"});
        actions::create(tx, ctx, &t.creator, NewAction::from_json(&a)?)?;
        let d = json!({"decision_date": "2026-01-15", "title": title, "decision": "Go"});
        decisions::create(tx, ctx, &t.admin, NewDecision::from_json(&d)?)?;
        let m = json!({"meeting_date": "2026-01-15", "title": title, "notes": "n"});
        meetings::create(tx, ctx, &t.creator, NewMeeting::from_json(&m)?)?;
        Ok(())
    };
    // A first batch prepares the statements and reads the configuration, as a warm server has.
    db.transaction(|tx, ctx| one(0, tx, ctx)).unwrap();
    let before = db.round_trips();
    db.transaction(|tx, ctx| (1..=20).try_for_each(|i| one(i, tx, ctx)))
        .unwrap();
    // On PostgreSQL: the batch's start, the pages of its first scans and its commit; reading
    // the version each new record replaces was a round trip per create (80 here).
    if let Some(trips) = db.round_trips().zip(before).map(|(a, b)| a - b) {
        assert!(
            trips <= 10,
            "{trips} round trips for 80 creates in one batch"
        );
    }
    // Each record is stored and indexed: a search counts all 21 of each kind.
    let found = db
        .search(
            &t.admin,
            &SearchQuery::from_json(&json!({"q": "record"})).unwrap(),
        )
        .unwrap();
    assert_eq!(found.total, 84);
}
