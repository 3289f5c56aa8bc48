//! Layout 13: the id parts of keys after the first — a record's id in the list orders and the
//! search index, an event's, a user's, a KPI's, a tenant's in a global key, an idempotency
//! key — written as [`parts::ext_id`](crate::store::parts::ext_id) parts: a canonical UUID
//! (every id Bespin makes, most keys clients choose) as `0x00 0x03` and its 16 bytes instead
//! of its 36 characters, any other id as its text, by the rule layout 12 gave the tenant part.
//!
//! Why: a branch page of redb's B-trees holds whole keys, and a commit rewrites a root-to-leaf
//! path of every table it touches; a task create writes about 14 tables, half of them keyed
//! by an id after the tenant (search entries and rank row, `co_tasks_by_due`, the timeline's
//! per-record index, `usage_all_by_seq`, the idempotency rows). 20 bytes fewer a key put more
//! children in a branch and more rows in a leaf: lower trees, fewer pages a commit (figures:
//! docs/performance.md, "The write path, sixth pass").
//!
//! Left as text: the parts of the tables of older layouts that the upgrade empties or never
//! writes again (`co_search_docs`, `messages` of layout 1, `kpi_points`,
//! `usage_dedup_by_expiry`), and parts whose values are not UUIDs (API key ids are `key_`
//! and a UUID; words, names, event keys, sources). `id` parts keep their own form: a sealed
//! id is its record number already.
//!
//! The upgrade moves each row of a table with such a part whose key holds a canonical UUID as
//! text there to the same key with those parts as bytes ([`ext_ids_as_bytes`], the one rule,
//! which the layout-12 step applies to the CloudEvent id too), table by table in bounded
//! steps of memory, in the transaction that opens the file; a moved key sorts before the one
//! it replaces, so the walk does not meet it again.

use super::tenant_keys::move_rows;
use crate::error::Result;
use crate::store::{Kind, TableInfo, WriteTx, ext_ids_as_bytes};

/// The tables with an id part that layout 13 writes as bytes: every table whose layout has an
/// `ext_id` part, except the de-duplication rows, whose CloudEvent id is one since layout 12.
pub(crate) fn tables() -> Vec<&'static dyn TableInfo> {
    crate::schema::tables()
        .iter()
        .copied()
        .filter(|t| t.name() != crate::metering::ingest::USAGE_DEDUP.name())
        .filter(|t| t.layout().iter().any(|p| p.kind == Kind::ExtId))
        .collect()
}

/// The names of [`tables`] (what `bespin layout` counts).
pub(crate) fn table_names() -> Vec<&'static str> {
    tables().iter().map(|t| t.name()).collect()
}

/// Rewrites the id parts of every key of [`tables`] that holds a canonical UUID as text there
/// (see the [module](self) docs); returns how many rows moved.
pub(crate) fn rekey(tx: &mut WriteTx) -> Result<u64> {
    let mut moved = 0;
    for t in tables() {
        let layout = t.layout();
        moved += move_rows(tx, t.name(), &[], None, |k| ext_ids_as_bytes(layout, k))?;
    }
    Ok(moved)
}

#[cfg(test)]
pub(crate) mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::coreos::search::SearchQuery;
    use crate::coreos::tasks::{NewTask, TaskQuery};
    use crate::coreos::timeline::TimelineQuery;
    use crate::store::{Flow, Order, Part, PartValue, Reader, parts, read_part, read_parts};
    use crate::tools::InvokeRequest;
    use crate::{Bespin, Principal, testutil};
    use std::ops::Bound;

    /// The key `bytes` of `layout` with each `ext_id` part written as a UUID's bytes written as
    /// text again (the layouts before 13); `None` when there is none.
    pub(crate) fn ext_ids_as_text(layout: &[Part], bytes: &[u8]) -> Option<Vec<u8>> {
        let mut out = Vec::with_capacity(bytes.len() + 40);
        let (mut at, mut changed) = (0, false);
        for p in layout {
            let (v, next) = read_part(p.kind, bytes, at)?;
            match v {
                PartValue::Str(s)
                    if p.kind == Kind::ExtId && bytes[at..].starts_with(&parts::UUID_TAG) =>
                {
                    parts::put_str(&s, &mut out);
                    changed = true;
                }
                _ => out.extend_from_slice(bytes.get(at..next)?),
            }
            at = next;
        }
        (changed && at == bytes.len()).then_some(out)
    }

    /// Writes the id parts of every key of [`tables`] as text, as the layouts before 13 did.
    pub(crate) fn to_text(tx: &mut WriteTx) -> Result<()> {
        for t in tables() {
            let layout = t.layout();
            move_rows(tx, t.name(), &[], None, |k| ext_ids_as_text(layout, k))?;
        }
        Ok(())
    }

    /// Every row of [`tables`]: the table, the key read back part by part, the stored value.
    type Rows = Vec<(&'static str, String, Vec<u8>)>;

    /// The rows of [`tables`] read back (`rows`), and how many keys have an id part as bytes
    /// and how many a UUID as text there.
    fn read(db: &Bespin) -> (Rows, u64, u64) {
        db.read(|r, _| {
            let (mut rows, mut bytes, mut text) = (Vec::new(), 0, 0);
            for t in tables() {
                let all = (Bound::Unbounded, Bound::Unbounded);
                r.scan_raw(t.name(), all.0, all.1, Order::Asc, &mut |k, v| {
                    let parts = read_parts(t.layout(), k).unwrap();
                    rows.push((t.name(), format!("{parts:?}"), v.to_vec()));
                    bytes += u64::from(ext_ids_as_text(t.layout(), k).is_some());
                    text += u64::from(ext_ids_as_bytes(t.layout(), k).is_some());
                    Ok(Flow::Continue)
                })?;
            }
            // The same rows whatever the form: compared in the order of what they say.
            rows.sort();
            Ok((rows, bytes, text))
        })
        .unwrap()
    }

    /// What the admin `p` reads back through the API: tasks in list order, a search, a task's
    /// history (not usage: reads are metered, so it grows).
    fn seen(db: &Bespin, p: &Principal, task_id: &str) -> String {
        let tasks = db
            .list_tasks(p, &TaskQuery::from_json(&serde_json::json!({})).unwrap())
            .unwrap();
        let q = SearchQuery::from_json(&serde_json::json!({ "q": "p" })).unwrap();
        let found = db.search(p, &q).unwrap();
        let q = serde_json::json!({ "entity_type": "task", "entity_id": task_id });
        let history = db
            .timeline(p, &TimelineQuery::from_json(&q).unwrap())
            .unwrap();
        format!(
            "{:?}\n{:?}\n{:?}",
            tasks.items.iter().map(|t| &t.task_id).collect::<Vec<_>>(),
            found
                .results
                .iter()
                .map(|h| (&h.entity_id, &h.title))
                .collect::<Vec<_>>(),
            history
                .items
                .iter()
                .map(|e| &e.event_id)
                .collect::<Vec<_>>(),
        )
    }

    #[test]
    fn id_parts_of_layout_12_become_16_bytes_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("i.redb");
        let db = Bespin::open(&path).unwrap();
        let (admin, _) = crate::check::testing::populate(&db);
        let task = |db: &Bespin, title: &str, due: Option<&str>| {
            let t = serde_json::json!({ "title": title, "due_date": due });
            db.create_task(&admin, NewTask::from_json(&t).unwrap())
                .unwrap()
        };
        // Tasks due on one day: their list order is their ids' after the creation instant.
        let first = task(&db, "Pricing plan", Some("2026-03-01"));
        for title in ["Pricing page", "Plan review", "Partner call"] {
            task(&db, title, Some("2026-03-01"));
            task(&db, title, None);
        }
        testutil::report_usage(
            &db,
            &admin,
            &["b0000000-0000-4000-8000-000000000002", "e-1"],
        );
        let key = "c0000000-0000-4000-8000-000000000003";
        let invoke = |db: &Bespin| {
            let inv = serde_json::json!({"tool_name": "echo", "payload": {"x": 2}});
            db.invoke_tool(&admin, key, InvokeRequest::from_json(&inv).unwrap())
                .unwrap()
        };
        assert!(!invoke(&db).replayed());
        let q = SearchQuery::from_json(&serde_json::json!({ "q": "pricing" })).unwrap();
        let pricing = db.search(&admin, &q).unwrap().results.len();
        assert!(pricing >= 3, "{pricing}");
        // Reads are metered: what they show first, then the rows.
        let shown = seen(&db, &admin, &first.task_id);
        let (rows_before, as_bytes, as_text) = read(&db);
        let before = (rows_before, shown);
        assert!(as_bytes > 60, "{as_bytes}");
        assert_eq!(as_text, 0, "this build writes every UUID id part as bytes");
        for t in [
            "co_search",
            "co_search_rank",
            "co_tasks_by_due",
            "co_timeline_by_entity",
            "usage_all_by_seq",
            "idempotency",
            "idempotency_by_age",
        ] {
            assert!(table_names().contains(&t), "{t}");
        }

        db.tamper(|tx| crate::layout::set_old_for_test(tx, 12));
        let (rows, bytes_now, text_now) = read(&db);
        assert_eq!((bytes_now, text_now), (0, as_bytes));
        assert_eq!(rows, before.0, "the same rows, read back alike");
        assert!(!db.check().unwrap().violations.is_empty());
        drop(db);
        let p = crate::layout::plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (12, "upgrade"), "{p}");
        let steps: Vec<(u64, u64)> = p.steps.iter().map(|s| (s.to_layout, s.rows)).collect();
        // And the two reported events' claims, as layout 13's rows, into runs.
        assert_eq!(
            steps,
            [(13, before.0.len() as u64), (14, 2), (15, 0)],
            "{p}"
        );

        let db = Bespin::open(&path).unwrap();
        let (rows, bytes_now, text_now) = read(&db);
        assert_eq!((bytes_now, text_now), (as_bytes, 0), "every row moved");
        assert_eq!(rows, before.0);
        let report = db.check().unwrap();
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(seen(&db, &admin, &first.task_id), before.1);
        // And writes go on: the key chosen before replays, new rows land beside the old.
        assert!(invoke(&db).replayed());
        task(&db, "Pricing late", Some("2026-03-01"));
        assert_eq!(db.search(&admin, &q).unwrap().results.len(), pricing + 1);
        let (rows, _, text_now) = read(&db);
        assert!(rows.len() > before.0.len());
        assert_eq!(text_now, 0);
        assert!(db.check().unwrap().violations.is_empty());
    }
}
