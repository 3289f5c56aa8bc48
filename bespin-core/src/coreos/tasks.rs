//! Tasks (40 §2): no state machine; PATCH by creator, assignee or admin; `complete` by the
//! assignee or an admin.
//!
//! The list walks an index ordered like the contract's list: dated tasks first by `due_date`
//! ascending, then undated ones, each by `created_at` descending. A change of `due_date` moves
//! the index row in the same transaction. References are checked: the assignee must be a user
//! of the tenant and a linked record must exist in it (404).

use super::deletion::{self, Deleted, Deletion};
use super::{
    Change, EntityType, Link, Metadata, Paging, Records, check_assignee, check_link, check_quota,
    check_records, filter, link_fields, new_record_id, next_day, page_index, page_type,
    patch_choice, patch_date, patch_string, record_effects, search, timeline,
};
use crate::auth::Principal;
use crate::billing::require_capability;
use crate::check::Checker;
use crate::error::{Error, Result};
use crate::events::{self, Rendered, catalog};
use crate::store::{Id, Order, Reader, Record, Table, TableInfo, WriteTx, key};
use crate::time::{Date, Timestamp};
use crate::validate::{Fields, Len, Presence, got};
use crate::{Bespin, Ctx};
use serde::{Deserialize, Serialize};
use serde_json::Value;

const CAP: &str = "tasks";
const TOOL: &str = "tasks";
const PRIORITIES: &[&str] = &["low", "medium", "high"];
const PRIORITY_PATTERN: &str = "^(low|medium|high)$";
const STATUSES: &[&str] = &["todo", "doing", "done"];
const STATUS_PATTERN: &str = "^(todo|doing|done)$";

/// A stored task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct TaskRec {
    pub task_id: String,
    pub created_by: String,
    pub assigned_to: Option<String>,
    pub status: String,
    pub priority: String,
    pub due_date: Option<Date>,
    pub title: String,
    pub description: Option<String>,
    pub linked_type: Option<String>,
    pub linked_id: Option<String>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}
impl Record for TaskRec {}

key! {
    /// (tenant, task).
    pub(crate) struct TaskKey<'a> { tenant_id: tenant, task_id: id }
    /// (tenant, 0 dated / 1 undated, due date, −created at, task): the list's order.
    pub(crate) struct TaskDueKey<'a> {
        tenant_id: tenant,
        undated: u64,
        due_date: maybe_date,
        newest_first: i64,
        task_id: ext_id,
    }
}

/// (tenant, task) → task.
pub(crate) const TASKS: Table<TaskKey<'static>, TaskRec> = Table::new("co_tasks");
/// (tenant, 0 dated / 1 undated, due date, −created at, task) → task id: the list order.
pub(crate) const TASKS_BY_DUE: Table<TaskDueKey<'static>, String> = Table::new("co_tasks_by_due");

/// The tables of this module.
pub(crate) const TABLES: &[&dyn TableInfo] = &[&TASKS, &TASKS_BY_DUE];

/// The key of the task `id` of the tenant (its record number when the id is sealed).
pub(crate) fn record_key<'a>(r: &impl Reader, tenant: &'a str, id: &'a str) -> TaskKey<'a> {
    TaskKey::new(tenant, Id::of(r.sealer(), id))
}

/// A task as the API shows it (`TaskResponse`).
#[derive(Debug, Clone, PartialEq, Serialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct Task {
    /// The task id.
    pub task_id: String,
    /// The tenant.
    pub tenant_id: String,
    /// The creator.
    pub created_by_user_id: String,
    /// The assignee, if any.
    pub assigned_to_user_id: Option<String>,
    /// `todo`, `doing` or `done`.
    pub status: String,
    /// `low`, `medium` or `high`.
    pub priority: String,
    /// `YYYY-MM-DD` or null.
    pub due_date: Option<String>,
    /// 1–255 characters.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// Linked record type, if any.
    pub linked_entity_type: Option<String>,
    /// Linked record id, if any.
    pub linked_entity_id: Option<String>,
    /// Creation instant (RFC 3339, UTC).
    pub created_at: String,
    /// Last change (RFC 3339, UTC).
    pub updated_at: String,
}

page_type!(
    /// `GET /v1/tasks`.
    TaskPage,
    Task
);

pub(crate) fn view(tenant: &str, t: &TaskRec) -> Task {
    Task {
        task_id: t.task_id.clone(),
        tenant_id: tenant.to_owned(),
        created_by_user_id: t.created_by.clone(),
        assigned_to_user_id: t.assigned_to.clone(),
        status: t.status.clone(),
        priority: t.priority.clone(),
        due_date: t.due_date.map(|d| d.to_string()),
        title: t.title.clone(),
        description: t.description.clone(),
        linked_entity_type: t.linked_type.clone(),
        linked_entity_id: t.linked_id.clone(),
        created_at: t.created_at.to_rfc3339(),
        updated_at: t.updated_at.to_rfc3339(),
    }
}

/// Input of [`Bespin::create_task`].
#[derive(Debug, Clone, PartialEq)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct NewTask {
    /// 1–255 characters.
    pub title: String,
    /// Optional description.
    pub description: Option<String>,
    /// Must be a user of the caller's tenant.
    pub assigned_to_user_id: Option<String>,
    /// `low`, `medium` (default) or `high`.
    #[cfg_attr(feature = "openapi", schema(required = false))]
    pub priority: String,
    /// A real date.
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub due_date: Option<Date>,
    /// A record of the tenant this task is about.
    #[cfg_attr(feature = "openapi", schema(ignore))]
    pub link: Option<Link>,
}

impl NewTask {
    /// Validates a request body.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = f.req_string("title", Len::between(1, 255));
        let description = f.string("description", Presence::Optional, Len::TEXT);
        let assigned = f.string(
            "assigned_to_user_id",
            Presence::Optional,
            Len::between(1, 36),
        );
        let priority = f.choice("priority", Presence::Optional, PRIORITIES, PRIORITY_PATTERN);
        let due = f.date("due_date", Presence::Optional);
        let link = link_fields(&mut f);
        f.finish()?;
        Ok(NewTask {
            title: got(title)?,
            description: got(description)?,
            assigned_to_user_id: got(assigned)?,
            priority: got(priority)?.unwrap_or_else(|| "medium".into()),
            due_date: got(due)?,
            link: got(link)?,
        })
    }
}

/// Input of [`Bespin::update_task`]: only present keys are applied.
#[derive(Debug, Clone, PartialEq, Default)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct TaskPatch {
    /// New title (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub title: Change<String>,
    /// New description (`null` clears).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub description: Change<String>,
    /// New assignee (`null` unassigns; checked).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub assigned_to_user_id: Change<String>,
    /// New priority (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub priority: Change<String>,
    /// New due date (`null` clears).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>, format = Date))]
    pub due_date: Change<Date>,
    /// New status (`null` is 422).
    #[cfg_attr(feature = "openapi", schema(value_type = Option<String>))]
    pub status: Change<String>,
}

impl TaskPatch {
    /// Validates a request body (link fields are ignored: they are set at creation only).
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let title = patch_string(&mut f, "title", Len::between(1, 255), false);
        let description = patch_string(&mut f, "description", Len::TEXT, true);
        let assigned = patch_string(&mut f, "assigned_to_user_id", Len::between(1, 36), true);
        let priority = patch_choice(&mut f, "priority", PRIORITIES, PRIORITY_PATTERN);
        let due = patch_date(&mut f, "due_date");
        let status = patch_choice(&mut f, "status", STATUSES, STATUS_PATTERN);
        f.finish()?;
        Ok(TaskPatch {
            title: got(title)?,
            description: got(description)?,
            assigned_to_user_id: got(assigned)?,
            priority: got(priority)?,
            due_date: got(due)?,
            status: got(status)?,
        })
    }
}

/// Query of [`Bespin::list_tasks`].
#[derive(Debug, Clone, PartialEq, Default)]
pub struct TaskQuery {
    /// Exact status (`all`/empty/absent: no filter).
    pub status: Option<String>,
    /// Exact assignee.
    pub assigned_to_user_id: Option<String>,
    /// Only tasks due on or before this date (undated tasks are left out).
    pub due_before: Option<Date>,
    /// `limit` 1–100 (default 50), `offset` ≥ 0.
    pub paging: Option<Paging>,
}

impl TaskQuery {
    /// Validates query values given as a JSON object of strings.
    pub fn from_json(v: &Value) -> Result<Self> {
        let mut f = Fields::new(v)?;
        let status = filter(&mut f, "status", true);
        let assigned = filter(&mut f, "assigned_to_user_id", true);
        let due = f.date_or_blank("due_before");
        let paging = Paging::read(&mut f, 100);
        f.finish()?;
        Ok(TaskQuery {
            status: got(status)?,
            assigned_to_user_id: got(assigned)?,
            due_before: got(due)?,
            paging: Some(got(paging)?),
        })
    }
}

/// The task `id` of the tenant, if it exists there.
pub(crate) fn get(r: &impl Reader, tenant: &str, id: &str) -> Result<Option<TaskRec>> {
    r.get(&TASKS, &record_key(r, tenant, id))
}

/// The task `id` of the tenant, or 404.
pub(crate) fn load(r: &impl Reader, tenant: &str, id: &str) -> Result<TaskRec> {
    get(r, tenant, id)?.ok_or_else(|| EntityType::Task.not_found())
}

/// The task's row in the list order.
pub(crate) fn order_key<'a>(tenant: &'a str, t: &'a TaskRec) -> TaskDueKey<'a> {
    let undated = u64::from(t.due_date.is_none());
    TaskDueKey::new(tenant, undated, t.due_date, -t.created_at.0, &t.task_id)
}

fn save(tx: &mut WriteTx, tenant: &str, t: &TaskRec) -> Result<()> {
    let key = record_key(tx, tenant, &t.task_id);
    search::save(tx, &TASKS, &key, tenant, t)
}

/// Creates a task (any user). Order: capability → references (404) → quota → write.
pub fn create(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, req: NewTask) -> Result<Task> {
    create_rendered(tx, ctx, caller, req).map(Rendered::into_value)
}

/// [`create`], with the task's JSON as its `task.created` event holds it: the server answers
/// with these bytes rather than render the same task a second time.
pub fn create_rendered(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    req: NewTask,
) -> Result<Rendered<Task>> {
    let tn = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    check_assignee(tx, tn, req.assigned_to_user_id.as_deref())?;
    check_link(tx, tn, req.link.as_ref())?;
    let permit = check_quota(tx, ctx, caller, "task_created", TOOL)?;
    let t = TaskRec {
        task_id: new_record_id(tx)?,
        created_by: caller.user_id().to_owned(),
        assigned_to: req.assigned_to_user_id,
        status: "todo".into(),
        priority: req.priority,
        due_date: req.due_date,
        title: req.title,
        description: req.description,
        linked_type: req.link.as_ref().map(|l| l.entity_type.as_str().to_owned()),
        linked_id: req.link.map(|l| l.entity_id),
        created_at: ctx.now,
        updated_at: ctx.now,
    };
    search::insert(tx, &TASKS, &record_key(tx, tn, &t.task_id), tn, &t)?;
    tx.put(&TASKS_BY_DUE, &order_key(tn, &t), &t.task_id)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "task_created",
        EntityType::Task,
        &t.task_id,
        t.created_at,
        format!("Task created: {}", t.title),
        Metadata::of(&[
            ("priority", Some(&t.priority)),
            ("assigned_to", t.assigned_to.as_deref()),
        ]),
    )?;
    let v = events::emit_rendered(
        tx,
        ctx,
        caller,
        catalog::TASK_CREATED,
        &t.task_id,
        view(tn, &t),
    )?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "tasks.create",
        TOOL,
        (EntityType::Task, &t.task_id),
    )?;
    Ok(v)
}

/// Changes a task (creator, assignee or admin). Order: capability → 404 → 403 → assignee
/// (404) → no change (200 no-op) → quota → write.
pub fn update(
    tx: &mut WriteTx,
    ctx: &Ctx,
    caller: &Principal,
    task_id: &str,
    patch: TaskPatch,
) -> Result<Task> {
    let tn = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let mut t = load(tx, tn, task_id)?;
    let me = caller.user_id();
    if !caller.is_admin() && t.created_by != me && t.assigned_to.as_deref() != Some(me) {
        return Err(Error::Forbidden(
            "Not authorized to update this task".into(),
        ));
    }
    if let Change::Set(u) = &patch.assigned_to_user_id {
        check_assignee(tx, tn, Some(u))?;
    }
    let old_order = order_key(tn, &t).into_owned();
    let mut changed = patch.title.apply(&mut t.title);
    changed |= patch.description.apply_opt(&mut t.description);
    changed |= patch.assigned_to_user_id.apply_opt(&mut t.assigned_to);
    changed |= patch.priority.apply(&mut t.priority);
    changed |= patch.due_date.apply_opt(&mut t.due_date);
    changed |= patch.status.apply(&mut t.status);
    if !changed {
        return Ok(view(tn, &t));
    }
    let permit = check_quota(tx, ctx, caller, "task_updated", TOOL)?;
    t.updated_at = ctx.now;
    save(tx, tn, &t)?;
    let new_order = order_key(tn, &t);
    if new_order != old_order {
        tx.delete(&TASKS_BY_DUE, &old_order)?;
        tx.put(&TASKS_BY_DUE, &new_order, &t.task_id)?;
    }
    timeline::emit(
        tx,
        ctx,
        caller,
        "task_updated",
        EntityType::Task,
        &t.task_id,
        t.created_at,
        format!("Task updated: {}", t.title),
        Metadata::of(&[("status", Some(&t.status)), ("priority", Some(&t.priority))]),
    )?;
    let v = view(tn, &t);
    events::emit(tx, ctx, caller, catalog::TASK_UPDATED, &t.task_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "tasks.update",
        TOOL,
        (EntityType::Task, &t.task_id),
    )?;
    Ok(v)
}

/// Marks a task done (assignee or admin). Order: capability → 404 → 403 → already done (200
/// no-op) → quota → write.
pub fn complete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, task_id: &str) -> Result<Task> {
    let tn = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let mut t = load(tx, tn, task_id)?;
    if !caller.is_admin() && t.assigned_to.as_deref() != Some(caller.user_id()) {
        return Err(Error::Forbidden(
            "Not authorized to complete this task".into(),
        ));
    }
    if t.status == "done" {
        return Ok(view(tn, &t));
    }
    let permit = check_quota(tx, ctx, caller, "task_completed", TOOL)?;
    t.status = "done".into();
    t.updated_at = ctx.now;
    save(tx, tn, &t)?;
    timeline::emit(
        tx,
        ctx,
        caller,
        "task_completed",
        EntityType::Task,
        &t.task_id,
        t.created_at,
        format!("Task completed: {}", t.title),
        Metadata::of(&[("completed_by", Some(caller.user_id()))]),
    )?;
    let v = view(tn, &t);
    events::emit(tx, ctx, caller, catalog::TASK_COMPLETED, &t.task_id, &v)?;
    record_effects(
        tx,
        ctx,
        caller,
        permit,
        "tasks.complete",
        TOOL,
        (EntityType::Task, &t.task_id),
    )?;
    Ok(v)
}

/// Deletes a task (its creator or an admin): gone from its table, the list index and search
/// in this transaction, with its evidence links; its timeline stays, with `task_deleted`.
/// Order: capability → 404 → 403 → write.
pub fn delete(tx: &mut WriteTx, ctx: &Ctx, caller: &Principal, task_id: &str) -> Result<Deleted> {
    let tn = caller.tenant_id();
    require_capability(tx, caller, CAP)?;
    let t = load(tx, tn, task_id)?;
    if !caller.is_admin() && t.created_by != caller.user_id() {
        return Err(Error::Forbidden(
            "Not authorized to delete this task".into(),
        ));
    }
    let key = record_key(tx, tn, &t.task_id);
    search::remove(tx, &TASKS, &key, tn)?;
    tx.delete(&TASKS_BY_DUE, &order_key(tn, &t))?;
    deletion::finish(
        tx,
        ctx,
        caller,
        Deletion {
            et: EntityType::Task,
            id: &t.task_id,
            created_at: t.created_at,
            title: &t.title,
            audit_action: "tasks.delete",
            event: catalog::TASK_DELETED,
        },
    )
}

/// Lists tasks through the due-date index.
pub(crate) fn list(r: &impl Reader, tenant: &str, q: &TaskQuery) -> Result<TaskPage> {
    let paging = q.paging.unwrap_or(Paging::DEFAULT);
    let filtered = q.status.is_some() || q.assigned_to_user_id.is_some();
    let all = TASKS_BY_DUE.prefix().tenant(tenant);
    let (prefix, to) = match q.due_before {
        Some(d) => {
            let dated = all.u64(0);
            (dated.clone(), Some(dated.date(next_day(d))))
        }
        None => (all, None),
    };
    let (items, total) = page_index(
        r,
        &TASKS_BY_DUE,
        &prefix,
        None,
        to.as_ref(),
        Order::Asc,
        paging,
        filtered,
        |r, id| {
            let t = load(r, tenant, id)?;
            let ok = q.status.as_ref().is_none_or(|s| *s == t.status)
                && q.assigned_to_user_id
                    .as_ref()
                    .is_none_or(|u| Some(u) == t.assigned_to.as_ref());
            Ok(ok.then(|| view(tenant, &t)))
        },
    )?;
    Ok(TaskPage::new(items, total, paging))
}

impl Bespin {
    /// `POST /v1/tasks`. Errors: entitlement, `NotFound` (assignee, linked record),
    /// `QuotaExceeded`.
    pub fn create_task(&self, caller: &Principal, req: NewTask) -> Result<Task> {
        self.write_as(caller, |tx, ctx| create(tx, ctx, caller, req))
    }

    /// `GET /v1/tasks`. Capability `tasks`.
    pub fn list_tasks(&self, caller: &Principal, q: &TaskQuery) -> Result<TaskPage> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            list(r, caller.tenant_id(), q)
        })
    }

    /// `GET /v1/tasks/{id}`. Errors: entitlement, `NotFound`.
    pub fn get_task(&self, caller: &Principal, task_id: &str) -> Result<Task> {
        self.read(|r, _| {
            require_capability(r, caller, CAP)?;
            Ok(view(
                caller.tenant_id(),
                &load(r, caller.tenant_id(), task_id)?,
            ))
        })
    }

    /// `PATCH /v1/tasks/{id}`. Errors: entitlement, `NotFound`, `Forbidden`, `QuotaExceeded`.
    pub fn update_task(&self, caller: &Principal, task_id: &str, patch: TaskPatch) -> Result<Task> {
        self.write_as(caller, |tx, ctx| update(tx, ctx, caller, task_id, patch))
    }

    /// `POST /v1/tasks/{id}/complete`. Errors: entitlement, `NotFound`, `Forbidden`,
    /// `QuotaExceeded`.
    pub fn complete_task(&self, caller: &Principal, task_id: &str) -> Result<Task> {
        self.write_as(caller, |tx, ctx| complete(tx, ctx, caller, task_id))
    }
}

/// Checks the tasks: each under its own id and in the list order's index (both ways).
pub(crate) fn check(r: &impl Reader, c: &mut Checker, records: &mut Records) -> Result<()> {
    let tables = (&TASKS, &TASKS_BY_DUE, "task");
    check_records(r, c, records, tables, |r, t, task| {
        let own = record_key(r, t, &task.task_id).encode();
        (own, order_key(t, task).encode())
    })?;
    Ok(())
}

impl search::Searchable for TaskRec {
    fn search_doc(&self) -> search::SearchDoc<'_> {
        search::SearchDoc {
            entity_type: EntityType::Task,
            id: &self.task_id,
            title: &self.title,
            bodies: vec![self.description.as_deref().unwrap_or("")],
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}
