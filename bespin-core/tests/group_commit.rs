//! Group commit: concurrent operations share commits, each acknowledged operation is durable,
//! and a failing (or panicking) operation rolls back only its own changes.
#![allow(clippy::unwrap_used)]

use bespin_core::metering::Meter;
use bespin_core::tenancy::NewTenant;
use bespin_core::{Bespin, Credentials, Error, Op, Principal};
use std::sync::Arc;

fn setup(db: &Bespin) -> Principal {
    let t = db
        .create_tenant(NewTenant {
            name: "G".into(),
            region: "eu".into(),
            admin_email: "g@c.io".into(),
        })
        .unwrap();
    db.admin_update_plan(
        "starter",
        bespin_core::billing::catalog::PlanPatch {
            included_credits: Some(1_000_000),
            ..Default::default()
        },
    )
    .unwrap();
    db.authenticate(&Credentials::new(
        Some(&t.tenant_id),
        Some(&t.admin.user_id),
        Some(&t.api_key),
    ))
    .unwrap()
}

#[test]
fn failures_inside_a_shared_batch_roll_back_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = Bespin::open(dir.path().join("g.redb")).unwrap();
    let p = Arc::new(setup(&db));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (db, p) = (db.clone(), p.clone());
            std::thread::spawn(move || {
                let mut ok = 0;
                for i in 0..40 {
                    let fail = (t + i) % 3 == 0;
                    let panic = (t + i) % 7 == 0;
                    let r: bespin_core::Result<()> = db.transaction(|tx, ctx| {
                        Meter::one("search_query", "search")
                            .check_in(tx, ctx, p.tenant_id())?
                            .record(tx, ctx, &p, "r")?;
                        if panic {
                            panic!("an operation that panics after writing");
                        }
                        if fail {
                            Err(Error::Conflict("fails after writing".into()))
                        } else {
                            Ok(())
                        }
                    });
                    if r.is_ok() {
                        ok += 1;
                    }
                }
                ok
            })
        })
        .collect();
    let succeeded: usize = threads.into_iter().map(|h| h.join().unwrap()).sum();
    let expected = (0..8)
        .flat_map(|t| (0..40).map(move |i| (t, i)))
        .filter(|(t, i)| (t + i) % 3 != 0 && (t + i) % 7 != 0)
        .count();
    assert_eq!(succeeded, expected);
    let ledger = db.billing_ledger(&p, None, 1000).unwrap();
    assert_eq!(
        ledger.items.len(),
        expected,
        "exactly the acknowledged operations are stored"
    );
    let usage = db.billing_usage(&p, None).unwrap();
    assert_eq!(
        usage.breakdown[0].raw_units, expected as f64,
        "rollups agree with the events"
    );
    let stats = db.commit_stats();
    assert!(stats.operations >= expected as u64);
    // Everything acknowledged survives a reopen.
    drop(db);
    let db = Bespin::open(dir.path().join("g.redb")).unwrap();
    assert_eq!(
        db.billing_ledger(&p, None, 1000).unwrap().items.len(),
        expected
    );
}

#[test]
fn concurrent_writers_share_commits() {
    let dir = tempfile::tempdir().unwrap();
    let db = Bespin::open(dir.path().join("g.redb")).unwrap();
    let p = Arc::new(setup(&db));
    let before = db.commit_stats();
    let threads: Vec<_> = (0..16)
        .map(|_| {
            let (db, p) = (db.clone(), p.clone());
            std::thread::spawn(move || {
                for _ in 0..25 {
                    db.record_usage(&p, None, Meter::one("search_query", "search"))
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    let after = db.commit_stats();
    let ops = after.operations - before.operations;
    let commits = after.commits - before.commits;
    assert_eq!(ops, 400);
    assert!(commits <= ops, "{commits} commits for {ops} operations");
    assert_eq!(db.billing_ledger(&p, None, 1000).unwrap().items.len(), 400);
}

/// Submits `n` metered operations to the writer thread; operation `i` fails after writing
/// when `fail(i)`. For each, a thread waiting on its outcome reports (i, whether the write was
/// acknowledged, whether its own write — its usage event, by its request id — was visible to
/// a fresh reader when it was). Looking for its own row rather than counting rows matters:
/// other batches may commit between a failed job's answer and the look.
fn queue_jobs(
    db: &Bespin,
    p: &Arc<Principal>,
    n: usize,
    fail: fn(usize) -> bool,
    out: &std::sync::mpsc::Sender<(usize, bool, bool)>,
) {
    // Request ids unique across calls: a job must not find another call's job of the same
    // index committed before it ran.
    static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    for i in 0..n {
        let (db2, p2) = (db.clone(), p.clone());
        let (seen_tx, seen_rx) = std::sync::mpsc::channel();
        let request = format!(
            "r{}",
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let id = request.clone();
        let pending = db.submit(Op::from_fn(move |tx, ctx| {
            // Its row is nowhere before it runs.
            let seen = mine(&db2, &p2, &id);
            seen_tx.send(seen).unwrap();
            Meter::one("search_query", "search")
                .check_in(tx, ctx, p2.tenant_id())?
                .record(tx, ctx, &p2, &id)?;
            if fail(i) {
                Err(Error::Conflict("fails after writing".into()))
            } else {
                Ok(())
            }
        }));
        let (db2, p, out) = (db.clone(), p.clone(), out.clone());
        std::thread::spawn(move || {
            let acked = pending.wait().is_ok();
            let visible = mine(&db2, &p, &request);
            assert!(!seen_rx.recv().unwrap(), "job {i} seen before it ran");
            out.send((i, acked, visible)).unwrap();
        });
    }
}

/// Whether the ledger holds a usage event of `request`.
fn mine(db: &Bespin, p: &Principal, request: &str) -> bool {
    let ledger = db.billing_ledger(p, None, 100_000).unwrap();
    ledger.items.iter().any(|e| e.request_id == request)
}

#[test]
fn writer_thread_batches_jobs_and_answers_only_after_the_commit() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("w.redb");
    let db = Bespin::open(&path).unwrap();
    let p = Arc::new(setup(&db));
    // Hold the writer on a first job until every other job is queued, so they share a batch
    // (it then fails, adding no operation of its own).
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let held = db.submit(Op::from_fn(move |_, _| -> bespin_core::Result<()> {
        wait.recv().unwrap();
        Err(Error::Conflict("held".into()))
    }));
    let before = db.commit_stats();
    let (out, results) = std::sync::mpsc::channel();
    queue_jobs(&db, &p, 200, |i| i % 3 == 0, &out);
    // A job that panics does not stop the writer; its caller sees its reply channel dropped.
    let (panicked, never) = std::sync::mpsc::channel::<()>();
    let panicking = db.submit(Op::from_fn(move |_, _| -> bespin_core::Result<()> {
        let _keep = panicked;
        panic!("an operation that panics")
    }));
    queue_jobs(&db, &p, 10, |_| false, &out);
    go.send(()).unwrap();
    drop(out);
    let mut got: Vec<(usize, bool, bool)> = results.iter().collect();
    assert!(never.recv().is_err(), "the panicking job never answers");
    assert!(
        panicking.wait().is_err(),
        "a panicking operation fails alone"
    );
    assert!(held.wait().is_err());
    got.sort_unstable();
    assert_eq!(got.len(), 210);
    let acked = got.iter().filter(|(_, a, _)| *a).count();
    assert_eq!(acked, 200 - 67 + 10);
    for (i, a, visible) in &got {
        assert_eq!(
            *a, *visible,
            "job {i}: answered before its write was committed"
        );
    }
    let after = db.commit_stats();
    assert_eq!(after.operations - before.operations, acked as u64);
    assert!(
        after.commits - before.commits <= 3,
        "{} commits for {acked} queued operations",
        after.commits - before.commits
    );
    // Dropping the database stops the writer thread and closes the file: it reopens at once
    // with every acknowledged write.
    drop(db);
    let db = Bespin::open(&path).unwrap();
    assert_eq!(
        db.billing_ledger(&p, None, 1000).unwrap().items.len(),
        acked
    );
}

#[test]
fn writer_thread_and_other_threads_share_the_database() {
    let dir = tempfile::tempdir().unwrap();
    let db = Bespin::open(dir.path().join("w.redb")).unwrap();
    let p = Arc::new(setup(&db));
    let (out, results) = std::sync::mpsc::channel();
    let others: Vec<_> = (0..4)
        .map(|_| {
            let (db, p) = (db.clone(), p.clone());
            std::thread::spawn(move || {
                for _ in 0..50 {
                    db.record_usage(&p, None, Meter::one("search_query", "search"))
                        .unwrap();
                }
            })
        })
        .collect();
    for _ in 0..4 {
        queue_jobs(&db, &p, 50, |_| false, &out);
    }
    drop(out);
    for t in others {
        t.join().unwrap();
    }
    assert_eq!(results.iter().filter(|(_, a, _)| *a).count(), 200);
    assert_eq!(db.billing_ledger(&p, None, 1000).unwrap().items.len(), 400);
}

#[test]
fn readers_sharing_a_snapshot_see_every_acknowledged_write() {
    // Readers share one snapshot until a commit replaces it. Hammer that: reader threads keep
    // the shared snapshot warm while writers create tasks; each writer must read its task back
    // (and a reader thread must find it) as soon as its create returned.
    let dir = tempfile::tempdir().unwrap();
    let db = Bespin::open(dir.path().join("s.redb")).unwrap();
    let p = Arc::new(setup(&db));
    let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let created = Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let readers: Vec<_> = (0..2)
        .map(|_| {
            let (db, p, stop, created) = (db.clone(), p.clone(), stop.clone(), created.clone());
            std::thread::spawn(move || {
                let mut checked = 0usize;
                while !stop.load(std::sync::atomic::Ordering::SeqCst) {
                    let ids: Vec<String> = created.lock().unwrap().clone();
                    for id in ids.iter().rev().take(4) {
                        db.get_task(&p, id).unwrap();
                        checked += 1;
                    }
                }
                checked
            })
        })
        .collect();
    let writers: Vec<_> = (0..4)
        .map(|w| {
            let (db, p, created) = (db.clone(), p.clone(), created.clone());
            std::thread::spawn(move || {
                for i in 0..50 {
                    let req = bespin_core::coreos::tasks::NewTask::from_json(
                        &serde_json::json!({ "title": format!("w{w} t{i}") }),
                    )
                    .unwrap();
                    let t = db.create_task(&p, req).unwrap();
                    // Published only after the create returned, i.e. after its commit.
                    created.lock().unwrap().push(t.task_id.clone());
                    assert_eq!(
                        db.get_task(&p, &t.task_id).unwrap().title,
                        format!("w{w} t{i}")
                    );
                }
            })
        })
        .collect();
    for w in writers {
        w.join().unwrap();
    }
    stop.store(true, std::sync::atomic::Ordering::SeqCst);
    let checked: usize = readers.into_iter().map(|r| r.join().unwrap()).sum();
    assert!(checked > 0, "the readers read nothing");
    assert_eq!(created.lock().unwrap().len(), 200);
}

#[test]
fn submitted_operations_resolve_once_durable_a_probe_commits_nothing_and_the_queue_is_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let options = bespin_core::Options {
        writer_queue: 1,
        ..Default::default()
    };
    let db = Bespin::open_with(
        dir.path().join("q.redb"),
        Arc::new(bespin_core::time::SystemClock),
        options,
    )
    .unwrap();
    let p = setup(&db);
    // An operation of the core, by its function and owned arguments.
    let task = db
        .submit(Op::with(
            p.clone(),
            bespin_core::coreos::tasks::NewTask::from_json(&serde_json::json!({"title": "t"}))
                .unwrap(),
            bespin_core::coreos::tasks::create,
        ))
        .wait()
        .unwrap();
    assert_eq!(db.get_task(&p, &task.task_id).unwrap().title, "t");
    // A probe runs in its turn and commits nothing.
    let before = db.commit_stats();
    db.submit(Op::noop()).wait().unwrap();
    assert_eq!(db.commit_stats().commits, before.commits);
    // With the writer held and one operation waiting, the next is refused at once.
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let held = db.submit(Op::from_fn(move |_, _| {
        started.send(()).unwrap();
        wait.recv().unwrap();
        Ok(())
    }));
    running.recv().unwrap();
    let queued = db.submit(Op::noop());
    assert_eq!(db.submit(Op::noop()).wait(), Err(Error::Overloaded));
    go.send(()).unwrap();
    held.wait().unwrap();
    queued.wait().unwrap();
}

#[test]
fn invocations_queued_together_read_their_idempotency_records_at_once() {
    // A small batch, so that the writer's read-ahead must stop at the batch's room and the
    // operations it took run in the batches after.
    let options = bespin_core::Options {
        max_batch: 8,
        ..Default::default()
    };
    let db = Bespin::open_for_test(Arc::new(bespin_core::time::SystemClock), options).unwrap();
    let p = setup(&db);
    let invoke = |key: &str, i: u64| {
        let req = bespin_core::tools::InvokeRequest::from_json(
            &serde_json::json!({"tool_name": "echo", "payload": {"i": i}}),
        )
        .unwrap();
        db.submit(bespin_core::tools::invoke_op(p.clone(), key.into(), req))
    };
    // Five invocations answered before: their replays must come back stored.
    for i in 0..5 {
        invoke(&format!("k{i}"), i).wait().unwrap();
    }
    // (Counted before the writer is held: it holds the commit statistics while it runs.)
    let commits = db.commit_stats().commits;
    let (go, wait) = std::sync::mpsc::channel::<()>();
    let (started, running) = std::sync::mpsc::channel::<()>();
    let held = db.submit(Op::from_fn(move |_, _| -> bespin_core::Result<()> {
        started.send(()).unwrap();
        wait.recv().unwrap();
        Ok(())
    }));
    running.recv().unwrap();
    let before = db.round_trips();
    // Queued while the writer is held: 5 replays, 30 new keys, one key the operation refuses,
    // and one replay of a new key made in the same run (the first of the two runs it).
    let mut pending: Vec<_> = (0..35).map(|i| invoke(&format!("k{i}"), i % 35)).collect();
    pending.push(invoke("", 0));
    pending.push(invoke("k20", 20));
    go.send(()).unwrap();
    held.wait().unwrap();
    let answers: Vec<_> = pending.into_iter().map(|d| d.wait()).collect();
    for (i, a) in answers[..35].iter().enumerate() {
        let a = a.as_ref().unwrap();
        assert_eq!(a.replayed(), i < 5, "invocation {i}");
    }
    assert!(
        matches!(answers[35], Err(Error::MissingHeader(_))),
        "{:?}",
        answers[35].as_ref().err()
    );
    let again = answers[36].as_ref().unwrap();
    assert!(again.replayed());
    assert_eq!(again.json(), answers[20].as_ref().unwrap().json());
    // On PostgreSQL the records were read a batch's run at a time, not one round trip each:
    // a batch is its start, the read-ahead, the quota's scan of the period rollups (a page
    // of the cache after the batch's first operation) and its commit, two round trips
    // since stop 32 (its rows in one prepared statement, then `COMMIT`); a read per
    // invocation would add 32 more (24 measured; 19 when the commit was one round trip).
    let batches = db.commit_stats().commits - commits;
    if let Some(trips) = db.round_trips().zip(before).map(|(a, b)| a - b) {
        assert!(
            trips <= 5 * batches,
            "{trips} round trips in {batches} batches for 37 queued invocations"
        );
    }
}
