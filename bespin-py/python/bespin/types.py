"""The shapes of Bespin's results: plain dicts with the HTTP API's field names.

These ``TypedDict`` classes exist for type checkers and documentation; at runtime results are
ordinary ``dict`` objects. ``*_at`` members are timezone-aware ``datetime`` objects (UTC),
``date``/``period_start``/``period_end`` members are ``date`` objects; money and credit amounts
are ``float`` (the core computes them in exact decimals).
"""

from __future__ import annotations

import datetime as _dt
from typing import Any, List, Optional, TypedDict


__all__ = [
    "ActivityUsage",
    "AdminSummary",
    "BreakdownItem",
    "CapSpec",
    "Conversation",
    "ConversationDetail",
    "ConversationList",
    "Credits",
    "DailyUsage",
    "Ledger",
    "LedgerItem",
    "Me",
    "Message",
    "MeteredEvent",
    "Notification",
    "NotificationPrefs",
    "Outbox",
    "Plan",
    "PlanCap",
    "PlanInfo",
    "Subscription",
    "TenantCreated",
    "TenantLimits",
    "Usage",
    "UsageReceipt",
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
