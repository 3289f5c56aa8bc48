//! The Action Center (40 §1): proposed actions, one review (approve/reject) and one execution
//! per action.
//!
//! State machine (40 §1.2): `proposed` → `approved` (approve, admin) → `executed` (execute,
//! admin); `proposed` → `rejected` (reject, admin); `proposed` → `cancelled` (cancel or PATCH
//! `status: "cancelled"`, creator or admin). Repeating the transition that led to the current
//! state is a 200 no-op (nothing written, no quota); any other transition is refused: 400 for
//! cancel, 409 for the others.
//!
//! Check order, as 40 §1.3–§1.10 list it (each cell of those lists and of the §1.2 table is held
//! to an HTTP test in `bespin-http/tests/contract.rs`): create: capability → quota → write;
//! PATCH and cancel: capability → lookup (404) → ownership and state rules → quota → write;
//! approve, reject and execute: capability → admin (403, before the lookup) → lookup (404) →
//! state (200 no-op or 409) → quota → write. A refused cancel is 400 `Can only cancel proposed
//! actions`; a refused execute is 409 with the object detail of §1.10
//! ([`Error::InvalidStatusTransition`]). An admin may edit the title and description of an
//! action in any status; a creator only while it is `proposed`. Deliberate fixes of the
//! reference's Notes (40 Notes 3 and 15): PATCH can clear `description` and change
//! `assigned_to_user_id` (checked) and `payload`.

use super::{
    Change, EntityType, Metadata, Paging, Records, check_assignee, check_quota, check_records,
    filter, json_object, new_record_id, object_text, page_index, page_type, patch_string,
    record_effects, search, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, catalog};
use crate::store::{Id, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::Timestamp;
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx, ids};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

const CAP: &str = "action_center";
const TOOL: &str = "action_center";

/// A stored action.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ActionRec {
    pub action_id: String,
    pub created_by: String,
    pub assigned_to: Option<String>,
    pub source: String,
    pub source_ref: Option<String>,
    pub status: String,
    pub title: String,
    pub description: Option<String>,
    pub action_type: String,
    pub payload: String,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for ActionRec {}

/// A stored review.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReviewRec {
    pub decision: String,
    pub reviewer: String,
    pub comment: Option<String>,
    pub created_at: Timestamp,
}
impl Record for ReviewRec {}

/// A stored execution.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExecutionRec {
    pub execution_id: String,
    pub executed_by: String,
    pub execution_status: String,
    pub result: String,
    pub created_at: Timestamp,
}
impl Record for ExecutionRec {}

key! {
    /// (tenant, action): the action, its review, its execution.
    pub(crate) struct ActionKey<'a> { tenant_id: tenant, action_id: id }
    /// (tenant, created at, action).
    pub(crate) struct ActionTimeKey<'a> { tenant_id: tenant, created_at: ts, action_id: ext_id }
}

/// (tenant, action) → action.
pub(crate) const ACTIONS: Table<ActionKey<'static>, ActionRec> = Table::new("co_actions");
/// (tenant, created at, action) → action id: actions in creation order.
pub(crate) const ACTIONS_BY_TIME: Table<ActionTimeKey<'static>, String> =
    Table::new("co_actions_by_time");
/// (tenant, action) → its one review.
pub(crate) const REVIEWS: Table<ActionKey<'static>, ReviewRec> = Table::new("co_action_reviews");
/// (tenant, action) → its one execution.
pub(crate) const EXECUTIONS: Table<ActionKey<'static>, ExecutionRec> =
    Table::new("co_action_executions");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&ACTIONS, &ACTIONS_BY_TIME, &REVIEWS, &EXECUTIONS];

/// The key of the action `id` of the tenant (its record number when the id is sealed).
pub(crate) fn record_key<'a>(r: &impl Reader, tenant: &'a str, id: &'a str) -> ActionKey<'a> {
    ActionKey::new(tenant, Id::of(r.sealer(), id))
}

/// An action as the API shows it (`ActionResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Action {
    /// The action id.
    pub action_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// Who proposed it.
    pub created_by_user_id: String,
    /// The assignee (a user of the tenant), if any.
    pub assigned_to_user_id: Option<String>,
    /// `user`, `agent` or `system`.
    pub source: String,
    /// Free-text provenance.
    pub source_ref: Option<String>,
    /// `proposed`, `approved`, `rejected`, `cancelled` or `executed`.
    pub status: String,
    /// 1–255 characters.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// Free text, 1–100 characters.
    pub action_type: String,
    /// Any JSON object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub payload: Value,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last state-changing write (RFC 3339, UTC).
    pub updated_at: String,
}

/// The review of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Review {
    /// `approved` or `rejected`.
    pub decision: String,
    /// The admin who reviewed.
    pub reviewer_user_id: String,
    /// The reviewer's comment.
    pub comment: Option<String>,
    /// Equals the action's `updated_at` at review time.
    pub created_at: String,
}

/// The execution record of an action.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Execution {
    /// The execution id.
    pub execution_id: String,
    /// The action.
    pub action_id: String,
    /// The admin who executed.
    pub executed_by_user_id: String,
    /// `succeeded`, `failed` or `skipped`.
    pub execution_status: String,
    /// The reported result object.
    #[cfg_attr(feature = "openapi", schema(value_type = Object))]
    pub result: Value,
    /// Equals the action's `updated_at` at execution time.
    pub created_at: String,
}

/// `GET /v1/actions/{id}`: the action with its review and execution.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionDetail {
    /// The action's fields.
    #[serde(flatten)]
    pub action: Action,
    /// The review, if reviewed.
    pub review: Option<Review>,
    /// The execution, if executed.
    pub execution: Option<Execution>,
}

/// `POST /v1/actions/{id}/execute`: the action and its execution. (Its schema is named
/// `ActionExecutionResult`: SDK generators name the inline model of `Execution.result`
/// `ExecutionResult`.)
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
#[cfg_attr(feature = "openapi", schema(as = ActionExecutionResult))]
pub struct ExecutionResult {
    /// The action after execution.
    pub action: Action,
    /// The execution (the original one on a replay).
    pub execution: Execution,
}

page_type!(
    /// `GET /v1/actions`.
    ActionPage,
    Action
);

pub(crate) fn view(tenant: &str, a: &ActionRec) -> Action {
    Action {
        action_id: a.action_id.clone(),
        tenant_id: tenant.to_owned(),
        created_by_user_id: a.created_by.clone(),
        assigned_to_user_id: a.assigned_to.clone(),
        source: a.source.clone(),
        source_ref: a.source_ref.clone(),
        status: a.status.clone(),
        title: a.title.clone(),
        description: a.description.clone(),
        action_type: a.action_type.clone(),
        payload: json_object(&a.payload),
        created_at: a.created_at.to_rfc3339(),
        updated_at: a.updated_at.to_rfc3339(),
    }
}

fn review_view(r: &ReviewRec) -> Review {
    Review {
        decision: r.decision.clone(),
        reviewer_user_id: r.reviewer.clone(),
        comment: r.comment.clone(),
        created_at: r.created_at.to_rfc3339(),
    }
}

fn execution_view(action_id: &str, e: &ExecutionRec) -> Execution {
    Execution {
        execution_id: e.execution_id.clone(),
        action_id: action_id.to_owned(),
        executed_by_user_id: e.executed_by.clone(),
        execution_status: e.execution_status.clone(),
        result: json_object(&e.result),
        created_at: e.created_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_action`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewAction {
    /// 1–255 characters.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// 1–100 characters.
    pub action_type: String,
    /// A JSON object (default `{}`).
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = Object))]
    pub payload: Map<String, Value>,
    /// Must be a user of the caller's tenant.
    pub assigned_to_user_id: Option<String>,
    /// `user` (default), `agent` or `system`.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub source: String,
    /// Free text, at most 255 characters.
    pub source_ref: Option<String>,
}

const SOURCES: &[&str] = &["user", "agent", "system"];
const SOURCE_PATTERN: &str = "^(user|agent|system)$";

impl NewAction {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = f.req_string("title", Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let action_type = f.req_string("action_type", Len::between(1, 100));
        let payload = f.object("payload", Presence::Optional);
        let assigned = f.string(
            "assigned_to_user_id",
            Presence::Optional,
            Len::between(1, 36),
        );
        let source = f.choice("source", Presence::Optional, SOURCES, SOURCE_PATTERN);
        let source_ref = f.string("source_ref", Presence::Optional, Len::at_most(255));
        f.finish()?;
        Ok(NewAction {
            title: got(title)?,
            description: got(description)?,
            action_type: got(action_type)?,
            payload: got(payload)?.unwrap_or_default(),
            assigned_to_user_id: got(assigned)?,
            source: got(source)?.unwrap_or_else(|| "user".into()),
            source_ref: got(source_ref)?,
        })
    }
}

/// Input of [`Bespin::update_action`]: only present keys are applied.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ActionPatch {
    /// New title (1–255; `null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Change<String>,
    /// New description (`null` clears it).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Change<String>,
    /// New assignee (`null` unassigns; must be a user of the tenant).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub assigned_to_user_id: Change<String>,
    /// New payload object (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<Object>))]
    pub payload: Option<Map<String, Value>>,
    /// `true` when the body asks for `status: "cancelled"`.
    #[cfg_attr(feature = "openapi", schema(rename = "status", value_type = Option<String>, pattern = "^(cancelled)$"))]
    pub cancel: bool,
}

impl ActionPatch {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = patch_string(&mut f, "title", Len::between(1, 255), false);
        let description = patch_string(&mut f, "description", Len::TEXT, true);
        let assigned = patch_string(&mut f, "assigned_to_user_id", Len::between(1, 36), true);
        let payload = f.object("payload", Presence::Optional);
        let status = if f.has("status") && f.raw("status").is_none() {
            f.fail(
                "status",
                "string_type",
                "Input should be a valid string",
                Value::Null,
            );
            None
        } else {
            f.choice(
                "status",
                Presence::Optional,
                &["cancelled"],
                "^(cancelled)$",
            )
        };
        f.finish()?;
        Ok(ActionPatch {
            title: got(title)?,
            description: got(description)?,
            assigned_to_user_id: got(assigned)?,
            payload: got(payload)?,
            cancel: got(status)?.is_some(),
        })
    }
}

/// The optional comment body of cancel, approve and reject.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ReviewComment {
    /// Free-text comment.
    pub comment: Option<String>,
}

impl ReviewComment {
    /// Validates a request body (a JSON object; `{}` is fine).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let comment = f.string("comment", Presence::Optional, Len::TEXT);
        f.finish()?;
        Ok(ReviewComment {
            comment: got(comment)?,
        })
    }
}

/// Input of [`Bespin::execute_action`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct ExecuteAction {
    /// `succeeded`, `failed` or `skipped`.
    pub execution_status: String,
    /// The reported result (default `{}`).
    #[cfg_attr(feature = "openapi", schema(required = false, value_type = Object))]
    pub result: Map<String, Value>,
}

impl ExecuteAction {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let status = f.choice(
            "execution_status",
            Presence::Required,
            &["succeeded", "failed", "skipped"],
            "^(succeeded|failed|skipped)$",
        );
        let result = f.object("result", Presence::Optional);
        f.finish()?;
        Ok(ExecuteAction {
            execution_status: got(status.flatten())?,
            result: got(result)?.unwrap_or_default(),
        })
    }
}

/// Query of [`Bespin::list_actions`].
#[derive(Debug, Clone, PartialEq)]
pub struct ActionQuery {
    /// Exact status; `None` is no filter (the default is `proposed`; `all` or empty: none).
    pub status: Option<String>,
    /// Exact creator.
    pub created_by_user_id: Option<String>,
    /// Exact assignee.
    pub assigned_to_user_id: Option<String>,
    /// `limit` 1–200 (default 50), `offset` ≥ 0.
    pub paging: Paging,
}

impl Default for ActionQuery {
    fn default() -> Self {
        ActionQuery {
            status: Some("proposed".into()),
            created_by_user_id: None,
            assigned_to_user_id: None,
            paging: Paging::DEFAULT,
        }
    }
}

impl ActionQuery {
    /// Validates query values given as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let given = f.has("status");
        let status = filter(&mut f, "status", true);
        let created = filter(&mut f, "created_by_user_id", true);
        let assigned = filter(&mut f, "assigned_to_user_id", true);
        let paging = Paging::read(&mut f, 200);
        f.finish()?;
        let status = got(status)?;
        Ok(ActionQuery {
            status: if given {
                status
            } else {
                Some("proposed".into())
            },
            created_by_user_id: got(created)?,
            assigned_to_user_id: got(assigned)?,
            paging: got(paging)?,
        })
    }
}

/// The action `id` of the tenant, if it exists there.
pub(crate) fn get(r: &impl Reader, tenant: &str, id: &str) -> Result<Option<ActionRec>> {
    r.get(&ACTIONS, &record_key(r, tenant, id))
}

/// The action `id` of the tenant, or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<ActionRec> {
    get(r, tenant, id)?.ok_or_else(|| EntityType::Action.not_found())
}

fn save(tx: &mut WriteTx, tenant: &str, a: &ActionRec) -> Result<()> {
    let key = record_key(tx, tenant, &a.action_id);
    search::save(tx, &ACTIONS, &key, tenant, a)
}

fn event(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    event_type: &str,
    a: &ActionRec,
    summary: String,
    meta: Metadata,
) -> Result<()> {
    timeline::emit(
        tx,
        ctx,
        caller,
        event_type,
        EntityType::Action,
        &a.action_id,
        a.created_at,
        summary,
        meta,
    )?;
    let published = match event_type {
        "action_created" => catalog::ACTION_CREATED,
        "action_updated" => catalog::ACTION_UPDATED,
        "action_cancelled" => catalog::ACTION_CANCELLED,
        "action_approved" => catalog::ACTION_APPROVED,
        "action_rejected" => catalog::ACTION_REJECTED,
        _ => catalog::ACTION_EXECUTED,
    };
    let v = view(caller.tenant_id(), a);
    events::emit(tx, ctx, caller, published, &a.action_id, &v).map(|_| ())
}

/// Proposes an action (any user). Order: capability → assignee (404) → quota → write.
pub fn create(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, req: NewAction) -> Result<Action> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    check_assignee(tx, t, req.assigned_to_user_id.as_deref())?;
    let permit = check_quota(tx, ctx, caller, "action_created", TOOL)?;
    let a = ActionRec {
        action_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        assigned_to: req.assigned_to_user_id,
        source: req.source,
        source_ref: req.source_ref,
        status: "proposed".into(),
        title: req.title,
        description: req.description,
        action_type: req.action_type,
        payload: object_text(&req.payload),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    search::insert(tx, &ACTIONS, &record_key(tx, t, &a.action_id), t, &a)?;
    let by_time = ActionTimeKey::new(t, a.created_at, &a.action_id);
    tx.put(&ACTIONS_BY_TIME, &by_time, &a.action_id)?;
    event(
        tx,
        ctx,
        caller,
        "action_created",
        &a,
        format!("Action proposed: {}", a.title),
        Metadata::of(&[
            ("action_type", Some(&a.action_type)),
            ("source", Some(&a.source)),
        ]),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "actions.create",
        TOOL,
        (EntityType::Action, &a.action_id),
    )?;
    Ok(view(t, &a))
}

/// Edits an action (40 §1.6): the creator while it is `proposed`, an admin in any status.
/// Order: capability → lookup (404) → neither admin nor creator (403) → a non-admin on a
/// non-`proposed` action (403, even for `{}`) → references (404) → no change (200 no-op) →
/// quota → write. `status: "cancelled"` cancels only a `proposed` action and is ignored
/// otherwise.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    patch: ActionPatch,
) -> Result<Action> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let mut a = load(tx, t, action_id)?;
    if !caller.is_admin() && a.created_by != caller.user_id() {
        return Err(Error::Forbidden(
            "Not authorized to update this action".into(),
        ));
    }
    if !caller.is_admin() && a.status != "proposed" {
        return Err(Error::Forbidden("Can only update proposed actions".into()));
    }
    if let Change::Set(u) = &patch.assigned_to_user_id {
        check_assignee(tx, t, Some(u))?;
    }
    let mut changed = patch.title.apply(&mut a.title);
    changed |= patch.description.apply_opt(&mut a.description);
    changed |= patch.assigned_to_user_id.apply_opt(&mut a.assigned_to);
    if let Some(p) = &patch.payload {
        let text = object_text(p);
        if json_object(&text) != json_object(&a.payload) {
            a.payload = text;
            changed = true;
        }
    }
    if patch.cancel && a.status == "proposed" {
        a.status = "cancelled".into();
        changed = true;
    }
    if !changed {
        return Ok(view(t, &a));
    }
    let permit = check_quota(tx, ctx, caller, "action_updated", TOOL)?;
    a.updated_at = ctx.now;
    save(tx, t, &a)?;
    event(
        tx,
        ctx,
        caller,
        "action_updated",
        &a,
        format!("Action updated: {}", a.title),
        Metadata::of(&[("status", Some(&a.status))]),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "actions.update",
        TOOL,
        (EntityType::Action, &a.action_id),
    )?;
    Ok(view(t, &a))
}

/// Cancels a proposed action (creator or admin; 40 §1.7). Order: capability → lookup (404) →
/// already cancelled (200 no-op, for any user of the tenant) → not proposed (400) → neither
/// admin nor creator (403) → quota → write.
pub fn cancel(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    req: ReviewComment,
) -> Result<Action> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let mut a = load(tx, t, action_id)?;
    if a.status == "cancelled" {
        return Ok(view(t, &a));
    }
    if a.status != "proposed" {
        return Err(Error::BadRequest("Can only cancel proposed actions".into()));
    }
    if !caller.is_admin() && a.created_by != caller.user_id() {
        return Err(Error::Forbidden(
            "Not authorized to cancel this action".into(),
        ));
    }
    let permit = check_quota(tx, ctx, caller, "action_updated", TOOL)?;
    a.status = "cancelled".into();
    a.updated_at = ctx.now;
    save(tx, t, &a)?;
    event(
        tx,
        ctx,
        caller,
        "action_cancelled",
        &a,
        format!("Action cancelled: {}", a.title),
        Metadata::of(&[("comment", req.comment.as_deref())]),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "actions.cancel",
        TOOL,
        (EntityType::Action, &a.action_id),
    )?;
    Ok(view(t, &a))
}

fn review(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    req: ReviewComment,
    approve: bool,
) -> Result<Action> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let mut a = load(tx, t, action_id)?;
    let (target, verb) = if approve {
        ("approved", "approve")
    } else {
        ("rejected", "reject")
    };
    match a.status.as_str() {
        s if s == target => return Ok(view(t, &a)),
        "proposed" => {}
        "cancelled" => {
            return Err(Error::Conflict(format!("Cannot {verb} a cancelled action")));
        }
        "rejected" => {
            return Err(Error::Conflict(
                "Cannot approve an already rejected action".into(),
            ));
        }
        "approved" => {
            return Err(Error::Conflict(
                "Cannot reject an already approved action".into(),
            ));
        }
        other => {
            return Err(Error::Conflict(format!(
                "Cannot {verb} action with status '{other}'"
            )));
        }
    }
    let (meter, audit_action, event_type) = if approve {
        ("action_approved", "actions.approve", "action_approved")
    } else {
        ("action_rejected", "actions.reject", "action_rejected")
    };
    let permit = check_quota(tx, ctx, caller, meter, TOOL)?;
    let rec = ReviewRec {
        decision: target.into(),
        reviewer: caller.user_id().to_owned(),
        comment: req.comment,
        created_at: ctx.now,
    };
    if !tx.insert_new(&REVIEWS, &record_key(tx, t, action_id), &rec)? {
        return Err(Error::Conflict("Action already has a review".into()));
    }
    a.status = target.into();
    a.updated_at = ctx.now;
    save(tx, t, &a)?;
    let summary = if approve {
        format!("Action approved: {}", a.title)
    } else {
        format!("Action rejected: {}", a.title)
    };
    event(
        tx,
        ctx,
        caller,
        event_type,
        &a,
        summary,
        Metadata::of(&[
            ("action_id", Some(&a.action_id)),
            ("decision", Some(target)),
            ("comment", rec.comment.as_deref()),
            ("reviewer_user_id", Some(caller.user_id())),
        ]),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        audit_action,
        TOOL,
        (EntityType::Action, &a.action_id),
    )?;
    Ok(view(t, &a))
}

/// Approves a proposed action (admin; 40 §1.8). Order: capability → admin (403, before the
/// lookup) → lookup (404) → already approved (200 no-op) → other states (409) → quota →
/// review + status.
pub fn approve(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    req: ReviewComment,
) -> Result<Action> {
    review(tx, ctx, caller, action_id, req, true)
}

/// Rejects a proposed action (admin); mirrors [`approve`].
pub fn reject(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    req: ReviewComment,
) -> Result<Action> {
    review(tx, ctx, caller, action_id, req, false)
}

/// Records the execution of an approved action (admin; 40 §1.10). Order: capability → admin
/// (403, before the lookup) → lookup (404) → already executed (200, the original execution) →
/// not approved (409, [`Error::InvalidStatusTransition`]) → quota → write.
pub fn execute(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    action_id: &str,
    req: ExecuteAction,
) -> Result<ExecutionResult> {
    let t = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    caller.require_admin()?;
    let mut a = load(tx, t, action_id)?;
    if a.status == "executed"
        && let Some(e) = tx.get(&EXECUTIONS, &record_key(tx, t, action_id))?
    {
        return Ok(ExecutionResult {
            action: view(t, &a),
            execution: execution_view(action_id, &e),
        });
    }
    if a.status != "approved" {
        return Err(Error::InvalidStatusTransition {
            current_status: a.status,
        });
    }
    let permit = check_quota(tx, ctx, caller, "action_executed", TOOL)?;
    let e = ExecutionRec {
        execution_id: ids::new_id(),
        executed_by: caller.user_id().to_owned(),
        execution_status: req.execution_status,
        result: object_text(&req.result),
        created_at: ctx.now,
    };
    if !tx.insert_new(&EXECUTIONS, &record_key(tx, t, action_id), &e)? {
        return Err(Error::Conflict("Action already has an execution".into()));
    }
    a.status = "executed".into();
    a.updated_at = ctx.now;
    save(tx, t, &a)?;
    event(
        tx,
        ctx,
        caller,
        "action_executed",
        &a,
        format!("Action executed: {} ({})", a.title, e.execution_status),
        Metadata::of(&[
            ("action_id", Some(&a.action_id)),
            ("execution_id", Some(&e.execution_id)),
            ("executed_by", Some(caller.user_id())),
            ("execution_status", Some(&e.execution_status)),
        ]),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "actions.execute",
        TOOL,
        (EntityType::Action, &a.action_id),
    )?;
    Ok(ExecutionResult {
        action: view(t, &a),
        execution: execution_view(action_id, &e),
    })
}

/// The action with its review and execution (no capability check).
pub(crate) fn detail(r: &impl Reader, tenant: &str, action_id: &str) -> Result<ActionDetail> {
    let a = load(r, tenant, action_id)?;
    let key = record_key(r, tenant, action_id);
    let review = r.get(&REVIEWS, &key)?;
    let execution = r.get(&EXECUTIONS, &key)?;
    Ok(ActionDetail {
        action: view(tenant, &a),
        review: review.as_ref().map(review_view),
        execution: execution.as_ref().map(|e| execution_view(action_id, e)),
    })
}

/// Lists actions newest first through the creation-time index.
pub(crate) fn list(r: &impl Reader, tenant: &str, q: &ActionQuery) -> Result<ActionPage> {
    let filtered =
        q.status.is_some() || q.created_by_user_id.is_some() || q.assigned_to_user_id.is_some();
    let (items, total) = page_index(
        r,
        &ACTIONS_BY_TIME,
        &ACTIONS_BY_TIME.prefix().tenant(tenant),
        None,
        None,
        Order::Desc,
        q.paging,
        filtered,
        |r, id| {
            let a = load(r, tenant, id)?;
            let ok = q.status.as_ref().is_none_or(|s| *s == a.status)
                && q.created_by_user_id
                    .as_ref()
                    .is_none_or(|u| *u == a.created_by)
                && q.assigned_to_user_id
                    .as_ref()
                    .is_none_or(|u| Some(u) == a.assigned_to.as_ref());
            Ok(ok.then(|| view(tenant, &a)))
        },
    )?;
    Ok(ActionPage::new(items, total, q.paging))
}

impl Bespin {
    /// `POST /v1/actions`: proposes an action. Errors: entitlement, `NotFound` (assignee),
    /// `QuotaExceeded`.
    pub fn create_action(&self, caller: &Principal, req: NewAction) -> Result<Action> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/actions`: newest first, filtered. Capability `action_center`.
    pub fn list_actions(&self, caller: &Principal, q: &ActionQuery) -> Result<ActionPage> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            list(r, caller.tenant_id(), q)
        })
    }

    /// `GET /v1/actions/{id}`: the action with review and execution. Errors: entitlement,
    /// `NotFound`.
    pub fn get_action(&self, caller: &Principal, action_id: &str) -> Result<ActionDetail> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            detail(r, caller.tenant_id(), action_id)
        })
    }

    /// `PATCH /v1/actions/{id}`. Errors: entitlement, `NotFound`, `Forbidden` (not the
    /// creator, or a creator's edit of an action that is no longer proposed), `QuotaExceeded`.
    pub fn update_action(
        &self,
        caller: &Principal,
        action_id: &str,
        patch: ActionPatch,
    ) -> Result<Action> {
        self.write_as(caller, |tx, ctx| update(tx, ctx, caller, action_id, patch))
    }

    /// `POST /v1/actions/{id}/cancel`. Errors: entitlement, `NotFound`, `BadRequest` (not
    /// proposed), `Forbidden`, `QuotaExceeded`.
    pub fn cancel_action(
        &self,
        caller: &Principal,
        action_id: &str,
        req: ReviewComment,
    ) -> Result<Action> {
        self.write_as(caller, |tx, ctx| cancel(tx, ctx, caller, action_id, req))
    }

    /// `POST /v1/actions/{id}/approve` (admin). Errors: entitlement, `NotFound`, `Forbidden`,
    /// `Conflict`, `QuotaExceeded`.
    pub fn approve_action(
        &self,
        caller: &Principal,
        action_id: &str,
        req: ReviewComment,
    ) -> Result<Action> {
        self.write_as(caller, |tx, ctx| approve(tx, ctx, caller, action_id, req))
    }

    /// `POST /v1/actions/{id}/reject` (admin). Errors as [`Bespin::approve_action`].
    pub fn reject_action(
        &self,
        caller: &Principal,
        action_id: &str,
        req: ReviewComment,
    ) -> Result<Action> {
        self.write_as(caller, |tx, ctx| reject(tx, ctx, caller, action_id, req))
    }

    /// `POST /v1/actions/{id}/execute` (admin). Errors: entitlement, `Forbidden`, `NotFound`,
    /// `InvalidStatusTransition` (not approved), `QuotaExceeded`.
    pub fn execute_action(
        &self,
        caller: &Principal,
        action_id: &str,
        req: ExecuteAction,
    ) -> Result<ExecutionResult> {
        self.write_as(caller, |tx, ctx| execute(tx, ctx, caller, action_id, req))
    }
}

/// Checks the actions: each under its own id and in the creation index (both ways); each
/// review and execution of an existing action; every action approved, rejected or executed
/// has its review.
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &mut Records) -> Result<()> {
    let tables = (&ACTIONS, &ACTIONS_BY_TIME, "action");
    let actions = check_records(r, c, records, tables, |r, t, a| {
        let own = record_key(r, t, &a.action_id).encode();
        (
            own,
            ActionTimeKey::new(t, a.created_at, &a.action_id).encode(),
        )
    })?;
    let reviews = c.rows(r, &REVIEWS)?;
    let executions = c.rows(r, &EXECUTIONS)?;
    let keys = reviews.iter().map(|x| (&x.bytes, &x.key));
    for (bytes, k) in keys.chain(executions.iter().map(|x| (&x.bytes, &x.key))) {
        let id = k.action_id.to_id(r.sealer());
        match records.created_at(&k.tenant_id, EntityType::Action, &id) {
            Some(_) => c.ok(),
            None => c.violation(
                REVIEWS.name(),
                bytes,
                "review or execution of a missing action",
            ),
        }
    }
    let reviewed: std::collections::HashSet<&[u8]> =
        reviews.iter().map(|x| x.bytes.as_slice()).collect();
    for x in &actions {
        let status = x.value.status.as_str();
        let needs = matches!(status, "approved" | "rejected" | "executed");
        if needs && !reviewed.contains(x.bytes.as_slice()) {
            let d = format!("action is {status} but has no review");
            c.violation(ACTIONS.name(), &x.bytes, d);
        }
    }
    Ok(())
}

impl search::Searchable for ActionRec {
    fn search_doc(&self) -> search::SearchDoc<'_> {
        search::SearchDoc {
            entity_type: EntityType::Action,
            id: &self.action_id,
            title: &self.title,
            bodies: vec![self.description.as_deref().unwrap_or("")],
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
