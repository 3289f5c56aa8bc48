//! Versions of the key layouts, and the upgrade of a database written with an older one.
//!
//! Records evolve through their version byte; keys cannot, so a change of key layout bumps
//! [`CURRENT`] and adds a step here that rewrites the affected tables from the data they index.
//! Every step runs inside the transaction that opens the database, so an upgrade is all or
//! nothing, and a database written by this version is never touched again.
//!
//! | version | layout |
//! |---|---|
//! | 1 (no `layout` row) | the first release |
//! | 2 | search entries keyed by the record's creation instant, no per-record token table; the timeline's per-record index keyed by the record's creation instant; messages keyed by their conversation's sequence number |
//! | 3 | sealed ids (`crate::ids::Sealer`, secret in `secrets`): new Core OS records and conversations are keyed by their record number, new timeline events are found from their id without `co_timeline_ids`. Records and events written before keep their keys and index rows and are found through them, so the upgrade rewrites nothing |
//! | 4 | KPI points stored in chunks of up to 128 (`kpi_chunks`, keyed by the chunk's first instant) instead of one row per point; the old `kpi_points` table is left empty |
//! | 5 | a search rank row per indexed record (`co_search_rank`: its `updated_at`), so a search ranks its matches without reading them |
//! | 6 | usage rolled up per (tenant, UTC date, event key) as well (`day_rollups`), for the usage chart; built from the usage events |
//! | 7 | search entries bounded: a word is indexed by its first 64 characters, a record by its first 1,000 distinct words (`crate::coreos::search::index::doc_tokens`); the upgrade rewrites the entries of the records beyond those bounds only |
//! | 8 | audit rows chained per tenant ([`crate::audit::chain`]): keyed (tenant, position) in `audit_chain`, with a head per tenant in `audit_heads`; the upgrade chains the rows of the old `audit` table in their key order (time, then sequence) and leaves it empty |
//! | 9 | usage events in insertion order (`usage_by_seq` per tenant, `usage_all_by_seq` for all), for the usage export; built from the usage events |
//! | 10 | reported usage events marked in `usage_all_by_seq`, whose walk purges the de-duplication rows past their retention; `usage_dedup_by_expiry` (a global row per remembered event) left empty. The upgrade from 9 marks the reported events and empties it |
//! | 11 | reported usage events stored in chunks (`usage_chunks`: the accepted events of one request, keyed by (tenant, latest instant, first usage number)), with one row per chunk in each insertion order (its first number; the row's value says "a chunk of n events"). Events stored one per row before stay so and are read beside chunks, so the upgrade rewrites nothing; the number keeps a build of layout 10, which would misread a chunk's order rows, from opening the file |
//! | 12 | the tenant part of every tenant-scoped key written as the tenant id's 16 bytes (`0x00 0x03` first) instead of its 36 characters, and the CloudEvent id of a de-duplication row so when it is a UUID ([`tenant_keys`]): shorter keys, fewer pages a commit. The upgrade moves every row of those tables to its new key, first of all steps |
//! | 13 | the id parts after the first written so too when they are canonical UUIDs ([`ext_ids`]): a record's id in the search index, its rank row and the list orders, an event's, a user's, a KPI's, an evidence link's, a tenant's in a global key (`usage_all_by_seq`, `idempotency_by_age`, the webhook outbox, tombstones), idempotency keys. The upgrade moves every row with such a part to its new key, right after the step of 12 |
//! | 14 | the de-duplication of reported usage events kept as sorted runs of claims per tenant, appended per request and merged in bounded steps, with a Bloom filter per block ([`crate::metering::claims`]), instead of one `usage_dedup` row per event at a random place; the upgrade moves every row into runs and empties `usage_dedup` |
//! | 15 | a claim holds two independent hashes of its `(source, id)`, its usage number and its acceptance (32 bytes; 14's held the source and id instead of the second hash), and a match needs both hashes. Blocks of 14 read as they are (the second hash made from their strings) and merges write them anew, so the upgrade rewrites nothing; the number keeps a build of layout 14, which cannot read a block of 15, from opening the file |

mod ext_ids;
mod tenant_keys;

use crate::Ctx;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::store::{NameKey, Reader, Table, TableInfo, WriteTx};

/// The layout this version writes.
pub const CURRENT: u64 = 15;

/// Global: (name) → a property of the file; `layout` is the version of the key layouts.
pub(crate) const META: Table<NameKey<'static>, u64> = Table::new("meta");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&META];

fn layout_key() -> NameKey<'static> {
    NameKey::new("layout")
}

/// The layout version of the database behind `r` (1 when never recorded).
pub(crate) fn version(r: &impl Reader) -> Result<u64> {
    Ok(r.get(&META, &layout_key())?.unwrap_or(1))
}

/// Checks that the file's key layout is this build's.
pub(crate) fn check(r: &impl Reader, c: &mut Checker) -> Result<()> {
    let layout = version(r)?;
    if layout == CURRENT {
        c.ok();
    } else {
        c.violation(
            META.name(),
            &layout_key().encode(),
            format!("key layout version {layout}, expected {CURRENT}"),
        );
    }
    Ok(())
}

/// Brings a database of an older layout to [`CURRENT`]; records the version on a new one.
///
/// Errors: `Storage` for a database of a newer layout than this build's, which it would
/// silently fall out of step with (its writes would skip what the newer layout keeps, such as
/// rank rows); [`crate::Bespin::open`] checks this before it writes any data.
pub(crate) fn upgrade(tx: &mut WriteTx, _ctx: &Ctx) -> Result<()> {
    let from = version(tx)?;
    if from > CURRENT {
        return Err(Error::Storage(format!(
            "the database has key layout {from}, newer than this build's {CURRENT}: open it \
             with the Bespin release that wrote it, or a later one"
        )));
    }
    if from == CURRENT {
        return Ok(());
    }
    // First: every later step reads and writes keys of this build's form.
    if from < 12 {
        tenant_keys::rekey(tx)?;
    }
    if from < 13 {
        ext_ids::rekey(tx)?;
    }
    if from < 2 {
        // Also writes the rank rows of layout 5.
        crate::coreos::search::rebuild_index(tx)?;
        crate::coreos::timeline::rebuild_entity_index(tx)?;
        crate::conversations::rekey_messages(tx)?;
    }
    // 2 → 3 rewrites nothing: both kinds of id are read (see the table above).
    if from < 4 {
        crate::kpis::series::chunk_legacy_points(tx)?;
    }
    if (2..5).contains(&from) {
        crate::coreos::search::rebuild_ranks(tx)?;
    }
    if from < 6 {
        crate::metering::rebuild_day_rollups(tx)?;
    }
    if (2..7).contains(&from) {
        // Layout 1 was rebuilt above, already bounded.
        crate::coreos::search::cap_index(tx)?;
    }
    if from < 8 {
        crate::audit::chain_legacy_rows(tx)?;
    }
    if from < 9 {
        // Marks the reported events too (none: reporting came with layout 9).
        crate::metering::export::rebuild(tx)?;
    }
    if from == 9 {
        crate::metering::export::mark_reported(tx)?;
    }
    if from < 10 {
        crate::metering::ingest::drop_expiry_order(tx)?;
    }
    // 10 → 11 rewrites nothing: rows of usage events and chunks are both read.
    if from < 14 {
        crate::metering::ingest::rows_to_runs(tx)?;
    }
    // 14 → 15 rewrites nothing: blocks of claims of either version are read.
    tx.put(&META, &layout_key(), &CURRENT)
}

/// Test-only: records layout `n` (< 14) and writes the claims of reported usage events as
/// layout 13's de-duplication rows, for `n` < 13 the id parts of layout 13 as text, and for
/// `n` < 12 the tenant part of every key too, as those layouts did; a test then changes what
/// else layout `n` lacks.
#[cfg(test)]
pub(crate) fn set_old_for_test(tx: &mut WriteTx, n: u64) -> Result<()> {
    to_text_for_test(tx, n)?;
    tx.put(&META, &layout_key(), &n)
}

/// Test-only: writes the claims of layout 14 as de-duplication rows and the parts of keys
/// that layouts 12 and 13 write as bytes as text, as layout `n` did (the rows first: the
/// rewrites of keys to text move them too).
#[cfg(test)]
fn to_text_for_test(tx: &mut WriteTx, n: u64) -> Result<()> {
    if n < 14 {
        crate::metering::ingest::runs_to_rows_for_test(tx)?;
    }
    if n < 13 {
        ext_ids::tests::to_text(tx)?;
    }
    if n < 12 {
        tenant_keys::tests::to_text(tx)?;
    }
    Ok(())
}

/// What `bespin layout` reports about a database file, read without writing to it: the key
/// layout it has and what opening it with this build would do.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct LayoutPlan {
    /// The file's key layout (1 when never recorded).
    pub file_layout: u64,
    /// The layout this build writes ([`CURRENT`]).
    pub build_layout: u64,
    /// `current` (nothing to do), `upgrade` (the steps run in the transaction that first
    /// opens the file) or `refuse` (a newer layout: this build does not open it).
    pub action: &'static str,
    /// The upgrade's steps in the order they run (empty unless `action` is `upgrade`).
    pub steps: Vec<UpgradeStep>,
    /// Tables of this build that the file lacks; opening it creates them empty.
    pub missing_tables: Vec<&'static str>,
}

/// One step of an upgrade.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct UpgradeStep {
    /// The layout the step brings the file to.
    pub to_layout: u64,
    /// What it rewrites.
    pub description: &'static str,
    /// The rows it reads to do so.
    pub rows: u64,
}

impl std::fmt::Display for LayoutPlan {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "key layout {} (this build writes {})",
            self.file_layout, self.build_layout
        )?;
        match self.action {
            "current" => writeln!(f, "up to date: opening it rewrites nothing")?,
            "refuse" => writeln!(
                f,
                "newer than this build: opening it is refused before anything is written; use the release that wrote it, or a later one"
            )?,
            _ => {
                writeln!(
                    f,
                    "opening it upgrades it in one transaction (all or nothing):"
                )?;
                for s in &self.steps {
                    writeln!(
                        f,
                        "  -> {}: {} ({} rows read)",
                        s.to_layout, s.description, s.rows
                    )?;
                }
            }
        }
        if !self.missing_tables.is_empty() {
            writeln!(
                f,
                "tables created empty on open: {}",
                self.missing_tables.join(", ")
            )?;
        }
        Ok(())
    }
}

/// Reports the layout of the database file at `path` and what opening it would do, without
/// writing to it (the file is opened read-only). Errors: `Storage` when the file is missing,
/// unreadable, or held open for writing by another process.
pub fn plan(path: &std::path::Path) -> Result<LayoutPlan> {
    use crate::store::ReadOnlyFile;
    let file = ReadOnlyFile::open(path)?;
    let from = file.get(&META, &layout_key())?.unwrap_or(1);
    let rows = |names: &[&'static str]| -> Result<u64> {
        let mut n = 0;
        for t in names {
            n += file.count(t)?.unwrap_or(0);
        }
        Ok(n)
    };
    use crate::coreos::{actions, decisions, meetings, memory, tasks};
    let records = [
        actions::ACTIONS.name(),
        tasks::TASKS.name(),
        decisions::DECISIONS.name(),
        meetings::MEETINGS.name(),
        memory::FACTS.name(),
    ];
    let mut steps = Vec::new();
    // Listed first: they run before the other steps.
    if from < 12 {
        steps.push(UpgradeStep {
            to_layout: 12,
            description: "write the tenant part of every tenant-scoped key, and the CloudEvent id of a de-duplication row when it is a UUID, as 16 bytes instead of text",
            rows: rows(&tenant_keys::tables())?,
        });
    }
    if from < 13 {
        steps.push(UpgradeStep {
            to_layout: 13,
            description: "write the ids after the first part of a key (records', events', users', KPIs', a tenant's in a global key, idempotency keys) as 16 bytes instead of text when they are UUIDs",
            rows: rows(&ext_ids::table_names())?,
        });
    }
    if from < 2 {
        steps.push(UpgradeStep {
            to_layout: 2,
            description: "rebuild the search index and its rank rows from the Core OS records",
            rows: rows(&records)?,
        });
        steps.push(UpgradeStep {
            to_layout: 2,
            description: "rebuild the timeline's per-record index from the events",
            rows: rows(&[crate::coreos::timeline::TIMELINE.name()])?,
        });
        steps.push(UpgradeStep {
            to_layout: 2,
            description: "key messages by their conversation's sequence number",
            rows: rows(&[crate::conversations::MESSAGES.name()])?,
        });
    }
    if from < 4 {
        steps.push(UpgradeStep {
            to_layout: 4,
            description: "move KPI points into chunks of up to 128 and empty kpi_points",
            rows: rows(&[crate::kpis::series::LEGACY_POINTS.name()])?,
        });
    }
    if (2..5).contains(&from) {
        steps.push(UpgradeStep {
            to_layout: 5,
            description: "write a search rank row per indexed record",
            rows: rows(&records)?,
        });
    }
    if from < 6 {
        steps.push(UpgradeStep {
            to_layout: 6,
            description: "roll usage up per UTC day and event key (day_rollups) from the usage events",
            rows: rows(&[crate::metering::USAGE_EVENTS.name()])?,
        });
    }
    if (2..7).contains(&from) {
        steps.push(UpgradeStep {
            to_layout: 7,
            description: "bound the search entries of records past 1,000 distinct words or with words over 64 characters",
            rows: rows(&records)?,
        });
    }
    if from < 8 {
        steps.push(UpgradeStep {
            to_layout: 8,
            description: "chain the audit rows per tenant (audit_chain, audit_heads) and empty audit",
            rows: rows(&[crate::audit::LEGACY_AUDIT.name()])?,
        });
    }
    if from < 9 {
        steps.push(UpgradeStep {
            to_layout: 9,
            description: "list the usage events in insertion order (usage_by_seq, usage_all_by_seq) for the usage export",
            rows: rows(&[crate::metering::USAGE_EVENTS.name()])?,
        });
    }
    if from == 9 {
        steps.push(UpgradeStep {
            to_layout: 10,
            description: "mark the reported usage events in usage_all_by_seq and empty usage_dedup_by_expiry",
            rows: rows(&[
                crate::metering::USAGE_EVENTS.name(),
                crate::metering::ingest::USAGE_DEDUP_BY_EXPIRY.name(),
            ])?,
        });
    }
    if from < 11 {
        // Nothing is rewritten: the step is listed so that the plan says what the new
        // number means (a build of layout 10 can no longer open the file).
        steps.push(UpgradeStep {
            to_layout: 11,
            description: "store reported usage events in chunks from now on (events stored before stay as they are; this build's number keeps older builds from opening the file)",
            rows: 0,
        });
    }
    if from < 14 {
        steps.push(UpgradeStep {
            to_layout: 14,
            description: "move the de-duplication rows of reported usage events (usage_dedup) into sorted runs of claims per tenant (usage_claim_runs, usage_claim_blocks, usage_claim_filters) and empty usage_dedup",
            rows: rows(&[crate::metering::ingest::USAGE_DEDUP.name()])?,
        });
    }
    if from < 15 {
        // Nothing is rewritten (blocks of 14 are read as they are), as for 11.
        steps.push(UpgradeStep {
            to_layout: 15,
            description: "keep claims of reported usage events as two hashes of their source and id, usage number and acceptance (blocks written before are read as they are; this build's number keeps older builds from opening the file)",
            rows: 0,
        });
    }
    let mut missing_tables = Vec::new();
    for t in crate::schema::tables() {
        if file.count(t.name())?.is_none() {
            missing_tables.push(t.name());
        }
    }
    let action = match from.cmp(&CURRENT) {
        std::cmp::Ordering::Equal => "current",
        std::cmp::Ordering::Greater => "refuse",
        std::cmp::Ordering::Less => "upgrade",
    };
    if action != "upgrade" {
        steps.clear();
    }
    Ok(LayoutPlan {
        file_layout: from,
        build_layout: CURRENT,
        action,
        steps,
        missing_tables,
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::chat::ChatRequest;
    use crate::conversations::{CONVERSATIONS, ConversationKey, LegacyMessageKey, MESSAGES};
    use crate::coreos::search::SearchQuery;
    use crate::coreos::search::index::{EntryKey, LEGACY_DOCS, LegacyDocKey, RANKS, SEARCH};
    use crate::coreos::tasks::{NewTask, TaskPatch};
    use crate::coreos::timeline::TimelineQuery;
    use crate::coreos::timeline::{BY_ENTITY, EventKey, EventPos, TIMELINE};
    use crate::kpis::series::{ChunkKey, KPI_CHUNKS, LEGACY_POINTS, PointKey};
    use crate::kpis::{IngestResult, NewPoint, PointRec, PointsBulk, Window};
    use crate::store::{Flow, Order, key};
    use crate::time::{ManualClock, Timestamp};
    use crate::{Bespin, Error, Options, Principal, testutil};
    use std::collections::HashMap;
    use std::sync::Arc;

    /// A new database file in a temporary directory (kept alive by the returned guard), with
    /// one tenant's admin.
    fn fresh(name: &str) -> (tempfile::TempDir, std::path::PathBuf, Bespin, Principal) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        let db = Bespin::open(&path).unwrap();
        let (admin, _) = testutil::tenant(&db);
        (dir, path, db, admin)
    }

    fn task(title: &str) -> NewTask {
        NewTask::from_json(&serde_json::json!({ "title": title, "priority": "low" })).unwrap()
    }

    fn find(db: &Bespin, p: &Principal, q: &str) -> Vec<String> {
        let q = SearchQuery::from_json(&serde_json::json!({ "q": q })).unwrap();
        let r = db.search(p, &q).unwrap();
        r.results.into_iter().map(|h| h.title).collect()
    }

    fn events_of(db: &Bespin, p: &Principal, id: &str) -> usize {
        let q = serde_json::json!({ "entity_type": "task", "entity_id": id });
        let q = TimelineQuery::from_json(&q).unwrap();
        db.timeline(p, &q).unwrap().items.len()
    }

    key! {
        /// A search entry of layout 1: (tenant, token, entity type, entity id).
        struct OldEntryKey<'a> { tenant_id: tenant, token: str, entity_type: str, entity_id: str }
        /// The per-record timeline index of layout 1: (tenant, type, id, instant, sequence).
        struct OldEntityKey<'a> {
            tenant_id: tenant,
            entity_type: str,
            entity_id: str,
            at: ts,
            seq: u64,
        }
    }

    /// Every stored row of `t`: key and record.
    fn all<K: crate::store::KeyDef, V: crate::store::Record>(
        tx: &WriteTx,
        t: &crate::store::Table<K, V>,
    ) -> Result<Vec<(Vec<u8>, V)>> {
        let mut out = Vec::new();
        tx.scan(t, &t.prefix(), Order::Asc, |k, v| {
            out.push((k.to_vec(), v));
            Ok(Flow::Continue)
        })?;
        Ok(out)
    }

    /// Stores every KPI point as layouts 1 to 3 did: one row per point, no chunks.
    fn unchunk_points(tx: &mut WriteTx) -> Result<()> {
        for (k, c) in all(tx, &KPI_CHUNKS)? {
            tx.delete_stored(&KPI_CHUNKS, &k)?;
            let series = ChunkKey::decode(&k).unwrap();
            for p in &c.points {
                let row = PointRec {
                    value: p.value,
                    created_at: p.created_at,
                };
                let k = PointKey::new(&series.tenant_id, &series.kpi_id, p.ts);
                tx.put(&LEGACY_POINTS, &k, &row)?;
            }
        }
        Ok(())
    }

    /// Rewrites the tables of layout 5 as layout 1 wrote them.
    fn downgrade(tx: &mut WriteTx) -> Result<()> {
        tx.delete(&META, &layout_key())?;
        crate::audit::unchain_for_test(tx)?;
        unchunk_points(tx)?;
        tx.delete_prefix(&RANKS, &RANKS.prefix())?;
        // Search: entries without the creation instant, and a token list per record.
        for (k, _) in all(tx, &SEARCH)? {
            let e = EntryKey::decode(&k).unwrap();
            tx.delete_stored(&SEARCH, &k)?;
            let old = OldEntryKey::new(&e.tenant_id, &e.token, &e.entity_type, &e.entity_id);
            tx.raw_insert_for_test(SEARCH.name(), &old.encode(), &[1, 1])?;
            let doc = LegacyDocKey::new(&e.tenant_id, &e.entity_type, &e.entity_id);
            tx.raw_insert_for_test(LEGACY_DOCS.name(), &doc.encode(), &[1, 0])?;
        }
        // Timeline: the per-record index keyed by the record's id alone.
        tx.delete_prefix(&BY_ENTITY, &BY_ENTITY.prefix())?;
        for (k, e) in all(tx, &TIMELINE)? {
            let k = EventKey::decode(&k).unwrap();
            let pos = EventPos {
                at: e.created_at,
                seq: k.seq,
            };
            let old = OldEntityKey::new(
                &k.tenant_id,
                &e.entity_type,
                &e.entity_id,
                k.created_at,
                k.seq,
            );
            tx.put_stored(&BY_ENTITY, &old.encode(), &pos)?;
        }
        // Messages: keyed by the conversation's id.
        let mut ids: HashMap<u64, String> = HashMap::new();
        for (k, c) in all(tx, &CONVERSATIONS)? {
            let k = ConversationKey::decode(&k).unwrap();
            ids.insert(c.seq, k.conversation_id.to_id(tx.sealer()).into_owned());
        }
        for (k, m) in all(tx, &MESSAGES)? {
            let new = crate::conversations::MessageKey::decode(&k).unwrap();
            tx.delete_stored(&MESSAGES, &k)?;
            let old = LegacyMessageKey::new(&new.tenant_id, &ids[&new.conversation_seq], new.seq);
            tx.put_stored(&MESSAGES, &old.encode(), &m)?;
        }
        // And the tenant and id parts of every key as text, as all layouts before 12 wrote them.
        to_text_for_test(tx, 1)?;
        Ok(())
    }

    #[test]
    fn a_database_of_the_first_layout_is_upgraded_when_opened() {
        let (_dir, path, db, admin) = fresh("l.redb");
        db.create_task(&admin, task("Pricing review")).unwrap();
        let t = db.create_task(&admin, task("Hiring plan")).unwrap();
        let patch = TaskPatch::from_json(&serde_json::json!({ "title": "Pricing page" })).unwrap();
        db.update_task(&admin, &t.task_id, patch).unwrap();
        let chat = |m: &str| ChatRequest::from_json(&serde_json::json!({ "message": m })).unwrap();
        let c = db.chat(&admin, chat("help")).unwrap();
        let k = testutil::kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-01", 1.0), ("2026-01-02", 2.0)],
        );
        assert_eq!(find(&db, &admin, "pric").len(), 2);
        assert!(
            find(&db, &admin, "hiring").is_empty(),
            "a rewrite drops old words"
        );
        assert_eq!(events_of(&db, &admin, &t.task_id), 2);
        assert_eq!(
            db.conversation(&admin, &c.conversation_id)
                .unwrap()
                .messages
                .len(),
            2
        );
        assert!(db.check().unwrap().violations.is_empty());

        db.tamper(downgrade);
        let report = db.check().unwrap();
        for table in [
            "meta",
            "kpi_points",
            "co_search",
            "co_search_docs",
            "co_search_rank",
            "co_timeline_by_entity",
            "messages",
        ] {
            assert!(
                report.violations.iter().any(|v| v.table == table),
                "the old layout of {table} is not what this version expects:\n{report}"
            );
        }
        drop(db);
        // `bespin layout` reports the upgrade without writing a byte.
        let bytes = std::fs::read(&path).unwrap();
        let p = plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (1, "upgrade"));
        let steps: Vec<(u64, u64)> = p.steps.iter().map(|s| (s.to_layout, s.rows)).collect();
        // Day rollups (6) from the usage events; the index rebuilt at 2 is bounded already.
        assert_eq!(steps[0].0, 12, "{p}");
        assert!(steps[0].1 > 20, "{p}");
        assert_eq!(steps[1].0, 13, "{p}");
        assert_eq!(
            steps[2..],
            [
                (2, 2),
                (2, 3),
                (2, 2),
                (4, 2),
                (6, 8),
                (8, 4),
                (9, 8),
                (11, 0),
                (14, 0),
                (15, 0)
            ],
            "{p}"
        );
        assert!(p.missing_tables.is_empty());
        assert_eq!(std::fs::read(&path).unwrap(), bytes);

        let db = Bespin::open(&path).unwrap();
        assert!(db.check().unwrap().violations.is_empty());
        assert_eq!(
            find(&db, &admin, "pric"),
            ["Pricing page", "Pricing review"]
        );
        assert_eq!(events_of(&db, &admin, &t.task_id), 2);
        assert_eq!(db.latest_point(&admin, &k).unwrap().value, 2.0);
        let detail = db.conversation(&admin, &c.conversation_id).unwrap();
        assert_eq!(detail.messages.len(), 2);
        // And the conversation goes on in the new layout.
        let more = ChatRequest::from_json(&serde_json::json!({
            "message": "kpis", "conversation_id": c.conversation_id
        }))
        .unwrap();
        db.chat(&admin, more).unwrap();
        let detail = db.conversation(&admin, &c.conversation_id).unwrap();
        assert_eq!(detail.messages.len(), 4);
        assert!(db.check().unwrap().violations.is_empty());
    }

    #[test]
    fn a_database_without_search_ranks_gets_them_when_opened() {
        let (_dir, path, db, admin) = fresh("r.redb");
        let first = db.create_task(&admin, task("Pricing first")).unwrap();
        db.create_task(&admin, task("Pricing second")).unwrap();
        let patch = TaskPatch::from_json(&serde_json::json!({ "priority": "high" })).unwrap();
        db.update_task(&admin, &first.task_id, patch).unwrap();
        let ranked = ["Pricing first", "Pricing second"];
        assert_eq!(
            find(&db, &admin, "pricing"),
            ranked,
            "the update moved it up"
        );
        // Layout 4: the same index entries, no rank rows.
        db.tamper(|tx| {
            tx.delete_prefix(&RANKS, &RANKS.prefix())?;
            set_old_for_test(tx, 4)
        });
        let report = db.check().unwrap();
        assert!(
            report
                .violations
                .iter()
                .any(|v| v.table == "co_search_rank"),
            "{report}"
        );
        drop(db);
        let p = plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (4, "upgrade"));
        let steps: Vec<u64> = p.steps.iter().map(|s| s.to_layout).collect();
        assert_eq!(steps, [12, 13, 5, 6, 7, 8, 9, 11, 14, 15], "{p}");
        assert_eq!((p.steps[2].rows, p.steps[4].rows), (2, 2), "{p}");

        let db = Bespin::open(&path).unwrap();
        assert!(db.check().unwrap().violations.is_empty());
        assert_eq!(find(&db, &admin, "pricing"), ranked);
        assert_eq!(db.read(|r, _| version(r)).unwrap(), CURRENT);
        drop(db);
        let p = plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (CURRENT, "current"));
        assert!(
            p.steps.is_empty() && p.to_string().contains("up to date"),
            "{p}"
        );
    }

    #[test]
    fn a_database_without_day_rollups_gets_them_from_its_usage_events_when_opened() {
        let (_dir, path, db, admin) = fresh("d.redb");
        db.create_task(&admin, task("One")).unwrap();
        testutil::kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-01", 1.0), ("2026-01-02", 2.0)],
        );
        let usage = |db: &Bespin| db.billing_usage_by_day(&admin, None).unwrap();
        let before = usage(&db);
        assert!(!before.days.is_empty());
        // Layout 5: the same events and period rollups, no day rollups.
        db.tamper(|tx| {
            let days = &crate::metering::DAY_ROLLUPS;
            tx.delete_prefix(days, &days.prefix())?;
            set_old_for_test(tx, 5)
        });
        let report = db.check().unwrap();
        assert!(
            report.violations.iter().any(|v| v.table == "day_rollups"),
            "{report}"
        );
        drop(db);

        let db = Bespin::open(&path).unwrap();
        assert!(db.check().unwrap().violations.is_empty());
        assert_eq!(usage(&db), before);
        assert_eq!(db.read(|r, _| version(r)).unwrap(), CURRENT);
    }

    #[test]
    fn an_index_of_whole_words_is_bounded_when_opened() {
        let (_dir, path, db, admin) = fresh("w.redb");
        let long = "x".repeat(70);
        let words: Vec<String> = (0..1_100).map(|i| format!("w{i}")).collect();
        let body = format!("{long} {}", words.join(" "));
        let t = NewTask::from_json(&serde_json::json!({ "title": "Bounded", "description": body }))
            .unwrap();
        db.create_task(&admin, t).unwrap();
        // Layout 6 indexed every word whole: add the entries the bounds leave out.
        let tenant = admin.tenant_id().to_owned();
        db.tamper(|tx| {
            let prefix = SEARCH.prefix().tenant(&tenant).str("bounded");
            let mut found = None;
            tx.scan(&SEARCH, &prefix, Order::Asc, |k, _: u8| {
                found = EntryKey::decode(k).map(EntryKey::into_owned);
                Ok(Flow::Stop)
            })?;
            let e = found.unwrap();
            let entry = |w: &str| {
                EntryKey::new(&tenant, w, &e.entity_type, e.created_at, &e.entity_id).encode()
            };
            tx.delete_stored(&SEARCH, &entry(&long[..64]))?;
            for w in std::iter::once(&long).chain(&words[998..]) {
                tx.put_stored(&SEARCH, &entry(w), &2u8)?;
            }
            set_old_for_test(tx, 6)
        });
        assert!(!db.check().unwrap().violations.is_empty());
        drop(db);
        let p = plan(&path).unwrap();
        let steps: Vec<(u64, u64)> = p.steps.iter().map(|s| (s.to_layout, s.rows)).collect();
        // 9 lists the usage events (one here) in insertion order; 11 rewrites nothing; 14
        // finds no reported event's row.
        assert_eq!((steps[0].0, steps[1].0), (12, 13), "{p}");
        assert_eq!(
            steps[2..],
            [(7, 1), (8, 0), (9, 1), (11, 0), (14, 0), (15, 0)],
            "{p}"
        );

        let db = Bespin::open(&path).unwrap();
        let report = db.check().unwrap();
        assert!(report.violations.is_empty(), "{report}");
        assert_eq!(find(&db, &admin, &long[..64]), ["Bounded"]);
        assert_eq!(
            find(&db, &admin, "w997"),
            ["Bounded"],
            "the 1,000th distinct word"
        );
        assert!(find(&db, &admin, "w998").is_empty(), "past the bound");
        assert_eq!(db.read(|r, _| version(r)).unwrap(), CURRENT);
    }

    #[test]
    fn a_database_of_a_newer_layout_is_refused() {
        let (_dir, path, db, _) = fresh("n.redb");
        db.tamper(|tx| tx.put(&META, &layout_key(), &(CURRENT + 1)));
        drop(db);
        let p = plan(&path).unwrap();
        assert_eq!((p.file_layout, p.action), (CURRENT + 1, "refuse"));
        for _ in 0..2 {
            match Bespin::open(&path) {
                Err(Error::Storage(m)) => assert!(m.contains("newer than this build"), "{m}"),
                Err(e) => panic!("wrong error: {e}"),
                Ok(_) => panic!("a newer layout was opened"),
            }
        }
    }

    #[test]
    fn records_with_random_ids_live_on_beside_sealed_ones() {
        use crate::coreos::actions::{ExecuteAction, NewAction, ReviewComment};
        use crate::coreos::timeline::TimelineQuery;
        let (_dir, path, db, admin) = fresh("mixed.redb");
        let action = || {
            NewAction::from_json(
                &serde_json::json!({"title": "Send pricing", "action_type": "email"}),
            )
            .unwrap()
        };
        let chat = |m: &str, c: Option<&str>| {
            ChatRequest::from_json(&serde_json::json!({ "message": m, "conversation_id": c }))
                .unwrap()
        };
        // Written the way version 2 wrote them: random ids, keyed by the id.
        crate::ids::RANDOM_IDS.set(true);
        let old_task = db.create_task(&admin, task("Pricing old")).unwrap();
        let old_action = db.create_action(&admin, action()).unwrap();
        let old_chat = db.chat(&admin, chat("help", None)).unwrap();
        crate::ids::RANDOM_IDS.set(false);
        let sealer = db
            .read(|r, _| Ok(r.sealer().unseal(&old_task.task_id)))
            .unwrap();
        assert_eq!(sealer, None, "the old id is a random one");
        drop(db);

        let db = Bespin::open(&path).unwrap();
        let new_task = db.create_task(&admin, task("Pricing new")).unwrap();
        assert!(
            db.read(|r, _| Ok(r.sealer().unseal(&new_task.task_id)))
                .unwrap()
                .is_some()
        );
        // Both kinds are found, changed and listed.
        let patch = TaskPatch::from_json(&serde_json::json!({ "title": "Pricing older" })).unwrap();
        db.update_task(&admin, &old_task.task_id, patch).unwrap();
        db.complete_task(&admin, &old_task.task_id).unwrap();
        db.complete_task(&admin, &new_task.task_id).unwrap();
        assert_eq!(
            db.get_task(&admin, &old_task.task_id).unwrap().status,
            "done"
        );
        assert_eq!(find(&db, &admin, "pricing").len(), 3);
        let comment = || ReviewComment::from_json(&serde_json::json!({})).unwrap();
        db.approve_action(&admin, &old_action.action_id, comment())
            .unwrap();
        let run = ExecuteAction::from_json(&serde_json::json!({"execution_status": "succeeded"}))
            .unwrap();
        db.execute_action(&admin, &old_action.action_id, run)
            .unwrap();
        let more = db
            .chat(&admin, chat("kpis", Some(&old_chat.conversation_id)))
            .unwrap();
        assert_eq!(more.conversation_id, old_chat.conversation_id);
        // The timeline pages from an old (indexed) event and from a new (sealed) one.
        let all = db
            .timeline(
                &admin,
                &TimelineQuery::from_json(&serde_json::json!({})).unwrap(),
            )
            .unwrap();
        assert!(all.items.len() >= 6);
        for e in &all.items {
            let q = serde_json::json!({ "before": e.event_id });
            let older = db
                .timeline(&admin, &TimelineQuery::from_json(&q).unwrap())
                .unwrap();
            let at = all
                .items
                .iter()
                .position(|x| x.event_id == e.event_id)
                .unwrap();
            assert_eq!(
                older.items.len(),
                all.items.len() - at - 1,
                "before {}",
                e.event_id
            );
        }
        assert!(db.check().unwrap().violations.is_empty());
    }

    /// What readers see of the KPIs `ids` of the tenant `who`: the newest point, and windows of
    /// several spans with and without cut-offs.
    fn kpi_views(r: &impl Reader, who: &Principal, ids: &[String]) -> Vec<Option<Window>> {
        let day = Timestamp::DAY_MICROS;
        let mut out = Vec::new();
        for id in ids {
            for cutoff in [
                None,
                Some(-1),
                Some(0),
                Some(127),
                Some(128),
                Some(200),
                Some(999),
            ] {
                for span in [0, 1, 3, 100, 1000] {
                    let cutoff = cutoff.map(|d| Timestamp(d * day));
                    out.push(crate::kpis::window(r, who.tenant_id(), id, cutoff, span).unwrap());
                }
            }
        }
        out
    }

    #[test]
    fn points_stored_one_per_row_are_chunked_when_opened() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k.redb");
        let clock = ManualClock::at("2026-01-31T12:00:00Z").unwrap();
        let open =
            || Bespin::open_with(&path, Arc::new(clock.clone()), Options::default()).unwrap();
        let db = open();
        let (admin, _) = testutil::tenant(&db);
        let (other, _) = testutil::tenant(&db);
        let day = Timestamp::DAY_MICROS;
        let bulk = |days: &[i64]| PointsBulk {
            points: days
                .iter()
                .map(|&d| NewPoint {
                    ts: Timestamp(d * day),
                    value: (d * 3 % 17) as f64,
                })
                .collect(),
        };
        let ingest = |who: &Principal, id: &str, days: &[i64]| {
            db.ingest_points(who, id, bulk(days)).unwrap()
        };
        // Three chunks and a bit (with points ingested at another time), a short series, an
        // empty one, and another tenant's.
        let long = testutil::kpi(&db, &admin, "long", &[]);
        ingest(&admin, &long, &(0..300).map(|d| d * 2).collect::<Vec<_>>());
        clock.advance(60);
        ingest(&admin, &long, &[1, 3, 5, 1001, 999]);
        let short = testutil::kpi(&db, &admin, "short", &[]);
        ingest(&admin, &short, &[5, 6, 7]);
        let empty = testutil::kpi(&db, &admin, "empty", &[]);
        let theirs = testutil::kpi(&db, &other, "theirs", &[]);
        ingest(&other, &theirs, &(100..400).collect::<Vec<_>>());
        let (mine, theirs) = ([long.clone(), short, empty], [theirs]);
        let next = [-10, 0, 7, 7, 130, 131, 2000, 1001];
        let views = |db: &Bespin| {
            db.read(|r, _| Ok((kpi_views(r, &admin, &mine), kpi_views(r, &other, &theirs))))
                .unwrap()
        };
        // Every point with its value and created_at, as the console lists them.
        let rows = |db: &Bespin| db.console().rows("kpi_points", None, 10_000).unwrap();

        // What this layout answers, and what the next ingest does (tried, then rolled back).
        let before = (views(&db), rows(&db));
        let mut tried = None;
        let _ = db.transaction(|tx, ctx| {
            let r = crate::kpis::ingest_points(tx, ctx, &admin, &long, bulk(&next))?;
            tried = Some((r, kpi_views(tx, &admin, &mine)));
            Err::<(), _>(Error::Internal("dry run".into()))
        });
        let (want, after_ingest) = tried.unwrap();
        assert_eq!(
            want,
            IngestResult {
                inserted: 4,
                ignored: 4
            }
        );
        assert!(db.check().unwrap().is_ok());

        db.tamper(|tx| {
            unchunk_points(tx)?;
            set_old_for_test(tx, 3)
        });
        let report = db.check().unwrap();
        for table in ["meta", "kpi_points"] {
            assert!(
                report.violations.iter().any(|v| v.table == table),
                "the old layout of {table} is not what this version expects:\n{report}"
            );
        }
        assert_eq!(report.rows_in("kpi_chunks"), 0);
        drop(db);

        let db = open();
        let report = db.check().unwrap();
        assert!(report.is_ok(), "{report}");
        assert_eq!(
            report.rows_in("kpi_points"),
            0,
            "the old table is left empty"
        );
        assert!(report.rows_in("kpi_chunks") >= 5);
        assert_eq!((views(&db), rows(&db)), before);
        let got = db.ingest_points(&admin, &long, bulk(&next)).unwrap();
        assert_eq!(got, want);
        assert_eq!(
            db.read(|r, _| Ok(kpi_views(r, &admin, &mine))).unwrap(),
            after_ingest
        );
        assert!(db.check().unwrap().is_ok());
    }
}
