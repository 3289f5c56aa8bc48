# Hand-written stub of the Rust extension module (bespin-py/src). Keep it in step with the
# `#[pymethods]` of each area file; `mypy --strict` on the tests and examples checks the use.
import datetime
import os
from typing import Any, Dict, List, Literal, Optional, Sequence, Type, Union, final

from types import TracebackType

from bespin.types import (
    CapSpec,
    ConversationDetail,
    ConversationList,
    Conversation,
    DailyUsage,
    Ledger,
    Me,
    MeteredEvent,
    Notification,
    NotificationPrefs,
    Outbox,
    Plan,
    PlanCap,
    PlanInfo,
    Subscription,
    TenantCreated,
    TenantLimits,
    Usage,
    UsageReceipt,
    User,
    ValidationItem,
)

__version__: str

# Arguments are checked by the core exactly like the HTTP API's JSON bodies (so e.g. a numeric
# str is accepted where the contract coerces it); these annotations state the intended types.
DateArg = Union[datetime.date, str, None]
Role = Literal["admin", "member"]
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

class QuotaExceeded(BespinError):
    detail: Dict[str, Any]

def open(path: Union[str, "os.PathLike[str]"]) -> Bespin:
    """Opens (creating if missing) the database file at ``path``."""

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
    def session(self, tenant_id: str, user_id: str, api_key: str) -> Session: ...
    # tenancy
    def create_tenant(
        self, *, name: str, region: str, admin_email: str
    ) -> TenantCreated: ...

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

@final
class Admin:
    """The platform-admin catalogue (whoever holds the handle is the platform)."""

    def metered_events(self) -> List[MeteredEvent]: ...
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
    ) -> MeteredEvent: ...
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
