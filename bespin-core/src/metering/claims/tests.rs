//! The runs of claims ([`super`]) through ingestion: merges of several size classes in bounded
//! steps that never hide a claim, exact matches behind the hash and its filters, a run of a
//! rolled-back operation, the upkeep of idle tenants, erasure, and the upgrade from layout 13.
#![allow(clippy::unwrap_used)]

use super::{
    BLOCK, BlockFilter, BlockKey, Claim, ClaimBlock, Claims, FANOUT, Runs, RunsKey,
    USAGE_CLAIM_BLOCKS, USAGE_CLAIM_FILTERS, USAGE_CLAIM_RUNS, hash, hashes, index, merge,
};
use crate::check::testing::{caught, first_key};
use crate::metering::ingest::{
    DedupExpiryKey, DedupKey, DedupRec, IngestReport, Outcome, USAGE_DEDUP, USAGE_DEDUP_BY_EXPIRY,
    UsageEvents,
};
use crate::metering::ingest_tests::{another, event, post, setup, statuses};
use crate::store::{NameKey, Reader};
use crate::time::Date;
use crate::{Bespin, Principal};
use serde_json::{Value, json};
use std::collections::HashMap;

const DAY: i64 = 86_400 * 1_000_000;

/// The usage id each event of `r` was accepted as or answers.
pub(super) fn usage_ids(r: &IngestReport) -> Vec<String> {
    r.results
        .iter()
        .map(|x| match &x.outcome {
            Outcome::Accepted { usage_id } | Outcome::Duplicate { usage_id } => {
                usage_id.to_string()
            }
            Outcome::Rejected(e) => panic!("{e}"),
        })
        .collect()
}

pub(super) fn batch(ids: &[String]) -> Value {
    Value::Array(ids.iter().map(|id| event(id, json!(1))).collect())
}

pub(super) fn runs_of(db: &Bespin, who: &Principal) -> Runs {
    let key = RunsKey::new(who.tenant_id());
    db.read(|r, _| r.get(&USAGE_CLAIM_RUNS, &key))
        .unwrap()
        .unwrap_or_default()
}

/// The usage ids the claims of `who`'s tenant answer for `ids` at the database's now, looked
/// up as a request does (nothing written).
pub(super) fn lookup(db: &Bespin, who: &Principal, ids: &[String]) -> Vec<Option<String>> {
    let tenant = who.tenant_id().to_owned();
    let ids = ids.to_vec();
    db.write(move |tx, ctx| {
        let retention = ctx.options.usage_dedup_retention_micros;
        let mut c = Claims::open(tx, &tenant, None)?;
        let mut out = Vec::new();
        for id in &ids {
            let seq = c.find(tx, (0, hashes("svc", id)), ctx.now, retention)?;
            out.push(seq.map(|s| format!("use_{}", tx.sealer().seal(s))));
        }
        Ok(out)
    })
    .unwrap()
}

/// What [`lookup`] answers for ids accepted as `first` (id, usage id).
fn answers(first: &[(String, String)]) -> Vec<Option<String>> {
    first.iter().map(|(_, u)| Some(u.clone())).collect()
}

fn ids_of(first: &[(String, String)]) -> Vec<String> {
    first.iter().map(|(id, _)| id.clone()).collect()
}

/// Live runs per size class, leaving out the inputs of the merge under way.
pub(super) fn classes(runs: &Runs) -> HashMap<u32, usize> {
    let merging: Vec<u64> = runs.merge.iter().flat_map(|m| m.inputs.clone()).collect();
    let mut n = HashMap::new();
    for r in runs.live.iter().filter(|r| !merging.contains(&r.no)) {
        *n.entry(r.class()).or_default() += 1;
    }
    n
}

pub(super) fn assert_clean(db: &Bespin) {
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
}

/// 200 requests of a few events and a few large ones: merges of several size classes happen,
/// some left half done between requests; after every request each earlier id answers its
/// first usage id, new ids are accepted, the database checks clean and each size class holds
/// at most 7 live runs besides a merge's inputs (8 while another class's merge runs). Then a
/// merge is driven in steps of the least budget: every step leaves every claim found.
#[test]
fn merges_of_several_size_classes_never_lose_or_hide_a_claim() {
    let (db, _, admin, _) = setup();
    let mut first: Vec<(String, String)> = Vec::new();
    let (mut half_done, mut top_class) = (0, 0);
    for i in 0..200usize {
        let n = match i {
            50 | 120 => 600,
            80 | 160 => 150,
            _ if i % 2 == 1 => 20,
            _ => 3,
        };
        let new: Vec<String> = (0..n).map(|j| format!("r{i}-{j}")).collect();
        // Repeats of earlier requests: the last, one far back, the very first.
        let picks = [i.saturating_sub(1), i / 2, i / 7, 0];
        let old: Vec<(String, String)> = first
            .iter()
            .filter(|(id, _)| {
                let r: usize = id[1..id.find('-').unwrap()].parse().unwrap();
                picks.contains(&r) && i > 0
            })
            .take(1000 - n)
            .cloned()
            .collect();
        let mut ids: Vec<String> = old.iter().map(|(id, _)| id.clone()).collect();
        ids.extend(new.iter().cloned());
        let r = post(&db, &admin, batch(&ids));
        let (s, got) = (statuses(&r), usage_ids(&r));
        for (k, (id, usage)) in old.iter().enumerate() {
            assert_eq!((s[k], &got[k]), ("duplicate", usage), "request {i}: {id}");
        }
        for (k, id) in new.iter().enumerate() {
            assert_eq!(s[old.len() + k], "accepted", "request {i}: {id}");
            first.push((id.clone(), got[old.len() + k].clone()));
        }
        assert_clean(&db);
        let runs = runs_of(&db, &admin);
        half_done += usize::from(runs.merge.is_some());
        for (class, n) in classes(&runs) {
            top_class = top_class.max(class);
            let bound = if runs.merge.is_some() { 8 } else { 7 };
            assert!(
                n <= bound,
                "request {i}: {n} runs of class {class}: {runs:?}"
            );
        }
        assert!(runs.live.len() <= 40, "request {i}: {runs:?}");
    }
    assert!(top_class >= 3, "runs of class {top_class} at most");
    assert!(half_done > 0, "no merge was ever left half done");
    // Every id accepted answers its first usage number.
    let (ids, seqs) = (ids_of(&first), answers(&first));
    assert_eq!(lookup(&db, &admin, &ids), seqs);

    // A merge of the eight runs of a class, forced: one step of the least budget at a time
    // (a block of each input), each step's state written back, every claim found after each.
    let tenant = admin.tenant_id().to_owned();
    let step = |db: &Bespin| {
        let tenant = tenant.clone();
        db.write(move |tx, ctx| {
            let retention = ctx.options.usage_dedup_retention_micros;
            let key = RunsKey::new(&tenant);
            let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap_or_default();
            merge::upkeep(tx, &tenant, &mut runs, ctx.now, retention, (1, true))?;
            tx.put(&USAGE_CLAIM_RUNS, &key, &runs)?;
            Ok(runs)
        })
        .unwrap()
    };
    // Runs of one class made mergeable: post 600-event requests until eight of class 3 wait.
    let mut more = 0;
    while classes(&runs_of(&db, &admin)).get(&3).copied().unwrap_or(0) < 7 {
        let new: Vec<String> = (0..600).map(|j| format!("m{more}-{j}")).collect();
        let r = post(&db, &admin, batch(&new));
        let got = usage_ids(&r);
        first.extend(new.into_iter().zip(got));
        more += 1;
        assert!(more < 20, "{:?}", runs_of(&db, &admin));
    }
    // Finish whatever merge runs, then one more run of class 3 starts a new merge of them.
    while runs_of(&db, &admin).merge.is_some() {
        step(&db);
    }
    let (ids, seqs) = (ids_of(&first), answers(&first));
    let mut steps = 0;
    let mut runs = step(&db);
    while runs.merge.is_some() || steps == 0 {
        steps += 1;
        assert_eq!(lookup(&db, &admin, &ids), seqs, "after step {steps}");
        assert_clean(&db);
        runs = step(&db);
        assert!(steps < 500);
    }
    assert_eq!(lookup(&db, &admin, &ids), seqs);
    assert_clean(&db);
}

/// A claim matches on both its hashes, never on the first alone: a claim of another id with
/// the same first hash (a collision, made here by hand) answers nothing for it; and among many
/// runs, ids never accepted whose hash a run's filter admits (its false positives: the block
/// is read) are accepted.
#[test]
fn a_claim_is_matched_on_both_hashes_not_on_the_first_alone() {
    let (db, clock, admin, _) = setup();
    let mut accepted: Vec<String> = Vec::new();
    for i in 0..40 {
        let ids: Vec<String> = (0..60).map(|j| format!("a{i}-{j}")).collect();
        assert!(
            statuses(&post(&db, &admin, batch(&ids)))
                .iter()
                .all(|s| *s == "accepted")
        );
        accepted.extend(ids);
    }
    let runs = runs_of(&db, &admin);
    assert!(runs.live.len() >= 4, "{runs:?}");
    // Ids never accepted that some run's filter admits: the lookup reads that block.
    let tenant = admin.tenant_id().to_owned();
    let indexes: Vec<_> = runs
        .live
        .iter()
        .map(|r| {
            db.read(|tx, _| index::get(tx, &tenant, r.no, r.nonce))
                .unwrap()
        })
        .collect();
    let admitted: Vec<String> = (0..20_000)
        .map(|k| format!("never-{k}"))
        .filter(|id| {
            let h = hash("svc", id);
            indexes.iter().any(|i| i.block_for(h).is_some())
        })
        .take(50)
        .collect();
    assert!(admitted.len() >= 20, "{} false positives", admitted.len());
    assert!(lookup(&db, &admin, &admitted).iter().all(Option::is_none));
    let r = post(&db, &admin, batch(&admitted));
    assert!(statuses(&r).iter().all(|s| *s == "accepted"));

    // A live claim of "victim"'s first hash and another id's second (as a collision of the
    // first would make): a run of its own, listed live.
    let t = tenant.clone();
    db.write(move |tx, ctx| {
        let key = RunsKey::new(&t);
        let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap();
        let no = runs.next;
        runs.next += 1;
        let fake = Claim {
            h: hash("svc", "victim"),
            h2: super::hash2("svc", "impostor"),
            seq: super::live_claims(tx, &t)?[0].1.seq,
            accepted_at: ctx.now,
        };
        runs.live.push(super::write_run(tx, &t, no, &[fake])?);
        tx.put(&USAGE_CLAIM_RUNS, &key, &runs)
    })
    .unwrap();
    clock.advance(1);
    let victim = vec!["victim".to_owned()];
    assert_eq!(lookup(&db, &admin, &victim), [None]);
    assert_eq!(statuses(&post(&db, &admin, batch(&victim))), ["accepted"]);
    assert_eq!(statuses(&post(&db, &admin, batch(&victim))), ["duplicate"]);
}

/// An operation that fails after writing its run (and completing a merge, and reading the
/// merged run's index) is rolled back with its batch and leaves no claim; the run numbers it
/// used are written again by the next operation with new nonces, and the indexes cached under
/// the old ones are never read for them.
#[test]
fn a_run_of_a_rolled_back_operation_leaves_no_claim_and_its_numbers_read_right_again() {
    let (db, _, admin, _) = setup();
    let mut first: Vec<(String, String)> = Vec::new();
    for i in 0..7 {
        let ids: Vec<String> = (0..3).map(|j| format!("k{i}-{j}")).collect();
        let r = post(&db, &admin, batch(&ids));
        first.extend(ids.into_iter().zip(usage_ids(&r)));
    }
    let runs = runs_of(&db, &admin);
    assert_eq!((runs.live.len(), runs.next), (7, 7), "{runs:?}");
    let events = |ids: &[String]| UsageEvents::batch(&batch(ids)).unwrap();
    let failed: Vec<String> = (0..3).map(|j| format!("failed-{j}")).collect();
    let later: Vec<String> = (0..3).map(|j| format!("failed-later-{j}")).collect();
    let kept: Vec<String> = (0..3).map(|j| format!("kept-{j}")).collect();
    let (a, b) = (admin.clone(), admin.clone());
    let (fail_ids, later_ids, kept_ids) = (events(&failed), events(&later), events(&kept));
    let kept_report = std::sync::Arc::new(std::sync::Mutex::new(None));
    let out = kept_report.clone();
    let ops: Vec<crate::commit::TestOp<'_>> = vec![
        Box::new(move |tx, ctx| {
            // Run 7, then the merge of runs 0-7 into run 8, completed.
            crate::metering::ingest::record_usage_events(tx, ctx, &a, fail_ids)?;
            let runs = tx
                .get(&USAGE_CLAIM_RUNS, &RunsKey::new(a.tenant_id()))?
                .unwrap();
            assert_eq!(runs.live.iter().map(|r| r.no).collect::<Vec<_>>(), [8]);
            // The next request reads (and caches) run 8's index, then the operation fails.
            crate::metering::ingest::record_usage_events(tx, ctx, &a, later_ids)?;
            Err(crate::Error::Internal("failed on purpose".into()))
        }),
        Box::new(move |tx, ctx| {
            let r = crate::metering::ingest::record_usage_events(tx, ctx, &b, kept_ids)?;
            *out.lock().unwrap() = Some(r);
            Ok(())
        }),
    ];
    let outcomes = db.inner.committer.run_batch_for_test(ops).unwrap();
    assert!(outcomes[0].is_err() && outcomes[1].is_ok(), "{outcomes:?}");
    let r = kept_report.lock().unwrap().take().unwrap();
    first.extend(kept.iter().cloned().zip(usage_ids(&r)));
    // Runs 7 and 8 again, of other nonces.
    let runs = runs_of(&db, &admin);
    assert_eq!(
        runs.live.iter().map(|r| r.no).collect::<Vec<_>>(),
        [8],
        "{runs:?}"
    );
    assert_clean(&db);
    let (ids, seqs) = (ids_of(&first), answers(&first));
    assert_eq!(lookup(&db, &admin, &ids), seqs);
    let r = post(&db, &admin, batch(&ids));
    assert_eq!(
        usage_ids(&r),
        first.iter().map(|(_, u)| u.clone()).collect::<Vec<_>>()
    );
    assert!(statuses(&r).iter().all(|s| *s == "duplicate"));
    let mut gone = failed.clone();
    gone.extend(later.iter().cloned());
    assert!(lookup(&db, &admin, &gone).iter().all(Option::is_none));
    assert!(
        statuses(&post(&db, &admin, batch(&gone)))
            .iter()
            .all(|s| *s == "accepted")
    );
    assert_clean(&db);
}

/// A claim past the retention is gone at once for lookups though its run lives on (a run goes
/// when its latest claim expires), and a merge leaves it out: a run of 189 claims of day 0 and
/// 3 of day 31, merged on day 33 with seven runs of 150, becomes one run of 1,053.
#[test]
fn claims_past_the_retention_are_gone_at_once_and_left_out_of_merges() {
    let (db, clock, admin, _) = setup();
    let mut old: Vec<(String, String)> = Vec::new();
    let mut late: Vec<(String, String)> = Vec::new();
    for i in 0..64 {
        if i == 63 {
            clock.advance(31 * DAY);
        }
        let ids: Vec<String> = (0..3).map(|j| format!("x{i}-{j}")).collect();
        let r = post(&db, &admin, batch(&ids));
        let to = if i == 63 { &mut late } else { &mut old };
        to.extend(ids.into_iter().zip(usage_ids(&r)));
    }
    // The last request's merge is stepped by the requests after it; for an idle tenant, by
    // the minute's upkeep.
    db.purge_usage_dedup(10_000).unwrap();
    let runs = runs_of(&db, &admin);
    assert_eq!(runs.live.len(), 1, "{runs:?}");
    assert_eq!(runs.live[0].count, 192);
    clock.advance(2 * DAY);
    // Day 33: the run lives (its latest claim is of day 31), day 0's claims are gone.
    assert_eq!(lookup(&db, &admin, &ids_of(&old)), vec![None; old.len()]);
    assert_eq!(lookup(&db, &admin, &ids_of(&late)), answers(&late));
    assert_clean(&db);
    let mut new: Vec<(String, String)> = Vec::new();
    for i in 0..7 {
        let ids: Vec<String> = (0..150).map(|j| format!("n{i}-{j}")).collect();
        let r = post(&db, &admin, batch(&ids));
        new.extend(ids.into_iter().zip(usage_ids(&r)));
    }
    db.purge_usage_dedup(10_000).unwrap();
    let runs = runs_of(&db, &admin);
    let counts: Vec<u64> = runs.live.iter().map(|r| r.count).collect();
    assert_eq!(counts, [7 * 150 + 3], "{runs:?}");
    assert!(runs.merge.is_none());
    assert_eq!(lookup(&db, &admin, &ids_of(&late)), answers(&late));
    assert_eq!(lookup(&db, &admin, &ids_of(&new)), answers(&new));
    assert_clean(&db);
    // Day 0's ids are new events again.
    let r = post(&db, &admin, batch(&ids_of(&old)[..100]));
    assert!(statuses(&r).iter().all(|s| *s == "accepted"));
    assert_clean(&db);
}

/// The position of the purge's walk among the tenants' rows.
fn cursor(db: &Bespin) -> Vec<u8> {
    db.read(|r, _| r.get(&merge::USAGE_CLAIM_UPKEEP, &NameKey::new("claims")))
        .unwrap()
        .unwrap_or_default()
        .after
}

/// The purge visits the tenants' rows from its cursor, its bound of rows a call, and starts
/// over past the last; it carries on a merge an idle tenant left half done, in bounded calls
/// that never hide a claim; and once the retention is past it drops every run and returns
/// the claims forgotten.
#[test]
fn the_purge_walks_tenants_from_a_cursor_and_finishes_idle_tenants_merges() {
    let (db, clock, admin, _) = setup();
    // An idle tenant's merge left to do: requests of 20 claims until one of inputs of more
    // than a block each is (a request's merge is stepped by the requests after it).
    let mut first: Vec<(String, String)> = Vec::new();
    let mut i = 0;
    let pending = |db: &Bespin| {
        let runs = runs_of(db, &admin);
        runs.merge.is_some_and(|m| {
            let mut inputs = runs.live.iter().filter(|r| m.inputs.contains(&r.no));
            inputs.all(|r| r.count > BLOCK as u64)
        })
    };
    while !pending(&db) {
        let ids: Vec<String> = (0..20).map(|j| format!("i{i}-{j}")).collect();
        let r = post(&db, &admin, batch(&ids));
        first.extend(ids.into_iter().zip(usage_ids(&r)));
        i += 1;
        assert!(i < 200, "no merge left half done");
    }
    let others: Vec<Principal> = (0..2).map(|_| another(&db)).collect();
    for p in &others {
        post(&db, p, batch(&["o".to_owned()]));
    }
    // The tenants' rows in key order.
    let mut keys: Vec<Vec<u8>> = [&admin]
        .into_iter()
        .chain(&others)
        .map(|p| RunsKey::new(p.tenant_id()).encode())
        .collect();
    keys.sort();
    let (ids, seqs) = (ids_of(&first), answers(&first));
    let mut calls = 0;
    let mut seen = Vec::new();
    // What the merge wrote so far, and its output's number.
    let at = |db: &Bespin| runs_of(db, &admin).merge.map(|m| (m.out.no, m.out.count));
    // Rewound to its start (what it wrote so far deleted), so that the purge does it all.
    let tenant = admin.tenant_id().to_owned();
    db.tamper(|tx| {
        let key = RunsKey::new(&tenant);
        let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap();
        let m = runs.merge.as_mut().unwrap();
        (m.after, m.out.count, m.out.last_at) = (None, 0, crate::time::Timestamp(i64::MIN));
        let (b, f) = (&USAGE_CLAIM_BLOCKS, &USAGE_CLAIM_FILTERS);
        tx.delete_prefix(b, &b.prefix().tenant(&tenant).u64(m.out.no))?;
        tx.delete_prefix(f, &f.prefix().tenant(&tenant).u64(m.out.no))?;
        tx.put(&USAGE_CLAIM_RUNS, &key, &runs)
    });
    assert_clean(&db);
    let (out, mut written) = at(&db).unwrap();
    let mut steps = 0;
    while let Some((_, before)) = at(&db) {
        assert_eq!(db.purge_usage_dedup(1).unwrap(), 0);
        seen.push(cursor(&db));
        calls += 1;
        assert_eq!(lookup(&db, &admin, &ids), seqs, "after call {calls}");
        // A call of bound 1 reads at most a block of each input.
        let now = at(&db).map_or_else(
            || {
                runs_of(&db, &admin)
                    .live
                    .iter()
                    .find(|r| r.no == out)
                    .unwrap()
                    .count
            },
            |(_, n)| n,
        );
        assert!(now - before <= FANOUT * BLOCK as u64, "{before} -> {now}");
        steps += usize::from(now != before);
        written = now;
        assert!(calls < 100);
    }
    assert!(written > 0);
    assert!(steps >= 2, "the merge took {steps} step");
    // One row a call, in key order, then over again.
    let mut walk: Vec<Vec<u8>> = keys.clone();
    walk.push(Vec::new());
    for (k, c) in seen.iter().enumerate() {
        if k < walk.len() {
            assert!(
                walk.contains(c),
                "call {k}: a cursor at no tenant's row: {c:?}"
            );
        }
    }
    assert_clean(&db);
    // With nothing to do, the walk is exactly one row a call, and starts over.
    for _ in 0..4 {
        if cursor(&db).is_empty() {
            break;
        }
        db.purge_usage_dedup(1).unwrap();
    }
    assert!(
        cursor(&db).is_empty(),
        "the walk starts over after the last row"
    );
    let mut walked = Vec::new();
    for _ in 0..4 {
        db.purge_usage_dedup(1).unwrap();
        walked.push(cursor(&db));
    }
    assert_eq!(walked, walk);
    // Past the retention: every run goes, a bounded number of tenants a call.
    clock.advance(33 * DAY);
    assert_eq!(lookup(&db, &admin, &ids), vec![None; ids.len()]);
    let total = first.len() + others.len();
    let mut gone = 0;
    for _ in 0..10 {
        let n = db.purge_usage_dedup(1).unwrap();
        assert!(n <= first.len(), "{n}");
        gone += n;
    }
    assert_eq!(gone, total);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_claim_blocks"), 0);
    assert_eq!(report.rows_in("usage_claim_filters"), 0);
    let r = post(&db, &admin, batch(&ids[..100]));
    assert!(statuses(&r).iter().all(|s| *s == "accepted"));
}

/// Erasing a tenant that merged runs (the purge's upkeep running between the erasure's steps,
/// its cursor at the tenant's row when the erasure starts) removes its runs, blocks and
/// filters and leaves the other tenant's; the purge's cursor does not name it after.
#[test]
fn erasing_a_tenant_removes_its_claims() {
    use crate::tenancy::erasure::{ConfirmErasure, ErasureState, rows_of};
    let (db, clock, admin, _) = setup();
    let mut i = 0;
    while runs_of(&db, &admin).merge.is_none() {
        let ids: Vec<String> = (0..20).map(|j| format!("e{i}-{j}")).collect();
        post(&db, &admin, batch(&ids));
        i += 1;
        assert!(i < 200);
    }
    let other = another(&db);
    post(&db, &other, batch(&["o".to_owned()]));
    // The purge's cursor at the erased tenant's row.
    let at_erased = |db: &Bespin| cursor(db) == RunsKey::new(admin.tenant_id()).encode();
    for _ in 0..20 {
        if at_erased(&db) {
            break;
        }
        db.purge_usage_dedup(1).unwrap();
        clock.advance(1);
    }
    assert!(
        at_erased(&db),
        "the purge's walk reaches every tenant's row"
    );
    /// The rows of `t` under tenant `tenant`'s prefix.
    fn rows_under<V: crate::store::Record>(
        r: &impl Reader,
        t: &crate::store::Table<BlockKey<'static>, V>,
        tenant: &str,
    ) -> crate::Result<usize> {
        let mut n = 0;
        r.scan(
            t,
            &t.prefix().tenant(tenant),
            crate::store::Order::Asc,
            |_, _| {
                n += 1;
                Ok(crate::store::Flow::Continue)
            },
        )?;
        Ok(n)
    }
    let count = |db: &Bespin, t: &str| {
        db.read(|r, _| {
            Ok([
                usize::from(r.get(&USAGE_CLAIM_RUNS, &RunsKey::new(t))?.is_some()),
                rows_under(r, &USAGE_CLAIM_BLOCKS, t)?,
                rows_under(r, &USAGE_CLAIM_FILTERS, t)?,
            ])
        })
        .unwrap()
    };
    let ta = admin.tenant_id().to_owned();
    assert!(count(&db, &ta).iter().all(|n| *n > 0));
    let theirs = count(&db, other.tenant_id());
    let confirm = ConfirmErasure {
        confirm: ta.clone(),
    };
    db.erase_tenant(&ta, confirm).unwrap();
    // The minute's upkeep runs between the erasure's steps (it leaves an erasing tenant's runs
    // alone), but not while its runs row goes: the cursor still names the tenant then, and
    // the row's erasure sets it back.
    let mut steps = 0;
    loop {
        if steps % 2 == 1 && !at_erased(&db) {
            db.purge_usage_dedup(10).unwrap();
        }
        steps += 1;
        match db.erase_step().unwrap() {
            Some(e) if e.state == ErasureState::Erasing => continue,
            _ => break,
        }
    }
    assert_eq!(count(&db, &ta), [0, 0, 0]);
    assert_eq!(db.read(|r, _| rows_of(r, &ta)).unwrap(), 0);
    assert_eq!(count(&db, other.tenant_id()), theirs);
    let raw = crate::store::parts::uuid_bytes(&ta).unwrap();
    let names = |k: &[u8]| k.windows(16).any(|w| w == raw);
    assert!(
        !names(&cursor(&db)),
        "the purge's cursor names the erased tenant"
    );
    // Nor does the upkeep bring any row of it back.
    db.purge_usage_dedup(10).unwrap();
    assert_eq!(count(&db, &ta), [0, 0, 0]);
    assert_clean(&db);
    assert_eq!(
        statuses(&post(&db, &other, batch(&["o".to_owned()]))),
        ["duplicate"]
    );
}

/// The first block of the claims (key, block).
fn first_block(tx: &crate::store::WriteTx) -> (Vec<u8>, ClaimBlock) {
    let k = first_key(tx, &USAGE_CLAIM_BLOCKS);
    let b = tx
        .get(&USAGE_CLAIM_BLOCKS, &BlockKey::decode(&k).unwrap())
        .unwrap()
        .unwrap();
    (k, b)
}

#[test]
fn the_checker_catches_a_lost_claim_a_tampered_block_filter_or_run_and_old_rows() {
    let fresh = || {
        let (db, _, admin, _) = setup();
        let batch = json!([
            event("a", json!(1)),
            event("b", json!(1)),
            event("c", json!(1))
        ]);
        post(&db, &admin, batch);
        let report = db.check().unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.rows_in("usage_claim_blocks"), 1);
        (db, admin)
    };
    let put_block = |tx: &mut crate::store::WriteTx, k: &[u8], b: &ClaimBlock| {
        tx.put(&USAGE_CLAIM_BLOCKS, &BlockKey::decode(k).unwrap(), b)
    };
    // A claim lost: its event has no live claim, the run's count is off.
    let (db, _) = fresh();
    db.tamper(|tx| {
        let (k, mut b) = first_block(tx);
        b.claims.pop();
        put_block(tx, &k, &b)
    });
    caught(&db, "usage_claim_blocks", "no live claim of usage event");
    caught(&db, "usage_claim_runs", "lists 3 claims");
    // A whole block lost: its filter is of no block.
    let (db, _) = fresh();
    db.tamper(|tx| {
        let k = first_key(tx, &USAGE_CLAIM_BLOCKS);
        tx.delete_stored(&USAGE_CLAIM_BLOCKS, &k).map(|_| ())
    });
    caught(&db, "usage_claim_filters", "a filter of no block");
    caught(&db, "usage_claim_blocks", "no live claim of usage event");
    // Claims out of order, a block keyed at another first hash; a claim naming another usage
    // event, or hashed otherwise than its event's source and id (its block still sorted).
    type BlockTamper = fn(&mut ClaimBlock);
    let block_tampers: [(BlockTamper, &str); 4] = [
        (|b| b.claims.swap(1, 2), "claims unsorted or misnamed"),
        (
            |b| {
                b.claims.remove(0);
            },
            "claims unsorted or misnamed",
        ),
        (|b| b.claims[0].seq += 1_000, "names no usage event"),
        (|b| b.claims[0].h -= 1, "names no usage event"),
    ];
    for (tamper, expected) in block_tampers {
        let (db, _) = fresh();
        db.tamper(|tx| {
            let (k, mut b) = first_block(tx);
            tamper(&mut b);
            put_block(tx, &k, &b)
        });
        caught(&db, "usage_claim_blocks", expected);
    }
    // A filter that does not admit the block's claims.
    let (db, _) = fresh();
    db.tamper(|tx| {
        let (k, b) = first_block(tx);
        let others = b.claims.iter().map(|c| !c.h).collect::<Vec<_>>();
        let f = BlockFilter::of(others.into_iter());
        let k = BlockKey::decode(&k).unwrap();
        tx.put(&USAGE_CLAIM_FILTERS, &k, &f)
    });
    caught(&db, "usage_claim_blocks", "no filter admitting every claim");
    // A run's count or latest acceptance that is not its claims'; a run past `next`; a merge
    // of a run not live.
    type RunsTamper = fn(&mut Runs);
    let runs_tampers: [(RunsTamper, &str); 4] = [
        (|r| r.live[0].count += 1, "lists 4 claims"),
        (|r| r.live[0].last_at.0 -= 1, "its blocks hold"),
        (|r| r.next = 0, "a run numbered past `next`"),
        (
            |r| {
                r.merge = Some(merge::Merge {
                    out: r.live[0].clone(),
                    inputs: vec![7],
                    after: None,
                })
            },
            "a merge of a run not live",
        ),
    ];
    for (tamper, needle) in runs_tampers {
        let (db, admin) = fresh();
        db.tamper(|tx| {
            let key = RunsKey::new(admin.tenant_id());
            let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap();
            tamper(&mut runs);
            tx.put(&USAGE_CLAIM_RUNS, &key, &runs)
        });
        caught(&db, "usage_claim_runs", needle);
    }
    // A block of a run its tenant does not list, and a copy of a claim in a second live run.
    let (db, admin) = fresh();
    db.tamper(|tx| {
        let (k, b) = first_block(tx);
        let k = BlockKey::decode(&k).unwrap();
        let orphan = BlockKey::new(&k.tenant_id, 99, k.first_h);
        tx.put(&USAGE_CLAIM_BLOCKS, &orphan, &b)?;
        tx.put(
            &USAGE_CLAIM_FILTERS,
            &orphan,
            &BlockFilter::of(b.claims.iter().map(|c| c.h)),
        )
    });
    caught(&db, "usage_claim_blocks", "a block of no run of its tenant");
    let (db, admin2) = fresh();
    drop(admin);
    db.tamper(|tx| {
        let (_, b) = first_block(tx);
        let key = RunsKey::new(admin2.tenant_id());
        let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap();
        let no = runs.next;
        runs.next += 1;
        let copy = [b.claims[0]];
        runs.live
            .push(super::write_run(tx, admin2.tenant_id(), no, &copy)?);
        tx.put(&USAGE_CLAIM_RUNS, &key, &runs)
    });
    caught(&db, "usage_claim_blocks", "2 live claims of (svc, ");
    // A row of layout 13's de-duplication, and of layout 9's expiry order.
    let (db, admin) = fresh();
    db.tamper(|tx| {
        let k = DedupKey::new(admin.tenant_id(), "svc", "z");
        let rec = DedupRec {
            seq: 1,
            accepted_at: crate::time::Timestamp(0),
        };
        tx.put(&USAGE_DEDUP, &k, &rec)
    });
    caught(&db, "usage_dedup", "a row of an older layout left");
    let (db, _) = fresh();
    db.tamper(|tx| {
        let k = DedupExpiryKey::new(Date::parse("2026-03-04").unwrap(), "t", "s", "i");
        tx.put(&USAGE_DEDUP_BY_EXPIRY, &k, &())
    });
    caught(
        &db,
        "usage_dedup_by_expiry",
        "a row of an older layout left",
    );
}

/// A database of layout 13 (claims as `usage_dedup` rows) opens as 14: `bespin layout` lists
/// the step with its rows, the rows become a run per tenant, repeats still answer their first
/// usage ids, new ids are accepted, and the database checks clean.
#[test]
fn a_database_of_layout_13_opens_with_its_claims_in_runs() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("claims.redb");
    let db = Bespin::open(&path).unwrap();
    let (a, _) = crate::testutil::tenant(&db);
    let (b, _) = crate::testutil::tenant(&db);
    let ids: Vec<String> = (0..150).map(|i| format!("u{i}")).collect();
    let mut first: Vec<(Principal, String, String)> = Vec::new();
    for (p, chunk) in [(&a, &ids[..100]), (&a, &ids[100..]), (&b, &ids[..30])] {
        let refs: Vec<&str> = chunk.iter().map(String::as_str).collect();
        crate::testutil::report_usage(&db, p, &refs);
        let again = UsageEvents::batch(&batch(chunk)).unwrap();
        let r = db.record_usage_events(p, again).unwrap();
        assert!(statuses(&r).iter().all(|s| *s == "duplicate"));
        for (id, u) in chunk.iter().zip(usage_ids(&r)) {
            first.push((p.clone(), id.clone(), u));
        }
    }
    assert_eq!(runs_of(&db, &a).live.len(), 2);
    db.tamper(|tx| crate::layout::set_old_for_test(tx, 13));
    let report = db.check().unwrap();
    assert_eq!(report.rows_in("usage_dedup"), 180);
    assert_eq!(report.rows_in("usage_claim_blocks"), 0);
    assert!(
        report.violations.iter().any(|v| v.table == "usage_dedup"),
        "{report}"
    );
    drop(db);
    let p = crate::layout::plan(&path).unwrap();
    assert_eq!((p.file_layout, p.action), (13, "upgrade"), "{p}");
    let steps: Vec<(u64, u64)> = p.steps.iter().map(|s| (s.to_layout, s.rows)).collect();
    assert_eq!(steps, [(14, 180), (15, 0)], "{p}");

    let db = Bespin::open(&path).unwrap();
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_dedup"), 0);
    assert_eq!(
        db.read(|r, _| crate::layout::version(r)).unwrap(),
        crate::layout::CURRENT
    );
    for (p, n) in [(&a, 150), (&b, 30)] {
        let runs = runs_of(&db, p);
        assert_eq!(runs.live.len(), 1, "one run per tenant: {runs:?}");
        assert_eq!(runs.live[0].count, n);
    }
    for (p, id, u) in &first {
        let r = db
            .record_usage_events(
                p,
                UsageEvents::batch(&batch(std::slice::from_ref(id))).unwrap(),
            )
            .unwrap();
        assert_eq!(usage_ids(&r), std::slice::from_ref(u), "{id}");
        assert_eq!(statuses(&r), ["duplicate"]);
    }
    let new = UsageEvents::batch(&batch(&["new".to_owned()])).unwrap();
    assert_eq!(
        statuses(&db.record_usage_events(&a, new).unwrap()),
        ["accepted"]
    );
    assert_clean(&db);
}

#[test]
fn the_upgrade_writes_a_tenants_rows_as_runs_of_at_most_a_slice() {
    let (db, _, a, _) = setup();
    let b = another(&db);
    let ids: Vec<String> = (0..150).map(|i| format!("s{i}")).collect();
    let mut first: Vec<(Principal, String, String)> = Vec::new();
    for (p, chunk) in [(&a, &ids[..]), (&b, &ids[..30])] {
        let r = post(&db, p, batch(chunk));
        for (id, u) in chunk.iter().zip(usage_ids(&r)) {
            first.push((p.clone(), id.clone(), u));
        }
    }
    // Back to layout 13's rows, then moved in slices of 40: a's 150 rows as four runs, b's
    // 30 as one; the upgrade that follows finds the table empty and records this build's layout.
    db.write(|tx, ctx| {
        crate::layout::set_old_for_test(tx, 13)?;
        assert_eq!(crate::metering::ingest::rows_to_runs_in(tx, 40)?, 180);
        crate::layout::upgrade(tx, ctx)
    })
    .unwrap();
    let counts =
        |p: &Principal| -> Vec<u64> { runs_of(&db, p).live.iter().map(|r| r.count).collect() };
    assert_eq!(counts(&a), [40, 40, 40, 30]);
    assert_eq!(counts(&b), [30]);
    assert_clean(&db);
    for (p, id, u) in &first {
        let r = post(&db, p, batch(std::slice::from_ref(id)));
        assert_eq!(usage_ids(&r), std::slice::from_ref(u), "{id}");
    }
    assert_eq!(statuses(&post(&db, &b, batch(&ids[30..31]))), ["accepted"]);
}
