"""The one audit writer.

Every connect, disconnect, test, proxy call, admin action and failed authentication goes through
``record``. It fills organization, actor, request id, client address and latency from the request
context, so callers only say *what* happened. ``detail`` is a small JSON object of facts (an
operation name, an upstream status, a reason) — never a secret and never a request or response
body. Rows are append-only: nothing in the code updates or deletes them.
"""

from __future__ import annotations

import enum
import time

import sqlalchemy as sa

from flask import g, has_request_context, request

from app.extensions import autocommit, db
from app.models import AuditLog
from app.models.base import utcnow


_INSERT = sa.insert(AuditLog.__table__)
_COLUMNS = ("at", "action", "outcome", "provider", "target", "status_code", "detail", "organization_id", "actor",
            "request_id", "ip", "latency_ms")


class Action(str, enum.Enum):
    ORG_CREATED = "org.created"
    ORG_UPDATED = "org.updated"
    KEY_ISSUED = "key.issued"
    KEY_REVOKED = "key.revoked"
    INTEGRATION_CONNECTED = "integration.connected"
    INTEGRATION_PENDING = "integration.pending"
    INTEGRATION_CONNECT_FAILED = "integration.connect_failed"
    INTEGRATION_APPROVED = "integration.approved"
    INTEGRATION_REJECTED = "integration.rejected"
    INTEGRATION_RELEASED = "integration.released"
    INTEGRATION_ASSIGNED = "integration.assigned"
    INTEGRATION_DISCONNECTED = "integration.disconnected"
    INTEGRATION_TESTED = "integration.tested"
    INTEGRATION_FAILED = "integration.failed"
    PROXY_REQUEST = "proxy.request"
    AUTH_FAILED = "auth.failed"
    WEBHOOK_RECEIVED = "webhook.received"
    WEBHOOK_ATTRIBUTED = "webhook.attributed"  # events kept during a pending claim, given to the org on approval
    WEBHOOK_ENDPOINT_SET = "webhook_endpoint.set"
    WEBHOOK_ENDPOINT_DELETED = "webhook_endpoint.deleted"
    EVENT_REDELIVERY = "event.redelivery"
    DELIVERY_ATTEMPTED = "delivery.attempted"


def row(
    action: Action,
    *,
    outcome: str = "success",
    provider: str | None = None,
    target: str | None = None,
    status_code: int | None = None,
    detail: dict | None = None,
    organization_id=None,
    actor: str | None = None,
    latency_ms: float | None = None,
) -> dict:
    """The columns of one audit row (``record``'s arguments), filled from the request context."""
    values = {
        "at": utcnow(),
        "action": action.value,
        "outcome": outcome,
        "provider": provider,
        "target": target,
        "status_code": status_code,
        "detail": detail or None,
        "organization_id": organization_id,
        "actor": actor or "system",
        "request_id": None,
        "ip": None,
        "latency_ms": latency_ms,
    }
    if has_request_context():
        org = g.get("org")
        values["organization_id"] = organization_id or (org.id if org is not None else None)
        values["actor"] = actor or g.get("actor") or "anonymous"
        values["request_id"] = g.get("request_id")
        values["ip"] = request.remote_addr
        started = g.get("started")
        if started is not None and latency_ms is None:
            values["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    return values


def insert_from(source=None, **columns) -> sa.Insert:
    """``INSERT INTO audit_logs … SELECT … FROM source``: one audit row per row of ``source``
    (without ``source``: one row).

    For a statement that writes the row together with what it describes (PostgreSQL: the webhook
    store's single statement, the delivery worker's finish). Each column is the bind parameter
    ``audit_<column>`` — fill them with ``params(row(...))`` — unless ``columns`` gives it an
    expression (a value only known inside the statement: the organization the claim lookup found).
    """
    table = AuditLog.__table__
    values = [columns[name] if name in columns else param(name) for name in _COLUMNS]
    select = sa.select(*values) if source is None else sa.select(*values).select_from(source)
    return table.insert().from_select(list(_COLUMNS), select)


def param(column: str) -> sa.BindParameter:
    """The bind parameter ``insert_from`` uses for ``column`` (to build an expression on it)."""
    return sa.bindparam(f"audit_{column}", type_=AuditLog.__table__.c[column].type)


def params(values: dict) -> dict:
    """``row(...)``'s values as ``insert_from``'s bind parameters."""
    return {f"audit_{name}": value for name, value in values.items()}


def record(
    action: Action,
    *,
    outcome: str = "success",
    provider: str | None = None,
    target: str | None = None,
    status_code: int | None = None,
    detail: dict | None = None,
    organization_id=None,
    actor: str | None = None,
    commit: bool = False,
    connection: sa.Connection | None = None,
    latency_ms: float | None = None,
) -> None:
    """Write one audit row.

    ``commit=False``: the row joins the session's transaction, committed with the change it
    describes. ``commit=True``: the row stands alone and is durable when this returns (one
    autocommit INSERT — the proxy hot path and failed authentications). ``connection``: the row
    joins that Core connection's transaction (the webhook hot path, which writes without the ORM).
    ``latency_ms``: the duration of what is recorded, when it is not the request's (a delivery
    attempt made by the worker).
    A Core INSERT, not an ORM object: the row is never read back in the same request.
    """
    values = row(action, outcome=outcome, provider=provider, target=target, status_code=status_code,
                   detail=detail, organization_id=organization_id, actor=actor, latency_ms=latency_ms)
    if connection is not None:
        connection.execute(_INSERT, values)
    elif commit:
        autocommit(_INSERT, values)
    else:
        db.session.execute(_INSERT, values)
