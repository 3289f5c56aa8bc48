//! Layout 12: the tenant part of every tenant-scoped key written as the 16 bytes of the tenant
//! id (`0x00 0x03` first) instead of its 36 characters of text, and so the CloudEvent id of a
//! de-duplication key when it is a UUID.
//!
//! Why: the tenant id comes first in every key of a tenant-scoped table, and a branch page of
//! redb's B-trees holds whole keys; 20 bytes fewer a key put more children in a branch and more
//! rows in a leaf, so a commit rewrites fewer pages (a batch of task creates: 294 → 275 KiB
//! written a commit, measured in the commit that brought this layout). Ids that are not UUIDs
//! in canonical form (none Bespin makes) keep the text form: see
//! [`crate::store::parts::uuid_bytes`].
//!
//! A CloudEvent id chosen by a client is as often a UUIDv4, which puts each new
//! de-duplication row at a random place of its table: its page is written for that row alone,
//! and the fewer bytes a row, the fewer pages the table has for a batch's rows to fall on
//! (`USAGE_BENCH_IDS=random usage_bench`: measured in the commit that brought it).
//!
//! The upgrade moves each row whose tenant part is canonical text to the same key with the
//! tenant part as bytes, table by table and in bounded steps of memory, then each
//! de-duplication row whose id is a canonical UUID as text, in the transaction that opens the
//! file; it runs before every other step, so those read and write keys of one form.

use crate::error::Result;
use crate::metering::ingest::USAGE_DEDUP;
use crate::store::{Flow, Order, Reader, TableInfo, WriteTx, ext_ids_as_bytes, parts};
use std::ops::Bound;

/// Rows moved a step: what the upgrade holds in memory at once.
const STEP: usize = 10_000;

/// The first bytes of a key whose tenant part is a UUID as text: its first hex digit.
const TEXT_FROM: &[u8] = b"0";
const TEXT_TO: &[u8] = b"g";

/// The stored key `key` with its tenant part as bytes, when that part is a canonical UUID
/// written as text; `None` for any other key.
fn as_bytes_form(key: &[u8]) -> Option<Vec<u8>> {
    let (tenant, next) = parts::get_str(key, 0)?;
    parts::uuid_bytes(&tenant)?;
    let mut out = Vec::with_capacity(key.len().saturating_sub(20));
    parts::tenant::put(&tenant, &mut out);
    out.extend_from_slice(key.get(next..)?);
    Some(out)
}

/// Rewrites the tenant part of every tenant-scoped key, then the CloudEvent id of every
/// de-duplication key (see the [module](self) docs); returns how many rows moved.
pub(crate) fn rekey(tx: &mut WriteTx) -> Result<u64> {
    let mut moved = 0;
    for table in tables() {
        moved += move_rows(tx, table, TEXT_FROM, Some(TEXT_TO), as_bytes_form)?;
    }
    moved += move_rows(tx, USAGE_DEDUP.name(), &[], None, dedup_id_as_bytes)?;
    Ok(moved)
}

/// A de-duplication key with its CloudEvent id as bytes, when it is a UUID as text: by the
/// rule of every id part of layout 13 (`super::ext_ids`).
fn dedup_id_as_bytes(key: &[u8]) -> Option<Vec<u8>> {
    ext_ids_as_bytes(USAGE_DEDUP.layout(), key)
}

/// Moves the rows of `table` with keys from `lo` to before `hi` (to the end: `None`) that
/// `new_key` maps, `STEP` at a time; a moved key must sort before the key it replaces or
/// outside that range (else the walk, which goes on after the last key it visited, would
/// visit it again, harmless only where `new_key` maps no key it made). The upgrade steps of
/// layouts 12 and 13 share it.
pub(super) fn move_rows(
    tx: &mut WriteTx,
    table: &'static str,
    lo: &[u8],
    hi: Option<&[u8]>,
    new_key: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> Result<u64> {
    let hi = hi.map_or(Bound::Unbounded, Bound::Excluded);
    let mut moved = 0;
    let mut from = Bound::Included(lo.to_vec());
    loop {
        let mut step: Vec<(Vec<u8>, Vec<u8>, Vec<u8>)> = Vec::new();
        let mut last: Option<Vec<u8>> = None;
        let lower = from.as_ref().map(Vec::as_slice);
        tx.scan_raw(table, lower, hi, Order::Asc, &mut |k, v| {
            if let Some(to) = new_key(k) {
                step.push((k.to_vec(), to, v.to_vec()));
            }
            last = Some(k.to_vec());
            Ok(if step.len() >= STEP {
                Flow::Stop
            } else {
                Flow::Continue
            })
        })?;
        for (old, new, value) in &step {
            tx.move_unlogged(table, old, new, value)?;
        }
        moved += step.len() as u64;
        match last {
            Some(k) if step.len() >= STEP => from = Bound::Excluded(k),
            _ => return Ok(moved),
        }
    }
}

/// The tenant-scoped tables: what the upgrade rewrites (and `bespin layout` counts).
pub(crate) fn tables() -> Vec<&'static str> {
    crate::schema::tables()
        .iter()
        .filter(|t| t.tenant_scoped())
        .map(|t| t.name())
        .collect()
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::coreos::search::SearchQuery;
    use crate::coreos::tasks::NewTask;
    use crate::coreos::timeline::TimelineQuery;
    use crate::metering::ingest::{Outcome, UsageEvents};
    use crate::{Bespin, Principal, testutil};

    /// The keys whose tenant part is a UUID's bytes: those starting with [`parts::UUID_TAG`].
    const BYTES_FROM: &[u8] = &parts::UUID_TAG;
    const BYTES_TO: &[u8] = &[parts::UUID_TAG[0], parts::UUID_TAG[1] + 1];

    /// The key `key` with its tenant part as text again (the layouts before 12).
    fn as_text_form(key: &[u8]) -> Option<Vec<u8>> {
        if !key.starts_with(BYTES_FROM) {
            return None;
        }
        let (tenant, next) = parts::tenant::get(key, 0)?;
        let mut out = Vec::new();
        parts::put_str(&tenant, &mut out);
        out.extend_from_slice(key.get(next..)?);
        Some(out)
    }

    /// Writes every tenant-scoped key as the layouts before 12 did (after the id parts of
    /// layout 13: [`super::super::ext_ids::tests::to_text`]).
    pub(crate) fn to_text(tx: &mut WriteTx) -> Result<()> {
        move_rows(tx, USAGE_DEDUP.name(), &[], None, dedup_id_as_text)?;
        for t in tables() {
            move_rows(tx, t, BYTES_FROM, Some(BYTES_TO), as_text_form)?;
        }
        Ok(())
    }

    /// A de-duplication key with its CloudEvent id as text, when it is a UUID as bytes.
    fn dedup_id_as_text(key: &[u8]) -> Option<Vec<u8>> {
        super::super::ext_ids::tests::ext_ids_as_text(USAGE_DEDUP.layout(), key)
    }

    /// Rows of the tenant-scoped tables whose tenant part is bytes, and those where it is text.
    fn forms(db: &Bespin) -> (u64, u64) {
        let rows_in = |r: &crate::ReadTx, lo: &[u8], hi: &[u8]| {
            let mut n = 0;
            for t in tables() {
                let (lo, hi) = (Bound::Included(lo), Bound::Excluded(hi));
                r.scan_raw(t, lo, hi, Order::Asc, &mut |_, _| {
                    n += 1;
                    Ok(Flow::Continue)
                })?;
            }
            Ok::<u64, crate::Error>(n)
        };
        db.read(|r, _| {
            Ok((
                rows_in(r, BYTES_FROM, BYTES_TO)?,
                rows_in(r, TEXT_FROM, TEXT_TO)?,
            ))
        })
        .unwrap()
    }

    /// De-duplication rows whose key `convert` would move.
    fn claims(db: &Bespin, convert: fn(&[u8]) -> Option<Vec<u8>>) -> usize {
        let mut n = 0;
        db.read(|r, _| {
            let all = (Bound::Unbounded, Bound::Unbounded);
            r.scan_raw(USAGE_DEDUP.name(), all.0, all.1, Order::Asc, &mut |k, _| {
                n += usize::from(convert(k).is_some());
                Ok(Flow::Continue)
            })
        })
        .unwrap();
        n
    }

    /// The claims in live runs of every tenant (layout 14).
    fn live_claims(db: &Bespin) -> usize {
        let tenants: Vec<String> = db
            .read(|r, _| {
                let t = &crate::metering::claims::USAGE_CLAIM_RUNS;
                let mut out = Vec::new();
                r.scan(t, &t.prefix(), Order::Asc, |k, _| {
                    out.extend(
                        crate::metering::claims::RunsKey::decode(k)
                            .map(|k| k.tenant_id.into_owned()),
                    );
                    Ok(Flow::Continue)
                })?;
                Ok(out)
            })
            .unwrap();
        let count = |r: &crate::ReadTx, t: &str| crate::metering::claims::live_claims(r, t);
        tenants
            .iter()
            .map(|t| db.read(|r, _| count(r, t)).unwrap().len())
            .sum()
    }

    /// What a tenant's admin reads back: its tasks, a search, a record's timeline, its events.
    fn seen(db: &Bespin, p: &Principal, task_id: &str) -> String {
        let tasks = db
            .list_tasks(
                p,
                &crate::coreos::tasks::TaskQuery::from_json(&serde_json::json!({})).unwrap(),
            )
            .unwrap();
        let q = SearchQuery::from_json(&serde_json::json!({ "q": "plan" })).unwrap();
        let found = db.search(p, &q).unwrap();
        let q = serde_json::json!({ "entity_type": "task", "entity_id": task_id });
        let history = db
            .timeline(p, &TimelineQuery::from_json(&q).unwrap())
            .unwrap();
        let events = db
            .events(
                p,
                &crate::events::EventQuery::from_json(&serde_json::json!({})).unwrap(),
            )
            .unwrap();
        format!(
            "{:?}\n{:?}\n{:?}\n{:?}",
            tasks.items.iter().map(|t| &t.title).collect::<Vec<_>>(),
            found.results.iter().map(|h| &h.title).collect::<Vec<_>>(),
            history.items.len(),
            events.items.iter().map(|e| &e.id).collect::<Vec<_>>(),
        )
    }

    #[test]
    fn keys_of_layout_11_get_the_tenant_as_bytes_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.redb");
        let db = Bespin::open(&path).unwrap();
        let mut tenants = Vec::new();
        for title in ["Hiring plan", "Pricing plan"] {
            let (admin, _) = testutil::tenant(&db);
            let task = NewTask::from_json(&serde_json::json!({ "title": title })).unwrap();
            let t = db.create_task(&admin, task).unwrap();
            let before = seen(&db, &admin, &t.task_id);
            tenants.push((admin, t.task_id, before));
        }
        // Reported usage: two ids that are UUIDs (a claim keyed by their bytes), one that is not.
        let ids = [
            "0f9e8d7c-6b5a-4948-8776-655443322110",
            "a0000000-0000-4000-8000-000000000001",
            "evt-1",
        ];
        let (admin, task_id, before) = &mut tenants[0];
        testutil::report_usage(&db, admin, &ids);
        *before = seen(&db, admin, task_id);
        let (moved, text_now) = forms(&db);
        assert!(moved > 20, "{moved}");
        assert_eq!(text_now, 0, "this build writes no tenant as text");

        assert_eq!(live_claims(&db), 3, "in runs of claims (layout 14)");
        assert_eq!(claims(&db, |_| Some(Vec::new())), 0, "no row of layout 13");
        db.tamper(|tx| crate::layout::set_old_for_test(tx, 11));
        assert_eq!(live_claims(&db), 0);
        assert_eq!(forms(&db), (0, moved));
        assert_eq!(claims(&db, dedup_id_as_bytes), 2, "two ids as text");
        assert!(
            db.check()
                .unwrap()
                .violations
                .iter()
                .any(|v| v.table == "meta"),
            "layout 11 is not this build's"
        );
        drop(db);
        let p = crate::layout::plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (11, "upgrade"), "{p}");
        let steps: Vec<(u64, u64)> = p.steps.iter().map(|s| (s.to_layout, s.rows)).collect();
        assert_eq!(steps[0], (12, moved), "{p}");
        assert_eq!(
            steps.len(),
            4,
            "and the id parts after the tenant, 14 and 15: {p}"
        );
        assert_eq!(steps[2], (14, 3), "the three rows into runs: {p}");

        let db = Bespin::open(&path).unwrap();
        assert_eq!(forms(&db), (moved, 0));
        assert_eq!(claims(&db, |_| Some(Vec::new())), 0, "moved into runs");
        assert_eq!(live_claims(&db), 3);
        // The events reported before are still remembered: sent again, each is a duplicate.
        let (admin, ..) = &tenants[0];
        let again: Vec<serde_json::Value> = ids
            .iter()
            .map(|id| {
                serde_json::json!({"specversion": "1.0", "id": id, "source": "svc",
                                   "type": "llm_tokens", "data": {"value": 5}})
            })
            .collect();
        let again = UsageEvents::batch(&serde_json::json!(again)).unwrap();
        let report = db.record_usage_events(admin, again).unwrap();
        assert_eq!(report.results.len(), 3);
        for r in &report.results {
            assert!(matches!(r.outcome, Outcome::Duplicate { .. }), "{report:?}");
        }
        assert!(db.check().unwrap().violations.is_empty());
        for (admin, task_id, before) in &tenants {
            assert_eq!(&seen(&db, admin, task_id), before);
        }
        // And the tenants go on writing in the new layout.
        let (admin, ..) = &tenants[0];
        let task = NewTask::from_json(&serde_json::json!({ "title": "Board plan" })).unwrap();
        db.create_task(admin, task).unwrap();
        let q = SearchQuery::from_json(&serde_json::json!({ "q": "plan" })).unwrap();
        assert_eq!(db.search(admin, &q).unwrap().results.len(), 2);
        assert!(db.check().unwrap().violations.is_empty());
    }
}
