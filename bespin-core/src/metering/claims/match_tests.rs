//! What makes a match (layout 15): both hashes of a claim, in a request's own claims and in
//! stored runs; and blocks of layout 14, which held the source and id instead of the second
//! hash, read as they are and written anew by merges.
#![allow(clippy::unwrap_used)]

use super::tests::{assert_clean, batch, lookup, runs_of, usage_ids};
use super::{Claim, ClaimBlock, Claims, FANOUT, USAGE_CLAIM_BLOCKS, hash, hash2, hashes};
use crate::metering::ingest_tests::{post, setup, statuses};
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
fn a_claim_made_earlier_in_a_request_matches_on_both_hashes_only() {
    let (db, _clock, admin, _) = setup();
    let tenant = admin.tenant_id().to_owned();
    let found = db
        .write(move |tx, ctx| {
            let retention = ctx.options.usage_dedup_retention_micros;
            let mut c = Claims::open(tx, &tenant, None)?;
            // Event 7 claimed with "victim"'s first hash and "other"'s second, as a collision
            // of the first would make it.
            let (h, h2) = (hash("svc", "victim"), hash2("svc", "other"));
            c.add((h, h2), 7);
            let victim = c.find(tx, (0, hashes("svc", "victim")), ctx.now, retention)?;
            let same = c.find(tx, (1, (h, h2)), ctx.now, retention)?;
            Ok([victim, same])
        })
        .unwrap();
    assert_eq!(found, [None, Some(7)]);
}
