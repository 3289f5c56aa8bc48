# Hand-written stub of the Rust extension module (bespin-py/src). Keep it in step with the
# `#[pymethods]` of each area file; `mypy --strict` on the tests and examples checks the use.
import datetime
import os
from typing import Any, Dict, Iterator, List, Literal, Mapping, Optional, Sequence, Type, Union, final

from types import TracebackType

from bespin.types import (
    ApiKey,
    ApiKeyCreated,
    Deleted,
    Erasure,
    Exported,
    TenantKeyRotated,
    UserInfo,
    UserPage,
    AuditExportRow,
    AuditPage,
    AuditProof,
    AuditPublicKey,
    AuditStats,
    AuditVerifyReport,
    Event,
    Action,
    ActionDetail,
    ActionPage,
    Brief,
    BriefContent,
    BriefList,
    CapSpec,
    ChatReply,
    Conversation,
    ConversationDetail,
    ConversationList,
    DailyUsage,
    Decision,
    DecisionPage,
    EvidenceLink,
    EvidenceList,
    ExecutionResult,
    IngestResult,
    Invocation,
    Kpi,
    KpiSeries,
    KpiWindow,
    LatestPoint,
    Ledger,
    Me,
    MeetingNote,
    MeetingPage,
    MemoryFact,
    MemoryFactPage,
    MeteredEvent,
    Notification,
    NotificationPrefs,
    Outbox,
    Plan,
    PlanCap,
    PlanInfo,
    PointIn,
    RecordView,
    RunReport,
    SearchResults,
    Subscription,
    Task,
    TaskPage,
    TenantCreated,
    TenantLimits,
    TimelinePage,
    ToolInfo,
    Usage,
    UsageByDay,
    UsageReceipt,
    UsageIngest,
    UsageExportPage,
    User,
    ValidationItem,
)

__version__: str

# Arguments are checked by the core exactly like the HTTP API's JSON bodies (so e.g. a numeric
# str is accepted where the contract coerces it); these annotations state the intended types.
DateArg = Union[datetime.date, str, None]
Role = Literal["admin", "member"]
InstantArg = Union[datetime.datetime, datetime.date, str]
EntityType = Literal["action", "task", "decision", "meeting", "memory_fact"]
EvidenceTarget = Literal["action", "task", "decision", "memory_fact"]
EvidenceSource = Literal["kpi", "brief", "note", "decision", "task", "manual"]
SearchType = Literal["actions", "tasks", "decisions", "meetings", "memory"]
Priority = Literal["low", "medium", "high"]
TaskStatus = Literal["todo", "doing", "done"]
FactCategory = Literal["icp", "positioning", "pricing", "goals", "constraints", "brand", "other"]
Activity = Literal[
    "assistant_query", "tool_invocation", "daily_brief_generated", "notification_enqueued"
]

class BespinError(Exception):
    """Base of every Bespin error."""

    code: str
    detail: Any

class ValidationError(BespinError, ValueError):
    detail: List[ValidationItem]

class BadRequest(BespinError, ValueError): ...
class Unauthorized(BespinError): ...
class Forbidden(BespinError): ...
class CapabilityDenied(Forbidden):
    detail: Dict[str, Any]

class NotFound(BespinError): ...
class Conflict(BespinError): ...
class CursorExpired(BespinError): ...

class QuotaExceeded(BespinError):
    detail: Dict[str, Any]

def open(
    path: Union[str, "os.PathLike[str]"], *, event_retention_secs: Optional[int] = None
) -> Bespin:
    """Opens (creating if missing) the database at ``path``: a redb file, or a PostgreSQL URL
    (``postgres://user@host/db?schema=bespin``) that several processes may share.
    ``event_retention_secs``: how long events are kept (default 30 days); a cursor older
    than that raises ``CursorExpired``."""

def open_in_memory() -> Bespin:
    """Opens a database held only in memory."""

@final
class Bespin:
    """An open Bespin database; a context manager. Safe to share between threads."""

    @property
    def closed(self) -> bool: ...
    @property
    def admin(self) -> Admin: ...
    def close(self) -> None: ...
    def __enter__(self) -> Bespin: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> bool: ...
    def health(self) -> None: ...
    def purge_expired_idempotency(self) -> int: ...
    def purge_expired_events(self, max: int = 10000) -> int:
        """Deletes up to ``max`` events older than the retention; how many went."""
    # audit
    def audit_public_key(self) -> AuditPublicKey: ...
    def audit_verify(self) -> AuditVerifyReport: ...
    def session(self, tenant_id: str, user_id: str, api_key: str) -> Session: ...
    def session_for_key(
        self, api_key: str, *, tenant_id: Optional[str] = None, user_id: Optional[str] = None
    ) -> Session: ...
    # tenancy
    def create_tenant(
        self, *, name: str, region: str, admin_email: str
    ) -> TenantCreated: ...

@final
class EventStream:
    """The caller's events, oldest first; with ``follow=True`` it waits for new ones (the GIL
    released) until ``close()`` or Ctrl-C."""

    def __iter__(self) -> Iterator[Event]: ...
    def __next__(self) -> Event: ...
    def close(self) -> None: ...
    @property
    def cursor(self) -> Optional[str]: ...
    def __enter__(self) -> EventStream: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class AuditExport:
    """An audit export's rows, oldest first, read a page at a time from one snapshot (held
    until the iterator is exhausted or closed)."""

    def __iter__(self) -> Iterator[AuditExportRow]: ...
    def __next__(self) -> AuditExportRow: ...
    def close(self) -> None: ...
    @property
    def remaining(self) -> int: ...
    def __enter__(self) -> AuditExport: ...
    def __exit__(
        self,
        exc_type: Optional[Type[BaseException]],
        exc: Optional[BaseException],
        tb: Optional[TracebackType],
    ) -> None: ...

@final
class Session:
    """An authenticated user of one tenant."""

    @property
    def tenant_id(self) -> str: ...
    @property
    def user_id(self) -> str: ...
    @property
    def role(self) -> Role: ...
    @property
    def email(self) -> str: ...
    # tenancy
    def me(self) -> Me: ...
    def create_user(self, *, email: str, role: Role) -> User: ...
    def create_api_key(
        self,
        *,
        user_id: str,
        name: str,
        scopes: Optional[Sequence[str]] = None,
        expires_at: Optional[str] = None,
    ) -> ApiKeyCreated: ...
    def api_keys(self) -> List[ApiKey]: ...
    def revoke_api_key(self, key_id: str) -> ApiKey: ...
    def rotate_tenant_key(self, *, grace_seconds: int = 0) -> TenantKeyRotated: ...
    def users(self, *, limit: Optional[int] = None, cursor: Optional[str] = None) -> UserPage: ...
    def user(self, user_id: str) -> UserInfo: ...
    def update_user(
        self, user_id: str, *, role: Optional[Role] = None, deactivated: Optional[bool] = None
    ) -> UserInfo: ...
    def delete_task(self, task_id: str) -> Deleted: ...
    def delete_decision(self, decision_id: str) -> Deleted: ...
    def delete_meeting(self, meeting_id: str) -> Deleted: ...
    def delete_memory_fact(self, fact_id: str) -> Deleted: ...
    def delete_evidence(
        self, evidence_id: str, *, entity_type: EvidenceTarget, entity_id: str
    ) -> Deleted: ...
    def delete_conversation(self, conversation_id: str) -> Deleted: ...
    def delete_kpi(self, kpi_id: str) -> Deleted: ...
    def export_tenant(self, path: Union[str, "os.PathLike[str]"]) -> Exported: ...
    # limits
    def limits(self) -> TenantLimits: ...
    def set_limits(
        self,
        *,
        assistant_query_daily_limit: int,
        tool_invocation_daily_limit: int,
        daily_brief_generated_daily_limit: int,
        notification_enqueued_daily_limit: int,
    ) -> TenantLimits: ...
    def daily_usage(self, date: DateArg = None) -> DailyUsage: ...
    # billing
    def billing_plan(self) -> PlanInfo: ...
    def billing_usage(self, period_start: DateArg = None) -> Usage: ...
    def billing_usage_by_day(self, period_start: DateArg = None) -> UsageByDay: ...
    def billing_ledger(self, period_start: DateArg = None, limit: int = 200) -> Ledger: ...
    def billing_events(self) -> List[MeteredEvent]: ...
    # metering
    def record_usage(
        self,
        event_key: str,
        units: int = 1,
        *,
        tool_name: Optional[str] = None,
        capability: Optional[str] = None,
        activity: Optional[Activity] = None,
    ) -> UsageReceipt: ...
    def record_usage_events(self, events: Sequence[Mapping[str, Any]]) -> UsageIngest: ...
    def usage_export(self, after: Optional[str] = None, limit: int = 100) -> UsageExportPage: ...
    # notifications
    def notification_prefs(self) -> NotificationPrefs: ...
    def set_notification_prefs(
        self, *, daily_brief_enabled: bool = True, delivery_method: Literal["in_app"] = "in_app"
    ) -> NotificationPrefs: ...
    def outbox(
        self, *, date: DateArg = None, status: Optional[str] = None, limit: Optional[int] = None
    ) -> Outbox: ...
    def ack_notification(self, id: int) -> Notification: ...
    # conversations
    def create_conversation(self, title: Optional[str] = None) -> Conversation: ...
    def conversations(
        self, *, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> ConversationList: ...
    def conversation(self, conversation_id: str) -> ConversationDetail: ...
    # tools
    def tools(self) -> List[ToolInfo]: ...
    def invoke_tool(
        self,
        tool_name: str,
        payload: Optional[Mapping[str, Any]] = None,
        *,
        idempotency_key: str,
    ) -> Invocation: ...
    # KPIs
    def create_kpi(
        self, *, name: str, unit: Optional[str] = None, description: Optional[str] = None
    ) -> Kpi: ...
    def ingest_points(self, kpi_id: str, points: Sequence[PointIn]) -> IngestResult: ...
    def list_kpis(self, *, limit: int = 100, offset: int = 0) -> List[Kpi]: ...
    def latest_point(self, kpi_id: str) -> LatestPoint: ...
    def kpi_window(
        self, kpi_id: str, *, window_days: int = 7, cutoff: Optional[InstantArg] = None
    ) -> Optional[KpiWindow]: ...
    def kpi_series(
        self,
        kpi_id: str,
        *,
        start: Optional[InstantArg] = None,
        end: Optional[InstantArg] = None,
        window_days: Optional[int] = None,
        max_points: int = 1000,
    ) -> KpiSeries: ...
    # briefs
    def materialize_brief(
        self,
        *,
        idempotency_key: str,
        date: DateArg = None,
        window_days: Optional[int] = None,
        top_n: Optional[int] = None,
    ) -> Brief: ...
    def brief(self, date: Union[datetime.date, str]) -> Brief: ...
    def list_briefs(self, *, before: DateArg = None, limit: int = 31) -> BriefList: ...
    def latest_brief(self) -> Brief: ...
    def preview_brief(
        self,
        *,
        date: DateArg = None,
        window_days: Optional[int] = None,
        top_n: Optional[int] = None,
    ) -> BriefContent: ...
    # the runner
    def run_daily_brief(
        self,
        *,
        idempotency_key: str,
        date: DateArg = None,
        window_days: Optional[int] = None,
        top_n: Optional[int] = None,
    ) -> RunReport: ...
    # chat
    def chat(
        self, message: str, *, conversation_id: Optional[str] = None, date: DateArg = None
    ) -> ChatReply: ...
    # Core OS: actions. In update_* methods an omitted keyword leaves the field unchanged and
    # None clears a nullable one.
    def create_action(
        self,
        *,
        title: str,
        action_type: str,
        description: Optional[str] = None,
        payload: Optional[Mapping[str, Any]] = None,
        assigned_to_user_id: Optional[str] = None,
        source: Optional[Literal["user", "agent", "system"]] = None,
        source_ref: Optional[str] = None,
    ) -> Action: ...
    def list_actions(
        self,
        *,
        status: Optional[
            Literal["proposed", "approved", "rejected", "cancelled", "executed", "all"]
        ] = None,
        created_by_user_id: Optional[str] = None,
        assigned_to_user_id: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> ActionPage: ...
    def get_action(self, action_id: str) -> ActionDetail: ...
    def update_action(
        self,
        action_id: str,
        *,
        title: str = ...,
        description: Optional[str] = ...,
        assigned_to_user_id: Optional[str] = ...,
        payload: Mapping[str, Any] = ...,
        status: Literal["cancelled"] = ...,
    ) -> Action: ...
    def cancel_action(self, action_id: str, comment: Optional[str] = None) -> Action: ...
    def approve_action(self, action_id: str, comment: Optional[str] = None) -> Action: ...
    def reject_action(self, action_id: str, comment: Optional[str] = None) -> Action: ...
    def execute_action(
        self,
        action_id: str,
        *,
        execution_status: Literal["succeeded", "failed", "skipped"],
        result: Optional[Mapping[str, Any]] = None,
    ) -> ExecutionResult: ...
    # Core OS: tasks
    def create_task(
        self,
        *,
        title: str,
        description: Optional[str] = None,
        assigned_to_user_id: Optional[str] = None,
        priority: Optional[Priority] = None,
        due_date: DateArg = None,
        linked_entity_type: Optional[EntityType] = None,
        linked_entity_id: Optional[str] = None,
    ) -> Task: ...
    def list_tasks(
        self,
        *,
        status: Optional[Union[TaskStatus, Literal["all"]]] = None,
        assigned_to_user_id: Optional[str] = None,
        due_before: DateArg = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> TaskPage: ...
    def get_task(self, task_id: str) -> Task: ...
    def update_task(
        self,
        task_id: str,
        *,
        title: str = ...,
        description: Optional[str] = ...,
        assigned_to_user_id: Optional[str] = ...,
        priority: Priority = ...,
        due_date: DateArg = ...,
        status: TaskStatus = ...,
    ) -> Task: ...
    def complete_task(self, task_id: str) -> Task: ...
    # Core OS: decisions
    def create_decision(
        self,
        *,
        decision_date: Union[datetime.date, str],
        title: str,
        decision: str,
        context: Optional[str] = None,
        rationale: Optional[str] = None,
    ) -> Decision: ...
    def list_decisions(
        self, *, limit: Optional[int] = None, offset: Optional[int] = None
    ) -> DecisionPage: ...
    def get_decision(self, decision_id: str) -> Decision: ...
    def update_decision(
        self,
        decision_id: str,
        *,
        title: str = ...,
        context: Optional[str] = ...,
        decision: str = ...,
        rationale: Optional[str] = ...,
    ) -> Decision: ...
    # Core OS: meeting notes
    def create_meeting(
        self,
        *,
        meeting_date: Union[datetime.date, str],
        title: str,
        notes: str,
        linked_entity_type: Optional[EntityType] = None,
        linked_entity_id: Optional[str] = None,
    ) -> MeetingNote: ...
    def list_meetings(
        self,
        *,
        from_: DateArg = None,
        to: DateArg = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> MeetingPage: ...
    def get_meeting(self, meeting_id: str) -> MeetingNote: ...
    def update_meeting(
        self,
        meeting_id: str,
        *,
        title: str = ...,
        notes: str = ...,
        linked_entity_type: Optional[EntityType] = ...,
        linked_entity_id: Optional[str] = ...,
    ) -> MeetingNote: ...
    # Core OS: memory facts
    def create_memory_fact(
        self, *, category: FactCategory, fact_key: str, fact_value: str
    ) -> MemoryFact: ...
    def list_memory_facts(
        self,
        *,
        category: Optional[FactCategory] = None,
        status: Optional[Literal["active", "superseded", "all"]] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> MemoryFactPage: ...
    def get_memory_fact(self, fact_id: str) -> MemoryFact: ...
    def update_memory_fact(self, fact_id: str, *, fact_value: str = ...) -> MemoryFact: ...
    def supersede_memory_fact(self, fact_id: str, *, fact_value: str) -> MemoryFact: ...
    # Core OS: evidence, timeline, search, records
    def create_evidence(
        self,
        *,
        entity_type: EvidenceTarget,
        entity_id: str,
        source_type: EvidenceSource,
        source_ref: Mapping[str, Any],
        snippet: Optional[str] = None,
    ) -> EvidenceLink: ...
    def list_evidence(self, entity_type: EvidenceTarget, entity_id: str) -> EvidenceList: ...
    def events(
        self,
        *,
        after: Optional[str] = None,
        types: Optional[List[str]] = None,
        follow: bool = False,
    ) -> EventStream: ...
    def timeline(
        self,
        *,
        entity_type: Optional[EntityType] = None,
        entity_id: Optional[str] = None,
        before: Optional[str] = None,
        limit: Optional[int] = None,
        offset: Optional[int] = None,
    ) -> TimelinePage: ...
    def search(
        self,
        q: str,
        *,
        types: Union[Sequence[SearchType], str, None] = None,
        limit: Optional[int] = None,
    ) -> SearchResults: ...
    def record(self, entity_type: EntityType, entity_id: str) -> RecordView: ...
    # audit (tenant admins)
    def audit_log(
        self,
        *,
        actor_user_id: Optional[str] = None,
        action: Optional[str] = None,
        target_type: Optional[str] = None,
        target_id: Optional[str] = None,
        outcome: Optional[Literal["success", "denied", "quota"]] = None,
        since: Union[datetime.datetime, datetime.date, str, None] = None,
        until: Union[datetime.datetime, datetime.date, str, None] = None,
        cursor: Union[str, int, None] = None,
        limit: Optional[int] = None,
    ) -> AuditPage: ...
    def audit_stats(
        self,
        group_by: Literal["action", "actor", "outcome", "day"],
        *,
        since: Union[datetime.datetime, datetime.date, str, None] = None,
        until: Union[datetime.datetime, datetime.date, str, None] = None,
    ) -> AuditStats: ...
    def audit_export(
        self,
        *,
        since: Union[datetime.datetime, datetime.date, str, None] = None,
        until: Union[datetime.datetime, datetime.date, str, None] = None,
    ) -> AuditExport: ...
    def audit_proof(self, from_: int, to: int) -> AuditProof: ...

@final
class Admin:
    """The platform-admin catalogue (whoever holds the handle is the platform)."""

    def metered_events(self) -> List[MeteredEvent]: ...
    def erase_tenant(self, tenant_id: str, *, confirm: str) -> Erasure: ...
    def erase_step(self) -> Optional[Erasure]: ...
    def erasure(self, tenant_id: str) -> Optional[Erasure]: ...
    def create_metered_event(
        self,
        *,
        event_key: str,
        display_name: str,
        unit_name: str,
        credits_per_unit: float,
        list_price_per_credit: float,
        description: Optional[str] = None,
        billable: bool = True,
        active: bool = True,
        capability: Optional[str] = None,
    ) -> MeteredEvent: ...
    def update_metered_event(
        self,
        event_key: str,
        *,
        display_name: Optional[str] = None,
        description: Optional[str] = None,
        unit_name: Optional[str] = None,
        credits_per_unit: Optional[float] = None,
        list_price_per_credit: Optional[float] = None,
        billable: Optional[bool] = None,
        active: Optional[bool] = None,
        capability: Optional[str] = None,
    ) -> MeteredEvent: ...
    def usage_export(self, after: Optional[str] = None, limit: int = 100) -> UsageExportPage: ...
    def plans(self) -> List[Plan]: ...
    def create_plan(
        self,
        *,
        plan_id: str,
        name: str,
        included_credits: int,
        overage_price_per_credit: float,
    ) -> Plan: ...
    def update_plan(
        self,
        plan_id: str,
        *,
        name: Optional[str] = None,
        included_credits: Optional[int] = None,
        overage_price_per_credit: Optional[float] = None,
    ) -> Plan: ...
    def set_plan_capabilities(self, plan_id: str, capabilities: Sequence[str]) -> List[str]: ...
    def set_plan_caps(self, plan_id: str, caps: Sequence[CapSpec]) -> List[PlanCap]: ...
    def set_subscription(
        self,
        tenant_id: str,
        *,
        plan_id: str,
        status: Optional[Literal["active", "suspended"]] = None,
        period_start: DateArg = None,
    ) -> Subscription: ...
