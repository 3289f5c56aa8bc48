//! Reported usage events stored in chunks ([`super::chunk`]), beside usage events of rows of
//! their own: the export (a cursor inside a chunk), the ledger, the checker and the purge read
//! both alike.
#![allow(clippy::unwrap_used)]

use super::chunk::{USAGE_CHUNKS, UsageChunk, UsageChunkKey};
use super::export::{ExportPage, ExportQuery, OrderEntry, USAGE_ALL_BY_SEQ, UsageSeqKey};
use super::ingest_tests::{builtin_usage, event, post, setup, statuses, unchunk, used_tokens};
use crate::check::testing::caught;
use crate::money::Amount;
use crate::store::{Flow, Order, Reader, WriteTx};
use crate::{Bespin, Principal};
use serde_json::{Value, json};

const DAY: i64 = 86_400 * 1_000_000;

/// Every chunk, with its key.
fn chunks(tx: &WriteTx) -> Vec<(UsageChunkKey<'static>, UsageChunk)> {
    let mut out = Vec::new();
    let prefix = USAGE_CHUNKS.prefix();
    tx.scan(&USAGE_CHUNKS, &prefix, Order::Asc, |k, c: UsageChunk| {
        out.push((UsageChunkKey::decode(k).unwrap().into_owned(), c));
        Ok(Flow::Continue)
    })
    .unwrap();
    out
}

/// The whole export (a tenant's, or the platform's with `None`) read `limit` at a time, each
/// page read twice (the same both times); and the pages.
fn walk(db: &Bespin, who: Option<&Principal>, limit: usize) -> Vec<ExportPage> {
    let read = |q| match who {
        Some(p) => db.usage_export(p, q).unwrap(),
        None => db.admin_usage_export(q).unwrap(),
    };
    let mut pages = Vec::new();
    let mut q = ExportQuery::from_start(limit);
    loop {
        let page = read(q);
        assert_eq!(read(q), page, "a cursor read twice gives the same page");
        if page.events.is_empty() {
            return pages;
        }
        let limit = limit.to_string();
        q = ExportQuery::parse(db, page.next_cursor.as_deref(), Some(&limit)).unwrap();
        pages.push(page);
    }
}

fn ids(pages: &[ExportPage]) -> Vec<String> {
    pages
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.id.clone()))
        .collect()
}

#[test]
fn chunked_events_export_and_list_as_rows_of_their_own_do_with_a_cursor_inside_a_chunk() {
    let (db, _, admin, _) = setup();
    builtin_usage(&db, &admin, 2);
    post(
        &db,
        &admin,
        json!([event("a1", json!(1)), event("a2", json!(2))]),
    );
    // Those two as layout 10 stored them (a row each), then Bespin's own metering.
    db.tamper(|tx| unchunk(tx).map(drop));
    builtin_usage(&db, &admin, 1);
    // A repeat of an event of its own row, and a refusal, between new events: neither in the
    // chunk, and neither takes a number (a repeat is found among the claims first).
    let mut old = event("r", json!(1));
    old["time"] = json!("2025-12-01T00:00:00Z");
    let batch = json!([
        event("b1", json!(1)),
        event("a2", json!(9)),
        event("b2", json!(0.5)),
        old,
        event("b3", json!(3)),
        event("b4", json!(4))
    ]);
    let r = post(&db, &admin, batch);
    let s = [
        "accepted",
        "duplicate",
        "accepted",
        "rejected",
        "accepted",
        "accepted",
    ];
    assert_eq!(statuses(&r), s);
    builtin_usage(&db, &admin, 1);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_chunks"), 1);
    db.tamper(|tx| {
        let c = chunks(tx);
        let seqs: Vec<u64> = c[0].1.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs.len(), 4);
        assert_eq!(
            seqs[3],
            seqs[0] + 3,
            "no number left unused inside: {seqs:?}"
        );
        Ok(())
    });

    let tenant_all = walk(&db, Some(&admin), 1000);
    let platform_all = walk(&db, None, 1000);
    assert_eq!(ids(&tenant_all).len(), 2 + 2 + 1 + 4 + 1);
    // The accepted events' ids, in the order they were accepted.
    let accepted: Vec<String> = r
        .results
        .iter()
        .filter(|x| statuses_of(x) == "accepted")
        .map(|x| match &x.outcome {
            super::ingest::Outcome::Accepted { usage_id } => usage_id.to_string(),
            _ => unreachable!(),
        })
        .collect();
    let exported = ids(&tenant_all);
    assert_eq!(exported[5..9], accepted[..]);
    // Pages of 1 to 3 cut the chunk anywhere: the cursor points inside it and the next page
    // resumes right after (`walk` reads every cursor twice).
    for limit in 1..=3 {
        assert_eq!(ids(&walk(&db, Some(&admin), limit)), exported, "{limit}");
        assert_eq!(ids(&walk(&db, None, limit)), ids(&platform_all));
    }
    let q = ExportQuery::parse(&db, Some(&accepted[0]), Some("2")).unwrap();
    let next = db.usage_export(&admin, q).unwrap();
    assert_eq!(ids(&[next]), accepted[1..3]);
    let ledger = |db: &Bespin| db.billing_ledger(&admin, None, 1000).unwrap();
    let ledger_3 = |db: &Bespin| db.billing_ledger(&admin, None, 3).unwrap();
    let (listed, listed_3) = (ledger(&db), ledger_3(&db));
    assert_eq!(listed.items.len(), 10);
    assert_eq!(listed.items[..3], listed_3.items[..]);

    // The same events stored a row each read the same, byte for byte.
    db.tamper(|tx| unchunk(tx).map(drop));
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_chunks"), 0);
    assert_eq!(walk(&db, Some(&admin), 1000), tenant_all);
    assert_eq!(walk(&db, None, 1000), platform_all);
    assert_eq!(ledger(&db), listed);
    assert_eq!(ledger_3(&db), listed_3);
}

fn statuses_of(x: &super::ingest::EventResult) -> &'static str {
    match x.outcome {
        super::ingest::Outcome::Accepted { .. } => "accepted",
        super::ingest::Outcome::Duplicate { .. } => "duplicate",
        super::ingest::Outcome::Rejected(_) => "rejected",
    }
}

/// Rewrites the (only) chunk with `f` applied, at the key `f` leaves it at.
fn rewrite(db: &Bespin, f: impl FnOnce(&mut UsageChunkKey<'static>, &mut UsageChunk)) {
    db.tamper(|tx| {
        let (mut k, mut c) = chunks(tx).remove(0);
        tx.delete(&USAGE_CHUNKS, &k)?;
        f(&mut k, &mut c);
        tx.put(&USAGE_CHUNKS, &k, &c)
    });
}

#[test]
fn the_checker_catches_a_tampered_chunk() {
    let fresh = || {
        let (db, _, admin, _) = setup();
        let batch = json!([
            event("a", json!(1)),
            event("b", json!(2)),
            event("c", json!(3))
        ]);
        post(&db, &admin, batch);
        assert!(db.check().unwrap().is_ok());
        db
    };
    // An event's units changed: its rollups no longer add up.
    let db = fresh();
    rewrite(&db, |_, c| c.events[1].raw_units = Amount::from_int(5));
    caught(&db, "period_rollups", "raw units");
    caught(&db, "day_rollups", "raw units");
    // An event dropped: its claim names nothing, the rollups are off, the order rows count 3.
    let db = fresh();
    rewrite(&db, |_, c| drop(c.events.remove(2)));
    caught(&db, "usage_claim_blocks", "names no usage event");
    caught(&db, "period_rollups", "raw units");
    caught(&db, "usage_all_by_seq", "wrong value");
    // Keyed at an instant that is not its latest event's (the ledger would stop too early).
    let db = fresh();
    rewrite(&db, |k, _| k.last_at.0 -= 1);
    caught(&db, "usage_chunks", "not the latest");
    // Numbers out of order.
    let db = fresh();
    rewrite(&db, |_, c| c.events.swap(1, 2));
    caught(&db, "usage_chunks", "not increasing");
    // An order row that does not name the chunk's count.
    let db = fresh();
    db.tamper(|tx| {
        let (k, c) = chunks(tx).remove(0);
        let key = UsageSeqKey::new(c.first_seq(), &k.tenant_id);
        let wrong = OrderEntry {
            at: k.last_at,
            reported: true,
            chunk: 2,
        };
        tx.put(&USAGE_ALL_BY_SEQ, &key, &wrong)
    });
    caught(&db, "usage_all_by_seq", "wrong value");
    // A usage event numbered inside a chunk's numbers (an export resuming inside the chunk
    // would skip it): a request records every number of its chunk, nothing else between.
    let db = fresh();
    db.tamper(|tx| {
        let (k, c) = chunks(tx).remove(0);
        let mut rec = c.record(&c.events[0])?;
        rec.origin = None;
        super::write_numbered(tx, &k.tenant_id, c.events[1].seq, &rec)
    });
    caught(&db, "usage_events", "inside a chunk");
}

/// A request's claims are one run, dropped whole once its latest claim is past the retention;
/// a live run stays.
#[test]
fn a_requests_claims_are_dropped_together_and_a_live_run_stays() {
    let (db, clock, admin, _) = setup();
    let batch = |p: &str| -> Value {
        Value::Array(
            (0..3)
                .map(|i| event(&format!("{p}{i}"), json!(1)))
                .collect(),
        )
    };
    post(&db, &admin, batch("x"));
    builtin_usage(&db, &admin, 1);
    clock.advance(20 * DAY);
    post(&db, &admin, batch("y"));
    clock.advance(13 * DAY);
    // x's retention ended, y's did not: x's run of three goes in one call even with a bound
    // of 1 (its two rows deleted with it).
    assert_eq!(db.purge_usage_dedup(1).unwrap(), 3);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 0);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(report.rows_in("usage_claim_blocks"), 1, "y's run");
    assert_eq!(report.rows_in("usage_claim_filters"), 1);
    let r = post(
        &db,
        &admin,
        json!([event("x1", json!(1)), event("y1", json!(1))]),
    );
    assert_eq!(statuses(&r), ["accepted", "duplicate"]);
    assert_eq!(used_tokens(&db, &admin), 1.0);
    clock.advance(20 * DAY);
    assert_eq!(db.purge_usage_dedup(100).unwrap(), 3);
    let report = db.check().unwrap();
    assert!(report.is_ok(), "{report}");
    assert_eq!(
        report.rows_in("usage_claim_blocks"),
        1,
        "x1's run, accepted again"
    );
}

#[test]
fn the_console_shows_and_counts_a_chunks_events_as_rows_of_their_own() {
    let (db, _, admin, _) = setup();
    // Built-in usage (rows of their own) before and after the chunk: shown merged in key
    // order, as the same events would be as rows.
    builtin_usage(&db, &admin, 1);
    post(
        &db,
        &admin,
        json!([event("a", json!(1)), event("b", json!(2.5))]),
    );
    builtin_usage(&db, &admin, 1);
    let t = admin.tenant_id();
    let count = |db: &Bespin| {
        let c = db.console().counts().unwrap();
        c.iter().find(|(l, _)| *l == "Usage Events").unwrap().1
    };
    let shown = db
        .console()
        .rows("usage_events", Some(t), 100)
        .unwrap()
        .unwrap();
    assert_eq!(shown.len(), 4);
    assert_eq!(count(&db), 4);
    let origin = |row: &crate::console::Row| {
        let v = row
            .iter()
            .find(|(c, _)| c == "origin")
            .map(|(_, v)| v.clone());
        v.and_then(|o| o.get("id").cloned()).unwrap_or(Value::Null)
    };
    let origins: Vec<Value> = shown.iter().map(origin).collect();
    assert_eq!(origins, [Value::Null, json!("a"), json!("b"), Value::Null]);
    assert_eq!(
        db.console()
            .rows("usage_events", None, 1)
            .unwrap()
            .unwrap()
            .len(),
        1
    );
    db.tamper(|tx| unchunk(tx).map(drop));
    assert_eq!(
        db.console()
            .rows("usage_events", Some(t), 100)
            .unwrap()
            .unwrap(),
        shown
    );
    assert_eq!(count(&db), 4);
}
