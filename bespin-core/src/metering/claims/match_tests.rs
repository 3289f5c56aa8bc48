//! A claim holds only a hash of its `(source, id)` (layout 15): a match is confirmed on the
//! event it names — in the request's own chunk, in a stored chunk, or in a usage event of a
//! row of its own — and blocks of layout 14, which held the source and id too, are read as
//! they are and written anew by merges.
#![allow(clippy::unwrap_used)]

use super::tests::{assert_clean, batch, lookup, runs_of, usage_ids};
use super::{
    Claim, ClaimBlock, Claims, FANOUT, RunsKey, USAGE_CLAIM_BLOCKS, USAGE_CLAIM_RUNS, hash,
};
use crate::metering::chunk::{self, UsageChunk};
use crate::metering::ingest_tests::{post, setup, statuses};
use crate::metering::{Origin, UsageEventRec};
use crate::money::Amount;
use crate::store::{Flow, NameKey, Order, Reader};
use std::collections::HashMap;

/// The first byte of every stored block (its version).
fn versions(db: &crate::Bespin) -> Vec<u8> {
    db.read(|r, _| {
        let mut v = Vec::new();
        let t = &USAGE_CLAIM_BLOCKS;
        r.scan_stored(
            t,
            &t.prefix(),
            std::ops::Bound::Unbounded,
            std::ops::Bound::Unbounded,
            Order::Asc,
            &mut |_, b| {
                v.push(b[0]);
                Ok(Flow::Continue)
            },
        )?;
        Ok(v)
    })
    .unwrap()
}

#[test]
fn blocks_of_layout_14_answer_as_before_and_merges_write_them_anew() {
    let (db, _clock, admin, _) = setup();
    let ids: Vec<String> = (0..300).map(|i| format!("old-{i}")).collect();
    let first = usage_ids(&post(&db, &admin, batch(&ids)));
    let of_hash: HashMap<u64, String> =
        ids.iter().map(|id| (hash("svc", id), id.clone())).collect();
    // Every block rewritten as layout 14 stored it, and the file marked layout 14.
    db.tamper(|tx| {
        let t = &USAGE_CLAIM_BLOCKS;
        let mut blocks: Vec<(Vec<u8>, ClaimBlock)> = Vec::new();
        tx.scan(t, &t.prefix(), Order::Asc, |k, b| {
            blocks.push((k.to_vec(), b));
            Ok(Flow::Continue)
        })?;
        for (k, b) in blocks {
            let old: Vec<(Claim, &str, &str)> = (b.claims.iter())
                .map(|c| (*c, "svc", of_hash[&c.h].as_str()))
                .collect();
            tx.raw_insert_for_test(t.name(), &k, &super::block::layout_14(&old))?;
        }
        tx.put(&crate::layout::META, &NameKey::new("layout"), &14)
    });
    assert!(versions(&db).iter().all(|v| *v == 1));
    db.write(crate::layout::upgrade).unwrap();
    assert_eq!(db.read(|r, _| crate::layout::version(r)).unwrap(), 15);
    assert!(
        versions(&db).iter().all(|v| *v == 1),
        "the upgrade rewrites nothing"
    );
    assert_clean(&db);
    let answers: Vec<Option<String>> = first.iter().cloned().map(Some).collect();
    assert_eq!(lookup(&db, &admin, &ids), answers);
    let again = post(&db, &admin, batch(&ids[..50]));
    assert!(statuses(&again).iter().all(|s| *s == "duplicate"));
    assert_eq!(usage_ids(&again), first[..50]);
    // Runs of the same size class until the old run is merged, and the merge finished.
    for k in 0..2 * FANOUT {
        let more: Vec<String> = (0..300).map(|i| format!("new-{k}-{i}")).collect();
        post(&db, &admin, batch(&more));
    }
    db.purge_usage_dedup(100_000).unwrap();
    assert!(runs_of(&db, &admin).merge.is_none());
    assert!(versions(&db).iter().all(|v| *v == 2), "{:?}", versions(&db));
    assert_eq!(lookup(&db, &admin, &ids), answers);
    assert_clean(&db);
}

#[test]
fn a_claim_made_earlier_in_a_request_counts_for_its_own_event_only() {
    let (db, _clock, admin, _) = setup();
    let tenant = admin.tenant_id().to_owned();
    let found = db
        .write(move |tx, ctx| {
            let retention = ctx.options.usage_dedup_retention_micros;
            let mut c = Claims::open(tx, &tenant, None)?;
            // Event 7 of the request, reported as `id`.
            let pending = |id: &str| {
                let mut c = UsageChunk::new("u", "r");
                c.push(chunk::Accepted {
                    seq: 7,
                    event_key: "llm_tokens",
                    credits_per_unit: Amount::from_int(1),
                    list_price_per_credit: Amount::from_int(1),
                    source: "svc",
                    id: id.into(),
                    subject: None,
                    at: ctx.now,
                    raw_units: Amount::from_int(1),
                });
                c
            };
            // Event 7 claimed under the hash of "victim": when 7 is "other" (as a collision
            // would make it), "victim" is not found; when 7 is "victim", it is.
            let h = hash("svc", "victim");
            c.add(h, 7);
            let mut find = |of: &str| {
                let events = pending(of);
                c.find(tx, (0, h), ("svc", "victim"), &events, ctx.now, retention)
            };
            Ok([find("other")?, find("victim")?])
        })
        .unwrap();
    assert_eq!(found, [None, Some(7)]);
}

#[test]
fn a_claim_is_confirmed_on_a_usage_event_of_a_row_of_its_own() {
    // Events reported before chunks (layouts 9 and 10) are rows of `usage_events`.
    let (db, _clock, admin, _) = setup();
    let tenant = admin.tenant_id().to_owned();
    let seq = db
        .write(move |tx, ctx| {
            let rec = UsageEventRec {
                user_id: "u".into(),
                event_key: "llm_tokens".into(),
                raw_units: Amount::from_int(1),
                credits: Amount::from_int(1),
                list_cost_estimate: Amount::from_int(1),
                tool_name: None,
                request_id: "r".into(),
                created_at: ctx.now,
                origin: Some(Box::new(Origin {
                    source: "svc".into(),
                    id: "row-1".into(),
                    subject: None,
                })),
            };
            let seq = crate::metering::write_event(tx, &tenant, &rec)?;
            let key = RunsKey::new(&tenant);
            let mut runs = tx.get(&USAGE_CLAIM_RUNS, &key)?.unwrap_or_default();
            let claim = Claim {
                h: hash("svc", "row-1"),
                seq,
                accepted_at: ctx.now,
            };
            let no = runs.next;
            runs.next += 1;
            runs.live.push(super::write_run(tx, &tenant, no, &[claim])?);
            tx.put(&USAGE_CLAIM_RUNS, &key, &runs)?;
            Ok(seq)
        })
        .unwrap();
    let id = vec!["row-1".to_owned()];
    let sealed = db
        .read(|r, _| Ok(format!("use_{}", r.sealer().seal(seq))))
        .unwrap();
    assert_eq!(lookup(&db, &admin, &id), [Some(sealed.clone())]);
    let r = post(&db, &admin, batch(&id));
    assert_eq!(
        (statuses(&r), usage_ids(&r)),
        (vec!["duplicate"], vec![sealed])
    );
}
