//! Online backup: snapshots taken while writers run are consistent (they pass `check()`), hold
//! a prefix of the history, and a snapshot taken at rest is identical in content.
#![allow(clippy::unwrap_used)]

use bespin_core::chat::ChatRequest;
use bespin_core::tenancy::NewTenant;
use bespin_core::tools::InvokeRequest;
use bespin_core::{Bespin, Credentials, Principal};
use serde_json::json;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

fn tenant(db: &Bespin, n: usize) -> Principal {
    let t = db
        .create_tenant(NewTenant {
            name: format!("t{n}"),
            region: "eu".into(),
            admin_email: format!("a{n}@t.example"),
        })
        .unwrap();
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&t.admin.user_id),
        Some(&t.api_key),
    ))
    .unwrap()
}

#[test]
fn snapshots_under_concurrent_writes_are_consistent() {
    let dir = tempfile::tempdir().unwrap();
    let db = Bespin::open(dir.path().join("live.redb")).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let mut writers = Vec::new();
    for w in 0..4 {
        let db = db.clone();
        let stop = stop.clone();
        writers.push(std::thread::spawn(move || {
            let p = tenant(&db, w);
            let mut i = 0u64;
            while !stop.load(Ordering::Relaxed) {
                i += 1;
                if i.is_multiple_of(2) {
                    let req = InvokeRequest::from_json(
                        &json!({"tool_name": "echo", "payload": {"i": i}}),
                    )
                    .unwrap();
                    db.invoke_tool(&p, &format!("k{i}"), req).unwrap();
                } else {
                    db.chat(
                        &p,
                        ChatRequest {
                            message: format!("hello {i}"),
                            conversation_id: None,
                            date: None,
                        },
                    )
                    .unwrap();
                }
            }
            i
        }));
    }
    let mut snaps = Vec::new();
    for s in 0..3 {
        std::thread::sleep(std::time::Duration::from_millis(150));
        let out = dir.path().join(format!("snap{s}.redb"));
        db.backup(&out).unwrap();
        snaps.push(out);
    }
    stop.store(true, Ordering::Relaxed);
    let ops: u64 = writers.into_iter().map(|h| h.join().unwrap()).sum();
    assert!(ops > 10, "writers did work ({ops})");
    let live = db.check().unwrap();
    assert!(live.is_ok(), "{live}");
    let mut last = 0;
    for s in &snaps {
        let copy = Bespin::open(s).unwrap();
        let r = copy.check().unwrap();
        assert!(r.is_ok(), "snapshot {} is inconsistent:\n{r}", s.display());
        let events = r.rows_in("usage_events");
        assert!(events >= last && events <= live.rows_in("usage_events"));
        last = events;
    }
    // At rest, a snapshot holds exactly the live rows.
    let out = dir.path().join("rest.redb");
    let copied = db.backup(&out).unwrap();
    let rest = Bespin::open(&out).unwrap().check().unwrap();
    assert_eq!(rest.rows, live.rows);
    assert_eq!(copied, live.rows.values().sum::<u64>());
    // The target must be new.
    assert!(db.backup(&out).is_err());
}

#[test]
fn an_in_memory_database_can_be_backed_up_to_a_file() {
    let db = Bespin::open_in_memory().unwrap();
    tenant(&db, 1);
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("mem.redb");
    db.backup(&out).unwrap();
    let copy = Bespin::open(&out).unwrap();
    assert_eq!(copy.check().unwrap().rows_in("tenants"), 1);
    assert!(!dir.path().join("mem.redb.partial").exists());
}

/// A database restored from a backup: into a new schema of the PostgreSQL database of
/// `BESPIN_TEST_DB` when the suite runs there, else into a new file.
#[test]
fn a_backup_restores_into_a_new_database_and_never_into_a_used_one() {
    use bespin_core::coreos::tasks::NewTask;
    let dir = tempfile::tempdir().unwrap();
    let live = Bespin::open(dir.path().join("live.redb")).unwrap();
    let t = live
        .create_tenant(NewTenant {
            name: "Acme".into(),
            region: "eu".into(),
            admin_email: "a@acme.example".into(),
        })
        .unwrap();
    let creds = Credentials::new(Some(&t.tenant_id), Some(&t.admin.user_id), Some(&t.api_key));
    let me = live.authenticate(&creds).unwrap();
    let task = live
        .create_task(
            &me,
            NewTask::from_json(&json!({"title": "carried over"})).unwrap(),
        )
        .unwrap();
    // Reported usage: a chunk row (usage_chunks) and its order rows, carried as any rows.
    live.admin_create_metered_event(bespin_core::billing::catalog::NewMeteredEvent {
        event_key: "llm_tokens".into(),
        display_name: "LLM tokens".into(),
        description: None,
        unit_name: "token".into(),
        credits_per_unit: bespin_core::money::Amount::parse("0.001").unwrap(),
        list_price_per_credit: bespin_core::money::Amount::parse("0.02").unwrap(),
        billable: true,
        active: true,
        capability: None,
    })
    .unwrap();
    let batch: Vec<_> = ["u1", "u2", "u3"]
        .iter()
        .map(|id| {
            json!({"specversion": "1.0", "id": id, "source": "svc", "type": "llm_tokens",
                         "data": {"value": 5}})
        })
        .collect();
    let events = bespin_core::metering::ingest::UsageEvents::batch(&json!(batch)).unwrap();
    assert_eq!(live.record_usage_events(&me, events).unwrap().counts().0, 3);
    let export = |db: &Bespin| {
        db.admin_usage_export(bespin_core::metering::export::ExportQuery::from_start(1000))
            .unwrap()
    };
    let exported = export(&live);
    live.backup(dir.path().join("backup.redb")).unwrap();
    let backup = Bespin::open(dir.path().join("backup.redb")).unwrap();
    let source_rows: u64 = backup.check().unwrap().rows.values().sum();

    let target = bespin_core::test_database_url()
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| dir.path().join("restored.redb"));
    let copied = backup.copy_into(&target).unwrap();
    let restored = Bespin::open(&target).unwrap();
    let report = restored.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows.values().sum::<u64>(), source_rows);
    assert_eq!(report.rows_in("usage_chunks"), 1);
    assert_eq!(export(&restored), exported);
    assert!(
        copied >= source_rows,
        "{copied} rows copied for {source_rows}"
    );
    // The same key authenticates, the same sealed id reads the same record, and the
    // sequences go on from where they were (a new task is a new id).
    let me = restored.authenticate(&creds).unwrap();
    assert_eq!(
        restored.get_task(&me, &task.task_id).unwrap().title,
        "carried over"
    );
    let next = restored
        .create_task(&me, NewTask::from_json(&json!({"title": "new"})).unwrap())
        .unwrap();
    assert_ne!(next.task_id, task.task_id);

    // A second restore into the now-used database is refused and writes nothing.
    let before: u64 = restored.check().unwrap().rows.values().sum();
    let e = backup.copy_into(&target).unwrap_err();
    assert!(
        matches!(
            e,
            bespin_core::Error::Conflict(_) | bespin_core::Error::Storage(_)
        ),
        "{e:?}"
    );
    assert_eq!(restored.check().unwrap().rows.values().sum::<u64>(), before);
}
