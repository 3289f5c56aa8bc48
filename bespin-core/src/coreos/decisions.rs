//! Decisions (40 §3): recorded and edited by admins, read by everyone. `decision_date` is a
//! real date and immutable; `status` is always `active` (there is no supersede flow for
//! decisions). The list walks a (tenant, decision date, created at, id) index newest date
//! first (ties: newest created first).

use super::deletion::{self, Deleted, Deletion};
use super::{
    Change, EntityType, Metadata, Paging, check_quota, dated_records, new_record_id, page_index,
    page_type, patch_string, record_effects, search, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::error::Result;
use crate::events::{self, catalog};
use crate::store::{Order, Reader, Record, WriteTx};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CAP: &str = "decisions";
const TOOL: &str = "decisions";

/// A stored decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct DecisionRec {
    pub decision_id: String,
    pub created_by: String,
    pub decision_date: Date,
    pub title: String,
    pub context: Option<String>,
    pub decision: String,
    pub rationale: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for DecisionRec {}

dated_records! {
    DecisionRec, "decision", decision_id, decision_date,
    DECISIONS = "co_decisions", DecisionKey;
    DECISIONS_BY_DATE = "co_decisions_by_date", DecisionDateKey;
}

/// A decision as the API shows it (`DecisionResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Decision {
    /// The decision id.
    pub decision_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The admin who recorded it.
    pub created_by_user_id: String,
    /// `YYYY-MM-DD`.
    pub decision_date: String,
    /// 1–255 characters.
    pub title: String,
    /// Optional context.
    pub context: Option<String>,
    /// The decision text.
    pub decision: String,
    /// Optional rationale.
    pub rationale: Option<String>,
    /// Always `active`.
    pub status: String,
    /// Always null.
    pub superseded_by_decision_id: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

page_type!(
    /// `GET /v1/decisions`.
    DecisionPage,
    Decision
);

pub(crate) fn view(tenant: &str, d: &DecisionRec) -> Decision {
    Decision {
        decision_id: d.decision_id.clone(),
        tenant_id: tenant.to_owned(),
        created_by_user_id: d.created_by.clone(),
        decision_date: d.decision_date.to_string(),
        title: d.title.clone(),
        context: d.context.clone(),
        decision: d.decision.clone(),
        rationale: d.rationale.clone(),
        status: "active".into(),
        superseded_by_decision_id: None,
        created_at: d.created_at.to_rfc3339(),
        updated_at: d.updated_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_decision`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewDecision {
    /// A real date.
    #[cfg_attr(feature = "openapi", schema(value_type = String, format = Date))]
    pub decision_date: Date,
    /// 1–255 characters.
    pub title: String,
    /// Optional context.
    pub context: Option<String>,
    /// At least 1 character.
    pub decision: String,
    /// Optional rationale.
    pub rationale: Option<String>,
}

impl NewDecision {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let date = f.date("decision_date", Presence::Required);
        let title = f.req_string("title", Len::between(1, 255));
        let context = f.string("context", Presence::Optional, Len::TEXT);
        let decision = f.req_string("decision", Len::TEXT_REQUIRED);
        let rationale = f.string("rationale", Presence::Optional, Len::TEXT);
        f.finish()?;
        Ok(NewDecision {
            decision_date: got(date.flatten())?,
            title: got(title)?,
            context: got(context)?,
            decision: got(decision)?,
            rationale: got(rationale)?,
        })
    }
}

/// Input of [`Bespin::update_decision`]: only present keys are applied.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct DecisionPatch {
    /// New title (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Change<String>,
    /// New context (`null` clears).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub context: Change<String>,
    /// New decision text (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub decision: Change<String>,
    /// New rationale (`null` clears).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub rationale: Change<String>,
}

impl DecisionPatch {
    /// Validates a request body (other keys, e.g. `decision_date`, are ignored).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = patch_string(&mut f, "title", Len::between(1, 255), false);
        let context = patch_string(&mut f, "context", Len::TEXT, true);
        let decision = patch_string(&mut f, "decision", Len::TEXT_REQUIRED, false);
        let rationale = patch_string(&mut f, "rationale", Len::TEXT, true);
        f.finish()?;
        Ok(DecisionPatch {
            title: got(title)?,
            context: got(context)?,
            decision: got(decision)?,
            rationale: got(rationale)?,
        })
    }
}

/// The decision `id` of the tenant, or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<DecisionRec> {
    get(r, tenant, id)?.ok_or_else(|| EntityType::Decision.not_found())
}

fn save(tx: &mut WriteTx, tenant: &str, d: &DecisionRec) -> Result<()> {
    let key = record_key(tx, tenant, &d.decision_id);
    search::save(tx, &DECISIONS, &key, tenant, d)
}

/// Records a decision (admin). Order: capability → admin (403) → quota → write.
pub fn create(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewDecision,
) -> Result<Decision> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let permit = check_quota(tx, ctx, caller, "decision_created", TOOL)?;
    let d = DecisionRec {
        decision_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        decision_date: req.decision_date,
        title: req.title,
        context: req.context,
        decision: req.decision,
        rationale: req.rationale,
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    search::insert(tx, &DECISIONS, &record_key(tx, t, &d.decision_id), t, &d)?;
    tx.put(&DECISIONS_BY_DATE, &date_key(t, &d), &d.decision_id)?;
    let date = d.decision_date.to_string();
    timeline::emit(
        tx,
        ctx,
        caller,
        "decision_created",
        EntityType::Decision,
        &d.decision_id,
        d.created_at,
        format!("Decision recorded: {}", d.title),
        Metadata::of(&[("decision_date", Some(&date))]),
    )?;
    let v = view(t, &d);
    events::emit(
        tx,
        ctx,
        caller,
        catalog::DECISION_CREATED,
        &d.decision_id,
        &v,
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "decisions.create",
        TOOL,
        (EntityType::Decision, &d.decision_id),
    )?;
    Ok(v)
}

/// Edits a decision (admin). Order: capability → admin (403) → 404 → no change (200 no-op) →
/// quota → write.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    decision_id: &str,
    patch: DecisionPatch,
) -> Result<Decision> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let mut d = load(tx, t, decision_id)?;
    let mut changed = patch.title.apply(&mut d.title);
    changed |= patch.context.apply_opt(&mut d.context);
    changed |= patch.decision.apply(&mut d.decision);
    changed |= patch.rationale.apply_opt(&mut d.rationale);
    if !changed {
        return Ok(view(t, &d));
    }
    let permit = check_quota(tx, ctx, caller, "decision_updated", TOOL)?;
    d.updated_at = ctx.now;
    save(tx, t, &d)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "decision_updated",
        EntityType::Decision,
        &d.decision_id,
        d.created_at,
        format!("Decision updated: {}", d.title),
        Metadata::empty(),
    )?;
    let v = view(t, &d);
    events::emit(
        tx,
        ctx,
        caller,
        catalog::DECISION_UPDATED,
        &d.decision_id,
        &v,
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "decisions.update",
        TOOL,
        (EntityType::Decision, &d.decision_id),
    )?;
    Ok(v)
}

/// Lists decisions, newest decision date first.
pub(crate) fn list(r: &impl Reader, tenant: &str, paging: Paging) -> Result<DecisionPage> {
    let (items, total) = page_index(
        r,
        &DECISIONS_BY_DATE,
        &DECISIONS_BY_DATE.prefix().tenant(tenant),
        None,
        None,
        Order::Desc,
        paging,
        false,
        |r, id| Ok(Some(view(tenant, &load(r, tenant, id)?))),
    )?;
    Ok(DecisionPage::new(items, total, paging))
}

/// Reads `limit` (1–100) and `offset` of a decision or meeting list query.
pub fn paging_from_json(v: &Value) -> Result<Paging> {
    let mut f = Fields::new(v)?;
    let p = Paging::read(&mut f, 100);
    f.finish()?;
    got(p)
}

/// Deletes a decision (admin): gone from its table, its list index and search in this
/// transaction, with its evidence links; its timeline stays, with `decision_deleted`. Order:
/// capability → admin (403) → 404 → write.
pub fn delete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, id: &str) -> Result<Deleted> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let d = load(tx, t, id)?;
    remove(tx, t, &d)?;
    deletion::finish(
        tx,
        ctx,
        caller,
        Deletion {
            et: EntityType::Decision,
            id: &d.decision_id,
            created_at: d.created_at,
            title: &d.title,
            audit_action: "decisions.delete",
            event: catalog::DECISION_DELETED,
        },
    )
}

impl Bespin {
    /// `POST /v1/decisions` (admin). Errors: entitlement, `Forbidden`, `QuotaExceeded`.
    pub fn create_decision(&self, caller: &Principal, req: NewDecision) -> Result<Decision> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/decisions`. Capability `decisions`.
    pub fn list_decisions(&self, caller: &Principal, paging: Paging) -> Result<DecisionPage> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            list(r, caller.tenant_id(), paging)
        })
    }

    /// `GET /v1/decisions/{id}`. Errors: entitlement, `NotFound`.
    pub fn get_decision(&self, caller: &Principal, decision_id: &str) -> Result<Decision> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            Ok(view(
                caller.tenant_id(),
                &load(r, caller.tenant_id(), decision_id)?,
            ))
        })
    }

    /// `PATCH /v1/decisions/{id}` (admin). Errors: entitlement, `Forbidden`, `NotFound`,
    /// `QuotaExceeded`.
    pub fn update_decision(
        &self,
        caller: &Principal,
        decision_id: &str,
        patch: DecisionPatch,
    ) -> Result<Decision> {
        self.write_as(caller, |tx, ctx| {
            update(tx, ctx, caller, decision_id, patch)
        })
    }
}

impl search::Searchable for DecisionRec {
    fn search_doc(&self) -> search::SearchDoc<'_> {
        search::SearchDoc {
            entity_type: EntityType::Decision,
            id: &self.decision_id,
            title: &self.title,
            bodies: vec![
                self.context.as_deref().unwrap_or(""),
                &self.decision,
                self.rationale.as_deref().unwrap_or(""),
            ],
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
