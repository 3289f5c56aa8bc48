//! The Core Business OS (core `coreos`): actions with review and execution, tasks, decisions,
//! meeting notes, governed memory facts, evidence links, the unified timeline, global search
//! and the record explorer.
//!
//! Creations take keyword arguments like the other areas. Updates take `**changes` with the
//! PATCH semantics of the HTTP API: an omitted keyword leaves the field alone, `None` clears a
//! nullable field (and is a `ValidationError` for a required one). List filters are keyword
//! arguments; `status="all"` lifts the default status filter of actions and memory facts.
//! Core OS writes are not idempotent (the HTTP API has no `Idempotency-Key` for them).

use crate::convert::{Body, changes};
use crate::handle::{PySession, call_json};
use bespin_core::coreos::actions::{
    ActionPatch, ActionQuery, ExecuteAction, NewAction, ReviewComment,
};
use bespin_core::coreos::decisions::{DecisionPatch, NewDecision, paging_from_json};
use bespin_core::coreos::evidence::{EvidenceQuery, NewEvidence};
use bespin_core::coreos::meetings::{MeetingPatch, MeetingQuery, NewMeeting};
use bespin_core::coreos::memory::{FactQuery, FactValue, NewFact};
use bespin_core::coreos::search::SearchQuery;
use bespin_core::coreos::tasks::{NewTask, TaskPatch, TaskQuery};
use bespin_core::coreos::timeline::TimelineQuery;
use pyo3::exceptions::PyTypeError;
use pyo3::prelude::*;
use pyo3::types::PyDict;

type Arg<'a, 'py> = Option<&'a Bound<'py, PyAny>>;

fn comment_body(comment: Arg<'_, '_>) -> PyResult<serde_json::Value> {
    Ok(Body::new().opt("comment", comment)?.json())
}

fn paging(limit: Option<i64>, offset: Option<i64>) -> Body {
    let mut b = Body::new();
    if let Some(l) = limit {
        b = b.set("limit", l);
    }
    if let Some(o) = offset {
        b = b.set("offset", o);
    }
    b
}

const ACTION_FIELDS: &[&str] = &[
    "title",
    "description",
    "assigned_to_user_id",
    "payload",
    "status",
];
const TASK_FIELDS: &[&str] = &[
    "title",
    "description",
    "assigned_to_user_id",
    "priority",
    "due_date",
    "status",
];
const DECISION_FIELDS: &[&str] = &["title", "context", "decision", "rationale"];
const MEETING_FIELDS: &[&str] = &["title", "notes", "linked_entity_type", "linked_entity_id"];
const FACT_FIELDS: &[&str] = &["fact_value"];

// --- actions -------------------------------------------------------------------------------

#[pymethods]
impl PySession {
    /// Proposes an action (any user; status `proposed`). Raises `NotFound` (assignee),
    /// `CapabilityDenied`, `QuotaExceeded`, `ValidationError`.
    #[pyo3(signature = (
        *,
        title,
        action_type,
        description = None,
        payload = None,
        assigned_to_user_id = None,
        source = None,
        source_ref = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_action(
        &self,
        py: Python<'_>,
        title: &Bound<'_, PyAny>,
        action_type: &Bound<'_, PyAny>,
        description: Arg<'_, '_>,
        payload: Arg<'_, '_>,
        assigned_to_user_id: Arg<'_, '_>,
        source: Arg<'_, '_>,
        source_ref: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("title", title)?
            .opt("description", description)?
            .req("action_type", action_type)?
            .opt("payload", payload)?
            .opt("assigned_to_user_id", assigned_to_user_id)?
            .opt("source", source)?
            .opt("source_ref", source_ref)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_action(&self.principal, NewAction::from_json(&body)?)
        })
    }

    /// Actions, newest first: `status` defaults to `"proposed"` (`"all"` for every status),
    /// optionally only those created by / assigned to a user; `limit` 1..200 (default 50).
    /// Returns `{"items", "total", "limit", "offset"}`.
    #[pyo3(signature = (
        *,
        status = None,
        created_by_user_id = None,
        assigned_to_user_id = None,
        limit = None,
        offset = None,
    ))]
    fn list_actions(
        &self,
        py: Python<'_>,
        status: Arg<'_, '_>,
        created_by_user_id: Arg<'_, '_>,
        assigned_to_user_id: Arg<'_, '_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset)
            .opt("status", status)?
            .opt("created_by_user_id", created_by_user_id)?
            .opt("assigned_to_user_id", assigned_to_user_id)?
            .json();
        call_json(py, &self.db, move |core| {
            core.list_actions(&self.principal, &ActionQuery::from_json(&body)?)
        })
    }

    /// One action with its `review` and `execution` (each `None` until it happens). Raises
    /// `NotFound`.
    fn get_action(&self, py: Python<'_>, action_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_action(&self.principal, &action_id)
        })
    }

    /// Changes a proposed action (creator or admin): `title`, `description`,
    /// `assigned_to_user_id`, `payload`, or `status="cancelled"`. Raises `NotFound`,
    /// `Forbidden`, `Conflict` (not proposed), `ValidationError`.
    #[pyo3(signature = (action_id, **changes))]
    fn update_action(
        &self,
        py: Python<'_>,
        action_id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let body = self::changes(changes, ACTION_FIELDS, "update_action")?;
        call_json(py, &self.db, move |core| {
            core.update_action(&self.principal, &action_id, ActionPatch::from_json(&body)?)
        })
    }

    /// Cancels a proposed action (creator or admin; cancelling twice is harmless). Raises
    /// `NotFound`, `Forbidden`, `Conflict` (reviewed or executed).
    #[pyo3(signature = (action_id, comment = None))]
    fn cancel_action(
        &self,
        py: Python<'_>,
        action_id: String,
        comment: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = comment_body(comment)?;
        call_json(py, &self.db, move |core| {
            core.cancel_action(
                &self.principal,
                &action_id,
                ReviewComment::from_json(&body)?,
            )
        })
    }

    /// Approves a proposed action (admin; approving twice is harmless). Raises `NotFound`,
    /// `Forbidden`, `Conflict` (not proposed).
    #[pyo3(signature = (action_id, comment = None))]
    fn approve_action(
        &self,
        py: Python<'_>,
        action_id: String,
        comment: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = comment_body(comment)?;
        call_json(py, &self.db, move |core| {
            core.approve_action(
                &self.principal,
                &action_id,
                ReviewComment::from_json(&body)?,
            )
        })
    }

    /// Rejects a proposed action (admin); mirrors `approve_action`.
    #[pyo3(signature = (action_id, comment = None))]
    fn reject_action(
        &self,
        py: Python<'_>,
        action_id: String,
        comment: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = comment_body(comment)?;
        call_json(py, &self.db, move |core| {
            core.reject_action(
                &self.principal,
                &action_id,
                ReviewComment::from_json(&body)?,
            )
        })
    }

    /// Records the execution of an approved action (admin): `execution_status` is
    /// `"succeeded"`, `"failed"` or `"skipped"`. Returns `{"action", "execution"}`; executing
    /// again returns the original execution. Raises `NotFound`, `Forbidden`, `Conflict` (not
    /// approved).
    #[pyo3(signature = (action_id, *, execution_status, result = None))]
    fn execute_action(
        &self,
        py: Python<'_>,
        action_id: String,
        execution_status: &Bound<'_, PyAny>,
        result: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("execution_status", execution_status)?
            .opt("result", result)?
            .json();
        call_json(py, &self.db, move |core| {
            core.execute_action(
                &self.principal,
                &action_id,
                ExecuteAction::from_json(&body)?,
            )
        })
    }
}

// --- tasks ---------------------------------------------------------------------------------

#[pymethods]
impl PySession {
    /// Creates a task (any user). `due_date` is a `date` or `"YYYY-MM-DD"`; a link needs both
    /// `linked_entity_type` and `linked_entity_id`. Raises `NotFound` (assignee, linked
    /// record), `CapabilityDenied`, `QuotaExceeded`, `ValidationError`.
    #[pyo3(signature = (
        *,
        title,
        description = None,
        assigned_to_user_id = None,
        priority = None,
        due_date = None,
        linked_entity_type = None,
        linked_entity_id = None,
    ))]
    #[allow(clippy::too_many_arguments)]
    fn create_task(
        &self,
        py: Python<'_>,
        title: &Bound<'_, PyAny>,
        description: Arg<'_, '_>,
        assigned_to_user_id: Arg<'_, '_>,
        priority: Arg<'_, '_>,
        due_date: Arg<'_, '_>,
        linked_entity_type: Arg<'_, '_>,
        linked_entity_id: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("title", title)?
            .opt("description", description)?
            .opt("assigned_to_user_id", assigned_to_user_id)?
            .opt("priority", priority)?
            .opt("due_date", due_date)?
            .opt("linked_entity_type", linked_entity_type)?
            .opt("linked_entity_id", linked_entity_id)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_task(&self.principal, NewTask::from_json(&body)?)
        })
    }

    /// Tasks, dated ones first by due date; optionally by `status`, assignee, or due on or
    /// before `due_before`; `limit` 1..100 (default 50).
    #[pyo3(signature = (
        *,
        status = None,
        assigned_to_user_id = None,
        due_before = None,
        limit = None,
        offset = None,
    ))]
    fn list_tasks(
        &self,
        py: Python<'_>,
        status: Arg<'_, '_>,
        assigned_to_user_id: Arg<'_, '_>,
        due_before: Arg<'_, '_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset)
            .opt("status", status)?
            .opt("assigned_to_user_id", assigned_to_user_id)?
            .opt("due_before", due_before)?
            .json();
        call_json(py, &self.db, move |core| {
            core.list_tasks(&self.principal, &TaskQuery::from_json(&body)?)
        })
    }

    /// One task. Raises `NotFound`.
    fn get_task(&self, py: Python<'_>, task_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_task(&self.principal, &task_id)
        })
    }

    /// Changes a task: `title`, `description`, `assigned_to_user_id`, `priority`, `due_date`,
    /// `status`. Raises `NotFound`, `Forbidden`, `ValidationError`.
    #[pyo3(signature = (task_id, **changes))]
    fn update_task(
        &self,
        py: Python<'_>,
        task_id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let body = self::changes(changes, TASK_FIELDS, "update_task")?;
        call_json(py, &self.db, move |core| {
            core.update_task(&self.principal, &task_id, TaskPatch::from_json(&body)?)
        })
    }

    /// Marks a task done. Raises `NotFound`, `Forbidden`.
    fn complete_task(&self, py: Python<'_>, task_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.complete_task(&self.principal, &task_id)
        })
    }
}

// --- decisions and meeting notes -----------------------------------------------------------

#[pymethods]
impl PySession {
    /// Records a decision (admin). Raises `Forbidden`, `CapabilityDenied`, `QuotaExceeded`,
    /// `ValidationError`.
    #[pyo3(signature = (*, decision_date, title, decision, context = None, rationale = None))]
    fn create_decision(
        &self,
        py: Python<'_>,
        decision_date: &Bound<'_, PyAny>,
        title: &Bound<'_, PyAny>,
        decision: &Bound<'_, PyAny>,
        context: Arg<'_, '_>,
        rationale: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("decision_date", decision_date)?
            .req("title", title)?
            .opt("context", context)?
            .req("decision", decision)?
            .opt("rationale", rationale)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_decision(&self.principal, NewDecision::from_json(&body)?)
        })
    }

    /// Decisions, newest decision date first; `limit` 1..100 (default 50).
    #[pyo3(signature = (*, limit = None, offset = None))]
    fn list_decisions(
        &self,
        py: Python<'_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset).json();
        call_json(py, &self.db, move |core| {
            core.list_decisions(&self.principal, paging_from_json(&body)?)
        })
    }

    /// One decision. Raises `NotFound`.
    fn get_decision(&self, py: Python<'_>, decision_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_decision(&self.principal, &decision_id)
        })
    }

    /// Changes a decision (admin): `title`, `context`, `decision`, `rationale`.
    #[pyo3(signature = (decision_id, **changes))]
    fn update_decision(
        &self,
        py: Python<'_>,
        decision_id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let body = self::changes(changes, DECISION_FIELDS, "update_decision")?;
        call_json(py, &self.db, move |core| {
            core.update_decision(
                &self.principal,
                &decision_id,
                DecisionPatch::from_json(&body)?,
            )
        })
    }

    /// Writes a meeting note (any user), optionally linked to a record.
    #[pyo3(signature = (
        *,
        meeting_date,
        title,
        notes,
        linked_entity_type = None,
        linked_entity_id = None,
    ))]
    fn create_meeting(
        &self,
        py: Python<'_>,
        meeting_date: &Bound<'_, PyAny>,
        title: &Bound<'_, PyAny>,
        notes: &Bound<'_, PyAny>,
        linked_entity_type: Arg<'_, '_>,
        linked_entity_id: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("meeting_date", meeting_date)?
            .req("title", title)?
            .req("notes", notes)?
            .opt("linked_entity_type", linked_entity_type)?
            .opt("linked_entity_id", linked_entity_id)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_meeting(&self.principal, NewMeeting::from_json(&body)?)
        })
    }

    /// Meeting notes, newest first, optionally dated `from_`..`to` (inclusive; the HTTP
    /// query's `from`); `limit` 1..100 (default 50).
    #[pyo3(signature = (*, from_ = None, to = None, limit = None, offset = None))]
    fn list_meetings(
        &self,
        py: Python<'_>,
        from_: Arg<'_, '_>,
        to: Arg<'_, '_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset)
            .opt("from", from_)?
            .opt("to", to)?
            .json();
        call_json(py, &self.db, move |core| {
            core.list_meetings(&self.principal, &MeetingQuery::from_json(&body)?)
        })
    }

    /// One meeting note. Raises `NotFound`.
    fn get_meeting(&self, py: Python<'_>, meeting_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_meeting(&self.principal, &meeting_id)
        })
    }

    /// Changes a meeting note: `title`, `notes`, and the link (`linked_entity_type` and
    /// `linked_entity_id` together; both `None` clears it).
    #[pyo3(signature = (meeting_id, **changes))]
    fn update_meeting(
        &self,
        py: Python<'_>,
        meeting_id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let body = self::changes(changes, MEETING_FIELDS, "update_meeting")?;
        call_json(py, &self.db, move |core| {
            core.update_meeting(
                &self.principal,
                &meeting_id,
                MeetingPatch::from_json(&body)?,
            )
        })
    }
}

// --- memory facts and evidence -------------------------------------------------------------

#[pymethods]
impl PySession {
    /// Adds an active memory fact (admin). Raises `Forbidden`, `Conflict` (an active fact
    /// with this key exists: supersede it), `ValidationError`.
    #[pyo3(signature = (*, category, fact_key, fact_value))]
    fn create_memory_fact(
        &self,
        py: Python<'_>,
        category: &Bound<'_, PyAny>,
        fact_key: &Bound<'_, PyAny>,
        fact_value: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("category", category)?
            .req("fact_key", fact_key)?
            .req("fact_value", fact_value)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_memory_fact(&self.principal, NewFact::from_json(&body)?)
        })
    }

    /// Memory facts: `status` defaults to `"active"` (`"all"` for every version), optionally
    /// one `category`; `limit` 1..100 (default 50).
    #[pyo3(signature = (*, category = None, status = None, limit = None, offset = None))]
    fn list_memory_facts(
        &self,
        py: Python<'_>,
        category: Arg<'_, '_>,
        status: Arg<'_, '_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset)
            .opt("category", category)?
            .opt("status", status)?
            .json();
        call_json(py, &self.db, move |core| {
            core.list_memory_facts(&self.principal, &FactQuery::from_json(&body)?)
        })
    }

    /// One memory fact version (any status). Raises `NotFound`.
    fn get_memory_fact(&self, py: Python<'_>, fact_id: String) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.get_memory_fact(&self.principal, &fact_id)
        })
    }

    /// Corrects an active fact in place (admin): `fact_value`. Raises `Conflict` for a
    /// superseded fact.
    #[pyo3(signature = (fact_id, **changes))]
    fn update_memory_fact(
        &self,
        py: Python<'_>,
        fact_id: String,
        changes: Option<&Bound<'_, PyDict>>,
    ) -> PyResult<Py<PyAny>> {
        let body = self::changes(changes, FACT_FIELDS, "update_memory_fact")?;
        call_json(py, &self.db, move |core| {
            core.update_memory_fact(
                &self.principal,
                &fact_id,
                FactValue::patch_from_json(&body)?,
            )
        })
    }

    /// Replaces an active fact by a new version (admin); returns the new version, which
    /// records `supersedes_fact_id`. Raises `Conflict` when the fact is not active.
    #[pyo3(signature = (fact_id, *, fact_value))]
    fn supersede_memory_fact(
        &self,
        py: Python<'_>,
        fact_id: String,
        fact_value: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new().req("fact_value", fact_value)?.json();
        call_json(py, &self.db, move |core| {
            core.supersede_memory_fact(
                &self.principal,
                &fact_id,
                FactValue::supersede_from_json(&body)?,
            )
        })
    }

    /// Links evidence (`source_type` one of `kpi`, `brief`, `note`, `decision`, `task`,
    /// `manual`; `source_ref` a dict) to an action, task, decision or memory fact. Raises
    /// `NotFound` (target), `Forbidden`, `ValidationError`.
    #[pyo3(signature = (*, entity_type, entity_id, source_type, source_ref, snippet = None))]
    fn create_evidence(
        &self,
        py: Python<'_>,
        entity_type: &Bound<'_, PyAny>,
        entity_id: &Bound<'_, PyAny>,
        source_type: &Bound<'_, PyAny>,
        source_ref: &Bound<'_, PyAny>,
        snippet: Arg<'_, '_>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("entity_type", entity_type)?
            .req("entity_id", entity_id)?
            .req("source_type", source_type)?
            .req("source_ref", source_ref)?
            .opt("snippet", snippet)?
            .json();
        call_json(py, &self.db, move |core| {
            core.create_evidence(&self.principal, NewEvidence::from_json(&body)?)
        })
    }

    /// The evidence links of a record, newest first: `{"items", "total"}`. Raises
    /// `NotFound` (record).
    fn list_evidence(
        &self,
        py: Python<'_>,
        entity_type: &Bound<'_, PyAny>,
        entity_id: &Bound<'_, PyAny>,
    ) -> PyResult<Py<PyAny>> {
        let body = Body::new()
            .req("entity_type", entity_type)?
            .req("entity_id", entity_id)?
            .json();
        call_json(py, &self.db, move |core| {
            core.list_evidence(&self.principal, &EvidenceQuery::from_json(&body)?)
        })
    }
}

// --- timeline, search, records -------------------------------------------------------------

#[pymethods]
impl PySession {
    /// The tenant's timeline, newest first, optionally for one entity type and/or id, and
    /// only events older than the event id `before` (a stable cursor; `NotFound` if unknown);
    /// `limit` 1..200 (default 50).
    #[pyo3(signature = (*, entity_type = None, entity_id = None, before = None, limit = None, offset = None))]
    fn timeline(
        &self,
        py: Python<'_>,
        entity_type: Arg<'_, '_>,
        entity_id: Arg<'_, '_>,
        before: Arg<'_, '_>,
        limit: Option<i64>,
        offset: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let body = paging(limit, offset)
            .opt("entity_type", entity_type)?
            .opt("entity_id", entity_id)?
            .opt("before", before)?
            .json();
        call_json(py, &self.db, move |core| {
            core.timeline(&self.principal, &TimelineQuery::from_json(&body)?)
        })
    }

    /// Global search (metered as `search_query`): `types` a list (or comma-separated str) of
    /// `actions`, `tasks`, `decisions`, `meetings`, `memory` (default: all); `limit` 1..100
    /// (default 50). Returns `{"q", "results", "total"}`.
    #[pyo3(signature = (q, *, types = None, limit = None))]
    fn search(
        &self,
        py: Python<'_>,
        q: &Bound<'_, PyAny>,
        types: Arg<'_, '_>,
        limit: Option<i64>,
    ) -> PyResult<Py<PyAny>> {
        let types = match types.filter(|t| !t.is_none()) {
            None => None,
            Some(t) => Some(if let Ok(s) = t.extract::<String>() {
                s
            } else if let Ok(v) = t.extract::<Vec<String>>() {
                v.join(",")
            } else {
                return Err(PyTypeError::new_err(
                    "'types' must be a list of str or a comma-separated str",
                ));
            }),
        };
        let mut body = paging(limit, None).req("q", q)?;
        if let Some(t) = types {
            body = body.set("types", t);
        }
        let body = body.json();
        call_json(py, &self.db, move |core| {
            core.search(&self.principal, &SearchQuery::from_json(&body)?)
        })
    }

    /// The record explorer: `{"entity", "evidence", "timeline"}` for one record (its 20
    /// newest events). Raises `BadRequest` for an unknown `entity_type`, `NotFound`.
    fn record(
        &self,
        py: Python<'_>,
        entity_type: String,
        entity_id: String,
    ) -> PyResult<Py<PyAny>> {
        call_json(py, &self.db, move |core| {
            core.record(&self.principal, &entity_type, &entity_id)
        })
    }
}

/// Nothing to add to the module: the methods hang off the classes of `handle`.
pub fn register(_m: &Bound<'_, PyModule>) -> PyResult<()> {
    Ok(())
}
