//! Deleting Core OS records: tasks, decisions, meeting notes, memory facts (a fact with its
//! whole supersede chain) and evidence links.
//!
//! A delete runs in one transaction: the record leaves its table, its list index and the
//! search index (so it is never found again, from this commit on); its evidence links go with
//! it; a tombstone `(tenant, type, id) → (created, deleted, by whom)` keeps the record's
//! place, so its timeline history — which stays — and the new `<type>_deleted` timeline
//! event still name a record the checker knows was there. The delete is audited and emits its
//! `*.deleted` event; usage and audit rows are history and stay.
//!
//! **Actions are never deleted**: an action is the record of a review (who proposed, who
//! approved or rejected, what ran); a proposed action that should not run is cancelled
//! (`POST /v1/actions/{id}/cancel`), which keeps that record too.

use super::{EntityType, Metadata, Records, timeline};
use crate::auth::Principal;
use crate::check::Checker;
use crate::error::Result;
use crate::events::{self, catalog::EventType};
use crate::store::{Reader, Record, Table, WriteTx, key};
use crate::time::Timestamp;
use crate::{Ctx, audit};
use serde::{Deserialize, Serialize};

/// The tombstone of a deleted record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DeletedRec {
    pub created_at: Timestamp,
    pub deleted_at: Timestamp,
    pub deleted_by: String,
}
impl Record for DeletedRec {}

key! {
    /// (tenant, entity type, entity id).
    pub(crate) struct DeletedKey<'a> { tenant_id: tenant, entity_type: str, entity_id: ext_id }
}

/// (tenant, entity type, entity id) → tombstone of a deleted record.
pub(crate) const DELETED: Table<DeletedKey<'static>, DeletedRec> = Table::new("co_deleted");

/// The answer to a delete.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Deleted {
    /// `task`, `decision`, `meeting`, `memory_fact`, `evidence`, `conversation`, `kpi`, …
    pub entity_type: String,
    /// The deleted record's id.
    pub entity_id: String,
    /// When it was deleted.
    pub deleted_at: String,
}

impl Deleted {
    /// The answer for `(entity_type, id)` deleted at `at`.
    pub(crate) fn new(entity_type: &str, id: &str, at: Timestamp) -> Self {
        Deleted {
            entity_type: entity_type.to_owned(),
            entity_id: id.to_owned(),
            deleted_at: at.to_rfc3339(),
        }
    }
}

/// Leaves the tombstone of a Core OS record (no timeline, event or audit: [`finish`] does
/// those once per delete; a memory chain leaves one tombstone per version).
pub(crate) fn tombstone(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    et: EntityType,
    id: &str,
    created_at: Timestamp,
) -> Result<()> {
    let rec = DeletedRec {
        created_at,
        deleted_at: ctx.now,
        deleted_by: caller.user_id().to_owned(),
    };
    let key = DeletedKey::new(caller.tenant_id(), et.as_str(), id);
    tx.put(&DELETED, &key, &rec)
}

/// What a delete of one Core OS record says about itself.
pub(crate) struct Deletion<'a> {
    pub et: EntityType,
    pub id: &'a str,
    pub created_at: Timestamp,
    pub title: &'a str,
    pub audit_action: &'static str,
    pub event: &'static EventType,
}

/// The common end of a Core OS record's delete, after the module removed the record, its
/// index rows and its search entries: its evidence links, its tombstone, the timeline event,
/// the `*.deleted` event and the audit row.
pub(crate) fn finish(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    d: Deletion<'_>,
) -> Result<Deleted> {
    super::evidence::delete_all_of(tx, caller.tenant_id(), d.et, d.id)?;
    tombstone(tx, ctx, caller, d.et, d.id, d.created_at)?;
    let label = d.et.label();
    timeline::emit(
        tx,
        ctx,
        caller,
        &format!("{}_deleted", d.et.as_str()),
        d.et,
        d.id,
        d.created_at,
        format!("{label} deleted: {}", d.title),
        Metadata::of(&[("deleted_by", Some(caller.user_id()))]),
    )?;
    let out = Deleted::new(d.et.as_str(), d.id, ctx.now);
    events::emit(tx, ctx, caller, d.event, d.id, &out)?;
    audit::record(tx, ctx, caller, d.audit_action, (d.et.as_str(), d.id))?;
    Ok(out)
}

/// Notes every tombstone in `records` (their history stays valid) and checks that no
/// tombstoned record is also stored.
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &mut Records) -> Result<()> {
    for x in c.rows(r, &DELETED)? {
        let Some(et) = EntityType::parse(&x.key.entity_type) else {
            c.violation(DELETED.name(), &x.bytes, "tombstone of an unknown type");
            continue;
        };
        if records.live(&x.tenant, et, &x.key.entity_id).is_some() {
            c.violation(
                DELETED.name(),
                &x.bytes,
                "tombstone of a record that exists",
            );
        } else {
            c.ok();
        }
        records.add_deleted(&x.tenant, et, &x.key.entity_id, x.value.created_at);
    }
    Ok(())
}

impl crate::Bespin {
    /// Deletes a task ([`super::tasks::delete`]).
    pub fn delete_task(&self, caller: &Principal, id: &str) -> Result<Deleted> {
        self.write_as(caller, |tx, ctx| super::tasks::delete(tx, ctx, caller, id))
    }

    /// Deletes a decision ([`super::decisions::delete`]).
    pub fn delete_decision(&self, caller: &Principal, id: &str) -> Result<Deleted> {
        self.write_as(caller, |tx, ctx| {
            super::decisions::delete(tx, ctx, caller, id)
        })
    }

    /// Deletes a meeting note ([`super::meetings::delete`]).
    pub fn delete_meeting(&self, caller: &Principal, id: &str) -> Result<Deleted> {
        self.write_as(caller, |tx, ctx| {
            super::meetings::delete(tx, ctx, caller, id)
        })
    }

    /// Deletes a memory fact with its supersede chain ([`super::memory::delete`]).
    pub fn delete_memory_fact(&self, caller: &Principal, id: &str) -> Result<Deleted> {
        self.write_as(caller, |tx, ctx| super::memory::delete(tx, ctx, caller, id))
    }
}

#[cfg(test)]
mod tests {
    use super::super::evidence::{EvidenceQuery, NewEvidence};
    use super::super::memory::{FactValue, NewFact};
    use super::super::search::SearchQuery;
    use super::super::tasks::NewTask;
    use super::super::timeline::TimelineQuery;
    use crate::Error;
    use crate::testutil::{db, tenant};
    use serde_json::json;

    fn found(db: &crate::Bespin, who: &crate::Principal, q: &str) -> u64 {
        let q = SearchQuery::from_json(&json!({ "q": q })).expect("q");
        db.search(who, &q).expect("search").total
    }

    #[test]
    fn a_deleted_task_leaves_lists_search_and_evidence_and_keeps_its_history() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let t = db
            .create_task(
                &admin,
                NewTask::from_json(&json!({"title": "zebra plan"})).expect("t"),
            )
            .expect("task");
        let target = json!({"entity_type": "task", "entity_id": t.task_id});
        let mut ev = target.clone();
        ev["source_type"] = json!("manual");
        ev["source_ref"] = json!({"url": "https://example.com"});
        db.create_evidence(&admin, NewEvidence::from_json(&ev).expect("ev"))
            .expect("evidence");
        assert_eq!(found(&db, &admin, "zebra"), 1);
        // A member who did not create it may not delete it.
        assert!(matches!(
            db.delete_task(&member, &t.task_id),
            Err(Error::Forbidden(_))
        ));
        let before = db.check().expect("check");
        let d = db.delete_task(&admin, &t.task_id).expect("delete");
        let after = db.check().expect("check");
        assert_eq!(d.entity_type, "task");
        assert!(matches!(
            db.get_task(&admin, &t.task_id),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            db.delete_task(&admin, &t.task_id),
            Err(Error::NotFound(_))
        ));
        assert_eq!(found(&db, &admin, "zebra"), 0);
        let q = TimelineQuery::from_json(&json!({"entity_id": t.task_id})).expect("q");
        let history = db.timeline(&admin, &q).expect("timeline");
        let kinds: Vec<&str> = history
            .items
            .iter()
            .map(|e| e.event_type.as_str())
            .collect();
        assert!(
            kinds.contains(&"task_deleted") && kinds.contains(&"task_created"),
            "{kinds:?}"
        );
        assert!(after.is_ok(), "{after}");
        assert_eq!(after.rows_in("co_tasks"), 0);
        assert_eq!(after.rows_in("co_tasks_by_due"), 0);
        assert_eq!(after.rows_in("co_evidence"), 0);
        assert_eq!(
            after.rows_in("co_search_rank"),
            before.rows_in("co_search_rank") - 1
        );
        // Usage and audit are history: kept, and the delete is audited.
        assert_eq!(
            after.rows_in("usage_events"),
            before.rows_in("usage_events")
        );
        assert_eq!(
            after.rows_in("audit_chain"),
            before.rows_in("audit_chain") + 1
        );
        let events = db
            .events(
                &admin,
                &crate::events::EventQuery::from_json(&json!({})).expect("q"),
            )
            .expect("events");
        assert!(events.items.iter().any(|e| e.event_type == "task.deleted"));
    }

    #[test]
    fn a_memory_fact_is_deleted_with_its_chain_and_its_key_is_free_again() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let new = |v: &str| {
            NewFact::from_json(&json!({"category": "icp", "fact_key": "who", "fact_value": v}))
                .expect("fact")
        };
        let first = db
            .create_memory_fact(&admin, new("founders"))
            .expect("fact");
        let v2 = FactValue {
            fact_value: Some("seed founders".into()),
        };
        db.supersede_memory_fact(&admin, &first.fact_id, v2)
            .expect("supersede");
        db.delete_memory_fact(&admin, &first.fact_id)
            .expect("delete chain");
        let report = db.check().expect("check");
        assert!(report.is_ok(), "{report}");
        assert_eq!(report.rows_in("co_facts"), 0);
        assert_eq!(report.rows_in("co_active_facts"), 0);
        assert_eq!(report.rows_in("co_deleted"), 2);
        assert_eq!(found(&db, &admin, "founders"), 0);
        db.create_memory_fact(&admin, new("again"))
            .expect("the key is free");
    }

    #[test]
    fn decisions_meetings_and_evidence_links_are_deleted_by_whom_the_rules_say() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let d = db
            .create_decision(
                &admin,
                super::super::decisions::NewDecision::from_json(&json!({
                    "decision_date": "2026-01-02", "title": "go", "decision": "go"
                }))
                .expect("d"),
            )
            .expect("decision");
        let target = json!({"entity_type": "decision", "entity_id": d.decision_id});
        let mut ev = target.clone();
        ev["source_type"] = json!("manual");
        ev["source_ref"] = json!({"note": "n"});
        let link = db
            .create_evidence(&admin, NewEvidence::from_json(&ev).expect("ev"))
            .expect("evidence");
        let q = EvidenceQuery::from_json(&target).expect("q");
        assert!(matches!(
            db.delete_evidence(&member, &link.evidence_id, q.clone()),
            Err(Error::Forbidden(_))
        ));
        db.delete_evidence(&admin, &link.evidence_id, q.clone())
            .expect("unlink");
        assert!(matches!(
            db.delete_evidence(&admin, &link.evidence_id, q),
            Err(Error::NotFound(_))
        ));
        assert!(matches!(
            db.delete_decision(&member, &d.decision_id),
            Err(Error::Forbidden(_))
        ));
        db.delete_decision(&admin, &d.decision_id).expect("delete");
        let m = db
            .create_meeting(
                &member,
                super::super::meetings::NewMeeting::from_json(&json!({
                    "meeting_date": "2026-01-02", "title": "sync", "notes": "n"
                }))
                .expect("m"),
            )
            .expect("meeting");
        db.delete_meeting(&member, &m.meeting_id)
            .expect("its creator deletes it");
        let report = db.check().expect("check");
        assert!(report.is_ok(), "{report}");
        assert_eq!(
            report.rows_in("co_decisions_by_date") + report.rows_in("co_meetings_by_date"),
            0
        );
    }

    #[test]
    fn the_checker_finds_an_index_row_a_delete_left() {
        let (db, _) = db();
        let (admin, _) = tenant(&db);
        let t = db
            .create_task(
                &admin,
                NewTask::from_json(&json!({"title": "left"})).expect("t"),
            )
            .expect("task");
        // A delete that forgot the list index and the search entries.
        db.transaction(|tx, _| {
            let key = super::super::tasks::record_key(tx, admin.tenant_id(), &t.task_id);
            tx.delete(&super::super::tasks::TASKS, &key).map(|_| ())
        })
        .expect("tamper");
        let report = db.check().expect("check");
        assert!(!report.is_ok());
        let text = report.to_string();
        assert!(text.contains("co_tasks_by_due"), "{text}");
    }

    #[test]
    fn conversations_and_kpis_are_deleted_with_their_messages_and_points() {
        let (db, _) = db();
        let (admin, member) = tenant(&db);
        let chat =
            crate::chat::ChatRequest::from_json(&json!({"message": "hello there"})).expect("chat");
        let reply = db.chat(&member, chat).expect("chat turn");
        let conv = reply.conversation_id.clone();
        let before = db.check().expect("check");
        assert!(before.rows_in("messages") >= 2);
        // Another user's conversation is a 404, as for reading it.
        assert!(matches!(
            db.delete_conversation(&admin, &conv),
            Err(Error::NotFound(_))
        ));
        db.delete_conversation(&member, &conv).expect("delete");
        assert!(matches!(
            db.conversation(&member, &conv),
            Err(Error::NotFound(_))
        ));
        let kpi = crate::testutil::kpi(
            &db,
            &admin,
            "MRR",
            &[("2026-01-01", 1.0), ("2026-01-02", 2.0)],
        );
        assert!(matches!(
            db.delete_kpi(&member, &kpi),
            Err(Error::Forbidden(_))
        ));
        db.delete_kpi(&admin, &kpi).expect("delete kpi");
        assert!(db.delete_kpi(&admin, &kpi).is_err());
        let after = db.check().expect("check");
        assert!(after.is_ok(), "{after}");
        for table in [
            "messages",
            "conversations",
            "conversations_by_time",
            "kpis",
            "kpi_chunks",
        ] {
            assert_eq!(after.rows_in(table), 0, "{table}");
        }
        assert_eq!(
            after.rows_in("usage_events"),
            before.rows_in("usage_events") + 2
        );
    }
}
