#![allow(clippy::unwrap_used)]
use super::*;
use crate::check::testing::{caught, populated};
use crate::coreos::tasks::{NewTask, TaskPatch};
use crate::money::Amount;
use crate::testutil;
use crate::tools::InvokeRequest;
use serde_json::json;
use std::sync::Arc;
use std::time::Duration;

fn task(db: &Bespin, p: &Principal, title: &str) -> crate::coreos::tasks::Task {
    db.create_task(p, NewTask::from_json(&json!({ "title": title })).unwrap())
        .unwrap()
}

fn all(db: &Bespin, p: &Principal, after: Option<u64>) -> Vec<Event> {
    let q = EventQuery {
        after,
        ..EventQuery::default()
    };
    db.events(p, &q).unwrap().items
}

#[test]
fn a_change_emits_its_event_in_its_transaction_and_a_failure_or_replay_none() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let (other, _) = testutil::tenant(&db);
    let before = all(&db, &admin, None).len();
    let t = task(&db, &admin, "Ship it");
    let evs = all(&db, &admin, None);
    assert_eq!(evs.len(), before + 1);
    let e = evs.last().unwrap();
    assert_eq!(e.event_type, "task.created");
    assert_eq!(e.subject.id, t.task_id);
    assert_eq!(e.actor_user_id.as_deref(), Some(admin.user_id()));
    assert_eq!(e.data(), serde_json::to_value(&t).unwrap());
    // A refused change (a member may not edit an admin's task) writes no event.
    let patch = TaskPatch::from_json(&json!({"title": "x"})).unwrap();
    assert!(db.update_task(&member, &t.task_id, patch).is_err());
    // An idempotent replay writes none either.
    let inv = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {}})).unwrap();
    db.invoke_tool(&admin, "k1", inv.clone()).unwrap();
    db.invoke_tool(&admin, "k1", inv).unwrap();
    let evs = all(&db, &admin, Some(e.seq()));
    let types: Vec<&str> = evs.iter().map(|e| e.event_type.as_str()).collect();
    assert_eq!(types, ["tool.invoked"]);
    // Another tenant sees none of them; ids order the log.
    assert!(
        all(&db, &other, None)
            .iter()
            .all(|e| e.tenant_id == other.tenant_id())
    );
    assert!(evs[0].seq() > e.seq() && evs[0].id > e.id);
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn types_and_roles_decide_what_a_caller_sees() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    task(&db, &admin, "a");
    let inv = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {}})).unwrap();
    db.invoke_tool(&admin, "k1", inv).unwrap();
    let names = |p: &Principal| -> Vec<String> {
        all(&db, p, None)
            .into_iter()
            .map(|e| e.event_type)
            .collect()
    };
    assert!(names(&admin).contains(&"tool.invoked".to_owned()));
    assert!(names(&admin).contains(&"user.created".to_owned()));
    assert!(!names(&member).contains(&"tool.invoked".to_owned()));
    assert!(!names(&member).contains(&"user.created".to_owned()));
    assert!(names(&member).contains(&"task.created".to_owned()));
    let q = EventQuery::from_json(&json!({"types": "tool.invoked", "limit": "1"})).unwrap();
    let page = db.events(&admin, &q).unwrap();
    assert_eq!(page.items.len(), 1);
    assert_eq!(page.items[0].event_type, "tool.invoked");
    let bad = EventQuery::from_json(&json!({"types": "task.exploded"})).unwrap_err();
    assert_eq!(bad.kind(), crate::ErrorKind::Validation);
    assert!(EventQuery::from_json(&json!({"after": "evt_x"})).is_err());
}

#[test]
fn retention_purges_in_bounded_batches_and_a_stale_cursor_is_gone() {
    let (db, clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    task(&db, &admin, "old");
    task(&db, &admin, "old too");
    let old = all(&db, &admin, None);
    clock.advance(31 * Timestamp::DAY_MICROS);
    let fresh = task(&db, &admin, "new");
    assert_eq!(db.purge_events(1).unwrap(), 1);
    let total = old.len();
    let mut purged = 1;
    purged += db.purge_events(10_000).unwrap();
    assert_eq!(
        purged, total,
        "every event past the retention, and only those"
    );
    assert_eq!(db.purge_events(100).unwrap(), 0);
    let kept = all(&db, &admin, None);
    assert_eq!(kept.len(), 1);
    assert_eq!(kept[0].subject.id, fresh.task_id);
    // A cursor from before the purge is refused; the newest purged id is not.
    let q = |after| EventQuery {
        after: Some(after),
        ..EventQuery::default()
    };
    let stale = db.events(&admin, &q(old[0].seq())).unwrap_err();
    assert_eq!(stale, Error::CursorExpired);
    assert_eq!(
        db.events(&admin, &q(old[total - 1].seq()))
            .unwrap()
            .items
            .len(),
        1
    );
    assert!(db.check().unwrap().is_ok());
}

#[test]
fn a_subscription_follows_new_events_without_gap_or_duplicate() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let q = EventQuery {
        types: Some(vec![catalog::TASK_CREATED]),
        ..EventQuery::default()
    };
    let mut sub = db.subscribe(&member, q).unwrap();
    assert!(
        sub.next_timeout(Duration::from_millis(10))
            .unwrap()
            .is_none()
    );
    let writer = {
        let db = db.clone();
        let admin = admin.clone();
        std::thread::spawn(move || {
            for i in 0..20 {
                task(&db, &admin, &format!("t{i}"));
            }
        })
    };
    let mut got = Vec::new();
    while got.len() < 20 {
        let e = sub.next_timeout(Duration::from_secs(10)).unwrap().unwrap();
        got.push(e.data()["title"].as_str().unwrap().to_owned());
    }
    writer.join().unwrap();
    let want: Vec<String> = (0..20).map(|i| format!("t{i}")).collect();
    assert_eq!(got, want);
    // Closing from another thread ends the blocking iterator.
    let closer = sub.closer();
    let t = std::thread::spawn(move || sub.next());
    std::thread::sleep(Duration::from_millis(20));
    closer.close();
    assert!(t.join().unwrap().is_none());
}

#[test]
fn thresholds_fire_once_per_period_each() {
    let (db, _clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let cap = vec![("task_created".into(), "monthly".into(), Amount::from_int(5))];
    db.admin_set_plan_caps("starter", cap).unwrap();
    for i in 0..5 {
        task(&db, &admin, &format!("t{i}"));
    }
    let crossed: Vec<u64> = all(&db, &admin, None)
        .iter()
        .filter(|e| e.event_type == "usage.threshold_crossed")
        .map(|e| e.data()["threshold_percent"].as_u64().unwrap())
        .collect();
    assert_eq!(crossed, [80, 100]);
}

#[test]
fn the_checker_holds_the_log_to_the_catalogue_and_its_floor() {
    let (db, _, _) = populated();
    assert!(db.check().unwrap().is_ok());
    db.tamper(|tx| {
        let k = crate::check::testing::first_key(tx, &EVENTS);
        let k = EventKey::decode(&k).unwrap().into_owned();
        tx.put(&EVENT_FLOORS, &FloorKey::new(&k.tenant_id), &k.seq)
    });
    caught(&db, "events", "at or below its purge floor");
}

#[test]
fn the_catalogue_is_unique_and_dotted() {
    let mut names: Vec<&str> = catalog::ALL.iter().map(|t| t.name).collect();
    assert!(names.iter().all(|n| n.split('.').count() == 2));
    names.sort_unstable();
    names.dedup();
    assert_eq!(names.len(), catalog::ALL.len());
    assert_eq!(parse_id(&event_id(42)), Some(42));
}

#[test]
fn the_readme_lists_the_catalogue() {
    let readme = include_str!("../../../README.md");
    let table = catalog::markdown();
    assert!(
        readme.contains(&table),
        "README.md must hold the catalogue as events::catalog::markdown() prints it:\n{table}"
    );
}

#[test]
fn a_row_of_borrowed_parts_encodes_as_the_stored_event() {
    let rec = EventRec {
        event_type: "task.created".into(),
        occurred_at: crate::time::Timestamp(1_700_000_000_000_001),
        actor_user_id: Some("u1".into()),
        subject_type: "task".into(),
        subject_id: "t1".into(),
        owner: None,
        data: r#"{"title":"é \"quoted\" \u0001","n":1}"#.into(),
    };
    for owner in [None, Some("u2")] {
        let rec = EventRec {
            owner: owner.map(str::to_owned),
            ..rec.clone()
        };
        let row = EventRow {
            event_type: &rec.event_type,
            occurred_at: rec.occurred_at,
            actor_user_id: rec.actor_user_id.as_deref(),
            subject_type: &rec.subject_type,
            subject_id: &rec.subject_id,
            owner: rec.owner.as_deref(),
            data: crate::store::codec::StrBytes(rec.data.as_bytes()),
        };
        crate::store::codec::assert_encodes_as(&row, &rec);
    }
}

#[test]
fn an_events_data_is_the_api_rendering_of_the_record_byte_for_byte() {
    let (db, _clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let t = db
        .create_task(
            &admin,
            NewTask::from_json(&json!({"title": "Ship \"it\" — ünïcode", "description": "a\nb"}))
                .unwrap(),
        )
        .unwrap();
    let inv = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {}})).unwrap();
    let done = db.invoke_tool(&admin, "k-bytes", inv).unwrap();
    let evs = all(&db, &admin, None);
    let created = evs.iter().find(|e| e.event_type == "task.created").unwrap();
    assert_eq!(created.data.get(), serde_json::to_string(&t).unwrap());
    // `tool.invoked` renders what its JSON object did (keys sorted), from a struct now.
    let invoked = evs.iter().find(|e| e.event_type == "tool.invoked").unwrap();
    let request_id = done.into_value().unwrap().request_id;
    let object = json!({"tool_name": "echo", "request_id": request_id});
    assert_eq!(invoked.data.get(), serde_json::to_string(&object).unwrap());
}

#[test]
fn a_rendered_record_is_its_events_data_and_serde_jsons_rendering() {
    let (db, _clock) = testutil::db();
    let (admin, _) = testutil::tenant(&db);
    let req =
        NewTask::from_json(&json!({"title": "Ship \"it\" — ünïcode", "priority": "high"})).unwrap();
    let r = db
        .run(crate::Op::with(
            admin.clone(),
            req,
            crate::coreos::tasks::create_rendered,
        ))
        .unwrap();
    assert_eq!(r.json(), serde_json::to_vec(r.value()).unwrap());
    let evs = all(&db, &admin, None);
    let e = evs.iter().find(|e| e.event_type == "task.created").unwrap();
    assert_eq!(e.data.get().as_bytes(), r.json());
    assert_eq!(e.subject.id, r.value().task_id);
}

/// The seqs `sub` gives until it has nothing more now.
fn drain(sub: &mut Subscription) -> Vec<Arc<SharedEvent>> {
    let mut got = Vec::new();
    loop {
        let page = sub.fetch_shared().unwrap();
        if page.is_empty() && !sub.has_more() {
            return got;
        }
        got.extend(page);
    }
}

#[test]
fn subscribers_of_a_tenant_share_one_read_and_keep_their_own_filters() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let start = db.newest_event_seq().unwrap();
    let from = |p: &Principal| {
        let q = EventQuery {
            after: Some(start),
            ..EventQuery::default()
        };
        db.subscribe(p, q).unwrap()
    };
    let (mut a1, mut a2, mut m) = (from(&admin), from(&admin), from(&member));
    task(&db, &admin, "one");
    let inv = InvokeRequest::from_json(&json!({"tool_name": "echo", "payload": {}})).unwrap();
    db.invoke_tool(&admin, "k1", inv).unwrap();
    task(&db, &admin, "two");
    let first = drain(&mut a1);
    let second = drain(&mut a2);
    let mine = drain(&mut m);
    // Each got what a read of the log gives it…
    let seqs = |v: &[Arc<SharedEvent>]| v.iter().map(|e| e.seq()).collect::<Vec<_>>();
    let page_seqs = |p: &Principal| {
        all(&db, p, Some(start))
            .iter()
            .map(Event::seq)
            .collect::<Vec<_>>()
    };
    assert_eq!(seqs(&first), page_seqs(&admin));
    assert_eq!(seqs(&mine), page_seqs(&member));
    assert!(first.iter().any(|e| e.event_type == "tool.invoked"));
    assert!(mine.iter().all(|e| e.event_type == "task.created"));
    assert_eq!(mine.len(), 2);
    // …from the one read the first subscriber made: the very same events, JSON made once.
    for (x, y) in first.iter().zip(&second) {
        assert!(Arc::ptr_eq(x, y));
        assert!(std::ptr::eq(x.json(), y.json()));
    }
    assert!(mine.iter().all(|e| first.iter().any(|f| Arc::ptr_eq(e, f))));
    assert_eq!(first[0].json(), first[0].event().to_json());
    // A later commit is a new read, which the others share again.
    task(&db, &admin, "three");
    let (x, y) = (drain(&mut a1), drain(&mut a2));
    assert_eq!(x.len(), 1);
    assert!(Arc::ptr_eq(&x[0], &y[0]));
    assert_eq!(x[0].data()["title"], "three");
    assert_eq!(drain(&mut m).len(), 1);
}

#[test]
fn a_backlog_longer_than_a_shared_tail_comes_whole_and_in_order() {
    let (db, _clock) = testutil::db();
    let (admin, member) = testutil::tenant(&db);
    let start = db.newest_event_seq().unwrap();
    let q = EventQuery {
        after: Some(start),
        ..EventQuery::default()
    };
    let (mut a, mut m) = (
        db.subscribe(&admin, q.clone()).unwrap(),
        db.subscribe(&member, q).unwrap(),
    );
    // More rows than a tail holds, none of which the member may see (its first read finds
    // nothing, with rows left), then rows whose data passes a tail's bytes.
    let big = "x".repeat(100_000);
    db.write(|tx, ctx| {
        for i in 0..tail::TAIL_ROWS + 150 {
            emit(
                tx,
                ctx,
                &admin,
                catalog::TOOL_INVOKED,
                "t",
                &json!({ "i": i }),
            )?;
        }
        for i in 0..15 {
            emit(
                tx,
                ctx,
                &admin,
                catalog::TASK_CREATED,
                "t",
                &json!({ "i": i, "big": big }),
            )?;
        }
        Ok(())
    })
    .unwrap();
    let n = tail::TAIL_ROWS as u64 + 150;
    let got = |sub: &mut Subscription| -> Vec<u64> {
        drain(sub).iter().map(|e| e.seq() - start).collect()
    };
    assert_eq!(got(&mut m), (n + 1..=n + 15).collect::<Vec<_>>());
    assert_eq!(got(&mut a), (1..=n + 15).collect::<Vec<_>>());
}
