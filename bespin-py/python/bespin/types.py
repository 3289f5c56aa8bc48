"""The shapes of Bespin's results: plain dicts with the HTTP API's field names.

These ``TypedDict`` classes exist for type checkers and documentation; at runtime results are
ordinary ``dict`` objects. ``*_at`` members are timezone-aware ``datetime`` objects (UTC),
``date``/``period_start``/``period_end`` members are ``date`` objects; money and credit amounts
are ``float`` (the core computes them in exact decimals).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, Dict, List, Literal, Optional, TypedDict, Union


__all__ = [
    "ApiKey",
    "ApiKeyCreated",
    "Deleted",
    "Erasure",
    "Exported",
    "TenantKeyRotated",
    "UserInfo",
    "UserPage",
    "Action",
    "ActionDetail",
    "ActionPage",
    "ActivityUsage",
    "AdminSummary",
    "Alert",
    "AssistantMessage",
    "BreakdownItem",
    "Brief",
    "BriefContent",
    "BriefList",
    "BriefListItem",
    "BriefSummary",
    "CapSpec",
    "ChatReply",
    "Conversation",
    "ConversationDetail",
    "ConversationList",
    "Credits",
    "DailyUsage",
    "DayItem",
    "Decision",
    "DecisionPage",
    "Event",
    "EventSubject",
    "EvidenceLink",
    "EvidenceList",
    "Execution",
    "ExecutionResult",
    "Highlight",
    "IngestResult",
    "Invocation",
    "Kpi",
    "KpiSeries",
    "KpiWindow",
    "LatestPoint",
    "Ledger",
    "LedgerItem",
    "Me",
    "MeetingNote",
    "MeetingPage",
    "MemoryFact",
    "MemoryFactPage",
    "Message",
    "MeteredEvent",
    "Notification",
    "NotificationPrefs",
    "Outbox",
    "Plan",
    "PlanCap",
    "PlanInfo",
    "Point",
    "PointIn",
    "RecordView",
    "Review",
    "RunReport",
    "SearchHit",
    "SearchResults",
    "Subscription",
    "Task",
    "TaskPage",
    "TenantCreated",
    "TenantLimits",
    "TimelineEvent",
    "TimelinePage",
    "ToolInfo",
    "Usage",
    "UsageByDay",
    "UsageDay",
    "UsageReceipt",
    "UsageEventRefusal",
    "UsageEventResult",
    "UsageIngest",
    "UsageCloudEvent",
    "UsageExportPage",
    "MeteredEventWithCapability",
    "User",
    "ValidationItem",
]


class ValidationItem(TypedDict, total=False):
    """One failing field of a ``ValidationError`` (``ctx`` only for some types)."""

    type: str
    loc: List[Any]
    msg: str
    input: Any
    ctx: Any


class AdminSummary(TypedDict):
    user_id: str
    email: str
    role: str


class TenantCreated(TypedDict):
    tenant_id: str
    name: str
    region: str
    api_key: str
    created_at: _dt.datetime
    admin: AdminSummary


class User(TypedDict):
    user_id: str
    tenant_id: str
    email: str
    role: str
    created_at: _dt.datetime


class Me(TypedDict):
    user_id: str
    tenant_id: str
    email: str
    role: str


class TenantLimits(TypedDict):
    tenant_id: str
    assistant_query_daily_limit: int
    tool_invocation_daily_limit: int
    daily_brief_generated_daily_limit: int
    notification_enqueued_daily_limit: int


class ActivityUsage(TypedDict):
    activity_type: str
    units: int


class DailyUsage(TypedDict):
    date: _dt.date
    limits: TenantLimits
    usage: List[ActivityUsage]


class Plan(TypedDict):
    plan_id: str
    name: str
    included_credits: int
    overage_price_per_credit: float
    created_at: _dt.datetime
    updated_at: _dt.datetime


class PlanInfo(TypedDict):
    tenant_id: str
    plan_id: str
    status: str
    period_start: _dt.date
    period_end: _dt.date
    plan: Plan
    capabilities: List[str]


class Credits(TypedDict):
    included: int
    used: float
    remaining: float
    overage_credits: float
    estimated_overage_cost: float
    estimated_list_cost: float


class BreakdownItem(TypedDict):
    event_key: str
    unit_name: str
    raw_units: float
    credits: float
    list_cost_estimate: float


class Usage(TypedDict):
    period_start: _dt.date
    period_end: _dt.date
    plan: Plan
    credits: Credits
    breakdown: List[BreakdownItem]


class LedgerItem(TypedDict):
    event_key: str
    raw_units: float
    credits: float
    list_cost_estimate: float
    tool_name: Optional[str]
    request_id: str
    created_at: _dt.datetime


class Ledger(TypedDict):
    period_start: _dt.date
    items: List[LedgerItem]


class DayItem(TypedDict):
    event_key: str
    raw_units: float
    credits: float


class UsageDay(TypedDict):
    date: _dt.date
    credits: float
    breakdown: List[DayItem]


class UsageByDay(TypedDict):
    period_start: _dt.date
    period_end: _dt.date
    days: List[UsageDay]


class MeteredEvent(TypedDict):
    event_key: str
    display_name: str
    description: Optional[str]
    unit_name: str
    credits_per_unit: float
    list_price_per_credit: float
    billable: bool
    active: bool
    created_at: _dt.datetime
    updated_at: _dt.datetime


class MeteredEventCapability(TypedDict, total=False):
    capability: str


class MeteredEventWithCapability(MeteredEvent, MeteredEventCapability):
    """A metered event type; `capability` only when an admin tied one to it."""


class PlanCap(TypedDict):
    event_key: str
    period: str
    cap_raw_units: float


class Subscription(TypedDict):
    tenant_id: str
    plan_id: str
    status: str
    period_start: _dt.date
    period_end: _dt.date
    created_at: _dt.datetime
    updated_at: _dt.datetime


class UsageReceipt(TypedDict):
    request_id: str


class UsageEventRefusal(TypedDict):
    code: str
    body: Dict[str, Any]


class UsageEventResult(TypedDict, total=False):
    index: int
    id: str
    status: Literal["accepted", "duplicate", "rejected"]
    usage_id: str
    error: UsageEventRefusal


class UsageIngest(TypedDict):
    accepted: int
    duplicates: int
    rejected: int
    results: List[UsageEventResult]


class UsageCloudEvent(TypedDict):
    specversion: str
    id: str
    source: str
    type: str
    subject: str
    time: Any
    datacontenttype: str
    data: Dict[str, Any]


class UsageExportPage(TypedDict):
    events: List[UsageCloudEvent]
    next_cursor: Optional[str]


class NotificationPrefs(TypedDict):
    daily_brief_enabled: bool
    delivery_method: str


class Notification(TypedDict):
    id: int
    notification_type: str
    date: _dt.date
    status: str
    request_id: str
    payload: Any


class Outbox(TypedDict):
    items: List[Notification]


class Conversation(TypedDict):
    conversation_id: str
    title: Optional[str]
    created_at: _dt.datetime


class Message(TypedDict):
    message_id: str
    role: str
    content: str
    cards: List[Any]
    created_at: _dt.datetime


class ConversationDetail(TypedDict):
    conversation_id: str
    title: Optional[str]
    created_at: _dt.datetime
    messages: List[Message]


class ConversationList(TypedDict):
    items: List[Conversation]


class _CapSpecBase(TypedDict):
    event_key: str
    cap_raw_units: float


class CapSpec(_CapSpecBase, total=False):
    """One cap of ``Admin.set_plan_caps`` (``period`` defaults to ``"monthly"``)."""

    period: str


# --- tools ---------------------------------------------------------------------------------


class ToolInfo(TypedDict):
    name: str
    description: str
    input_schema: Dict[str, Any]


class Invocation(TypedDict):
    """A tool invocation (a replay returns the stored one, same ``request_id``)."""

    request_id: str
    result: Any


# --- KPIs ----------------------------------------------------------------------------------


class Kpi(TypedDict):
    kpi_id: str
    name: str
    unit: Optional[str]
    description: Optional[str]


class PointIn(TypedDict):
    """One point of ``Session.ingest_points``: ``ts`` an aware ``datetime``, a ``date``
    (midnight UTC) or an RFC 3339 / ``YYYY-MM-DD`` str."""

    ts: Union[_dt.datetime, _dt.date, str]
    value: float


class IngestResult(TypedDict):
    inserted: int
    ignored: int


class Point(TypedDict):
    ts: _dt.datetime
    value: float


class LatestPoint(TypedDict):
    kpi_id: str
    ts: _dt.datetime
    value: float


class KpiWindow(TypedDict):
    kpi_id: str
    window_days: int
    latest: Point
    start: Point
    delta_abs: float
    delta_pct: Optional[float]


KpiSeries = TypedDict(
    "KpiSeries",
    {
        "kpi_id": str,
        "from": Optional[_dt.datetime],
        "to": Optional[_dt.datetime],
        "points_in_range": int,
        "downsampled": bool,
        "points": List[Point],
    },
)


# --- briefs, the runner and chat -----------------------------------------------------------


class BriefSummary(TypedDict):
    kpis_considered: int
    kpis_up: int
    kpis_down: int
    kpis_flat: int


class Highlight(TypedDict):
    kpi_id: str
    name: str
    unit: Optional[str]
    latest: Point
    start: Point
    delta_abs: float
    delta_pct: Optional[float]


class Alert(TypedDict):
    kpi_id: str
    name: str
    severity: str
    reason: str
    delta_pct: float


class BriefContent(TypedDict):
    date: _dt.date
    window_days: int
    top_n: int
    summary: BriefSummary
    highlights: List[Highlight]
    alerts: List[Alert]


class Brief(TypedDict):
    brief_id: str
    request_id: str
    content: BriefContent


class BriefListItem(TypedDict):
    date: _dt.date
    brief_id: str
    summary: BriefSummary
    alerts: int


class BriefList(TypedDict):
    items: List[BriefListItem]


class RunReport(TypedDict):
    date: _dt.date
    brief_id: str
    brief_created: bool
    notifications_inserted: int
    notifications_ignored: int
    notifications_suppressed_due_to_quota: int


class AssistantMessage(TypedDict):
    message_id: str
    content: str
    cards: List[Any]


class ChatReply(TypedDict):
    request_id: str
    conversation_id: str
    assistant_message: AssistantMessage


# --- the Core OS ---------------------------------------------------------------------------


class Action(TypedDict):
    action_id: str
    tenant_id: str
    created_by_user_id: str
    assigned_to_user_id: Optional[str]
    source: str
    source_ref: Optional[str]
    status: str
    title: str
    description: Optional[str]
    action_type: str
    payload: Dict[str, Any]
    created_at: _dt.datetime
    updated_at: _dt.datetime


class Review(TypedDict):
    decision: str
    reviewer_user_id: str
    comment: Optional[str]
    created_at: _dt.datetime


class Execution(TypedDict):
    execution_id: str
    action_id: str
    executed_by_user_id: str
    execution_status: str
    result: Dict[str, Any]
    created_at: _dt.datetime


class ActionDetail(Action):
    review: Optional[Review]
    execution: Optional[Execution]


class ExecutionResult(TypedDict):
    action: Action
    execution: Execution


class ActionPage(TypedDict):
    items: List[Action]
    total: int
    limit: int
    offset: int


class Task(TypedDict):
    task_id: str
    tenant_id: str
    created_by_user_id: str
    assigned_to_user_id: Optional[str]
    status: str
    priority: str
    due_date: Optional[_dt.date]
    title: str
    description: Optional[str]
    linked_entity_type: Optional[str]
    linked_entity_id: Optional[str]
    created_at: _dt.datetime
    updated_at: _dt.datetime


class TaskPage(TypedDict):
    items: List[Task]
    total: int
    limit: int
    offset: int


class Decision(TypedDict):
    decision_id: str
    tenant_id: str
    created_by_user_id: str
    decision_date: _dt.date
    title: str
    context: Optional[str]
    decision: str
    rationale: Optional[str]
    status: str
    superseded_by_decision_id: Optional[str]
    created_at: _dt.datetime
    updated_at: _dt.datetime


class DecisionPage(TypedDict):
    items: List[Decision]
    total: int
    limit: int
    offset: int


class MeetingNote(TypedDict):
    meeting_id: str
    tenant_id: str
    created_by_user_id: str
    meeting_date: _dt.date
    title: str
    notes: str
    linked_entity_type: Optional[str]
    linked_entity_id: Optional[str]
    created_at: _dt.datetime
    updated_at: _dt.datetime


class MeetingPage(TypedDict):
    items: List[MeetingNote]
    total: int
    limit: int
    offset: int


class MemoryFact(TypedDict):
    fact_id: str
    tenant_id: str
    created_by_user_id: str
    category: str
    fact_key: str
    fact_value: str
    status: str
    supersedes_fact_id: Optional[str]
    superseded_by_fact_id: Optional[str]
    created_at: _dt.datetime
    updated_at: _dt.datetime


class MemoryFactPage(TypedDict):
    items: List[MemoryFact]
    total: int
    limit: int
    offset: int


class EvidenceLink(TypedDict):
    evidence_id: str
    tenant_id: str
    entity_type: str
    entity_id: str
    source_type: str
    source_ref: Dict[str, Any]
    snippet: Optional[str]
    created_by_user_id: str
    created_at: _dt.datetime


class EvidenceList(TypedDict):
    items: List[EvidenceLink]
    total: int


class TimelineEvent(TypedDict):
    event_id: str
    tenant_id: str
    actor_user_id: str
    event_type: str
    entity_type: str
    entity_id: str
    summary: str
    metadata: Dict[str, Optional[str]]
    created_at: _dt.datetime


class TimelinePage(TypedDict):
    items: List[TimelineEvent]
    total: int
    limit: int
    offset: int


class SearchHit(TypedDict):
    entity_type: str
    entity_id: str
    title: str
    snippet: Optional[str]
    updated_at: _dt.datetime


class SearchResults(TypedDict):
    q: str
    results: List[SearchHit]
    total: int


class RecordView(TypedDict):
    """The record explorer: ``entity`` has the keys of the record's own shape."""

    entity: Dict[str, Any]
    evidence: List[EvidenceLink]
    timeline: List[TimelineEvent]


class EventSubject(TypedDict):
    type: str
    id: str


Event = TypedDict(
    "Event",
    {
        "id": str,
        "type": str,
        "occurred_at": _dt.datetime,
        "tenant_id": str,
        "actor_user_id": Optional[str],
        "subject": EventSubject,
        "data": Any,
    },
)


class ApiKey(TypedDict):
    """A user-bound API key as listed: never its secret."""

    key_id: str
    user_id: str
    name: str
    prefix: str
    last4: str
    scopes: List[str]
    created_at: _dt.datetime
    expires_at: Optional[_dt.datetime]
    last_used_on: Optional[str]
    revoked_at: Optional[_dt.datetime]


class ApiKeyCreated(ApiKey):
    """A new key, with its clear ``api_key`` shown this once."""

    api_key: str


class TenantKeyRotated(TypedDict):
    api_key: str
    previous_valid_until: _dt.datetime


class UserInfo(TypedDict):
    user_id: str
    tenant_id: str
    email: str
    role: str
    created_at: _dt.datetime
    deactivated: bool
    deactivated_at: Optional[_dt.datetime]


class UserPage(TypedDict):
    items: List[UserInfo]
    next_cursor: Optional[str]


class Deleted(TypedDict):
    entity_type: str
    entity_id: str
    deleted_at: _dt.datetime


class Erasure(TypedDict):
    tenant_id: str
    erased_at: _dt.datetime
    state: str
    rows_deleted: int
    finished_at: Optional[_dt.datetime]


class Exported(TypedDict):
    rows: int
    tables: int


AuditOutcome = str  # "success" | "denied" | "quota"


class AuditRow(TypedDict):
    n: int
    user_id: str
    action: str
    tool_name: Optional[str]
    request_id: str
    outcome: AuditOutcome
    capability: Optional[str]
    target_type: Optional[str]
    target_id: Optional[str]
    units: Optional[int]
    idempotency_key: Optional[str]
    created_at: _dt.datetime


class AuditPage(TypedDict):
    items: List[AuditRow]
    next_cursor: Optional[str]


class AuditGroupCount(TypedDict):
    key: str
    count: int


class AuditStats(TypedDict):
    group_by: str
    total: int
    groups: List[AuditGroupCount]


class AuditExportRow(TypedDict):
    """One exported row: the row with what a verifier needs to rehash it (base64 hashes)."""

    tenant_id: str
    n: int
    created_at: _dt.datetime
    created_at_us: int
    action: str
    tool_name: Optional[str]
    request_id: str
    outcome: AuditOutcome
    capability: Optional[str]
    target_type: Optional[str]
    target_id: Optional[str]
    units: Optional[int]
    user_id: str
    idempotency_key: Optional[str]
    digest_salt: Optional[str]
    personal_digest: str
    prev_hash: str
    row_hash: str


class AuditPublicKey(TypedDict):
    name: str
    verifier_key: str
    ed25519_public_key: str
    algorithm: str


class AuditProof(TypedDict):
    tenant_id: str
    rows: List[Dict[str, Any]]
    prev_hash: str
    checkpoint: Optional[str]
    public_key: AuditPublicKey


class AuditFinding(TypedDict):
    tenant_id: str
    n: int
    fault: str
    description: str


class AuditVerifyReport(TypedDict):
    chains: int
    rows: int
    findings: List[AuditFinding]
    total_findings: int
