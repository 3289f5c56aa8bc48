//! Evidence (provenance) links (40 §6): append-only links from an action, task, decision or
//! memory fact to where a claim came from. The target must exist in the caller's tenant (404).
//! Links are stored under (tenant, entity type, entity id, created at, evidence id), so one
//! record's links are a single range, read newest first.
//!
//! Deliberate fix of the reference's Notes: listing links checks the entity type (422 for an
//! unknown one) and that the entity exists (404), like creating them.

use super::{
    EntityType, Metadata, check_quota, entity_created_at, entity_exists, json_object, object_text,
    record_effects, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Flow, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, ids};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const TOOL: &str = "evidence";
const TARGETS: &[&str] = &["action", "task", "decision", "memory_fact"];
const TARGET_PATTERN: &str = "^(action|task|decision|memory_fact)$";
const SOURCES: &[&str] = &["kpi", "brief", "note", "decision", "task", "manual"];
const SOURCE_PATTERN: &str = "^(kpi|brief|note|decision|task|manual)$";

/// A stored evidence link.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct EvidenceRec {
    pub evidence_id: String,
    pub entity_type: String,
    pub entity_id: String,
    pub source_type: String,
    pub source_ref: String,
    pub snippet: Option<String>,
    pub created_by: String,
    pub created_at: Timestamp,
}
impl Record for EvidenceRec {}

key! {
    /// (tenant, entity type, entity id, created at, evidence).
    pub(crate) struct EvidenceKey<'a> {
        tenant_id: tenant,
        entity_type: str,
        entity_id: ext_id,
        created_at: ts,
        evidence_id: ext_id,
    }
}

/// (tenant, entity type, entity id, created at, evidence) → evidence link.
pub(crate) const EVIDENCE: Table<EvidenceKey<'static>, EvidenceRec> = Table::new("co_evidence");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&EVIDENCE];

/// An evidence link as the API shows it (`EvidenceLinkResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceLink {
    /// The link id.
    pub evidence_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// `action`, `task`, `decision` or `memory_fact`.
    pub entity_type: String,
    /// The target record.
    pub entity_id: String,
    /// `kpi`, `brief`, `note`, `decision`, `task` or `manual`.
    pub source_type: String,
    /// Where the evidence lives (any JSON object).
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub source_ref: Value,
    /// Optional excerpt.
    pub snippet: Option<String>,
    /// Who linked it.
    pub created_by_user_id: String,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
}

/// `GET /v1/evidence`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct EvidenceList {
    /// Every link of the record, newest first.
    pub items: Vec<EvidenceLink>,
    /// Number of items.
    pub total: u64,
}

fn view(tenant: &str, e: EvidenceRec) -> EvidenceLink {
    EvidenceLink {
        evidence_id: e.evidence_id,
        tenant_id: tenant.to_owned(),
        entity_type: e.entity_type,
        entity_id: e.entity_id,
        source_type: e.source_type,
        source_ref: json_object(&e.source_ref),
        snippet: e.snippet,
        created_by_user_id: e.created_by,
        created_at: e.created_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_evidence`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewEvidence {
    /// The target's type (not `meeting`).
    #[cfg_attr(feature = "openapi", schema(value_type = String))]
    pub entity_type: EntityType,
    /// The target's id (1–36 characters).
    pub entity_id: String,
    /// One of the six source types.
    pub source_type: String,
    /// Any JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub source_ref: Map<String, Value>,
    /// Optional excerpt.
    pub snippet: Option<String>,
}

impl NewEvidence {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let et = f.choice("entity_type", Presence::Required, TARGETS, TARGET_PATTERN);
        let id = f.req_string("entity_id", Len::between(1, 36));
        let st = f.choice("source_type", Presence::Required, SOURCES, SOURCE_PATTERN);
        let sr = f.object("source_ref", Presence::Required);
        let snippet = f.string("snippet", Presence::Optional, Len::TEXT);
        f.finish()?;
        let et = got(et.flatten())?;
        Ok(NewEvidence {
            entity_type: EntityType::parse(&et)
                .ok_or_else(|| Error::Internal("validated entity type".into()))?,
            entity_id: got(id)?,
            source_type: got(st.flatten())?,
            source_ref: got(sr.flatten())?,
            snippet: got(snippet)?,
        })
    }
}

/// Query of [`Bespin::list_evidence`].
#[derive(Debug, Clone, PartialEq)]
pub struct EvidenceQuery {
    /// The record's type (not `meeting`).
    pub entity_type: EntityType,
    /// The record's id.
    pub entity_id: String,
}

impl EvidenceQuery {
    /// Validates query values (`entity_type`, `entity_id`, both required).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let et = f.choice("entity_type", Presence::Required, TARGETS, TARGET_PATTERN);
        let id = f.req_string("entity_id", Len::NON_EMPTY);
        f.finish()?;
        let et = got(et.flatten())?;
        Ok(EvidenceQuery {
            entity_type: EntityType::parse(&et)
                .ok_or_else(|| Error::Internal("validated entity type".into()))?,
            entity_id: got(id)?,
        })
    }
}

/// Checks the target of a link: capability, role/ownership and existence, in the order of
/// 40 §6.2 (action/task: lookup then ownership; decision/memory fact: admin then lookup).
/// Returns the target's creation instant (where its timeline events are indexed).
fn check_target(
    r: &impl Reader,
    caller: &Principal,
    et: EntityType,
    id: &str,
) -> Result<Timestamp> {
    let t = caller.tenant_id();
    require_capability(r, caller, et.capability())?;
    let me = caller.user_id();
    match et {
        EntityType::Action => {
            let a = super::actions::load(r, t, id)?;
            if !caller.is_admin() && a.created_by != me {
                return Err(Error::Forbidden(
                    "Not authorized to add evidence to this action".into(),
                ));
            }
            Ok(a.created_at)
        }
        EntityType::Task => {
            let k = super::tasks::load(r, t, id)?;
            if !caller.is_admin() && k.created_by != me && k.assigned_to.as_deref() != Some(me) {
                return Err(Error::Forbidden(
                    "Not authorized to add evidence to this task".into(),
                ));
            }
            Ok(k.created_at)
        }
        EntityType::Decision | EntityType::MemoryFact => {
            caller.require_admin()?;
            entity_created_at(r, t, et, id)?.ok_or_else(|| et.not_found())
        }
        EntityType::Meeting => Err(Error::Internal("meetings cannot have evidence".into())),
    }
}

/// Links evidence to a record. Order: target checks (see `check_target`) → quota → write.
pub fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewEvidence,
) -> Result<EvidenceLink> {
    let t = caller.tenant_id();
    let born = check_target(tx, caller, req.entity_type, &req.entity_id)?;
    let permit = check_quota(tx, ctx, caller, "evidence_link_created", TOOL)?;
    let et = req.entity_type.as_str();
    let e = EvidenceRec {
        evidence_id: ids::new_id(),
        entity_type: et.to_owned(),
        entity_id: req.entity_id,
        source_type: req.source_type,
        source_ref: object_text(&req.source_ref),
        snippet: req.snippet,
        created_by: caller.user_id().to_owned(),
        created_at: ctx.now,
    };
    let key = EvidenceKey::new(t, et, &e.entity_id, e.created_at, &e.evidence_id);
    tx.put(&EVIDENCE, &key, &e)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "evidence_link_created",
        req.entity_type,
        &e.entity_id,
        born,
        format!("Evidence linked to {et}"),
        Metadata::of(&[("source_type", Some(&e.source_type))]),
    )?;
    let id = e.evidence_id.clone();
    let v = view(t, e);
    events::emit(tx, ctx, caller, catalog::EVIDENCE_LINKED, &id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "evidence.create",
        TOOL,
        (req.entity_type, &v.entity_id),
    )?;
    Ok(v)
}

/// Deletes one evidence link of a record (admin, or the link's creator with access to the
/// record). Order: the target's checks as for linking (capability, access, 404) → the link
/// (404) → write: the row, a timeline event on the record, `evidence.deleted`, the audit row.
pub fn delete(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    evidence_id: &str,
    target: EvidenceQuery,
) -> Result<super::deletion::Deleted> {
    let t = caller.tenant_id();
    let et = target.entity_type;
    let born = match check_target(tx, caller, et, &target.entity_id) {
        // A creator who is not an admin may remove their own link to a decision or fact.
        Err(Error::Forbidden(_)) if !caller.is_admin() => {
            require_capability(tx, caller, et.capability())?;
            entity_created_at(tx, t, et, &target.entity_id)?.ok_or_else(|| et.not_found())?
        }
        other => other?,
    };
    let mut found = None;
    tx.scan(
        &EVIDENCE,
        &EVIDENCE
            .prefix()
            .tenant(t)
            .str(et.as_str())
            .ext_id(&target.entity_id),
        Order::Desc,
        |k, e: EvidenceRec| {
            if e.evidence_id == evidence_id {
                found = Some((k.to_vec(), e));
                return Ok(Flow::Stop);
            }
            Ok(Flow::Continue)
        },
    )?;
    let Some((key, e)) = found else {
        return Err(Error::NotFound("Evidence link not found".into()));
    };
    if !caller.is_admin() && e.created_by != caller.user_id() {
        return Err(Error::Forbidden(
            "Not authorized to delete this evidence link".into(),
        ));
    }
    tx.delete_stored(&EVIDENCE, &key)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "evidence_link_deleted",
        et,
        &e.entity_id,
        born,
        format!("Evidence unlinked from {}", et.as_str()),
        Metadata::of(&[("source_type", Some(&e.source_type))]),
    )?;
    let out = super::deletion::Deleted::new("evidence", evidence_id, ctx.now);
    events::emit(
        tx,
        ctx,
        caller,
        catalog::EVIDENCE_DELETED,
        evidence_id,
        &out,
    )?;
    crate::audit::record(
        tx,
        ctx,
        caller,
        "evidence.delete",
        ("evidence", evidence_id),
    )?;
    Ok(out)
}

/// Removes every link of one record (its delete): no event per link, the record's delete
/// says it. Returns how many.
pub(crate) fn delete_all_of(
    tx: &mut WriteTx,
    tenant: &str,
    et: EntityType,
    id: &str,
) -> Result<usize> {
    tx.delete_prefix(
        &EVIDENCE,
        &EVIDENCE.prefix().tenant(tenant).str(et.as_str()).ext_id(id),
    )
}

/// Every link of one record, newest first (no checks).
pub(crate) fn for_entity(
    r: &impl Reader,
    tenant: &str,
    et: EntityType,
    id: &str,
) -> Result<Vec<EvidenceLink>> {
    let mut out = Vec::new();
    r.scan(
        &EVIDENCE,
        &EVIDENCE.prefix().tenant(tenant).str(et.as_str()).ext_id(id),
        Order::Desc,
        |_, e: EvidenceRec| {
            out.push(view(tenant, e));
            Ok(Flow::Continue)
        },
    )?;
    Ok(out)
}

/// Checks that every evidence link is of an existing record (never of a deleted one).
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &super::Records) -> Result<()> {
    for x in c.rows(r, &EVIDENCE)? {
        let e = &x.value;
        let born = EntityType::parse(&e.entity_type)
            .and_then(|et| records.live(&x.tenant, et, &e.entity_id));
        match born {
            Some(_) => c.ok(),
            None => c.violation(EVIDENCE.name(), &x.bytes, "evidence for a missing record"),
        }
    }
    Ok(())
}

impl Bespin {
    /// Deletes one evidence link ([`delete`]).
    pub fn delete_evidence(
        &self,
        caller: &Principal,
        evidence_id: &str,
        target: EvidenceQuery,
    ) -> Result<super::deletion::Deleted> {
        self.write_as(caller, |tx, ctx| {
            delete(tx, ctx, caller, evidence_id, target)
        })
    }

    /// `POST /v1/evidence`. Errors: entitlement (target's capability), `Forbidden`,
    /// `NotFound` (target), `QuotaExceeded`.
    pub fn create_evidence(&self, caller: &Principal, req: NewEvidence) -> Result<EvidenceLink> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/evidence`: the record's links, newest first (any user). Errors: entitlement
    /// (the type's capability), `NotFound` (record).
    pub fn list_evidence(&self, caller: &Principal, q: &EvidenceQuery) -> Result<EvidenceList> {
        self.read(|r, _| {
            let t = caller.tenant_id();
            require_capability(r, caller, q.entity_type.capability())?;
            if !entity_exists(r, t, q.entity_type, &q.entity_id)? {
                return Err(q.entity_type.not_found());
            }
            let items = for_entity(r, t, q.entity_type, &q.entity_id)?;
            Ok(EvidenceList {
                total: items.len() as u64,
                items,
            })
        })
    }
}
