"""Bespin, the multi-tenant AI co-founder backend, embedded in this process.

    import bespin
    with bespin.open("bespin.redb") as db:
        t = db.create_tenant(name="Acme", region="eu-west-1", admin_email="ada@acme.io")
        me = db.session(t["tenant_id"], t["admin"]["user_id"], t["api_key"])
        print(me.billing_usage()["credits"])

Results are plain dicts and lists with the HTTP API's field names (see ``bespin.types`` for
their shapes); ``*_at`` members are aware ``datetime`` objects in UTC, ``date``/``period_*``
members ``date`` objects. Errors derive from ``bespin.BespinError``.
"""

from . import types
from ._bespin import (
    Admin,
    AuditExport,
    BadRequest,
    Bespin,
    BespinError,
    CapabilityDenied,
    Conflict,
    CursorExpired,
    EventStream,
    Forbidden,
    NotFound,
    QuotaExceeded,
    Session,
    Unauthorized,
    ValidationError,
    __version__,
    open,
    open_in_memory,
)

__all__ = [
    "Admin",
    "AuditExport",
    "BadRequest",
    "Bespin",
    "BespinError",
    "CapabilityDenied",
    "Conflict",
    "CursorExpired",
    "EventStream",
    "Forbidden",
    "NotFound",
    "QuotaExceeded",
    "Session",
    "Unauthorized",
    "ValidationError",
    "__version__",
    "open",
    "open_in_memory",
    "types",
]
