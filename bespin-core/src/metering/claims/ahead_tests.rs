//! The claim work a request does on a snapshot before the writer takes it ([`super::Ahead`]):
//! lookups that leave the writer only the runs written since, merge steps stored only where
//! the merge still is, and merges that go on in the writer when those fall behind.
#![allow(clippy::unwrap_used)]

use super::tests::{assert_clean, batch, classes, lookup, runs_of, usage_ids};
use super::{Ahead, Claims, FANOUT, Runs, hashes};
use crate::metering::ingest::{IngestReport, UsageEvents};
use crate::metering::ingest_tests::{post, setup, statuses};
use crate::{Bespin, Principal};

#[test]
fn lookups_made_ahead_leave_the_writer_every_run_written_since() {
    let (db, _clock, admin, _) = setup();
    let first = usage_ids(&post(&db, &admin, batch(&["a0".into()])));
    // Looked up ahead on a snapshot holding one run: `a0` is in it, `b0` and `c0` are not.
    let ids: Vec<String> = ["a0", "b0", "c0"].map(String::from).to_vec();
    let mut req = UsageEvents::batch(&batch(&ids)).unwrap();
    db.look_ahead_usage(&admin, &mut req);
    let asked = runs_of(&db, &admin).live;
    assert_eq!(asked.len(), 1);
    // Meanwhile `c0` is claimed, and enough single-event requests follow to merge the runs
    // asked ahead (and `c0`'s) into a run the look-ahead never saw.
    let c0 = usage_ids(&post(&db, &admin, batch(&["c0".into()])));
    for k in 0..FANOUT {
        post(&db, &admin, batch(&[format!("z{k}")]));
    }
    let live = runs_of(&db, &admin).live;
    assert!(
        live.iter().all(|r| asked.iter().all(|a| a.no != r.no)),
        "{live:?}"
    );
    let r = db
        .write(|tx, ctx| crate::metering::ingest::record_usage_events(tx, ctx, &admin, req))
        .unwrap();
    assert_eq!(statuses(&r), ["duplicate", "accepted", "duplicate"]);
    let got = usage_ids(&r);
    assert_eq!((&got[0], &got[2]), (&first[0], &c0[0]));
    assert_clean(&db);
}

#[test]
fn a_lookup_made_ahead_answers_for_the_runs_it_asked_and_for_its_tenant_only() {
    let (db, _clock, admin, _) = setup();
    post(&db, &admin, batch(&["a0".into()]));
    let tenant = admin.tenant_id().to_owned();
    let h = hashes("svc", "a0");
    let found = |ahead: Ahead| {
        let tenant = tenant.clone();
        db.write(move |tx, ctx| {
            let retention = ctx.options.usage_dedup_retention_micros;
            let mut c = Claims::open(tx, &tenant, Some(ahead))?;
            // Event 1 was not looked at (not clear), event 0 was found clear.
            Ok([1, 0].map(|at| c.find(tx, (at, h), ctx.now, retention).unwrap().is_some()))
        })
        .unwrap()
    };
    let runs: Vec<(u64, u64)> = (runs_of(&db, &admin).live.iter())
        .map(|r| (r.no, r.nonce))
        .collect();
    // Said clear by a look at this tenant's run, the writer does not ask that run again:
    // this is the work taken off it (a real look never says so of a claim in the run).
    let ahead = |tenant: &str| Ahead {
        tenant: tenant.into(),
        runs: runs.clone(),
        clear: vec![true],
        step: None,
    };
    assert_eq!(found(ahead(&tenant)), [true, false]);
    // Another tenant's look, naming the same runs, is ignored.
    assert_eq!(found(ahead("another-tenant")), [true, true]);
    // A run asked under another nonce is another run: asked again.
    let mut stale = ahead(&tenant);
    stale.runs[0].1 ^= 1;
    assert_eq!(found(stale), [true, true]);
}

/// Records `req` as an operation submitted as it is: with the look-ahead it carries, if any.
fn record(db: &Bespin, who: &Principal, req: UsageEvents) -> IngestReport {
    db.write(|tx, ctx| crate::metering::ingest::record_usage_events(tx, ctx, who, req))
        .unwrap()
}

/// Events `ids` looked up ahead as `who`'s.
fn looked(db: &Bespin, who: &Principal, ids: &[String]) -> UsageEvents {
    let mut req = UsageEvents::batch(&batch(ids)).unwrap();
    db.look_ahead_usage(who, &mut req);
    req
}

#[test]
fn merge_steps_worked_out_ahead_are_stored_only_where_the_merge_still_is() {
    let (db, _clock, admin, _) = setup();
    let step_of = |req: &UsageEvents| req.ahead.as_ref().and_then(|a| a.step.clone());
    // Requests of 400 claims until a merge of 8 of them is under way (a request's merge is
    // stepped by the requests after it; a step of a request of one claim reads a block of
    // each input, so this one takes four).
    let mut n = 0;
    let mut batch_of = |k: usize| -> Vec<String> {
        n += 1;
        (0..k).map(|j| format!("m{n}-{j}")).collect()
    };
    let mut recorded: Vec<String> = Vec::new();
    while runs_of(&db, &admin).merge.is_none() {
        let ids = batch_of(400);
        post(&db, &admin, batch(&ids));
        recorded.extend(ids);
    }
    // Of two requests looked up ahead together, the first works out the next step and the
    // second leaves it (the writer would drop its copy).
    let (ids_a, ids_c, ids_d) = (batch_of(1), batch_of(1), batch_of(1));
    recorded.extend([&ids_a, &ids_c, &ids_d].into_iter().flatten().cloned());
    let a = looked(&db, &admin, &ids_a);
    let b = looked(&db, &admin, &batch_of(1));
    let step = step_of(&a).expect("a step worked out ahead");
    assert!(step_of(&b).is_none());
    let before = runs_of(&db, &admin).merge.unwrap();
    assert_eq!(step.from, before);
    // The writer stores it, and takes no step of its own: the merge is where the step said.
    record(&db, &admin, a);
    let runs = runs_of(&db, &admin);
    let out = |runs: &Runs| match &runs.merge {
        Some(m) => (m.out.count, m.after),
        None => {
            let done = runs.live.iter().find(|r| r.no == before.out.no).unwrap();
            (done.count, None)
        }
    };
    assert_eq!(out(&runs), (step.count, step.after));
    assert_clean(&db);
    // A step worked out, then overtaken by a request that steps the merge itself: dropped.
    let c = looked(&db, &admin, &ids_c);
    assert!(step_of(&c).is_some());
    record(&db, &admin, UsageEvents::batch(&batch(&ids_d)).unwrap());
    let moved = runs_of(&db, &admin);
    assert!(moved.merge.is_some(), "{moved:?}");
    assert_eq!(statuses(&record(&db, &admin, c)), ["accepted"]);
    let after = runs_of(&db, &admin);
    assert_eq!(out(&after), out(&moved), "an overtaken step was stored");
    assert_clean(&db);
    assert!(lookup(&db, &admin, &recorded).iter().all(Option::is_some));
}

/// A member's request is refused by the operation: it makes no look (which would take the
/// tenant's next merge step from its admins' requests).
#[test]
fn a_member_makes_no_look_ahead() {
    let (db, _clock, admin, member) = setup();
    post(&db, &admin, batch(&["a".to_owned()]));
    let ids = vec!["b".to_owned()];
    assert!(looked(&db, &member, &ids).ahead.is_none());
    assert!(looked(&db, &admin, &ids).ahead.is_some());
}

/// A request whose events are all duplicates claims nothing, but the step it worked out ahead
/// was taken for it (no other request of the process works it out): the writer stores it.
#[test]
fn a_request_of_duplicates_stores_the_step_it_worked_out() {
    let (db, _clock, admin, _) = setup();
    let mut n = 0;
    while runs_of(&db, &admin).merge.is_none() {
        n += 1;
        let ids: Vec<String> = (0..400).map(|j| format!("d{n}-{j}")).collect();
        post(&db, &admin, batch(&ids));
    }
    let again: Vec<String> = (0..400).map(|j| format!("d1-{j}")).collect();
    let req = looked(&db, &admin, &again);
    let step = req.ahead.as_ref().and_then(|a| a.step.clone()).unwrap();
    let out = step.from.out.no;
    let r = record(&db, &admin, req);
    assert!(statuses(&r).iter().all(|s| *s == "duplicate"));
    // The step (a request of 400 events pays for 3,712 claims read) completes the merge.
    assert_eq!(step.after, None);
    let runs = runs_of(&db, &admin);
    assert!(runs.merge.is_none(), "{runs:?}");
    let done = runs.live.iter().find(|r| r.no == out).map(|r| r.count);
    assert_eq!(done, Some(step.count));
    assert_clean(&db);
}

/// Requests whose steps worked out ahead never reach the writer (dropped, or never made)
/// still keep merges going: once a size class holds twice [`FANOUT`] runs, requests step
/// the merge in the writer, so lookups never visit more than about twice the runs.
#[test]
fn merges_go_on_in_the_writer_when_steps_worked_out_ahead_fall_behind() {
    let (db, _clock, admin, _) = setup();
    let mut recorded: Vec<String> = Vec::new();
    for i in 0..60 {
        let ids: Vec<String> = (0..10).map(|j| format!("l{i}-{j}")).collect();
        let mut req = looked(&db, &admin, &ids);
        req.ahead.as_mut().unwrap().step = None;
        record(&db, &admin, req);
        recorded.extend(ids);
        let runs = runs_of(&db, &admin);
        let most = classes(&runs).into_values().max().unwrap_or(0);
        assert!(most <= 2 * FANOUT as usize, "request {i}: {runs:?}");
    }
    assert!(classes(&runs_of(&db, &admin)).contains_key(&1));
    assert!(lookup(&db, &admin, &recorded).iter().all(Option::is_some));
    assert_clean(&db);
}
