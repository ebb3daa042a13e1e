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


_INSERT = sa.insert(AuditLog.__table__)


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
    row = {
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
        row["organization_id"] = organization_id or (org.id if org is not None else None)
        row["actor"] = actor or g.get("actor") or "anonymous"
        row["request_id"] = g.get("request_id")
        row["ip"] = request.remote_addr
        started = g.get("started")
        if started is not None and latency_ms is None:
            row["latency_ms"] = round((time.perf_counter() - started) * 1000, 3)
    if connection is not None:
        connection.execute(_INSERT, row)
    elif commit:
        autocommit(_INSERT, row)
    else:
        db.session.execute(_INSERT, row)
